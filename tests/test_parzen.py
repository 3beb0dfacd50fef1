"""Parzen-window log-density on every backend against the float64 reference, and the paper's protocol.

Tolerances. float64 kernels agree with the reference to rounding (rtol 1e-10). A float32 result is
-d2_min / 2 sigma^2 + log(sum) + const; the expanded distance |x|^2 + |mu|^2 - 2 x.mu carries an absolute
error of a few float32 ulps of |x|^2 + |mu|^2 (after centring), which 1 / 2 sigma^2 multiplies, plus a few
ulps of the result itself. So: |err| <= 1e-4 + 4e-6 |ref| + 16 eps32 (|x|^2 + |mu|^2)_max / 2 sigma^2.
"""
import math

import pytest
import torch
from conftest import BACKEND_CASES

from fastgan import reference
from fastgan.paper.evaluate import DEFAULT_SIGMAS, parzen_log_likelihood
from fastgan.ops.parzen import parzen_log_density

EPS32 = torch.finfo(torch.float32).eps


def _allowed_error(x, centers, sigmas, ref, precision):
    if precision == "fp64":
        return 1e-9 + 1e-10 * ref.abs()
    shift = centers.double().mean(0)
    norms = ((x.double() - shift) ** 2).sum(1).max() + ((centers.double() - shift) ** 2).sum(1).max()
    return 1e-4 + 4e-6 * ref.abs() + 16 * EPS32 * norms / (2 * sigmas.double() ** 2)


def _check(x, centers, sigmas, device, backend, precision):
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    ref = reference.parzen_log_density(x.double(), centers.double(), sigmas)
    out = parzen_log_density(x.to(device), centers.to(device), sigmas, precision=precision, backend=backend)
    assert out.shape == ref.shape
    assert out.dtype == (torch.float64 if precision == "fp64" else torch.float32)
    out = out.double().cpu()
    assert torch.isfinite(out).all(), out
    err = (out - ref).abs()
    allowed = _allowed_error(x, centers, sigmas, ref, precision)
    assert (err <= allowed).all(), f"worst error {err.max().item():.3g} (allowed {allowed.min().item():.3g})"
    return out


def _small(backend):
    # The Triton interpreter is slow: small shapes only.
    return backend == "triton"


SHAPES = [(n, m, d, s) for n in (1, 7, 300) for m in (1, 7, 300) for d in (1, 3, 784) for s in (1, 10)]


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
@pytest.mark.parametrize("precision", ["fp32", "fp64"])
@pytest.mark.parametrize("n,m,d,s", SHAPES, ids=lambda v: str(v))
def test_matches_float64_reference(device, backend, precision, n, m, d, s):
    if _small(backend) and (n * m * d > 7 * 300 * 3):
        pytest.skip("large for the Triton interpreter")
    g = torch.Generator().manual_seed(n * 1000 + m * 10 + d)
    x, centers = torch.rand(n, d, generator=g), torch.rand(m, d, generator=g)
    sigmas = [0.2] if s == 1 else list(DEFAULT_SIGMAS)
    _check(x, centers, sigmas, device, backend, precision)


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
@pytest.mark.parametrize("precision", ["fp32", "fp64"])
def test_extreme_sigmas_duplicates_and_x_on_a_centre(device, backend, precision):
    """sigma 1e-3 .. 1e3: finite everywhere (tiny sigma must not underflow to -inf); duplicated centres;
    x equal to a centre (d^2 = 0 after clamping) and x duplicated."""
    g = torch.Generator().manual_seed(0)
    d = 20
    centers = torch.rand(37, d, generator=g)
    centers[5] = centers[3]  # duplicate centres
    x = torch.rand(9, d, generator=g)
    x[0] = centers[3]  # on a (duplicated) centre
    x[1] = centers[30]
    x[2] = x[4]  # duplicate points
    sigmas = [1e-3, 1e-2, 0.1, 1.0, 10.0, 1e3]
    out = _check(x, centers, sigmas, device, backend, precision)
    torch.testing.assert_close(out[2], out[4], rtol=1e-6, atol=1e-5)  # BLAS may round rows differently


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
def test_one_centre_and_equal_centres_give_the_gaussian(device, backend):
    """One centre, or M equal centres, is the Gaussian N(mu, sigma^2 I): closed form."""
    g = torch.Generator().manual_seed(1)
    d = 5
    mu = torch.rand(d, generator=g, dtype=torch.float64)
    x = torch.rand(6, d, generator=g, dtype=torch.float64)
    sigmas = torch.tensor([0.05, 0.3, 2.0], dtype=torch.float64)
    sq = ((x - mu) ** 2).sum(1, keepdim=True)
    gauss = -sq / (2 * sigmas**2) - d * torch.log(sigmas * math.sqrt(2 * math.pi))
    for centers in (mu[None], mu.expand(11, d).contiguous()):
        out = parzen_log_density(x.to(device), centers.to(device), sigmas, precision="fp64", backend=backend)
        torch.testing.assert_close(out.cpu(), gauss, atol=1e-9, rtol=1e-10)


