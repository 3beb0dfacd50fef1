"""fastgan: fused CPU/CUDA/Triton kernels for Generative Adversarial Nets (Goodfellow et al., 2014)."""
from . import backends, nn, ops, reference
from .backends import BackendUnavailable
from .evaluate import parzen_log_likelihood
from .models import Discriminator, Generator
from .ops import (discriminator_loss, generator_loss, linear_discriminator_loss, linear_generator_loss, maxout_dropout,
                  maxout_linear, parzen_log_density)

__version__ = "0.1.0"
__all__ = [
    "BackendUnavailable",
    "Discriminator",
    "Generator",
    "backends",
    "nn",
    "discriminator_loss",
    "generator_loss",
    "linear_discriminator_loss",
    "linear_generator_loss",
    "maxout_dropout",
    "maxout_linear",
    "ops",
    "parzen_log_density",
    "parzen_log_likelihood",
    "reference",
]
