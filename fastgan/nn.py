"""nn.Modules over fastgan's fused ops, for use in any GAN code."""
import torch

from .ops import gan_loss


class GANLoss(torch.nn.Module):
    """The GAN log-loss on D's logits, fused (fastgan.ops.gan_loss).

    loss = GANLoss(saturating=False)
    d_loss = loss.discriminator(d(x), d(g(z).detach()))   # -V(D, G)
    g_loss = loss.generator(d(g(z)))                        # -mean log D(G(z)), or mean log(1 - D(G(z)))

    forward(real_logits, fake_logits) is the discriminator loss, so the module drops in where
    BCEWithLogits on real/fake targets was. return_stats=True makes each call also return DStats.
    """

    def __init__(self, saturating=False, backend="auto", return_stats=False, check_finite=True):
        super().__init__()
        self.saturating = saturating
        self.backend = backend
        self.return_stats = return_stats
        self.check_finite = check_finite

    def _options(self):
        return dict(backend=self.backend, return_stats=self.return_stats, check_finite=self.check_finite)

    def discriminator(self, real_logits, fake_logits):
        return gan_loss.discriminator_loss(real_logits, fake_logits, **self._options())

    def generator(self, fake_logits):
        return gan_loss.generator_loss(fake_logits, saturating=self.saturating, **self._options())

    forward = discriminator

    def extra_repr(self):
        return f"saturating={self.saturating}, backend={self.backend!r}"
