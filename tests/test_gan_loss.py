"""The fused GAN log-loss on every backend against the float64 reference (fastgan/reference.py)."""
import pytest
import torch

import fastgan
from fastgan import _ext, backends, reference
from fastgan.ops import gan_loss as ops
from fastgan.ops._common import compiled

from conftest import BACKEND_CASES, tolerance

SIZES = [0, 1, 7, 100, 4097]  # 4097: one past a multiple of every vector width and block size
EXTREMES = torch.tensor([1e4, -1e4, 88.0, -88.0, 0.0, 20.0, -20.0], dtype=torch.float64)


def make_logits(n, seed, device, dtype):
    """Normal logits of scale 4 with the extreme values (+-1e4, +-88, 0, +-20) mixed in."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g, dtype=torch.float64) * 4
    k = min(n, len(EXTREMES))
    x[:k] = EXTREMES[torch.randperm(len(EXTREMES), generator=g)[:k]]
    return x.to(device=device, dtype=dtype)


def leaf(x):
    return x.detach().clone().requires_grad_(True)


def reference_grads(fn, *inputs):
    """Loss and input gradients of the reference in float64 via autograd."""
    xs = [leaf(x.double()) for x in inputs]
    loss = fn(*xs)
    grads = torch.autograd.grad(loss, xs, allow_unused=True) if loss.requires_grad else [None] * len(xs)
    return loss, [torch.zeros_like(x) if g is None else g for x, g in zip(xs, grads)]


def assert_close(actual, expected, dtype, backend):
    assert torch.isfinite(actual).all(), "NaN or inf in a result"
    torch.testing.assert_close(actual.double().cpu(), expected.double().cpu(), **tolerance(dtype, backend))


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n_real,n_fake", [(n, n) for n in SIZES] + [(100, 7), (0, 5)])
def test_discriminator_loss_matches_reference(device, backend, dtype, n_real, n_fake):
    real, fake = make_logits(n_real, 1, device, dtype), make_logits(n_fake, 2, device, dtype)
    r, f = leaf(real), leaf(fake)
    loss, stats = fastgan.discriminator_loss(r, f, backend=backend, return_stats=True)
    loss.backward()
    ref_loss, (ref_gr, ref_gf) = reference_grads(reference.discriminator_loss, real, fake)
    assert loss.dtype == dtype and loss.shape == ()
    assert_close(loss, ref_loss, dtype, backend)
    assert_close(r.grad, ref_gr, dtype, backend)
    assert_close(f.grad, ref_gf, dtype, backend)
    ref_stats = reference.d_stats(real.double(), fake.double())
    for got, want in zip(stats, ref_stats):
        torch.testing.assert_close(got.double().cpu(), want.double().cpu(), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("saturating", [False, True])
@pytest.mark.parametrize("n", SIZES)
def test_generator_loss_matches_reference(device, backend, dtype, saturating, n):
    fake = make_logits(n, 3, device, dtype)
    f = leaf(fake)
    loss, stats = fastgan.generator_loss(f, saturating=saturating, backend=backend, return_stats=True)
    loss.backward()
    ref_loss, (ref_g,) = reference_grads(lambda x: reference.generator_loss(x, saturating), fake)
    assert_close(loss, ref_loss, dtype, backend)
    assert_close(f.grad, ref_g, dtype, backend)
    torch.testing.assert_close(stats.d_fake.double().cpu(), reference.d_stats(fake[:0], fake)[1].double().cpu(),
                               atol=1e-6, rtol=1e-6)


def test_saturating_loss_is_log_one_minus_d():
    """The paper's forms: mean log(1 - D(G(z))) and -mean log D(G(z)), computed naively where they are finite."""
    fake = torch.randn(50, dtype=torch.float64)
    d = torch.sigmoid(fake)
    torch.testing.assert_close(fastgan.generator_loss(fake, saturating=True, backend="cpu"), torch.log(1 - d).mean())
    torch.testing.assert_close(fastgan.generator_loss(fake, backend="cpu"), -torch.log(d).mean())
    real = torch.randn(30, dtype=torch.float64)
    value = torch.log(torch.sigmoid(real)).mean() + torch.log(1 - d).mean()  # V(D, G), eq. 1
    torch.testing.assert_close(fastgan.discriminator_loss(real, fake, backend="cpu"), -value)


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
def test_non_contiguous_and_shaped_logits(device, backend):
    base = make_logits(400, 4, device, torch.float32)
    real = base.view(20, 20).t()  # non-contiguous [20, 20]
    fake = base[::3]  # strided
    r, f = leaf(real), leaf(fake)
    loss = fastgan.discriminator_loss(r, f, backend=backend)
    loss.backward()
    ref_loss, (ref_gr, ref_gf) = reference_grads(reference.discriminator_loss, real, fake)
    assert_close(loss, ref_loss, torch.float32, backend)
    assert r.grad.shape == real.shape
    assert_close(r.grad, ref_gr, torch.float32, backend)
    assert_close(f.grad, ref_gf, torch.float32, backend)


