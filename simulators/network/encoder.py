"""Encoders for network-trace fields: flow and packet records -> MixedMetric integer codes.

Each ``encode_*`` function takes a plain numpy array (or anything ``np.asarray`` accepts) and returns
``(codes, kind)``: int64 codes plus the MixedMetric distance kind the voting kernels apply to them
(``encode_port`` returns two columns and their two kinds).
Distances then mean something for traffic:

* IPv4 (kind IPV4 on the uint32 address): 32 − longest common prefix, so two hosts of one /24 are
  closer than two hosts of one /16 — the hierarchy routing and address allocation follow.
* ports (two CAT columns: the port, weight w, and its service class — well-known / registered /
  ephemeral — weight ``PORT_CLASS_WEIGHT``·w = 2w): equal 0 < same class w < other class 3w, so a
  client's ephemeral port 51234 vs 60001 barely matters while 80 vs 51234 does. The engine has no
  port kind: this domain knowledge lives here, built from the generic CAT kind.
* protocol, TCP flags, ToS (kind CAT): nominal.
* packet/byte counts and durations (kind ABS on a log grid): heavy-tailed, so relative size matters —
  1 vs 2 packets is as far apart as 1000 vs 2000.
* timestamps (kind ABS on a grid over the PUBLIC time window): never bounds read from private data.

Every bound (size range, time window, grid resolution) is a public input; nothing here looks at the
data to choose it. ``FlowEncoder`` and ``PacketEncoder`` bundle the fields of NetFlow (UGR'16 /
NetShare schema) and packet-header records with weights that set how much each field counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pe_tabular.distance import ABS, CAT, IPV4, MixedMetric

# IANA protocol numbers for the names NetFlow exports use (public registry).
PROTO_NUMBERS: dict[str, int] = {
    "ICMP": 1, "IGMP": 2, "IPIP": 4, "TCP": 6, "UDP": 17, "IPv6": 41, "GRE": 47, "ESP": 50, "AH": 51,
    "ICMPv6": 58, "SCTP": 132,
}
PROTO_NAMES: dict[int, str] = {v: k for k, v in PROTO_NUMBERS.items()}
TCP, UDP, ICMP = 6, 17, 1
# nfdump flag string positions "UAPRSF"; TCP header bit of position i is 0x20 >> i.
FLAG_LETTERS = "UAPRSF"
URG, ACK, PSH, RST, SYN, FIN = 0x20, 0x10, 0x08, 0x04, 0x02, 0x01
MIN_IP_HEADER = 20  # bytes; the floor every IPv4 packet pays
# A port's class column weighs this many times its port column: equal 0, same class w, other class
# w + 2w = 3w, so changing service class costs three times what changing port inside a class does.
PORT_CLASS_WEIGHT = 2


def port_class(p: Any) -> np.ndarray:
    """IANA service class of ports: 0 = well-known (<1024), 1 = registered (<49152), 2 = ephemeral.

    Clients draw ephemeral ports and services sit on well-known or registered ones, so the class says
    which side of a connection a port is on; encoders, simulators and the privacy unit all rely on it."""
    p = np.asarray(p)
    return np.where(p < 1024, 0, np.where(p < 49152, 1, 2))


# ICMP types sent *towards* the host that started the exchange: replies (echo 0, timestamp 14, info 16,
# address mask 18) and errors (unreachable 3, source quench 4, redirect 5, time exceeded 11, parameter 12)
ICMP_TO_CLIENT_TYPES = (0, 3, 4, 5, 11, 12, 14, 16, 18)
PORTED_PROTOCOLS = (TCP, UDP, 132, 136)  # TCP, UDP, SCTP, UDP-Lite: protocols whose ports name endpoints


def icmp_type(srcport: np.ndarray, dstport: np.ndarray) -> np.ndarray:
    """The ICMP type of records under either export convention: nfdump writes type·256+code into
    ``dstport`` (``srcport`` 0); Argus writes the type (or type·256+code) into ``srcport``."""
    sp, dp = np.asarray(srcport, np.int64), np.asarray(dstport, np.int64)
    argus = np.where(sp >= 256, sp >> 8, sp)
    return np.where(sp == 0, dp >> 8, argus)


def client_is_source(records: pd.DataFrame) -> np.ndarray:
    """True where the record's source address is the connection's client.

    Ported protocols: the side with the higher port class (ephemeral > registered > well-known), ties to
    the higher port. Port-less protocols: their "ports" are not endpoints (for ICMP they hold type and
    code), so the client is the source, except for ICMP replies and errors, which travel to the host that
    sent the request: an ICMP sweep and its answers all belong to the sweeping host."""
    sp, dp = records["srcport"].to_numpy(np.int64), records["dstport"].to_numpy(np.int64)
    proto = proto_to_number(records["proto"])
    cs, cd = port_class(sp), port_class(dp)
    ported = (cs > cd) | ((cs == cd) & (sp >= dp))
    to_client = (proto == ICMP) & np.isin(icmp_type(sp, dp), ICMP_TO_CLIENT_TYPES)
    return np.where(np.isin(proto, PORTED_PROTOCOLS), ported, ~to_client)


# ---------------------------------------------------------------------------------------------
# value conversions
# ---------------------------------------------------------------------------------------------
def ip_to_uint32(x: Any, column: str = "ip") -> np.ndarray:
    """IPv4 addresses (uint32 numbers or dotted quads) as int64 values in [0, 2³²)."""
    s = pd.Series(np.asarray(x)) if not isinstance(x, pd.Series) else x.reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(s):
        v = s.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(v) | (v < 0) | (v > 0xFFFFFFFF) | (np.floor(v) != v)
        out = np.where(bad, 0, v).astype(np.int64)
    else:
        parts = s.astype(str).str.strip().str.split(".", expand=True)
        if parts.shape[1] != 4:
            # numbers stored as text, e.g. "3232235777"
            num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(num) | (num < 0) | (num > 0xFFFFFFFF)
            out = np.where(bad, 0, num).astype(np.int64)
        else:
            octs = parts.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
            bad = np.any(~np.isfinite(octs) | (octs < 0) | (octs > 255), axis=1)
            octs = np.where(np.isfinite(octs), octs, 0).astype(np.int64)
            out = (octs[:, 0] << 24) | (octs[:, 1] << 16) | (octs[:, 2] << 8) | octs[:, 3]
    if np.any(bad):  # rule 7: name the column and the problem, never a value, a row or a count
        raise ValueError(f"column {column!r}: some values are not IPv4 addresses; use dotted quads like "
                         "10.0.0.1 or their uint32 values (IPv6 is not supported)")
    return out


def uint32_to_ip(x: np.ndarray) -> np.ndarray:
    """Dotted-quad strings for uint32 addresses."""
    v = np.asarray(x, dtype=np.int64)
    o = [(v >> s) & 255 for s in (24, 16, 8, 0)]
    return np.array([f"{a}.{b}.{c}.{d}" for a, b, c, d in zip(*(q.tolist() for q in o))], dtype=object)


def proto_to_number(x: Any, column: str = "proto") -> np.ndarray:
    """IANA protocol numbers from names (TCP, UDP, ...) or numbers."""
    arr = np.asarray(x)
    if arr.dtype.kind in "iu":
        out = arr.astype(np.int64)
    else:
        codes, uniques = pd.factorize(pd.Series(arr.astype(object)))
        table = np.empty(len(uniques), dtype=np.int64)
        for u, v in enumerate(uniques):  # resolve each distinct value once
            t = str(v).strip()
            try:
                table[u] = int(float(t))
            except ValueError:
                table[u] = PROTO_NUMBERS.get(t, PROTO_NUMBERS.get(t.upper(), -1))
        out = np.where(codes >= 0, table[np.maximum(codes, 0)], -1)
    bad = (out < 0) | (out > 255)
    if np.any(bad):
        raise ValueError(f"column {column!r}: some values are not IP protocols; use IANA names "
                         f"({', '.join(PROTO_NUMBERS)}) or numbers 0-255")
    return out


def number_to_proto(x: np.ndarray) -> np.ndarray:
    """Protocol names as NetFlow exports write them (numbers where IANA has no short name here)."""
    table = np.array([PROTO_NAMES.get(p, str(p)) for p in range(256)], dtype=object)
    return table[np.clip(np.asarray(x, dtype=np.int64), 0, 255)]


def flags_to_mask(x: Any, column: str = "flags") -> np.ndarray:
    """TCP flag bitmask from nfdump strings ('.AP.SF') or integers."""
    arr = np.asarray(x)
    if arr.dtype.kind in "iu":
        out = arr.astype(np.int64)
        if np.any((out < 0) | (out > 255)):
            raise ValueError(f"column {column!r}: some TCP flag masks are outside 0-255; use 0-255 bitmasks")
        return out
    codes, uniques = pd.factorize(pd.Series(arr.astype(object)).astype(str).str.strip())
    table = np.zeros(len(uniques), dtype=np.int64)
    ok_u = np.ones(len(uniques), dtype=bool)
    for u, txt in enumerate(uniques):  # parse each distinct value once
        if txt.isdigit() and int(txt) <= 255:
            table[u] = int(txt)
        elif len(txt) == 6 and all(ch in (".", letter) for ch, letter in zip(txt, FLAG_LETTERS)):
            table[u] = sum(0x20 >> i for i, ch in enumerate(txt) if ch != ".")
        else:
            ok_u[u] = False
    ok = (codes >= 0) & ok_u[np.maximum(codes, 0)]
    if not ok.all():
        raise ValueError(f"column {column!r}: some values are not nfdump flag strings; use 6 characters, '.' or "
                         "the letter of 'UAPRSF' at each position (e.g. .AP.SF), or a 0-255 bitmask")
    return table[codes]


def mask_to_flags(mask: np.ndarray) -> np.ndarray:
    """nfdump flag strings for bitmasks (lower 6 bits)."""
    table = np.array(["".join(letter if m & (0x20 >> i) else "." for i, letter in enumerate(FLAG_LETTERS))
                      for m in range(64)], dtype=object)
    return table[np.asarray(mask, dtype=np.int64) & 0x3F]


# ---------------------------------------------------------------------------------------------
# field encoders: (codes, kind)
# ---------------------------------------------------------------------------------------------
def encode_ipv4(x: Any) -> tuple[np.ndarray, int]:
    """uint32 address; distance 32 − common prefix length."""
    return ip_to_uint32(x), IPV4


def encode_network(x: Any, prefix_len: int = 8) -> tuple[np.ndarray, int]:
    """The address's network (/prefix_len) as a category. Added to the IPV4 column it weights the top of
    the prefix hierarchy more than host bits: leaving a network costs a jump, moving inside it a bit."""
    return ip_to_uint32(x) >> (32 - prefix_len), CAT


def encode_port(x: Any, column: str = "port") -> tuple[np.ndarray, np.ndarray]:
    """Port numbers as two CAT columns, (n, 2) codes [port, service class] and their kinds.

    Weighted w and ``PORT_CLASS_WEIGHT``·w they give the port distance traffic needs (0 equal, w same
    service class, 3w another class) from the engine's generic CAT kind alone."""
    v = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(v) | (v < 0) | (v > 65535) | (np.floor(v) != v)
    if np.any(bad):
        raise ValueError(f"column {column!r}: some values are not ports; use integers in 0..65535")
    port = v.astype(np.int64)
    return np.stack([port, port_class(port)], axis=1), np.array([CAT, CAT], dtype=np.int8)


