"""The build: CUDA sources compile with nvcc, a broken toolchain gives a clear error, `info` reports."""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RAW_CUDA_SOURCES = sorted(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*_cuda.cu")))


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not found: the CUDA kernels cannot be compile-checked")
@pytest.mark.parametrize("source", RAW_CUDA_SOURCES, ids=os.path.basename)
def test_cuda_kernels_compile_with_nvcc(source, tmp_path):
    """The raw-pointer kernels (no torch headers) compile for sm_90 even on a machine without a GPU."""
    result = subprocess.run(
        ["nvcc", "-std=c++17", "-O2", "-gencode=arch=compute_90,code=sm_90", "-I", os.path.join(ROOT, "csrc"),
         "-c", source, "-o", str(tmp_path / "kernel.o")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "kernel.o").stat().st_size > 0
    if os.path.basename(source) == "maxout_cuda.cu":
        # more than 16 pieces (17 and 32 in test_maxout) launch the generic layer kernel: built for all 4 dtypes
        # (the mangled names of its float, double, __half and __nv_bfloat16 instantiations)
        kernels = (tmp_path / "kernel.o").read_bytes()
        for dtype in ("ff", "dd", "6__halff", "13__nv_bfloat16f"):
            assert b"maxout_linear_fwd_generic_kernelI" + dtype.encode() in kernels, dtype


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not found: the CUDA bindings cannot be compile-checked")
@pytest.mark.parametrize("source", sorted(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*_bind.cu"))),
                         ids=os.path.basename)
def test_cuda_bindings_compile_with_nvcc(source, tmp_path):
    """The torch wrappers against torch's headers. A CPU wheel of torch lacks the one generated header
    c10/cuda/impl/cuda_cmake_macros.h, so an empty one stands in for it (the wrappers use c10/cuda only)."""
    from torch.utils.cpp_extension import include_paths

    stub = tmp_path / "stub" / "c10" / "cuda" / "impl"
    stub.mkdir(parents=True)
    (stub / "cuda_cmake_macros.h").write_text("#pragma once\n")
    includes = [os.path.join(ROOT, "csrc"), str(tmp_path / "stub"), *include_paths(), sysconfig.get_paths()["include"]]
    result = subprocess.run(["nvcc", "-std=c++17", "-DWITH_CUDA", "--expt-relaxed-constexpr",
                             *[f"-I{p}" for p in includes], "-c", source, "-o", str(tmp_path / "bind.o")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def test_module_compiles_with_cuda_entry_points(tmp_path):
    """csrc/fastgan.cpp as built where torch has CUDA (-DWITH_CUDA): every declared entry point exists."""
    from torch.utils.cpp_extension import include_paths

    cxx = os.getenv("CXX", "c++")
    if shutil.which(cxx) is None:
        pytest.skip(f"no C++ compiler ({cxx})")
    includes = [os.path.join(ROOT, "csrc"), *include_paths(), sysconfig.get_paths()["include"]]
    result = subprocess.run([cxx, "-std=c++17", "-fsyntax-only", "-DWITH_CUDA", "-DTORCH_EXTENSION_NAME=fastgan_C",
                             *[f"-I{p}" for p in includes], os.path.join(ROOT, "csrc", "fastgan.cpp")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def test_every_cuda_kernel_has_a_binding():
    for source in RAW_CUDA_SOURCES:
        op = os.path.basename(source)[: -len("_cuda.cu")]
        assert os.path.exists(os.path.join(ROOT, "csrc", "cuda", f"{op}_bind.cu")), f"{op} has no torch binding"


def run_python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=600)


def test_broken_toolchain_says_what_to_fix_and_torch_backend_works(tmp_path):
    code = (
        "import torch, fastgan\n"
        "from fastgan import _ext, backends\n"
        "print('REASON', backends.why_not('cpu', 'cpu'))\n"
        "print('AUTO', backends.resolve('auto', 'cpu'))\n"
        "print('LOSS', float(fastgan.discriminator_loss(torch.zeros(2), torch.zeros(2))))\n"
    )
    result = run_python(code, CXX=str(tmp_path / "no-such-compiler"), FASTGAN_BUILD_DIR=str(tmp_path / "build"))
    assert result.returncode == 0, result.stderr
    assert "REASON building fastgan's C++ kernels failed" in result.stdout
    assert "AUTO torch" in result.stdout
    assert "LOSS 1.386294" in result.stdout  # 2 log 2 from the reference backend


def test_info_lists_every_backend():
    result = subprocess.run([sys.executable, "-m", "fastgan", "info"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    for backend in ("cuda", "triton", "cpu", "torch"):
        assert f" {backend} " in result.stdout
    assert "auto -> " in result.stdout
