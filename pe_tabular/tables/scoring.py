"""Every row of a table on the evaluation's public bins: nothing dropped, nothing hidden.

``evaluate``, ``report`` and ``synth --report`` score the user's own real file against the synthetic
one. A real file rarely fits a schema exactly (a DP schema's bounds are noisy quantiles, its categories
only those that cleared a noisy threshold), and dropping the rows that do not fit flatters every figure
computed on the rest. So each column gets, after the bins of its public binning, two cells of its own:

* ``(missing)``: an empty value of a nullable column (its share is compared like any other cell);
* ``(outside schema)``: a category the schema does not list (when the column has no ``other`` bucket to
  take it), a number beyond the public bounds, a value that is not a number or date, or an empty value
  of a non-nullable column.

A number-coded category read back as a float (``12.0`` for ``12``: one empty cell makes pandas read the
whole column as floats) is matched by its numeric value, so the missing value of one row never moves
the other rows out of their categories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.io_utils import epoch_seconds
from pe_tabular.measure.shares import MISSING_CLASS
from pe_tabular.tables.cells import UNKNOWN, CategoryLookup
from pe_tabular.tables.marginals import Binning
from pe_tabular.tables.schema import Column, Schema

EVAL_BINS = 32
MISSING = MISSING_CLASS  # one spelling for a missing cell: this bucket and the class of a missing label
OUTSIDE = "(outside schema)"
BOUND_TOLERANCE = 1e-9  # of the public span: a value a rounding error past a bound is inside


def eval_binning(c: Column) -> Binning:
    """The column's public evaluation binning (32 bins on its scale, or one bin per value of a small grid)."""
    return Binning.of(c, EVAL_BINS, EVAL_BINS)


def category_index(s: pd.Series, c: Column) -> np.ndarray:
    """Index of each value in ``c.categories``, matched cell by cell as ``synth`` matches them
    (``cells.CategoryLookup``: the text, then its canonical form, so ``12``, ``12.0`` and ``"12"`` are one
    category); values the schema does not list go to its ``other`` bucket when it has one, else -1. Missing
    values are -1 too."""
    codes = CategoryLookup(c.categories, boolean=c.type == "boolean").codes(s)
    if c.other is not None:
        codes = np.where(codes == UNKNOWN, CategoryLookup(c.categories).index(c.other), codes)
    return np.where(codes < 0, -1, codes)


def numbers(s: pd.Series, c: Column) -> np.ndarray:
    """A numeric column's values on the schema's scale (datetimes as epoch seconds); NaN where a value is
    missing or is not a number (date)."""
    if c.type == "datetime" and not pd.api.types.is_numeric_dtype(s):
        return epoch_seconds(pd.to_datetime(s, errors="coerce", utc=True)).to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def column_codes(s: pd.Series, c: Column) -> tuple[np.ndarray, int]:
    """Codes of one column on its evaluation bins + the missing and outside-schema cells, and their number."""
    b = eval_binning(c)
    missing, outside = b.n_bins - 1, b.n_bins  # the binning's own last bin is its null bin
    null = s.isna().to_numpy()
    if c.is_categorical:
        idx = category_index(s, c)
        code = np.where(idx >= 0, idx, outside)
    else:
        x = numbers(s, c)
        tol = BOUND_TOLERANCE * (c.upper - c.lower)
        inside = ~np.isnan(x) & (x >= c.lower - tol) & (x <= c.upper + tol)
        code = np.where(inside, b.index(pd.Series(np.where(inside, x, np.nan))), outside)
    code = np.where(null, missing if c.nullable else outside, code)
    return code.astype(np.int64), b.n_bins + 1


@dataclass(frozen=True)
class Scored:
    """A table on the evaluation bins, one row per input row: per column the public bins, then ``(missing)``
    (code ``size - 2``), then ``(outside schema)`` (code ``size - 1``)."""

    codes: np.ndarray  # (rows, columns)
    sizes: np.ndarray  # cells per column
    names: tuple[str, ...]

    @property
    def n_rows(self) -> int:
        return int(self.codes.shape[0])

    def outside(self) -> np.ndarray:
        return self.codes == self.sizes - 1

    def missing(self) -> np.ndarray:
        return self.codes == self.sizes - 2

    def fit(self) -> dict[str, Any]:
        """How the table fits the schema: rows scored, rows with a value outside it, and per column."""
        out = self.outside()
        per_col = out.sum(axis=0)
        return {"rows": self.n_rows, "rows_outside_schema": int(out.any(axis=1).sum()),
                "outside_schema": {n: int(k) for n, k in zip(self.names, per_col) if k}}

    def missing_shares(self) -> dict[str, float]:
        return dict(zip(self.names, (self.missing().mean(axis=0) if self.n_rows else
                                     np.zeros(len(self.names))).tolist()))


def score(df: pd.DataFrame, schema: Schema) -> Scored:
    """Every row of ``df`` (raw values as read from a file, or as the synthesizer returns them) on the
    evaluation bins of ``schema``; the frame needs the schema's columns (others are ignored)."""
    parts = [column_codes(df[c.name], c) for c in schema.columns]
    codes = np.stack([p[0] for p in parts], axis=1) if parts else np.zeros((len(df), 0), np.int64)
    return Scored(codes, np.array([p[1] for p in parts], dtype=np.int64), tuple(schema.names))


__all__ = ["EVAL_BINS", "MISSING", "OUTSIDE", "Scored", "category_index", "column_codes", "eval_binning",
           "numbers", "score"]
