"""Maxout over a channel dim (maxout_dropout(..., dim=d), e.g. dim=1 of a convolution's [B, U*K, H, W]) on
every backend against the float64 reference, which views z as [outer, U*K, inner]; and the dense case
(dim=-1, inner = 1) keeps its masks."""
import math

import pytest
import torch

import fastgan
from fastgan import reference
from fastgan.nn import Maxout
from fastgan.ops import maxout as ops

from conftest import BACKEND_CASES
from test_maxout import OFFSET, SEED, assert_close, available_backends, inf_nan_units, leaf, skip_slow_triton


def as_3d(shape, dim):
    """[outer, C, inner]: the view of a tensor of `shape` that the kernels get for maxout over `dim`."""
    return math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1:])


def check_channels(z, pieces, p, dim, backend):
    """Forward values and backward (which checks the argmax: the gradient lands on it) vs the reference."""
    d = dim % z.dim()
    zl = leaf(z)
    y = fastgan.maxout_dropout(zl, pieces, p, seed=SEED, offset=OFFSET, dim=dim, backend=backend)
    assert y.shape == (*z.shape[:d], z.shape[d] // pieces, *z.shape[d + 1:]) and y.dtype == z.dtype
    grad_y = torch.randn_like(y)
    y.backward(grad_y)
    view = as_3d(z.shape, d)
    ref_y, ref_argmax = reference.maxout_dropout(z.double().cpu().reshape(view), pieces, p, SEED, OFFSET)
    ref_grad = reference.maxout_dropout_backward(grad_y.double().cpu().reshape(ref_y.shape), ref_argmax, pieces, p,
                                                 SEED, OFFSET)
    assert_close(y.reshape(ref_y.shape), ref_y, z.dtype, backend)
    assert_close(zl.grad.reshape(view), ref_grad, z.dtype, backend)


def test_reference_is_the_max_per_position_with_the_flat_index_mask():
    """The spec itself, written another way: amax over the unflattened channel dim, and the mask of element
    (o, u, i) at Philox index offset + (o*U + u)*inner + i."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 7 * 3, 5, 3, generator=g, dtype=torch.float64)
    y, argmax = reference.maxout_dropout(z.reshape(2, 21, 15), 3, 0.0, SEED, OFFSET)
    assert torch.equal(y.reshape(2, 7, 5, 3), z.unflatten(1, (7, 3)).amax(2))
    assert torch.equal(argmax.reshape(2, 7, 5, 3).long(), z.unflatten(1, (7, 3)).argmax(2))
    dropped, _ = reference.maxout_dropout(z.reshape(2, 21, 15), 3, 0.5, SEED, OFFSET)
    o, u, i = torch.arange(2)[:, None, None], torch.arange(7)[None, :, None], torch.arange(15)[None, None, :]
    keep = reference.philox_uniform(SEED, OFFSET + (o * 7 + u) * 15 + i) > 0.5
    assert torch.equal(dropped, torch.where(keep, 2 * y, 0.0))
    assert 0.3 < keep.double().mean() < 0.7


# --- values and gradients against the reference -------------------------------------------------------------


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape,pieces,dim", [
    ((2, 7 * 3, 5, 3), 3, 1),     # a convolution's [B, U*K, H, W]
    ((3, 10, 4), 5, -2),
    ((2, 6, 20, 20), 3, 1),       # inner = 400: more positions than the CPU kernel's 256-lane chunk
    ((12, 5), 4, 0),              # outer = 1
    ((2, 3, 4, 7), 2, 2),         # a middle dim
    ((3, 2, 14), 7, -1),          # dense, through the same public path
    ((0, 6, 3), 2, 1), ((2, 6, 0), 3, 1),
])
def test_channel_maxout_matches_reference(device, backend, dtype, shape, pieces, dim):
    skip_slow_triton(backend, math.prod(shape) // pieces)
    g = torch.Generator().manual_seed(sum(shape) + pieces)
    z = torch.randn(shape, generator=g, dtype=dtype).to(device)
    for p in (0.0, 0.5):
        check_channels(z, pieces, p, dim, backend)


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
def test_ties_send_the_gradient_to_the_first_maximum(device, backend):
    # pieces drawn from {-1, 0, 1}: most positions have ties; the reference picks the first maximal piece
    g = torch.Generator().manual_seed(0)
    z = torch.randint(-1, 2, (3, 5 * 4, 3, 3), generator=g).double().to(device)
    zl = leaf(z)
    fastgan.maxout_dropout(zl, 4, 0.3, seed=SEED, dim=1, backend=backend).sum().backward()
    nonzero = (zl.grad.unflatten(1, (5, 4)) != 0).sum(2)
    assert (nonzero <= 1).all(), "a position's gradient went to more than one piece"
    assert (nonzero == 1).any()
    check_channels(z, 4, 0.3, 1, backend)


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inf_and_nan_as_the_reference(device, backend, dtype):
    units = inf_nan_units(dtype)
    # [2, 30, 2, 2]: every position holds the 10 units, each with its own mask
    z = units.reshape(1, 30, 1, 1).expand(2, 30, 2, 2).to(device)
    for p in (0.0, 0.4):
        check_channels(z, 3, p, 1, backend)


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
def test_non_contiguous(device, backend):
    base = torch.randn(4, 2 * 21, 6, dtype=torch.float64, device=device)
    check_channels(base[:, ::2, ::2], 3, 0.5, 1, backend)  # [4, 21, 3], strided in both dims
    channels_last = torch.randn(2, 5, 3, 12, dtype=torch.float64, device=device).permute(0, 3, 1, 2)
    assert not channels_last.is_contiguous()
    check_channels(channels_last, 4, 0.5, 1, backend)  # [2, 12, 5, 3]


# --- autograd machinery -------------------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
def test_gradcheck(device, backend):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 3 * 4, 2, 3, generator=g, dtype=torch.float64).to(device).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z: fastgan.maxout_dropout(z, 4, 0.3, seed=SEED, dim=1, backend=backend), (z,))


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
@pytest.mark.parametrize("p", [0.0, 0.5])
def test_opcheck(device, backend, p):
    z = torch.randn(3, 4 * 3, 5, device=device, requires_grad=True)
    y, argmax = ops.maxout_dropout_forward(z, 3, p, SEED, OFFSET, backend)
    assert y.shape == argmax.shape == (3, 4, 5)
    for op, args in [
        (ops.maxout_dropout_forward, (z, 3, p, SEED, OFFSET, backend)),
        (ops.maxout_dropout_forward, (z.detach(), 3, p, SEED, OFFSET, backend)),
        (ops.maxout_dropout_backward, (torch.randn_like(y), argmax, 3, p, SEED, OFFSET, backend)),
    ]:
        torch.library.opcheck(op.op, args)


# --- dropout: one stream everywhere, the dense masks unchanged --------------------------------------------------


def test_same_seed_same_mask_on_every_backend():
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    z = torch.ones(3, 5 * 2, 4, 6)  # every max is 1: y is the mask times 1/(1-p)
    masks = {}
    for device in devices:
        for backend in available_backends(device):
            y = fastgan.maxout_dropout(z.to(device), 2, 0.5, seed=SEED, offset=OFFSET, dim=1, backend=backend)
            masks[f"{device}-{backend}"] = (y != 0).cpu()
    masks["reference"] = reference.dropout_keep(SEED, (3, 5, 4, 6), 0.5, OFFSET)
    first = next(iter(masks.values()))
    assert len(masks) >= 3 and all(torch.equal(m, first) for m in masks.values()), list(masks)


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
def test_dense_masks_unchanged(device, backend):
    """dim=-1 keeps unit (r, u) at Philox index offset + r*U + u, as before channels existed; dim=-1 and
    dim=1 of a 2-D z, and the last dim named either way, are one op."""
    z = torch.ones(37, 3 * 41, device=device)
    y = fastgan.maxout_dropout(z, 3, 0.5, seed=SEED, offset=OFFSET, backend=backend)
    r, u = torch.arange(37)[:, None], torch.arange(41)[None, :]
    assert torch.equal((y != 0).cpu(), reference.philox_uniform(SEED, OFFSET + r * 41 + u) > 0.5)
    z = torch.randn(4, 3, 2 * 5, device=device)
    last = fastgan.maxout_dropout(z, 2, 0.5, seed=SEED, backend=backend)
    assert torch.equal(fastgan.maxout_dropout(z, 2, 0.5, seed=SEED, dim=2, backend=backend), last)
    assert torch.equal(fastgan.maxout_dropout(z.reshape(12, 10), 2, 0.5, seed=SEED, dim=1, backend=backend),
                       last.reshape(12, 5))


# --- bad input and the module ------------------------------------------------------------------------------------


@pytest.mark.parametrize("call,error,name", [
    (lambda z: fastgan.maxout_dropout(z, 3, dim=4), ValueError, "dim"),
    (lambda z: fastgan.maxout_dropout(z, 3, dim=-5), ValueError, "dim"),
    (lambda z: fastgan.maxout_dropout(z, 3, dim=1.0), TypeError, "dim"),
    (lambda z: fastgan.maxout_dropout(z, 3, dim=True), TypeError, "dim"),
    (lambda z: fastgan.maxout_dropout(z, 4, dim=1), ValueError, "pieces=4"),  # 6 channels
    (lambda z: fastgan.maxout_dropout(z, 3, dim=2), ValueError, "pieces=3"),  # 5 rows
    (lambda z: fastgan.maxout_dropout(z[0, 0, 0, 0], 1, dim=0), ValueError, "dim"),  # 0-d
])
def test_bad_input_names_the_argument(call, error, name):
    z = torch.randn(2, 6, 5, 4)
    with pytest.raises(error, match=name):
        call(z)


@pytest.mark.parametrize("device,backend", BACKEND_CASES)
def test_module_over_a_convolution(device, backend):
    conv = torch.nn.Conv2d(3, 4 * 2, 3, padding=1).to(device)
    act = Maxout(2, p=0.5, dim=1, backend=backend)
    with torch.no_grad():
        z = conv(torch.randn(2, 3, 5, 5, device=device))
        plain = z.unflatten(1, (4, 2)).amax(2)
        torch.testing.assert_close(act.eval()(z), plain)
        y = act.train()(z)
    assert y.shape == (2, 4, 5, 5)
    assert ((y == 0) | (y == 2 * plain)).all() and (y == 0).any() and (y != 0).any()
    assert "dim=1" in repr(act)
