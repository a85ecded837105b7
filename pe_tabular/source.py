"""Private data as a sequence of chunks, never one raw frame.

Every measurement a wing releases (marginals, quantile histograms, thresholded histograms, votes) is a
sum over private rows of a per-row contribution. :class:`ChunkedSource` computes such sums chunk by
chunk::

    source = ChunkedSource.scan("flows/", unit="src_ip")          # CSV, CSV.gz, Parquet; files or folders
    noisy = path.release(Spec("marginal_proto", "marginal proto", sigma),
                         lambda: source.sum(proto_histogram, columns=["proto"]))

``fn(chunk) -> np.ndarray`` gets a :class:`Chunk` (a frame of the requested columns and a weight per
row) and returns that chunk's histogram; the source adds the histograms up. The contract that makes the
sum a bounded-sensitivity release: **fn is linear in the weights** — it returns Σ_rows w_r · v_r with each
row's vector ‖v_r‖₂ ≤ Δ (usually ``np.bincount(index, weights=chunk.weights, minlength=size)``, Δ = 1).
Weights are 1 per row for record-level DP, 1/n_u for unit-level DP (see :mod:`pe_tabular.units`) and 0
for rows left out of a Poisson subsample (such rows are dropped before fn sees the chunk).

Implementations share one loop (:func:`sum_parts`) over *parts* (an in-memory frame, a Parquet file, a
CSV file), each read in bounded batches with only the needed columns:

* :meth:`ChunkedSource.from_frames` — today's behaviour (frames in memory), chunked the same way;
* :meth:`ChunkedSource.scan` — CSV (``pyarrow.csv`` streaming reader; gzip'd by suffix) and Parquet
  (``pyarrow.parquet`` batches by row group), files or folders of them;
* :class:`pe_tabular.dask_source.DaskSource` — the same parts as tasks on Dask workers.

Sums are accumulated with compensated (TwoSum) addition, so the total does not depend on how the data
is chunked beyond the last bits of float64, and the release path's snapping (a grid of σ/2¹²) makes the
released values of in-memory, streamed and Dask runs identical.

Progress: ``scan_progress`` events carry the *fraction* of bytes (files, row groups) read, never a record
count (rule 6), and only at fixed public steps (:class:`ProgressSteps`: 10 %, 20 %, …, 100 %, each once,
in order, whatever the input's size): per-chunk fractions (chunk/n) told n to about 1 % wherever stderr
was captured. When a step arrives is a timing channel, like run times, and not covered.
Memory: a :class:`~pe_tabular.memory.MemoryGuard` is checked between
chunks. Error messages name files and columns, never values (rule 7): pyarrow's own parse errors quote the
offending value, so they are replaced.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pe_tabular.errors import SourceError
from pe_tabular.memory import MemoryGuard
from pe_tabular.privacy.release import ReleasePath, Spec
from pe_tabular.privacy.sampling import PoissonSample
from pe_tabular.units import UnitTable, UnitWeights, unit_digests

log = logging.getLogger(__name__)
Event = dict[str, Any]
DEFAULT_CHUNK_ROWS = 65_536
DEFAULT_CSV_BLOCK = 4 << 20  # bytes per CSV batch (pyarrow parses CSV in byte blocks)
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")


PROGRESS_STEPS = 10  # progress is shown in steps of 1/PROGRESS_STEPS of a pass, never finer


class ProgressSteps:
    """Turns the fractions of a pass into the fixed sequence 1/S, 2/S, …, 1 (each step once, in order; a
    jump emits every step it crosses), so the events of a pass are the same for every input size."""

    def __init__(self, emit: Callable[[float], None], steps: int = PROGRESS_STEPS):
        self.emit, self.steps, self.done = emit, steps, 0

    def __call__(self, fraction: float) -> None:
        reach = min(int(np.floor(fraction * self.steps + 1e-9)), self.steps)
        while self.done < reach:
            self.done += 1
            self.emit(self.done / self.steps)


@dataclass(frozen=True)
class Codes:
    """A chunk of encoded private rows: the integer/float codes the voting kernels see, and labels."""

    codes: np.ndarray
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.codes.shape[0])


@dataclass(frozen=True)
class Chunk:
    """What a per-chunk function sees: ``data`` (a frame of the requested columns, or :class:`Codes`),
    a weight per row, and where the rows came from (partition index, position of the first row)."""

    data: Any
    weights: np.ndarray
    part: int
    offset: int

    @property
    def frame(self) -> pd.DataFrame:
        return self.data

    def __len__(self) -> int:
        return len(self.data)


ChunkFn = Callable[[Chunk], np.ndarray]


def weighted_histogram(index: np.ndarray, chunk: Chunk, size: int) -> np.ndarray:
    """The usual fn body: each row adds its weight to one bin (Δ = 1)."""
    return np.bincount(np.asarray(index, dtype=np.int64), weights=chunk.weights, minlength=size).astype(np.float64)


class Summable(Protocol):
    """What :func:`release_sum` needs: ChunkedSource and DaskSource both are."""

    def sum(self, fn: ChunkFn, *, columns: Sequence[str] | None = None, sample: PoissonSample | None = None,
            desc: str = "", empty: Callable[[], np.ndarray] | None = None) -> np.ndarray: ...


def release_sum(path: ReleasePath, spec: Spec, source: Summable, fn: ChunkFn, size: int,
                columns: Sequence[str] | None = None) -> np.ndarray:
    """The one-line way a wing releases a streamed measurement: ``fn`` summed over ``source`` (on a Poisson
    subsample when ``spec.sampling_rate`` < 1), charged and noised by ``path``. ``size`` (the histogram's
    public length) is what an empty data set releases — pure noise, never an error (rule 6)."""
    return path.release_subsampled(spec, lambda sample: source.sum(
        fn, columns=columns, sample=sample, desc=spec.what, empty=lambda: np.zeros(size)))


# -- compensated accumulation ------------------------------------------------------------------------
@dataclass
class Accumulator:
    """Σ of float64 arrays with TwoSum compensation (Knuth; Ogita, Rump & Oishi 2005): hi + lo holds the
    sum to ~2⁻¹⁰⁶ relative, so the order in which chunks arrive does not show in the float64 result."""

    hi: np.ndarray | None = None
    lo: np.ndarray | None = None

    def add(self, a: np.ndarray, a_lo: np.ndarray | None = None) -> None:
        a = np.asarray(a, dtype=np.float64)
        if self.hi is None:
            self.hi, self.lo = a.copy(), np.zeros_like(a) if a_lo is None else np.asarray(a_lo, np.float64).copy()
            return
        if a.shape != self.hi.shape:
            raise ValueError(f"a chunk function returned shape {a.shape} after {self.hi.shape}: it must return the "
                             "same histogram size for every chunk (sizes come from the public domain)")
        s = self.hi + a
        bp = s - self.hi
        self.lo += (self.hi - (s - bp)) + (a - bp)
        if a_lo is not None:
            self.lo += a_lo
        self.hi = s

    def pair(self) -> np.ndarray | None:
        return None if self.hi is None else np.stack([self.hi, self.lo])

    def total(self, empty: Callable[[], np.ndarray] | None = None) -> np.ndarray:
        if self.hi is None:
            if empty is None:
                raise ValueError("no chunk was read and no empty result was given")
            return np.asarray(empty(), dtype=np.float64)
        return self.hi + self.lo


# -- parts: where rows come from ---------------------------------------------------------------------
@dataclass(frozen=True)
class Batch:
    data: Any  # a DataFrame (or Codes for an encoded part)
    offset: int  # position of its first row in the part
    done: float  # fraction of the part read after this batch (bytes, row groups)
    digests: np.ndarray | None = None  # unit digests, when the part has them (encoded parts, derived units)
    tag: str | None = None


class Part(Protocol):
    """One partition of the private data, read in bounded batches. ``weight`` (its size in bytes, a
    property of the file, only ever shown as a share of all parts) drives progress."""

    weight: float

    def batches(self, columns: Sequence[str] | None) -> Iterator[Batch]: ...


@dataclass(frozen=True)
class FramePart:
    """An in-memory frame, cut into ``chunk_rows``-row slices (views, no copies)."""

    frame: pd.DataFrame
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    @property
    def weight(self) -> float:
        return float(max(len(self.frame), 1))

    def batches(self, columns: Sequence[str] | None) -> Iterator[Batch]:
        n = len(self.frame)
        for s in range(0, n, self.chunk_rows):
            f = self.frame.iloc[s:s + self.chunk_rows]
            yield Batch(f if columns is None else f[list(columns)], s, min(s + self.chunk_rows, n) / n)


def _missing(path: str, columns: Sequence[str] | None, have: Sequence[str]) -> None:
    if columns is None:
        return
    miss = [c for c in columns if c not in have]
    if miss:
        raise SourceError(f"{Path(path).name}: column(s) {miss} not found (it has {list(have)[:20]}); check the "
                          "column names or the file")


@dataclass(frozen=True)
class ParquetPart:
    """A Parquet file read batch by batch, row group by row group, only the requested columns."""

    path: str
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    @property
    def weight(self) -> float:
        return float(max(os.path.getsize(self.path), 1))

    def batches(self, columns: Sequence[str] | None) -> Iterator[Batch]:
        pf = pq.ParquetFile(self.path)
        _missing(self.path, columns, pf.schema_arrow.names)
        md = pf.metadata
        sizes = np.array([md.row_group(i).total_byte_size for i in range(md.num_row_groups)], dtype=float)
        rows = np.array([md.row_group(i).num_rows for i in range(md.num_row_groups)], dtype=float)
        total = max(float(sizes.sum()), 1.0)
        offset, before = 0, 0.0
        for g in range(md.num_row_groups):  # one row group at a time: progress by bytes of row groups
            read = 0
            for rb in pf.iter_batches(batch_size=self.chunk_rows, row_groups=[g], columns=columns):
                read += rb.num_rows
                yield Batch(rb.to_pandas(), offset, (before + sizes[g] * read / max(rows[g], 1)) / total)
                offset += rb.num_rows
            before += sizes[g]


_ARROW_COL = re.compile(r"column #(\d+)")
_ARROW_TYPE = re.compile(r"conversion error to (\w+)")


@dataclass(frozen=True)
class CsvPart:
    """A CSV file (gzip'd when its name ends in .gz) parsed by pyarrow's streaming reader in blocks of
    ``block_bytes``; progress is the share of the (compressed) file read. Column types are inferred from
    the first block unless ``column_types`` pins them (do that for columns whose first rows are not
    typical, e.g. empty). ``encoding``: the file's text encoding (transcoded to UTF-8 while reading)."""

    path: str
    block_bytes: int = DEFAULT_CSV_BLOCK
    column_types: tuple[tuple[str, str], ...] = ()
    encoding: str = "utf-8"

    @property
    def weight(self) -> float:
        return float(max(os.path.getsize(self.path), 1))

    def _open(self, columns: Sequence[str] | None, names: Sequence[str] | None = None
              ) -> tuple[pa.NativeFile, pacsv.CSVStreamingReader]:
        """A streaming reader. The header's names are read first and stripped of blanks ("age, city" names
        its columns "age" and "city", as pandas' skipinitialspace and every header check here read them);
        ``names`` given: the stripped names, so the header row is skipped as data."""
        if names is None:
            names = [n.strip() for n in self._header(raw_names=True)]
        raw = pa.OSFile(self.path, "r")
        stream = pa.CompressedInputStream(raw, "gzip") if self.path.endswith(".gz") else raw
        delim = "\t" if self.path.removesuffix(".gz").endswith(".tsv") else ","
        types = {k: pa.type_for_alias(v) for k, v in self.column_types}
        conv = pacsv.ConvertOptions(include_columns=list(columns) if columns is not None else None,
                                    column_types=types)
        try:
            read = (pacsv.ReadOptions(block_size=self.block_bytes, encoding=self.encoding) if not names else
                    pacsv.ReadOptions(block_size=self.block_bytes, encoding=self.encoding, column_names=list(names),
                                      skip_rows=1))
            reader = pacsv.open_csv(stream, read_options=read,
                                    parse_options=pacsv.ParseOptions(delimiter=delim), convert_options=conv)
        except (pa.ArrowInvalid, pa.ArrowKeyError) as e:
            raw.close()
            raise self._error(e, columns) from None
        return raw, reader

    def _error(self, e: Exception, columns: Sequence[str] | None) -> SourceError:
        """pyarrow quotes the offending value: rebuild the message from the column index and type only."""
        msg = str(e)
        if "include_columns" in msg or "not found" in msg.lower():
            return SourceError(f"{Path(self.path).name}: column(s) {list(columns or [])} not all found; check the "
                               "column names or the file")
        if "UTF8" in msg or "decode" in msg.lower():
            return SourceError(f"{Path(self.path).name}: is not {self.encoding} text; give the file's encoding")
        if "CSV parse error" in msg:
            return SourceError(f"{Path(self.path).name}: is not a well-formed CSV file (a row has more or fewer "
                               "fields than the header, or a quote is not closed)")
        col, typ = _ARROW_COL.search(msg), _ARROW_TYPE.search(msg)
        where = f"column #{col.group(1)}" if col else "a column"
        kind = f" as {typ.group(1)}" if typ else ""
        return SourceError(f"{Path(self.path).name}: a value in {where} does not parse{kind} (the type read from the "
                           "file's first rows, or declared); declare the column's type (column_types=...) or fix "
                           "the file")

    def _header(self, raw_names: bool = False) -> list[str]:
        """The file's column names (as written with ``raw_names``, else stripped as the batches name them)."""
        raw, reader = self._open(None, names=() if raw_names else None)
        raw.close()
        return list(reader.schema.names)

    def names(self) -> list[str]:
        """The column names the batches carry (the header's, stripped of blanks), without reading rows."""
        return self._header()

    def batches(self, columns: Sequence[str] | None) -> Iterator[Batch]:
        raw, reader = self._open(columns)
        size = max(os.path.getsize(self.path), 1)
        offset = 0
        try:
            while True:
                try:
                    rb = reader.read_next_batch()
                except StopIteration:
                    break
                except pa.ArrowInvalid as e:
                    err = self._error(e, columns)
                    names = self._header()  # pyarrow numbers the file's columns, before projection
                    if (m := _ARROW_COL.search(str(e))) and int(m.group(1)) < len(names):
                        err = SourceError(str(err).replace(f"column #{m.group(1)}",
                                                           f"column {names[int(m.group(1))]!r}"))
                    raise err from None
                yield Batch(rb.to_pandas(), offset, min(raw.tell() / size, 1.0))
                offset += rb.num_rows
        finally:
            raw.close()


def _files(path: str | os.PathLike) -> list[str]:
    p = Path(path)
    if p.is_file():
        return [str(p)]
    if p.is_dir():
        out = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(
            CSV_SUFFIXES + PARQUET_SUFFIXES))
        if not out:
            raise SourceError(f"{path}: no .csv, .csv.gz or .parquet files in this folder")
        return out
    raise SourceError(f"{path}: no such file or folder")


