"""Runs the benchmarks and writes one Markdown table per benchmark group: median time, ratio to the best
eager provider, to torch.compile and to the bare GEMM where the group has one, and the memory figures
the benchmark recorded (extra_info keys ending in _mb; peak_mb on CUDA only: see providers.peak_memory).

    python benchmarks/report.py --out benchmark-report.md [extra pytest args, e.g. -k gan_loss]
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))


def provider_of(bench):
    return bench.get("extra_info", {}).get("provider") or bench["param"] or bench["name"]


def fmt_time(seconds):
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def baseline(rows, prefix):
    times = [r["stats"]["median"] for r in rows if provider_of(r).startswith(prefix)]
    return min(times) if times else None


def table(group, rows):
    eager, compile_, gemm = baseline(rows, "eager"), baseline(rows, "compile"), baseline(rows, "gemm")
    mem_keys = sorted({k for r in rows for k in r.get("extra_info", {}) if k.endswith("_mb")})
    head = ["provider", "median"] + [c for c, b in (("× best eager", eager), ("× compile", compile_),
                                                   ("× bare GEMM", gemm)) if b] + mem_keys
    lines = [f"### {group}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: r["stats"]["median"]):
        t = r["stats"]["median"]
        cells = [provider_of(r), fmt_time(t)] + [f"{t / b:.2f}" for b in (eager, compile_, gemm) if b]
        cells += [f"{r['extra_info'][k]:.3g}" if k in r.get("extra_info", {}) else "" for k in mem_keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def versions():
    import torch

    parts = [f"torch {torch.__version__}"]
    try:
        import triton

        parts.append(f"triton {triton.__version__}")
    except ImportError:
        parts.append("no triton")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    return f"{device}; {platform.processor() or platform.machine()}; Python {platform.python_version()}; " + ", ".join(
        parts) + f"; {torch.get_num_threads()} torch threads"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="-", help="Markdown file to write (default: stdout)")
    parser.add_argument("--json", help="format this pytest-benchmark JSON instead of running the benchmarks")
    args, pytest_args = parser.parse_known_args()
    path = args.json
    if path is None:
        path = os.path.join(tempfile.mkdtemp(), "bench.json")
        cmd = [sys.executable, "-m", "pytest", HERE, "--benchmark-only", f"--benchmark-json={path}", "-q", *pytest_args]
        code = subprocess.run(cmd).returncode
        if code == 5:
            sys.exit("no benchmark matched")
        if code != 0:
            sys.exit("benchmarks failed")
    with open(path) as f:
        data = json.load(f)
    groups = defaultdict(list)
    for bench in data["benchmarks"]:
        groups[bench["group"] or bench["name"]].append(bench)
    text = "\n\n".join([f"Machine: {versions()}", *(table(g, rows) for g, rows in sorted(groups.items()))]) + "\n"
    if args.out == "-":
        print(text)
    else:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
