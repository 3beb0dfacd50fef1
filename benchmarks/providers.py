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


def compiled(fn):
    """torch.compile of a reference function, warmed up by the caller's first call."""
    return torch.compile(fn, dynamic=False)
