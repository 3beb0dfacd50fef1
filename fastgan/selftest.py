"""Every backend that runs here against the float64 reference, forward and backward, on the user's own hardware.

    from fastgan import selftest
    rows = selftest.run("cpu")        # [Check(op, backend, max_error, tolerance), ...]
    print(selftest.table(rows))

Each op runs on small odd shapes (past the kernels' 16-wide vector groups and 16 x 16 tiles) in float32; its
outputs and input gradients are compared with the same op on the float64 reference (fastgan.reference, through
backend="torch" on float64 copies of the inputs). The dropout masks must also be the same bits on every backend
for one seed. The tolerance 1e-4, absolute and relative, covers float32 sums over at most 64 terms of O(1)
values (a few ulps of 2^-23 each) with a wide margin; a wrong kernel is off by O(1).
"""
from typing import Callable, List, NamedTuple

import torch

from . import backends
from .ops import (discriminator_loss, generator_loss, linear, linear_discriminator_loss, maxout_dropout, maxout_linear,
                  parzen_log_density)

__all__ = ["TOLERANCE", "Check", "run", "table"]

TOLERANCE = 1e-4
SEED = 20141208  # the paper's NIPS date


class Check(NamedTuple):
    op: str
    backend: str
    max_error: float  # max over outputs and gradients of |got - want| / (1 + |want|)
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_error <= self.tolerance  # NaN fails


def _inputs(device, generator):
    def draw(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=generator, dtype=torch.float64)).to(device)

    return {
        "maxout_dropout": (draw(5, 17 * 3),),
        "maxout_dropout conv": (draw(3, 2 * 17, 5, 3),),
        "maxout_linear": (draw(19, 13), draw(17 * 5, 13, scale=13**-0.5), draw(17 * 5)),
        "gan losses": (draw(37, scale=3), draw(41, scale=3)),
        "linear gan loss": (draw(19, 7), draw(23, 7), draw(7, scale=7**-0.5), draw(1)),
        "parzen_log_density": (torch.rand(13, 10, generator=generator, dtype=torch.float64).to(device),
                               torch.rand(17, 10, generator=generator, dtype=torch.float64).to(device)),
        "linear": (draw(19, 13), draw(17, 13, scale=13**-0.5), draw(17)),
    }


def _ops(backend) -> dict:
    """op name -> f(*tensors) -> outputs, on `backend`."""
    b = dict(backend=backend)
    return {
        "maxout_dropout": lambda z: [maxout_dropout(z, 3, 0.5, seed=SEED, **b)],
        "maxout_dropout conv": lambda z: [maxout_dropout(z, 2, 0.5, seed=SEED, dim=1, **b)],
        "maxout_linear": lambda x, w, bias: [maxout_linear(x, w, bias, 5, 0.5, seed=SEED, **b)],
        "gan losses": lambda r, f: [discriminator_loss(r, f, **b), generator_loss(f, **b),
                                    generator_loss(f, saturating=True, **b)],
        "linear gan loss": lambda hr, hf, w, bias: [linear_discriminator_loss(hr, hf, w, bias, **b)],
        "parzen_log_density": lambda x, c: [parzen_log_density(x, c, [0.3, 1.0], **b)],
        "linear": lambda x, w, bias: [linear(x, w, bias, **b)],
    }


def _outputs_and_grads(fn: Callable, tensors, dtype):
    leaves = [t.detach().to(dtype).requires_grad_() for t in tensors]
    outputs = fn(*leaves)
    total = sum((o.double() * (1 + torch.arange(o.numel(), device=o.device).reshape(o.shape) % 3)).sum()
                for o in outputs)
    grads = torch.autograd.grad(total, leaves, allow_unused=True)
    return [o.detach().double() for o in outputs] + [g.double() for g in grads if g is not None]


def _error(got, want) -> float:
    if len(got) != len(want):
        return float("inf")
    return max(((g - w).abs() / (1 + w.abs())).max().item() if w.numel() else 0.0 for g, w in zip(got, want))


def _mask_check(device, names) -> Check:
    """The dropout mask of one seed, bit for bit the same on every backend (maxout with one piece is dropout)."""
    ones = torch.ones(7, 1000, device=device)
    masks = [maxout_dropout(ones, 1, 0.5, seed=SEED, backend=b) for b in names]
    differ = max(float((m != masks[0]).sum().item()) for m in masks)
    return Check("dropout mask, same seed", "/".join(names), differ, 0.0)


def run(device="cpu") -> List[Check]:
    """One Check per (op, available backend) on `device`, and one for the dropout masks across them."""
    device = torch.device(device)
    names = [b for b in backends.available(device.type) if b != "torch" or device.type == "cpu"]
    if "torch" not in names:
        names.append("torch")
    generator = torch.Generator().manual_seed(SEED)
    inputs = _inputs(device, generator)
    reference = {op: _outputs_and_grads(fn, inputs[op], torch.float64) for op, fn in _ops("torch").items()}
    checks = []
    for backend in names:
        for op, fn in _ops(backend).items():
            checks.append(Check(op, backend, _error(_outputs_and_grads(fn, inputs[op], torch.float32), reference[op]),
                                TOLERANCE))
    checks.append(_mask_check(device, names))
    return checks


def table(checks: List[Check]) -> str:
    lines = ["| op | backend | result | max error | tolerance |", "|---|---|---|---|---|"]
    for c in checks:
        lines.append(f"| {c.op} | {c.backend} | {'ok' if c.ok else 'MISMATCH'} | {c.max_error:.2e} | "
                     f"{c.tolerance:.0e} |")
    return "\n".join(lines)
