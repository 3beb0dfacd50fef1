"""Which implementations to time: eager PyTorch, torch.compile of the reference, and each fused backend
that can run here (Triton only on a GPU: its CPU interpreter is a debugging tool, not a fast path)."""
import pytest
import torch

from fastgan import backends

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# The bare-GEMM floors: "gemm" is torch.mm (MKL on x86 CPUs, cuBLAS on a GPU); on the CPU also "gemm-onednn",
# the oneDNN matmul that fastgan's CPU kernels use (fastgan.ops.linear). The report divides by the faster.
GEMM_PROVIDERS = ["gemm"] + (["gemm-onednn"] if DEVICE == "cpu" and torch.backends.mkldnn.is_available() else [])


def onednn_mm(a, b):
    """a @ b on oneDNN, b read transposed in place (what fastgan's CPU kernels call, csrc/cpu/dense_linear.h)."""
    return torch.ops.mkldnn._linear_pointwise(a, b.t(), None, "none", [], "")


def fused_providers(prefix="fused"):
    names = []
    for b in ("cuda", "triton", "cpu"):
        reason = backends.why_not(b, DEVICE)
        if b == "triton" and DEVICE == "cpu":
            reason = "the Triton interpreter is not timed"
        names.append(pytest.param(f"{prefix}-{b}", marks=pytest.mark.skipif(reason is not None, reason=str(reason))))
    return names


def peak_memory(fn):
    """{"peak_mb": memory one call of fn allocates beyond what was live before it} on CUDA, from the caching
    allocator's statistics; {} on the CPU, where torch keeps no allocator statistics (a replay of the
    profiler's allocation events gave eager maxout's backward a peak below its own grad_z + grad_W, so we
    do not report it). The maxout benchmarks report the memory saved for backward instead."""
    if DEVICE != "cuda":
        return {}
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return {"peak_mb": (torch.cuda.max_memory_allocated() - before) / 2**20}


def compiled(fn):
    """torch.compile of a reference function, warmed up by the caller's first call."""
    return torch.compile(fn, dynamic=False)
