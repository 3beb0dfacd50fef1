"""Gaussian Parzen-window log-density, blocked: the paper's evaluation (section 5, Table 1) in one pass.

    log p(x_i; sigma_s) = logsumexp_j(-|x_i - mu_j|^2 / 2 sigma_s^2) - log M - D log(sigma_s sqrt(2 pi))

for every sigma at once. The kernels walk tiles of (test points x centres): a GEMM gives x.mu, the squared
distance |x|^2 + |mu|^2 - 2 x.mu (clamped at 0) feeds an online log-sum-exp for all sigmas while the tile
is in cache, so memory is O((N + M) D + N S), never N x M. One running minimum of d^2 per row is the
running maximum of -d^2 / 2 sigma^2 for every sigma, so the tiny-sigma terms never underflow to -inf.

The data are centred by the centres' mean first: the expanded form cancels |x|^2 + |mu|^2 against 2 x.mu,
and centring shrinks the norms (float32 stays within 0.01 nat of float64 at sigma = 0.1 on MNIST-like data).

Every backend implements two contracts on the centred data, in one compute dtype:
  fastgan::parzen_logsumexp           -> lse [N, S] = logsumexp_j(-d_ij^2 / 2 sigma_s^2)
  fastgan::parzen_logsumexp_backward  -> d(sum_is grad_is lse_is) / dx = sum_j P_ij (mu_j - x_i),
                                         P_ij = sum_s grad_is / sigma_s^2 exp(-d_ij^2 / 2 sigma_s^2 - lse_is)
The backward is a second blocked pass that recomputes the distances (the score: a softmax-weighted mean of
the centres minus x): a C++ kernel on the cpu backend, row chunks of torch ops on the others. No gradient
flows to the centres or the sigmas.
"""
import math
from typing import Optional, Sequence, Union

import torch
import torch.distributed as dist
from torch import Tensor

from .. import reference
from ._common import FusedOp, check_same, check_tensor, compiled, pick_backend

__all__ = ["parzen_log_density"]

PRECISIONS = {"fp32": torch.float32, "fp64": torch.float64, "tf32": torch.float32, "tf32x3": torch.float32}

# The torch backend materialises [rows, S, M] per chunk; 2^24 elements (64 MiB in float32) bounds it.
_TORCH_CHUNK_ELEMENTS = 1 << 24


def _triton():
    from ..kernels import parzen

    return parzen


