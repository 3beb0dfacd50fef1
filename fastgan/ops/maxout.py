"""Maxout with dropout, fused: the paper's discriminator layer (maxout 240 units x 5 pieces, dropout).

y[r, u] = dropout_p(max_k z[r, u*K + k]), the pieces of unit u in consecutive columns (the layout of
nn.Linear(d, U*K) followed by .view(..., U, K).amax(-1)). Over a channel dim (dim=1 of a convolution's
[B, U*K, H, W]) z is viewed as [R, U*K, inner] and y[r, u, i] = dropout_p(max_k z[r, u*K + k, i]). The
exact rules (first maximum wins, NaN propagates, Philox mask at element index offset + y's flat index,
offset + r*U + u when inner = 1) are in fastgan/reference.py.

The forward saves only the argmax (int8, 1 byte per unit) and the Python ints seed and offset; the
backward regenerates the dropout mask from them, so z, the mask and y are never kept for backward
(eager PyTorch keeps z, a mask and the max: 4K + 8 bytes per unit in float32).

Every backend implements four ops, the first two on [R, U*K] or [R, U*K, inner] tensors, the last two 2-D:
  fastgan::maxout_dropout_forward(z [R, U*K(, inner)])        -> (y [R, U(, inner)], argmax int8 of y's shape)
  fastgan::maxout_dropout_backward(grad_y, argmax)            -> grad_z [R, U*K(, inner)]
  fastgan::maxout_linear_forward(x [R, D], weight, bias)      -> (y, argmax), z = x @ weight.T + bias never stored
  fastgan::maxout_linear_backward(grad_y, argmax, x, weight)  -> (grad_x, grad_weight, grad_bias)
The public functions check their arguments, flatten the dims before and after the maxout dim and draw the seed.
"""
import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .. import reference
from ._common import FusedOp, check_same, check_tensor, compiled, pick_backend

__all__ = ["maxout_dropout", "maxout_linear"]

MAX_PIECES = 127  # the argmax is saved as int8: kMaxPieces of csrc/common/maxout_math.h, which tests check


def _triton():
    from ..kernels import maxout

    return maxout


def _fresh(tensors):
    # custom ops may not return their inputs or views of them (the torch backend could, e.g. for K = 1)
    return tuple(t.clone() for t in tensors)


# --- fastgan::maxout_dropout_forward / _backward ---------------------------------------------------------


def _maxout_dropout_forward(z: Tensor, pieces: int, p: float, seed: int, offset: int,
                            backend: str) -> Tuple[Tensor, Tensor]:
    """(y [R, U(, inner)], argmax int8 of y's shape) for z [R, U*K(, inner)] on one backend; p = 0 draws no
    random numbers."""
    if backend in ("cpu", "cuda"):
        return tuple(compiled("maxout_dropout", backend)(z, pieces, p, seed, offset))
    if backend == "triton":
        return _triton().maxout_dropout_forward(z, pieces, p, seed, offset)
    return _fresh(reference.maxout_dropout(z, pieces, p, seed, offset))


