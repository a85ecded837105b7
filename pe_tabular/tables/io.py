"""Reading and writing tables: CSV or Parquet, atomically written, with errors that name the file and flag."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pe_tabular.cli_support import UsageError, check_out_file
from pe_tabular.io_utils import atomic_write
from pe_tabular.progress import bar, stage
from pe_tabular.tables.schema import Schema

TABLE_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".parquet")


def _opener(p: Path):
    """The text opener for a (possibly compressed) CSV: by suffix, as pandas infers it too."""
    import bz2
    import gzip
    import lzma

    return {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(p.suffix.lower(), open)


def read_table(path: str | Path, flag: str = "DATA", encoding: str = "utf-8") -> pd.DataFrame:
    """A CSV (plain or .gz/.bz2/.xz) or Parquet table. Errors name the flag and the file, never a value or
    a row number of the data (they may be private); ``-v`` shows the parser's own words."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{flag} {p} does not exist")
    if p.is_dir():
        raise UsageError(f"{flag} {p} is a folder; give a .csv or .parquet file")
    try:
        if p.suffix.lower() == ".parquet":
            return pd.read_parquet(p)
        _check_header(p, flag, encoding)
        return pd.read_csv(p, skipinitialspace=True, encoding=encoding, compression="infer", low_memory=False)
    except pd.errors.EmptyDataError:
        raise UsageError(f"{flag} {p} is empty; it needs a header row and at least one data row") from None
    except UnicodeDecodeError:
        raise UsageError(f"{flag} {p} is not {encoding} text; pass --encoding (e.g. --encoding latin-1)") from None
    except LookupError:
        raise UsageError(f"--encoding {encoding!r} is not an encoding Python knows (e.g. utf-8, latin-1, cp1252)") \
            from None
    except pd.errors.ParserError:
        raise UsageError(f"{flag} {p} is not a well-formed CSV file (a row has more fields than the header, or a "
                         "quote is not closed); rerun with -v to see where") from None
    except (OSError, ValueError) as e:  # pyarrow: truncated/corrupt Parquet, a gzip that is not gzip, ...
        if isinstance(e, UsageError | FileNotFoundError):
            raise
        kind = "Parquet" if p.suffix.lower() == ".parquet" else "compressed CSV" if _opener(p) is not open else "CSV"
        raise UsageError(f"{flag} {p} is not a readable {kind} file ({type(e).__name__}); it may be truncated or "
                         "corrupt") from None


def _check_header(p: Path, flag: str, encoding: str = "utf-8") -> None:
    """pandas renames a repeated header to 'name.1' and would silently use the first copy; refuse instead."""
    import csv

    with _opener(p)(p, "rt", newline="", encoding=encoding, errors="replace") as f:
        header = next(csv.reader(f), [])
    names = [h.strip() for h in header]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise UsageError(f"{flag} {p}: duplicate column names {dups} in the header; rename or drop the copies")


WRITE_CHUNK = 100_000  # rows per CSV chunk: the progress bar moves at least every few seconds


def write_table(df: pd.DataFrame, path: Path, progress: bool = False) -> Path:
    """Write atomically (temporary + rename); a CSV is written in chunks with a progress bar when asked."""
    if path.suffix == ".parquet":
        with stage(f"writing {path.name}", progress and len(df) > WRITE_CHUNK):
            return atomic_write(path, lambda t: df.to_parquet(t, index=False))

    def write_csv(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f, \
                bar(len(df), f"writing {path.name}", progress and len(df) > WRITE_CHUNK) as b:
            for start in range(0, max(len(df), 1), WRITE_CHUNK):
                part = df.iloc[start:start + WRITE_CHUNK]
                part.to_csv(f, index=False, header=start == 0)
                b.update(len(part))

    return atomic_write(path, write_csv)


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
