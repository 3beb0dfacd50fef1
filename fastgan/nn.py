"""nn.Modules over fastgan's fused ops, for use in any GAN code, and eval_mode for evaluating them."""
import contextlib
import math

import torch
import torch.nn.functional as F

from .ops import gan_loss, maxout
from .ops.linear import linear, takes_f_linear


class GANLoss(torch.nn.Module):
    """The GAN log-loss on D's logits, fused (fastgan.ops.gan_loss).

    loss = GANLoss(saturating=False)
    d_loss = loss.discriminator(d(x), d(g(z).detach()))   # -V(D, G)
    g_loss = loss.generator(d(g(z)))                        # -mean log D(G(z)), or mean log(1 - D(G(z)))

    forward(real_logits, fake_logits) is the discriminator loss, so the module drops in where
    BCEWithLogits on real/fake targets was. return_stats=True makes each call also return DStats.
    linear_discriminator / linear_generator take D's last hidden layer and its output layer's weight and
    bias instead of logits, fusing that layer too (fastgan.linear_discriminator_loss): the logits never exist.
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

    def linear_discriminator(self, h_real, h_fake, weight, bias=None):
        return gan_loss.linear_discriminator_loss(h_real, h_fake, weight, bias, **self._options())

    def linear_generator(self, h_fake, weight, bias=None):
        return gan_loss.linear_generator_loss(h_fake, weight, bias, saturating=self.saturating, **self._options())

    forward = discriminator

    def extra_repr(self):
        return f"saturating={self.saturating}, backend={self.backend!r}"


class Linear(torch.nn.Linear):
    """nn.Linear (same parameters, names, initialisation and state_dict) on fastgan.ops.linear: CPU float32
    products on the CPU's faster GEMM library, and plain F.linear wherever that was measured faster.

    Each input kind (shapes, dtypes, devices, grad mode) is checked and routed once; after that a call costs a
    dict lookup on top of F.linear (a full fastgan.ops.linear call added ~40 us to a 36 us 64 x 100 -> 128
    forward on an AVX2 AMD EPYC, which lost it the small layers)."""

    def __init__(self, in_features, out_features, bias=True, backend="auto", device=None, dtype=None):
        super().__init__(in_features, out_features, bias, device, dtype)
        self.backend = backend
        self._f_linear = {}  # input kind -> whether it runs plain F.linear

    def forward(self, x):
        if torch.compiler.is_compiling() or torch.jit.is_tracing() or type(x) is not torch.Tensor:
            return linear(x, self.weight, self.bias, backend=self.backend)
        w = self.weight
        kind = (x.shape, x.dtype, x.device, x.requires_grad, w.shape, w.dtype, w.device, w.requires_grad,
                torch.is_grad_enabled(), torch._C._functorch.peek_interpreter_stack() is None, torch.get_num_threads())
        routes = self.__dict__.setdefault("_f_linear", {})  # (a module unpickled from before it existed has none)
        plain = routes.get(kind)
        if plain is None:
            y = linear(x, w, self.bias, backend=self.backend)  # checks the arguments
            if len(routes) >= 256:  # inputs of ever new shapes: keep the table small
                routes.clear()
            routes[kind] = takes_f_linear(x, w, self.backend)
            return y
        return F.linear(x, w, self.bias) if plain else linear(x, w, self.bias, backend=self.backend)

    def extra_repr(self):
        return f"{super().extra_repr()}, backend={self.backend!r}"


class MaxoutLinear(torch.nn.Module):
    """The paper's discriminator layer: nn.Linear(in_features, units * pieces), maxout over each unit's
    `pieces` consecutive outputs, then dropout p on the units, fused (fastgan.ops.maxout_linear).

    Its parameters are those of nn.Linear(in_features, units * pieces), with the same names, shapes and
    initialisation, so it loads such a Linear's state_dict unchanged.
    """

    def __init__(self, in_features, units, pieces, p=0.0, bias=True, backend="auto", device=None, dtype=None):
        super().__init__()
        self.in_features, self.units, self.pieces, self.p, self.backend = in_features, units, pieces, p, backend
        factory = dict(device=device, dtype=dtype)
        self.weight = torch.nn.Parameter(torch.empty(units * pieces, in_features, **factory))
        self.bias = torch.nn.Parameter(torch.empty(units * pieces, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        # nn.Linear's initialisation, so swapping the modules changes nothing but speed
        torch.nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x, seed=None):
        """seed: the dropout mask's Philox key; None draws one from torch's generator (a host read that
        torch.compile(fullgraph=True) cannot trace: pass it there)."""
        return maxout.maxout_linear(x, self.weight, self.bias, self.pieces, self.p, self.training, seed,
                                    backend=self.backend)

    def extra_repr(self):
        return (f"in_features={self.in_features}, units={self.units}, pieces={self.pieces}, p={self.p}, "
                f"bias={self.bias is not None}, backend={self.backend!r}")


class Maxout(torch.nn.Module):
    """Maxout over groups of `pieces` consecutive features along `dim`, then dropout p
    (fastgan.ops.maxout_dropout): dim=-1 after a Linear, dim=1 over a convolution's channels."""

    def __init__(self, pieces, p=0.0, dim=-1, backend="auto"):
        super().__init__()
        self.pieces, self.p, self.dim, self.backend = pieces, p, dim, backend

    def forward(self, z, seed=None):
        return maxout.maxout_dropout(z, self.pieces, self.p, self.training, seed, dim=self.dim, backend=self.backend)

    def extra_repr(self):
        return f"pieces={self.pieces}, p={self.p}, dim={self.dim}, backend={self.backend!r}"


class MaxoutConv2d(torch.nn.Conv2d):
    """A convolution to units * pieces channels, maxout over each unit's `pieces` consecutive channels at every
    position, then dropout p, the maxout and dropout fused (fastgan.ops.maxout_dropout with dim=1).

    Its parameters are those of nn.Conv2d(in_channels, units * pieces, ...), so it loads such a state_dict.
    """

    def __init__(self, in_channels, units, pieces, kernel_size, stride=1, padding=0, p=0.0, backend="auto",
                 device=None, dtype=None):
        super().__init__(in_channels, units * pieces, kernel_size, stride, padding, device=device, dtype=dtype)
        self.units, self.pieces, self.p, self.backend = units, pieces, p, backend

    def forward(self, x, seed=None):
        return maxout.maxout_dropout(super().forward(x), self.pieces, self.p, self.training, seed, dim=1,
                                     backend=self.backend)

    def extra_repr(self):
        return super().extra_repr() + f", units={self.units}, pieces={self.pieces}, p={self.p}, backend={self.backend!r}"


@contextlib.contextmanager
def eval_mode(*modules):
    """Puts the modules in eval mode (dropout off) for the block and gives each its own mode back after it,
    also when an exception leaves the block."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)
