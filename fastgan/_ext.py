"""Finds the compiled kernels: the prebuilt fastgan._C from `FASTGAN_BUILD_EXT=1 pip install`, else a
JIT build of csrc/ with torch.utils.cpp_extension.load (ninja), cached per Python/torch build, so the
first call compiles (about a minute on 2 cores), later calls just load, and edited sources rebuild.

The build directory is FASTGAN_BUILD_DIR, else $XDG_CACHE_HOME/fastgan, else ~/.cache/fastgan.
"""
import os
import sys

import torch

from . import _build_config

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


class ExtensionUnavailable(RuntimeError):
    """The C++/CUDA kernels could not be built or loaded; the message says why and how to fix it."""


def csrc_dir():
    """csrc/ shipped inside the installed package, or the source tree's csrc/ when run from a checkout."""
    for path in (os.path.join(_PKG_DIR, "csrc"), os.path.join(os.path.dirname(_PKG_DIR), "csrc")):
        if os.path.isfile(os.path.join(path, "fastgan.cpp")):
            return path
    raise ExtensionUnavailable(
        "fastgan's C++ sources (csrc/) are missing from the installation; reinstall with `pip install .` "
        "from a fastgan checkout"
    )


def _build_dir(with_cuda):
    """One folder per Python/torch/CUDA/CPU-capability build; ninja and torch's source hashing rebuild
    only what changed inside it."""
    tag = (f"py{sys.version_info.major}{sys.version_info.minor}-torch{torch.__version__}-"
           f"{'cuda' if with_cuda else 'cpu'}-{_build_config.cpu_capability().lower()}")
    root = os.getenv("FASTGAN_BUILD_DIR") or os.path.join(
        os.getenv("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "fastgan"
    )
    path = os.path.join(root, tag)
    os.makedirs(path, exist_ok=True)
    return path


def _jit_build():
    from torch.utils import cpp_extension

    csrc = csrc_dir()
    srcs, with_cuda = _build_config.sources(csrc)
    build_dir = _build_dir(with_cuda)
    args = _build_config.compile_args(with_cuda, debug=os.getenv("FASTGAN_DEBUG", "0") == "1")
    if not any(f.endswith(".so") for f in os.listdir(build_dir)):
        print(f"fastgan: compiling the C++{'/CUDA' if with_cuda else ''} kernels into {build_dir} (first use only)",
              file=sys.stderr, flush=True)
    try:
        return cpp_extension.load(
            name="fastgan_C",
            sources=srcs,
            extra_include_paths=[csrc],
            extra_cflags=args["cxx"],
            extra_cuda_cflags=args["nvcc"],
            extra_ldflags=args["ld"],
            build_directory=build_dir,
            verbose=os.getenv("FASTGAN_VERBOSE_BUILD", "0") == "1",
        )
    except (RuntimeError, OSError, ImportError) as e:
        raise ExtensionUnavailable(
            f"building fastgan's C++ kernels failed: {e}\n"
            "fastgan needs a C++17 compiler (g++ or clang++), ninja (`pip install ninja`) and the Python headers "
            "(e.g. `apt-get install python3-dev`). Rerun with FASTGAN_VERBOSE_BUILD=1 to see the compiler output. "
            "Meanwhile backend='torch' (the pure-PyTorch reference) works without them."
        ) from e


_loaded = None


def load():
    """The extension module, building it on first use. Raises ExtensionUnavailable with the fix.

    A failure is remembered, so a broken toolchain costs one build attempt per process, not one per call.
    """
    global _loaded
    if _loaded is None:
        try:
            from . import _C  # built ahead of time by FASTGAN_BUILD_EXT=1 pip install

            _loaded = _C
        except ImportError:
            try:
                _loaded = _jit_build()
            except ExtensionUnavailable as e:
                _loaded = e
    if isinstance(_loaded, ExtensionUnavailable):
        raise _loaded
    return _loaded


def unavailable_reason():
    """None if the extension loads, else the first line of why not (building it if needed)."""
    try:
        load()
        return None
    except ExtensionUnavailable as e:
        return str(e).splitlines()[0]
