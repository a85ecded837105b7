"""pandas 2.2+ and 3.x: datetimes at every resolution become the same epoch seconds everywhere.

pandas 3 parses dates to second/millisecond/microsecond resolution, where ``astype("int64") / 1e9``
(nanoseconds assumed) is off by 10³-10⁹; pandas 2 builds such columns too (``astype("datetime64[s]")``),
so these tests fail on that idiom under either version."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pe_tabular.io_utils import epoch_seconds
from pe_tabular.tables.marginals import Binning
from pe_tabular.tables.schema import Column, parse_dates

T0, T1 = 1577836800.0, 1609459201.5  # 2020-01-01T00:00:00Z, 2021-01-01T00:00:01.5Z
UNITS = ("s", "ms", "us", "ns")


def _stamps(unit: str) -> pd.Series:
    s = pd.Series(pd.to_datetime(["2020-01-01T00:00:00", None, "2021-01-01T00:00:01.5"], format="ISO8601"))
    return s.astype(f"datetime64[{unit}]")


@pytest.mark.parametrize("unit", UNITS)
def test_epoch_seconds_reads_the_resolution_from_the_dtype(unit):
    got = epoch_seconds(_stamps(unit))
    want = [T0, np.nan, T1 if unit != "s" else T1 - 0.5]  # a [s] column drops the half second
    np.testing.assert_array_equal(got.to_numpy(), want)
    np.testing.assert_array_equal(epoch_seconds(_stamps(unit).to_numpy()), want)


def test_epoch_seconds_of_scalars_and_time_zones():
    for v in ("2020-01-01", pd.Timestamp("2020-01-01"), np.datetime64("2020-01-01", "D"), dt.datetime(2020, 1, 1),
              pd.Timestamp("2020-01-01T01:00:00+01:00"), "2020-01-01T01:00:00+01:00"):
        assert epoch_seconds(v) == T0, v
    assert np.isnan(epoch_seconds(pd.NaT))
    aware = pd.Series(pd.to_datetime(["2020-01-01T01:00:00+01:00", None], utc=True))
    np.testing.assert_array_equal(epoch_seconds(aware).to_numpy(), [T0, np.nan])
    assert epoch_seconds(pd.DatetimeIndex(aware)).tolist()[0] == T0
    assert epoch_seconds(pd.Series(["3000-01-01"]).astype("datetime64[s]")).iloc[0] == 32503680000.0  # past ns range


@pytest.mark.parametrize("unit", UNITS)
def test_schema_parse_dates_and_bins_agree_at_every_resolution(unit):
    s = _stamps(unit)
    np.testing.assert_allclose(parse_dates(s).to_numpy(), epoch_seconds(s).to_numpy(), equal_nan=True)
    col = Column.from_dict({"name": "t", "type": "datetime", "lower": "2020-01-01", "upper": "2021-01-02",
                            "nullable": True})
    assert (col.lower, col.upper) == (T0, T0 + 367 * 86400)
    b = Binning.of(col)
    np.testing.assert_array_equal(b.index(s), b.index(pd.Series([T0, np.nan, T1])))


def test_epoch_seconds_back_to_datetimes_never_converts_a_missing_slot():
    """`pd.to_datetime(values, unit="s")` with NaN in the array rounds the fractional seconds of the NaN slots too
    (whatever the memory held) under ``errstate(over="raise")``: the suite once failed with a FloatingPointError
    writing a synthetic datetime column. ``from_epoch_seconds`` converts only finite values, to the same
    nanoseconds pandas gives, and keeps the index."""
    import numpy as np
    import pandas as pd

    from pe_tabular.io_utils import epoch_seconds, from_epoch_seconds

    x = pd.Series([1622891643.713278770, np.nan, 0.5, -1.25, np.inf], index=[5, 6, 7, 8, 9])
    got = from_epoch_seconds(x)
    assert list(got.index) == [5, 6, 7, 8, 9] and got.isna().tolist() == [False, True, False, False, True]
    want = pd.to_datetime(x.iloc[[0, 2, 3]], unit="s")
    assert (got.iloc[[0, 2, 3]].to_numpy() == want.to_numpy()).all()
    assert np.allclose(epoch_seconds(got.dropna()).to_numpy(), x.iloc[[0, 2, 3]].to_numpy())
