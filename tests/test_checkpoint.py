"""Checkpoint files: the format, old files, atomic writes under SIGKILL, and Ctrl-C / SIGTERM during training."""
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from fastgan.paper import checkpoint
from fastgan.paper.train import TrainConfig, Trainer

LEGACY = Path(__file__).parent / "fixtures" / "legacy_23d1cc1.pt"  # written by the Trainer of main 23d1cc1


def test_a_checkpoint_written_before_the_format_version_loads_and_resumes():
    state, g, d = checkpoint.load_models(LEGACY, backend="torch")
    assert "format_version" not in state and state["step"] == 3  # format 0: the kind is inferred
    assert set(state["generator"]) == set(g.state_dict()) and set(state["discriminator"]) == set(d.state_dict())
    assert all(torch.equal(g.state_dict()[k], v) for k, v in state["generator"].items())
    model_config, train_config = checkpoint.configs(state)
    trainer = Trainer(g, d, torch.rand(40, model_config.data_dim), train_config)
    trainer.load_state_dict(state)  # its RNG state (then the global one's) becomes the dropout stream
    assert trainer.step == 3 and trainer.epoch == state["epoch"]
    trainer.train_step()
    assert trainer.step == 4 and all(torch.isfinite(p).all() for p in g.parameters())


def test_saved_files_carry_kind_and_version_and_load_only_as_their_kind(tmp_path):
    path = checkpoint.save({"encoder": {"w": torch.ones(2)}, "encoder_config": {}}, tmp_path / "e.pt", "encoder")
    state = checkpoint.load(path, "encoder")
    assert state["kind"] == "encoder" and state["format_version"] == checkpoint.FORMAT_VERSION
    with pytest.raises(checkpoint.CheckpointError, match=r"e\.pt: is an encoder file .*, expected a GAN checkpoint"):
        checkpoint.load(path, "gan")
    with pytest.raises(checkpoint.CheckpointError, match="without encoder_config"):
        checkpoint.save({"encoder": {}}, tmp_path / "f.pt", "encoder")
        checkpoint.load(tmp_path / "f.pt", "encoder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.pt", "f.pt"]  # no temporary file left


WRITER = textwrap.dedent("""
    import sys, torch
    from fastgan.paper import checkpoint
    i = 0
    while True:
        i += 1  # 16 MB a file: killing the writer lands in the middle of a write most of the time
        checkpoint.save({"encoder": {"w": torch.full((4_000_000,), float(i))}, "encoder_config": {"i": i}},
                        sys.argv[1], "encoder")
""")


def test_killing_the_writer_never_leaves_a_broken_checkpoint(tmp_path):
    path = tmp_path / "encoder.pt"
    rng = random.Random(0)
    seen = set()
    for _ in range(6):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
        try:
            deadline = time.monotonic() + 120
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.5))
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        state = checkpoint.load(path, "encoder")  # always a whole file: the old one or the new one
        i = state["encoder_config"]["i"]
        assert torch.equal(state["encoder"]["w"], torch.full((4_000_000,), float(i)))
        seen.add(i)
    assert seen  # and the writes really happened


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_saves_a_checkpoint_and_exits_130(tmp_path, sig):
    out = tmp_path / "run"
    train = subprocess.Popen([sys.executable, "-m", "fastgan", "train", "--steps", "1000000", "--backend", "torch",
                              "--out", str(out), "--parzen-samples", "20", "--no-progress",
                              "--checkpoint-every", "1000000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + 300
    metrics = out / "metrics.jsonl"
    while not (metrics.exists() and metrics.read_text()) and train.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # until the first log record (step 50): training is under way
    train.send_signal(sig)
    stdout, stderr = train.communicate(timeout=300)
    assert train.returncode == 130, stderr[-3000:]
    assert f"{sig.name}: stopped at step" in stdout and "Traceback" not in stderr
    state = checkpoint.load(out / "checkpoint.pt")
    assert state["step"] >= 50 and TrainConfig(**state["train_config"]).steps == 6000  # mnist-quick's own