def scan_parts(paths: str | os.PathLike | Sequence[str | os.PathLike], *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
               csv_block_bytes: int = DEFAULT_CSV_BLOCK, column_types: dict[str, str] | None = None,
               encoding: str = "utf-8") -> list[Part]:
    """The parts of CSV / CSV.gz / Parquet files or folders of them (sorted, so every run sees one order);
    ``encoding`` is the CSV files' text encoding."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    files = [f for p in paths for f in _files(p)]
    types = tuple(sorted((column_types or {}).items()))
    parts: list[Part] = []
    for f in files:
        low = f.lower()
        if low.endswith(PARQUET_SUFFIXES):
            parts.append(ParquetPart(f, chunk_rows))
        elif low.endswith(CSV_SUFFIXES):
            parts.append(CsvPart(f, csv_block_bytes, types, encoding))
        else:
            raise SourceError(f"{f}: unknown file type; use .csv, .csv.gz, .tsv or .parquet")
    return parts


# -- the one loop ------------------------------------------------------------------------------------
def _columns(columns: Sequence[str] | None, units: Sequence[str]) -> list[str] | None:
    if columns is None:
        return None
    return list(dict.fromkeys([*columns, *units]))


_MERGE_AT = 1 << 18  # unit digests waiting to be merged into a part's table (24 bytes each)


def part_table(part: Part, units: Sequence[str], guard: MemoryGuard | None = None) -> UnitTable:
    """Rows per unit in one part (reads the unit columns only)."""
    tables: list[UnitTable] = []
    pending = 0
    for b in part.batches(None if is_coded(part) else list(units)):
        d, tag = (b.digests, b.tag) if b.digests is not None else unit_digests(b.data, units)
        tables.append(UnitTable.from_digests(d, tag))
        pending += len(tables[-1].counts)
        if pending > _MERGE_AT and len(tables) > 1:  # merge as we go: memory O(units + _MERGE_AT), not O(rows)
            tables = [UnitTable.merge(tables)]
            pending = 0
        if guard is not None:
            guard.check("counting rows per privacy unit")
    return UnitTable.merge(tables)


def is_coded(part: Part) -> bool:
    """True for an encoded part (its batches carry codes and stored digests, no columns to choose)."""
    return isinstance(part, CodedPart)


def sum_parts(parts: Sequence[tuple[int, Part]], fn: ChunkFn, *, columns: Sequence[str] | None,
              units: Sequence[str] = (), unit_weights: UnitWeights | None = None,
              sample: PoissonSample | None = None, guard: MemoryGuard | None = None,
              progress: Callable[[int, float], None] | None = None, where: str = "reading private data",
              ) -> np.ndarray | None:
    """Σ fn(chunk) over the parts' batches, as a (2, size) hi/lo pair (None when there were no rows).

    Runs in this process or, unchanged, inside a Dask task on the worker that holds the parts."""
    acc = Accumulator()
    for i, part in parts:
        coded = is_coded(part)
        for b in part.batches(None if coded else _columns(columns, units)):
            n = len(b.data)
            if units:
                # a part may key its rows itself (a derived unit, e.g. a flow's 5-tuple): its digests win
                d, tag = (b.digests, b.tag) if b.digests is not None else unit_digests(b.data, units)
                if unit_weights is None:
                    raise ValueError("unit-level sums need the unit table's weights")
                w = unit_weights.lookup(d, tag)
            else:
                w = np.ones(n) if sample is None or sample.rate >= 1 else \
                    sample.row_mask(i, b.offset, n).astype(np.float64)
            data = b.data
            if not coded and columns is not None and units:
                data = data[list(columns)]
            keep = w > 0
            if not keep.all():  # rows outside the subsample never reach fn (they would cost a vote each)
                idx = np.flatnonzero(keep)
                data = data.iloc[idx] if isinstance(data, pd.DataFrame) else \
                    Codes(data.codes[idx], None if data.labels is None else data.labels[idx])
                w = w[idx]
            if len(w):
                acc.add(fn(Chunk(data, w, i, b.offset)))
            if guard is not None:
                guard.check(where)
            if progress is not None:
                progress(i, b.done)
    return acc.pair()


# -- encoded parts (codes kept where the data is) -----------------------------------------------------
@dataclass
class CodedPart:
    """A part's rows after encoding: codes, labels and unit digests per batch, kept in memory (a Dask
    worker) or in .npy files in a private temporary folder (this process), so later passes (every PE
    iteration) read compact codes instead of re-parsing and re-encoding the raw rows."""

    chunks: list[tuple[Any, ...]] = field(default_factory=list)  # (codes, labels, digests, tag, offset, done)
    weight: float = 1.0

    def batches(self, columns: Sequence[str] | None = None) -> Iterator[Batch]:
        for codes, labels, digests, tag, offset, done in self.chunks:
            c = np.load(codes, mmap_mode="r") if isinstance(codes, str) else codes
            lab = np.load(labels, allow_pickle=True) if isinstance(labels, str) else labels
            d = np.load(digests) if isinstance(digests, str) else digests
            yield Batch(Codes(np.ascontiguousarray(c), lab), offset, done, d, tag)


def encode_part(part: Part, encode: Callable[[pd.DataFrame], np.ndarray], columns: Sequence[str] | None,
                label_column: str | None, units: Sequence[str], cache_dir: str | None = None,
                guard: MemoryGuard | None = None) -> CodedPart:
    """Encode a part batch by batch (on the worker that reads it). ``cache_dir`` None keeps the codes in
    memory; a folder gets one .npy per array (the rows stay private: the folder is mode 0700)."""
    out = CodedPart(weight=part.weight)
    cols = None if columns is None else list(dict.fromkeys([*columns, *([label_column] if label_column else [])]))
    for j, b in enumerate(part.batches(_columns(cols, units))):
        frame = b.data
        labels = frame[label_column].to_numpy() if label_column else None
        d, tag = (b.digests, b.tag) if b.digests is not None else (
            unit_digests(frame, units) if units else (None, None))
        feats = frame[list(columns)] if columns is not None else frame.drop(
            columns=[c for c in (label_column, *units) if c])
        codes = np.ascontiguousarray(np.asarray(encode(feats)))
        if cache_dir is not None:
            stem = os.path.join(cache_dir, f"{id(out)}-{j}")
            np.save(stem + "-codes.npy", codes)
            codes = stem + "-codes.npy"
            if labels is not None:
                np.save(stem + "-labels.npy", labels, allow_pickle=True)
                labels = stem + "-labels.npy"
            if d is not None:
                np.save(stem + "-units.npy", d)
                d = stem + "-units.npy"
        out.chunks.append((codes, labels, d, tag, b.offset, b.done))
        if guard is not None:
            guard.check("encoding private rows")
    return out


def emit_progress(on_event: Callable[[Event], None], desc: str, fraction: float,
                   also: Callable[[float], None] | None) -> None:
    on_event({"type": "scan_progress", "desc": desc, "fraction": fraction})
    if also is not None:
        also(fraction)


# -- the single-process source -------------------------------------------------------------------------
class ChunkedSource:
    """Private data read part by part, batch by batch, in this process (see the module docstring).

    ``unit``: the privacy-unit column(s) (user, host, flow id) for unit-level DP; None for record-level.
    ``guard``: the ``--max-memory`` check between chunks. ``on_event``: receives ``scan_progress`` events
    (fractions only). The per-unit table is built on first use and kept for the run (24 bytes per unit).
    """

    def __init__(self, parts: Sequence[Part], *, unit: str | Sequence[str] | None = None,
                 guard: MemoryGuard | None = None, on_event: Callable[[Event], None] | None = None):
        self._tmp: str | None = None  # set first: __del__ runs even when __init__ raises
        if not parts:
            raise SourceError("no private data given (no frames or files)")
        self.parts = list(parts)
        self.units: tuple[str, ...] = () if unit is None else ((unit,) if isinstance(unit, str) else tuple(unit))
        self.guard = guard or MemoryGuard()
        self.on_event = on_event or (lambda e: None)
        self._table: UnitTable | None = None

    @classmethod
    def from_frames(cls, frames: pd.DataFrame | Sequence[pd.DataFrame], *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                    **kw: Any) -> ChunkedSource:
        frames = [frames] if isinstance(frames, pd.DataFrame) else list(frames)
        return cls([FramePart(f, chunk_rows) for f in frames], **kw)

    @classmethod
    def scan(cls, paths: str | os.PathLike | Sequence[str | os.PathLike], *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
             csv_block_bytes: int = DEFAULT_CSV_BLOCK, column_types: dict[str, str] | None = None,
             encoding: str = "utf-8", **kw: Any) -> ChunkedSource:
        return cls(scan_parts(paths, chunk_rows=chunk_rows, csv_block_bytes=csv_block_bytes,
                              column_types=column_types, encoding=encoding), **kw)

    # -- progress -----------------------------------------------------------------------------------
    def _progress(self, desc: str, also: Callable[[float], None] | None = None) -> Callable[[int, float], None]:
        w = np.array([p.weight for p in self.parts], dtype=float)
        start = np.concatenate([[0.0], np.cumsum(w)[:-1]]) / w.sum()
        share = w / w.sum()
        steps = ProgressSteps(lambda frac: emit_progress(self.on_event, desc, frac, also))

        def report(i: int, done: float) -> None:
            steps(float(start[i] + share[i] * done))
        return report

    # -- units --------------------------------------------------------------------------------------
    def unit_table(self) -> UnitTable:
        """Rows per unit over all parts: one pass over the unit columns, then cached."""
        if self._table is None:
            report = self._progress("counting rows per privacy unit")
            tables = []
            for i, p in enumerate(self.parts):
                tables.append(part_table(p, self.units, self.guard))
                report(i, 1.0)
            self._table = UnitTable.merge(tables)  # no size logged: 24 bytes per unit would count the units
        return self._table

    # -- the core operation -------------------------------------------------------------------------
    def sum(self, fn: ChunkFn, *, columns: Sequence[str] | None = None, sample: PoissonSample | None = None,
            desc: str = "reading private data", empty: Callable[[], np.ndarray] | None = None,
            report: Callable[[float], None] | None = None) -> np.ndarray:
        """Σ over chunks of ``fn(chunk)`` (see the module docstring for fn's contract). ``columns``: the
        only columns read (None: all). ``sample``: a Poisson subsample of the units (rows). ``empty``:
        the result when no row is read (e.g. ``lambda: np.zeros(size)``); without it an empty source
        raises. ``report``: also called with the fraction read (besides ``on_event``)."""
        uw = self.unit_table().weights(sample) if self.units else None
        pair = sum_parts(list(enumerate(self.parts)), fn, columns=columns, units=self.units, unit_weights=uw,
                         sample=sample, guard=self.guard, progress=self._progress(desc, report), where=desc)
        acc = Accumulator()
        if pair is not None:
            acc.add(pair[0], pair[1])
        return acc.total(empty)

    def map_codes(self, encode: Callable[[pd.DataFrame], np.ndarray], *, columns: Sequence[str] | None = None,
                  label_column: str | None = None, cache: str = "disk") -> ChunkedSource:
        """A source of encoded chunks (:class:`Codes`), for votes. Encodes once, now (one pass), and keeps
        the codes in memory (``cache="memory"``) or in .npy files of a private temporary folder
        (``"disk"``, the default: memory stays flat in the number of records). Units and the guard carry
        over; the unit table is reused."""
        if cache not in ("disk", "memory"):
            raise ValueError(f"cache must be 'disk' or 'memory', got {cache!r}")
        tmp = tempfile.mkdtemp(prefix="pe-codes-") if cache == "disk" else None  # mkdtemp: mode 0700
        report = self._progress("encoding private rows")
        coded: list[Part] = []
        for i, p in enumerate(self.parts):
            coded.append(encode_part(p, encode, columns, label_column, self.units, tmp, self.guard))
            report(i, 1.0)
        out = ChunkedSource(coded, unit=self.units or None, guard=self.guard, on_event=self.on_event)
        out._table, out._tmp = self._table, tmp
        return out

    def close(self) -> None:
        """Delete the encoded-code cache (private rows, in encoded form)."""
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> ChunkedSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
