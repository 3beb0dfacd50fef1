"""Pure-PyTorch definitions of fastgan's ops: the specification the fused kernels are tested against
(in float64), and the "torch" backend. Written for clarity, not speed.
"""
import math

import torch
import torch.nn.functional as F


def _mean(x):
    """Mean that is 0 for an empty batch (an empty half of the loss contributes nothing)."""
    return x.sum() / max(x.numel(), 1)


# --- GAN log-loss -------------------------------------------------------------------------------------
# D(x) = sigmoid(l). The paper's value function V(D, G) = E log D(x) + E log(1 - D(G(z))) (eq. 1), with
# log sigmoid(l) = -softplus(-l) and log(1 - sigmoid(l)) = -softplus(l), so every form below is finite
# for any finite logit.


def discriminator_loss(real_logits, fake_logits):
    """-V(D, G) = mean softplus(-l_real) + mean softplus(l_fake): D ascends V by descending this."""
    return _mean(F.softplus(-real_logits)) + _mean(F.softplus(fake_logits))


def generator_loss(fake_logits, saturating=False):
    """Saturating: mean log(1 - D(G(z))) = -mean softplus(l_fake), the paper's minimax G objective.
    Non-saturating: -mean log D(G(z)) = mean softplus(-l_fake), the paper's recommended alternative."""
    return -_mean(F.softplus(fake_logits)) if saturating else _mean(F.softplus(-fake_logits))


def d_stats(real_logits, fake_logits):
    """mean D(x), mean D(G(z)) and D's accuracy (real logits > 0, fake < 0); 0 for an empty half."""
    n = real_logits.numel() + fake_logits.numel()
    correct = (real_logits > 0).sum() + (fake_logits < 0).sum()
    return _mean(torch.sigmoid(real_logits)), _mean(torch.sigmoid(fake_logits)), correct / max(n, 1)


def gan_logloss(real, fake, real_weight, fake_weight, compute_grad):
    """The kernels' contract: real_weight * sum softplus(-real) + fake_weight * sum softplus(fake), the
    gradient with respect to each logit, and stats [mean D(real), mean D(fake), accuracy, #NaN]."""
    loss = real_weight * F.softplus(-real).sum() + fake_weight * F.softplus(fake).sum()
    grad_real = -real_weight * torch.sigmoid(-real) if compute_grad else real.new_empty(0)
    grad_fake = fake_weight * torch.sigmoid(fake) if compute_grad else fake.new_empty(0)
    nan = torch.isnan(real).sum() + torch.isnan(fake).sum()
    stats = torch.stack([*d_stats(real, fake), nan]).float()
    return loss, grad_real, grad_fake, stats


def gan_logloss_linear(h_real, h_fake, weight, bias, real_weight, fake_weight, compute_grad):
    """gan_logloss on logits h @ weight + bias, with the gradients for h, weight and bias."""
    real, fake = h_real @ weight + bias, h_fake @ weight + bias
    loss, g_real, g_fake, stats = gan_logloss(real, fake, real_weight, fake_weight, compute_grad)
    if not compute_grad:
        return (loss, *(weight.new_empty(0) for _ in range(4)), stats)
    grad_weight = h_real.t() @ g_real + h_fake.t() @ g_fake
    grad_bias = (g_real.sum() + g_fake.sum()).reshape(1)
    return loss, g_real[:, None] * weight, g_fake[:, None] * weight, grad_weight, grad_bias, stats


# --- Parzen window log-density --------------------------------------------------------------------------
# The paper's evaluation (section 5, Table 1): a Gaussian kernel of width sigma on every generated sample
# mu_j, log p(x) = log (1/M) sum_j N(x; mu_j, sigma^2 I). Run it in float64 for ground truth.


def parzen_logsumexp(x, centers, sigmas):
    """[N, S]: logsumexp_j(-|x_i - mu_j|^2 / 2 sigma_s^2) for x [N, D], centers [M, D], sigmas [S].

    Distances in the expanded form |x|^2 + |mu|^2 - 2 x.mu on data centred by the centres' mean
    (the cancellation grows with the norms), clamped at 0.
    """
    shift = centers.mean(0)
    x, centers = x - shift, centers - shift
    d2 = ((x * x).sum(1, keepdim=True) + (centers * centers).sum(1) - 2 * x @ centers.T).clamp_min(0)
    return torch.logsumexp(-d2[:, None, :] / (2 * sigmas[:, None] ** 2), dim=-1)


def parzen_log_density(x, centers, sigmas):
    """[N, S]: log (1/M) sum_j N(x_i; mu_j, sigma_s^2 I) = parzen_logsumexp - log M - D log(sigma_s sqrt(2 pi))."""
    norm = math.log(centers.shape[0]) + x.shape[1] * torch.log(sigmas * math.sqrt(2 * math.pi))
    return parzen_logsumexp(x, centers, sigmas) - norm


# --- Maxout + dropout ---------------------------------------------------------------------------------
# Maxout (Goodfellow et al. 2013), as the paper's discriminator uses it: unit u of a row is the max over
# its K pieces z[..., u*K : u*K + K] (the layout of nn.Linear(d, U*K) + .view(..., U, K).amax(-1)).
# Over a channel dim, z is viewed as [R, U*K, inner] (inner = the product of the dims after it; a dense
# z [R, U*K] has inner = 1): element (r, u, i) of y [R, U, inner] is the max of z[r, u*K + k, i].
# The argmax is the first piece holding the maximum, a NaN counting as the maximum (so NaN propagates);
# the gradient goes to that one piece. Inverted dropout then keeps element (r, u, i) when the Philox
# uniform at element index offset + (r*U + u)*inner + i (its flat index in y; offset + r*U + u for a
# dense z) is > p, scaling it by 1/(1-p); a dropped element is exactly 0, even when its max is inf or NaN.
# Every backend uses this index and this stream, so one seed gives one mask.

