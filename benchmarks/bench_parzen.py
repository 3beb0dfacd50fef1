"""Parzen-window evaluation, all sigmas at once: the released code's approach (every difference x - mu,
log-mean-exp per batch of 10 test points, numpy), eager PyTorch (addmm or cdist, then logsumexp per
sigma), torch.compile of addmm + one broadcast logsumexp over all sigmas, the fused kernel per backend,
and the bare GEMM x @ mu.T of the same shape as the ceiling (torch.mm, and on the CPU also oneDNN's, which
the fused CPU kernel's tiles use). Size: 2,000 test points x 10,000 centres x
784 dims x 10 sigmas on the CPU (the full 10,000 x 10,000 on a GPU); the released approach, ~1,000x
slower, is timed on 20 test points.

    python benchmarks/report.py --out parzen.md -k parzen
    (or: pytest benchmarks/bench_parzen.py --benchmark-only --benchmark-group-by=group)
    PYTHONPATH=. python benchmarks/bench_parzen.py [rounds]   # interleaved: steadier ratios on a shared machine

extra_info["alloc_mb"]: the largest intermediate each provider allocates, from its shapes (not measured):
N x M distances for eager/compile/GEMM, N x M x D for the released approach, one tile per thread fused.
"""
import statistics
import sys
import time

import numpy as np
import pytest
import torch

from fastgan import reference
from fastgan.paper.evaluate import DEFAULT_SIGMAS
from fastgan.ops.parzen import parzen_log_density
from providers import DEVICE, GEMM_PROVIDERS, compiled, fused_providers, onednn_mm, peak_memory

N, M, D = (10_000 if DEVICE == "cuda" else 2_000), 10_000, 784
N_RELEASED = 20  # test points for the released approach
SIGMAS = torch.tensor(DEFAULT_SIGMAS, dtype=torch.float32)


def _data(n):
    # MNIST-like: pixels in [0, 1], ~19% lit.
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(n, D, generator=g) < 0.19) * torch.rand(n, D, generator=g)
    mu = (torch.rand(M, D, generator=g) < 0.19) * torch.rand(M, D, generator=g)
    return x.to(DEVICE), mu.to(DEVICE)


def _normalise(lse, m, sigmas):
    return lse - np.log(m) - D * torch.log(sigmas * (2 * np.pi) ** 0.5)


def eager_mm(x, mu, sigmas):
    d2 = torch.addmm((x * x).sum(1, keepdim=True), x, mu.T, alpha=-2).add_((mu * mu).sum(1)).clamp_min_(0)
    lse = torch.stack([torch.logsumexp(d2 * (-0.5 / float(s) ** 2), 1) for s in sigmas], 1)
    return _normalise(lse, mu.shape[0], sigmas)


def eager_cdist(x, mu, sigmas):
    d2 = torch.cdist(x, mu).square_()
    lse = torch.stack([torch.logsumexp(d2 * (-0.5 / float(s) ** 2), 1) for s in sigmas], 1)
    return _normalise(lse, mu.shape[0], sigmas)


def all_sigmas(x, mu, sigmas):
    """One broadcast logsumexp over [N, S, M]: N x S x M in eager, for torch.compile to fuse (no per-sigma
    Python floats, which would break its graph)."""
    d2 = torch.addmm((x * x).sum(1, keepdim=True), x, mu.T, alpha=-2).add_((mu * mu).sum(1)).clamp_min_(0)
    lse = torch.logsumexp(d2[:, None, :] * (-0.5 / sigmas**2)[:, None], -1)
    return _normalise(lse, mu.shape[0], sigmas)


def released_code(x, mu, sigmas):
    """adversarial/parzen_ll.py's way (in numpy, on the CPU): for each sigma, batches of 10 test points,
    every difference (x - mu) / sigma, then log-mean-exp of -0.5 sum (diff^2) minus the normaliser."""
    x, mu = x.cpu().numpy(), mu.cpu().numpy()
    out = np.empty((x.shape[0], len(sigmas)), dtype=np.float32)
    for k, s in enumerate(sigmas.tolist()):
        for i in range(0, x.shape[0], 10):
            a = (x[i:i + 10, None, :] - mu[None, :, :]) / s
            e = -0.5 * (a**2).sum(2)
            peak = e.max(1, keepdims=True)
            out[i:i + 10, k] = (peak[:, 0] + np.log(np.exp(e - peak).mean(1)) - D * np.log(s * np.sqrt(2 * np.pi)))
    return torch.from_numpy(out)


