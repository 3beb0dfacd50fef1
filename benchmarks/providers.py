"""Which implementations to time: eager PyTorch, torch.compile of the reference, and each fused backend
that can run here (Triton only on a GPU: its CPU interpreter is a debugging tool, not a fast path)."""
import pytest
import torch

from fastgan import backends

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def fused_providers(prefix="fused"):
    names = []
    for b in ("cuda", "triton", "cpu"):
        reason = backends.why_not(b, DEVICE)
        if b == "triton" and DEVICE == "cpu":
            reason = "the Triton interpreter is not timed"
        names.append(pytest.param(f"{prefix}-{b}", marks=pytest.mark.skipif(reason is not None, reason=str(reason))))
    return names


def peak_mb(fn):
    """Peak memory that one call of fn allocates beyond what was live before it, in MB. On CUDA from the
    caching allocator's statistics; on the CPU, which keeps none, from the profiler's allocation events
    replayed in order."""
    if DEVICE == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak / 2**20


def compiled(fn):
    """torch.compile of a reference function, warmed up by the caller's first call."""
    return torch.compile(fn, dynamic=False)
