"""The private rows of a tables run: validated once, then read in chunks, never held as one frame.

Every measurement of a tables run (the noisy row count, label shares, the resolution stage, one- and two-way
marginals, the structure table, the votes) is a sum over private rows of a per-row contribution, so it is
computed chunk by chunk with the engine's :class:`~pe_tabular.source.ChunkedSource`. An in-memory frame is
just a one-part source (``ChunkedSource.from_frames``), so a frame and a folder of Parquet files run the
same code.

:meth:`PrivateRows.open` makes one pass over the input: each chunk is validated against the public schema
(``schema.validate``, the same checks and messages as before) and stored, in a private temporary folder
(mode 0700, deleted by :meth:`PrivateRows.close`), as a float64 matrix — a category as its index in the
public categories, a number (or datetime) as its float value, NaN for a missing value. Later passes read
those matrices back (cheap: no parsing, no string validation) and rebuild a small frame per chunk with the
categories as ``pandas.Categorical``, which the marginal and encoder code reads as before. Memory: one
chunk of the input plus one chunk of the cache at a time; the folder holds 8 bytes per cell on disk.

For the votes, :meth:`PrivateRows.encoded` writes the encoder's integer codes in the smallest integer type
that holds them exactly (int16 for Adult), with the class labels, and returns a source of
:class:`~pe_tabular.source.Codes` for :class:`~pe_tabular.voting.streaming.SourceVoter`.

Nothing here releases anything: the sums go to the release path (``privacy/release.py``) by the caller.
Progress is reported as fractions (``scan_progress`` events), never as a number of rows (rule 6).
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pe_tabular.measure.histograms import OnePass, concatenated, split
from pe_tabular.measure.shares import class_strings
from pe_tabular.memory import MemoryGuard
from pe_tabular.source import (
    DEFAULT_CHUNK_ROWS,
    Batch,
    Chunk,
    ChunkedSource,
    CodedPart,
    Codes,
    CsvPart,
    ParquetPart,
)
from pe_tabular.tables.cells import NA_STRINGS, CategoryLookup, blank_missing, na_strings
from pe_tabular.tables.schema import (
    InvalidRowsWarning,
    Schema,
    ValidationError,
    check_header,
    validate,
    warn_dropped_columns,
)

__all__ = ["NA_STRINGS", "PrivateRows", "as_source", "invalid_policy_notice"]
MERGE_AT = 1 << 20  # pending (value, count) pairs per column before they are merged


def as_source(data: Any, chunk_rows: int = DEFAULT_CHUNK_ROWS, guard: MemoryGuard | None = None,
              on_event: Callable[[dict[str, Any]], None] | None = None) -> ChunkedSource:
    """A pandas/polars frame as a one-part source (chunked views); a source is returned as it is."""
    if isinstance(data, ChunkedSource):
        return data
    if isinstance(data, pd.DataFrame):
        return ChunkedSource.from_frames(data, chunk_rows=chunk_rows, guard=guard, on_event=on_event)
    if type(data).__module__.startswith("polars"):
        return ChunkedSource.from_frames(data.to_pandas(), chunk_rows=chunk_rows, guard=guard, on_event=on_event)
    raise TypeError(f"fit() takes a pandas or polars DataFrame or a pe_tabular.source.ChunkedSource, "
                    f"got {type(data).__name__}")


def text_opener(path: str | Path) -> Any:
    """The text opener for a (possibly compressed) CSV: by suffix, as pandas infers it too."""
    import bz2
    import gzip
    import lzma

    return {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(Path(path).suffix.lower(), open)


def file_columns(path: str, encoding: str = "utf-8") -> list[str]:
    """The column names of a Parquet or CSV(.gz/.bz2/.xz) file (its schema / header only). A CSV's names are
    stripped of blanks ("age, city"), as every reader here names the columns; a UTF-8 byte-order mark (Excel's
    "CSV UTF-8" writes one) is not part of the first name: pyarrow and pandas drop it too."""
    if path.lower().endswith((".parquet", ".pq")):
        return list(pq.ParquetFile(path).schema_arrow.names)
    enc = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    with text_opener(path)(path, "rt", newline="", encoding=enc, errors="replace") as f:
        return [h.strip() for h in next(csv.reader(f, delimiter="\t" if ".tsv" in path.lower() else ","), [])]


def check_files(source: ChunkedSource, schema: Schema) -> list[str] | None:
    """For file parts, the header checks ``validate`` makes on a frame (missing, duplicate and extra columns),
    done once per file before any row is read; returns the columns to read (None: frames, read all)."""
    files = [p for p in source.parts if isinstance(p, ParquetPart | CsvPart)]
    if not files:
        return None
    extra: set[str] = set()
    for p in files:
        cols = file_columns(p.path, getattr(p, "encoding", "utf-8"))
        extra.update(check_header(cols, schema, Path(p.path).name))
    if extra:
        warn_dropped_columns(sorted(extra), stacklevel=4)
    return list(schema.names)


@dataclass
class WideCodedPart(CodedPart):
    """Encoded chunks stored in a compact integer type, read back as int64 (what the voting kernels take)."""

    def batches(self, columns: Sequence[str] | None = None) -> Iterator[Batch]:
        for b in super().batches(columns):
            yield Batch(Codes(b.data.codes.astype(np.int64), b.data.labels), b.offset, b.done, b.digests, b.tag)


def compact(codes: np.ndarray) -> np.ndarray:
    """The smallest signed integer type that holds every code exactly."""
    if codes.size == 0:
        return codes.astype(np.int16)
    lo, hi = int(codes.min()), int(codes.max())
    for t in (np.int16, np.int32):
        if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
            return codes.astype(t)
    return codes.astype(np.int64)


class _Writer:
    """Chunks written as .npy files of a private folder, listed as a ``CodedPart``'s chunks."""

    def __init__(self, folder: str, stem: str):
        self.folder, self.stem = folder, stem
        self.chunks: list[tuple[Any, ...]] = []
        self.rows = 0

    def add(self, codes: np.ndarray, labels: np.ndarray | None = None) -> None:
        j = len(self.chunks)
        path = os.path.join(self.folder, f"{self.stem}-{j}.npy")
        np.save(path, codes)
        lab = None
        if labels is not None:
            lab = os.path.join(self.folder, f"{self.stem}-{j}-labels.npy")
            np.save(lab, labels, allow_pickle=True)
        self.chunks.append((path, lab, None, None, self.rows, 0.0))
        self.rows += len(codes)

    def part(self, cls: type[CodedPart] = CodedPart) -> CodedPart:
        k = max(len(self.chunks), 1)  # progress: the share of chunks read
        return cls([(c, lab, d, t, off, (j + 1) / k) for j, (c, lab, d, t, off, _) in enumerate(self.chunks)])


