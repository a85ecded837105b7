"""One cell at a time: what counts as missing, and which public category a cell holds.

Both answers depend on the cell alone, never on the other rows of its chunk (issue 23, finding 1): pandas
gives a column of integer codes with one missing value the dtype float64 (``12`` becomes ``12.0``), a CSV
scanned as text gives ``"12"``, Parquet gives ``12`` or ``12.0``, polars gives ``12``. Comparing a cell's
*canonical text* with the categories' makes all of them the category ``12``, whatever else the chunk holds,
so one private row can change only its own cell (the Δ = 1 every release assumes).

Missing: a null of the input's own kind (``None``, ``NaN``, ``pd.NA``, ``NaT``, a Parquet or polars null)
in every input; in a CSV, also the strings pandas reads as missing (``""``, ``NA``, ``NaN``, ``null``, …),
whatever the column's text dtype (``object`` under pandas 2, ``str`` under pandas 3); in every input, the
strings the user names with ``--na-values``.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

#: strings pandas reads as missing in a CSV; a CSV scanned as text (pyarrow) gets the same treatment
NA_STRINGS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                        "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})
MISSING = -1  # code of a missing cell
UNKNOWN = -2  # code of a value outside the public categories
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def is_text(s: pd.Series) -> bool:
    """A column of text: ``object`` (pandas 2, mixed) or any string dtype (pandas 3's ``str``, ``string``)."""
    return pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)


def add_na_values_flag(p: argparse.ArgumentParser) -> None:
    """``--na-values S1,S2`` on every command that reads a table (synth, schema infer, evaluate, report), so one
    file reads the same way in each: a sentinel that is missing for ``synth`` is missing for its evaluation too."""
    p.add_argument("--na-values", type=lambda v: [x for x in v.split(",")], default=None, metavar="S1,S2",
                   help="more strings that mean a missing value, in every input (a CSV also takes pandas' own: "
                        "empty, NA, NaN, null, None, N/A, ...)")


def na_strings(extra: Iterable[str] = (), csv: bool = True) -> frozenset[str]:
    """The strings read as missing: pandas' defaults for a CSV (not for typed inputs), plus ``extra``."""
    return (NA_STRINGS if csv else frozenset()) | frozenset(str(v).strip() for v in extra)


def blank_missing(frame: pd.DataFrame, strings: frozenset[str]) -> pd.DataFrame:
    """``frame`` with every text cell whose stripped text is one of ``strings`` made missing, and every number
    cell equal to one of them that spells a number (cell by cell; other columns as they are). The test is on
    the column's kind, not on ``dtype == object``, which a CSV scanned as text under pandas 3 (dtype ``str``)
    failed."""
    if not strings:
        return frame
    numbers = [float(t) for t in strings if _NUMBER.match(t)]  # e.g. --na-values -999 in a typed number column
    out = {}
    for name in frame.columns:
        s = frame[name]
        if is_text(s):
            hit = _is_one_of(s, strings)
            out[name] = s.astype(object).where(~hit, None) if hit.any() else s
        elif numbers and pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            hit = s.isin(numbers).to_numpy(dtype=bool)
            out[name] = s.where(~hit) if hit.any() else s
    out = {name: out.get(name, frame[name]) for name in frame.columns}
    return pd.DataFrame(out, index=frame.index)


def _is_one_of(s: pd.Series, strings: frozenset[str]) -> np.ndarray:
    """Which cells of a text column are, stripped, one of ``strings`` (each cell tested on its own)."""
    try:
        return s.str.strip().isin(strings).to_numpy(dtype=bool)  # vectorised (pyarrow under pandas 3)
    except AttributeError:  # an object column holding non-text values too: one test per distinct value
        codes, uniques = pd.factorize(s)
        table = np.array([isinstance(v, str) and v.strip() in strings for v in uniques] + [False], bool)
        return table[codes]  # code -1 (already missing) takes the table's last entry


def canonical(v: Any) -> str:
    """A cell's canonical text: stripped text; a number (or text that spells one) as its shortest form with
    no trailing ``.0`` (``12``, ``12.0``, ``"12"``, ``" 12.0"`` are all ``"12"``; ``1.5`` is ``"1.5"``);
    a boolean as ``"True"``/``"False"``."""
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        x = float(v)
        if math.isfinite(x) and x == int(x) and abs(x) < 2**53:
            return str(int(x))
        return repr(x)
    t = str(v).strip()
    if _NUMBER.match(t):
        return canonical(float(t)) if ("." in t or "e" in t.lower()) else str(int(t))
    return t


def natural(v: Any) -> Any:
    """A category label as the cell's own value would be written: a whole float as an int (``12.0`` → ``12``,
    what pandas makes of integer codes in a column with a missing value), numpy scalars as Python values."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isfinite(v) and v == int(v) and abs(v) < 2**53:
        return int(v)
    return v


def _truth(key: str) -> str | None:
    low = key.lower()
    return "True" if low in _TRUE else "False" if low in _FALSE else None


class CategoryLookup:
    """Cells → indices of a column's public categories, one distinct value at a time.

    A cell matches a category whose stripped text equals its own; failing that, one whose canonical text
    equals its own (when two share it, the one spelled canonically: 7.0 is '7', not '007'); a boolean column also takes
    true/false/yes/no/1/0 spellings. Nothing here looks at more than one cell."""

    def __init__(self, categories: Iterable[Any], boolean: bool = False):
        cats = list(categories)
        self.exact = {str(c).strip(): i for i, c in enumerate(cats)}
        keys = [canonical(c) for c in cats]
        texts = [str(c).strip() for c in cats]  # a shared canonical text goes to the category spelled that way
        self.canon = {k: i for i, k in enumerate(keys) if keys.count(k) == 1 or texts[i] == k}
        self.boolean = boolean

    def index(self, v: Any) -> int:
        """The category index of one non-missing cell, or ``UNKNOWN``."""
        i = self.exact.get(str(v).strip())
        if i is not None:
            return i
        key = canonical(v)
        i = self.canon.get(key)
        if i is None and self.boolean and (word := _truth(key)) is not None:
            i = self.canon.get(word)
        return UNKNOWN if i is None else i

    def codes(self, s: pd.Series, null: np.ndarray | None = None) -> np.ndarray:
        """Category indices of a column (``MISSING`` where ``null``, ``UNKNOWN`` outside the categories)."""
        if isinstance(s.dtype, pd.CategoricalDtype) and null is None:  # one lookup per category, not per cell
            table = np.array([self.index(v) for v in s.cat.categories] + [MISSING], dtype=np.int64)
            return table[s.cat.codes.to_numpy()]  # code -1 (missing) takes the table's last entry
        null = s.isna().to_numpy() if null is None else null
        out = np.full(len(s), MISSING, dtype=np.int64)
        present = ~null
        if present.any():
            vals = s.to_numpy(dtype=object)[present]
            codes, uniques = pd.factorize(pd.Series(vals, dtype=object), use_na_sentinel=False)
            out[present] = np.array([self.index(x) for x in uniques], dtype=np.int64)[codes]
        return out
