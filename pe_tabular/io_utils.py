"""Atomic file writes (a crash or a full disk never leaves a half-written output behind), and the one
conversion of datetimes to the epoch seconds that schemas, bins and encoders use."""

from __future__ import annotations

import glob
import json
import math
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


def epoch_seconds(values: Any) -> Any:
    """Seconds since 1970-01-01 UTC, as floats (NaN where missing), of datetimes at any resolution.

    Accepts a scalar (``pd.Timestamp``, ``datetime``, ``np.datetime64``, an ISO string) and returns a
    float, or a ``pd.Series`` / ``pd.Index`` / array of datetimes (tz-aware ones are taken in UTC) and
    returns a float Series (same index) / array. Why one helper: ``astype("int64") / 1e9`` assumes
    nanoseconds, but pandas 3 keeps parsed datetimes in seconds, milliseconds or microseconds, so that
    idiom silently moved every date by a factor of 10³-10⁹; this reads the unit from the dtype.
    """
    import numpy as np
    import pandas as pd

    if isinstance(values, str) or np.ndim(values) == 0:
        t = pd.Timestamp(values)
        if t is pd.NaT:
            return math.nan
        if t.tz is not None:
            t = t.tz_convert("UTC").tz_localize(None)
        return float(_seconds(np.asarray(t.to_datetime64())))
    if isinstance(values, pd.Series | pd.Index):
        v = values
        if isinstance(v.dtype, pd.DatetimeTZDtype):
            v = v.dt.tz_convert("UTC").dt.tz_localize(None) if isinstance(v, pd.Series) else \
                v.tz_convert("UTC").tz_localize(None)
        x = _seconds(np.asarray(v, dtype=v.dtype if v.dtype.kind == "M" else "datetime64[ns]"))
        return pd.Series(x, index=values.index, name=values.name) if isinstance(values, pd.Series) else x
    return _seconds(np.asarray(values, dtype=None if np.asarray(values).dtype.kind == "M" else "datetime64[ns]"))


def from_epoch_seconds(values: Any) -> Any:
    """Seconds since 1970-01-01 UTC (floats, NaN where missing) as a ``datetime64[ns]`` Series, NaT where missing.

    Why not ``pd.to_datetime(values, unit="s")``: with NaN in the array, pandas 2.x splits each value into whole
    and fractional seconds under ``np.errstate(over="raise")`` and rounds the fractional parts of the NaN slots
    too, which hold whatever the memory held; now and then that overflows and the conversion raises a
    FloatingPointError (seen in the test suite, depending on the memory state). Only finite values are converted
    here, at nanosecond resolution."""
    import numpy as np
    import pandas as pd

    index = values.index if isinstance(values, pd.Series) else None
    x = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    ns = np.full(x.size, np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = np.isfinite(x)
    whole = np.floor(x[ok])  # whole and fractional seconds apart: x * 1e9 as one float would lose the ns digits
    ns[ok] = (whole.astype(np.int64) * 1_000_000_000 + np.round((x[ok] - whole) * 1e9).astype(np.int64)).view(
        "datetime64[ns]")
    return pd.Series(ns, index=index)


def _seconds(a: Any) -> Any:
    """datetime64 array (any unit) -> float seconds since the epoch; NaT -> NaN."""
    import numpy as np

    return (a - np.datetime64(0, "s")) / np.timedelta64(1, "s")
