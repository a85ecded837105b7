"""Trace I/O: NetFlow CSV (UGR'16 / NetShare schema) in and out, pcap out; pcap/pcapng in is
:mod:`simulators.network.capture` (streamed; ``read_pcap`` and ``packets_to_flows`` re-exported here).

Canonical in-memory forms:
* flows: columns srcip, dstip (uint32 as int64), srcport, dstport, proto (IANA name), ts (µs),
  td (s), pkt, byt, flags (nfdump string, '.AP.SF'), tos, and ``type`` when the input had it;
* packets: ts (µs), srcip, dstip, srcport, dstport, proto (number), length (IP total length),
  ttl, flags (TCP bitmask), ipid, tos.

pcap output writes Ethernet/IPv4/TCP|UDP|ICMP frames with correct IPv4 header, TCP, UDP and ICMP
checksums (RFC 791/793/768/792 ones'-complement sums) and zero-filled payloads of the recorded length,
so dpkt, scapy and tshark read them as valid packets.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.io_utils import atomic_write
from simulators.network.capture import (  # noqa: F401 - pcap/pcapng input lives there (streamed); re-exported
    PCAP_MAGICS,
    PCAPNG_MAGIC,
    packets_to_flows,
    read_pcap,
)
from simulators.network.encoder import (
    ICMP,
    TCP,
    UDP,
    flags_to_mask,
    ip_to_uint32,
    mask_to_flags,
    number_to_proto,
    proto_to_number,
    uint32_to_ip,
)

FLOW_REQUIRED = ("srcip", "dstip", "srcport", "dstport", "proto", "ts", "td", "pkt", "byt")
FLOW_ORDER = ("srcip", "dstip", "srcport", "dstport", "proto", "ts", "td", "pkt", "byt", "type", "flags", "tos")
FLOW_OPTIONAL = ("type", "flags", "tos")


# ---------------------------------------------------------------------------------------------
# NetFlow CSV
# ---------------------------------------------------------------------------------------------
def _is_parquet(path: Path) -> bool:
    if path.suffix.lower() in (".parquet", ".pq"):
        return True
    with open(path, "rb") as f:
        return f.read(4) == b"PAR1"


def read_flow_table(path: Path) -> pd.DataFrame:
    """The raw table of a flow file: Parquet, CSV, or gzip'd CSV (by name or content)."""
    try:
        if _is_parquet(path):
            return pd.read_parquet(path)
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        return pd.read_csv(path, compression="gzip" if gz else "infer")
    except (OSError, ValueError, pd.errors.ParserError) as e:  # pyarrow's errors subclass these
        kind = "Parquet" if path.suffix.lower() in (".parquet", ".pq") else "CSV"
        raise ValueError(f"{path}: could not read it as a {kind} flow file ({type(e).__name__}); check that the "
                         "file is complete and in NetFlow CSV or Parquet format") from None


def read_netflow_csv(path: str | Path) -> pd.DataFrame:
    """Flows from a UGR'16/NetShare table — CSV, gzip'd CSV or Parquet; IPs may be uint32 or dotted quads,
    proto names or numbers. (``simulators.network.records`` streams the same normalisation chunk by chunk.)"""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"flow file {path} does not exist")
    df = read_flow_table(path)
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in FLOW_REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; a NetFlow CSV needs {list(FLOW_REQUIRED)} "
                         "(plus optional flags, tos, type)")
    return normalize_flows(df, str(path))


def canonical_columns(present: Sequence[str]) -> tuple[str, ...]:
    """The columns :func:`normalize_flows` gives a table with columns ``present``: every NetFlow column,
    ``flags`` and ``tos`` always (defaults when absent), ``type`` only when present."""
    return tuple(c for c in FLOW_ORDER if c != "type" or "type" in present)


