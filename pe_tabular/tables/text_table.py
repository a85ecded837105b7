"""A table read as TEXT, for decisions about private data: every CSV cell a string, missing cells missing.

pandas' type guessing looks at a whole column, so one missing value turns every integer of a column into a
float (``"12"`` reads back as ``"12.0"``) and one stray word turns a number column into text: the parsed
form of every value would depend on the other rows — a deterministic signal about them. Here a cell's
value depends on that cell only: the text between the delimiters with surrounding blanks removed, or
missing when that text is one of pandas' missing-value strings (``NA_STRINGS``, the same list the streamed
``synth`` reader uses), under pandas 2.x and 3.x alike.

A Parquet file carries its column types in its own schema (public, not guessed from rows): its columns are
turned into text the way ``synth`` reads them (``str`` of each value), missing stays missing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pe_tabular.cli_support import UsageError
from pe_tabular.tables.io import check_header, check_table_file, csv_separator, is_parquet, read_table
from pe_tabular.tables.private import NA_STRINGS


def as_text(s: pd.Series) -> pd.Series:
    """One column as stripped strings (object dtype), missing where the cell is empty or a missing-value
    string; the result of each cell depends on that cell alone."""
    missing = s.isna().to_numpy()
    text = s.astype(object).where(~missing, "").map(str).str.strip()
    return text.where(~(missing | text.isin(NA_STRINGS).to_numpy()), None).astype(object)


def read_text_table(path: str | Path, flag: str = "DATA", encoding: str = "utf-8") -> pd.DataFrame:
    """A CSV(.gz) or Parquet table with every column as text (see the module docstring)."""
    p = Path(path)
    if is_parquet(p):
        df = read_table(p, flag, encoding)
    else:
        df = _read_csv_text(p, flag, encoding)
    return pd.DataFrame({str(c): as_text(df[c]) for c in df.columns}, index=df.index)


def _read_csv_text(p: Path, flag: str, encoding: str) -> pd.DataFrame:
    """The CSV with no type guessing and no missing-value parsing (both done per cell by :func:`as_text`).
    A file pandas cannot read is handed to ``read_table``, whose messages name the flag and the file and
    the kind of problem, never a value."""
    if not p.exists() or p.is_dir():
        return read_table(p, flag, encoding)  # raises its "does not exist" / "is a folder"
    check_table_file(p, flag)
    check_header(p, flag, encoding)  # pandas would rename a repeated name 'name.1' silently
    try:
        df = pd.read_csv(p, sep=csv_separator(p), dtype=str, keep_default_na=False, na_filter=False,
                         skipinitialspace=True, encoding=encoding, compression="infer")
        return df.rename(columns=str.strip)  # "age , city": the names every header check reads
    except Exception:  # noqa: BLE001 -- read_table raises the named UsageError for the same file
        read_table(p, flag, encoding)
        raise UsageError(f"{flag} {p} is not a readable CSV file as text; rerun with -v to see why") from None
