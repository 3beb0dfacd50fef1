"""Shared test setup: the Triton interpreter on GPU-less machines, the backends to test, tolerances."""
import os

import torch

if not torch.cuda.is_available():
    # Triton reads this when a kernel is decorated, so it must be set before fastgan.kernels is imported.
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from fastgan import backends  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# (device, backend) pairs that can run here; the rest are reported as skipped with the reason.
BACKEND_CASES = [
    pytest.param(device, b, id=f"{device}-{b}",
                 marks=pytest.mark.skipif(backends.why_not(b, device) is not None,
                                          reason=f"{b} on {device}: {backends.why_not(b, device)}"))
    for device in DEVICES
    for b in backends.BACKENDS
    if not (device == "cpu" and b == "cuda")
]

# Tolerances against the float64 reference, per input dtype: float32 kernels accumulate in float32/float64,
# so errors sit at a few ulps of the result (Liger uses 1e-5/5e-4 for fp32 losses); float64 kernels agree
# to rounding. Triton receives Python floats (the loss weights) as float32 scalars, hence its float64 row.
TOLERANCES = {
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.float64: dict(atol=1e-12, rtol=1e-10),
}
TRITON_FLOAT64 = dict(atol=1e-7, rtol=1e-6)


def tolerance(dtype, backend):
    return TRITON_FLOAT64 if (backend == "triton" and dtype == torch.float64) else TOLERANCES[dtype]


@pytest.fixture
def one_thread():
    """torch on one thread for the test: small nets run faster so, and far faster on a busy machine (a 196-pixel
    conditional GAN step: 5.6 ms on one thread against 77 ms on two, 2 cores shared with other jobs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def d_loss(d, real, fake, **kwargs):
    """-V(D, G) and DStats as the trainer computes them, on D's own backend."""
    from fastgan.nn import GANLoss
    from fastgan.paper.train import discriminator_loss

    return discriminator_loss(GANLoss(backend=d.backend, return_stats=True), d, real, fake, **kwargs)


def g_loss(d, fake, saturating=False, **kwargs):
    from fastgan.nn import GANLoss
    from fastgan.paper.train import generator_loss

    return generator_loss(GANLoss(saturating=saturating, backend=d.backend, return_stats=True), d, fake, **kwargs)[0]
