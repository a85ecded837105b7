"""Reading and writing tables: CSV or Parquet, atomically written, with errors that name the file and flag.

:func:`scan_table` opens the private input of ``synth`` as a :class:`~pe_tabular.source.ChunkedSource` (a file
or a folder of CSV / CSV.gz / Parquet files, read chunk by chunk, never as one frame); :func:`read_table` reads
a whole table (public inputs, ``evaluate``, the real-data report).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pe_tabular.cli_support import UsageError, check_out_file
from pe_tabular.io_utils import atomic_write
from pe_tabular.memory import MemoryGuard
from pe_tabular.progress import bar, stage
from pe_tabular.source import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_CSV_BLOCK,
    Batch,
    ChunkedSource,
    CsvPart,
    ParquetPart,
    SourceError,
    scan_parts,
)
from pe_tabular.tables.private import file_columns, text_opener
from pe_tabular.tables.schema import Schema

STREAMED = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet", ".pq")  # read in chunks (scan_table)
TABLE_SUFFIXES = (*STREAMED, ".csv.bz2", ".csv.xz", ".tsv.bz2", ".tsv.xz")  # what read_table reads
SPREADSHEETS = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")


def check_table_file(p: Path, flag: str) -> None:
    """Refuse, before reading it, a file no reader here takes; a spreadsheet gets how to export it."""
    name = p.name.lower()
    if name.endswith(SPREADSHEETS):
        raise UsageError(f"{flag} {p} is a spreadsheet; save it as CSV (UTF-8) or Parquet and pass that file")
    if not name.endswith(TABLE_SUFFIXES):
        raise UsageError(f"{flag} {p}: unknown file type; use .csv, .tsv or .parquet (a .csv or .tsv may be "
                         ".gz, .bz2 or .xz), or a folder of them")


def is_parquet(p: Path) -> bool:
    return p.suffix.lower() in (".parquet", ".pq")


def csv_separator(p: Path) -> str:
    """A tab for .tsv(.gz/...) files, else a comma (as the streamed reader and the header check read them)."""
    return "\t" if ".tsv" in p.name.lower() else ","


def read_table(path: str | Path, flag: str = "DATA", encoding: str = "utf-8") -> pd.DataFrame:
    """A CSV (plain or .gz/.bz2/.xz) or Parquet table. Errors name the flag and the file, never a value or
    a row number of the data (they may be private); ``-v`` shows the parser's own words."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{flag} {p} does not exist")
    if p.is_dir():
        raise UsageError(f"{flag} {p} is a folder; give a .csv or .parquet file")
    check_table_file(p, flag)
    try:
        if is_parquet(p):
            return pd.read_parquet(p)
        check_header(p, flag, encoding)
        df = pd.read_csv(p, sep=csv_separator(p), skipinitialspace=True, encoding=encoding, compression="infer",
                         low_memory=False)
        return df.rename(columns=lambda c: c.strip() if isinstance(c, str) else c)  # "age , city": as the header check
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
        compressed = text_opener(p) is not open
        kind = "Parquet" if is_parquet(p) else "compressed CSV" if compressed else "CSV"
        raise UsageError(f"{flag} {p} is not a readable {kind} file ({type(e).__name__}); it may be truncated or "
                         "corrupt") from None


def read_all(path: str | Path, flag: str = "DATA", encoding: str = "utf-8") -> pd.DataFrame:
    """A table file, or every table file of a folder (sorted) as one frame (for the real-data report)."""
    p = Path(path)
    if not p.is_dir():
        return read_table(p, flag, encoding)
    try:
        files = [q.path for q in scan_parts(p)]  # type: ignore[attr-defined]
    except SourceError as e:
        raise UsageError(f"{flag} {e}") from None
    return pd.concat([read_table(f, flag, encoding) for f in files], ignore_index=True)


def check_header(p: Path, flag: str, encoding: str = "utf-8") -> list[str]:
    """pandas renames a repeated header to 'name.1' and would silently use the first copy; refuse instead.
    Returns the header's names."""
    names = file_columns(str(p), encoding)
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise UsageError(f"{flag} {p}: duplicate column names {dups} in the header; rename or drop the copies")
    return names


# -- streamed private input ---------------------------------------------------------------------------


def _usage(e: Exception, p: Path, flag: str, encoding: str) -> UsageError:
    """The read_table message for a problem met while streaming a file (never a value or a row number)."""
    m = str(e)
    if isinstance(e, SourceError) and "text; give the file's encoding" in m:
        return UsageError(f"{flag} {p} is not {encoding} text; pass --encoding (e.g. --encoding latin-1)")
    if isinstance(e, SourceError) and "well-formed" in m:
        return UsageError(f"{flag} {p} is not a well-formed CSV file (a row has more fields than the header, or a "
                          "quote is not closed); fix the file")
    if isinstance(e, SourceError):
        return UsageError(f"{flag} {m}")
    kind = "Parquet" if p.suffix.lower() in (".parquet", ".pq") else "compressed CSV" if p.suffix == ".gz" else "CSV"
    return UsageError(f"{flag} {p} is not a readable {kind} file ({type(e).__name__}); it may be truncated or "
                      "corrupt")


