"""Reading and writing tables: CSV or Parquet, atomically written, with errors that name the file and flag."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pe_tabular.cli_support import UsageError, check_out_file
from pe_tabular.io_utils import atomic_write
from pe_tabular.tables.schema import Schema


def read_table(path: str, flag: str = "DATA") -> pd.DataFrame:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{flag} {p} does not exist")
    try:
        if p.suffix == ".parquet":
            return pd.read_parquet(p)
        _check_header(p, flag)
        return pd.read_csv(p, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise UsageError(f"{flag} {p} is empty; it needs a header row and at least one data row") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UsageError(f"{flag} {p} is not a readable CSV/Parquet file: {e}") from None


def _check_header(p: Path, flag: str) -> None:
    """pandas renames a repeated header to 'name.1' and would silently use the first copy; refuse instead."""
    import csv

    with open(p, newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader(f), [])
    names = [h.strip() for h in header]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise UsageError(f"{flag} {p}: duplicate column names {dups} in the header; rename or drop the copies")


def write_table(df: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        return atomic_write(path, lambda t: df.to_parquet(t, index=False))
    return atomic_write(path, lambda t: df.to_csv(t, index=False))


def check_out(path: str, flag: str = "--out") -> Path:
    """Fail before any work if the output cannot be written (nothing partial is ever left)."""
    return check_out_file(path, flag, (".csv", ".parquet"), "a .csv or .parquet file")


def check_target(schema: Schema, target: str) -> None:
    """TSTR trains a classifier: the target must be a categorical column of the schema."""
    if target not in schema.names:
        raise UsageError(f"--target {target!r} is not a schema column; columns are {schema.names}")
    if not schema[target].is_categorical:
        raise UsageError(f"--target {target!r} is a {schema[target].type} column; TSTR needs a categorical class "
                         "column (e.g. the schema's label)")
