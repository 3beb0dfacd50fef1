"""Discriminator log-loss forward + backward: eager BCEWithLogits, eager softplus (fastgan.reference),
torch.compile of the reference, and the fused kernel per backend. Sizes: the paper's batch of 100
logits per side, and 1M per side.

    pytest benchmarks/bench_gan_loss.py --benchmark-only --benchmark-group-by=param:n
"""
import pytest
import torch
import torch.nn.functional as F

import fastgan
from fastgan import reference
from providers import DEVICE, compiled, fused_providers, peak_memory

SIZES = [100, 1_000_000]


def eager_bce(real, fake):
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


_compiled_reference = compiled(reference.discriminator_loss)


def make_loss_fn(provider):
    if provider == "eager-bce":
        return eager_bce
    if provider == "eager-softplus":
        return reference.discriminator_loss
    if provider == "compile":
        return _compiled_reference
    backend = provider.split("-", 1)[1]
    return lambda real, fake: fastgan.discriminator_loss(real, fake, backend=backend)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("provider", ["eager-bce", "eager-softplus", "compile", *fused_providers()])
def test_discriminator_loss_fwd_bwd(benchmark, sync, provider, n):
    g = torch.Generator().manual_seed(0)
    real = torch.randn(n, generator=g).to(DEVICE).requires_grad_(True)
    fake = torch.randn(n, generator=g).to(DEVICE).requires_grad_(True)
    loss_fn = make_loss_fn(provider)
    expected = reference.discriminator_loss(real.detach().double(), fake.detach().double())
    torch.testing.assert_close(loss_fn(real, fake).detach().double(), expected, atol=1e-5, rtol=1e-5)

    def step():
        real.grad = fake.grad = None
        loss_fn(real, fake).backward()
        sync()

    benchmark.group = f"gan_loss n={n}"
    benchmark.extra_info.update(provider=provider, n=n, device=DEVICE, **peak_memory(step))
    benchmark(step)


def interleaved(rounds, clock):
    """Medians of interleaved rounds (every provider once per round, in a shuffled order), robust to a shared,
    noisy machine. The order is shuffled because a step pays for the memory traffic of the step before it (at
    1M logits, 2 threads: the fused step took 350 us after itself, 445 us after eager softplus or after writing
    16 MB). clock "process" (time.process_time: CPU time of the whole process, meant for one thread, where it
    leaves out the time other processes hold the core) or "wall" (time.perf_counter). Also the median count of
    minor page faults per step: a step that gets its 4 MB buffers from fresh pages (glibc's heap trimmed them)
    pays ~1 us per 4 kB page, more than the loss itself."""
    import random
    import resource
    import statistics
    import time

    timer = time.process_time if clock == "process" else time.perf_counter
    providers = ["eager-bce", "eager-softplus", "compile", "fused-cpu"]
    print(f"device {DEVICE}, {torch.get_num_threads()} threads, {clock} time, {rounds} interleaved rounds; medians")
    for n in SIZES:
        g = torch.Generator().manual_seed(0)
        real = torch.randn(n, generator=g).to(DEVICE).requires_grad_(True)
        fake = torch.randn(n, generator=g).to(DEVICE).requires_grad_(True)
        calls = max(1, 10_000 // n)  # small sizes: time a batch of calls, so the clock's resolution does not count
        steps = {}
        for provider in providers:
            loss_fn = make_loss_fn(provider)

            def step(loss_fn=loss_fn, real=real, fake=fake, calls=calls):
                for _ in range(calls):
                    real.grad = fake.grad = None
                    loss_fn(real, fake).backward()

            step()
            step()  # warm-up (and compilation)
            steps[provider] = step
        times, faults = {p: [] for p in steps}, {p: [] for p in steps}
        order, rng = list(steps), random.Random(0)
        for _ in range(rounds):
            rng.shuffle(order)
            for provider in order:
                step = steps[provider]
                faults_before, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, timer()
                step()
                times[provider].append((timer() - start) / calls)
                faults[provider].append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before) / calls)
        med = {p: statistics.median(t) for p, t in times.items()}
        print(f"n={n}: " + ", ".join(f"{p} {med[p] * 1e6:.4g} us ({statistics.median(faults[p]):.0f} faults)"
                                     for p in med)
              + "; x fused: " + ", ".join(f"{p} {med[p] / med['fused-cpu']:.2f}" for p in providers[:3]))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=interleaved.__doc__)
    parser.add_argument("rounds", type=int, nargs="?", default=100)
    parser.add_argument("--clock", choices=["process", "wall"], default="wall")
    args = parser.parse_args()
    interleaved(args.rounds, args.clock)
