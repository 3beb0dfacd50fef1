"""Centres sharded over 2 gloo ranks on the CPU give the 1-process log-density and gradient."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fastgan import backends
from fastgan.paper.evaluate import parzen_log_likelihood
from fastgan.ops.parzen import parzen_log_density

SIGMAS = [0.05, 0.3, 1.0]


def _inputs():
    g = torch.Generator().manual_seed(0)
    return torch.rand(11, 6, generator=g, dtype=torch.float64), torch.rand(29, 6, generator=g, dtype=torch.float64)


def _protocol(samples, x, backend, group=None):
    return parzen_log_likelihood(samples, x[:4], x[4:], SIGMAS, batch_size=3, progress=False, precision="fp64",
                                 backend=backend, group=group).to_dict()


def _rank_main(rank, world, backend, shards, out_dir):
    # A rendezvous file, not a TCP port: no race for a free port between tests that spawn ranks.
    dist.init_process_group("gloo", init_method=f"file://{out_dir}/rendezvous", rank=rank, world_size=world)
    try:
        x, centers = _inputs()
        x = x.requires_grad_()
        lo, hi = shards[rank]
        out = parzen_log_density(x, centers[lo:hi], SIGMAS, precision="fp64", backend=backend, group=dist.group.WORLD)
        (grad,) = torch.autograd.grad(out.sum(), x)
        protocol = _protocol(centers[lo:hi], x.detach(), backend, group=dist.group.WORLD)
        torch.save({"out": out.detach(), "grad": grad, "protocol": protocol}, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()  # both ranks have written their results
        dist.destroy_process_group()
    except BaseException:
        dist.destroy_process_group()
        raise
    # gloo's threads sometimes abort the interpreter's normal exit after the work is done ("terminate called
    # without an active exception", about 1 run in 10 here); the results are on disk, so leave at once.
    os._exit(0)


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
@pytest.mark.parametrize("backend", ["torch", "cpu"])
@pytest.mark.parametrize("shards", [((0, 13), (13, 29)), ((0, 0), (0, 29))], ids=["uneven", "empty-shard"])
def test_two_gloo_ranks_equal_one_process(backend, shards, tmp_path):
    reason = backends.why_not(backend, "cpu")  # builds the extension here, so the ranks only load it
    if reason is not None:
        pytest.skip(reason)
    mp.spawn(_rank_main, args=(2, backend, shards, str(tmp_path)), nprocs=2, join=True)
    x, centers = _inputs()
    x = x.requires_grad_()
    want = parzen_log_density(x, centers, SIGMAS, precision="fp64", backend=backend)
    (want_grad,) = torch.autograd.grad(want.sum(), x)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(got["out"], want.detach(), atol=1e-10, rtol=1e-12)
        torch.testing.assert_close(got["grad"], want_grad, atol=1e-10, rtol=1e-10)
        for key, value in _protocol(centers, x.detach(), backend).items():
            assert got["protocol"][key] == pytest.approx(value, rel=1e-12), key
