"""fastgan.ops.linear / fastgan.nn.Linear: F.linear with the CPU backend's float32 products on oneDNN."""
import math
import sys

import pytest
import torch
import torch.nn.functional as F

import fastgan
from conftest import TOLERANCES
from fastgan import _ext, backends
from fastgan.paper.models import Generator
from fastgan.nn import Linear
from fastgan.ops.linear import linear, linear_op

# Shapes: the generator's layers at batch 100, then odd sizes (no multiple of a vector or a block), a
# single row and a single output.
SHAPES = [(100, 100, 1200), (100, 1200, 784), (37, 61, 45), (1, 13, 7), (9, 5, 1)]


def _float32_tolerance(k):
    # A float32 sum of k products of N(0, 1) numbers: each addition rounds by up to 2^-24 of a partial sum of
    # size ~sqrt(k), and k such errors of random sign add up to ~6e-8 * k. 1e-6 * k leaves a 17x margin
    # (measured against float64: 9e-5 at k = 784, where this allows 7.8e-4).
    return dict(atol=1e-6 * max(k, 1), rtol=1e-5)


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_float64_reference(m, k, n, dtype, bias):
    torch.manual_seed(0)
    x = torch.randn(m, k, dtype=dtype, requires_grad=True)
    w = torch.randn(n, k, dtype=dtype, requires_grad=True)
    b = torch.randn(n, dtype=dtype, requires_grad=True) if bias else None
    y = linear(x, w, b, backend="cpu")
    grad = torch.randn(m, n, dtype=dtype)
    grads = torch.autograd.grad(y, [t for t in (x, w, b) if t is not None], grad)

    x64, w64 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    b64 = b.detach().double().requires_grad_() if bias else None
    y64 = F.linear(x64, w64, b64)
    grads64 = torch.autograd.grad(y64, [t for t in (x64, w64, b64) if t is not None], grad.double())

    # y sums k terms; grad_x n terms, grad_weight and grad_bias m terms
    tol = _float32_tolerance if dtype == torch.float32 else (lambda terms: TOLERANCES[torch.float64])
    assert y.dtype == dtype and y.shape == (m, n)
    torch.testing.assert_close(y.double(), y64, **tol(k))
    for got, want, s in zip(grads, grads64, [n, m, m]):
        torch.testing.assert_close(got.double(), want, **tol(s))


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch was built without oneDNN")
def test_float32_runs_on_onednn(onednn_route):
    # Bit-equal to torch's oneDNN op (and not to MKL's at::addmm, whose sums round differently): with the oneDNN
    # route on, it is the one taken, for the forward and for both backward products on transposed views.
    assert _ext.load().linear_uses_onednn()
    torch.manual_seed(0)
    x, w, b = torch.randn(100, 784), torch.randn(1200, 784), torch.randn(1200)
    onednn = torch.ops.mkldnn._linear_pointwise
    y = linear(x, w, b, backend="cpu")
    assert torch.equal(y, onednn(x, w, b, "none", [], ""))
    assert not torch.equal(y, torch.addmm(b, x, w.t()))
    grad = torch.randn(100, 1200)
    wr, xr = w.clone().requires_grad_(), x.clone().requires_grad_()
    gx, gw = torch.autograd.grad(linear(xr, wr, None, backend="cpu"), [xr, wr], grad)
    assert torch.equal(gx, onednn(grad, w.t(), None, "none", [], ""))
    assert torch.equal(gw, onednn(grad.t(), x.t(), None, "none", [], ""))


@pytest.fixture
def onednn_route():
    """The oneDNN route on for the test (what backends.cpu_gemm measured is restored after)."""
    ext = _ext.load()
    backends.cpu_gemm()
    ext.set_linear_onednn(True)
    yield
    ext.set_linear_onednn(backends.cpu_gemm() == "onednn")