def invalid_policy_notice(on_invalid: str) -> str:
    """What ``--on-invalid drop|clip`` does, said the same way whatever the private rows hold: whether a row
    was dropped is one bit about the private rows (issue 23, finding 6), so it is never said by default."""
    what = ("dropped" if on_invalid == "drop" else
            "clipped into the bounds or mapped to the column's other category, else dropped")
    return (f"--on-invalid {on_invalid}: rows that do not fit the schema are {what}, silently (whether any were "
            "is private); missing values of nullable columns are kept as missing; --show-invalid lists them on "
            "this terminal (not private)")


class PrivateRows:
    """Validated private rows in a private on-disk cache, read in chunks (see the module docstring)."""

    def __init__(self, schema: Schema, source: ChunkedSource, folder: str):
        self.schema, self.source, self.folder = schema, source, folder
        self._cats = {c.name: pd.Index(list(c.categories), dtype=object) for c in schema.columns if c.is_categorical}

    @classmethod
    def open(cls, data: Any, schema: Schema, *, on_invalid: str = "error",
             show: Callable[[str], None] | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
             guard: MemoryGuard | None = None, on_event: Callable[[dict[str, Any]], None] | None = None,
             na_values: Sequence[str] = ()) -> PrivateRows:
        """Validate ``data`` (a frame or a :class:`ChunkedSource`) chunk by chunk into the cache. Raises
        ``ValidationError`` as ``schema.validate`` does (before any budget is spent).

        Missing values (``tables.cells``): a null of any input, pandas' missing-value strings in a CSV, and
        ``na_values`` in every input. Each cell is read on its own. With ``on_invalid`` drop or clip the
        policy is announced once (``InvalidRowsWarning``), whether or not a row was dropped, and the run goes
        on even when no valid row remains (zero rows and one row must not end differently); only an input
        with no data row at all is refused."""
        source = as_source(data, chunk_rows, guard, on_event)
        columns = check_files(source, schema)
        folder = tempfile.mkdtemp(prefix="pe-tables-")  # mode 0700: the validated private rows
        try:
            writer = _Writer(folder, "rows")
            seen = [False]  # any row read (a flag, never a count)
            lookups = {c.name: CategoryLookup(c.categories) for c in schema.columns if c.is_categorical}
            csv_parts = {i for i, p in enumerate(source.parts) if isinstance(p, CsvPart)}
            blanks = {True: na_strings(na_values, csv=True), False: na_strings(na_values, csv=False)}
            if on_invalid != "error":
                warnings.warn(InvalidRowsWarning(invalid_policy_notice(on_invalid)), stacklevel=3)

            def validate_chunk(chunk: Chunk) -> np.ndarray:
                frame = blank_missing(chunk.frame, blanks[chunk.part in csv_parts])
                seen[0] = seen[0] or len(frame) > 0
                ok = validate(frame, schema, on_invalid, show=show, whole=False, row_offset=chunk.offset,
                              warn_dropped=False)
                m = np.empty((len(ok), len(schema.columns)))
                for j, c in enumerate(schema.columns):
                    s = ok[c.name]
                    if c.is_categorical:  # validated values are categories: an exact match, cell by cell
                        codes = lookups[c.name].codes(s)
                        m[:, j] = np.where(codes < 0, np.nan, codes)
                    else:
                        m[:, j] = s.to_numpy(float)
                writer.add(m)  # even when empty: the cache's chunks (and progress) follow the input's, not validity
                return np.zeros(1)

            source.sum(validate_chunk, columns=columns, desc="validating the private rows", empty=lambda: np.zeros(1))
            if not seen[0]:
                raise ValidationError("the private data has no rows (empty file?)")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        cached = ChunkedSource([writer.part()], guard=source.guard, on_event=source.on_event)
        return cls(schema, cached, folder)

    # -- reading ----------------------------------------------------------------------------------------
    def frame(self, m: np.ndarray) -> pd.DataFrame:
        """A validated frame from a cached matrix: categories as ``Categorical`` (values as in the schema),
        numbers as floats."""
        cols: dict[str, Any] = {}
        for j, c in enumerate(self.schema.columns):
            x = m[:, j]
            if c.is_categorical:
                codes = np.where(np.isnan(x), -1, x).astype(np.int64)
                cols[c.name] = pd.Categorical.from_codes(codes, categories=self._cats[c.name])
            else:
                cols[c.name] = np.asarray(x, float)
        return pd.DataFrame(cols)

    def empty(self) -> pd.DataFrame:
        """A frame with no rows (a histogram function's size, without reading data)."""
        return self.frame(np.empty((0, len(self.schema.columns))))

    def sum(self, fn: Callable[[pd.DataFrame], np.ndarray], size: int, desc: str) -> np.ndarray:
        """Σ over chunks of ``fn(frame)`` (a histogram of ``size`` cells, linear in the rows)."""
        return self.source.sum(lambda ch: np.asarray(fn(self.frame(ch.data.codes)), float), desc=desc,
                               empty=lambda: np.zeros(size))

    def one_pass(self, fns: dict[Any, Callable[[pd.DataFrame], np.ndarray]], desc: str) -> OnePass:
        """Histograms ``fns`` (key → fn(frame), of a public size: the histogram of an empty frame gives it),
        summed together in ONE pass over the rows the first time one is needed."""
        keys = list(fns)
        empty = self.empty()
        sizes = [int(np.asarray(fns[k](empty)).size) for k in keys]
        return OnePass(lambda: split(self.sum(concatenated([fns[k] for k in keys]), sum(sizes), desc), keys, sizes))

    def count(self) -> float:
        return float(self.sum(lambda f: np.array([float(len(f))]), 1, "counting rows")[0])

    def value_counts(self, names: Sequence[str], desc: str = "counting exact values"
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Exact (finite) values of each column and how many rows hold each, values sorted ascending: a dict of
        counts merged across chunks, memory O(distinct values + MERGE_AT) per column, not O(rows)."""
        done: dict[str, tuple[np.ndarray, np.ndarray]] = {
            n: (np.empty(0), np.empty(0)) for n in names}
        pending: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {n: [] for n in names}

        def merge(n: str) -> None:
            parts = [done[n], *pending[n]]
            v = np.concatenate([p[0] for p in parts])
            c = np.concatenate([p[1] for p in parts])
            u, inv = np.unique(v, return_inverse=True)
            done[n] = (u, np.bincount(inv.ravel(), weights=c, minlength=u.size))
            pending[n] = []

        def fn(chunk: Chunk) -> np.ndarray:
            m = chunk.data.codes
            for n in names:
                x = m[:, self.schema.names.index(n)]
                pending[n].append(np.unique(x[np.isfinite(x)], return_counts=True))
                if sum(p[0].size for p in pending[n]) > MERGE_AT:
                    merge(n)
            return np.zeros(1)

        self.source.sum(fn, desc=desc, empty=lambda: np.zeros(1))
        for n in names:
            merge(n)
        return done

    def encoded(self, encode: Callable[[pd.DataFrame], np.ndarray], label: str | None) -> ChunkedSource:
        """A source of the encoder's codes (and the rows' class labels as strings, a missing label as the
        missing class: ``measure.shares.class_strings``) for the votes: one pass, written compactly to the
        private folder."""
        writer = _Writer(self.folder, f"codes-{len(os.listdir(self.folder))}")

        def fn(chunk: Chunk) -> np.ndarray:
            f = self.frame(chunk.data.codes)
            writer.add(compact(np.asarray(encode(f))), None if label is None else class_strings(f[label]))
            return np.zeros(1)

        self.source.sum(fn, desc="encoding private rows", empty=lambda: np.zeros(1))
        return ChunkedSource([writer.part(WideCodedPart)], guard=self.source.guard, on_event=self.source.on_event)

    def close(self) -> None:
        """Delete the cache (validated private rows and their codes)."""
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = ""

    def __enter__(self) -> PrivateRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

