"""Atomic file writes (a crash or a full disk never leaves a half-written output behind; defined in
:mod:`pe_tabular.privacy.atomic`, re-exported here), and the one conversion of datetimes to the epoch seconds
that schemas, bins and encoders use."""

from __future__ import annotations

import math
from typing import Any

from pe_tabular.privacy.atomic import (  # noqa: F401  (re-exported: the tree's one home of file writes)
    TMP_SUFFIX,
    atomic_write,
    atomic_write_json,
    atomic_write_npz,
    atomic_write_text,
    clean_stale_temporaries,
)


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
