"""fastgan: fused CPU/CUDA/Triton kernels for Generative Adversarial Nets (Goodfellow et al., 2014).

The library: the fused ops (fastgan.ops), their modules (fastgan.nn), the backends and the plain-PyTorch
reference. The paper's nets, data, trainer, evaluation and figures are an application on top of it,
fastgan.paper, which `import fastgan` does not load (`python -m fastgan` runs its command line).
"""
from . import backends, nn, ops, reference
from .backends import BackendUnavailable
from .ops import (discriminator_loss, generator_loss, linear_discriminator_loss, linear_generator_loss, maxout_dropout,
                  maxout_linear, parzen_log_density)

__version__ = "0.1.0"
__all__ = [
    "BackendUnavailable",
    "backends",
    "nn",
    "discriminator_loss",
    "generator_loss",
    "linear_discriminator_loss",
    "linear_generator_loss",
    "maxout_dropout",
    "maxout_linear",
    "ops",
    "parzen_log_density",
    "reference",
]