def _maxout_dropout_forward_fake(z, pieces, p, seed, offset, backend):
    torch._check(z.dim() in (2, 3), lambda: f"z must be [R, U*K] or [R, U*K, inner], got {z.dim()}-D")
    torch._check(z.shape[1] % pieces == 0, lambda: "z's dim 1 must be a multiple of pieces")
    shape = (z.shape[0], z.shape[1] // pieces, *z.shape[2:])
    return z.new_empty(shape), z.new_empty(shape, dtype=torch.int8)


def _maxout_dropout_backward(grad_y: Tensor, argmax: Tensor, pieces: int, p: float, seed: int, offset: int,
                             backend: str) -> Tensor:
    """grad_z [R, U*K(, inner)]: grad_y [R, U(, inner)] (masked and scaled by the regenerated dropout) on each
    argmax piece."""
    if backend in ("cpu", "cuda"):
        return compiled("maxout_dropout_backward", backend)(grad_y, argmax, pieces, p, seed, offset)
    if backend == "triton":
        return _triton().maxout_dropout_backward(grad_y, argmax, pieces, p, seed, offset)
    return reference.maxout_dropout_backward(grad_y, argmax, pieces, p, seed, offset)


def _maxout_dropout_backward_fake(grad_y, argmax, pieces, p, seed, offset, backend):
    torch._check(grad_y.dim() in (2, 3) and argmax.shape == grad_y.shape,
                 lambda: "grad_y and argmax must be [R, U] or [R, U, inner]")
    return grad_y.new_empty((grad_y.shape[0], grad_y.shape[1] * pieces, *grad_y.shape[2:]))


maxout_dropout_backward = FusedOp("fastgan::maxout_dropout_backward", _maxout_dropout_backward,
                                  _maxout_dropout_backward_fake)


def _maxout_dropout_setup_context(ctx, inputs, output):
    _, pieces, p, seed, offset, backend = inputs
    ctx.save_for_backward(output[1])
    ctx.args = (pieces, p, seed, offset, backend)


def _maxout_dropout_grad(ctx, grad_y, _grad_argmax):
    (argmax,) = ctx.saved_tensors
    return maxout_dropout_backward(grad_y.contiguous(), argmax, *ctx.args), None, None, None, None, None


maxout_dropout_forward = FusedOp("fastgan::maxout_dropout_forward", _maxout_dropout_forward,
                                 _maxout_dropout_forward_fake, _maxout_dropout_setup_context, _maxout_dropout_grad)


# --- fastgan::maxout_linear_forward / _backward ----------------------------------------------------------


def _maxout_linear_forward(x: Tensor, weight: Tensor, bias: Tensor, pieces: int, p: float, seed: int, offset: int,
                           backend: str) -> Tuple[Tensor, Tensor]:
    """(y [R, U], argmax int8 [R, U]) of maxout_dropout(x @ weight.T + bias) on one backend."""
    args = (x, weight, bias, pieces, p, seed, offset)
    if backend in ("cpu", "cuda"):
        return tuple(compiled("maxout_linear", backend)(*args))
    if backend == "triton":
        return _triton().maxout_linear_forward(*args)
    return _fresh(reference.maxout_linear(*args))


def _maxout_linear_forward_fake(x, weight, bias, pieces, p, seed, offset, backend):
    torch._check(x.dim() == 2 and weight.dim() == 2 and x.shape[1] == weight.shape[1],
                 lambda: "x must be [R, D] and weight [U*K, D]")
    torch._check(bias.shape == (weight.shape[0],), lambda: "bias must be [U*K]")
    shape = (x.shape[0], weight.shape[0] // pieces)
    return x.new_empty(shape), x.new_empty(shape, dtype=torch.int8)


def _maxout_linear_backward(grad_y: Tensor, argmax: Tensor, x: Tensor, weight: Tensor, pieces: int, p: float,
                            seed: int, offset: int, needs_grad: List[bool], backend: str) -> List[Tensor]:
    """[grad_x, grad_weight, grad_bias] (each empty where needs_grad says so). The CPU kernel multiplies
    only grad_z's nonzeros; the others form grad_z with the fused maxout backward, then run the two GEMMs
    grad_z @ weight and grad_z.T @ x and the column sum."""
    if backend == "cpu":
        return compiled("maxout_linear_backward", backend)(grad_y, argmax, x, weight, pieces, p, seed, offset,
                                                           needs_grad)
    grad_z = _maxout_dropout_backward(grad_y, argmax, pieces, p, seed, offset, backend)
    return [grad_z @ weight if needs_grad[0] else x.new_empty(0),  # one empty each: outputs may not alias
            grad_z.t() @ x if needs_grad[1] else x.new_empty(0),
            grad_z.sum(0) if needs_grad[2] else x.new_empty(0)]


def _maxout_linear_backward_fake(grad_y, argmax, x, weight, pieces, p, seed, offset, needs_grad, backend):
    return [torch.empty_like(x) if needs_grad[0] else x.new_empty(0),
            torch.empty_like(weight) if needs_grad[1] else x.new_empty(0),
            weight.new_empty(weight.shape[0]) if needs_grad[2] else x.new_empty(0)]


maxout_linear_backward = FusedOp("fastgan::maxout_linear_backward", _maxout_linear_backward,
                                 _maxout_linear_backward_fake)


def _maxout_linear_setup_context(ctx, inputs, output):
    x, weight, _, pieces, p, seed, offset, backend = inputs
    ctx.save_for_backward(output[1], x, weight)
    ctx.args = (pieces, p, seed, offset)
    ctx.backend = backend


def _maxout_linear_grad(ctx, grad_y, _grad_argmax):
    argmax, x, weight = ctx.saved_tensors
    needs = list(ctx.needs_input_grad[:3])
    grads = maxout_linear_backward(grad_y.contiguous(), argmax, x, weight, *ctx.args, needs, ctx.backend)
    return tuple(g if need else None for g, need in zip(grads, needs)) + (None,) * 5


maxout_linear_forward = FusedOp("fastgan::maxout_linear_forward", _maxout_linear_forward,
                                _maxout_linear_forward_fake, _maxout_linear_setup_context, _maxout_linear_grad)


# --- public API -----------------------------------------------------------------------------------------


def _check_dropout(pieces, p, training, seed, offset):
    """Validates the shared arguments; returns (p, seed) with p = 0 and no seed drawn when nothing drops."""
    if isinstance(pieces, bool) or not isinstance(pieces, int):
        raise TypeError(f"pieces must be an int, got {type(pieces).__name__}")
    if not 1 <= pieces <= MAX_PIECES:
        raise ValueError(f"pieces must be in [1, {MAX_PIECES}] (the argmax is saved as int8), got {pieces}")
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"p must be a float, got {type(p).__name__}")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"p (the drop probability) must be in [0, 1), got {p}")
    if not isinstance(training, bool):
        raise TypeError(f"training must be a bool, got {type(training).__name__}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be an int >= 0, got {offset!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise ValueError(f"seed must be None or an int in [0, 2**63), got {seed!r}")
    if not training or p == 0:
        return 0.0, 0
    if seed is None:
        # torch's default generator decides the seed, so torch.manual_seed repeats a run
        seed = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64).item())
    return float(p), seed