def test_the_mkl_route_is_at_addmm(onednn_route):
    ext = _ext.load()
    torch.manual_seed(0)
    x, w, b = torch.randn(100, 784), torch.randn(1200, 784), torch.randn(1200)
    ext.set_linear_onednn(False)
    assert not ext.linear_uses_onednn()
    assert torch.equal(linear(x, w, b, backend="cpu"), torch.addmm(b, x, w.t()))


def test_auto_takes_f_linear_where_the_op_is_not_faster(monkeypatch):
    """backend="auto" runs plain F.linear at shapes where fastgan's op lost, the op where it won."""
    module = sys.modules["fastgan.ops.linear"]  # the package's attribute of that name is the function
    torch.manual_seed(0)
    x, w = torch.randn(3, 8, requires_grad=True), torch.randn(5, 8, requires_grad=True)
    calls = []
    monkeypatch.setattr(module, "linear_op", lambda *args: calls.append(args) or F.linear(*args))
    for faster in (False, True):
        monkeypatch.setattr(module, "_op_is_faster", lambda *shape, faster=faster: faster)
        calls.clear()
        torch.testing.assert_close(linear(x, w), F.linear(x, w))
        assert len(calls) == faster
    calls.clear()
    linear(x, w, backend="cpu")
    assert len(calls) == 1  # explicit "cpu": the op, always


def test_the_measured_choices_are_cached():
    module = sys.modules["fastgan.ops.linear"]
    assert backends.cpu_gemm() in ("onednn", "mkl") and backends.cpu_gemm() is backends.cpu_gemm()
    first = module._op_is_faster(3, 8, 5, True)
    key = next(k for k in module._faster_than_f_linear if k[:4] == (4, 8, 5, True))  # 3 rows: the bucket of 4
    assert module._faster_than_f_linear[key] == first == module._op_is_faster(4, 8, 5, True)
    if backends.cpu_gemm() == "mkl":
        assert first is False  # the op is at::addmm then, plus its call overhead


def test_leading_dims_strided_inputs_and_other_backends():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 10)
    w_t = torch.randn(10, 6)  # w = w_t.t() is a transposed view
    b = torch.randn(6)
    want = F.linear(x.double(), w_t.t().double(), b.double())
    for backend in ("cpu", "torch"):
        y = linear(x, w_t.t(), b, backend=backend)
        assert y.shape == (4, 3, 6)
        torch.testing.assert_close(y.double(), want, **_float32_tolerance(10))
    # empty batches and zero input features
    for shape, w_shape in [((0, 5), (3, 5)), ((4, 0), (3, 0))]:
        x0, w0 = torch.randn(shape, requires_grad=True), torch.randn(w_shape, requires_grad=True)
        y = linear(x0, w0, b[:3], backend="cpu")
        torch.testing.assert_close(y, F.linear(x0, w0, b[:3]))
        y.sum().backward()
        assert w0.grad.shape == w_shape and not w0.grad.any()
    # half precision on the CPU backend falls back to F.linear
    assert linear(x.bfloat16(), w_t.t().bfloat16(), None).dtype == torch.bfloat16


@pytest.mark.parametrize("call,error,name", [
    (lambda x, w: linear(x, w[:, :5]), ValueError, "x"),
    (lambda x, w: linear(x, w[0]), ValueError, "weight"),
    (lambda x, w: linear(x, w, torch.zeros(5)), ValueError, "bias"),
    (lambda x, w: linear(x, w.double()), TypeError, "weight"),
    (lambda x, w: linear(x.long(), w), TypeError, "x"),
    (lambda x, w: linear(x, w, backend=3), TypeError, "backend"),
])
def test_bad_arguments_name_the_argument(call, error, name):
    with pytest.raises(error, match=name):
        call(torch.randn(4, 6), torch.randn(3, 6))


def test_gradcheck_and_double_backward():
    # the backward runs the same op, so create_graph=True differentiates it again (e.g. a penalty on G's gradients)
    args = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in ((4, 3), (5, 3), (5,))]
    fn = lambda x, w, b: linear(x, w, b, backend="cpu")  # noqa: E731
    assert torch.autograd.gradcheck(fn, args)
    assert torch.autograd.gradgradcheck(fn, args)