def _mapped(batches: Callable[[], Iterator[Batch]], p: Path, flag: str, encoding: str) -> Iterator[Batch]:
    try:
        yield from batches()
    except (SourceError, OSError, ValueError) as e:  # pyarrow's errors quote values: say what and where only
        if isinstance(e, UsageError):
            raise
        raise _usage(e, p, flag, encoding) from None


@dataclass(frozen=True)
class TableCsvPart(CsvPart):
    """A CSV part whose read errors are ``synth``'s messages (the flag, the file, the fix)."""

    flag: str = "DATA"

    def batches(self, columns: Sequence[str] | None) -> Iterator[Batch]:
        return _mapped(lambda: CsvPart.batches(self, columns), Path(self.path), self.flag, self.encoding)


@dataclass(frozen=True)
class TableParquetPart(ParquetPart):
    """A Parquet part whose read errors are ``synth``'s messages."""

    flag: str = "DATA"

    def batches(self, columns: Sequence[str] | None) -> Iterator[Batch]:
        return _mapped(lambda: ParquetPart.batches(self, columns), Path(self.path), self.flag, "utf-8")


def scan_table(path: str | Path, schema: Schema, *, flag: str = "DATA", encoding: str = "utf-8",
               chunk_rows: int = DEFAULT_CHUNK_ROWS, csv_block_bytes: int = DEFAULT_CSV_BLOCK,
               guard: MemoryGuard | None = None, on_event: Callable[[dict[str, Any]], None] | None = None,
               ) -> ChunkedSource:
    """The private table at ``path`` (a CSV / CSV.gz / TSV / Parquet file, or a folder of them) as a source
    read in chunks. Each file's header is checked first (empty, duplicate names, unreadable, unknown
    encoding), with read_table's messages; CSV columns of the schema are read as text (validation parses
    them, as it does a frame's), so a late odd value is a validation problem, not a parse error.
    A .bz2 / .xz CSV is read whole (pyarrow does not stream those). A Parquet chunk holds ``chunk_rows`` rows,
    a CSV chunk ``csv_block_bytes`` bytes of text."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{flag} {p} does not exist")
    if p.is_file() and p.suffix.lower() in (".bz2", ".xz"):
        return ChunkedSource.from_frames(read_table(p, flag, encoding), chunk_rows=chunk_rows, guard=guard,
                                         on_event=on_event)
    if p.is_file():
        check_table_file(p, flag)
    try:
        parts = scan_parts(p, chunk_rows=chunk_rows, csv_block_bytes=csv_block_bytes,
                           column_types={n: "string" for n in schema.names}, encoding=encoding)
    except SourceError as e:
        raise UsageError(f"{flag} {e}") from None
    out: list[Any] = []
    for part in parts:
        f = Path(part.path)
        if isinstance(part, CsvPart):
            try:
                if not check_header(f, flag, encoding):
                    raise UsageError(f"{flag} {f} is empty; it needs a header row and at least one data row")
            except LookupError:
                raise UsageError(f"--encoding {encoding!r} is not an encoding Python knows (e.g. utf-8, latin-1, "
                                 "cp1252)") from None
            except (OSError, EOFError) as e:
                raise _usage(e, f, flag, encoding) from None
            out.append(TableCsvPart(part.path, part.block_bytes, part.column_types, encoding, flag))
        else:
            try:
                import pyarrow.parquet as pq

                pq.ParquetFile(f)
            except (OSError, ValueError) as e:
                raise _usage(e, f, flag, encoding) from None
            out.append(TableParquetPart(part.path, part.chunk_rows, flag))
    return ChunkedSource(out, guard=guard, on_event=on_event)


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


def write_chunks(chunks: Iterable[pd.DataFrame], path: Path, total: int, progress: bool = False) -> int:
    """Write frames one after another as one table, atomically (nothing partial is left on error), never
    holding more than one frame; returns the number of rows written. ``total`` (the rows expected, a public
    output size) drives the progress bar."""
    written = [0]

    def write(tmp: str) -> None:
        with bar(total, f"writing {path.name}", progress and total > WRITE_CHUNK) as b:
            if path.suffix == ".parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                writer: Any = None
                schema: Any = None
                try:
                    for c in chunks:
                        t = pa.Table.from_pandas(c, preserve_index=False, schema=schema)
                        if writer is None:  # a column of nulls only in the first chunk is written as text
                            schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f
                                                for f in t.schema]).remove_metadata()
                            t = t.cast(schema)
                            writer = pq.ParquetWriter(tmp, schema)
                        writer.write_table(t)
                        written[0] += len(c)
                        b.update(len(c))
                finally:
                    if writer is not None:
                        writer.close()
                return
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                for c in chunks:
                    c.to_csv(f, index=False, header=written[0] == 0)
                    written[0] += len(c)
                    b.update(len(c))

    atomic_write(path, write)
    return written[0]


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
