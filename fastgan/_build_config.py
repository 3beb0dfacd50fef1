"""What to compile and how: shared by setup.py (ahead-of-time build) and _ext.py (JIT build).

Kept free of fastgan imports so setup.py can load it by path before the package is installed.
"""
import glob
import os
import shutil


def cuda_wanted():
    """Whether to compile the torch-bound CUDA kernels, and if not, why not."""
    import torch

    if os.getenv("FASTGAN_SKIP_CUDA_BUILD", "0") == "1":
        return False, "FASTGAN_SKIP_CUDA_BUILD=1"
    force = os.getenv("FASTGAN_FORCE_CUDA", "0") == "1"
    if torch.version.cuda is None and not force:
        return False, f"torch {torch.__version__} is a CPU build (no CUDA headers)"
    if shutil.which("nvcc") is None and not os.getenv("CUDA_HOME"):
        return False, "nvcc not found: install the CUDA toolkit or set CUDA_HOME"
    return True, ""


def sources(csrc):
    """The .cpp files always; the CUDA kernels and their torch bindings where CUDA is wanted."""
    srcs = [os.path.join(csrc, "fastgan.cpp")] + sorted(glob.glob(os.path.join(csrc, "cpu", "*.cpp")))
    with_cuda, _ = cuda_wanted()
    if with_cuda:
        srcs += sorted(glob.glob(os.path.join(csrc, "cuda", "*.cu")))
    return srcs, with_cuda


def cpu_capability():
    """"AVX2" where this machine's CPU (as torch sees it) runs AVX2 + FMA code, else "DEFAULT"."""
    import torch

    if os.getenv("FASTGAN_CPU_CAPABILITY"):
        return os.getenv("FASTGAN_CPU_CAPABILITY")
    return "AVX2" if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") else "DEFAULT"


def compile_args(with_cuda, debug=False):
    opt = ["-O0", "-g"] if debug else ["-O3"]
    # at::parallel_for's OpenMP body is an inline template: without -fopenmp it runs on one thread.
    cxx = opt + ["-fopenmp", "-std=c++17"] + (["-DWITH_CUDA"] if with_cuda else [])
    # at::vec::Vectorized compiles to AVX2 + Sleef (exported by libtorch_cpu) only when told the capability,
    # as torch builds its own kernels; otherwise it is a scalar loop. The exp/log1p loss kernel runs
    # several times faster with it. FASTGAN_CPU_CAPABILITY=DEFAULT builds portable code for other CPUs.
    if cpu_capability() == "AVX2":
        cxx += ["-mavx2", "-mfma", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"]
    nvcc = opt + ["-std=c++17", "--expt-relaxed-constexpr", "-DWITH_CUDA"]
    if not os.getenv("TORCH_CUDA_ARCH_LIST"):
        nvcc += ["-gencode=arch=compute_90,code=sm_90"]
    return {"cxx": cxx, "nvcc": nvcc, "ld": ["-fopenmp"]}
