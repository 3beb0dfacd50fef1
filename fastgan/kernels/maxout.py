"""Triton kernels of maxout + dropout (see fastgan/reference.py: maxout_dropout, maxout_linear).

z [R, U*K, inner] is contiguous (a 2-D z has inner = 1), so element e = (r*U + u)*inner + i of the
flattened output owns the pieces z[(e // inner * K + k) * inner + e % inner], k < K, and its Philox element
index is offset + e: the elementwise kernels run over e in 1-D blocks, so neighbouring lanes read
neighbouring positions i (coalesced) for every k. Triton specialises an int argument equal to 1, so the
dense case (inner = 1) compiles without the division. The layer
kernel (_maxout_linear_fwd_kernel) computes a [BLOCK_M rows, BLOCK_U units] tile of z one piece at a
time, keeping the running max and argmax in registers, so z never reaches memory.
"""
import torch
import triton
import triton.language as tl


@triton.jit
def _maxout_takes(v, best):
    # v replaces the running max when strictly larger, or when it is the first NaN (NaN propagates)
    return (v > best) | ((v != v) & (best == best))


@triton.jit
def _dropout(best, e, p, scale, seed, offset, HAS_DROPOUT: tl.constexpr):
    if HAS_DROPOUT:
        keep = tl.rand(seed, offset + e) > p  # int64 e: the counter's high word is e >> 32, as in C++
        best = tl.where(keep, best * scale, 0.0)
    return best


@triton.jit
def _first_piece(e, inner, K: tl.constexpr):
    # index of piece 0 of output element e in z [n // inner, K, inner]; piece k is inner further on
    line = e // inner
    return line * K * inner + (e - line * inner)


