"""A conditional discriminator's input, forward + backward: the one-hot labels concatenated to the pixels
([N, 784] + [N, 10] -> [N, 794], one copy) against the first maxout layer it feeds (794 -> 240 x 5, p = 0.5,
the fused op). N = 200: Discriminator.loss runs the real and the fake batch of 100 together.

    pytest benchmarks/bench_conditional.py --benchmark-only
    python benchmarks/bench_conditional.py [rounds]   # interleaved medians, for noisy shared machines
"""
import pytest
import torch

import fastgan
from providers import DEVICE, fused_providers

BATCH, PIXELS, CLASSES, UNITS, PIECES, P = 200, 784, 10, 240, 5, 0.5


def _inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, PIXELS, generator=g).to(DEVICE).requires_grad_(True)  # G's step needs d/dx
    one_hot = torch.nn.functional.one_hot(torch.arange(BATCH) % CLASSES, CLASSES).float().to(DEVICE)
    w = (torch.rand(UNITS * PIECES, PIXELS + CLASSES, generator=g) * 0.01 - 0.005).to(DEVICE).requires_grad_(True)
    b = torch.zeros(UNITS * PIECES, device=DEVICE, requires_grad=True)
    return x, one_hot, w, b


def steps(backend):
    """{"concat": ..., "layer": ...}: one forward + backward each, on the same inputs."""
    x, one_hot, w, b = _inputs()
    h = torch.cat([x, one_hot], 1).detach().requires_grad_(True)
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)

    def concat():
        x.grad = None
        y = torch.cat([x, one_hot], 1)
        y.backward(torch.ones_like(y))
        sync()

    def layer():
        for t in (h, w, b):
            t.grad = None
        fastgan.maxout_linear(h, w, b, PIECES, P, backend=backend).sum().backward()
        sync()

    return {"concat": concat, "layer": layer}


@pytest.mark.parametrize("part", ["concat", "layer"])
@pytest.mark.parametrize("provider", fused_providers())
def test_conditional_input_fwd_bwd(benchmark, part, provider):
    step = steps(provider.split("-", 1)[1])[part]
    step()
    benchmark.group = f"conditional D input fwd+bwd, batch {BATCH}, {PIXELS}+{CLASSES} -> {UNITS}x{PIECES} ({DEVICE})"
    benchmark.extra_info.update(part=part, provider=f"{provider}: {part}", device=DEVICE)
    benchmark.pedantic(step, rounds=100, warmup_rounds=2, iterations=1)


def interleaved(rounds):
    import statistics
    import time

    backend = "cuda" if DEVICE == "cuda" else "cpu"
    timed = steps(backend)
    times = {part: [] for part in timed}
    for step in timed.values():
        step()
    for _ in range(rounds):
        for part, step in timed.items():
            start = time.perf_counter()
            step()
            times[part].append(time.perf_counter() - start)
    med = {part: statistics.median(t) for part, t in times.items()}
    print(f"device {DEVICE}, backend {backend}, {torch.get_num_threads()} threads, {rounds} interleaved rounds: "
          f"concat {med['concat'] * 1e3:.3g} ms, layer {med['layer'] * 1e3:.3g} ms "
          f"({100 * med['concat'] / med['layer']:.2f}% of the layer)")


if __name__ == "__main__":
    import sys

    interleaved(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
