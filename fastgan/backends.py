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


_resolved = {}  # (backend, device type, FASTGAN_BACKEND) -> the backend: the checks cost ~6 us a call otherwise


def _resolve(backend, device_type):
    key = (backend, device_type, os.getenv("FASTGAN_BACKEND", "auto"))
    if key not in _resolved:
        _resolved[key] = _resolve_uncached(backend, device_type)
    return _resolved[key]


def _resolve_uncached(backend, device_type):
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


# --- the CPU's GEMM library -----------------------------------------------------------------------------------

_cpu_gemm = None  # "onednn" or "mkl", once measured


def interleaved_seconds(calls, rounds=5):
    """For each of `calls`, its time summed over `rounds` rounds that run every call in turn: a warm-up run, then
    the median of 3 (interleaving keeps a shared machine's slow moments from landing on one call)."""
    import statistics
    import time

    totals = [0.0] * len(calls)
    for _ in range(rounds):
        for i, call in enumerate(calls):
            call()
            times = []
            for _ in range(3):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            totals[i] += statistics.median(times)
    return totals


def _measure_cpu_gemm(ext) -> str:
    """The faster library for the kernels' float32 products here: the maxout layer's forward tile and a weight
    gradient on transposed views, 200 x 784 x 1200 (the paper's D step), timed both ways, interleaved."""
    x, w, g = torch.full((200, 784), 0.5), torch.full((1200, 784), 0.25), torch.full((200, 1200), 0.125)

    def products(onednn):
        def call():
            ext.set_linear_onednn(onednn)
            ext.linear_cpu(x, w, None)
            ext.linear_cpu(g.t(), x.t(), None)
        return call

    onednn, mkl = interleaved_seconds([products(True), products(False)])
    # MKL is torch's own default: oneDNN must win by 3% to be taken
    return "onednn" if onednn < 0.97 * mkl else "mkl"


def cpu_gemm() -> str:
    """Which library runs fastgan's float32 CPU products in this process: "onednn" or "mkl" (at::addmm, torch's
    default). Measured once on first use, since the faster one depends on the CPU: on an AMD Zen 5 (AVX-512)
    oneDNN ran the paper's shapes ~2x faster than MKL's AVX2 code; on an AVX2-only AMD EPYC MKL was the faster
    (BENCHMARKS.md). FASTGAN_CPU_GEMM=onednn or mkl decides instead of measuring."""
    global _cpu_gemm
    if _cpu_gemm is None:
        ext = _ext.load()
        forced = os.getenv("FASTGAN_CPU_GEMM", "").lower()
        if forced not in ("", "onednn", "mkl"):
            raise ValueError(f"FASTGAN_CPU_GEMM must be onednn or mkl, got {forced!r}")
        if not ext.linear_uses_onednn():  # torch without oneDNN
            route = "mkl"
        else:
            route = forced or _measure_cpu_gemm(ext)
        ext.set_linear_onednn(route == "onednn")
        _cpu_gemm = route
    return _cpu_gemm


def available(device_type):
    """The backends that can run tensors on `device_type`, fastest first."""
    return [b for b in BACKENDS if why_not(b, device_type) is None]


def _cpu_model() -> str:
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
    lines.append(f"cpu      {_cpu_model()}; torch's kernels: {torch.backends.cpu.get_cpu_capability()}")
    if why_not("cpu", "cpu") is None:
        lines.append(f"         fastgan's kernels: {'AVX-512' if _ext.load().has_avx512() else 'AVX2/generic'} loops; "
                     f"float32 products on {cpu_gemm()} (measured here; FASTGAN_CPU_GEMM overrides)")
    lines.append("backends:")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device_type in devices:
        for b in BACKENDS:
            reason = why_not(b, device_type)
            lines.append(f"  {device_type:4s} {b:7s} {'available' if reason is None else 'unavailable: ' + reason}")
        lines.append(f"  {device_type:4s} auto -> {resolve('auto', device_type)}")
    return "\n".join(lines)