def encode_port_bucket(x: Any, bits: int = 12) -> tuple[np.ndarray, int]:
    """Coarse port range (port >> bits): lets votes tell OS ephemeral ranges apart, which the port and
    class columns (equal / same class / other class) cannot."""
    return np.asarray(x, dtype=np.int64) >> bits, ABS


def encode_protocol(x: Any) -> tuple[np.ndarray, int]:
    return proto_to_number(x), CAT


def encode_tcp_flags(x: Any) -> tuple[np.ndarray, int]:
    return flags_to_mask(x), CAT


def encode_category(x: Any) -> tuple[np.ndarray, int]:
    """Small-integer nominal fields (ToS byte, ICMP type)."""
    return np.asarray(x, dtype=np.int64), CAT


def encode_log_size(x: Any, lo: float = 1.0, hi: float = 2.0**40, q: int = 2) -> tuple[np.ndarray, int]:
    """Counts (packets, bytes, lengths) on a log₂ grid with ``q`` steps per doubling, clipped to [lo, hi]."""
    v = np.clip(np.asarray(x, dtype=np.float64), lo, hi)
    return np.rint(q * np.log2(v / lo)).astype(np.int64), ABS


def encode_duration(x: Any, unit: float = 1e-3, hi: float = 86400.0, q: int = 1) -> tuple[np.ndarray, int]:
    """Durations (seconds) on log₂(1 + x/unit) with ``q`` steps per doubling: 0 stays 0, ``unit`` is the
    resolution below which durations count as equal (NetFlow exports milliseconds)."""
    v = np.clip(np.asarray(x, dtype=np.float64), 0.0, hi)
    return np.rint(q * np.log2(1.0 + v / unit)).astype(np.int64), ABS


