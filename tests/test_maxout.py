"""Fused maxout + dropout on every backend against the float64 reference (fastgan/reference.py), with the
dropout mask taken from the same Philox stream (the reference computes it in pure torch)."""

import pytest
import torch

import fastgan
from fastgan import _ext, backends, reference
from fastgan.nn import Maxout, MaxoutLinear
from fastgan.ops import maxout as ops

from conftest import BACKEND_CASES, tolerance

SEED, OFFSET = 2**40 + 12345, 2**32 - 100  # both words of the key, and a counter crossing 2^32
# The Triton interpreter runs a kernel program in numpy in ~0.1 s: it gets the shapes with R*U <= 2000.
TRITON_MAX_UNITS = 2000


def skip_slow_triton(backend, units):
    if backend == "triton" and units > TRITON_MAX_UNITS and not torch.cuda.is_available():
        pytest.skip("Triton interpreter: small shapes only")


def leaf(x):
    return x.detach().clone().requires_grad_(True)


def assert_close(actual, expected, dtype, backend):
    # The elementwise op only selects z's elements and scales them by 1/(1-p): one rounding, so conftest's
    # float32 (1e-5) and float64 (1e-10) tolerances hold with margin; Triton gets its scale as a float32
    # scalar, hence conftest's Triton float64 row (1e-6).
    torch.testing.assert_close(actual.double().cpu(), expected.double().cpu(), equal_nan=True,
                               **tolerance(dtype, backend))


def reference_forward_backward(z, grad_y, pieces, p):
    """y, argmax and grad_z of the float64 reference (p = 0 draws nothing, as the public op)."""
    y, argmax = reference.maxout_dropout(z.double().cpu(), pieces, p, SEED, OFFSET)
    grad_z = reference.maxout_dropout_backward(grad_y.double().cpu(), argmax, pieces, p, SEED, OFFSET)
    return y, argmax, grad_z


