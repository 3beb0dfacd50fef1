"""Which implementation runs an op: "cuda" (CUDA kernels of the extension), "triton" (Triton kernels),
"cpu" (C++ kernels of the extension) or "torch" (fastgan.reference, pure PyTorch).

`backend="auto"` takes the fastest one available for the tensors' device: cuda > triton > torch on a
GPU, cpu > torch on the CPU (Triton runs CPU tensors only in its slow interpreter, so only on request).
The environment variable FASTGAN_BACKEND replaces "auto"; an explicit backend argument wins over it.
Asking for a backend that cannot run raises BackendUnavailable saying why.
"""
import importlib.util
import os

import torch

from . import _ext

BACKENDS = ("cuda", "triton", "cpu", "torch")


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run these tensors; the message says why."""


def _triton_reason(device_type):
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (`pip install triton`, Linux x86-64)"
    if device_type == "cuda":
        return None
    if os.getenv("TRITON_INTERPRET") == "1":
        return None
    return (f"Triton compiles for GPUs; {device_type} tensors need its interpreter "
            "(set TRITON_INTERPRET=1 before import)")


def why_not(backend, device_type):
    """None if `backend` can run tensors on `device_type`, else the reason."""
    if backend == "torch":
        return None
    if backend == "triton":
        return _triton_reason(device_type)
    if backend == "cpu":
        if device_type != "cpu":
            return f"the cpu backend runs CPU tensors, got {device_type} tensors"
        return _ext.unavailable_reason()
    if backend == "cuda":
        if device_type != "cuda":
            return f"the cuda backend runs CUDA tensors, got {device_type} tensors"
        reason = _ext.unavailable_reason()
        if reason is None and not getattr(_ext.load(), "with_cuda", False):
            from ._build_config import cuda_wanted

            reason = "the extension was built without CUDA (" + (cuda_wanted()[1] or "rebuild it") + ")"
        return reason
    raise ValueError(f"backend must be one of {('auto',) + BACKENDS}, got {backend!r}")


def resolve(backend, device):
    """The concrete backend for an op on tensors of `device`; raises BackendUnavailable if it cannot run."""
    return _resolve(backend, torch.device(device).type)


def _resolve(backend, device_type):
    if backend == "auto":
        backend = os.getenv("FASTGAN_BACKEND", "auto")
    if backend == "auto":
        order = ("cuda", "triton", "torch") if device_type == "cuda" else ("cpu", "torch")
        return next(b for b in order if why_not(b, device_type) is None)
    reason = why_not(backend, device_type)
    if reason is not None:
        raise BackendUnavailable(f"backend {backend!r} is unavailable: {reason}")
    return backend


# torch.compile takes the answer as a constant of the graph: the checks read files (the extension's build
# state), which would otherwise break the graph at every op. torch.compiler.assume_constant_result sets just this
# mark, but imports torch._dynamo first: 1.6 of the 1.63 s `import fastgan` took after torch (2 cores).
# tests/test_dispatch.py checks that the public decorator still sets this very attribute.
_resolve._dynamo_marked_constant = True


def available(device_type):
    """The backends that can run tensors on `device_type`, fastest first."""
    return [b for b in BACKENDS if why_not(b, device_type) is None]


def info():
    """A report of versions and of every backend, available or why not, for `python -m fastgan info`."""
    import platform

    lines = [
        f"python   {platform.python_version()} ({platform.machine()})",
        f"torch    {torch.__version__} (CUDA {torch.version.cuda or 'none'}; "
        f"GPU available: {torch.cuda.is_available()})",
    ]
    spec = importlib.util.find_spec("triton")
    if spec is not None:
        import triton

        lines.append(f"triton   {triton.__version__}")
    else:
        lines.append("triton   not installed")
    lines.append("backends:")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device_type in devices:
        for b in BACKENDS:
            reason = why_not(b, device_type)
            lines.append(f"  {device_type:4s} {b:7s} {'available' if reason is None else 'unavailable: ' + reason}")
        lines.append(f"  {device_type:4s} auto -> {resolve('auto', device_type)}")
    return "\n".join(lines)
