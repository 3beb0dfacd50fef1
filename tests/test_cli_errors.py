"""Untrusted files and bad arguments: the real CLI in subprocesses prints one line `error: ...` and exits 1 or 2.

A crafted checkpoint must never run code (torch.load with weights_only=True); every bad input gets a message
naming the argument or the file, never a traceback. Each row runs `python -m fastgan` in its own process;
rows run two at a time (2 cores).
"""
import gzip
import os
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from fastgan.paper import checkpoint

FIXTURES = Path(__file__).parent / "fixtures"
ENV = {**os.environ, "FASTGAN_BACKEND": "torch", "FASTGAN_DEBUG": "0"}


class Payload:
    """Unpickling it would call os.system and create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def craft_malicious(path: Path, marker: Path, zip_format=True):
    """A checkpoint-shaped dict whose generator weights are the payload."""
    state = {"generator": Payload(marker), "discriminator": {}, "model_config": {}, "train_config": {}, "step": 0}
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    return path


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fastgan", *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=600)


def assert_user_error(result, code, *fragments):
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    assert result.returncode == code, output[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert str(fragment) in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real one-step mnist-quick run: its checkpoint.pt, and an encoder.pt beside it."""
    from fastgan.paper.cli import main

    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--steps", "1", "--backend", "torch", "--out", str(out), "--parzen-samples", "20",
                 "--no-progress"]) == 0
    assert main(["reconstruct", str(out / "checkpoint.pt"), "--steps", "1", "--rows", "1", "--no-progress"]) == 0
    return out


# --- crafted checkpoints: one test per loading command ----------------------------------------------------


def _loading_commands(run_dir: Path, evil: Path, tmp: Path):
    resume = tmp / "resume"
    resume.mkdir()
    (resume / "checkpoint.pt").write_bytes(evil.read_bytes())
    return {
        "evaluate": ("evaluate", evil, "--samples", "10", "--no-progress"),
        "sample": ("sample", evil, "--out", tmp / "s.png"),
        "interpolate": ("interpolate", evil, "--out", tmp / "i.png"),
        "reconstruct": ("reconstruct", evil, "--steps", "1", "--no-progress"),
        "semisupervised": ("semisupervised", evil, "--no-progress"),
        "train --resume": ("train", "--resume", "--out", resume, "--steps", "2", "--no-progress"),
    }


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy-pickle"])
@pytest.mark.parametrize("command", ["evaluate", "sample", "interpolate", "reconstruct", "semisupervised",
                                     "train --resume"])
def test_a_malicious_checkpoint_never_runs_code(tmp_path, command, zip_format):
    marker = tmp_path / "PWNED"
    evil = craft_malicious(tmp_path / "evil.pt", marker, zip_format)
    args = _loading_commands(tmp_path, evil, tmp_path)[command]
    result = run_cli(*args)
    assert not marker.exists(), "loading the checkpoint ran its code"
    target = evil if command != "train --resume" else tmp_path / "resume" / "checkpoint.pt"
    assert_user_error(result, 1, target, "refused", "weights_only=True")


def test_the_library_loaders_refuse_a_malicious_checkpoint(tmp_path):
    marker = tmp_path / "PWNED"
    evil = craft_malicious(tmp_path / "evil.pt", marker)
    with open(tmp_path / "evil.pkl", "wb") as f:  # a plain pickle, as torch.load also reads them
        pickle.dump({"encoder": Payload(marker), "encoder_config": {}}, f)
    for load in (lambda p: checkpoint.load(p), lambda p: checkpoint.load_models(p, "torch"),
                 lambda p: checkpoint.load(p, "encoder"), checkpoint.load_encoder):
        for path in (evil, tmp_path / "evil.pkl"):
            with pytest.raises(checkpoint.CheckpointError, match=r"refused, it holds objects that need code"):
                load(path)
    assert not marker.exists()


# --- every kind of bad input, table-driven ----------------------------------------------------------------


