"""x @ weight.T + bias, as F.linear, with the CPU backend's float32 products on oneDNN.

torch's CPU GEMMs (nn.Linear, torch.mm) call MKL's sgemm, which takes AVX2 code on non-Intel CPUs; oneDNN,
which torch also ships, chooses by the CPU's features and ran the paper's shapes ~2x faster on our AMD EPYC
(csrc/cpu/dense_linear.h has the figures, BENCHMARKS.md the benchmark). The CPU kernels' own tiles
(maxout_linear, parzen) use the same C++ routine.

On the "cpu" backend this is the custom op fastgan::linear (forward, and backward through the same op:
grad_x = grad @ weight, grad_weight = grad.T @ x, each a linear on transposed views read in place). The
other backends run F.linear: on a GPU, cuBLAS is already the GEMM to use.
"""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import FusedOp, check_same, check_tensor, compiled, pick_backend

__all__ = ["linear"]


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


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, *, backend: str = "auto") -> Tensor:
    """F.linear(x, weight, bias): x [..., in], weight [out, in], bias [out] or None -> [..., out].

    backend "cpu" (what "auto" picks for CPU tensors) runs float32 through oneDNN and float64 through
    at::addmm; the other backends, half precision on the CPU and calls under torch.func transforms run F.linear.
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
    if pick_backend(backend, x.device, x.dtype) != "cpu" or torch._C._functorch.peek_interpreter_stack() is not None:
        # under torch.func transforms (grad, jacrev, vmap; the fused custom ops do not support them) F.linear,
        # so a generator made of these layers still works there as one of nn.Linear does
        return F.linear(x, weight, bias)
    y = linear_op(x.reshape(math.prod(x.shape[:-1]), x.shape[-1]), weight, bias)  # not -1: in_features may be 0
    return y.reshape(*x.shape[:-1], weight.shape[0])