def normalize_flows(df: pd.DataFrame, where: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The canonical flow columns (see the module docstring) of a raw table whose names are stripped;
    ``columns`` limits the work to those (a streamed pass reads only what it needs). Column by column, so
    a chunk gives exactly the rows the whole table would."""
    want = canonical_columns(df.columns) if columns is None else tuple(columns)
    out: dict[str, Any] = {}
    for c in want:
        if c in ("srcip", "dstip"):
            _one_address_form(df[c], c, where)
            out[c] = ip_to_uint32(df[c], c)
        elif c in ("srcport", "dstport", "pkt", "byt", "ts", "td"):
            v = pd.to_numeric(df[c], errors="coerce")
            if v.isna().any():  # rule 7: the column and the problem, never a value, a row or a count
                raise ValueError(f"{where}: column {c!r}: some values are missing or not numbers; fill or drop them")
            v = v.to_numpy(np.float64)
            out[c] = v if c in ("ts", "td") else v.round().astype(np.int64)
        elif c == "proto":
            out[c] = number_to_proto(proto_to_number(df["proto"]))
        elif c == "flags":
            out[c] = mask_to_flags(flags_to_mask(df["flags"].fillna("......"))) if "flags" in df else \
                np.full(len(df), "......", dtype=object)
        elif c == "tos":
            out[c] = pd.to_numeric(df["tos"], errors="coerce").fillna(0).to_numpy().astype(np.int64) \
                if "tos" in df else np.zeros(len(df), np.int64)
        elif c == "type":
            out[c] = df["type"].astype(str).to_numpy()
        else:
            raise ValueError(f"{where}: {c!r} is not a NetFlow column; known: {list(FLOW_ORDER)}")
    return pd.DataFrame(out, index=pd.RangeIndex(len(df)))[list(want)]


def _one_address_form(s: pd.Series, column: str, where: str) -> None:
    """Refuse a text address column that is not dotted quads throughout. The output writes addresses in
    the form the input's column type declares (:class:`FlowFormat`): text means dotted quads, so numbers
    stored as text in a text column (e.g. a CSV whose first rows are dotted and later ones numbers) would
    make the form depend on which records the file holds. Rule 7: the column and the problem only."""
    if pd.api.types.is_numeric_dtype(s):
        return
    if not s.dropna().astype(str).str.contains(".", regex=False).all():  # a missing one: ip_to_uint32's error
        raise ValueError(f"{where}: column {column!r} holds text but not only dotted quads; write every address "
                         "one way: dotted quads like 10.0.0.1 throughout, or uint32 numbers throughout")


@dataclass(frozen=True)
class FlowFormat:
    """How synthetic flows are written so that the output looks like its input.

    ``optional``: the optional columns (``type``, ``flags``, ``tos``) the input names — only those are
    written (a column the input lacked stays missing). ``dotted``: the address columns written as dotted
    quads (the rest as uint32 numbers). ``integer_ts``: ``ts`` written as whole microseconds.

    Every field is a fact about the input's *format*, never about its values, so that adding or removing
    one record never changes how the output looks (that would reveal the record): the optional columns
    come from the header (Parquet schema, CSV header line); the address form from the column's type —
    Parquet's declared type, or the one type pyarrow's CSV reader fixes for the whole file — and every
    chunk is then held to that form (:func:`normalize_flows` refuses a text address that is not a dotted
    quad; pyarrow refuses text in a numeric column), so a record in the other form is refused like any
    invalid value instead of switching the form. ``ts`` is an integer of µs unless Parquet declares it
    floating, or the public ``--ts-resolution`` is not whole microseconds: a CSV declares no type, and
    "every value is whole" is a fact about every record (one record with a fraction would flip it), so
    a CSV's synthetic ``ts``, which sit on the public µs grid, are written as integers."""

    optional: tuple[str, ...] = FLOW_OPTIONAL
    dotted: tuple[str, ...] = ()
    integer_ts: bool = False

    def apply(self, flows: pd.DataFrame) -> pd.DataFrame:
        """The columns to write, in the UGR'16 order, converted to this format (a copy)."""
        cols = [c for c in FLOW_ORDER if c in flows.columns and (c not in FLOW_OPTIONAL or c in self.optional)]
        df = flows[cols].copy()
        for c in self.dotted:
            df[c] = uint32_to_ip(df[c])
        if self.integer_ts:
            df["ts"] = np.round(df["ts"].to_numpy(np.float64)).astype(np.int64)
        return df


def whole_microseconds(ts_resolution_s: float) -> bool:
    """Whether timestamps on the public ``ts_resolution_s`` grid (at least 1 µs, as the generators
    render them) are whole microseconds."""
    us = max(float(ts_resolution_s), 1e-6) * 1e6
    return abs(us - round(us)) < 1e-9 * us


def _declared_types(part: Any) -> dict[str, Any]:
    """Column name → pyarrow type of one file part: Parquet's declared schema, or the types the part's
    own CSV reader fixes for the whole file (the same reader options, so the same types its batches get)."""
    from pe_tabular.source import ParquetPart

    if isinstance(part, ParquetPart):
        import pyarrow.parquet as pq

        schema = pq.read_schema(part.path)
    else:
        raw, reader = part._open(None)
        raw.close()
        schema = reader.schema
    return {str(f.name).strip(): f.type for f in schema}


def input_flow_format(path: str | Path, ts_resolution_s: float) -> FlowFormat:
    """The :class:`FlowFormat` of a NetFlow file or folder (read from headers and schemas only; see the
    class for why). Files of one input that write an address column differently are refused."""
    import pyarrow as pa

    from pe_tabular.source import ParquetPart, scan_parts

    parts = scan_parts(path)
    types = [_declared_types(p) for p in parts]
    optional = tuple(c for c in FLOW_OPTIONAL if all(c in t for t in types))
    dotted = []
    for c in ("srcip", "dstip"):
        text = {pa.types.is_string(t[c]) or pa.types.is_large_string(t[c]) for t in types if c in t}
        if len(text) > 1:
            raise ValueError(f"{path}: its files write column {c!r} differently (dotted quads in some, numbers in "
                             "others); write every address one way")
        if text == {True}:
            dotted.append(c)
    # only Parquet declares a type for ts (a CSV's is inferred from its first rows: see the class)
    floating = any(isinstance(p, ParquetPart) and "ts" in t and pa.types.is_floating(t["ts"])
                   for p, t in zip(parts, types))
    return FlowFormat(optional, tuple(dotted), whole_microseconds(ts_resolution_s) and not floating)


def capture_flow_format(ts_resolution_s: float) -> FlowFormat:
    """Flows extracted from a capture: numeric addresses, flags and ToS (the headers carry them), ts in
    whole µs (a pcap stamps µs) unless the public resolution is finer."""
    return FlowFormat(("flags", "tos"), (), whole_microseconds(ts_resolution_s))


def write_netflow_csv(flows: pd.DataFrame, path: str | Path, dotted_ips: bool = False,
                      fmt: FlowFormat | None = None) -> Path:
    """Atomic CSV in the UGR'16 column order, in ``fmt`` (default: every column given, IPs as uint32
    unless ``dotted_ips``)."""
    fmt = fmt or FlowFormat(dotted=("srcip", "dstip") if dotted_ips else ())
    df = fmt.apply(flows)
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


class SortedCsvSink:
    """Synthetic flows written chunk by chunk into one CSV sorted by start time, holding O(``max_rows``)
    records instead of the whole output (``traces synth`` on 2·10⁷ records writes 2·10⁷ synthetic ones).

    ``write`` sorts a chunk by ``ts`` and keeps it as a Parquet file in a temporary folder, and counts its
    start times over ``cells`` public cells of the time window; ``close`` cuts the cells into buckets of at
    most ``max_rows`` records (a single cell may hold more), reads each bucket back from every chunk file
    (row-group statistics skip the rest), sorts it (stable: ties keep chunk order, as a stable sort of the
    concatenated chunks would) and appends it to the CSV, written atomically. The records are synthetic
    (post-processing), so the folder holds nothing private."""

    def __init__(self, path: str | Path, window: tuple[float, float], max_rows: int = 1 << 17, cells: int = 4096,
                 fmt: FlowFormat | None = None):
        import tempfile

        self.path, self.window, self.max_rows, self.cells, self.fmt = Path(path), window, max_rows, cells, fmt
        self.tmp = Path(tempfile.mkdtemp(prefix="pe-traces-out-"))
        self.files: list[Path] = []
        self.counts = np.zeros(cells, np.int64)
        self.rows = 0

    def _cell(self, ts_us: np.ndarray) -> np.ndarray:
        t0, t1 = self.window
        return np.clip(np.floor((ts_us / 1e6 - t0) / (t1 - t0) * self.cells), 0, self.cells - 1).astype(np.int64)

    def write(self, flows: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        df = flows[[c for c in FLOW_ORDER if c in flows.columns]].sort_values("ts", kind="stable")
        # the record's position in the concatenated chunks breaks ties: the merge is a stable sort of them
        df = df.assign(_seq=np.arange(self.rows, self.rows + len(df), dtype=np.int64))
        self.counts += np.bincount(self._cell(df["ts"].to_numpy(np.float64)), minlength=self.cells)
        f = self.tmp / f"{len(self.files):06d}.parquet"
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), f, row_group_size=8192)
        self.files.append(f)
        self.rows += len(df)

    def _buckets(self) -> list[tuple[float, float]]:
        """(lo, hi) start-time ranges in µs: consecutive cells holding at most max_rows records each."""
        t0, t1 = self.window
        edges = t0 + (t1 - t0) * np.arange(self.cells + 1) / self.cells
        out, start, held = [], 0, 0
        for c in range(self.cells):
            if held and held + self.counts[c] > self.max_rows:
                out.append((start, c))
                start, held = c, 0
            held += int(self.counts[c])
        out.append((start, self.cells))
        return [(-np.inf if a == 0 else edges[a] * 1e6, np.inf if b == self.cells else edges[b] * 1e6)
                for a, b in out]

    def _merge(self, tmp: str) -> None:
        import pyarrow.parquet as pq

        first = True
        for lo, hi in self._buckets():
            parts = [pq.read_table(f, filters=[("ts", ">=", lo), ("ts", "<", hi)]).to_pandas() for f in self.files]
            df = pd.concat(parts, ignore_index=True).sort_values(["ts", "_seq"], kind="stable").drop(columns="_seq")
            if not len(df) and not first:
                continue
            if self.fmt is not None:
                df = self.fmt.apply(df)
            df.to_csv(tmp, index=False, mode="w" if first else "a", header=first)
            first = False

    def close(self) -> Path:
        """Write the CSV (atomically) and delete the chunk files."""
        import shutil

        try:
            return atomic_write(self.path, self._merge)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def discard(self) -> None:
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)


