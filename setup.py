"""Build script.

By default nothing is compiled at install time: fastgan/_ext.py compiles csrc/ on first use with
torch.utils.cpp_extension.load (ninja) and caches it. FASTGAN_BUILD_EXT=1 compiles it ahead of
time instead (needs torch in the build environment: `pip install --no-build-isolation .`).

Flags: FASTGAN_BUILD_EXT=1 (build now), FASTGAN_SKIP_CUDA_BUILD=1 (CPU kernels only),
FASTGAN_FORCE_CUDA=1 (build the CUDA kernels even if torch has no CUDA: fails without CUDA headers),
FASTGAN_DEBUG=1 (-O0 -g). TORCH_CUDA_ARCH_LIST and MAX_JOBS are honoured.
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithSources(build_py):
    """Ships csrc/ inside the package as fastgan/csrc so the JIT build works after `pip install .`."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "fastgan", "csrc")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(os.path.join(HERE, "csrc"), target)


def _flag(name):
    return os.getenv(name, "0").upper() in ("1", "TRUE", "YES")


cmdclass = {"build_py": BuildPyWithSources}
ext_modules = []
if _flag("FASTGAN_BUILD_EXT"):
    from torch.utils import cpp_extension

    import importlib.util

    spec = importlib.util.spec_from_file_location("_build_config", os.path.join(HERE, "fastgan", "_build_config.py"))
    config = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(config)
    sources, with_cuda = config.sources(os.path.join(HERE, "csrc"))
    args = config.compile_args(with_cuda, debug=_flag("FASTGAN_DEBUG"))
    sources = [os.path.relpath(s, HERE) for s in sources]
    Ext = cpp_extension.CUDAExtension if with_cuda else cpp_extension.CppExtension
    ext_modules.append(
        Ext(
            "fastgan._C",
            sources,
            include_dirs=[os.path.join(HERE, "csrc")],
            extra_compile_args={"cxx": args["cxx"], "nvcc": args["nvcc"]},
            extra_link_args=args["ld"],
            define_macros=[("WITH_CUDA", None)] if with_cuda else [],
        )
    )
    print(f"fastgan: building the extension ahead of time ({'CPU + CUDA' if with_cuda else 'CPU only'})")
    cmdclass["build_ext"] = cpp_extension.BuildExtension

setup(ext_modules=ext_modules, cmdclass=cmdclass)