def check_maxout_dropout(z, pieces, p, backend, dtype):
    """Forward values and backward (which checks the argmax: the gradient lands on it) vs the reference."""
    zl = leaf(z)
    y = fastgan.maxout_dropout(zl, pieces, p, seed=SEED, offset=OFFSET, backend=backend)
    grad_y = torch.randn_like(y)
    y.backward(grad_y)
    ref_y, _, ref_grad = reference_forward_backward(z.reshape(-1, z.shape[-1]),
                                                    grad_y.reshape(-1, y.shape[-1]), pieces, p)
    assert y.shape == (*z.shape[:-1], z.shape[-1] // pieces) and y.dtype == dtype
    assert_close(y.reshape(ref_y.shape), ref_y, dtype, backend)
    assert_close(zl.grad.reshape(ref_grad.shape), ref_grad, dtype, backend)


# --- values and gradients against the reference -------------------------------------------------------------


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("units", [1, 7, 240, 257])
# 17 and 32: beyond the 16 pieces of the CPU's AVX-512 rows and of the CUDA layer kernel's templated K
@pytest.mark.parametrize("pieces", [1, 2, 5, 16, 17, 32])
@pytest.mark.parametrize("batch", [0, 1, 3, 100])
def test_maxout_dropout_matches_reference(device, backend, dtype, units, pieces, batch):
    skip_slow_triton(backend, batch * units)
    g = torch.Generator().manual_seed(units * 100 + pieces)
    z = torch.randn(batch, units * pieces, generator=g, dtype=dtype).to(device)
    for p in (0.0, 0.5):
        check_maxout_dropout(z, pieces, p, backend, dtype)


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ties_send_the_gradient_to_the_first_maximum(device, backend, dtype):
    # pieces drawn from {-1, 0, 1}: most units have ties; the reference picks the first maximal piece.
    # 37 units: two of the CPU's 16-unit AVX-512 groups (float32) and a tail.
    g = torch.Generator().manual_seed(0)
    z = torch.randint(-1, 2, (9, 37 * 5), generator=g).to(dtype).to(device)
    zl = leaf(z)
    fastgan.maxout_dropout(zl, 5, 0.3, seed=SEED, offset=OFFSET, backend=backend).sum().backward()
    _, _, ref_grad = reference_forward_backward(z, torch.ones(9, 37, dtype=torch.float64), 5, 0.3)
    nonzero = (zl.grad.reshape(9, 37, 5) != 0).sum(-1)
    assert (nonzero <= 1).all(), "a unit's gradient went to more than one piece"
    assert_close(zl.grad, ref_grad.to(dtype), dtype, backend)


def inf_nan_units(dtype):
    """10 units of 3 pieces with inf, -inf, NaN, ties and signed zeros in every position."""
    inf, nan = float("inf"), float("nan")
    return torch.tensor([
        [inf, 1.0, 2.0], [1.0, inf, inf], [-inf, -inf, -inf], [nan, 5.0, 1.0], [1.0, nan, 7.0], [1.0, 7.0, nan],
        [nan, nan, inf], [-inf, 3.0, nan], [2.0, 2.0, 2.0], [-0.0, 0.0, -1.0],
    ], dtype=dtype)


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inf_and_nan_as_the_reference(device, backend, dtype):
    units = inf_nan_units(dtype)
    # 7 rows of 50 units, a different mask per row; each special value lands in every lane of the CPU's
    # 16-unit AVX-512 groups (and in their tail of 2)
    z = units.repeat(7 * 5, 1).reshape(7, -1).to(device)
    for p in (0.0, 0.4):
        check_maxout_dropout(z, 3, p, backend, dtype)


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
def test_non_contiguous_and_leading_dims(device, backend):
    base = torch.randn(4, 3, 2 * 21, dtype=torch.float64, device=device)
    z = base[..., ::2]  # [4, 3, 21], stride 2 in the last dim
    assert not z.is_contiguous()
    check_maxout_dropout(z, 3, 0.5, backend, torch.float64)
    check_maxout_dropout(base.transpose(0, 1), 7, 0.5, backend, torch.float64)


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
# (20, 130, 9, 3): the CPU backward's dense GEMMs at p = 0 in float32 (1/3 of grad_z nonzero) and its sparse
# products in float64; (400, 784, 20, 5): x spans more than one of the sparse products' 1 MB row blocks.
@pytest.mark.parametrize("batch,features,units,pieces", [(0, 5, 3, 2), (1, 1, 1, 1), (37, 50, 7, 5),
                                                         (100, 784, 240, 5), (3, 33, 257, 16), (20, 130, 9, 3),
                                                         (400, 784, 20, 5)])
def test_maxout_linear_matches_reference(device, backend, dtype, batch, features, units, pieces):
    skip_slow_triton(backend, batch * units)
    g = torch.Generator().manual_seed(features)
    x = torch.randn(batch, features, generator=g, dtype=dtype).to(device)
    w = (torch.randn(units * pieces, features, generator=g, dtype=dtype) / features**0.5).to(device)
    b = torch.randn(units * pieces, generator=g, dtype=dtype).to(device)
    for p in (0.0, 0.5):
        xl, wl, bl = leaf(x), leaf(w), leaf(b)
        y, argmax = ops.maxout_linear_forward(xl, wl, bl, pieces, p, SEED, OFFSET, backend)
        grad_y = torch.randn_like(y)
        y.backward(grad_y)
        x64, w64, b64 = x.double().cpu(), w.double().cpu(), b.double().cpu()
        ref_y, ref_argmax = reference.maxout_linear(x64, w64, b64, pieces, p, SEED, OFFSET)
        # float32 GEMMs sum 784 products in a different order than float64: near-ties may pick another piece,
        # so the backward is checked with the kernel's own argmax, and the argmax itself only in float64.
        if dtype == torch.float64:
            assert torch.equal(argmax.cpu(), ref_argmax)
        grad_z = reference.maxout_dropout_backward(grad_y.double().cpu(), argmax.cpu(), pieces, p, SEED, OFFSET)
        # float32: the GEMM's rounding over <= 784 products of O(1) terms stays well under 1e-4
        tol = tolerance(dtype, backend) if dtype == torch.float64 else dict(atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(y.double().cpu(), ref_y, **tol)
        torch.testing.assert_close(xl.grad.double().cpu(), grad_z @ w64, **tol)
        torch.testing.assert_close(wl.grad.double().cpu(), grad_z.T @ x64, **tol)
        torch.testing.assert_close(bl.grad.double().cpu(), grad_z.sum(0), **tol)


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
def test_maxout_linear_without_bias_and_input_grad(device, backend):
    x = torch.randn(2, 5, 6, dtype=torch.float64, device=device)  # leading dims; x needs no gradient
    w = leaf(torch.randn(12, 6, dtype=torch.float64, device=device))
    y = fastgan.maxout_linear(x, w, None, 4, 0.5, seed=SEED, backend=backend)
    assert y.shape == (2, 5, 3)
    y.sum().backward()
    ref_y, _ = reference.maxout_linear(x.reshape(10, 6).cpu(), w.detach().cpu(), torch.zeros(12, dtype=torch.float64),
                                       4, 0.5, SEED, 0)
    assert_close(y.reshape(10, 3), ref_y, torch.float64, backend)
    assert w.grad is not None and x.grad is None


# --- autograd machinery -------------------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
def test_gradcheck(device, backend):
    z = torch.randn(3, 7 * 5, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: fastgan.maxout_dropout(z, 5, 0.3, seed=SEED, backend=backend), (z,))
    x = torch.randn(3, 4, dtype=torch.float64, device=device, requires_grad=True)
    w = torch.randn(6 * 3, 4, dtype=torch.float64, device=device, requires_grad=True)
    b = torch.randn(6 * 3, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: fastgan.maxout_linear(x, w, b, 3, 0.3, seed=SEED, backend=backend), (x, w, b))


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
@pytest.mark.parametrize("p", [0.0, 0.5])
def test_opcheck(device, backend, p):
    z = torch.randn(5, 4 * 3, device=device, requires_grad=True)
    y, argmax = ops.maxout_dropout_forward(z, 3, p, SEED, OFFSET, backend)
    x = torch.randn(5, 6, device=device, requires_grad=True)
    w = torch.randn(4 * 3, 6, device=device, requires_grad=True)
    b = torch.randn(4 * 3, device=device, requires_grad=True)
    grad_y = torch.randn_like(y)
    cases = [
        (ops.maxout_dropout_forward, (z, 3, p, SEED, OFFSET, backend)),
        (ops.maxout_dropout_forward, (z.detach(), 3, p, SEED, OFFSET, backend)),
        (ops.maxout_dropout_backward, (grad_y, argmax, 3, p, SEED, OFFSET, backend)),
        (ops.maxout_linear_forward, (x, w, b, 3, p, SEED, OFFSET, backend)),
        (ops.maxout_linear_backward, (grad_y, argmax, x.detach(), w.detach(), 3, p, SEED, OFFSET,
                                      [True, True, False], backend)),
    ]
    for op, args in cases:
        torch.library.opcheck(op.op, args)


@pytest.mark.parametrize("device,backend", [c for c in BACKEND_CASES if c.values[1] != "triton"])
def test_torch_compile(device, backend):
    x = torch.randn(6, 10, device=device, requires_grad=True)
    layer = MaxoutLinear(10, 4, 3, p=0.5, backend=backend).to(device)
    compiled = torch.compile(lambda x: fastgan.maxout_dropout(layer(x), 2, 0.5, seed=SEED, backend=backend))
    compiled(x).sum().backward()
    eager = torch.compile(lambda z: fastgan.maxout_dropout(z, 3, 0.25, seed=SEED, backend=backend), fullgraph=True)
    z = torch.randn(4, 9, device=device)
    torch.testing.assert_close(eager(z), fastgan.maxout_dropout(z, 3, 0.25, seed=SEED, backend=backend))


# --- dropout: one stream everywhere, right statistics ---------------------------------------------------------


def available_backends(device):
    return [b for b in ("cpu", "triton", "torch", "cuda") if fastgan.backends.why_not(b, device) is None]


def test_same_seed_same_mask_on_every_backend():
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    z = torch.ones(37, 3 * 41)  # every max is 1: y is the mask times 1/(1-p)
    masks = {}
    for device in devices:
        for backend in available_backends(device):
            y = fastgan.maxout_dropout(z.to(device), 3, 0.5, seed=SEED, offset=OFFSET, backend=backend)
            masks[f"{device}-{backend}"] = (y != 0).cpu()
    masks["reference"] = reference.dropout_keep(SEED, (37, 41), 0.5, OFFSET)
    first = next(iter(masks.values()))
    assert len(masks) >= 3 and all(torch.equal(m, first) for m in masks.values()), list(masks)


@pytest.mark.skipif("cpu" not in available_backends("cpu"), reason="the C++ extension is unavailable")
@pytest.mark.parametrize("p", [0.2, 0.5])
def test_keep_rate_and_independence(p):
    """10^6 draws: keep rate within 4 standard errors of 1 - p; neighbours and consecutive calls uncorrelated."""
    rows, units = 1000, 1000
    z = torch.ones(rows, units)
    torch.manual_seed(0)
    a = fastgan.maxout_dropout(z, 1, p, backend="cpu") != 0
    b = fastgan.maxout_dropout(z, 1, p, backend="cpu") != 0  # next call: a fresh seed
    c = fastgan.maxout_dropout(z, 1, p, seed=SEED, offset=rows * units, backend="cpu") != 0
    d = fastgan.maxout_dropout(z, 1, p, seed=SEED, offset=0, backend="cpu") != 0
    n, q = a.numel(), 1 - p
    se = (q * p / n) ** 0.5
    for mask in (a, b, c, d):
        assert abs(mask.float().mean().item() - q) < 4 * se
    se_corr = 1 / n**0.5  # the standard error of a correlation estimate near 0

    def corr(u, v):
        u, v = u.flatten().double(), v.flatten().double()
        return torch.corrcoef(torch.stack([u, v]))[0, 1].item()

    assert abs(corr(a[:, 1:], a[:, :-1])) < 4 * se_corr  # neighbouring units
    assert abs(corr(a[1:], a[:-1])) < 4 * se_corr  # neighbouring rows
    assert abs(corr(a, b)) < 4 * se_corr  # consecutive calls
    assert abs(corr(c, d)) < 4 * se_corr  # different offsets under one seed


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
def test_manual_seed_repeats_and_p0_draws_nothing(device, backend):
    z = torch.randn(8, 30, device=device)
    torch.manual_seed(3)
    y1 = fastgan.maxout_dropout(z, 5, 0.5, backend=backend)
    torch.manual_seed(3)
    y2 = fastgan.maxout_dropout(z, 5, 0.5, backend=backend)
    assert torch.equal(y1, y2)
    plain = z.reshape(8, 6, 5).amax(-1)
    state = torch.get_rng_state()
    assert torch.equal(fastgan.maxout_dropout(z, 5, 0.0, backend=backend), plain)
    assert torch.equal(fastgan.maxout_dropout(z, 5, 0.5, training=False, backend=backend), plain)
    assert torch.equal(torch.get_rng_state(), state), "p=0 / training=False drew from the generator"


# --- bad input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call,error,name", [
    (lambda z, w: fastgan.maxout_dropout(z[:, :10], 3), ValueError, "pieces"),
    (lambda z, w: fastgan.maxout_dropout(z, 0), ValueError, "pieces"),
    (lambda z, w: fastgan.maxout_dropout(z, 200), ValueError, "pieces"),
    (lambda z, w: fastgan.maxout_dropout(z, 2.0), TypeError, "pieces"),
    (lambda z, w: fastgan.maxout_dropout(z, 3, p=1.0), ValueError, "p "),
    (lambda z, w: fastgan.maxout_dropout(z, 3, p=-0.1), ValueError, "p "),
    (lambda z, w: fastgan.maxout_dropout(z, 3, 0.5, seed=-1), ValueError, "seed"),
    (lambda z, w: fastgan.maxout_dropout(z, 3, 0.5, offset=-1), ValueError, "offset"),
    (lambda z, w: fastgan.maxout_dropout(z.long(), 3), TypeError, "z"),
    (lambda z, w: fastgan.maxout_dropout(z.numpy(), 3), TypeError, "z"),
    (lambda z, w: fastgan.maxout_linear(z, w[:10], None, 3), ValueError, "weight"),
    (lambda z, w: fastgan.maxout_linear(z[:, :5], w, None, 3), ValueError, "x"),
    (lambda z, w: fastgan.maxout_linear(z, w, torch.zeros(5), 3), ValueError, "bias"),
    (lambda z, w: fastgan.maxout_linear(z, w.double(), None, 3), TypeError, "weight"),
    (lambda z, w: fastgan.maxout_dropout(z, 3, backend="gpu"), ValueError, "backend"),
])
def test_bad_input_names_the_argument(call, error, name):
    z, w = torch.randn(4, 12), torch.randn(12, 12)
    with pytest.raises(error, match=name):
        call(z, w)


