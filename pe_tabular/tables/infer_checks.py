"""The checks ``schema infer`` makes before and after describing a table.

Before: a table it cannot describe is refused (exit 2, one line naming the file and what was seen): no data
rows, or a header that is one column whose name holds another delimiter. After (public mode only, where the
table is public and its values may be shown): a column with no value at all, and a number column with a few
stray text values, are named in a warning, with what the schema entry does with them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from pe_tabular.cli_support import UsageError
from pe_tabular.tables.private import file_columns

#: delimiters a one-column header most likely means (character searched, name shown in the message)
OTHER_DELIMITERS = ((";", "';'"), ("\t", "a tab"), ("|", "'|'"))
STRAY_SHARE = 0.05  # a column whose values are numbers but for at most 5 % is a number column with stray text


class InferWarning(UserWarning):
    """A column ``schema infer`` describes, but probably not as the user expects (named in the message)."""


def check_delimiter(path: str | Path, flag: str = "DATA", encoding: str = "utf-8") -> None:
    """Refuse a CSV whose header is one column whose name holds another delimiter (a ';'-, tab- or
    '|'-separated file read as CSV), before its rows are parsed (they may not even parse as CSV)."""
    if str(path).lower().endswith((".parquet", ".pq")) or not Path(path).is_file():
        return
    try:
        cols = file_columns(str(path), encoding)
    except (OSError, UnicodeDecodeError, LookupError, EOFError):
        return  # not readable as text: the reader names the problem
    if len(cols) == 1:
        for ch, name in OTHER_DELIMITERS:
            if ch in cols[0]:
                raise UsageError(f"{flag} {path}: the header is one column whose name contains {name}; the file "
                                 f"looks separated by {name}, but `schema infer` reads comma-separated CSV: "
                                 "convert it to CSV (or Parquet)")


def check_rows(df: pd.DataFrame, flag: str, path: str | Path) -> None:
    """Refuse a table with a header but no data row (there is nothing to describe)."""
    if len(df) == 0:
        raise UsageError(f"{flag} {path} has a header but no data rows; `schema infer` needs rows to describe")


def warn_public_columns(df: pd.DataFrame) -> None:
    """Warnings for the columns of a PUBLIC table that are empty or numbers with a few stray text values (the
    public-mode schema keeps them: an empty column as a nullable one whose only category is '(other)', a
    number column with stray text as categorical, so that ``synth`` accepts the same file)."""
    for c in df.columns:
        v = df[c].dropna()
        if v.empty:
            warnings.warn(InferWarning(f"column {str(c)!r} has no values (every cell is missing): it is written "
                                       "as a nullable column with only an '(other)' category; drop it, or give "
                                       "its type (--types) and domain in the schema"), stacklevel=2)
            continue
        if pd.api.types.is_numeric_dtype(v) or pd.api.types.is_bool_dtype(v):
            continue
        num = pd.to_numeric(v, errors="coerce")
        bad = v[num.isna()].astype(str)
        if 0 < len(bad) <= STRAY_SHARE * len(v):
            shown = ", ".join(repr(b) for b in sorted(set(bad))[:3])
            warnings.warn(InferWarning(f"column {str(c)!r} holds numbers and a few values that are not ({shown}): "
                                       "it is written as categorical so that they are kept; if they mean "
                                       "'missing', empty them and give --types " + f"{c}=float (or integer)"),
                          stacklevel=2)
