"""Benchmark setup: the Triton interpreter is far too slow to time, so Triton providers need a GPU."""
import pytest
import torch




@pytest.fixture
def sync():
    """A callable that waits for the GPU, so a timed call measures the kernels, not their launch."""
    return torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