@pytest.mark.parametrize("bad", [3, -1])
@pytest.mark.parametrize("op", ["maxout_dropout_backward", "maxout_linear_backward"])
def test_backward_ops_refuse_an_argmax_out_of_range(op, bad):
    # the CPU kernels index grad_z and their row buckets with the argmax: a bad one must raise, not write
    grad_y, argmax = torch.randn(4, 5), torch.zeros(4, 5, dtype=torch.int8)
    argmax[2, 3] = bad
    if op == "maxout_dropout_backward":
        args = (grad_y.unsqueeze(-1), argmax.unsqueeze(-1), 3, 0.5, SEED, 0, "cpu")
    else:
        args = (grad_y, argmax, torch.randn(4, 7), torch.randn(15, 7), 3, 0.5, SEED, 0, [True, True, True], "cpu")
    with pytest.raises(RuntimeError, match=r"argmax must hold piece indices in \[0, pieces=3\), got " + str(bad)):
        getattr(ops, op)(*args)


# --- modules ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
def test_modules(device, backend):
    linear = torch.nn.Linear(20, 6 * 5).to(device)
    layer = MaxoutLinear(20, 6, 5, p=0.5, backend=backend).to(device)
    layer.load_state_dict(linear.state_dict())
    x = torch.randn(4, 20, device=device)
    plain = linear(x).view(4, 6, 5).amax(-1)
    torch.testing.assert_close(layer.eval()(x), plain)
    y = layer.train()(x)
    assert ((y == 0) | torch.isclose(y, 2 * plain)).all()
    act = Maxout(5, p=0.5, backend=backend)
    torch.testing.assert_close(act.eval()(linear(x)), plain)
    assert "pieces=5" in repr(layer) and "pieces=5" in repr(act)


# --- CUDA sources ------------------------------------------------------------------------------------------------


def test_the_python_piece_limit_is_the_kernels():
    if backends.why_not("cpu", "cpu") is not None:
        pytest.skip(f"cpu backend: {backends.why_not('cpu', 'cpu')}")
    assert ops.MAX_PIECES == _ext.load().max_pieces == 127
