"""Triton kernel of the Parzen-window log-sum-exp (see fastgan/reference.py: parzen_logsumexp).

Flash-attention's shape: one program per BLOCK_N test points walks the centres BLOCK_M at a time; tl.dot
gives the tile's x.mu (accumulated over BLOCK_D feature chunks), the distances |x|^2 + |mu|^2 - 2 x.mu
feed an online log-sum-exp kept as (running min of d^2, per-sigma sums) in registers, and only [N, S]
is written. The gradient runs the blocked torch pass (fastgan.ops.parzen._backward_torch).
"""
import torch
import triton
import triton.language as tl


@triton.jit
def _parzen_logsumexp_fwd_kernel(
    x_ptr, c_ptr,              # centred points [N, D] and centres [M, D], contiguous
    x_sq_ptr, c_sq_ptr,        # their squared norms [N], [M]
    a_ptr,                     # 1 / (2 sigma^2) [S]
    out_ptr,                   # lse [N, S]
    N, M, D, S,
    DOT_PRECISION: tl.constexpr,  # "ieee", "tf32" or "tf32x3"
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_S: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)  # N * D can pass 2^31
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    sig = tl.arange(0, BLOCK_S)
    a = tl.load(a_ptr + sig, mask=sig < S, other=1.0)  # padded sigmas: finite junk, never stored
    x_sq = tl.load(x_sq_ptr + rows, mask=row_ok, other=0.0)
    acc_t = x_sq.dtype
    row_min = tl.full((BLOCK_N,), float("inf"), acc_t)
    sums = tl.zeros((BLOCK_N, BLOCK_S), acc_t)
    for m0 in range(0, M, BLOCK_M):
        cols = m0 + tl.arange(0, BLOCK_M)
        col_ok = cols < M
        dots = tl.zeros((BLOCK_N, BLOCK_M), acc_t)
        for d0 in range(0, D, BLOCK_D):
            feats = d0 + tl.arange(0, BLOCK_D)
            f_ok = feats < D
            xt = tl.load(x_ptr + rows[:, None] * D + feats[None, :], mask=row_ok[:, None] & f_ok[None, :], other=0.0)
            ct = tl.load(c_ptr + cols[None, :].to(tl.int64) * D + feats[:, None], mask=col_ok[None, :] & f_ok[:, None],
                         other=0.0)
            dots += tl.dot(xt, ct, input_precision=DOT_PRECISION, out_dtype=acc_t)
        c_sq = tl.load(c_sq_ptr + cols, mask=col_ok, other=0.0)
        d2 = tl.maximum(x_sq[:, None] + c_sq[None, :] - 2 * dots, 0.0)
        d2 = tl.where(col_ok[None, :], d2, float("inf"))
        new_min = tl.minimum(row_min, tl.min(d2, axis=1))
        # Rescale the sums to the new minimum (0 * exp(-inf) = 0 on the first tile), then add the tile.
        sums = sums * tl.exp((new_min - row_min)[:, None] * a[None, :])
        t = (d2 - new_min[:, None])[:, None, :] * a[None, :, None]  # [BLOCK_N, BLOCK_S, BLOCK_M]
        sums += tl.sum(tl.exp(-t), axis=2)
        row_min = new_min
    lse = -row_min[:, None] * a[None, :] + tl.log(sums)
    tl.store(out_ptr + rows[:, None] * S + sig[None, :], lse.to(out_ptr.dtype.element_ty),
             mask=row_ok[:, None] & (sig[None, :] < S))


def parzen_logsumexp_forward(x, centers, sigmas, precision):
    """lse [N, S] for centred x [N, D], centers [M, D] and sigmas [S] of one dtype (float32/float64)."""
    n, d = x.shape
    m, s = centers.shape[0], sigmas.numel()
    out = torch.empty((n, s), dtype=x.dtype, device=x.device)
    if n == 0:
        return out
    x, centers = x.contiguous(), centers.contiguous()
    x_sq, c_sq = (x * x).sum(1), (centers * centers).sum(1)
    a = (1 / (2 * sigmas * sigmas)).contiguous()
    # tl.dot wants >= 16 per side; 32 x 64 tiles keep the [BLOCK_N, BLOCK_S, BLOCK_M] exponent block in
    # registers for up to 16 sigmas. Not tuned on a GPU.
    block_s = max(2, triton.next_power_of_2(s))
    block_d = 32 if d >= 32 else 16
    grid = (triton.cdiv(n, 32),)
    _parzen_logsumexp_fwd_kernel[grid](
        x, centers, x_sq, c_sq, a, out, n, m, d, s,
        DOT_PRECISION={"fp32": "ieee", "fp64": "ieee"}.get(precision, precision),
        BLOCK_N=32, BLOCK_M=64, BLOCK_D=block_d, BLOCK_S=block_s,
    )
    return out
