"""Triton kernels, one file per op. Imported lazily by fastgan.ops so fastgan works without triton."""
