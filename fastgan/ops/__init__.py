"""fastgan's fused ops. Each takes backend="auto" | "cuda" | "triton" | "cpu" | "torch"."""
from .gan_loss import DStats, discriminator_loss, generator_loss, linear_discriminator_loss, linear_generator_loss

__all__ = ["DStats", "discriminator_loss", "generator_loss", "linear_discriminator_loss", "linear_generator_loss"]
