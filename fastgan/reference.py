"""Pure-PyTorch definitions of fastgan's ops: the specification the fused kernels are tested against
(in float64), and the "torch" backend. Written for clarity, not speed.
"""
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
    empty = real.new_empty(0)
    grad_real = -real_weight * torch.sigmoid(-real) if compute_grad else empty
    grad_fake = fake_weight * torch.sigmoid(fake) if compute_grad else empty
    nan = torch.isnan(real).sum() + torch.isnan(fake).sum()
    stats = torch.stack([*d_stats(real, fake), nan]).float()
    return loss, grad_real, grad_fake, stats


def gan_logloss_linear(h_real, h_fake, weight, bias, real_weight, fake_weight, compute_grad):
    """gan_logloss on logits h @ weight + bias, with the gradients for h, weight and bias."""
    real, fake = h_real @ weight + bias, h_fake @ weight + bias
    loss, g_real, g_fake, stats = gan_logloss(real, fake, real_weight, fake_weight, compute_grad)
    if not compute_grad:
        empty = weight.new_empty(0)
        return loss, empty, empty, empty, empty, stats
    grad_weight = h_real.t() @ g_real + h_fake.t() @ g_fake
    grad_bias = (g_real.sum() + g_fake.sum()).reshape(1)
    return loss, g_real[:, None] * weight, g_fake[:, None] * weight, grad_weight, grad_bias, stats
