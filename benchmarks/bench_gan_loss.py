"""Discriminator log-loss forward + backward: eager BCEWithLogits, eager softplus (fastgan.reference),
torch.compile of the reference, and the fused kernel per backend. Sizes: the paper's batch of 100
logits per side, and 1M per side.

    pytest benchmarks/bench_gan_loss.py --benchmark-only --benchmark-group-by=param:n
"""
import pytest
import torch
import torch.nn.functional as F

import fastgan
from fastgan import reference
from providers import DEVICE, compiled, fused_providers, peak_mb

SIZES = [100, 1_000_000]


def eager_bce(real, fake):
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


_compiled_reference = compiled(reference.discriminator_loss)


def make_loss_fn(provider):
    if provider == "eager-bce":
        return eager_bce
    if provider == "eager-softplus":
        return reference.discriminator_loss
    if provider == "compile":
        return _compiled_reference
    backend = provider.split("-", 1)[1]
    return lambda real, fake: fastgan.discriminator_loss(real, fake, backend=backend)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("provider", ["eager-bce", "eager-softplus", "compile", *fused_providers()])
def test_discriminator_loss_fwd_bwd(benchmark, sync, provider, n):
    g = torch.Generator().manual_seed(0)
    real = torch.randn(n, generator=g).to(DEVICE).requires_grad_(True)
    fake = torch.randn(n, generator=g).to(DEVICE).requires_grad_(True)
    loss_fn = make_loss_fn(provider)
    expected = reference.discriminator_loss(real.detach().double(), fake.detach().double())
    torch.testing.assert_close(loss_fn(real, fake).detach().double(), expected, atol=1e-5, rtol=1e-5)

    def step():
        real.grad = fake.grad = None
        loss_fn(real, fake).backward()
        sync()

    benchmark.group = f"gan_loss n={n}"
    benchmark.extra_info.update(provider=provider, n=n, device=DEVICE, peak_mb=peak_mb(step))
    benchmark(step)
