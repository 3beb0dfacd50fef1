"""The GAN log-loss, fused: loss, gradient and D's statistics in one pass over the logits.

D(x) = sigmoid(l). With l_real = D's logits on data and l_fake on G(z):
  discriminator_loss = mean softplus(-l_real) + mean softplus(l_fake)   = -V(D, G), the paper's eq. 1
  generator_loss     = mean softplus(-l_fake)                           = -mean log D(G(z))  (non-saturating)
                     = -mean softplus(l_fake)                           =  mean log(1 - D(G(z)))  (saturating)
softplus never overflows, so logits of +-1e4 give exact losses and gradients (naive log(sigmoid) gives
inf and NaN). The kernel writes d loss / d logit while it computes the loss (Liger's trick), so the
backward pass is one multiplication by the incoming gradient.

Every backend implements one contract, fastgan::gan_logloss (and fastgan::gan_logloss_linear for the
variant that also takes D's last linear layer, so the logits are never stored):
  real_weight * sum softplus(-real) + fake_weight * sum softplus(fake)
The public functions choose the weights (1/n, or a negative weight for the saturating loss).
"""
from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from .. import reference
from ._common import FusedOp, check_same, check_tensor, compiled, needs_grad, pick_backend, plain_eager

__all__ = [
    "DStats",
    "discriminator_loss",
    "generator_loss",
    "linear_discriminator_loss",
    "linear_generator_loss",
]


class DStats(NamedTuple):
    """Discriminator statistics from the loss kernel, as 0-dim float32 tensors (no host sync)."""

    d_real: Tensor  # mean D(x) over the real logits
    d_fake: Tensor  # mean D(G(z)) over the fake logits
    accuracy: Tensor  # fraction of real logits > 0 and fake logits < 0


def _triton():
    from ..kernels import gan_loss

    return gan_loss


def _gan_logloss(real: Tensor, fake: Tensor, real_weight: float, fake_weight: float, compute_grad: bool,
                 backend: str) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """(loss, d loss / d real, d loss / d fake, stats[4]) on one backend; see the module docstring."""
    if backend in ("cpu", "cuda"):
        return tuple(compiled("gan_logloss", backend)(real, fake, real_weight, fake_weight, compute_grad))
    if backend == "triton":
        return _triton().gan_logloss_forward(real, fake, real_weight, fake_weight, compute_grad)
    return reference.gan_logloss(real, fake, real_weight, fake_weight, compute_grad)


def _gan_logloss_fake(real, fake, real_weight, fake_weight, compute_grad, backend):
    torch._check(real.dim() == 1 and fake.dim() == 1, lambda: "real and fake must be 1-D")
    torch._check(real.dtype == fake.dtype, lambda: "real and fake must have one dtype")
    grad_real = torch.empty_like(real) if compute_grad else real.new_empty(0)
    grad_fake = torch.empty_like(fake) if compute_grad else fake.new_empty(0)
    return real.new_empty(()), grad_real, grad_fake, real.new_empty(4, dtype=torch.float32)


def _loss_only_differentiable(ctx, output):
    """Autograd differentiates the loss (output 0) only. Otherwise it hands the backward a tensor of zeros for
    each other output: at 1M logits per side the fwd+bwd step took 774 instead of 630 us on one thread
    (448 instead of 354 us on two) filling 2 x 4 MB with zeros."""
    ctx.mark_non_differentiable(*output[1:])
    ctx.set_materialize_grads(False)


def _gan_logloss_setup_context(ctx, inputs, output):
    _, grad_real, grad_fake, _ = output
    ctx.save_for_backward(grad_real, grad_fake)
    _loss_only_differentiable(ctx, output)


def _scale(grad_loss, grads):
    """grad_loss * each gradient. loss.backward() passes 1.0: on the CPU (where the check costs no device
    sync) the saved gradients are then returned as they are, which halves the fwd+bwd memory traffic.
    Anything but plain eager (tensor subclasses, torch.compile, jit.trace, dispatch modes: see plain_eager)
    always multiplies. No grad_loss (None: grads are not materialised, see _loss_only_differentiable) means
    no input gradients."""
    if grad_loss is None:
        return (None,) * len(grads)
    if plain_eager([grad_loss]) and grad_loss.device.type == "cpu" and grad_loss.item() == 1.0:
        return tuple(grads)
    return tuple(grad_loss * g for g in grads)


def _gan_logloss_grad(ctx, grad_loss, _grad_real, _grad_fake, _stats):
    return _scale(grad_loss, ctx.saved_tensors) + (None, None, None, None)


