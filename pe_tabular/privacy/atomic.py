"""Atomic file writes: a crash, a kill -9 or a full disk never leaves a half-written output behind.

They live in the privacy package, its bottom layer, because the ledger and every checkpointed release are
written through them and ``pe_tabular.privacy`` imports nothing of the rest of the engine (a leaf package);
the rest of the tree imports them from :mod:`pe_tabular.io_utils`, which re-exports them.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".pe-tmp"  # our own temporaries: `.NAME.<random>.pe-tmp`, beside the file they become


def clean_stale_temporaries(path: Path) -> list[Path]:
    """Remove temporaries a killed earlier write of ``path`` left behind (only files of our own naming:
    ``.NAME.<random>.pe-tmp`` beside it); a kill -9 mid-write cannot run any clean-up of its own."""
    gone = []
    for f in path.parent.glob(f".{glob.escape(path.name)}.*{TMP_SUFFIX}"):
        try:
            f.unlink()
            gone.append(f)
        except OSError:
            pass
    return gone


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path`` (same directory, so the rename is atomic)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise FileNotFoundError(f"output directory {parent} does not exist; create it or choose another --out")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"output directory {parent} is not writable; choose another --out")
    clean_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    def _w(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return atomic_write(path, _w)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_write_npz(path: str | os.PathLike, arrays: dict[str, Any], compressed: bool = False) -> Path:
    """NumPy archive written atomically (through a file object: ``np.savez`` would append ".npz" to the
    temporary name and leave the real temporary file empty)."""
    import numpy as np

    save = np.savez_compressed if compressed else np.savez

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            save(f, **arrays)

    return atomic_write(path, write)


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
