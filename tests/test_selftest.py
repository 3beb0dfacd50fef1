"""python -m fastgan selftest: every backend against float64, and a wrong kernel caught."""
import pytest
import torch

from fastgan import backends, selftest


def test_every_backend_here_passes():
    checks = selftest.run("cpu")
    ran = {c.backend for c in checks}
    assert "torch" in ran and ("cpu" in ran) == (backends.why_not("cpu", "cpu") is None)
    assert len({c.op for c in checks}) == 8 and all(c.ok for c in checks), selftest.table(checks)


def test_a_wrong_kernel_is_a_mismatch_and_exit_1(monkeypatch, capsys):
    from fastgan.paper.cli import main

    real = selftest.maxout_dropout

    def off_by_a_little(z, *args, backend="auto", **kwargs):
        y = real(z, *args, backend=backend, **kwargs)
        return y + 1e-3 if backend != "torch" or z.dtype == torch.float32 else y  # the reference stays right

    monkeypatch.setattr(selftest, "maxout_dropout", off_by_a_little)
    checks = selftest.run("cpu")
    bad = {(c.op, c.backend) for c in checks if not c.ok}
    assert ("maxout_dropout", "torch") in bad and ("maxout_linear", "torch") not in bad
    assert main(["selftest", "--device", "cpu"]) == 1
    assert "MISMATCH" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
def test_selftest_on_a_missing_gpu_is_a_usage_error(capsys):
    from fastgan.paper.cli import main

    assert main(["selftest", "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
