"""The two entries of every fused op (fastgan/ops/_common.py FusedOp): a plain eager call runs the kernel in a
torch.autograd.Function, anything else (torch.compile, a torch function or dispatch mode, a tensor subclass)
goes through the registered custom op. Both must give the same outputs and gradients, bit for bit: they run
the same implementation and the same backward formula."""

import pytest
import torch
from torch.overrides import TorchFunctionMode

from fastgan import backends
from fastgan.ops import gan_loss, maxout
from fastgan.ops.linear import linear_op

SEED, OFFSET = 2**40 + 12345, 2**32 - 100


class RecordOps(TorchFunctionMode):
    """Records the functions called under it (a custom op call shows as its OpOverload)."""

    def __init__(self):
        super().__init__()
        self.called = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.called.append(str(func))
        return func(*args, **(kwargs or {}))


def _maxout_linear(x, w, b):
    return maxout.maxout_linear_forward(x, w, b, 3, 0.5, SEED, OFFSET, "cpu")[0]


def _maxout_dropout(z):
    return maxout.maxout_dropout_forward(z, 3, 0.5, SEED, OFFSET, "cpu")[0]


def _gan_logloss_linear(h_real, h_fake, w, b):
    return gan_loss.gan_logloss_linear(h_real, h_fake, w, b, 1 / 5, 1 / 4, True, "cpu")[0]


CASES = [
    ("maxout_dropout_forward", _maxout_dropout, [(6, 12, 1)]),
    ("maxout_linear_forward", _maxout_linear, [(6, 7), (12, 7), (12,)]),
    ("gan_logloss_linear", _gan_logloss_linear, [(5, 8), (4, 8), (8,), (1,)]),
    ("linear", linear_op, [(6, 7), (5, 7), (5,)]),
]


@pytest.mark.parametrize("name,call,shapes", CASES, ids=[c[0] for c in CASES])
def test_eager_entry_matches_the_custom_op(name, call, shapes):
    torch.manual_seed(0)
    inputs = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    out = call(*inputs)
    # the direct entry: autograd records the Function, not the custom op's generated backward
    assert type(out.grad_fn).__name__ == f"{name}Backward", type(out.grad_fn).__name__
    grads = torch.autograd.grad(out.sum(), inputs)

    recorder = RecordOps()
    with recorder:
        traced = call(*inputs)
    assert f"fastgan.{name}.default" in recorder.called, recorder.called
    assert "GeneratedBackwardFor_fastgan" in type(traced.grad_fn).__name__
    traced_grads = torch.autograd.grad(traced.sum(), inputs)

    assert torch.equal(out, traced)
    for g, h in zip(grads, traced_grads):
        assert torch.equal(g, h)


def test_no_grad_call_runs_the_kernel_alone():
    z = torch.randn(4, 6, 1)
    y, argmax = maxout.maxout_dropout_forward(z, 2, 0.0, 0, 0, "cpu")
    assert y.grad_fn is None and argmax.dtype == torch.int8
    assert torch.equal(y, z.view(4, 3, 2).amax(-1, keepdim=True).view(4, 3, 1))


def test_jit_trace_records_the_custom_op():
    z = torch.randn(4, 6, 1)
    traced = torch.jit.trace(lambda z: maxout.maxout_dropout_forward(z, 3, 0.0, 0, 0, "cpu")[0], (z,))
    assert "fastgan::maxout_dropout_forward" in str(traced.graph)
    assert torch.equal(traced(z), z.view(4, 2, 3).amax(-1, keepdim=True))


def test_backend_choice_carries_the_compile_constant_mark():
    """backends marks _resolve the way torch.compiler.assume_constant_result does, without importing torch._dynamo
    at import time; if torch's decorator ever sets something else, this fails (and compiled steps would break)."""
    def probe():
        return None

    assert torch.compiler.assume_constant_result(probe) is probe and probe._dynamo_marked_constant is True
    assert backends._resolve._dynamo_marked_constant is True