def _row_chunks(n, m, s):
    step = max(1, _TORCH_CHUNK_ELEMENTS // max(1, m * s))
    return [(i, min(n, i + step)) for i in range(0, n, step)]


def _logsumexp_torch(x, centers, sigmas):
    out = x.new_empty((x.shape[0], sigmas.numel()))
    for a, b in _row_chunks(x.shape[0], centers.shape[0], sigmas.numel()):
        out[a:b] = reference.parzen_logsumexp(x[a:b], centers, sigmas)
    return out


def _backward_torch(grad, x, centers, sigmas, lse):
    # Row chunks of the reference's [rows, S, M] weights, as in the forward.
    out = torch.empty_like(x)
    inv_var = 1 / sigmas**2
    c_sq = (centers * centers).sum(1)
    for a, b in _row_chunks(x.shape[0], centers.shape[0], sigmas.numel()):
        xb = x[a:b]
        d2 = ((xb * xb).sum(1, keepdim=True) + c_sq - 2 * xb @ centers.T).clamp_min(0)
        w = torch.exp(-d2[:, None, :] * (inv_var[:, None] / 2) - lse[a:b, :, None])  # [rows, S, M] softmax
        p = torch.einsum("rs,rsm->rm", grad[a:b] * inv_var, w)
        out[a:b] = p @ centers - xb * p.sum(1, keepdim=True)
    return out


def _parzen_logsumexp(x: Tensor, centers: Tensor, sigmas: Tensor, precision: str, backend: str) -> Tensor:
    """lse [N, S] = logsumexp_j(-|x_i - mu_j|^2 / 2 sigma_s^2) on one backend; see the module docstring."""
    if backend in ("cpu", "cuda"):
        return compiled("parzen_logsumexp", backend)(x, centers, sigmas)
    if backend == "triton":
        return _triton().parzen_logsumexp_forward(x, centers, sigmas, precision)
    return _logsumexp_torch(x, centers, sigmas)


def _parzen_logsumexp_fake(x, centers, sigmas, precision, backend):
    torch._check(x.dim() == 2 and centers.dim() == 2, lambda: "x and centers must be 2-D")
    torch._check(sigmas.dim() == 1, lambda: "sigmas must be 1-D")
    torch._check(x.shape[1] == centers.shape[1], lambda: "x and centers must have one feature size")
    return x.new_empty((x.shape[0], sigmas.shape[0]))


def _parzen_logsumexp_backward(grad: Tensor, x: Tensor, centers: Tensor, sigmas: Tensor, lse: Tensor, precision: str,
                               backend: str) -> Tensor:
    """d(sum grad * lse) / dx [N, D]: the second blocked pass; see the module docstring."""
    if backend == "cpu":
        return compiled("parzen_logsumexp_backward", backend)(grad, x, centers, sigmas, lse)
    return _backward_torch(grad, x, centers, sigmas, lse)  # cuda and triton: the blocked torch pass


def _parzen_logsumexp_backward_fake(grad, x, centers, sigmas, lse, precision, backend):
    return torch.empty_like(x)


parzen_logsumexp_backward = FusedOp("fastgan::parzen_logsumexp_backward", _parzen_logsumexp_backward,
                                    _parzen_logsumexp_backward_fake)


def _setup_context(ctx, inputs, output):
    x, centers, sigmas, precision, backend = inputs
    ctx.save_for_backward(x, centers, sigmas, output)
    ctx.precision, ctx.backend = precision, backend


def _backward(ctx, grad):
    x, centers, sigmas, lse = ctx.saved_tensors
    grad_x = None
    if ctx.needs_input_grad[0]:
        grad_x = parzen_logsumexp_backward(grad.contiguous(), x, centers, sigmas, lse, ctx.precision, ctx.backend)
    return grad_x, None, None, None, None


parzen_logsumexp = FusedOp("fastgan::parzen_logsumexp", _parzen_logsumexp, _parzen_logsumexp_fake, _setup_context,
                           _backward)


# --- sharded centres --------------------------------------------------------------------------------------


class _ShardedLogSumExp(torch.autograd.Function):
    """lse over the centres of every rank of `group`: each rank reduces its shard, then the partial
    (max, sum) pairs are combined with two all-reduces; the gradient adds every rank's partial score."""

    @staticmethod
    def forward(ctx, x, centers, sigmas, precision, backend, group):
        if centers.shape[0]:
            local = parzen_logsumexp(x, centers, sigmas, precision, backend)
        else:  # an empty shard contributes exp(-inf) = 0
            local = x.new_full((x.shape[0], sigmas.numel()), -math.inf)
        peak = local.clone()
        dist.all_reduce(peak, op=dist.ReduceOp.MAX, group=group)
        total = torch.exp(local - peak)
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)
        lse = peak + torch.log(total)
        ctx.save_for_backward(x, centers, sigmas, lse)
        ctx.precision, ctx.backend, ctx.group = precision, backend, group
        return lse

    @staticmethod
    def backward(ctx, grad):
        x, centers, sigmas, lse = ctx.saved_tensors
        if centers.shape[0]:
            grad_x = parzen_logsumexp_backward(grad.contiguous(), x, centers, sigmas, lse, ctx.precision, ctx.backend)
        else:
            grad_x = torch.zeros_like(x)
        dist.all_reduce(grad_x, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad_x, None, None, None, None, None


# --- public API -------------------------------------------------------------------------------------------


def _check_sigmas(sigmas, device):
    """sigmas as a float64 tensor [S] on `device`; ValueError unless every width is finite and > 0."""
    if not isinstance(sigmas, Tensor):
        try:
            sigmas = torch.tensor(sigmas, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"sigmas must be a float, a sequence of floats or a 1-D tensor, got {sigmas!r}") from e
    if sigmas.dim() > 1 or sigmas.is_complex():
        raise ValueError(f"sigmas must be a real scalar or 1-D, got shape {tuple(sigmas.shape)} ({sigmas.dtype})")
    sigmas = sigmas.detach().reshape(-1).to(device=device, dtype=torch.float64)
    if sigmas.numel() == 0:
        raise ValueError("sigmas is empty; give at least one kernel width")
    if not bool(torch.isfinite(sigmas).all()) or bool((sigmas <= 0).any()):
        raise ValueError(f"sigmas must be finite and > 0, got {sigmas.tolist()}")
    return sigmas


def _check_points(t, name):
    check_tensor(t, name)
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D [points, features], got shape {tuple(t.shape)}")


def _check_finite(total, name):
    # NaN/inf anywhere reaches the sum: checking it costs a reduction the centring needs anyway, where
    # torch.isfinite(t).all() costs more than the kernel's epilogue (measured: 25 ms for 10k x 784).
    if not bool(torch.isfinite(total).all()):
        raise ValueError(f"{name} contains NaN or inf (or values too large to square)")


def _centred(x, centers, dtype, group):
    """(x, centers) in `dtype`, both shifted by the centres' mean, and M, the centres over all ranks.
    The mean is over all ranks, so every shard uses the same shift; any shift is exact in theory, this one
    shrinks the norms that the expanded distance cancels."""
    n_local = torch.tensor([centers.shape[0]], dtype=torch.float64, device=x.device)
    if group is not None:
        dist.all_reduce(n_local, group=group)
    n_centers = int(n_local.item())
    if n_centers == 0:
        raise ValueError("centers is empty (M = 0 over all ranks): the Parzen window needs at least one centre")
    shift = centers.detach().to(dtype).sum(0)
    if group is not None:
        dist.all_reduce(shift, group=group)
    _check_finite(shift, "centers")
    _check_finite(x.detach().sum(), "x")
    shift /= n_centers
    return (x.to(dtype) - shift).contiguous(), (centers.detach().to(dtype) - shift).contiguous(), n_centers


def parzen_log_density(x: Tensor, centers: Tensor, sigmas: Union[float, Sequence[float], Tensor], *,
                       precision: Optional[str] = None, backend: str = "auto", group=None) -> Tensor:
    """Log-density of each x under a Gaussian Parzen window on `centers`, for every width in `sigmas`.

    Args:
        x: [N, D] points to score (the test set), floating dtype.
        centers: [M, D] kernel centres (the generator's samples), same device; M >= 1 (over all ranks).
        sigmas: kernel widths sigma > 0: a float, a sequence or a 1-D tensor of S values.
        precision: compute dtype. None (default): the inputs' own, "fp64" for float64 and "fp32" for float32,
            and "fp32" for float16/bfloat16: a log-density of ~250 nats rounds to steps of 0.125 nat in float16
            and of 1 nat in bfloat16, and the expanded distance cancels terms far larger than the result.
            Or explicitly "fp32" (within 0.01 nat of fp64 at sigma = 0.1 on MNIST-like data), "fp64", or on CUDA
            tensors with backend="triton" "tf32x3" (3 TF32 products, about fp32 accurate) or "tf32" (fast but
            several nats off at sigma = 0.1 on MNIST).
        backend: "auto", "cuda", "triton", "cpu" or "torch" (see fastgan.backends).
        group: a torch.distributed process group over which `centers` is sharded: every rank passes the same
            x and its own shard; all ranks get the log-density under all the centres.
    Returns:
        [N, S] tensor of the compute dtype: the inputs' dtype for float32/float64, float32 for half inputs.
        Gradients flow to x only.
    Raises:
        TypeError for non-tensor or non-floating x/centers; ValueError for shapes (not 2-D, feature sizes
        differ, no centres), NaN/inf in x or centers, sigmas not finite and > 0, an unknown precision or a
        TF32 precision off the GPU; BackendUnavailable when the requested backend cannot run.
    """
    _check_points(x, "x")
    _check_points(centers, "centers")
    check_same([x, centers], ["x", "centers"])
    if centers.shape[1] != x.shape[1]:
        raise ValueError(f"centers has {centers.shape[1]} features but x has {x.shape[1]}")
    sigmas64 = _check_sigmas(sigmas, x.device)
    if precision is None:
        precision = "fp64" if x.dtype == torch.float64 else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    chosen = pick_backend(backend, x.device, dtype)
    if precision.startswith("tf32") and (x.device.type != "cuda" or chosen != "triton"):
        raise ValueError(f"precision {precision!r} is a tensor-core mode of the triton backend on CUDA tensors "
                         f"(got {x.device.type} tensors, backend {chosen!r}); use 'fp32' or 'fp64'")

    xc, cc, n_centers = _centred(x, centers, dtype, group)
    s = sigmas64.to(dtype)
    if group is None:
        lse = parzen_logsumexp(xc, cc, s, precision, chosen)
    else:
        lse = _ShardedLogSumExp.apply(xc, cc, s, precision, chosen, group)
    norm = math.log(n_centers) + x.shape[1] * (torch.log(sigmas64) + 0.5 * math.log(2 * math.pi))
    return lse - norm.to(dtype)