gan_logloss = FusedOp("fastgan::gan_logloss", _gan_logloss, _gan_logloss_fake, _gan_logloss_setup_context,
                      _gan_logloss_grad)


def _gan_logloss_linear(
    h_real: Tensor, h_fake: Tensor, weight: Tensor, bias: Tensor, real_weight: float, fake_weight: float,
    compute_grad: bool, backend: str,
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(loss, d/d h_real, d/d h_fake, d/d weight, d/d bias, stats[4]) for logits h @ weight + bias."""
    args = (h_real, h_fake, weight, bias, real_weight, fake_weight, compute_grad)
    if backend in ("cpu", "cuda"):
        return tuple(compiled("gan_logloss_linear", backend)(*args))
    if backend == "triton":
        return _triton().gan_logloss_linear_forward(*args)
    return reference.gan_logloss_linear(*args)


def _gan_logloss_linear_fake(h_real, h_fake, weight, bias, real_weight, fake_weight, compute_grad, backend):
    torch._check(h_real.dim() == 2 and h_fake.dim() == 2, lambda: "h_real and h_fake must be 2-D")
    torch._check(weight.dim() == 1 and bias.shape == (1,), lambda: "weight must be [H] and bias [1]")

    def grad(t):
        return torch.empty_like(t) if compute_grad else weight.new_empty(0)

    return (weight.new_empty(()), grad(h_real), grad(h_fake), grad(weight), grad(bias),
            weight.new_empty(4, dtype=torch.float32))


def _gan_logloss_linear_setup_context(ctx, inputs, output):
    ctx.save_for_backward(*output[1:5])
    _loss_only_differentiable(ctx, output)


def _gan_logloss_linear_grad(ctx, grad_loss, *_):
    return _scale(grad_loss, ctx.saved_tensors) + (None, None, None, None)


gan_logloss_linear = FusedOp("fastgan::gan_logloss_linear", _gan_logloss_linear, _gan_logloss_linear_fake,
                             _gan_logloss_linear_setup_context, _gan_logloss_linear_grad)


# --- public API -----------------------------------------------------------------------------------------


def _weight(n):
    return 1.0 / max(n, 1)


def _check_nan(stats, names, check_finite):
    # One host sync (free on the CPU); pass check_finite=False inside CUDA graphs or hot GPU loops.
    if check_finite and not torch.compiler.is_compiling() and stats[3].item() > 0:
        raise ValueError(f"{' or '.join(names)} contains NaN ({int(stats[3].item())} values): "
                         "the discriminator's output diverged or its input holds NaN")


def _result(loss, stats, return_stats, real_side):
    if not return_stats:
        return loss
    stats = stats.detach()
    d_real, d_fake = (stats[0], stats[1]) if real_side else (stats[1], stats[0])
    return loss, DStats(d_real, d_fake, stats[2])


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, *, backend: str = "auto",
                       return_stats: bool = False, check_finite: bool = True):
    """Discriminator loss -V(D, G) = mean softplus(-real_logits) + mean softplus(fake_logits).

    Args:
        real_logits: D's logits on data, any shape, floating dtype (float16/bfloat16 on GPU backends).
        fake_logits: D's logits on G(z), any shape, same dtype and device.
        backend: "auto", "cuda", "triton", "cpu" or "torch" (see fastgan.backends).
        return_stats: also return DStats (mean D(x), mean D(G(z)), accuracy), from the same pass.
        check_finite: raise ValueError if a logit is NaN (one host sync on GPU).
    Returns:
        a 0-dim loss tensor (an empty half contributes 0), and DStats if return_stats.
    Raises:
        TypeError for a non-tensor or non-floating input or mixed dtypes, ValueError for mixed devices or
        NaN logits, BackendUnavailable when the requested backend cannot run.
    """
    check_tensor(real_logits, "real_logits")
    check_tensor(fake_logits, "fake_logits")
    check_same([real_logits, fake_logits], ["real_logits", "fake_logits"])
    chosen = pick_backend(backend, real_logits.device, real_logits.dtype)
    real, fake = real_logits.reshape(-1), fake_logits.reshape(-1)
    loss, _, _, stats = gan_logloss(real, fake, _weight(real.numel()), _weight(fake.numel()),
                                    needs_grad(real, fake), chosen)
    _check_nan(stats, ["real_logits", "fake_logits"], check_finite)
    return _result(loss, stats, return_stats, real_side=True)


def generator_loss(fake_logits: Tensor, *, saturating: bool = False, backend: str = "auto",
                   return_stats: bool = False, check_finite: bool = True):
    """Generator loss on D's logits for G(z).

    saturating=False (default): -mean log D(G(z)) = mean softplus(-fake_logits), the paper's
    recommended objective (strong gradients early in training). saturating=True: the minimax
    mean log(1 - D(G(z))) = -mean softplus(fake_logits), which G minimises. Other arguments and errors
    as discriminator_loss; stats have d_real = 0 (no real logits).
    """
    check_tensor(fake_logits, "fake_logits")
    chosen = pick_backend(backend, fake_logits.device, fake_logits.dtype)
    fake = fake_logits.reshape(-1)
    empty = fake.new_empty(0)
    w = _weight(fake.numel())
    grad = needs_grad(fake)
    if saturating:  # fake side with target 0, weight -1/n
        loss, _, _, stats = gan_logloss(empty, fake, 0.0, -w, grad, chosen)
        _check_nan(stats, ["fake_logits"], check_finite)
        return _result(loss, stats, return_stats, real_side=True)
    # target 1 ("real") side with weight 1/n; the stats come back in the real slot
    loss, _, _, stats = gan_logloss(fake, empty, w, 0.0, grad, chosen)
    _check_nan(stats, ["fake_logits"], check_finite)
    return _result(loss, stats, return_stats, real_side=False)


def _check_linear(hs, h_names, weight, bias):
    for h, name in zip(hs, h_names):
        check_tensor(h, name)
        if h.dim() != 2:
            raise ValueError(f"{name} must be 2-D [batch, features], got shape {tuple(h.shape)}")
    check_tensor(weight, "weight")
    if weight.numel() != hs[0].shape[1] or weight.dim() not in (1, 2) or (weight.dim() == 2 and weight.shape[0] != 1):
        raise ValueError(f"weight must be [features] or [1, features] (nn.Linear({hs[0].shape[1]}, 1).weight), "
                         f"got shape {tuple(weight.shape)}")
    for h, name in zip(hs[1:], h_names[1:]):
        if h.shape[1] != hs[0].shape[1]:
            raise ValueError(f"{name} has {h.shape[1]} features but {h_names[0]} has {hs[0].shape[1]}")
    if bias is None:
        bias = weight.new_zeros(1)
    check_tensor(bias, "bias")
    if bias.numel() != 1:
        raise ValueError(f"bias must have one element, got shape {tuple(bias.shape)}")
    check_same([*hs, weight, bias], [*h_names, "weight", "bias"])
    return weight.reshape(-1), bias.reshape(1)


def linear_discriminator_loss(h_real: Tensor, h_fake: Tensor, weight: Tensor, bias: Optional[Tensor] = None, *,
                              backend: str = "auto", return_stats: bool = False, check_finite: bool = True):
    """discriminator_loss(h_real @ weight.T + bias, h_fake @ weight.T + bias) without storing the logits.

    h_real [Nr, H], h_fake [Nf, H]: D's last hidden layer; weight [H] or [1, H] and bias [1] (or None):
    D's output layer, e.g. nn.Linear(H, 1). Gradients flow to h, weight and bias, computed in the forward.
    """
    w, b = _check_linear([h_real, h_fake], ["h_real", "h_fake"], weight, bias)
    chosen = pick_backend(backend, weight.device, weight.dtype)
    loss, *_, stats = gan_logloss_linear(h_real, h_fake, w, b, _weight(h_real.shape[0]), _weight(h_fake.shape[0]),
                                         needs_grad(h_real, h_fake, w, b), chosen)
    _check_nan(stats, ["h_real @ weight + bias", "h_fake @ weight + bias"], check_finite)
    return _result(loss, stats, return_stats, real_side=True)


def linear_generator_loss(h_fake: Tensor, weight: Tensor, bias: Optional[Tensor] = None, *, saturating: bool = False,
                          backend: str = "auto", return_stats: bool = False, check_finite: bool = True):
    """generator_loss(h_fake @ weight.T + bias, saturating=...) without storing the logits."""
    w, b = _check_linear([h_fake], ["h_fake"], weight, bias)
    chosen = pick_backend(backend, weight.device, weight.dtype)
    empty = h_fake.new_empty((0, h_fake.shape[1]))
    n = _weight(h_fake.shape[0])
    grad = needs_grad(h_fake, w, b)
    if saturating:
        loss, *_, stats = gan_logloss_linear(empty, h_fake, w, b, 0.0, -n, grad, chosen)
        real_side = True
    else:
        loss, *_, stats = gan_logloss_linear(h_fake, empty, w, b, n, 0.0, grad, chosen)
        real_side = False
    _check_nan(stats, ["h_fake @ weight + bias"], check_finite)
    return _result(loss, stats, return_stats, real_side=real_side)