@triton.jit
def _maxout_dropout_fwd_kernel(
    z_ptr,            # [n // inner, K, inner] pieces (see _first_piece)
    y_ptr,            # [n] output
    argmax_ptr,       # [n] int8 argmax
    n, inner, p, scale, seed, offset,
    K: tl.constexpr, HAS_DROPOUT: tl.constexpr, BLOCK: tl.constexpr,
):
    e = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = e < n
    first = _first_piece(e, inner, K)
    best = tl.load(z_ptr + first, mask=mask, other=0.0)
    arg = tl.zeros([BLOCK], dtype=tl.int32)
    for k in tl.static_range(1, K):
        v = tl.load(z_ptr + first + k * inner, mask=mask, other=0.0)
        take = _maxout_takes(v, best)
        best = tl.where(take, v, best)
        arg = tl.where(take, k, arg)
    best = _dropout(best, e, p, scale, seed, offset, HAS_DROPOUT)
    tl.store(y_ptr + e, best.to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(argmax_ptr + e, arg.to(tl.int8), mask=mask)


@triton.jit
def _maxout_dropout_bwd_kernel(
    grad_y_ptr,       # [n] incoming gradient
    argmax_ptr,       # [n] int8 argmax from the forward
    grad_z_ptr,       # [n // inner, K, inner] output: the (masked, scaled) gradient on the argmax piece, 0 elsewhere
    n, inner, p, scale, seed, offset,
    K: tl.constexpr, HAS_DROPOUT: tl.constexpr, BLOCK: tl.constexpr,
):
    e = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = e < n
    g = _dropout(tl.load(grad_y_ptr + e, mask=mask, other=0.0), e, p, scale, seed, offset, HAS_DROPOUT)
    arg = tl.load(argmax_ptr + e, mask=mask, other=0).to(tl.int32)
    first = _first_piece(e, inner, K)
    for k in tl.static_range(K):
        tl.store(grad_z_ptr + first + k * inner, tl.where(arg == k, g, 0.0).to(grad_z_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _maxout_linear_fwd_kernel(
    x_ptr,            # [R, D] input, row-major
    w_ptr,            # [U*K, D] weight (nn.Linear's), row-major
    b_ptr,            # [U*K] bias
    y_ptr,            # [R, U] output
    argmax_ptr,       # [R, U] int8 argmax
    R, D, U, p, scale, seed, offset,
    K: tl.constexpr, HAS_DROPOUT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_U: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    units = tl.program_id(1).to(tl.int64) * BLOCK_U + tl.arange(0, BLOCK_U)
    row_mask, unit_mask = rows < R, units < U
    acc_ty = tl.float64 if x_ptr.dtype.element_ty == tl.float64 else tl.float32
    best = tl.zeros([BLOCK_M, BLOCK_U], dtype=acc_ty)
    arg = tl.zeros([BLOCK_M, BLOCK_U], dtype=tl.int32)
    for k in tl.static_range(K):
        # piece k of every unit in the tile: z[:, u*K + k] = x @ w[u*K + k].T + b[u*K + k]
        cols = units * K + k
        z = tl.zeros([BLOCK_M, BLOCK_U], dtype=acc_ty)
        for d0 in range(0, D, BLOCK_D):
            ds = d0 + tl.arange(0, BLOCK_D)
            d_mask = ds < D
            x = tl.load(x_ptr + rows[:, None] * D + ds[None, :], mask=row_mask[:, None] & d_mask[None, :], other=0.0)
            w = tl.load(w_ptr + cols[:, None] * D + ds[None, :], mask=unit_mask[:, None] & d_mask[None, :], other=0.0)
            z += tl.dot(x, tl.trans(w), input_precision="ieee").to(acc_ty)  # no TF32: the max needs full precision
        z += tl.load(b_ptr + cols, mask=unit_mask, other=0.0).to(acc_ty)[None, :]
        if k == 0:
            best = z
        else:
            take = _maxout_takes(z, best)
            best = tl.where(take, z, best)
            arg = tl.where(take, k, arg)
    e = rows[:, None] * U + units[None, :]
    best = _dropout(best, e, p, scale, seed, offset, HAS_DROPOUT)
    mask = row_mask[:, None] & unit_mask[None, :]
    tl.store(y_ptr + e, best.to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(argmax_ptr + e, arg.to(tl.int8), mask=mask)


# 1024 units per program: 1.2M units (batch 1024 x 1200) give 1200 programs, several waves on 132 SMs.
BLOCK = 1024


def _launch_args(p):
    return dict(p=p, scale=1.0 / (1.0 - p), HAS_DROPOUT=p > 0)


def _inner(t):
    """The size after the maxout dim of a [R, C] or [R, C, inner] tensor."""
    return t.shape[2] if t.dim() == 3 else 1


def maxout_dropout_forward(z, pieces, p, seed, offset):
    """Host function of the elementwise forward; same contract as fastgan.reference.maxout_dropout."""
    z = z.contiguous()
    shape = (z.shape[0], z.shape[1] // pieces, *z.shape[2:])
    y = torch.empty(shape, dtype=z.dtype, device=z.device)
    argmax = torch.empty(shape, dtype=torch.int8, device=z.device)
    n = y.numel()
    if n:
        _maxout_dropout_fwd_kernel[(triton.cdiv(n, BLOCK),)](
            z, y, argmax, n, _inner(z), seed=seed, offset=offset, K=pieces, BLOCK=BLOCK, **_launch_args(p))
    return y, argmax


def maxout_dropout_backward(grad_y, argmax, pieces, p, seed, offset):
    """Host function of the backward; same contract as fastgan.reference.maxout_dropout_backward."""
    grad_y, argmax = grad_y.contiguous(), argmax.contiguous()
    shape = (grad_y.shape[0], grad_y.shape[1] * pieces, *grad_y.shape[2:])
    grad_z = torch.empty(shape, dtype=grad_y.dtype, device=grad_y.device)
    n = grad_y.numel()
    if n:
        _maxout_dropout_bwd_kernel[(triton.cdiv(n, BLOCK),)](
            grad_y, argmax, grad_z, n, _inner(grad_y), seed=seed, offset=offset, K=pieces, BLOCK=BLOCK,
            **_launch_args(p))
    return grad_z


def maxout_linear_forward(x, weight, bias, pieces, p, seed, offset):
    """Host function of the fused layer; same contract as fastgan.reference.maxout_linear."""
    x, weight, bias = x.contiguous(), weight.contiguous(), bias.contiguous()
    rows, features = x.shape
    units = weight.shape[0] // pieces
    y = torch.empty((rows, units), dtype=x.dtype, device=x.device)
    argmax = torch.empty((rows, units), dtype=torch.int8, device=x.device)
    # 32 x 32 tiles: tl.dot needs >= 16 per side; a [32, 32] fp32 accumulator, the running max and the
    # argmax fit in registers next to the [32, 32] x and w tiles.
    block_m, block_u, block_d = 32, 32, 32
    if rows and units:
        grid = (triton.cdiv(rows, block_m), triton.cdiv(units, block_u))
        _maxout_linear_fwd_kernel[grid](
            x, weight, bias, y, argmax, rows, features, units, seed=seed, offset=offset, K=pieces,
            BLOCK_M=block_m, BLOCK_U=block_u, BLOCK_D=block_d, **_launch_args(p))
    return y, argmax
