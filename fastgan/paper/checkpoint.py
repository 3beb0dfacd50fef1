"""The one place fastgan's files are written and read: the trainer's checkpoints and reconstruct's encoders.

A checkpoint is someone else's file as often as not, so reading one never runs code: torch.load with
weights_only=True, which admits only tensors, dicts, lists, tuples, str, int, float, bool and None (configs
are plain dicts, RNG states tensors). Every file carries its `kind` and a `format_version`; files written
before the version existed (format 0) hold the same plain data and load unchanged. Anything unusable
(missing, a directory, empty, truncated, corrupt, a pickle that needs code, another kind of file, weights
that do not fit their config) raises CheckpointError with one line naming the file and the reason.

Writing is atomic: a temporary file beside the target, fsync, os.replace, fsync of the directory, so a
crash or a kill at any moment leaves either the old file or the new one, never half of one.
"""
import os
import warnings
from pathlib import Path
from typing import Union

import torch

__all__ = ["FORMAT_VERSION", "CheckpointError", "configs", "load", "load_encoder", "load_models", "save"]

FORMAT_VERSION = 1
# What each kind of file is, for the messages, and the keys it must hold.
KINDS = {
    "gan": ("a GAN checkpoint (train's checkpoint.pt)",
            ("generator", "discriminator", "model_config", "train_config", "step")),
    "encoder": ("an encoder file (reconstruct's encoder.pt)", ("encoder", "encoder_config")),
}
PathLike = Union[str, Path]


class CheckpointError(ValueError):
    """A file that is not a usable fastgan checkpoint of the kind asked for; the message names the file."""


def save(state: dict, path: PathLike, kind: str = "gan") -> Path:
    """Atomically writes `state` (plain data only) as a checkpoint of `kind` to `path`; returns the path."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({**state, "kind": kind, "format_version": FORMAT_VERSION}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C or a full disk mid-write: the old file stays, the partial one goes
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)
    return path


def _unpickling_reason(err: Exception) -> str:
    # torch's message is several lines of advice around the one that says what was refused
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    boilerplate = ("Weights only load failed", "Check the documentation", "Please file an issue", "WeightsUnpickler")
    reason = [line for line in lines if not line.startswith(boilerplate)]
    return " ".join(reason) or type(err).__name__


def _read(path: Path):
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"{path}: not readable (permission denied)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses or reads
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt file makes the zip and pickle readers raise almost any exception type
        if "Weights only load failed" in str(err):
            raise CheckpointError(f"{path}: refused, it holds objects that need code to load "
                                  f"({_unpickling_reason(err)}); fastgan loads only plain tensors and "
                                  "containers (torch.load weights_only=True)") from None
        raise CheckpointError(f"{path}: corrupt or truncated, not a readable torch checkpoint "
                              f"({type(err).__name__}: {_one_line(err)})") from None


def _infer_kind(state: dict):
    """The kind of a format-0 file (written before files said their kind)."""
    return next((kind for kind, (_, keys) in KINDS.items() if all(k in state for k in keys)), None)


def load(path: PathLike, kind: str = "gan") -> dict:
    """The plain-data dict of a checkpoint of `kind`, on the CPU; CheckpointError if it is not one."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    path = Path(path)
    state = _read(path)
    what, keys = KINDS[kind]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not {what}")
    version = state.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {version!r} is newer than this fastgan reads "
                              f"({FORMAT_VERSION}); upgrade fastgan")
    found = state.get("kind", _infer_kind(state))
    if found != kind:
        found_what = KINDS[found][0] if found in KINDS else "not a fastgan checkpoint"
        raise CheckpointError(f"{path}: is {found_what}, expected {what}")
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f"{path}: {what} without {', '.join(missing)}; the file is incomplete")
    return state


def configs(state: dict, path: PathLike = "the checkpoint"):
    """(ModelConfig, TrainConfig) of a GAN checkpoint's state; CheckpointError if they do not parse."""
    from .models import ModelConfig
    from .train import TrainConfig

    try:
        return ModelConfig.from_dict(state["model_config"]), TrainConfig(**state["train_config"])
    except (KeyError, TypeError, ValueError) as err:  # a key missing or unknown, a value out of range
        raise CheckpointError(f"{path}: its model_config or train_config does not parse ({_one_line(err)})") from None


def load_models(path: PathLike, backend: str = "auto"):
    """(state, Generator, Discriminator) of a GAN checkpoint, the nets rebuilt from its model_config."""
    from .models import build_models

    state = load(path, "gan")
    config, _ = configs(state, path)
    try:
        generator, discriminator = build_models(config, backend=backend)
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
    except (TypeError, ValueError, RuntimeError) as err:  # weights missing, or of sizes that do not fit
        raise CheckpointError(f"{path}: its nets do not match its model_config ({_one_line(err)})") from None
    return state, generator, discriminator


def load_encoder(path: PathLike):
    """(state, Encoder) of an encoder file written by `python -m fastgan reconstruct`."""
    from .inference import Encoder

    state = load(path, "encoder")
    try:
        encoder = Encoder(**state["encoder_config"])
        encoder.load_state_dict(state["encoder"])
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: its encoder does not match its encoder_config ({_one_line(err)})") from None
    return state, encoder


def _one_line(err: Exception, limit: int = 300) -> str:
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or "no detail"
    return text if len(text) <= limit else text[:limit] + "..."