def _write_bad_files(run_dir: Path, tmp: Path) -> dict:
    good = run_dir / "checkpoint.pt"
    raw = good.read_bytes()
    files = {"dir": tmp / "a_dir", "empty": tmp / "empty.pt", "text": tmp / "notes.txt", "truncated": tmp / "half.pt",
             "garbage": tmp / "garbage.pt", "list": tmp / "list.pt", "newer": tmp / "newer.pt",
             "misfit": tmp / "misfit.pt", "empty_data": tmp / "no_data", "bad_data": tmp / "bad_data",
             "a_file": tmp / "a_file", "empty_run": tmp / "empty_run"}
    files["dir"].mkdir()
    files["empty"].write_bytes(b"")
    files["text"].write_text("these are my notes\n")
    files["truncated"].write_bytes(raw[:len(raw) // 2])
    files["garbage"].write_bytes(bytes(range(256)) * 40)
    torch.save([1, 2, 3], files["list"])
    state = checkpoint.load(good)
    torch.save({**state, "format_version": checkpoint.FORMAT_VERSION + 1}, files["newer"])
    torch.save({**state, "model_config": {**state["model_config"], "d_units": 7}}, files["misfit"])
    files["empty_data"].mkdir()
    files["bad_data"].mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (files["bad_data"] / name).write_bytes(gzip.compress(b"not an IDX file"))
    files["a_file"].write_text("x")
    files["empty_run"].mkdir()
    return files


def _cases(run_dir: Path, tmp: Path):
    f = _write_bad_files(run_dir, tmp)
    good, encoder = run_dir / "checkpoint.pt", run_dir / "encoder.pt"
    legacy = FIXTURES / "legacy_23d1cc1.pt"  # tiny nets for 16-pixel images
    png = tmp / "out.png"
    return [
        # (id, argv, exit code, what the line must name)
        ("missing checkpoint", ["evaluate", tmp / "nope.pt"], 1, [tmp / "nope.pt", "no such file"]),
        ("directory", ["sample", f["dir"], "--out", png], 1, [f["dir"], "is a directory"]),
        ("empty file", ["interpolate", f["empty"], "--out", png], 1, [f["empty"], "empty"]),
        ("text file", ["evaluate", f["text"]], 1, [f["text"], "corrupt or truncated"]),
        ("truncated", ["evaluate", f["truncated"]], 1, [f["truncated"], "corrupt or truncated"]),
        ("garbage", ["sample", f["garbage"], "--out", png], 1, [f["garbage"]]),
        ("a list, not a checkpoint", ["evaluate", f["list"]], 1, [f["list"], "holds a list"]),
        ("encoder where a GAN is expected", ["evaluate", encoder], 1, [encoder, "is an encoder file",
                                                                       "expected a GAN checkpoint"]),
        ("a newer format", ["evaluate", f["newer"]], 1, [f["newer"], "newer", "upgrade fastgan"]),
        ("weights that misfit their config", ["sample", f["misfit"], "--out", png], 1,
         [f["misfit"], "do not match its model_config"]),
        ("another net shape than the data", ["evaluate", legacy], 1, [legacy, "take 16 values per image"]),
        ("steps negative", ["train", "--steps", "-5"], 2, ["--steps", "must be >= 1, got -5"]),
        ("steps zero", ["train", "--steps", "0"], 2, ["--steps"]),
        ("steps not a number", ["train", "--steps", "many"], 2, ["--steps", "'many'"]),
        ("minutes zero", ["train", "--minutes", "0"], 2, ["--minutes"]),
        ("minutes nan", ["train", "--minutes", "nan"], 2, ["--minutes"]),
        ("lr negative", ["train", "--lr", "-0.1"], 2, ["--lr"]),
        ("k zero", ["train", "--k", "0"], 2, ["--k"]),
        ("checkpoint interval zero", ["train", "--checkpoint-every", "0"], 2, ["--checkpoint-every"]),
        ("parzen samples zero", ["train", "--parzen-samples", "0"], 2, ["--parzen-samples"]),
        ("evaluate samples zero", ["evaluate", good, "--samples", "0"], 2, ["--samples"]),
        ("reconstruct steps zero", ["reconstruct", good, "--steps", "0"], 2, ["--steps"]),
        ("semisupervised repeats negative", ["semisupervised", good, "--repeats", "-1"], 2, ["--repeats"]),
        ("sample rows zero", ["sample", good, "--rows", "0"], 2, ["--rows"]),
        ("interpolate one step", ["interpolate", good, "--steps", "1"], 2, ["--steps", "must be >= 2"]),
        ("unknown preset", ["train", "--preset", "mnist-huge"], 2, ["--preset", "mnist-huge"]),
        ("data dir missing", ["train", "--data-dir", "/no/such/dir"], 2, ["--data-dir", "/no/such/dir",
                                                                         "does not exist"]),
        ("data dir and download", ["train", "--data-dir", f["empty_data"], "--download"], 2,
         ["--download", "not allowed with"]),
        ("data dir without the files", ["train", "--data-dir", f["empty_data"], "--out", tmp / "r1"], 1,
         [f["empty_data"], "train-images-idx3-ubyte"]),
        ("data dir with corrupt files", ["train", "--data-dir", f["bad_data"], "--out", tmp / "r2"], 1,
         ["not an IDX file"]),
        ("evaluate on corrupt data", ["evaluate", good, "--data-dir", f["bad_data"]], 1, ["not an IDX file"]),
        ("output dir under a file", ["train", "--out", f["a_file"] / "run"], 2, ["--out", "cannot write there"]),
        ("output picture in a missing dir", ["sample", good, "--out", tmp / "no" / "x.png"], 2,
         ["--out", "does not exist"]),
        ("output picture is a directory", ["sample", good, "--out", f["dir"]], 2, ["--out", "is a directory"]),
        ("json in a missing dir", ["evaluate", good, "--json", tmp / "no" / "p.json"], 2, ["--json"]),
        ("resume with nothing to resume", ["train", "--resume", "--out", f["empty_run"]], 2,
         ["--resume", "nothing to resume"]),
        ("a run already there", ["train", "--out", run_dir, "--steps", "1"], 2, ["--out", "pass --resume"]),
        ("class of an unconditional run", ["sample", good, "--class", "3", "--out", png], 2, ["--class"]),
        ("unknown command", ["fly"], 2, ["invalid choice: 'fly'"]),
    ]


def test_bad_inputs_give_one_line_and_the_right_exit_code(run_dir, tmp_path):
    cases = _cases(run_dir, tmp_path)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda case: run_cli(*case[1], cwd=tmp_path), cases))
    failures = []
    for (name, argv, code, fragments), result in zip(cases, results):
        try:
            assert_user_error(result, code, *fragments)
        except AssertionError as err:
            failures.append(f"{name} ({' '.join(map(str, argv))}): {err}")
    assert not failures, "\n".join(failures)


def test_fastgan_debug_shows_the_traceback_of_a_user_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fastgan", "evaluate", str(tmp_path / "nope.pt")],
                            capture_output=True, text=True, env={**ENV, "FASTGAN_DEBUG": "1"}, timeout=600)
    assert result.returncode != 0 and "Traceback" in result.stderr and "no such file" in result.stderr
