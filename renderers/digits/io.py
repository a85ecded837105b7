"""MNIST-style image I/O: the IDX format (LeCun's MNIST files, optionally gzipped) and NPZ.

IDX layout (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code (0x08 = uint8,
0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then one
big-endian uint32 per dimension, then the data in C order, big-endian. Written here from that
description so the project reads the official files without any download helper.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from pe_tabular.io_utils import atomic_write, atomic_write_npz

_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
_CODES = {np.dtype(v).newbyteorder("=").str if v.itemsize > 1 else v.str: k for k, v in _IDX_TYPES.items()}


def _open(path: Path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (plain or gzip, detected by magic bytes) into a native-endian array."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"IDX file not found: {path}")
    with _open(path) as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic bytes {raw[:4]!r})")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{path}: unknown IDX data type code 0x{code:02X}")
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dt = _IDX_TYPES[code]
    need = int(np.prod(dims, dtype=np.int64)) * dt.itemsize
    if len(raw) - header != need:
        # no sizes in the message: the first dimension is the number of (private) images
        raise ValueError(f"{path}: the file holds fewer or more data bytes than its header says; it is truncated "
                         "or corrupt")
    return np.frombuffer(raw, dtype=dt, offset=header).reshape(dims).astype(dt.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write an array as IDX (gzip when the name ends in .gz or ``compress`` is True), atomically."""
    path = Path(path)
    a = np.ascontiguousarray(array)
    key = a.dtype.newbyteorder("=").str if a.dtype.itemsize > 1 else a.dtype.str
    if key not in _CODES:
        raise ValueError(f"IDX cannot store dtype {a.dtype}; use uint8, int8, int16, int32, float32 or float64")
    if a.ndim > 255:
        raise ValueError("IDX supports at most 255 dimensions")
    code = _CODES[key]
    head = bytes([0, 0, code, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    body = a.astype(_IDX_TYPES[code], copy=False).tobytes()
    gz = path.name.endswith(".gz") if compress is None else compress

    def w(tmp: str) -> None:
        with (gzip.open(tmp, "wb", compresslevel=6) if gz else open(tmp, "wb")) as f:
            f.write(head + body)
    return atomic_write(path, w)


def mnist_paths(directory: str | Path, split: str) -> tuple[Path, Path]:
    """Image and label files of an MNIST split ('train' or 'test') in ``directory`` (.gz or plain)."""
    pre = {"train": "train", "test": "t10k"}.get(split)
    if pre is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    d = Path(directory)
    out = []
    for stem in (f"{pre}-images-idx3-ubyte", f"{pre}-labels-idx1-ubyte"):
        cands = [d / f"{stem}.gz", d / stem, d / stem.replace("-idx", ".idx")]
        hit = next((c for c in cands if c.exists()), None)
        if hit is None:
            raise FileNotFoundError(f"{d} has no {stem}[.gz]; point --private at a folder with the official "
                                    "MNIST IDX files")
        out.append(hit)
    return out[0], out[1]


def load_mnist(directory: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 28, 28), labels int64 (n,)) of an MNIST split."""
    ip, lp = mnist_paths(directory, split)
    x, y = read_idx(ip), read_idx(lp)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"{ip} / {lp}: expected images (n, h, w) and as many labels (n,); got {x.ndim}-d images "
                         f"{'and as many' if len(x) == len(y) else 'and a different number of'} {y.ndim}-d labels")
    return x.astype(np.uint8, copy=False), y.astype(np.int64)


def load_images(path: str | Path, split: str = "train", flag: str = "--private") -> tuple[np.ndarray, np.ndarray]:
    """A folder of MNIST IDX files (the given split) or an .npz with 'images' and 'labels'.

    ``flag`` is the command-line name of ``path`` (``--private``, ``--real``, ``DIR``), so the error
    tells the user which argument to fix; a plain ``ValueError`` because this is file I/O, not CLI
    code — the CLI maps it to exit code 2 like any bad input.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{flag} {p} does not exist")
    if p.is_dir():
        if (p / "synthetic.npz").exists() and not any(p.glob("*-images-idx3-ubyte*")):
            return read_npz(p / "synthetic.npz")
        return load_mnist(p, split)
    if p.suffix == ".npz":
        return read_npz(p)
    raise ValueError(f"{flag} must be a folder of MNIST IDX files or an .npz file, got {p}")


def write_mnist(directory: str | Path, images: np.ndarray, labels: np.ndarray, split: str = "train") -> list[Path]:
    """Write images/labels as MNIST-named gzipped IDX files (uint8) in ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    pre = {"train": "train", "test": "t10k"}[split]
    return [write_idx(d / f"{pre}-images-idx3-ubyte.gz", to_uint8(images)),
            write_idx(d / f"{pre}-labels-idx1-ubyte.gz", np.asarray(labels).astype(np.uint8))]


def to_uint8(images: np.ndarray) -> np.ndarray:
    """uint8 images; floats are read as intensities in [0, 1]."""
    a = np.asarray(images)
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind == "f":
        return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    return np.clip(a, 0, 255).astype(np.uint8)


def write_npz(path: str | Path, images: np.ndarray, labels: np.ndarray, **extra: np.ndarray) -> Path:
    """NPZ with 'images' (uint8, n×28×28) and 'labels' (int64) — the reference scorer's input format."""
    arrays = {"images": to_uint8(images), "labels": np.asarray(labels).astype(np.int64), **extra}
    return atomic_write_npz(path, arrays, compressed=True)


def read_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("images", "labels") if k not in z.files]
        if missing:
            raise ValueError(f"{path} lacks array(s) {missing}; it has {z.files}")
        return to_uint8(z["images"]), z["labels"].astype(np.int64)
