"""fastgan: fused CPU/CUDA/Triton kernels for Generative Adversarial Nets (Goodfellow et al., 2014)."""
from . import backends, ops, reference
from .backends import BackendUnavailable
from .ops import discriminator_loss, generator_loss, linear_discriminator_loss, linear_generator_loss

__version__ = "0.1.0"
__all__ = [
    "BackendUnavailable",
    "backends",
    "discriminator_loss",
    "generator_loss",
    "linear_discriminator_loss",
    "linear_generator_loss",
    "ops",
    "reference",
]
