"""fastgan's fused ops. Each takes backend="auto" | "cuda" | "triton" | "cpu" | "torch"."""
from ._common import check_tensor
from .gan_loss import DStats, discriminator_loss, generator_loss, linear_discriminator_loss, linear_generator_loss
from .linear import linear
from .maxout import maxout_dropout, maxout_linear
from .parzen import parzen_log_density

__all__ = ["DStats", "check_tensor", "discriminator_loss", "generator_loss", "linear_discriminator_loss",
           "linear_generator_loss",
           "linear", "maxout_dropout", "maxout_linear", "parzen_log_density"]
