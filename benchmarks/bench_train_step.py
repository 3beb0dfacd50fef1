"""One iteration of Algorithm 1 (k = 1) on the paper's MNIST nets at batch 100: a D step on real + fake,
then a G step. Providers:

- eager: the usual PyTorch GAN code (nn.Linear + view/amax maxout + F.dropout + BCEWithLogits; the D step
  detaches G(z), the G step back-propagates through D's weights too, as most GAN code does), drawing fresh
  noise for the G step as Algorithm 1 does (so both sides run G forward twice per iteration);
- compile: the same modules under torch.compile;
- fastgan-<backend>: fastgan.paper.train.Trainer.train_step on that backend (fused maxout layers, fused linear
  log-loss at D's output, no D weight gradients in the G step); "+compile": Trainer(compile=True);
- gemm: only the matrix products one step needs (forward and backward), back to back: the floor; on torch.mm,
  and as gemm-onednn on oneDNN's matmul, which fastgan's CPU products use (fastgan.ops.linear).

    pytest benchmarks/bench_train_step.py --benchmark-only
    python benchmarks/bench_train_step.py [rounds]   # interleaved medians, for noisy shared machines
"""
import statistics
import sys
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastgan.paper.models import ModelConfig, build_models
from fastgan.paper.train import TrainConfig, Trainer
from providers import DEVICE, GEMM_PROVIDERS, fused_providers, onednn_mm, peak_memory

BATCH = 100


class EagerMaxout(nn.Module):
    def __init__(self, n_in, units, pieces, p):
        super().__init__()
        self.linear, self.units, self.pieces, self.p = nn.Linear(n_in, units * pieces), units, pieces, p

    def forward(self, x):
        z = self.linear(x).view(-1, self.units, self.pieces).amax(-1)
        return F.dropout(z, self.p, self.training)


def eager_models():
    g = nn.Sequential(nn.Linear(100, 1200), nn.ReLU(), nn.Linear(1200, 1200), nn.ReLU(), nn.Linear(1200, 784),
                      nn.Sigmoid())
    d = nn.Sequential(nn.Dropout(0.2), EagerMaxout(784, 240, 5, 0.5), EagerMaxout(240, 240, 5, 0.5), nn.Linear(240, 1))
    return g.to(DEVICE), d.to(DEVICE)


def eager_step_fn(g, d, data):
    g_opt = torch.optim.SGD(g.parameters(), lr=0.1, momentum=0.5)
    d_opt = torch.optim.SGD(d.parameters(), lr=0.1, momentum=0.5)
    ones = torch.ones(BATCH, 1, device=DEVICE)
    zeros = torch.zeros(BATCH, 1, device=DEVICE)

    def step():
        real = data[torch.randint(len(data), (BATCH,), device=DEVICE)]
        fake = g(torch.randn(BATCH, 100, device=DEVICE))
        d_loss = (F.binary_cross_entropy_with_logits(d(real), ones)
                  + F.binary_cross_entropy_with_logits(d(fake.detach()), zeros))
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        g_loss = F.binary_cross_entropy_with_logits(d(g(torch.randn(BATCH, 100, device=DEVICE))), ones)
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()

    return step


def gemm_step_fn(provider="gemm"):
    """The products of one step at batch 100 (D sees 2 x 100 rows in its step), forward and backward,
    leaving out the ones no step needs (input gradients of first layers, D's weight gradients in G's step)."""
    shapes = [
        # D step: G forward (no grad), D forward on 200 rows, D backward (dW both layers, dX of layer 2)
        (100, 100, 1200), (100, 1200, 1200), (100, 1200, 784),
        (200, 784, 1200), (200, 240, 1200),
        (1200, 200, 240), (200, 1200, 240), (1200, 200, 784),
        # G step: G forward, D forward on 100 rows, D input gradients, G backward
        (100, 100, 1200), (100, 1200, 1200), (100, 1200, 784),
        (100, 784, 1200), (100, 240, 1200),
        (100, 1200, 240), (100, 1200, 784),
        (784, 100, 1200), (100, 784, 1200), (1200, 100, 1200), (100, 1200, 1200), (1200, 100, 100),
    ]
    operands = [(torch.randn(m, k, device=DEVICE), torch.randn(k, n, device=DEVICE)) for m, k, n in shapes]
    mm = onednn_mm if provider == "gemm-onednn" else torch.mm

    def step():
        for a, b in operands:
            mm(a, b)

    return step


def fastgan_step_fn(backend, data, compile=False):
    g, d = build_models(ModelConfig(), pixel_means=data.mean(0), backend=backend)
    trainer = Trainer(g.to(DEVICE), d.to(DEVICE), data, TrainConfig(batch_size=BATCH), compile=compile)
    return trainer.train_step


FUSED = fused_providers("fastgan")
PROVIDERS = ["eager", "compile", *GEMM_PROVIDERS, "fastgan-torch", *FUSED,
             *(pytest.param(p.values[0] + "+compile", marks=p.marks) for p in FUSED)]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_train_step(benchmark, sync, provider):
    torch.manual_seed(0)
    data = torch.rand(1000, 784, device=DEVICE)
    if provider in ("eager", "compile"):
        g, d = eager_models()
        if provider == "compile":
            g, d = torch.compile(g), torch.compile(d)
        step = eager_step_fn(g, d, data)
    elif provider.startswith("gemm"):
        step = gemm_step_fn(provider)
    else:
        backend, _, compile_ = provider.split("-", 1)[1].partition("+")
        step = fastgan_step_fn(backend, data, compile=bool(compile_))
    for _ in range(3):  # warm-up (and torch.compile's compilation)
        step()

    def timed():
        step()
        sync()

    benchmark.group = "train step, MNIST nets, batch 100"
    benchmark.extra_info.update(provider=provider, device=DEVICE, **peak_memory(timed))
    benchmark(timed)


def interleaved(rounds):
    """Median step time per provider over `rounds` rounds that each run every provider once; on one thread
    (OMP_NUM_THREADS=1) it is the process's CPU time, which other jobs on a shared machine barely move."""
    data = torch.rand(1000, 784, device=DEVICE)
    steps = {"eager": eager_step_fn(*eager_models(), data),
             "compile": eager_step_fn(*(torch.compile(m) for m in eager_models()), data),
             **{p: gemm_step_fn(p) for p in GEMM_PROVIDERS}}
    for p in FUSED:
        backend = p.values[0].split("-", 1)[1]
        if not any(mark.args[0] for mark in p.marks):  # its skipif condition is false: it runs here
            steps[p.values[0]] = fastgan_step_fn(backend, data)
            steps[p.values[0] + "+compile"] = fastgan_step_fn(backend, data, compile=True)
    one_thread = torch.get_num_threads() == 1 and DEVICE == "cpu"
    clock = time.process_time if one_thread else time.perf_counter
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    for step in steps.values():  # warm-up, compilation
        for _ in range(3):
            step()
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            sync()
            start = clock()
            step()
            sync()
            times[name].append(clock() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"train step, MNIST nets, batch {BATCH}, {DEVICE}, {torch.get_num_threads()} threads, "
          f"{'process CPU time' if one_thread else 'wall time'}, median of {rounds} interleaved rounds\n")
    floor = min(med[p] for p in GEMM_PROVIDERS)
    print("| provider | median | x eager | x fastest bare GEMMs |\n|---|---|---|---|")
    for name, t in med.items():
        print(f"| {name} | {t * 1e3:.1f} ms | {med['eager'] / t:.2f} | {t / floor:.2f} |")


if __name__ == "__main__":
    interleaved(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
