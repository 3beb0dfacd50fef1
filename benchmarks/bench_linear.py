"""The generator's fully connected layers, forward + backward at batch 100: eager nn.Linear (torch.mm: MKL's
sgemm on x86 CPUs), torch.compile of it, and fastgan.ops.linear on the cpu backend (oneDNN's matmul for
float32). The op is the bare GEMMs themselves, so the GEMM floor is the oneDNN provider: the table shows what
the choice of GEMM library is worth. GPU runs skip the fused provider: there fastgan.ops.linear is F.linear.

    python benchmarks/report.py --out linear.md -k linear
    python benchmarks/bench_linear.py [rounds]   # interleaved: GMAC/s per layer on one thread
    python benchmarks/bench_linear.py [rounds] --modules   # nn.Linear against fastgan.nn.Linear, interleaved
"""
import statistics
import sys
import time

import pytest
import torch
import torch.nn.functional as F

from fastgan.ops.linear import linear
from providers import DEVICE, compiled

BATCH = 100
LAYERS = [(100, 1200), (1200, 1200), (1200, 784)]  # G: z -> 1200 -> 1200 -> 784


def eager(x, w, b):
    return F.linear(x, w, b)


_compiled = compiled(eager)


def fused(x, w, b):
    return linear(x, w, b, backend="cpu")


PROVIDERS = {"eager": eager, "compile": _compiled, "fused-cpu": fused}


def _inputs(n_in, n_out):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, n_in, generator=g)
    w = torch.randn(n_out, n_in, generator=g) / n_in**0.5
    b = torch.randn(n_out, generator=g)
    return [t.to(DEVICE).requires_grad_(True) for t in (x, w, b)]


def _step(fn, args, grad):
    for a in args:
        a.grad = None
    fn(*args).backward(grad)


@pytest.mark.parametrize("n_in,n_out", LAYERS, ids=[f"{i}x{o}" for i, o in LAYERS])
@pytest.mark.parametrize("provider", [
    "eager", "compile",
    pytest.param("fused-cpu", marks=pytest.mark.skipif(DEVICE != "cpu", reason="on a GPU linear is F.linear"))])
def test_linear_fwd_bwd(benchmark, sync, provider, n_in, n_out):
    args = _inputs(n_in, n_out)
    grad = torch.randn(BATCH, n_out, device=DEVICE)
    fn = PROVIDERS[provider]
    _step(fn, args, grad)  # warm-up, compilation

    def run():
        _step(fn, args, grad)
        sync()

    benchmark.group = f"G layer fwd+bwd, batch {BATCH}, {n_in} -> {n_out} ({DEVICE})"
    benchmark.extra_info.update(provider=provider, device=DEVICE)
    benchmark(run)


def interleaved(rounds):
    """Medians over interleaved rounds, and the rate in GMAC/s (3 products of BATCH x n_in x n_out each)."""
    one_thread = torch.get_num_threads() == 1
    clock = time.process_time if one_thread else time.perf_counter
    print(f"{DEVICE}, {torch.get_num_threads()} threads, {'process CPU time' if one_thread else 'wall time'}, "
          f"median of {rounds} interleaved rounds of 10 fwd+bwd\n")
    print("| layer | " + " | ".join(PROVIDERS) + " | fused vs eager |")
    print("|---" * (len(PROVIDERS) + 2) + "|")
    for n_in, n_out in LAYERS:
        args = _inputs(n_in, n_out)
        grad = torch.randn(BATCH, n_out, device=DEVICE)
        times = {p: [] for p in PROVIDERS}
        for fn in PROVIDERS.values():
            _step(fn, args, grad)
        for _ in range(rounds):
            for p, fn in PROVIDERS.items():
                start = clock()
                for _ in range(10):
                    _step(fn, args, grad)
                times[p].append((clock() - start) / 10)
        med = {p: statistics.median(t) for p, t in times.items()}
        macs = 3 * BATCH * n_in * n_out
        cells = [f"{med[p] * 1e3:.3g} ms ({macs / med[p] / 1e9:.0f} GMAC/s)" for p in PROVIDERS]
        print(f"| {n_in} → {n_out} | " + " | ".join(cells) + f" | {med['eager'] / med['fused-cpu']:.2f}× |")


# The layers of the MLP GAN that GAN collections write (benchmarks/bench_dropin.py) at its batch of 64, and G's
MODULE_SHAPES = [(64, 100, 128), (64, 128, 256), (64, 256, 512), (64, 512, 1024), (64, 1024, 784), (64, 784, 512),
                 (64, 512, 256), (64, 256, 1), (100, 100, 1200), (100, 1200, 1200), (100, 1200, 784)]


def modules_interleaved(rounds):
    """nn.Linear against fastgan.nn.Linear with the same weights, fwd+bwd, at the drop-in shapes."""
    import fastgan

    print(f"nn.Linear vs fastgan.nn.Linear fwd+bwd, {DEVICE}, {torch.get_num_threads()} threads, wall time, median "
          f"of {rounds} interleaved rounds; CPU GEMM route: {fastgan.backends.cpu_gemm()}\n")
    print("| batch x in -> out | nn.Linear | fastgan.nn.Linear | ratio |\n|---|---|---|---|")
    for rows, n_in, n_out in MODULE_SHAPES:
        plain = torch.nn.Linear(n_in, n_out).to(DEVICE)
        ours = fastgan.nn.Linear(n_in, n_out).to(DEVICE)
        ours.load_state_dict(plain.state_dict())
        x = torch.randn(rows, n_in, device=DEVICE, requires_grad=True)
        reps = min(200, max(3, int(2e7 // (3 * rows * n_in * n_out))))
        times = {"plain": [], "ours": []}
        for _ in range(rounds):
            for name, module in (("plain", plain), ("ours", ours)):
                module(x).sum().backward()
                start = time.perf_counter()
                for _ in range(reps):
                    module(x).sum().backward()
                times[name].append((time.perf_counter() - start) / reps)
        a, b = statistics.median(times["plain"]), statistics.median(times["ours"])
        print(f"| {rows} x {n_in} -> {n_out} | {a * 1e6:.0f} us | {b * 1e6:.0f} us | {a / b:.2f}x |")


if __name__ == "__main__":
    if "--modules" in sys.argv:
        modules_interleaved(int(sys.argv[1]) if sys.argv[1:2] != ["--modules"] else 7)
    else:
        interleaved(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
