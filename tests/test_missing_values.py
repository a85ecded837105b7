"""Missing values are data (issue 22 "Real files"; issue 23 finding 1).

The matrix: every column type × every input (CSV, CSV.gz, Parquet, pandas, polars) × missing share (none, one
row, 30 %, all) × chunk size (tiny chunks, one chunk). Each cell of the input must reach the private cache
(``PrivateRows``) as itself: missing exactly where it was missing, every other value unchanged, whatever the
other rows of its chunk hold — under pandas 2 and pandas 3 alike (run this file under both pythons).
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pe_tabular.tables.cells import CategoryLookup, blank_missing, canonical, na_strings
from pe_tabular.tables.io import scan_table
from pe_tabular.tables.private import PrivateRows
from pe_tabular.tables.schema import Column, Schema, infer_public, validate

pytestmark = pytest.mark.filterwarnings("ignore::pe_tabular.tables.schema.DroppedColumnsWarning")
N = 60
PANDAS3 = int(pd.__version__.split(".")[0]) >= 3
CODES = tuple(range(19))
SCHEMA = Schema((
    Column("cat", "categorical", categories=("a", "b", "c"), nullable=True),
    Column("code", "categorical", categories=CODES, nullable=True),
    Column("i", "integer", lower=0, upper=1000, nullable=True),
    Column("f", "float", lower=0, upper=100, rounding=0.01, nullable=True),
    Column("d", "datetime", lower=pd.Timestamp("2019-01-01").value / 1e9, upper=pd.Timestamp("2024-01-01").value / 1e9,
           nullable=True),
    Column("b", "boolean", nullable=True),
))
SHARES = {"none": 0, "one": 1, "30%": 18, "all": N}


def _truth(share: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The table (as Python values, None where missing) and the expected cache matrix (NaN where missing)."""
    rng = np.random.default_rng(7)
    values = {
        "cat": rng.choice(["a", "b", "c"], N).tolist(),
        "code": rng.integers(0, 19, N).tolist(),
        "i": rng.integers(0, 1001, N).tolist(),
        "f": np.round(rng.uniform(0, 100, N), 2).tolist(),
        "d": [pd.Timestamp("2020-01-01") + pd.Timedelta(days=int(k)) for k in rng.integers(0, 1000, N)],
        "b": (rng.random(N) < 0.5).tolist(),
    }
    expect = np.column_stack([
        [("a", "b", "c").index(v) for v in values["cat"]], values["code"], values["i"], values["f"],
        [t.value / 1e9 for t in values["d"]], [float(v) for v in values["b"]]]).astype(float)
    k = SHARES[share]
    rows = {"none": [], "one": [17], "all": list(range(N))}.get(share, sorted(rng.choice(N, k, replace=False)))
    for name in values:  # each column misses its own rows (shifted), so missingness is per cell
        j = list(values).index(name)
        miss = [(r + j) % N for r in rows]
        for r in miss:
            values[name][r] = None
        expect[miss, j] = np.nan
    return pd.DataFrame(values, dtype=object), expect


