"""Argument checks and backend plumbing shared by the ops in this package."""
import torch

from .. import _ext, backends


def check_tensor(x, name, *, floating=True):
    """TypeError unless `x` is a tensor (of a floating dtype when `floating`)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype (float32, float64, float16, bfloat16), got {x.dtype}")


def check_same(tensors, names):
    """TypeError/ValueError unless the tensors share one dtype and one device; names the odd one out."""
    first, first_name = tensors[0], names[0]
    for t, name in zip(tensors[1:], names[1:]):
        if t.device != first.device:
            raise ValueError(f"{name} is on {t.device} but {first_name} is on {first.device}; put them on one device")
        if t.dtype != first.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but {first_name} has {first.dtype}; use one dtype")


def pick_backend(backend, device, dtype):
    """Resolves `backend` for tensors of `device`/`dtype`; half precision on the CPU kernels is refused."""
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string, got {type(backend).__name__}")
    chosen = backends.resolve(backend, device)
    if chosen == "cpu" and dtype not in (torch.float32, torch.float64):
        if backend == "cpu":
            raise TypeError(f"backend 'cpu' takes float32 or float64, got {dtype}; use backend='torch'")
        chosen = "torch"
    return chosen


def needs_grad(*tensors):
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def compiled(name, backend):
    """The extension's entry point `<name>_cpu` or `<name>_cuda` for backend "cpu" or "cuda"."""
    return getattr(_ext.load(), f"{name}_{backend}")