def encode_timestamp(x: Any, t0: float, t1: float, bins: int = 64) -> tuple[np.ndarray, int]:
    """Times (same unit as t0, t1) on ``bins`` equal cells of the public window [t0, t1]; outside clips."""
    if not t1 > t0:
        raise ValueError(f"time window end {t1} must be after its start {t0}")
    v = np.asarray(x, dtype=np.float64)
    return np.clip(np.floor((v - t0) / (t1 - t0) * bins), 0, bins - 1).astype(np.int64), ABS


def encode_linear(x: Any, step: float, lo: float = 0.0, hi: float = np.inf) -> tuple[np.ndarray, int]:
    """Bounded numbers (TTL) on a linear grid of public step."""
    v = np.clip(np.asarray(x, dtype=np.float64), lo, hi)
    return np.floor((v - lo) / step).astype(np.int64), ABS


# ---------------------------------------------------------------------------------------------
# record encoders
# ---------------------------------------------------------------------------------------------
FLOW_WEIGHTS: dict[str, int] = {
    "srcip": 2, "dstip": 2, "srcport": 6, "dstport": 6, "proto": 24, "ts": 1, "td": 2, "pkt": 3,
    "byt": 2, "flags": 10, "tos": 4, "srcport_range": 1, "dstport_range": 1, "srcnet": 8, "dstnet": 8,
}
PACKET_WEIGHTS: dict[str, int] = {
    "srcip": 2, "dstip": 2, "srcport": 6, "dstport": 6, "proto": 24, "ts": 1, "length": 3, "ttl": 2,
    "flags": 10, "tos": 4,
}


