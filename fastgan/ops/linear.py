"""x @ weight.T + bias, as F.linear, with the CPU backend's float32 products on oneDNN.

torch's CPU GEMMs (nn.Linear, torch.mm) call MKL's sgemm, which takes AVX2 code on non-Intel CPUs; oneDNN,
which torch also ships, chooses by the CPU's features and ran the paper's shapes ~2x faster on an AMD Zen 5
with AVX-512, but slower than MKL on an AVX2-only AMD EPYC (BENCHMARKS.md). So the library is measured once per
process (fastgan.backends.cpu_gemm), and "auto" runs plain F.linear wherever it is the faster. The CPU kernels'
own tiles (maxout_linear, parzen) use the same C++ routine and library.

On the "cpu" backend this is the custom op fastgan::linear (forward, and backward through the same op:
grad_x = grad @ weight, grad_weight = grad.T @ x, each a linear on transposed views read in place). The
other backends run F.linear: on a GPU, cuBLAS is already the GEMM to use.
"""
import math
import os
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import backends
from ._common import FusedOp, check_same, check_tensor, compiled, needs_grad, pick_backend

__all__ = ["linear", "takes_f_linear"]


def _linear(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    return compiled("linear", "cpu")(x, weight, bias)


def _linear_fake(x, weight, bias):
    torch._check(x.dim() == 2 and weight.dim() == 2 and x.shape[1] == weight.shape[1],
                 lambda: "x must be [M, K] and weight [N, K]")
    return x.new_empty(x.shape[0], weight.shape[0])


def _linear_setup_context(ctx, inputs, output):
    x, weight, _ = inputs
    ctx.save_for_backward(x, weight)


def _linear_grad(ctx, grad):
    x, weight = ctx.saved_tensors
    needs_x, needs_weight, needs_bias = ctx.needs_input_grad
    return (linear_op(grad, weight.t(), None) if needs_x else None,
            linear_op(grad.t(), x.t(), None) if needs_weight else None,
            grad.sum(0) if needs_bias else None)


linear_op = FusedOp("fastgan::linear", _linear, _linear_fake, _linear_setup_context, _linear_grad)


# (rows rounded up to a power of 2, in, out, grad, threads) -> whether the op beats F.linear there
_faster_than_f_linear = {}


def _op_is_faster(rows: int, n_in: int, n_out: int, grad: bool) -> bool:
    """Whether fastgan's op (oneDNN, through the custom op) beats plain F.linear (MKL) at this shape, forward and
    backward when `grad`: measured once per shape, interleaved. Small layers lose to the op's call overhead,
    and where MKL is the CPU's faster GEMM (backends.cpu_gemm) the op never wins."""
    key = (1 << max(rows - 1, 0).bit_length(), n_in, n_out, grad, torch.get_num_threads())
    if key not in _faster_than_f_linear:
        if backends.cpu_gemm() != "onednn":
            _faster_than_f_linear[key] = False
        else:
            x = torch.full((key[0], n_in), 0.5, requires_grad=grad)
            w = torch.full((n_out, n_in), 0.25, requires_grad=grad)

            def run(fn):
                def call():
                    y = fn(x, w, None)
                    if grad:
                        torch.autograd.grad(y, (x, w), torch.ones_like(y))
                return call

            with torch.enable_grad():
                op, plain = backends.interleaved_seconds([run(linear_op), run(F.linear)])
            # F.linear is what the user had: the op must win by 5% to be taken
            _faster_than_f_linear[key] = op < 0.95 * plain
    return _faster_than_f_linear[key]


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, *, backend: str = "auto") -> Tensor:
    """F.linear(x, weight, bias): x [..., in], weight [out, in], bias [out] or None -> [..., out].

    backend "cpu" runs fastgan's op: float32 through the CPU's faster GEMM library (oneDNN or MKL, measured once:
    fastgan.backends.cpu_gemm) and float64 through at::addmm. "auto" takes it for CPU float32 tensors only
    at shapes where it was measured faster than F.linear, fastgan's or anyone's; everything else (other
    backends, half precision and float64 on the CPU, calls under torch.func transforms) runs F.linear.
    Raises TypeError/ValueError naming the argument for a wrong type, dtype, device or shape.
    """
    check_tensor(x, "x")
    check_tensor(weight, "weight")
    if weight.dim() != 2:
        raise ValueError(f"weight must be [out_features, in_features], got shape {tuple(weight.shape)}")
    if x.dim() == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"x's last dim must be weight's in_features={weight.shape[1]}, got shape {tuple(x.shape)}")
    if bias is not None:
        check_tensor(bias, "bias")
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"bias must be [{weight.shape[0]}] (weight's rows), got shape {tuple(bias.shape)}")
    named = {"x": x, "weight": weight, **({"bias": bias} if bias is not None else {})}
    check_same(list(named.values()), list(named))
    if takes_f_linear(x, weight, backend):
        return F.linear(x, weight, bias)
    rows = math.prod(x.shape[:-1])  # not -1: in_features may be 0
    y = linear_op(x.reshape(rows, x.shape[-1]), weight, bias)
    return y.reshape(*x.shape[:-1], weight.shape[0])


def takes_f_linear(x: Tensor, weight: Tensor, backend: str = "auto") -> bool:
    """Whether linear(x, weight, ..., backend=backend) runs plain F.linear (valid x and weight)."""
    if pick_backend(backend, x.device, x.dtype) != "cpu" or torch._C._functorch.peek_interpreter_stack() is not None:
        # under torch.func transforms (grad, jacrev, vmap; the fused custom ops do not support them) F.linear,
        # so a generator made of these layers still works there as one of nn.Linear does
        return True
    # (tracers see the op as before: a measurement has no place in a graph)
    auto = (backend == "auto" and os.getenv("FASTGAN_BACKEND", "auto") == "auto" and not torch.compiler.is_compiling()
            and not torch.jit.is_tracing())
    return auto and (x.dtype != torch.float32 or not _op_is_faster(math.prod(x.shape[:-1]), weight.shape[1],
                                                                  weight.shape[0], needs_grad(x, weight)))
