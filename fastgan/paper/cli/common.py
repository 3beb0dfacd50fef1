"""What the commands share: user errors, argument types, the argument groups, and loading checkpoints and data
with a one-line error.

A user error prints `error: ...` on one line, naming the argument or the file and what would work, and exits
2 (bad usage) or 1 (a bad input file); FASTGAN_DEBUG=1 shows its traceback too. Anything else is a bug in
fastgan and keeps its traceback.
"""
import argparse
import os
import tempfile
from pathlib import Path

BACKENDS = ("auto", "cuda", "triton", "cpu", "torch")
EXIT_BAD_INPUT, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UserError(Exception):
    """A mistake in the command line (exit 2) or in an input file (exit 1); the message is the whole story."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage block) raised as UserError."""

    def error(self, message):
        raise UserError(f"{message} (see `{self.prog} --help`)")


# --- argument types: a bad value is reported by argparse as "argument --x: <message>" -----------------------


def int_at_least(minimum: int):
    """An argparse type: a whole number >= minimum."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"whole number >= {minimum}"  # what argparse names in its own messages
    return parse


positive_int, non_negative_int = int_at_least(1), int_at_least(0)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def existing_dir(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a directory" if path.exists() else f"{text} does not exist")
    return path


# --- the shared argument groups --------------------------------------------------------------------------------


def add_data_args(parser):
    group = parser.add_argument_group("data (default: the offline 5k MNIST subset shipped with fastgan; "
                                      "Fashion-MNIST from the Debian package dataset-fashion-mnist)")
    source = group.add_mutually_exclusive_group()
    source.add_argument("--data-dir", type=existing_dir,
                        help="a directory with the data set's files (MNIST/Fashion-MNIST IDX files, CIFAR-10 batches)")
    source.add_argument("--download", action="store_true",
                        help="download the data set (SHA-256 checked) into the cache")
    group.add_argument("--cache-dir", type=Path, help="where --download stores it (default ~/.cache/fastgan)")


def add_backend_arg(parser):
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="fused kernels (auto) or the pure-PyTorch reference (torch) for the same nets")


def add_checkpoint_arg(parser):
    parser.add_argument("checkpoint", type=Path, help="a checkpoint.pt written by `python -m fastgan train`")


def add_progress_arg(parser):
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


# --- loading inputs and checking outputs ----------------------------------------------------------------------


def data_source(args, state=None):
    """A directory, "download", or None (the data set's default); a checkpoint's own source unless
    --data-dir or --download says otherwise."""
    if args.data_dir or args.download or state is None:
        return str(args.data_dir) if args.data_dir else ("download" if args.download else None)
    return state.get("data_source", "offline")


def load_data(dataset: str, source, cache_dir=None, model_config=None, checkpoint_path=None):
    """The data set's splits; with a checkpoint's model_config, checked to fit its nets."""
    from ..data import DataError, load_dataset

    try:
        splits = load_dataset(dataset, source, cache_dir=cache_dir).splits
    except DataError as err:
        raise UserError(f"data: {err}", EXIT_BAD_INPUT) from None
    pixels = splits.train.images.shape[1]
    if model_config is not None and pixels != model_config.data_dim:
        raise UserError(f"{checkpoint_path}: its nets take {model_config.data_dim} values per image but the data "
                        f"({splits.source}) has {pixels}; give the data set it was trained on", EXIT_BAD_INPUT)
    print(f"data: {splits.source}")
    return splits


def checkpoint_data(args, state):
    """The splits the checkpoint was trained on (or --data-dir / --download's), checked against its nets."""
    from .. import checkpoint

    model_config, train_config = checkpoint.configs(state, args.checkpoint)
    return load_data(train_config.dataset, data_source(args, state), args.cache_dir, model_config, args.checkpoint)


def writable_dir(path: Path, argument: str) -> Path:
    """Creates `path` if needed and checks that files can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".fastgan-write-check-"):
            pass
    except OSError as err:
        raise UserError(f"{argument} {path}: cannot write there ({err.strerror or err})") from None
    return path


def writable_file(path: Path, argument: str) -> Path:
    """Checks that `path` can be written: its directory exists and is writable, and it is not a directory."""
    if path.is_dir():
        raise UserError(f"{argument} {path}: is a directory; give a file name such as {path / 'out.png'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{argument} {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{argument} {path}: cannot write in {parent} (permission denied)")
    return path