def write_packets_csv(packets: pd.DataFrame, path: str | Path) -> Path:
    """Atomic CSV of packet-header records (ts µs, IPs as uint32, proto number, flags mask)."""
    return atomic_write(path, lambda tmp: packets.to_csv(tmp, index=False))


# ---------------------------------------------------------------------------------------------
# pcap out
# ---------------------------------------------------------------------------------------------
def ones_complement_sum(data: bytes) -> int:
    """RFC 1071 Internet checksum of ``data`` (already complemented)."""
    if len(data) % 2:
        data += b"\0"
    s = int(np.frombuffer(data, dtype=">u2").astype(np.int64).sum())
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


_ETH = bytes.fromhex("020000000002" "020000000001") + b"\x08\x00"  # locally administered MACs, IPv4


def _frame(src: int, dst: int, sport: int, dport: int, proto: int, length: int, ttl: int, flags: int,
           ipid: int, tos: int, seq: int) -> bytes:
    sip, dip = src.to_bytes(4, "big"), dst.to_bytes(4, "big")
    if proto == TCP:
        payload = bytes(length - 40)
        ack = 1 if flags & 0x10 else 0
        hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack, 5 << 4, flags & 0x3F, 65535, 0, 0)
        pseudo = sip + dip + struct.pack("!BBH", 0, TCP, len(hdr) + len(payload))
        c = ones_complement_sum(pseudo + hdr + payload)
        l4 = hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload
    elif proto == UDP:
        payload = bytes(length - 28)
        ulen = 8 + len(payload)
        pseudo = sip + dip + struct.pack("!BBH", 0, UDP, ulen)
        c = ones_complement_sum(pseudo + struct.pack("!HHHH", sport, dport, ulen, 0) + payload) or 0xFFFF
        l4 = struct.pack("!HHHH", sport, dport, ulen, c) + payload
    elif proto == ICMP:
        payload = bytes(max(length - 28, 0))
        body = struct.pack("!BBHHH", (dport >> 8) & 0xFF, dport & 0xFF, 0, ipid, seq & 0xFFFF) + payload
        c = ones_complement_sum(body)
        l4 = body[:2] + struct.pack("!H", c) + body[4:]
    else:
        l4 = bytes(max(length - 20, 0))
    total = 20 + len(l4)
    iph = struct.pack("!BBHHHBBH4s4s", 0x45, tos & 0xFF, total, ipid & 0xFFFF, 0x4000 if proto == TCP else 0,
                      ttl & 0xFF, proto & 0xFF, 0, sip, dip)
    iph = iph[:10] + struct.pack("!H", ones_complement_sum(iph)) + iph[12:]
    return _ETH + iph + l4