def cpu_has_avx512():
    return backends.why_not("cpu", "cpu") is None and _ext.load().has_avx512()


# The CPU kernel runs float32 on AVX-512 lanes where the CPU has them, else on AVX2 lanes: both loops on the
# same logits, with the extremes, inf and NaN scattered over lanes, vector groups and the scalar tail.
# 529 = one 512-logit AVX-512 group + one vector + a tail; 70000 = several 16k-logit chunks, so two threads.
@pytest.mark.skipif(backends.why_not("cpu", "cpu") is not None, reason="the C++ kernels are not built")
@pytest.mark.parametrize("allow_avx512", [
    pytest.param(True, id="avx512", marks=pytest.mark.skipif(not cpu_has_avx512(), reason="no AVX-512 on this CPU")),
    pytest.param(False, id="avx2"),
])
@pytest.mark.parametrize("n", [15, 16, 17, 529, 4097, 70_000])
@pytest.mark.parametrize("specials", [False, True], ids=["finite", "inf-nan"])
def test_cpu_float32_vector_loops_match_reference(allow_avx512, n, specials):
    g = torch.Generator().manual_seed(n)
    values = torch.cat([EXTREMES, EXTREMES.new_tensor([float("inf"), float("-inf"), float("nan")] if specials else [])])
    real, fake = (torch.randn(n, generator=g, dtype=torch.float64) * 4 for _ in range(2))
    for x in (real, fake):
        x[torch.randperm(n, generator=g)[:len(values)]] = values
    real, fake = real.float(), fake.float()
    loss, grad_real, grad_fake, stats = compiled("gan_logloss", "cpu")(real, fake, 1 / n, 1 / n, True,
                                                                        allow_avx512=allow_avx512)
    ref_loss, ref_grad_real, ref_grad_fake, ref_stats = reference.gan_logloss(real.double(), fake.double(), 1 / n,
                                                                              1 / n, True)
    close = dict(**tolerance(torch.float32, "cpu"), equal_nan=True)  # NaN logits give NaN loss, gradient, means
    torch.testing.assert_close(loss.double(), ref_loss, **close)
    torch.testing.assert_close(grad_real.double(), ref_grad_real, **close)
    torch.testing.assert_close(grad_fake.double(), ref_grad_fake, **close)
    torch.testing.assert_close(stats.double(), ref_stats.double(), atol=1e-6, rtol=1e-6, equal_nan=True)
    if specials:
        assert torch.isnan(loss) and stats[3] > 0


def reference_linear_d(h_real, h_fake, w, b):
    return reference.discriminator_loss(h_real @ w.t() + b, h_fake @ w.t() + b)


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n_real,n_fake,features", [(100, 100, 240), (7, 3, 5), (0, 4, 33), (1, 1, 1), (65, 40, 300)])
def test_linear_discriminator_loss_matches_reference(device, backend, dtype, n_real, n_fake, features):
    g = torch.Generator().manual_seed(5)
    h_real = torch.randn(n_real, features, generator=g, dtype=torch.float64).to(device, dtype)
    h_fake = torch.randn(n_fake, features, generator=g, dtype=torch.float64).to(device, dtype)
    w = (torch.randn(1, features, generator=g, dtype=torch.float64) / features ** 0.5).to(device, dtype)
    b = torch.randn(1, generator=g, dtype=torch.float64).to(device, dtype)
    leaves = [leaf(t) for t in (h_real, h_fake, w, b)]
    loss, stats = fastgan.linear_discriminator_loss(*leaves, backend=backend, return_stats=True)
    loss.backward()
    ref_loss, ref_grads = reference_grads(reference_linear_d, h_real, h_fake, w, b)
    assert_close(loss, ref_loss, dtype, backend)
    for got, want in zip(leaves, ref_grads):
        assert_close(got.grad, want, dtype, backend)
    logits_real, logits_fake = (h_real @ w.t() + b).double(), (h_fake @ w.t() + b).double()
    want_accuracy = reference.d_stats(logits_real, logits_fake)[2]
    torch.testing.assert_close(stats.accuracy.double().cpu(), want_accuracy.double().cpu())


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
@pytest.mark.parametrize("saturating", [False, True])
def test_linear_generator_loss_matches_reference(device, backend, saturating):
    g = torch.Generator().manual_seed(6)
    h = torch.randn(37, 50, generator=g, dtype=torch.float64).to(device)
    w = torch.randn(50, generator=g, dtype=torch.float64).to(device) / 7
    b = torch.randn(1, generator=g, dtype=torch.float64).to(device)
    leaves = [leaf(t) for t in (h, w, b)]
    loss = fastgan.linear_generator_loss(*leaves, saturating=saturating, backend=backend)
    loss.backward()
    ref_loss, ref_grads = reference_grads(lambda h, w, b: reference.generator_loss(h @ w + b, saturating), h, w, b)
    assert_close(loss, ref_loss, torch.float64, backend)
    for got, want in zip(leaves, ref_grads):
        assert_close(got.grad, want, torch.float64, backend)