def maxout_dropout(z: Tensor, pieces: int, p: float = 0.0, training: bool = True, seed: Optional[int] = None, *,
                   offset: int = 0, dim: int = -1, backend: str = "auto") -> Tensor:
    """Maxout over groups of `pieces` consecutive features along `dim`, then inverted dropout, in one pass.

    Args:
        z: [..., U*K, ...] pre-activations, float32/float64 (float16/bfloat16 on the cuda, triton and torch
            backends); pieces of unit u are the indices u*K .. u*K+K-1 along `dim`.
        pieces: K, the pieces per unit, 1..127.
        p: drop probability in [0, 1); kept elements are scaled by 1/(1-p).
        training: False (or p = 0) gives plain maxout and draws no random numbers.
        seed: the Philox key, an int in [0, 2**63); None draws one from torch's default generator (a host
            read: under torch.compile(fullgraph=True) pass it explicitly).
        offset: added to the output element's flat index to give its Philox counter (for streams under
            one seed); for dim=-1 that index is row*U + u.
        dim: the dim holding the U*K features: -1 for a linear layer's output, 1 for a convolution's
            channels [B, U*K, H, W] (every spatial position gets its own max).
        backend: "auto", "cuda", "triton", "cpu" or "torch" (see fastgan.backends).
    Returns:
        z's shape with U in place of U*K at `dim`: y = max_k z[..., u*K + k, ...], kept with probability
        1 - p. Backward sends the gradient to the first maximal piece and regenerates the mask; only an
        int8 argmax is saved.
    Raises:
        TypeError for a non-tensor, non-floating z or a non-int pieces or dim; ValueError when dim is out of
        range, z's size along dim is not a multiple of pieces, or pieces, p, seed or offset is out of range;
        BackendUnavailable.
    """
    check_tensor(z, "z")
    p, seed = _check_dropout(pieces, p, training, seed, offset)
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    if not -z.dim() <= dim < z.dim():
        raise ValueError(f"dim must be in [{-z.dim()}, {z.dim()}) for z of shape {tuple(z.shape)}, got {dim}")
    dim %= z.dim()
    size = z.shape[dim]
    if size % pieces:
        raise ValueError(f"z's size along dim={dim} must be a multiple of pieces={pieces}, got shape {tuple(z.shape)}")
    chosen = pick_backend(backend, z.device, z.dtype)
    if z.dim() == 2 and dim == 1:  # the kernels take [R, U*K] as it is (two reshapes cost ~2 us of ~90)
        return maxout_dropout_forward(z.contiguous(), pieces, p, seed, offset, chosen)[0]
    # [outer, U*K, inner]: inner = 1 (dim=-1) is the dense layout, and the Philox index stays offset + r*U + u
    outer, inner = math.prod(z.shape[:dim]), math.prod(z.shape[dim + 1:])
    y, _ = maxout_dropout_forward(z.reshape(outer, size, inner).contiguous(), pieces, p, seed, offset, chosen)
    return y.reshape(*z.shape[:dim], size // pieces, *z.shape[dim + 1:])


def maxout_linear(x: Tensor, weight: Tensor, bias: Optional[Tensor], pieces: int, p: float = 0.0,
                  training: bool = True, seed: Optional[int] = None, *, offset: int = 0,
                  backend: str = "auto") -> Tensor:
    """maxout_dropout(x @ weight.T + bias, pieces, p, ...) without storing the pre-activations.

    Args:
        x: [..., D] input; weight: [U*K, D] and bias: [U*K] or None, as nn.Linear(D, U*K) holds them.
        pieces, p, training, seed, offset, backend: as maxout_dropout.
    Returns:
        [..., U]. Saved for backward: x, weight, the int8 argmax; gradients flow to x, weight and bias.
    Raises:
        TypeError/ValueError naming the argument for a wrong type, dtype, device or shape (weight's rows
        not a multiple of pieces, x's last dim not weight's columns, bias not [U*K]); as maxout_dropout.
    """
    check_tensor(x, "x")
    check_tensor(weight, "weight")
    p, seed = _check_dropout(pieces, p, training, seed, offset)
    if weight.dim() != 2 or weight.shape[0] % pieces:
        raise ValueError(f"weight must be [units*pieces, in_features] with pieces={pieces}, "
                         f"got shape {tuple(weight.shape)}")
    if x.dim() == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"x's last dim must be weight's in_features={weight.shape[1]}, got shape {tuple(x.shape)}")
    if bias is None:
        bias = weight.new_zeros(weight.shape[0])
    check_tensor(bias, "bias")
    if bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must be [{weight.shape[0]}] (weight's rows), got shape {tuple(bias.shape)}")
    check_same([x, weight, bias], ["x", "weight", "bias"])
    chosen = pick_backend(backend, x.device, x.dtype)
    units = weight.shape[0] // pieces
    y, _ = maxout_linear_forward(x.reshape(-1, x.shape[-1]).contiguous(), weight.contiguous(), bias.contiguous(),
                                 pieces, p, seed, offset, chosen)
    return y.reshape(*x.shape[:-1], units)
