"""The paper's application on top of the fastgan library: the nets of section 5 (models), the data (data),
Algorithm 1's trainer (train, with schedule, sampler, placement and checkpoint), training runs (runs), the
Parzen evaluation of Table 1 (evaluate), the figures (viz, toy), section 7's extensions (inference,
semisupervised) and the command line (cli). It uses only the library's public API; `import fastgan` does not
load it.
"""