_compiled = compiled(all_sigmas)


def make_fn(provider):
    if provider == "gemm":
        return lambda x, mu, sigmas: x @ mu.T
    if provider == "gemm-onednn":
        return lambda x, mu, sigmas: onednn_mm(x, mu.T)
    if provider == "eager-mm":
        return eager_mm
    if provider == "eager-cdist":
        return eager_cdist
    if provider == "compile":
        return _compiled
    if provider == "released-code":
        return released_code
    backend = provider.split("-", 1)[1]
    return lambda x, mu, sigmas: parzen_log_density(x, mu, sigmas, backend=backend)


def alloc_mb(provider, n):
    if provider.startswith("fused"):
        return 256 * 512 * 4 / 2**20
    if provider == "released-code":
        return 10 * M * D * 4 / 2**20
    return n * M * 4 / 2**20


@pytest.mark.parametrize("provider", [*GEMM_PROVIDERS, "eager-mm", "eager-cdist", "compile", "released-code",
                                      *fused_providers()])
def test_parzen(benchmark, sync, provider):
    n = N_RELEASED if provider == "released-code" else N
    x, mu = _data(n)
    sigmas = SIGMAS.to(DEVICE)
    fn = make_fn(provider)
    out = fn(x, mu, sigmas)  # warm-up (and compilation), then a check against float64 on a few rows
    sync()
    if not provider.startswith("gemm"):
        ref = reference.parzen_log_density(x[:20].double(), mu.double(), sigmas.double())
        assert (out[:20].double().cpu() - ref.cpu()).abs().max() < 0.05, provider

    def run():
        fn(x, mu, sigmas)
        sync()

    benchmark.group = f"parzen {N}x{M}x{D}x{len(SIGMAS)} ({DEVICE}; released-code on {N_RELEASED} rows)"
    benchmark.extra_info.update(provider=provider, n=n, m=M, d=D, s=len(SIGMAS), device=DEVICE,
                                alloc_mb=alloc_mb(provider, n), **peak_memory(run))
    benchmark.pedantic(run, rounds=1 if provider == "released-code" else 5, iterations=1)


def interleaved(rounds=5):
    """Median time per provider over `rounds` rounds that each run every provider once, so load swings
    on a shared machine hit all of them alike; prints a Markdown table of medians and ratios."""
    providers = [*GEMM_PROVIDERS, "fused-cpu" if DEVICE == "cpu" else "fused-cuda", "compile", "eager-cdist", "eager-mm"]
    x, mu = _data(N)
    sigmas = SIGMAS.to(DEVICE)
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    fns = {p: make_fn(p) for p in providers}
    for fn in fns.values():  # warm-up, compilation
        fn(x, mu, sigmas)
    times = {p: [] for p in providers}
    for _ in range(rounds):
        for p, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn(x, mu, sigmas)
            sync()
            times[p].append(time.perf_counter() - start)
    xr, mur = _data(N_RELEASED)
    start = time.perf_counter()
    released_code(xr, mur, sigmas.cpu())
    released = (time.perf_counter() - start) * N / N_RELEASED
    med = {p: statistics.median(t) for p, t in times.items()}
    med["released-code (extrapolated)"] = released
    gemm, eager = min(med[p] for p in GEMM_PROVIDERS), min(med["eager-cdist"], med["eager-mm"])
    print(f"{N}x{M}x{D}x{len(SIGMAS)} on {DEVICE}, {torch.get_num_threads()} threads, median of {rounds} "
          f"interleaved rounds (released code: {N_RELEASED} rows, x{N // N_RELEASED})\n")
    print("| provider | median | x fastest bare GEMM | x best eager |\n|---|---|---|---|")
    for p, t in sorted(med.items(), key=lambda kv: kv[1]):
        print(f"| {p} | {t * 1e3:.0f} ms | {t / gemm:.2f} | {t / eager:.2f} |")


if __name__ == "__main__":
    interleaved(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