# Philox4x32-10 constants, as in triton/language/random.py.
_PHILOX_ROUND_A, _PHILOX_ROUND_B = 0xD2511F53, 0xCD9E8D57
_PHILOX_KEY_A, _PHILOX_KEY_B = 0x9E3779B9, 0xBB67AE85
_MASK32 = 0xFFFFFFFF
# float32 (2^24 - 1) / 2^24 * 2^-31 (Triton's 4.6566127342e-10): maps the int31 below into [0, 1).
_UINT_TO_UNIFORM = float.fromhex("0x1.fffffep-32")


def _mulhilo32(a, b):
    """(high, low) 32-bit words of the constant a times b (an int64 tensor of uint32 values), in int64
    arithmetic: b is split into 16-bit halves so no product passes 2^48."""
    lo_part, hi_part = a * (b & 0xFFFF), a * (b >> 16)
    return (hi_part + (lo_part >> 16)) >> 16, (((hi_part & 0xFFFF) << 16) + lo_part) & _MASK32


def philox_uniform(seed, offsets):
    """float32 uniforms in [0, 1), bit-identical to Triton's tl.rand(seed, offsets) for int64 offsets.

    Counter (offset low word, offset high word, 0, 0), key (seed low word, seed high word), ten rounds,
    first output word; the word is read as int32, x < 0 -> -x - 1, times 2^-31 (rounded to float32).
    """
    c0, c1 = offsets & _MASK32, (offsets >> 32) & _MASK32
    c2, c3 = torch.zeros_like(c0), torch.zeros_like(c0)
    k0, k1 = seed & _MASK32, (seed >> 32) & _MASK32
    for _ in range(10):
        hi_b, lo_b = _mulhilo32(_PHILOX_ROUND_B, c2)
        hi_a, lo_a = _mulhilo32(_PHILOX_ROUND_A, c0)
        c0, c1, c2, c3 = hi_b ^ c1 ^ k0, lo_b, hi_a ^ c3 ^ k1, lo_a
        k0, k1 = (k0 + _PHILOX_KEY_A) & _MASK32, (k1 + _PHILOX_KEY_B) & _MASK32
    int31 = torch.where(c0 >= 2**31, c0 ^ _MASK32, c0)
    return int31.to(torch.float32) * torch.tensor(_UINT_TO_UNIFORM, dtype=torch.float32)


def dropout_keep(seed, shape, p, offset, device=None):
    """Bool tensor of `shape` (y's): which elements dropout keeps (uniform > p, compared in float32), the
    Philox index of an element being offset + its row-major flat index."""
    index = offset + torch.arange(math.prod(shape), dtype=torch.int64, device=device).reshape(shape)
    return philox_uniform(seed, index) > torch.tensor(p, dtype=torch.float32)


def maxout_argmax(z, pieces):
    """(max, argmax as int8) [R, U(, inner)] over the pieces of z [R, U*K] or [R, U*K, inner]: first
    maximum, NaN wins."""
    z = z.unflatten(1, (z.shape[1] // pieces, pieces))  # piece k of every unit: z.select(2, k)
    best = z.select(2, 0)
    index = torch.zeros(best.shape, dtype=torch.int8, device=z.device)
    for k in range(1, pieces):
        v = z.select(2, k)
        take = (v > best) | (v.isnan() & ~best.isnan())
        best = torch.where(take, v, best)
        index = torch.where(take, k, index).to(torch.int8)
    return best, index


def maxout_dropout(z, pieces, p, seed, offset):
    """The kernels' contract on z [R, U*K(, inner)]: (y [R, U(, inner)], argmax int8 of y's shape); p = 0
    draws nothing."""
    best, argmax = maxout_argmax(z, pieces)
    if p == 0:
        return best, argmax
    keep = dropout_keep(seed, best.shape, p, offset, z.device)
    return torch.where(keep, best * (1.0 / (1.0 - p)), 0.0).to(z.dtype), argmax


def maxout_dropout_backward(grad_y, argmax, pieces, p, seed, offset):
    """d loss / d z [R, U*K(, inner)]: grad_y [R, U(, inner)] (times the kept mask / (1-p)) lands on each
    element's argmax piece."""
    grad = grad_y
    if p != 0:
        keep = dropout_keep(seed, grad_y.shape, p, offset, grad_y.device)
        grad = torch.where(keep, grad_y * (1.0 / (1.0 - p)), 0.0).to(grad_y.dtype)
    k = torch.arange(pieces, device=grad_y.device).reshape(pieces, *[1] * (grad_y.dim() - 2))
    onehot = argmax.long().unsqueeze(2) == k  # [R, U, K(, inner)]
    return torch.where(onehot, grad.unsqueeze(2), 0.0).to(grad_y.dtype).flatten(1, 2)


def maxout_linear(x, weight, bias, pieces, p, seed, offset):
    """maxout_dropout(x @ weight.T + bias): the discriminator's layer, x [R, D], weight [U*K, D], bias [U*K]."""
    return maxout_dropout(F.linear(x, weight, bias), pieces, p, seed, offset)