def _write(df: pd.DataFrame, fmt: str, tmp: Path) -> object:
    """The table as the user would hand it over in ``fmt`` (written by pandas / polars, read as they read)."""
    csv = tmp / "t.csv"
    df.to_csv(csv, index=False)
    if fmt == "csv":
        return csv
    if fmt == "csv.gz":
        gz = tmp / "t.csv.gz"
        with open(csv, "rb") as src, gzip.open(gz, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return gz
    if fmt == "pandas":
        return pd.read_csv(csv)  # what a user gets: float codes where one is missing, object text, ...
    if fmt == "pandas-nullable":
        return pd.read_csv(csv).convert_dtypes()
    if fmt == "parquet":
        typed = pd.read_csv(csv, parse_dates=["d"]).convert_dtypes()
        typed.to_parquet(tmp / "t.parquet", index=False)
        return tmp / "t.parquet"
    if fmt == "polars":
        pl = pytest.importorskip("polars")
        return pl.read_csv(csv, try_parse_dates=True)
    raise AssertionError(fmt)


def _cache(data: object, chunk_rows: int, schema: Schema, **kw) -> np.ndarray:
    if isinstance(data, Path):  # the synth CLI's reader: CSV scanned as text, Parquet by row groups
        data = scan_table(data, schema, chunk_rows=chunk_rows, csv_block_bytes=64 if chunk_rows < N else 1 << 20)
    with PrivateRows.open(data, schema, chunk_rows=chunk_rows, **kw) as rows:
        parts = [b.data.codes for p in rows.source.parts for b in p.batches(None)]
    return np.concatenate(parts) if parts else np.empty((0, len(schema.columns)))


FORMATS = ["csv", "csv.gz", "parquet", "pandas", "pandas-nullable", "polars"]


MATRIX = [pytest.param(f, s, c, id=f"{f}-{s}-{c}") for f in FORMATS for s in SHARES for c in (7, 1 << 16)]
DATES = Schema(tuple(c for c in SCHEMA.columns if c.name == "d"))
NO_DATES = Schema(tuple(c for c in SCHEMA.columns if c.name != "d"))


@pytest.mark.parametrize(("fmt", "share", "chunk_rows"), MATRIX)
def test_every_cell_reaches_the_cache_as_itself(fmt, share, chunk_rows, tmp_path):
    """Missing where missing, every other cell unchanged, in every type but datetime (next test). Under
    pandas 3 a blank CSV cell stopped the run ('values outside the public categories', 'values that are not
    numbers'); in a pandas frame one missing code made its chunk's codes 12.0, and every code of the chunk
    missing."""
    df, expect = _truth(share)
    got = _cache(_write(df, fmt, tmp_path), chunk_rows, NO_DATES)
    np.testing.assert_array_equal(got, np.delete(expect, SCHEMA.names.index("d"), axis=1))


@pytest.mark.parametrize(("fmt", "share", "chunk_rows"), MATRIX)
def test_every_date_reaches_the_cache_as_itself(fmt, share, chunk_rows, tmp_path):
    df, expect = _truth(share)
    got = _cache(_write(df, fmt, tmp_path), chunk_rows, DATES)
    np.testing.assert_allclose(got[:, 0], expect[:, SCHEMA.names.index("d")], rtol=0, atol=1e-3)


def test_one_missing_value_in_a_65k_chunk_changes_only_its_own_cell(tmp_path):
    """Issue 23 finding 1: with the old lookup, the float64 column pandas makes of codes with one missing
    value matched no category ('12.0' vs '12'), so all 65,536 rows of the chunk lost their code: one private
    row changed a whole chunk (Δ far above 1)."""
    n = 1 << 16
    code = np.random.default_rng(1).integers(0, 19, n)
    schema = Schema((Column("code", "categorical", categories=CODES, nullable=True),))
    full = pd.DataFrame({"code": code})
    holed = full.astype(float)
    holed.loc[4321, "code"] = np.nan  # what pandas makes of it: float64
    for data in (holed, full):
        got = _cache(data, n, schema)[:, 0]
        want = code.astype(float)
        if data is holed:
            want[4321] = np.nan
        np.testing.assert_array_equal(got, want)
    csv = tmp_path / "codes.csv"
    holed.to_csv(csv, index=False)  # written by pandas: '12.0' everywhere, one empty cell
    np.testing.assert_array_equal(np.isnan(_cache(csv, n, schema)[:, 0]), np.isnan(holed["code"].to_numpy()))


def test_category_lookup_compares_canonical_text_cell_by_cell():
    look = CategoryLookup(CODES)
    cells = pd.Series(["12", "12.0", 12, 12.0, np.int64(12), " 12 ", "1.2e1", "x", None], dtype=object)
    assert look.codes(cells).tolist() == [12] * 7 + [-2, -1]
    assert CategoryLookup(tuple(str(c) for c in CODES)).codes(pd.Series([3.0, 4])).tolist() == [3, 4]
    # exact text first: '007' stays its own category next to '7'; spellings of a boolean
    assert CategoryLookup(("7", "007")).codes(pd.Series(["007", "7", 7.0])).tolist() == [1, 0, 0]
    assert CategoryLookup((False, True), boolean=True).codes(
        pd.Series(["true", "0", 1.0, "False", True])).tolist() == [1, 0, 1, 0, 1]
    assert canonical(1.5) == canonical("1.50") == "1.5" and canonical(True) == "True"


def test_validate_maps_each_value_on_its_own():
    """``where(~null, None)`` on int codes made them floats; a chunk with a missing value then read 12.0."""
    schema = Schema((Column("code", "categorical", categories=CODES, nullable=True),))
    out = validate(pd.DataFrame({"code": [12.0, np.nan, 3.0]}), schema)
    assert out["code"].tolist() == [12, None, 3]
    assert validate(pd.DataFrame({"code": [12, 3]}), schema)["code"].tolist() == [12, 3]


@pytest.mark.parametrize("fmt", ["csv", "pandas"])
def test_schema_infer_labels_number_codes_as_written(fmt, tmp_path):
    """One missing value in a codes 0..18 column: categories 0, 1, ... (not 0.0, 1.0, ...), the same schema as
    the file without it, but nullable."""
    code = np.arange(60) % 19
    full = pd.DataFrame({"code": code, "x": np.arange(60) * 1.5})
    holed = full.astype({"code": float})
    holed.loc[5, "code"] = np.nan
    if fmt == "csv":
        holed.to_csv(tmp_path / "h.csv", index=False)
        holed = pd.read_csv(tmp_path / "h.csv")
    a, b = infer_public(full)["code"], infer_public(holed)["code"]
    assert list(b.categories) == list(CODES) and all(type(v) is int for v in b.categories)
    assert (a.categories, a.nullable, b.nullable) == (b.categories, False, True)
    assert [canonical(v) for v in b.categories][:3] == ["0", "1", "2"]


def test_na_values_read_as_missing_in_every_input(tmp_path):
    """``--na-values`` strings are missing in a CSV and in a frame; pandas' own (NA, NaN, null...) in a CSV."""
    schema = Schema((Column("cat", "categorical", categories=("a", "b"), nullable=True),
                     Column("x", "float", lower=0, upper=10, nullable=True)))
    df = pd.DataFrame({"cat": ["a", "NA", "?", "b", "null", " NaN"], "x": ["1", "-", "", "NaN", "2", "?"]})
    df.to_csv(tmp_path / "n.csv", index=False)
    want = np.array([[0, 1], [np.nan, np.nan], [np.nan, np.nan], [1, np.nan], [np.nan, 2], [np.nan, np.nan]])
    got = _cache(tmp_path / "n.csv", 1 << 16, schema, na_values=["?", "-"])
    np.testing.assert_array_equal(got, want)
    frame = pd.DataFrame({"cat": ["a", None, "?", "b", None, None], "x": [1, "-", None, None, 2, "?"]})
    np.testing.assert_array_equal(_cache(frame, 1 << 16, schema, na_values=["?", "-"]), want)
    typed = pd.DataFrame({"cat": ["a", "b", None], "x": [1.0, -999.0, 2.0]})  # a sentinel in a number column
    typed.to_parquet(tmp_path / "n.parquet", index=False)
    for data in (typed, tmp_path / "n.parquet"):
        np.testing.assert_array_equal(_cache(data, 1 << 16, schema, na_values=["-999"]),
                                      [[0, 1], [1, np.nan], [np.nan, 2]])
    # pandas 3 reads text as dtype 'str', not object: the NA test is on the kind of column, not 'object'
    text = pd.Series(["NA", "a"], dtype="string")
    assert blank_missing(pd.DataFrame({"s": text}), na_strings())["s"].isna().tolist() == [True, False]


@pytest.mark.parametrize("policy", ["drop", "clip"])
def test_drop_and_clip_never_touch_missing_values(policy, tmp_path):
    """Under pandas 3 a blank CSV cell was 'not a number' / 'outside the categories': drop removed its row
    (36 % of a real table) and clip made a blank category '(other)'. Only the one bad row may go or change."""
    schema = Schema((Column("cat", "categorical", categories=("a", "b", "(other)"), other="(other)", nullable=True),
                     Column("x", "integer", lower=0, upper=10, nullable=True)))
    (tmp_path / "m.csv").write_text("cat,x\na,1\n,2\nb,\n,\nzz,3\na,99\n")
    with pytest.warns(UserWarning, match=f"--on-invalid {policy}: rows that do not fit the schema are"):
        got = _cache(tmp_path / "m.csv", 1 << 16, schema, on_invalid=policy)
    kept = [[0, 1], [np.nan, 2], [1, np.nan], [np.nan, np.nan], [2, 3]]  # 'zz' goes to the other bucket
    np.testing.assert_array_equal(got, kept + ([[0, 10]] if policy == "clip" else []))


@pytest.mark.parametrize("fmt", ["csv", "pandas"])
def test_schema_infer_gives_the_same_types_with_one_missing_value(fmt, tmp_path):
    """A boolean column with one missing value is object-typed in pandas; it was inferred 'categorical' (and
    without the missing value 'boolean'). Only 'nullable' may differ."""
    full = pd.DataFrame({"b": [True, False] * 30, "code": np.arange(60) % 19, "x": np.arange(60) * 1.5,
                         "s": ["p", "q", "r"] * 20})
    holed = full.astype(object)
    holed.loc[3, :] = None
    if fmt == "csv":
        holed.to_csv(tmp_path / "h.csv", index=False)
        holed = pd.read_csv(tmp_path / "h.csv")
    else:
        holed = holed.infer_objects()
    a, b = infer_public(full), infer_public(holed)
    for c in full.columns:
        assert (a[c].type, a[c].categories) == (b[c].type, b[c].categories), c
        assert b[c].nullable and not a[c].nullable
