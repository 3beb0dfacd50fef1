"""Triton kernels of the GAN log-loss (see fastgan/reference.py: gan_logloss, gan_logloss_linear).

Pass 1 (_gan_logloss_fwd_kernel): one program per BLOCK logits writes each logit's gradient and one
row of partial sums [loss, sum D(real), sum D(fake), #correct, #NaN, sum grad]. Pass 2
(_gan_logloss_finish_kernel) adds the rows in order, so the result does not depend on scheduling.
The linear variant computes the logits h @ w + b block by block and never stores them.
"""
import torch
import triton
import triton.language as tl

N_PARTIALS = 6  # loss, sum D(real), sum D(fake), #correct, #NaN, sum of d loss / d logit (= d loss / d bias)


@triton.jit
def _log1p_small(e):
    # log(1 + e) for 0 <= e <= 1, with log1p's precision for tiny e (where 1 + e rounds to 1).
    return tl.where(e < 1e-4, e - 0.5 * e * e, tl.log(1.0 + e))


@triton.jit
def _logloss_terms(logit, weight, TARGET_REAL: tl.constexpr):
    """Per-logit loss, gradient and D's probability; softplus(x) = max(x, 0) + log1p(exp(-|x|))."""
    e = tl.exp(-tl.abs(logit))
    prob = tl.where(logit >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    if TARGET_REAL:
        # loss = softplus(-l), d/dl = -sigmoid(-l) (= prob - 1, kept precise when prob rounds to 1)
        loss = weight * (tl.maximum(-logit, 0.0) + _log1p_small(e))
        grad = -weight * tl.where(logit >= 0, e / (1.0 + e), 1.0 / (1.0 + e))
        correct = logit > 0
    else:
        loss = weight * (tl.maximum(logit, 0.0) + _log1p_small(e))
        grad = weight * prob
        correct = logit < 0
    return loss, grad, prob, correct


@triton.jit
def _store_partials(partial_ptr, pid, loss, grad, prob, correct, logit, mask, TARGET_REAL: tl.constexpr):
    zero = tl.zeros_like(loss)
    row = partial_ptr + pid * 6
    tl.store(row + 0, tl.sum(tl.where(mask, loss, zero), axis=0))
    p = tl.sum(tl.where(mask, prob, zero), axis=0)
    tl.store(row + 1, p if TARGET_REAL else 0.0 * p)
    tl.store(row + 2, 0.0 * p if TARGET_REAL else p)
    tl.store(row + 3, tl.sum(tl.where(mask & correct, 1.0, 0.0), axis=0))
    tl.store(row + 4, tl.sum(tl.where(mask & (logit != logit), 1.0, 0.0), axis=0))
    tl.store(row + 5, tl.sum(tl.where(mask, grad, zero), axis=0))


@triton.jit
def _logloss_block(x_ptr, grad_ptr, partial_ptr, pid, block, n, weight,
                   TARGET_REAL: tl.constexpr, COMPUTE_GRAD: tl.constexpr, BLOCK: tl.constexpr):
    offs = block.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    acc_ty = tl.float64 if x_ptr.dtype.element_ty == tl.float64 else tl.float32
    logit = tl.load(x_ptr + offs, mask=mask, other=0.0).to(acc_ty)
    loss, grad, prob, correct = _logloss_terms(logit, weight, TARGET_REAL)
    if COMPUTE_GRAD:
        tl.store(grad_ptr + offs, grad.to(grad_ptr.dtype.element_ty), mask=mask)
    _store_partials(partial_ptr, pid, loss, grad, prob, correct, logit, mask, TARGET_REAL)


@triton.jit
def _gan_logloss_fwd_kernel(
    real_ptr, fake_ptr,            # logits, [n_real] and [n_fake]
    grad_real_ptr, grad_fake_ptr,  # d loss / d logit, same shapes (unused unless COMPUTE_GRAD)
    partial_ptr,                   # [programs, 6] partial sums, accumulation dtype
    n_real, n_fake, real_weight, fake_weight,
    real_blocks,                   # programs [0, real_blocks) take real logits, the rest fake ones
    COMPUTE_GRAD: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    if pid < real_blocks:
        _logloss_block(real_ptr, grad_real_ptr, partial_ptr, pid, pid, n_real, real_weight, True, COMPUTE_GRAD, BLOCK)
    else:
        _logloss_block(fake_ptr, grad_fake_ptr, partial_ptr, pid, pid - real_blocks, n_fake, fake_weight, False,
                       COMPUTE_GRAD, BLOCK)


@triton.jit
def _gan_logloss_finish_kernel(
    partial_ptr, n_programs,       # [n_programs, 6] partial sums
    loss_ptr, stats_ptr,           # [] loss, [4] float32 stats
    grad_bias_ptr,                 # [1] d loss / d bias (unused unless HAS_BIAS)
    n_real, n_fake,
    HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr,
):
    acc = tl.zeros([BLOCK, 8], dtype=partial_ptr.dtype.element_ty)
    cols = tl.arange(0, 8)
    for start in range(0, n_programs, BLOCK):
        rows = start + tl.arange(0, BLOCK)
        mask = (rows[:, None] < n_programs) & (cols[None, :] < 6)
        acc += tl.load(partial_ptr + rows[:, None] * 6 + cols[None, :], mask=mask, other=0.0)
    sums = tl.sum(acc, axis=0)
    loss = tl.sum(tl.where(cols == 0, sums, 0.0), axis=0)
    prob_real = tl.sum(tl.where(cols == 1, sums, 0.0), axis=0)
    prob_fake = tl.sum(tl.where(cols == 2, sums, 0.0), axis=0)
    correct = tl.sum(tl.where(cols == 3, sums, 0.0), axis=0)
    nan = tl.sum(tl.where(cols == 4, sums, 0.0), axis=0)
    grad_sum = tl.sum(tl.where(cols == 5, sums, 0.0), axis=0)
    tl.store(loss_ptr, loss.to(loss_ptr.dtype.element_ty))
    tl.store(stats_ptr + 0, (prob_real / tl.maximum(n_real, 1)).to(tl.float32))
    tl.store(stats_ptr + 1, (prob_fake / tl.maximum(n_fake, 1)).to(tl.float32))
    tl.store(stats_ptr + 2, (correct / tl.maximum(n_real + n_fake, 1)).to(tl.float32))
    tl.store(stats_ptr + 3, nan.to(tl.float32))
    if HAS_BIAS:
        tl.store(grad_bias_ptr, grad_sum.to(grad_bias_ptr.dtype.element_ty))


@triton.jit
def _linear_logloss_block(h_ptr, grad_h_ptr, w_ptr, b, partial_ptr, dw_partial_ptr, pid, block, n, features, weight,
                          TARGET_REAL: tl.constexpr, COMPUTE_GRAD: tl.constexpr,
                          BLOCK_R: tl.constexpr, BLOCK_H: tl.constexpr):
    rows = block.to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_mask = rows < n
    acc_ty = tl.float64 if h_ptr.dtype.element_ty == tl.float64 else tl.float32
    logit = tl.zeros([BLOCK_R], dtype=acc_ty) + b
    for k0 in range(0, features, BLOCK_H):
        cols = k0 + tl.arange(0, BLOCK_H)
        m = row_mask[:, None] & (cols[None, :] < features)
        h = tl.load(h_ptr + rows[:, None] * features + cols[None, :], mask=m, other=0.0).to(acc_ty)
        w = tl.load(w_ptr + cols, mask=cols < features, other=0.0).to(acc_ty)
        logit += tl.sum(h * w[None, :], axis=1)
    loss, grad, prob, correct = _logloss_terms(logit, weight, TARGET_REAL)
    if COMPUTE_GRAD:
        # d loss / d h = g w (stored), d loss / d w = sum_rows g h (one partial row per program)
        g = tl.where(row_mask, grad, 0.0)
        for k0 in range(0, features, BLOCK_H):
            cols = k0 + tl.arange(0, BLOCK_H)
            col_mask = cols < features
            m = row_mask[:, None] & col_mask[None, :]
            h = tl.load(h_ptr + rows[:, None] * features + cols[None, :], mask=m, other=0.0).to(acc_ty)
            w = tl.load(w_ptr + cols, mask=col_mask, other=0.0).to(acc_ty)
            tl.store(grad_h_ptr + rows[:, None] * features + cols[None, :],
                     (g[:, None] * w[None, :]).to(grad_h_ptr.dtype.element_ty), mask=m)
            tl.store(dw_partial_ptr + pid.to(tl.int64) * features + cols, tl.sum(g[:, None] * h, axis=0),
                     mask=col_mask)
    _store_partials(partial_ptr, pid, loss, grad, prob, correct, logit, row_mask, TARGET_REAL)


@triton.jit
def _gan_logloss_linear_fwd_kernel(
    h_real_ptr, h_fake_ptr,            # [n_real, H], [n_fake, H] features, row-major
    w_ptr, b_ptr,                      # [H], [1]
    grad_h_real_ptr, grad_h_fake_ptr,  # like h (unused unless COMPUTE_GRAD)
    partial_ptr, dw_partial_ptr,       # [programs, 6], [programs, H]
    n_real, n_fake, features, real_weight, fake_weight, real_blocks,
    COMPUTE_GRAD: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_H: tl.constexpr,
):
    pid = tl.program_id(0)
    b = tl.load(b_ptr)
    if pid < real_blocks:
        _linear_logloss_block(h_real_ptr, grad_h_real_ptr, w_ptr, b, partial_ptr, dw_partial_ptr, pid, pid, n_real,
                              features, real_weight, True, COMPUTE_GRAD, BLOCK_R, BLOCK_H)
    else:
        _linear_logloss_block(h_fake_ptr, grad_h_fake_ptr, w_ptr, b, partial_ptr, dw_partial_ptr, pid,
                              pid - real_blocks, n_fake, features, fake_weight, False, COMPUTE_GRAD, BLOCK_R, BLOCK_H)


# 1024 logits per program: 977 programs at 1M logits fill an H100's 132 SMs several times over.
BLOCK = 1024
FINISH_BLOCK = 256


def _acc_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def gan_logloss_forward(real, fake, real_weight, fake_weight, compute_grad):
    """Host function of the Triton path; same contract as fastgan.reference.gan_logloss."""
    real, fake = real.contiguous(), fake.contiguous()
    real_blocks, fake_blocks = triton.cdiv(real.numel(), BLOCK), triton.cdiv(fake.numel(), BLOCK)
    programs = real_blocks + fake_blocks
    grad_real = torch.empty_like(real) if compute_grad else real.new_empty(0)
    grad_fake = torch.empty_like(fake) if compute_grad else fake.new_empty(0)
    partial = torch.empty((max(programs, 1), N_PARTIALS), dtype=_acc_dtype(real.dtype), device=real.device)
    if programs:
        _gan_logloss_fwd_kernel[(programs,)](
            real, fake, grad_real, grad_fake, partial, real.numel(), fake.numel(), real_weight, fake_weight,
            real_blocks, COMPUTE_GRAD=compute_grad, BLOCK=BLOCK,
        )
    loss, stats = _finish(partial, programs, real.numel(), fake.numel(), real.dtype, None)
    return loss, grad_real, grad_fake, stats


def gan_logloss_linear_forward(h_real, h_fake, weight, bias, real_weight, fake_weight, compute_grad):
    """Host function of the Triton linear path; same contract as fastgan.reference.gan_logloss_linear."""
    h_real, h_fake, weight, bias = h_real.contiguous(), h_fake.contiguous(), weight.contiguous(), bias.contiguous()
    features = weight.numel()
    block_r = 32
    block_h = min(triton.next_power_of_2(max(features, 1)), 256)
    real_blocks, fake_blocks = triton.cdiv(h_real.shape[0], block_r), triton.cdiv(h_fake.shape[0], block_r)
    programs = real_blocks + fake_blocks
    acc = _acc_dtype(weight.dtype)
    partial = torch.empty((max(programs, 1), N_PARTIALS), dtype=acc, device=weight.device)
    dw_partial = torch.zeros((max(programs, 1), features), dtype=acc, device=weight.device)
    grad_h_real = torch.empty_like(h_real) if compute_grad else weight.new_empty(0)
    grad_h_fake = torch.empty_like(h_fake) if compute_grad else weight.new_empty(0)
    grad_bias = torch.empty_like(bias) if compute_grad else weight.new_empty(0)
    if programs:
        _gan_logloss_linear_fwd_kernel[(programs,)](
            h_real, h_fake, weight, bias, grad_h_real, grad_h_fake, partial, dw_partial,
            h_real.shape[0], h_fake.shape[0], features, real_weight, fake_weight, real_blocks,
            COMPUTE_GRAD=compute_grad, BLOCK_R=block_r, BLOCK_H=block_h,
        )
    loss, stats = _finish(partial, programs, h_real.shape[0], h_fake.shape[0], weight.dtype,
                          grad_bias if compute_grad else None)
    grad_weight = dw_partial.sum(0).to(weight.dtype) if compute_grad else weight.new_empty(0)
    return loss, grad_h_real, grad_h_fake, grad_weight, grad_bias, stats


def _finish(partial, programs, n_real, n_fake, dtype, grad_bias):
    loss = torch.empty((), dtype=dtype, device=partial.device)
    stats = torch.empty(4, dtype=torch.float32, device=partial.device)
    _gan_logloss_finish_kernel[(1,)](
        partial, programs, loss, stats, grad_bias if grad_bias is not None else loss, n_real, n_fake,
        HAS_BIAS=grad_bias is not None, BLOCK=FINISH_BLOCK,
    )
    return loss, stats
