"""GAN nets the way other codebases write them, as written and with fastgan's modules dropped in: one training
step (D on real + fake, then G) at batch 64, Adam(2e-4, 0.5, 0.999).

- mlp: G 100 -> 128 -> 256 -> 512 -> 1024 -> 784 (BatchNorm1d(eps 0.8) + LeakyReLU(0.2) after all but the first
  and last layers, tanh out), D 784 -> 512 -> 256 -> 1 with LeakyReLU(0.2): the MLP GAN of the common PyTorch
  GAN collections;
- dcgan: G z -> 128 x 7 x 7 (Linear) -> ConvTranspose 64 x 14 x 14 -> 1 x 28 x 28 with BatchNorm and ReLU, D
  Conv 64 -> Conv 128 (stride 2, LeakyReLU) -> Linear -> 1 logit, on 28 x 28 images.

"as written" uses nn.Linear and BCELoss on sigmoid outputs; "fastgan" swaps every nn.Linear for
fastgan.nn.Linear and the sigmoid + BCELoss for fastgan.nn.GANLoss on logits. Nothing else changes.

    pytest benchmarks/bench_dropin.py --benchmark-only
    python benchmarks/bench_dropin.py [rounds]   # interleaved medians and the ratio
"""
import statistics
import sys
import time

import pytest
import torch
from torch import nn

import fastgan
from providers import DEVICE

BATCH, NOISE = 64, 100


def _linear(fused):
    return fastgan.nn.Linear if fused else nn.Linear


def mlp_gan(fused):
    linear = _linear(fused)

    def block(n_in, n_out, normalize=True):
        return [linear(n_in, n_out), *([nn.BatchNorm1d(n_out, 0.8)] if normalize else []), nn.LeakyReLU(0.2)]

    g = nn.Sequential(*block(NOISE, 128, normalize=False), *block(128, 256), *block(256, 512), *block(512, 1024),
                      linear(1024, 784), nn.Tanh())
    d = nn.Sequential(linear(784, 512), nn.LeakyReLU(0.2), linear(512, 256), nn.LeakyReLU(0.2), linear(256, 1),
                      *([] if fused else [nn.Sigmoid()]))
    return g, d


def dcgan(fused):
    linear = _linear(fused)
    g = nn.Sequential(linear(NOISE, 128 * 7 * 7), nn.Unflatten(1, (128, 7, 7)), nn.BatchNorm2d(128), nn.ReLU(),
                      nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
                      nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Tanh(), nn.Flatten())
    d = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 64, 4, 2, 1), nn.LeakyReLU(0.2),
                      nn.Conv2d(64, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2), nn.Flatten(),
                      linear(128 * 7 * 7, 1), *([] if fused else [nn.Sigmoid()]))
    return g, d


NETS = {"mlp": mlp_gan, "dcgan": dcgan}


def step_fn(net, fused):
    """One D step and one G step, as the GAN collections write them; fastgan's GANLoss takes D's logits."""
    torch.manual_seed(0)
    g, d = (m.to(DEVICE) for m in NETS[net](fused))
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(BATCH, 784, device=DEVICE) * 2 - 1
    ones, zeros = torch.ones(BATCH, 1, device=DEVICE), torch.zeros(BATCH, 1, device=DEVICE)
    bce, gan_loss = nn.BCELoss(), fastgan.nn.GANLoss()

    def step():
        fake = g(torch.randn(BATCH, NOISE, device=DEVICE))
        opt_d.zero_grad()
        if fused:
            d_loss = gan_loss.discriminator(d(real), d(fake.detach()))
        else:
            d_loss = (bce(d(real), ones) + bce(d(fake.detach()), zeros)) / 2
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = gan_loss.generator(d(fake)) if fused else bce(d(fake), ones)
        g_loss.backward()
        opt_g.step()

    return step


@pytest.mark.parametrize("provider", ["as-written", "fastgan"])
@pytest.mark.parametrize("net", list(NETS))
def test_dropin_step(benchmark, sync, net, provider):
    step = step_fn(net, provider == "fastgan")
    for _ in range(3):  # warm-up; fastgan.nn.Linear measures its route on first use
        step()

    def timed():
        step()
        sync()

    benchmark.group = f"drop-in {net} GAN step, batch {BATCH}"
    benchmark.extra_info.update(provider=provider, device=DEVICE)
    benchmark(timed)


def interleaved(rounds):
    steps = {(net, p): step_fn(net, p == "fastgan") for net in NETS for p in ("as-written", "fastgan")}
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    for step in steps.values():
        for _ in range(3):
            step()
    times = {key: [] for key in steps}
    for _ in range(rounds):
        for key, step in steps.items():
            sync()
            start = time.perf_counter()
            for _ in range(5):
                step()
            sync()
            times[key].append((time.perf_counter() - start) / 5)
    print(f"drop-in GAN step, batch {BATCH}, {DEVICE}, {torch.get_num_threads()} threads, wall time, median of "
          f"{rounds} interleaved rounds of 5 steps; CPU GEMM route: {fastgan.backends.cpu_gemm()}\n")
    print("| net | as written | fastgan dropped in | speed-up |\n|---|---|---|---|")
    for net in NETS:
        plain, fused = (statistics.median(times[(net, p)]) for p in ("as-written", "fastgan"))
        print(f"| {net} | {plain * 1e3:.2f} ms | {fused * 1e3:.2f} ms | {plain / fused:.2f}x |")


if __name__ == "__main__":
    interleaved(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