def test_linear_loss_without_bias_and_no_grad():
    h_real, h_fake, w = torch.randn(5, 8), torch.randn(6, 8), torch.randn(8)
    with torch.no_grad():
        loss = fastgan.linear_discriminator_loss(h_real, h_fake, w, None, backend="cpu")
    torch.testing.assert_close(loss, reference.discriminator_loss(h_real @ w, h_fake @ w))


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_gradcheck(backend):
    real = torch.randn(9, dtype=torch.float64, requires_grad=True)
    fake = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda r, f: fastgan.discriminator_loss(r, f, backend=backend), (real, fake))
    assert torch.autograd.gradcheck(lambda f: fastgan.generator_loss(f, saturating=True, backend=backend), (fake,))
    h_real = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    h_fake = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda *a: fastgan.linear_discriminator_loss(*a, backend=backend), (h_real, h_fake, w, b))


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_opcheck(backend):
    for requires_grad in (False, True):
        real = torch.randn(11, requires_grad=requires_grad)
        fake = torch.randn(6, requires_grad=requires_grad)
        torch.library.opcheck(ops.gan_logloss.op, (real, fake, 1 / 11, 1 / 6, requires_grad, backend))
        h_real = torch.randn(5, 4, requires_grad=requires_grad)
        h_fake = torch.randn(3, 4, requires_grad=requires_grad)
        w = torch.randn(4, requires_grad=requires_grad)
        b = torch.randn(1, requires_grad=requires_grad)
        torch.library.opcheck(ops.gan_logloss_linear.op, (h_real, h_fake, w, b, 0.2, 1 / 3, requires_grad, backend))


def test_torch_compile_fullgraph():
    def step(real, fake):
        return fastgan.discriminator_loss(real, fake, backend="cpu") + fastgan.generator_loss(fake, backend="cpu")

    real = torch.randn(64, requires_grad=True)
    fake = torch.randn(64, requires_grad=True)
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    loss = compiled(real, fake)
    loss.backward()
    ref_loss, (ref_gr, ref_gf) = reference_grads(
        lambda r, f: reference.discriminator_loss(r, f) + reference.generator_loss(f), real, fake)
    torch.testing.assert_close(loss.double(), ref_loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(real.grad.double(), ref_gr, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(fake.grad.double(), ref_gf, atol=1e-6, rtol=1e-5)


def test_gan_loss_module():
    module = fastgan.nn.GANLoss(saturating=True, backend="cpu")
    real, fake = torch.randn(10), torch.randn(12)
    torch.testing.assert_close(module(real, fake), reference.discriminator_loss(real, fake))
    torch.testing.assert_close(module.generator(fake), reference.generator_loss(fake, saturating=True))


@pytest.mark.parametrize("call,error,match", [
    (lambda: fastgan.discriminator_loss(torch.ones(3, dtype=torch.long), torch.ones(3)), TypeError, "real_logits"),
    (lambda: fastgan.discriminator_loss(torch.ones(3), [1.0]), TypeError, "fake_logits"),
    (lambda: fastgan.discriminator_loss(torch.ones(3), torch.ones(3, dtype=torch.float64)), TypeError, "fake_logits"),
    (lambda: fastgan.discriminator_loss(torch.ones(3), torch.ones(3, device="meta")), ValueError, "fake_logits"),
    (lambda: fastgan.discriminator_loss(torch.tensor([0.0, float("nan")]), torch.ones(3), backend="cpu"),
     ValueError, "NaN"),
    (lambda: fastgan.generator_loss(torch.tensor([float("nan")]), backend="torch"), ValueError, "fake_logits"),
    (lambda: fastgan.linear_discriminator_loss(torch.ones(2, 3), torch.ones(2, 3), torch.ones(4)), ValueError,
     "weight"),
    (lambda: fastgan.linear_discriminator_loss(torch.ones(2, 3), torch.ones(2, 4), torch.ones(3)), ValueError,
     "h_fake"),
    (lambda: fastgan.linear_generator_loss(torch.ones(3), torch.ones(3)), ValueError, "h_fake"),
    (lambda: fastgan.linear_generator_loss(torch.ones(2, 3), torch.ones(3), torch.ones(2)), ValueError, "bias"),
    (lambda: fastgan.discriminator_loss(torch.ones(3), torch.ones(3), backend="gpu"), ValueError, "backend"),
    (lambda: fastgan.discriminator_loss(torch.ones(3), torch.ones(3), backend="cuda"), fastgan.BackendUnavailable,
     "cuda"),
    (lambda: fastgan.discriminator_loss(torch.ones(3, dtype=torch.half), torch.ones(3, dtype=torch.half),
                                        backend="cpu"), TypeError, "float32 or float64"),
])
def test_bad_input_raises_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_nan_check_can_be_disabled():
    loss = fastgan.discriminator_loss(torch.tensor([float("nan")]), torch.ones(2), backend="cpu", check_finite=False)
    assert torch.isnan(loss)
