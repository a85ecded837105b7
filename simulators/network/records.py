"""The private trace as a chunked source: every release is a sum over chunks, never one raw frame.

``traces synth`` used to read the whole input into one pandas frame, so memory grew with the number of
records (1.3 GB for 10⁶ NetFlow records). Every statistic the pipeline releases — the record/unit count,
the address-trie levels, the service and time priors, the fitted generator's histograms, structure and
pair tables, raking marginals and the votes — is a sum over records of a per-record contribution, so it
can be computed chunk by chunk over :class:`pe_tabular.source.ChunkedSource` (CSV, CSV.gz, Parquet files
or folders, or an in-memory frame cut into chunks) or :class:`pe_tabular.dask_source.DaskSource` (the
same parts on Dask workers). There is ONE code path: an in-memory frame is just a source whose parts are
slices of the frame (:meth:`TraceRecords.from_frame`).

Contributions (:class:`Hist`): a record adds to one bin (``k = 1``), or to k bins in disjoint ranges with
weight 1/√k each (pair tables: L2 norm 1), or — for the address trie, whose two addresses may fall in one
prefix — to its two bins normalised to L2 norm 1 per record (one bin with weight 1, or two with 1/√2).
Each chunk returns *integer* counts of each kind at record level (weights 1) and the 1/√k factors are
applied after the sum, so the released histograms do not depend on how the records are chunked: a file
streamed in 4,096-record chunks and the same records in one frame give bit-identical exact counts, hence
identical releases under the test-only noise switch.

Privacy units (``flow``, ``host``): each part keys its records itself (:func:`unit_keys`: the flow's
bidirectional 5-tuple or the connection's client address, packed exactly into two 64-bit words — no
hashing, no collisions), and the source weights each record of unit u by 1/n_u (n_u = the unit's records
over the whole input, counted in a first pass; :mod:`pe_tabular.units`). One unit then moves every
histogram by at most Σ_rows 1/n_u · ‖v_row‖ ≤ 1 however its records are spread over chunks, files and
workers. The in-memory path used to scale each unit's summed vector to L2 norm exactly 1
(``vote_histogram``); that needs every unit whole in memory. Both have sensitivity ≤ 1; the 1/n_u rule
gives a unit whose records fall in different bins less mass (‖Σ‖ < 1), so unit-level runs are a little
noisier relative to their signal than before (measured in benchmarks/RESULTS.md). Record-level runs are
unchanged.

Captures (pcap/pcapng) are streamed too (:meth:`TraceRecords.from_capture`): each pass reads the file with
dpkt's streaming reader, packet headers at packet level, the flows an exporter would build at flow level
(:mod:`simulators.network.capture`), a chunk at a time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pe_tabular.measure.histograms import OnePass
from pe_tabular.memory import MemoryGuard
from pe_tabular.source import (
    DEFAULT_CHUNK_ROWS,
    Batch,
    Chunk,
    ChunkedSource,
    CsvPart,
    FramePart,
    ParquetPart,
    Part,
    SourceError,
    scan_parts,
)
from simulators.network.capture import FLOW_COLUMNS, PACKET_COLUMNS, FlowPart, PacketPart, check_capture
from simulators.network.encoder import PORTED_PROTOCOLS, client_is_source, ip_to_uint32, proto_to_number
from simulators.network.io import FLOW_REQUIRED, canonical_columns, normalize_flows

log = logging.getLogger(__name__)
Event = dict[str, Any]
UNITS = ("record", "flow", "host")
UNIT_COLUMN = "__unit__"  # the pseudo column a source asks for when it needs a chunk's unit keys
KEY_COLUMNS = ("srcip", "dstip", "srcport", "dstport", "proto")
UNIT_SIZE_BINS = 24  # public dyadic bins of records per unit: 1, 2, 3-4, 5-8, ..., 2^22+


def unit_keys(records: pd.DataFrame, unit: str) -> np.ndarray:
    """(n, 2) uint64 key per record of its privacy unit, exact (no hash).

    flow: the bidirectional 5-tuple, so both directions of a connection and every record an exporter split
    it into form one unit; for port-less protocols (ICMP, GRE, ...) the ports are not part of the key
    (ICMP's hold type and code, which differ between a request and its reply), so the unit is the address
    pair and protocol. Packed as (low endpoint | protocol << 48, high endpoint), endpoints 48 bits each.
    host: the connection's client address (``client_is_source``), so one client's connections, both
    directions, form one unit — an ICMP sender included."""
    if unit not in ("flow", "host"):
        raise ValueError(f"--unit must be one of {', '.join(UNITS)}, got {unit!r}")
    s, d = ip_to_uint32(records["srcip"], "srcip"), ip_to_uint32(records["dstip"], "dstip")
    if unit == "host":
        h = np.where(client_is_source(records), s, d)
        return np.stack([h, np.zeros_like(h)], axis=1).astype(np.uint64)
    sp, dp = records["srcport"].to_numpy(np.int64), records["dstport"].to_numpy(np.int64)
    proto = proto_to_number(records["proto"])
    ported = np.isin(proto, PORTED_PROTOCOLS)
    a, b = (s << 16) | np.where(ported, sp, 0), (d << 16) | np.where(ported, dp, 0)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return np.stack([lo | (proto << 48), hi], axis=1).astype(np.uint64)


def unit_size_bins(counts: np.ndarray) -> np.ndarray:
    """Units per dyadic size bin (records per unit 1, 2, 3-4, 5-8, ...): one unit adds 1 to one bin."""
    c = np.asarray(counts, np.int64)
    c = c[c > 0]
    b = np.minimum(np.ceil(np.log2(c)).astype(np.int64), UNIT_SIZE_BINS - 1)
    return np.bincount(b, minlength=UNIT_SIZE_BINS).astype(np.float64)


# -- parts --------------------------------------------------------------------------------------------
def _file_names(part: Part) -> list[str]:
    """The column names of a file part (its header / schema), without reading rows."""
    if isinstance(part, ParquetPart):
        return list(pq.read_schema(part.path).names)
    if isinstance(part, CsvPart):
        try:
            return part.names()  # stripped of blanks: "srcip, dstip" names 'dstip', as the batches do
        except (SourceError, pa.ArrowInvalid, OSError):
            raise SourceError(f"{os.path.basename(part.path)}: could not read its header as a NetFlow CSV; check "
                              "that the file is complete") from None
    raise TypeError(f"not a file part: {type(part).__name__}")


@dataclass(frozen=True)
class TracePart:
    """One part of the private trace, read in batches of canonical columns with the unit keys attached.

    ``inner`` reads the rows (a file or a frame slice); ``names`` maps each canonical column the part
    can give to the inner column to read (``None`` for a column ``normalize_flows`` fills in, e.g. an
    absent ``flags``); ``normalise`` runs NetFlow files through :func:`io.normalize_flows` (frames handed
    to the library are already canonical). Picklable, so Dask workers read their own parts."""

    inner: Part
    unit: str
    names: tuple[tuple[str, str | None], ...]
    normalise: bool
    where: str

    @property
    def weight(self) -> float:
        return self.inner.weight

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.names)

    def batches(self, columns: Sequence[str] | None) -> Iterator[Batch]:
        keyed = self.unit != "record" and (columns is None or UNIT_COLUMN in columns)
        want = list(self.columns) if columns is None else [c for c in columns if c != UNIT_COLUMN]
        miss = [c for c in want if c not in self.columns]
        if miss:
            raise SourceError(f"{self.where}: column(s) {miss} not found; a NetFlow table needs "
                              f"{list(FLOW_REQUIRED)}")
        need = list(dict.fromkeys([*want, *(KEY_COLUMNS if keyed else ())]))
        names = dict(self.names)
        read = list(dict.fromkeys(names[c] for c in need if names[c] is not None))
        for b in self.inner.batches(read):
            f = b.data
            if self.normalise:
                f = f.rename(columns={names[c]: c for c in need if names[c] is not None})
                f = normalize_flows(f, self.where, need)
            keys = unit_keys(f, self.unit) if keyed else None
            yield Batch(f[want], b.offset, b.done, keys, self.unit if keyed else None)


def _frame_part(frame: pd.DataFrame, unit: str, chunk_rows: int) -> TracePart:
    return TracePart(FramePart(frame, chunk_rows), unit, tuple((str(c), c) for c in frame.columns), False,
                     "the private trace")


def _file_part(part: Part, unit: str) -> TracePart:
    where = os.path.basename(getattr(part, "path", "input"))
    raw = {str(n).strip(): n for n in _file_names(part)}
    missing = [c for c in FLOW_REQUIRED if c not in raw]
    if missing:
        raise SourceError(f"{where}: missing columns {missing}; a NetFlow table needs {list(FLOW_REQUIRED)} (plus "
                          "optional flags, tos, type)")
    return TracePart(part, unit, tuple((c, raw.get(c)) for c in canonical_columns(list(raw))), True, where)


# -- histograms ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hist:
    """One histogram over records: ``index(frame)`` gives each record's bin (n,) or bins (n, k) in
    [0, size), reading only ``columns`` (None: all). With k > 1 the bins of a record lie in disjoint
    ranges (each counts 1/√k: L2 norm 1), unless ``rownorm``: then k must be 2 and a record whose two
    bins coincide adds 1 to it (the address trie's source and destination in one prefix)."""

    index: Callable[[pd.DataFrame], np.ndarray]
    size: int
    columns: tuple[str, ...] | None
    k: int = 1
    rownorm: bool = False

    def __post_init__(self) -> None:
        if self.rownorm and self.k != 2:
            raise ValueError("rownorm histograms take exactly two bins per record")

    @property
    def width(self) -> int:
        """Length of this histogram's part of a chunk's vector (two accumulators for ``rownorm``)."""
        return 2 * self.size if self.rownorm else self.size

    def chunk(self, frame: pd.DataFrame, w: np.ndarray) -> np.ndarray:
        """Weighted counts WITHOUT the 1/√k factor (integers at record level: exact in any chunking)."""
        idx = np.asarray(self.index(frame), dtype=np.int64).reshape(len(frame), -1)
        if idx.shape[1] != self.k:
            raise ValueError(f"a histogram index gave {idx.shape[1]} bins per record, expected {self.k}")
        if not self.rownorm:
            return np.bincount(idx.ravel(), weights=np.repeat(w, self.k), minlength=self.size).astype(np.float64)
        same = idx[:, 0] == idx[:, 1]
        one = np.bincount(idx[same, 0], weights=w[same], minlength=self.size)
        two = np.bincount(idx[~same].ravel(), weights=np.repeat(w[~same], 2), minlength=self.size)
        return np.r_[one, two].astype(np.float64)

    def finish(self, total: np.ndarray) -> np.ndarray:
        """The histogram from the summed chunk vectors (applies the L2 factors)."""
        if self.rownorm:
            return total[: self.size] + total[self.size:] / np.sqrt(2.0)
        return total if self.k == 1 else total / np.sqrt(self.k)


@dataclass(frozen=True)
class _PassFn:
    """The chunk function of one pass: every histogram of the pass, concatenated (picklable for Dask)."""

    hists: tuple[Hist, ...]

    def __call__(self, chunk: Chunk) -> np.ndarray:
        return np.concatenate([h.chunk(chunk.frame, chunk.weights) for h in self.hists])


def _pass_columns(hists: Sequence[Hist]) -> list[str] | None:
    if any(h.columns is None for h in hists):
        return None
    return list(dict.fromkeys(c for h in hists for c in (h.columns or ())))


def _size_bins_of(table: Any) -> np.ndarray:  # runs where the unit table lives (this process or a worker)
    return unit_size_bins(table.counts)


# -- the records ----------------------------------------------------------------------------------------
@dataclass
class TraceRecords:
    """The private trace: a chunked source of canonical records with the privacy unit's weights.

    Build with :meth:`from_frame` (records already in memory), :meth:`scan` (NetFlow CSV/CSV.gz/Parquet
    files or folders, read in chunks) and optionally :meth:`on_dask`. ``columns`` are the canonical
    columns every part gives; nothing here is derived from the number of records."""

    source: Any  # ChunkedSource or DaskSource
    unit: str
    columns: tuple[str, ...]
    local: ChunkedSource | None = None  # the single-process source behind a Dask one (for to_frame)
    _owned: list[Any] = field(default_factory=list)

    @staticmethod
    def _source(parts: list[TracePart], unit: str, guard: MemoryGuard | None,
                on_event: Callable[[Event], None] | None) -> ChunkedSource:
        if unit not in UNITS:
            raise ValueError(f"--unit must be one of {', '.join(UNITS)}, got {unit!r}")
        return ChunkedSource(parts, unit=None if unit == "record" else UNIT_COLUMN, guard=guard, on_event=on_event)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, unit: str = "record", *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                   guard: MemoryGuard | None = None,
                   on_event: Callable[[Event], None] | None = None) -> TraceRecords:
        """Records already in memory (canonical columns), summed in ``chunk_rows`` slices."""
        part = _frame_part(frame, unit, chunk_rows)
        return cls(cls._source([part], unit, guard, on_event), unit, part.columns)

    @classmethod
    def scan(cls, paths: str | os.PathLike | Sequence[str | os.PathLike], unit: str = "record", *,
             chunk_rows: int = DEFAULT_CHUNK_ROWS, guard: MemoryGuard | None = None,
             on_event: Callable[[Event], None] | None = None) -> TraceRecords:
        """NetFlow tables (UGR'16/NetShare columns) in CSV, CSV.gz or Parquet files or folders of them,
        normalised chunk by chunk exactly as :func:`io.read_netflow_csv` normalises a whole file."""
        parts = [_file_part(p, unit) for p in scan_parts(paths, chunk_rows=chunk_rows)]
        cols = [c for c in parts[0].columns if all(c in p.columns for p in parts)]
        return cls(cls._source(parts, unit, guard, on_event), unit, tuple(cols))

    @classmethod
    def from_capture(cls, path: str | os.PathLike, level: str = "flow", unit: str = "record", *,
                     chunk_rows: int = DEFAULT_CHUNK_ROWS, guard: MemoryGuard | None = None,
                     on_event: Callable[[Event], None] | None = None,
                     show_invalid: Callable[[str], None] | None = None) -> TraceRecords:
        """A pcap/pcapng capture read chunk by chunk at every pass: its packet headers (``level``
        "packet") or its unidirectional flows ("flow"); memory O(chunk_rows + flows open at once). The
        first pass parses the capture; the others read what it parsed (:class:`capture.Spool`).
        ``show_invalid``: the local-only diagnostic of skipped frames (:func:`capture.iter_packets`)."""
        inner = (PacketPart if level == "packet" else FlowPart)(str(check_capture(path)), chunk_rows, show_invalid)
        cols = PACKET_COLUMNS if level == "packet" else FLOW_COLUMNS
        part = TracePart(inner, unit, tuple((c, c) for c in cols), False, os.path.basename(path))
        out = cls(cls._source([part], unit, guard, on_event), unit, part.columns)
        out._owned.append(inner.spool)  # close() deletes the parsed records
        return out

    def on_dask(self, *, local: int | None = None, scheduler: str | None = None) -> TraceRecords:
        """The same records with their parts on Dask workers (a new ``LocalCluster`` of ``local`` workers,
        or the cluster at ``scheduler``); releases and votes then run there. Close with :meth:`close`."""
        from pe_tabular.dask_source import DaskSource  # noqa: PLC0415 - extra 'dask'

        if self.local is not None or not isinstance(self.source, ChunkedSource):
            raise ValueError("these records are already on Dask")
        # a capture's parts parse at every pass on the workers instead of spooling there (see PacketPart)
        parts = [replace(p, inner=replace(p.inner, spool=None)) if isinstance(p.inner, PacketPart) else p
                 for p in self.source.parts]
        shipped = ChunkedSource(parts, unit=self.source.units or None, guard=self.source.guard,
                                on_event=self.source.on_event)
        src = DaskSource.remote(scheduler, shipped) if scheduler else DaskSource.local(int(local or 2), shipped)
        out = TraceRecords(src, self.unit, self.columns, self.source)
        out._owned.extend([*self._owned, src])  # closing it closes what this one owned (a capture's spool)
        return out

    @property
    def on_cluster(self) -> bool:
        return self.local is not None

    # -- passes ---------------------------------------------------------------------------------------
    def histograms(self, hists: Sequence[Hist], desc: str = "reading private records") -> list[np.ndarray]:
        """Every histogram of ``hists`` in ONE pass over the records (only the columns they read)."""
        hists = tuple(hists)
        widths = np.cumsum([0, *(h.width for h in hists)])
        total = self.source.sum(_PassFn(hists), columns=_pass_columns(hists), desc=desc,
                                empty=lambda: np.zeros(int(widths[-1])))
        return [h.finish(total[a:b]) for h, a, b in zip(hists, widths[:-1], widths[1:])]

    def one_pass(self, hists: Sequence[Hist], desc: str) -> OnePass[int]:
        """Histograms released one at a time but computed together in one pass (:meth:`histograms`), on first
        need: a resumed run whose checkpoint holds every one of them reads no private data at all."""
        return OnePass(lambda: dict(enumerate(self.histograms(hists, desc))))

    def histogram(self, hist: Hist, desc: str = "reading private records") -> np.ndarray:
        return self.histograms([hist], desc)[0]

    def unit_sizes(self) -> np.ndarray:
        """Units per dyadic size bin (:func:`unit_size_bins`) from the source's per-unit table, computed
        where the table lives (a Dask worker's table never comes to this process)."""
        if self.unit == "record":
            raise ValueError("record-level runs have no unit table")
        if self.on_cluster:
            return np.asarray(self.source.client.submit(_size_bins_of, self.source.unit_table(), pure=False).result(),
                              np.float64)
        return unit_size_bins(self.source.unit_table().counts)

    def encoded(self, encode: Callable[[pd.DataFrame], np.ndarray], columns: Sequence[str]) -> Any:
        """A source of encoded records for the votes (``voting.streaming.SourceVoter``): encoded once, kept
        as .npy files in a private temporary folder (file input: memory stays flat), in memory (a frame),
        or in the Dask workers' memory. The caller closes it (that deletes the codes)."""
        if self.on_cluster:
            coded = self.source.map_codes(encode, columns=list(columns))
        else:
            in_memory = all(isinstance(p.inner, FramePart) for p in self.source.parts)
            coded = self.source.map_codes(encode, columns=list(columns), cache="memory" if in_memory else "disk")
        return coded

    def to_frame(self) -> pd.DataFrame:
        """All records in one frame — only for ``--report``, which shows real-data statistics."""
        src = self.local if self.local is not None else self.source
        frames = [b.data for p in src.parts for b in p.batches(list(self.columns))]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(self.columns))

    def close(self) -> None:
        """Delete the encoded-record cache and shut a Dask cluster this object started."""
        for obj in reversed(self._owned):
            obj.close()
        self._owned.clear()
