"""Maxout + dropout (p = 0.5) forward + backward: eager PyTorch (linear, view, amax, dropout), torch.compile
of the same, and the fused op per backend; for the whole layer also the bare GEMMs of the same shapes
(x @ W.T, grad_z @ W, grad_z.T @ x: the ceiling), on torch.mm and, on the CPU, on oneDNN. Sizes: the paper's layer (batch 100, 784 -> 240 x 5)
and a large one (batch 1024, 784 -> 1200 x 5); and maxout over a convolution's channels (dim=1: batch 100,
[192, 14, 14] -> [96, 14, 14], 2 pieces).

    python benchmarks/report.py --out maxout.md -k maxout
    (or: pytest benchmarks/bench_maxout.py --benchmark-only --benchmark-group-by=group)
    python benchmarks/bench_maxout.py [rounds]   # interleaved medians, for noisy shared machines

extra_info["saved_mb"]: the activations kept for backward, measured with saved_tensors_hooks (unique
storages, without the layer's input x and its weight, which every provider keeps).
"""
import pytest
import torch
import torch.nn.functional as F

import fastgan
from providers import DEVICE, GEMM_PROVIDERS, compiled, fused_providers, peak_memory

P = 0.5
SIZES = [(100, 784, 240, 5), (1024, 784, 1200, 5)]  # batch, in_features, units, pieces
CHANNEL_SIZES = [(100, 96, 2, 14)]  # batch, units, pieces, height = width


def eager_maxout(z, pieces, dim=-1):
    dim %= z.dim()
    return F.dropout(z.unflatten(dim, (-1, pieces)).amax(dim + 1), P)


def eager_layer(x, w, b, pieces):
    return eager_maxout(F.linear(x, w, b), pieces)


_compiled_maxout = compiled(eager_maxout)
_compiled_layer = compiled(eager_layer)


def bare_gemms(x, w, b, pieces):
    """The layer's three GEMMs with autograd's shapes: forward x @ W.T; backward grad_z @ W and grad_z.T @ x."""
    return F.linear(x, w, b)


def bare_onednn_gemms(x, w, b, pieces):
    """The same three GEMMs on oneDNN, the products of fastgan's CPU kernels."""
    return fastgan.ops.linear(x, w, b, backend="cpu")


def make_fn(provider, layer):
    if provider == "eager":
        return eager_layer if layer else eager_maxout
    if provider == "compile":
        return _compiled_layer if layer else _compiled_maxout
    if provider == "gemm":
        return bare_gemms
    if provider == "gemm-onednn":
        return bare_onednn_gemms
    backend = provider.split("-", 1)[1]
    if layer:
        return lambda x, w, b, pieces: fastgan.maxout_linear(x, w, b, pieces, P, backend=backend)
    return lambda z, pieces, dim=-1: fastgan.maxout_dropout(z, pieces, P, dim=dim, backend=backend)


def saved_mb(fn, args, exclude):
    """MB of unique storages autograd saves for backward during fn(*args), leaving out `exclude`'s."""
    storages = {}
    skip = {t.untyped_storage().data_ptr() for t in exclude}

    def pack(t):
        if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in skip:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args)
    return sum(storages.values()) / 1e6


def _inputs(batch, features, units, pieces):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, features, generator=g)
    w = torch.randn(units * pieces, features, generator=g) / features**0.5
    b = torch.randn(units * pieces, generator=g) * 0.1
    return [t.to(DEVICE).requires_grad_(True) for t in (x, w, b)]


def _time(benchmark, sync, fn, args, grad_shape, rounds):
    grad = torch.randn(grad_shape, device=DEVICE)

    def step():
        for a in args:
            a.grad = None
        fn(*args).backward(grad)
        sync()

    step()  # warm-up (and compilation)
    benchmark.extra_info.update(peak_memory(step))
    benchmark.pedantic(step, rounds=rounds, warmup_rounds=2, iterations=1)


@pytest.mark.parametrize("batch,features,units,pieces", SIZES, ids=["paper", "large"])
@pytest.mark.parametrize("provider", ["eager", "compile", *fused_providers()])
def test_maxout_dropout_fwd_bwd(benchmark, sync, provider, batch, features, units, pieces):
    z = torch.randn(batch, units * pieces, device=DEVICE, requires_grad=True)
    fn = make_fn(provider, layer=False)
    fn(z, pieces)  # compile outside the memory measurement
    benchmark.group = f"maxout elementwise fwd+bwd, batch {batch}, {units}x{pieces} ({DEVICE})"
    benchmark.extra_info.update(provider=provider, device=DEVICE, saved_mb=saved_mb(fn, (z, pieces), [z]))
    _time(benchmark, sync, lambda z: fn(z, pieces), [z], (batch, units), rounds=200 if batch < 1000 else 30)