def test_generator_under_torch_func_transforms():
    # as with nn.Linear layers: torch.func.grad with functional_call, jacrev and vmap over the generator
    from torch.func import functional_call, grad, jacrev, vmap

    torch.manual_seed(0)
    g = Generator(hidden=(30,), backend="cpu").double()
    z = torch.randn(3, 100, dtype=torch.float64)
    params = {k: v.detach() for k, v in g.named_parameters()}
    grads = grad(lambda p: functional_call(g, p, (z,)).sum())(params)
    g(z).sum().backward()
    for name, param in g.named_parameters():
        torch.testing.assert_close(grads[name], param.grad)
    jacobian = jacrev(lambda v: g(v[None])[0])(z[0])
    v = z[0].clone().requires_grad_()
    torch.testing.assert_close(jacobian[5], torch.autograd.grad(g(v[None])[0, 5], v)[0])
    torch.testing.assert_close(vmap(g)(z[:, None])[:, 0], g(z))


def test_opcheck():
    x = torch.randn(5, 6, requires_grad=True)
    w = torch.randn(4, 6, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    for args in [(x, w, b), (x, w, None), (x.detach(), w.detach().t().contiguous().t(), b.detach())]:
        torch.library.opcheck(linear_op.op, args)


def test_torch_compile_without_graph_breaks():
    torch.manual_seed(0)
    layer = Linear(10, 7, backend="cpu")
    x = torch.randn(5, 10, requires_grad=True)
    explained = torch._dynamo.explain(lambda x: layer(x).relu().sum())(x)
    assert explained.graph_break_count == 0
    compiled = torch.compile(lambda x: layer(x).relu().sum(), fullgraph=True)
    grads = torch.autograd.grad(compiled(x), [x, layer.weight])
    want = torch.autograd.grad(F.linear(x, layer.weight, layer.bias).relu().sum(), [x, layer.weight])
    for got, ref in zip(grads, want):
        torch.testing.assert_close(got, ref, **_float32_tolerance(10))


def test_module_is_a_drop_in_nn_linear():
    torch.manual_seed(0)
    plain = torch.nn.Linear(20, 30)
    fused = Linear(20, 30)
    assert fused.state_dict().keys() == plain.state_dict().keys()
    fused.load_state_dict(plain.state_dict())
    x = torch.randn(8, 20)
    torch.testing.assert_close(fused(x), plain(x), **_float32_tolerance(20))
    # nn.Linear's initialisation: U(+-1/sqrt(in_features))
    assert fused.weight.abs().max() <= 1 / math.sqrt(20)


def test_generator_backends_share_checkpoints_and_outputs():
    torch.manual_seed(0)
    reference, fused = Generator(backend="torch"), Generator(backend="cpu")
    fused.load_state_dict(reference.state_dict())
    z = torch.randn(16, 100)
    torch.testing.assert_close(fused(z), reference(z), atol=1e-6, rtol=1e-5)
    assert isinstance(fused.output, fastgan.nn.Linear) and fused.output.backend == "cpu"


def test_the_module_checks_and_routes_each_input_kind_once(monkeypatch):
    import fastgan.nn

    torch.manual_seed(0)
    layer, x = Linear(8, 5), torch.randn(3, 8)
    calls = []
    real = fastgan.nn.linear
    monkeypatch.setattr(fastgan.nn, "linear", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    for _ in range(3):
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias), **_float32_tolerance(8))
    (plain,) = layer._f_linear.values()
    assert len(calls) == (1 if plain else 3)  # a kind routed to F.linear skips fastgan.ops.linear after the first
    with pytest.raises(ValueError, match="x's last dim"):  # a new kind of input is checked again
        layer(torch.randn(3, 7))
    assert len(layer._f_linear) == 1