def _window_seconds(time_window: tuple[float, float]) -> tuple[float, float]:
    t0, t1 = (float(t) for t in time_window)
    if not t1 > t0:
        raise ValueError(f"--time-window end {t1} must be after its start {t0}")
    return t0, t1


PORT_FIELDS = ("srcport", "dstport")  # fields encoded as two columns: the port, then its service class


@dataclass(frozen=True)
class _RecordEncoder:
    """What the flow and packet encoders share: their settings, the metric from per-field kinds and
    weights, and the head of every record (addresses, ports, protocol, start time on the public window).

    ``time_window`` is (start, end) in epoch seconds and must be public (declared, not read from the
    private file); ``ts_bins`` cells cover it. ``weights`` maps field -> integer weight; a field with
    weight 0 is ignored, and a field missing from ``weights`` keeps its default.

    A *field* is what users weight (``weights`` keys); a *column* is what the metric sees. Every port
    field brings two columns (``encode_port``): the port with the field's weight and its service
    class with ``PORT_CLASS_WEIGHT`` times it. Subclasses set the class constants below, a
    ``ts_bins`` default and their own knobs, and name their remaining columns in ``_rest``."""

    record: ClassVar[str]  # names the records in errors: "flow", "packet"
    fields: ClassVar[tuple[str, ...]]  # head fields first: srcip, dstip, srcport, dstport, proto, ts
    required: ClassVar[tuple[str, ...]]  # columns a record table must hold
    kinds: ClassVar[Mapping[str, int]]  # distance kind of every field but the ports
    default_weights: ClassVar[Mapping[str, int]]
    time_window: tuple[float, float]
    ts_bins: int
    weights: Mapping[str, int] = field(default_factory=dict, kw_only=True)

    @property
    def columns(self) -> tuple[str, ...]:
        """The code columns in order: the fields, each port followed by its ``<port>_class``."""
        return tuple(c for f in self.fields for c in ((f, f"{f}_class") if f in PORT_FIELDS else (f,)))

    @property
    def metric(self) -> MixedMetric:
        """One (kind, weight) per column; unknown weight keys are refused so a typo cannot silently
        leave a field at its default."""
        unknown = set(self.weights) - set(self.fields)
        if unknown:
            raise ValueError(f"unknown {self.record} fields in weights: {sorted(unknown)}; "
                             f"known: {list(self.fields)}")
        w = {**self.default_weights, **{k: int(v) for k, v in self.weights.items()}}
        kinds: list[int] = []
        weights: list[int] = []
        for f in self.fields:
            if f in PORT_FIELDS:
                kinds += [CAT, CAT]
                weights += [w[f], PORT_CLASS_WEIGHT * w[f]]
            else:
                kinds.append(self.kinds[f])
                weights.append(w[f])
        return MixedMetric(np.array(kinds, dtype=np.int8), np.array(weights, dtype=np.int64))

    def encode(self, samples: pd.DataFrame) -> np.ndarray:
        """int64 codes (n, len(columns)); every bound used is public (the declared time window)."""
        missing = [c for c in self.required if c not in samples.columns]
        if missing:
            raise ValueError(f"{self.record} records lack columns {missing}; expected {list(self.fields)}")
        t0, t1 = _window_seconds(self.time_window)
        cols = [
            encode_ipv4(samples["srcip"])[0], encode_ipv4(samples["dstip"])[0],
            encode_port(samples["srcport"], "srcport")[0], encode_port(samples["dstport"], "dstport")[0],
            encode_protocol(samples["proto"])[0],
            encode_timestamp(samples["ts"].to_numpy(np.float64) / 1e6, t0, t1, self.ts_bins)[0],
            *self._rest(samples),
        ]
        return np.column_stack(cols).astype(np.int64)

    def _rest(self, samples: pd.DataFrame) -> list[np.ndarray]:  # pragma: no cover - abstract
        """The columns of the fields after the head, in ``fields`` order."""
        raise NotImplementedError


