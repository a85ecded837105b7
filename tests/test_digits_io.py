"""IDX / NPZ readers and writers."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from renderers.digits.io import load_images, load_mnist, read_idx, read_npz, write_idx, write_mnist, write_npz


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((7, 5, 3)) * 100).astype(dtype)
    p = write_idx(tmp_path / name, a)
    b = read_idx(p)
    assert b.dtype == np.dtype(dtype) and b.shape == a.shape
    assert np.array_equal(a, b)
    with open(p, "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == name.endswith(".gz")


def test_idx_header_is_big_endian_mnist_layout(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.int32).reshape(2, 3, 4)
    raw = open(write_idx(tmp_path / "x.idx", a), "rb").read()
    assert raw[:4] == bytes([0, 0, 0x0C, 3])
    assert [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(3)] == [2, 3, 4]
    assert int.from_bytes(raw[16 + 4 * 5:16 + 4 * 6], "big") == 5  # data big-endian, C order


def test_truncated_and_foreign_files_are_refused(tmp_path):
    p = write_idx(tmp_path / "x.idx", np.zeros((4, 28, 28), np.uint8))
    raw = open(p, "rb").read()
    (tmp_path / "cut.idx").write_bytes(raw[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "cut.idx")
    (tmp_path / "png.idx").write_bytes(b"\x89PNG\r\n")
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(tmp_path / "png.idx")
    with pytest.raises(ValueError, match="dtype"):
        write_idx(tmp_path / "b.idx", np.zeros(3, dtype=np.uint16))


def test_mnist_folder_and_npz_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 12)
    write_mnist(tmp_path, x, y, "test")
    x2, y2 = load_mnist(tmp_path, "test")
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    write_npz(tmp_path / "s.npz", x.astype(np.float32) / 255, y)
    x3, y3 = read_npz(tmp_path / "s.npz")
    assert np.array_equal(x, x3) and np.array_equal(y, y3)
    with pytest.raises(FileNotFoundError, match="train-images"):
        load_mnist(tmp_path, "train")


def test_load_images_reads_idx_folders_run_folders_and_npz_and_names_the_flag(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 6)
    write_mnist(tmp_path / "idx", x, y, "test")
    assert np.array_equal(load_images(tmp_path / "idx", "test")[0], x)
    (tmp_path / "run").mkdir()
    write_npz(tmp_path / "run" / "synthetic.npz", x, y)  # a `digits synth` folder (npz format)
    assert np.array_equal(load_images(tmp_path / "run")[1], y)
    assert np.array_equal(load_images(tmp_path / "run" / "synthetic.npz")[0], x)
    with pytest.raises(FileNotFoundError, match="--real .*does not exist"):
        load_images(tmp_path / "missing", flag="--real")
    (tmp_path / "x.csv").write_text("a\n")
    with pytest.raises(ValueError, match="DIR must be a folder of MNIST IDX files or an .npz file"):
        load_images(tmp_path / "x.csv", flag="DIR")


def test_reads_official_mnist_files():
    from conftest import shared_path

    d = shared_path("data", "mnist")
    with gzip.open(d / "t10k-labels-idx1-ubyte.gz") as f:
        head = f.read(8)
    assert head[:4] == bytes([0, 0, 8, 1])
    x, y = load_mnist(d, "test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8 and y.shape == (10000,)
    assert set(np.unique(y)) == set(range(10))