def test_float32_within_001_nat_on_mnist_like_data():
    """The issue's accuracy bar: float32 within 0.01 nat of float64 at sigma = 0.1 on MNIST-like data
    (784 pixels in [0, 1], ~19% of them lit, nearby digits sharing strokes)."""
    g = torch.Generator().manual_seed(2)
    prototypes = (torch.rand(10, 784, generator=g) < 0.19).float()

    def digits(n):
        base = prototypes[torch.randint(0, 10, (n,), generator=g)]
        flips = torch.rand(n, 784, generator=g) < 0.05
        return (base.logical_xor(flips).float() * (0.7 + 0.3 * torch.rand(n, 784, generator=g))).clamp(0, 1)

    x, centers = digits(200), digits(2000)
    ref = reference.parzen_log_density(x.double(), centers.double(), torch.tensor([0.1], dtype=torch.float64))
    for backend in ("cpu", "torch"):
        out = parzen_log_density(x, centers, 0.1, backend=backend)
        assert (out.double() - ref).abs().max() < 0.01, backend


def test_float32_within_001_nat_on_real_mnist():
    """The same bar on the real digits shipped with fastgan.paper.data (test digits under the training digits)."""
    data = pytest.importorskip("fastgan.paper.data")
    splits = data.load_mnist()
    test, train = splits.test.images[:300], splits.train.images
    ref = reference.parzen_log_density(test.double(), train.double(), torch.tensor([0.1], dtype=torch.float64))
    out = parzen_log_density(test, train, 0.1)
    assert (out.double() - ref).abs().max() < 0.01


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
def test_gradient_is_the_score(device, backend):
    """gradcheck in float64 (the second blocked pass), and d log p / dx matches autograd of the reference."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(5, 4, generator=g, dtype=torch.float64).to(device).requires_grad_()
    centers = torch.rand(9, 4, generator=g, dtype=torch.float64).to(device)
    sigmas = [0.3, 1.0]
    assert torch.autograd.gradcheck(
        lambda t: parzen_log_density(t, centers, sigmas, precision="fp64", backend=backend), (x,))
    grad_out = torch.rand(5, 2, generator=g, dtype=torch.float64).to(device)
    (ours,) = torch.autograd.grad(parzen_log_density(x, centers, sigmas, precision="fp64", backend=backend), x,
                                  grad_out)
    ref_x = x.detach().clone().requires_grad_()
    (theirs,) = torch.autograd.grad(
        reference.parzen_log_density(ref_x, centers, torch.tensor(sigmas, dtype=torch.float64, device=device)),
        ref_x, grad_out)
    torch.testing.assert_close(ours, theirs)


def test_cpu_gradient_float32_on_larger_blocks():
    """More rows and centres than one tile (256 x 512), float32 against the float64 reference gradient."""
    g = torch.Generator().manual_seed(4)
    x = torch.rand(600, 30, generator=g).requires_grad_()
    centers = torch.rand(1100, 30, generator=g)
    (ours,) = torch.autograd.grad(parzen_log_density(x, centers, [0.5, 1.0], backend="cpu").sum(), x)
    x64 = x.detach().double().requires_grad_()
    (ref,) = torch.autograd.grad(
        reference.parzen_log_density(x64, centers.double(), torch.tensor([0.5, 1.0], dtype=torch.float64)).sum(), x64)
    torch.testing.assert_close(ours.double(), ref, atol=1e-4, rtol=1e-4)


def test_opcheck():
    """Schema, fake kernel and autograd registration (x with and without requires_grad), both custom ops."""
    x, centers = torch.rand(4, 3, dtype=torch.float64), torch.rand(6, 3, dtype=torch.float64)
    sigmas = torch.tensor([0.5, 1.0], dtype=torch.float64)
    for backend in ("cpu", "torch"):
        for inp in (x, x.clone().requires_grad_()):
            torch.library.opcheck(torch.ops.fastgan.parzen_logsumexp.default, (inp, centers, sigmas, "fp64", backend))
        lse = reference.parzen_logsumexp(x, centers, sigmas)
        torch.library.opcheck(torch.ops.fastgan.parzen_logsumexp_backward.default,
                              (torch.rand(4, 2, dtype=torch.float64), x, centers, sigmas, lse, "fp64", backend))


@pytest.mark.parametrize(
    "x,centers,sigmas,error,name",
    [
        (torch.rand(3, 4), torch.rand(5, 3), 0.1, ValueError, "features"),
        (torch.rand(3, 4), torch.rand(5, 4), 0.0, ValueError, "sigmas"),
        (torch.rand(3, 4), torch.rand(5, 4), [0.1, -1.0], ValueError, "sigmas"),
        (torch.rand(3, 4), torch.rand(5, 4), float("nan"), ValueError, "sigmas"),
        (torch.rand(3, 4), torch.rand(0, 4), 0.1, ValueError, "centers"),
        (torch.full((3, 4), float("nan")), torch.rand(5, 4), 0.1, ValueError, "x"),
        (torch.rand(3, 4), torch.full((5, 4), float("inf")), 0.1, ValueError, "centers"),
        (torch.rand(4), torch.rand(5, 4), 0.1, ValueError, "x"),
        (torch.ones(3, 4, dtype=torch.int64), torch.rand(5, 4), 0.1, TypeError, "x"),
        ([[0.0]], torch.rand(5, 4), 0.1, TypeError, "x"),
        (torch.rand(3, 4), torch.rand(5, 4, dtype=torch.float64), 0.1, TypeError, "centers"),
    ],
)
def test_bad_input_names_the_argument(x, centers, sigmas, error, name):
    with pytest.raises(error, match=name):
        parzen_log_density(x, centers, sigmas, backend="torch")


def test_bad_precision():
    with pytest.raises(ValueError, match="precision"):
        parzen_log_density(torch.rand(2, 3), torch.rand(2, 3), 0.1, precision="fp16", backend="torch")
    with pytest.raises(ValueError, match="tf32"):  # tensor cores only: refused on the CPU, not faked
        parzen_log_density(torch.rand(2, 3), torch.rand(2, 3), 0.1, precision="tf32", backend="torch")


def test_empty_x():
    out = parzen_log_density(torch.rand(0, 3), torch.rand(4, 3), [0.1, 1.0], backend="cpu")
    assert out.shape == (0, 2)


# --- the paper's protocol -----------------------------------------------------------------------------


def test_protocol_hand_computed_example():
    """1-D, samples {0, 2}, two sigmas. Validation point 1 sits between the samples: sigma = 1 wins
    (log N(1; 0, 1) = -0.5 - log sqrt(2 pi) beats sigma = 0.1's -50 - log(0.1 sqrt(2 pi))). Test points
    {0, 2} each sit on one sample: log(0.5 N(0; 0, 1) + 0.5 N(0; 2, 1)), equal, so SE = 0."""
    samples = torch.tensor([[0.0], [2.0]])
    valid = torch.tensor([[1.0]])
    test = torch.tensor([[0.0], [2.0], [1.0]])
    res = parzen_log_likelihood(samples, valid, test, sigmas=[0.1, 1.0], batch_size=2, progress=False,
                                precision="fp64", backend="torch")
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    assert res.sigma == 1.0
    assert res.valid_mean == pytest.approx([-50 - math.log(0.1) - half_log_2pi, -0.5 - half_log_2pi], abs=1e-9)
    on = math.log(0.5 + 0.5 * math.exp(-2)) - half_log_2pi  # test points 0 and 2
    mid = -0.5 - half_log_2pi  # test point 1
    lls = [on, on, mid]
    mean = sum(lls) / 3
    se = math.sqrt(sum((v - mean) ** 2 for v in lls) / 3) / math.sqrt(3)  # numpy std (ddof 0) / sqrt(n)
    assert res.mean == pytest.approx(mean, abs=1e-9)
    assert res.se == pytest.approx(se, abs=1e-9)
    assert res.test_mean[1] == res.mean and len(res.test_mean) == 2
    assert "\u00b1" in res.summary() and '"sigma": 1.0' in res.to_json()


def test_protocol_default_grid_and_batches_match_one_call():
    g = torch.Generator().manual_seed(5)
    samples, valid, test = (torch.rand(n, 1, 4, 4, generator=g) for n in (50, 20, 33))
    res = parzen_log_likelihood(samples, valid, test, batch_size=7, progress=False)
    assert res.sigmas == pytest.approx([10 ** (-1 + k / 9) for k in range(10)])  # numpy.logspace(-1, 0, 10)
    ll = parzen_log_density(test.reshape(33, -1), samples.reshape(50, -1), res.sigma, precision="fp64")[:, 0]
    assert res.mean == pytest.approx(ll.mean().item(), rel=1e-5)
    assert res.se == pytest.approx(ll.std(unbiased=False).item() / math.sqrt(33), rel=1e-4)
    assert res.n_samples == 50 and res.n_valid == 20 and res.n_test == 33


def test_protocol_bad_input():
    with pytest.raises(ValueError, match="valid"):
        parzen_log_likelihood(torch.rand(5, 4), torch.rand(3, 5), torch.rand(3, 4), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        parzen_log_likelihood(torch.rand(5, 4), torch.rand(3, 4), torch.rand(3, 4), batch_size=0, progress=False)
