"""The two layers: the library (fastgan) loads nothing of the application (fastgan.paper), which uses only the
library's public API; and no function or class in fastgan/ grows past what one reads at once."""
import ast
import subprocess
import sys
from pathlib import Path

import torch

PACKAGE = Path(__file__).parent.parent / "fastgan"

IMPORT_PROBE = """
import sys, time
import torch
loaded = set(sys.modules)
start = time.perf_counter()
import fastgan, fastgan.nn
print(time.perf_counter() - start)
print(" ".join(sorted(set(sys.modules) - loaded)))
"""


def test_import_fastgan_loads_no_application_and_no_compiler():
    result = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    seconds, modules = result.stdout.splitlines()
    added = set(modules.split())
    for module in ("fastgan.paper", "tqdm", "argparse", "PIL", "matplotlib", "torch._dynamo", "triton"):
        assert not {m for m in added if m == module or m.startswith(module + ".")}, f"import fastgan loads {module}"
    assert float(seconds) < 1.0  # 0.04 s on 2 cores; torch._dynamo alone took 1.6 s


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            yield node.level, node.module or "", [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield 0, alias.name, []


def test_the_application_uses_only_the_public_library():
    for path in sorted((PACKAGE / "paper").rglob("*.py")):
        depth = len(path.relative_to(PACKAGE).parts) - 1  # 1 for fastgan/paper/x.py, 2 for fastgan/paper/cli/x.py
        for level, module, names in _imports(path):
            assert level < depth + 1 or level == 0, f"{path}: a relative import out of fastgan.paper"
            if level == 0 and module.split(".")[0] == "fastgan":
                parts = module.split(".")[1:] + names
                if module.startswith("fastgan.paper"):
                    continue
                assert not any(p.startswith("_") for p in parts), f"{path} imports the private {module} {names}"


def test_no_function_over_60_lines_and_no_class_over_160():
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                limit = 160 if isinstance(node, ast.ClassDef) else 60
                if node.end_lineno - node.lineno + 1 > limit:
                    too_long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert not too_long, too_long


def test_eval_mode_restores_each_mode_when_an_exception_passes():
    from fastgan.nn import eval_mode

    training, frozen = torch.nn.Dropout(0.5), torch.nn.Dropout(0.5).eval()
    try:
        with eval_mode(training, frozen):
            assert not training.training and not frozen.training
            raise KeyError("inside")
    except KeyError:
        pass
    assert training.training and not frozen.training