@pytest.mark.parametrize("batch,units,pieces,side", CHANNEL_SIZES, ids=["conv"])
@pytest.mark.parametrize("provider", ["eager", "compile", *fused_providers()])
def test_maxout_channels_fwd_bwd(benchmark, sync, provider, batch, units, pieces, side):
    z = torch.randn(batch, units * pieces, side, side, device=DEVICE, requires_grad=True)
    fn = make_fn(provider, layer=False)
    fn(z, pieces, 1)
    benchmark.group = f"maxout channels fwd+bwd, batch {batch}, {units * pieces}x{side}x{side} -> {units} ({DEVICE})"
    benchmark.extra_info.update(provider=provider, device=DEVICE, saved_mb=saved_mb(fn, (z, pieces, 1), [z]))
    _time(benchmark, sync, lambda z: fn(z, pieces, 1), [z], (batch, units, side, side), rounds=100)


@pytest.mark.parametrize("batch,features,units,pieces", SIZES, ids=["paper", "large"])
@pytest.mark.parametrize("provider", [*GEMM_PROVIDERS, "eager", "compile", *fused_providers()])
def test_maxout_linear_fwd_bwd(benchmark, sync, provider, batch, features, units, pieces):
    x, w, b = _inputs(batch, features, units, pieces)
    fn = make_fn(provider, layer=True)
    fn(x, w, b, pieces)
    grad_units = units * pieces if provider.startswith("gemm") else units
    benchmark.group = f"maxout layer fwd+bwd, batch {batch}, {features} -> {units}x{pieces} ({DEVICE})"
    benchmark.extra_info.update(provider=provider, device=DEVICE,
                                saved_mb=saved_mb(fn, (x, w, b, pieces), [x, w]))
    _time(benchmark, sync, lambda x, w, b: fn(x, w, b, pieces), [x, w, b], (batch, grad_units),
          rounds=100 if batch < 1000 else 10)


def interleaved(rounds):
    """Medians of interleaved rounds (one step per provider per round), robust to a shared, noisy machine."""
    import statistics
    import time

    providers = ["eager", "compile", "fused-cpu"] + (["fused-cuda", "fused-triton"] if DEVICE == "cuda" else [])
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    print(f"device {DEVICE}, {torch.get_num_threads()} threads, p={P}, {rounds} interleaved rounds; median (x GEMMs)")
    cases = []  # (label, {provider: (fn, tensor args, other args, grad shape)})
    for layer in (False, True):
        for batch, features, units, pieces in SIZES:
            x, w, b = _inputs(batch, features, units, pieces)
            z = torch.randn(batch, units * pieces, device=DEVICE, requires_grad=True)
            setup = {provider: (make_fn(provider, layer), [x, w, b] if layer else [z], (pieces,),
                                (batch, units * pieces if provider.startswith("gemm") else units))
                     for provider in (GEMM_PROVIDERS if layer else []) + providers}
            cases.append((f"{'layer' if layer else 'elementwise'} batch {batch} {features}->{units}x{pieces}", setup))
    for batch, units, pieces, side in CHANNEL_SIZES:
        z = torch.randn(batch, units * pieces, side, side, device=DEVICE, requires_grad=True)
        setup = {provider: (make_fn(provider, False), [z], (pieces, 1), (batch, units, side, side))
                 for provider in providers}
        cases.append((f"channels batch {batch} {units * pieces}x{side}x{side}->{units}", setup))
    for label, setup in cases:
        steps = {}
        for provider, (fn, args, extra, grad_shape) in setup.items():
            grad = torch.randn(grad_shape, device=DEVICE)

            def step(fn=fn, args=args, extra=extra, grad=grad):
                for a in args:
                    a.grad = None
                fn(*args, *extra).backward(grad)
                sync()

            step()
            steps[provider] = step
        times = {p: [] for p in steps}
        for _ in range(rounds):
            for provider, step in steps.items():
                start = time.perf_counter()
                step()
                times[provider].append(time.perf_counter() - start)
        med = {p: statistics.median(t) for p, t in times.items()}
        floor = min((med[p] for p in GEMM_PROVIDERS if p in med), default=None)
        cells = [f"{p} {med[p] * 1e3:.3g} ms" + (f" ({med[p] / floor:.2f})" if floor else "") for p in med]
        print(f"{label}: " + ", ".join(cells) + f"; eager/fused {med['eager'] / med['fused-cpu']:.2f}, "
              f"compile/fused {med['compile'] / med['fused-cpu']:.2f}")


if __name__ == "__main__":
    import sys

    interleaved(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