@dataclass(frozen=True)
class FlowEncoder(_RecordEncoder):
    """NetFlow records (UGR'16/NetShare columns; ``ts`` in µs, ``td`` in s) -> MixedMetric codes;
    sizes on a log grid of ``size_q`` steps per doubling, durations of ``duration_q``."""

    record = "flow"
    fields = ("srcip", "dstip", "srcport", "dstport", "proto", "ts", "td", "pkt", "byt", "flags", "tos",
              "srcport_range", "dstport_range", "srcnet", "dstnet")
    required = fields[:9]  # flags and tos are optional (zeros), the rest derive from these
    kinds = {"srcip": IPV4, "dstip": IPV4, "proto": CAT, "ts": ABS, "td": ABS, "pkt": ABS, "byt": ABS,
             "flags": CAT, "tos": CAT, "srcport_range": ABS, "dstport_range": ABS, "srcnet": CAT, "dstnet": CAT}
    default_weights = FLOW_WEIGHTS
    # settings (time_window and the keyword-only weights come from _RecordEncoder)
    ts_bins: int = 32
    size_q: int = 2
    duration_q: int = 1

    def _rest(self, samples: pd.DataFrame) -> list[np.ndarray]:
        n = len(samples)
        return [
            encode_duration(samples["td"], q=self.duration_q)[0],
            encode_log_size(samples["pkt"], q=self.size_q)[0],
            encode_log_size(samples["byt"], lo=float(MIN_IP_HEADER), q=self.size_q)[0],
            encode_tcp_flags(samples["flags"])[0] if "flags" in samples else np.zeros(n, np.int64),
            encode_category(samples["tos"])[0] if "tos" in samples else np.zeros(n, np.int64),
            encode_port_bucket(samples["srcport"])[0], encode_port_bucket(samples["dstport"])[0],
            encode_network(samples["srcip"])[0], encode_network(samples["dstip"])[0],
        ]


@dataclass(frozen=True)
class PacketEncoder(_RecordEncoder):
    """Packet-header records (``ts`` in µs, ``length`` = IP total length) -> MixedMetric codes;
    lengths on a log grid of ``length_q`` steps per doubling, TTL in cells of ``ttl_step`` hops."""

    record = "packet"
    fields = ("srcip", "dstip", "srcport", "dstport", "proto", "ts", "length", "ttl", "flags", "tos")
    required = fields
    kinds = {"srcip": IPV4, "dstip": IPV4, "proto": CAT, "ts": ABS, "length": ABS, "ttl": ABS, "flags": CAT,
             "tos": CAT}
    default_weights = PACKET_WEIGHTS
    # settings (time_window and the keyword-only weights come from _RecordEncoder)
    ts_bins: int = 64
    length_q: int = 4
    ttl_step: float = 4.0

    def _rest(self, samples: pd.DataFrame) -> list[np.ndarray]:
        return [
            encode_log_size(samples["length"], lo=float(MIN_IP_HEADER), hi=65535.0, q=self.length_q)[0],
            encode_linear(samples["ttl"], self.ttl_step, 0.0, 255.0)[0],
            encode_tcp_flags(samples["flags"])[0],
            encode_category(samples["tos"])[0],
        ]