def write_pcap(packets: pd.DataFrame, path: str | Path) -> Path:
    """Atomic classic pcap (Ethernet link type, µs timestamps) of packet-header records."""
    import dpkt

    pk = packets.sort_values("ts", kind="stable").reset_index(drop=True)
    proto = proto_to_number(pk["proto"])
    bad = ~np.isin(proto, [TCP, UDP, ICMP]) & (pk["length"].to_numpy() < 20)
    if np.any(bad):
        raise ValueError("column 'length': some packets are shorter than the 20-byte IPv4 header; "
                         "use IP total lengths of at least 20")
    flags = flags_to_mask(pk["flags"]) if "flags" in pk else np.zeros(len(pk), np.int64)
    cols = {c: pk[c].to_numpy(np.int64) for c in ("ts", "srcip", "dstip", "srcport", "dstport", "length")}
    ttl = pk["ttl"].to_numpy(np.int64) if "ttl" in pk else np.full(len(pk), 64)
    ipid = pk["ipid"].to_numpy(np.int64) if "ipid" in pk else np.arange(len(pk)) & 0xFFFF
    tos = pk["tos"].to_numpy(np.int64) if "tos" in pk else np.zeros(len(pk), np.int64)
    # a running byte offset per 5-tuple gives plausible TCP sequence numbers
    key = pd.Series(list(zip(cols["srcip"], cols["dstip"], cols["srcport"], cols["dstport"], proto)))
    seq = (key.map(lambda k: hash(k) & 0xFFFFFF).to_numpy(np.int64)
           + pd.Series(np.maximum(cols["length"] - 40, 0)).groupby(key.factorize()[0]).cumsum().to_numpy())

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            w = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
            for i in range(len(pk)):
                fr = _frame(int(cols["srcip"][i]), int(cols["dstip"][i]), int(cols["srcport"][i]),
                            int(cols["dstport"][i]), int(proto[i]), int(cols["length"][i]), int(ttl[i]),
                            int(flags[i]), int(ipid[i]), int(tos[i]), int(seq[i]))
                w.writepkt(fr, ts=cols["ts"][i] / 1e6)

    return atomic_write(path, write)
