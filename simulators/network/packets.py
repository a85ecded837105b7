"""Packet level: expanding flows into packet-header records, and a packet-record backend.

``expand_flows`` turns NetFlow records into the packets that would have produced them: the packet
count, total bytes and OR of TCP flags of each flow are preserved exactly (SYN on the first packet,
FIN/RST on the last, PSH on packets that carry payload, payload filled in MSS-sized segments in random
order), times spread over the flow's duration with exponential gaps, one TTL and ToS per flow and an
incrementing IP id. ``PacketSimulator`` is a Backend whose samples *are* packet-header records, so PE
can run on captures directly (with ``--unit flow`` all packets of a 5-tuple vote together).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.population import Population
from simulators.network import priors as P
from simulators.network.encoder import (
    ACK,
    FIN,
    ICMP,
    PSH,
    RST,
    SYN,
    TCP,
    URG,
    flags_to_mask,
    port_class,
    proto_to_number,
)
from simulators.network.flows import FlowSimulator, header_bytes

PACKET_COLUMNS = ("ts", "srcip", "dstip", "srcport", "dstport", "proto", "length", "ttl", "flags", "ipid", "tos",
                  "flow")
# per-packet TCP flag values with prior shares (ACK-only and data packets dominate)
PACKET_FLAGS = np.array([ACK, ACK | PSH, SYN, SYN | ACK, ACK | FIN, ACK | PSH | FIN, RST, RST | ACK], dtype=np.int64)
PACKET_FLAG_SHARE = np.array([45, 30, 6, 5, 5, 3, 3, 3], dtype=np.float64)


def _rank_within(group: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Rank of each element by ``key`` inside its group (groups are contiguous runs)."""
    order = np.lexsort((key, group))
    start = np.r_[0, np.flatnonzero(np.diff(group[order])) + 1]
    counts = np.diff(np.r_[start, group.size])
    rank = np.empty(group.size, dtype=np.int64)
    rank[order] = np.arange(group.size) - np.repeat(start, counts)
    return rank


def expand_flows(flows: pd.DataFrame, rng: np.random.Generator,
                 max_packets_per_flow: int | None = None,
                 window: tuple[float, float] | None = None) -> pd.DataFrame:
    """Packets (PACKET_COLUMNS; ts in µs, proto as number, flags as mask) reproducing each flow.

    With the public ``window`` (epoch seconds), a flow that would outlast it is compressed to end at the
    window's end: every packet lies inside the window (a trace is a capture of that period)."""
    if window is not None and len(flows):
        start = np.clip(flows["ts"].to_numpy(np.float64), window[0] * 1e6, window[1] * 1e6)
        td = np.minimum(flows["td"].to_numpy(np.float64), np.maximum(window[1] - start / 1e6, 0.0))
        flows = flows.assign(ts=start, td=np.floor(td * 1e6) / 1e6)
    n = len(flows)
    if n == 0:
        return pd.DataFrame({c: np.zeros(0, np.int64) for c in PACKET_COLUMNS})
    proto = proto_to_number(flows["proto"])
    pkt = flows["pkt"].to_numpy(np.int64)
    if np.any(pkt < 1):
        raise ValueError("flows with pkt < 1 cannot be expanded into packets")
    cap = pkt if max_packets_per_flow is None else np.minimum(pkt, max_packets_per_flow)
    scale = cap / pkt
    hdr = header_bytes(proto)
    payload = np.maximum(np.rint((flows["byt"].to_numpy(np.float64) - pkt * hdr) * scale), 0).astype(np.int64)
    fmask = flags_to_mask(flows["flags"]) if "flags" in flows else np.where(proto == TCP, ACK, 0)
    fmask = np.where(proto == TCP, fmask, 0)
    fid = np.repeat(np.arange(n), cap)
    total = int(cap.sum())
    first = np.repeat(np.cumsum(cap) - cap, cap)
    pos = np.arange(total) - first
    p = cap[fid]
    last = pos == p - 1
    # times: exponential gaps normalised to the flow's duration
    gaps = np.where(pos == 0, 0.0, rng.exponential(1.0, size=total))
    cs = np.cumsum(gaps)
    cs_flow = cs - cs[first]
    tot = np.maximum(cs_flow[np.cumsum(cap) - 1], 1e-12)[fid]
    frac = np.where(p > 1, cs_flow / tot, 0.0)
    ts = flows["ts"].to_numpy(np.float64)[fid] + np.round(frac * flows["td"].to_numpy(np.float64)[fid] * 1e6)
    # payload: MSS-sized segments on randomly ordered data slots (not the SYN when there is room)
    mss = P.MTU - hdr
    syn_slot = (fmask & SYN).astype(bool)[fid] & (pos == 0) & (p > 1)
    need = np.ceil(payload / mss).astype(np.int64)
    room = cap - ((fmask & SYN).astype(bool) & (cap > 1))
    use_syn = (need > room)[fid]
    eligible = ~syn_slot | use_syn
    key = np.where(eligible, rng.uniform(size=total), 2.0)
    k = _rank_within(fid, key)
    pl = np.clip(payload[fid] - k * mss[fid], 0, mss[fid])
    pl = np.where(eligible, pl, 0)
    length = hdr[fid] + pl
    # flags: SYN first, FIN/RST last, PSH with payload, ACK elsewhere when the flow has it
    fm = fmask[fid]
    client_side = port_class(flows["srcport"].to_numpy(np.int64)) > port_class(flows["dstport"].to_numpy(np.int64))
    pf = fm & ACK
    pf = np.where((fm & PSH).astype(bool) & (pl > 0), pf | PSH, pf)
    first_syn = (fm & SYN).astype(bool) & (pos == 0)
    pf = np.where(first_syn, SYN | np.where(client_side[fid] & (p > 1), 0, fm & ACK), pf)
    pf = np.where((fm & RST).astype(bool) & last, pf | RST, pf)
    fin_at = np.where((fm & RST).astype(bool) & (p >= 3), p - 2, p - 1)
    pf = np.where((fm & FIN).astype(bool) & (pos == fin_at), pf | FIN, pf)
    pf = np.where((fm & URG).astype(bool) & (pos == p // 2), pf | URG, pf)
    single = p == 1
    pf = np.where(single, fm, pf)
    # a packet left without flags repeats the flow's first flag (e.g. retransmitted SYNs)
    lowest = fm & -fm
    pf = np.where((proto[fid] == TCP) & (pf == 0), lowest, pf)
    # a flow's flags not yet on any packet (possible when positions collide) go onto its last packet
    got = np.zeros(n, dtype=np.int64)
    np.bitwise_or.at(got, fid, pf)
    missing = fmask & ~got
    pf = np.where(last, pf | missing[fid], pf)
    ttl = (flows["ttl"].to_numpy(np.int64) if "ttl" in flows
           else rng.choice(P.INITIAL_TTLS, size=n, p=P.INITIAL_TTL_WEIGHTS) - rng.integers(0, 30, size=n))
    tos = flows["tos"].to_numpy(np.int64) if "tos" in flows else np.zeros(n, np.int64)
    ipid = (rng.integers(0, 65536, size=n)[fid] + pos) & 0xFFFF
    out = pd.DataFrame({
        "ts": ts.astype(np.int64), "srcip": flows["srcip"].to_numpy(np.int64)[fid],
        "dstip": flows["dstip"].to_numpy(np.int64)[fid], "srcport": flows["srcport"].to_numpy(np.int64)[fid],
        "dstport": flows["dstport"].to_numpy(np.int64)[fid], "proto": proto[fid], "length": length.astype(np.int64),
        "ttl": np.clip(ttl, 1, 255)[fid], "flags": pf.astype(np.int64), "ipid": ipid.astype(np.int64),
        "tos": tos[fid], "flow": fid.astype(np.int64),
    })
    return out.sort_values(["ts", "flow"], kind="stable").reset_index(drop=True)


def packet_validity(pk: pd.DataFrame) -> np.ndarray:
    """Per-packet validity: ports in range, IP length between the protocol's header and the MTU,
    TTL 1..255, TCP flags only on TCP and never empty there."""
    proto = proto_to_number(pk["proto"])
    ln = pk["length"].to_numpy(np.int64)
    fl = flags_to_mask(pk["flags"])
    sp, dp = pk["srcport"].to_numpy(np.int64), pk["dstport"].to_numpy(np.int64)
    ttl = pk["ttl"].to_numpy(np.int64)
    ok = (sp >= 0) & (sp <= 65535) & (dp >= 0) & (dp <= 65535)
    ok &= (ln >= header_bytes(proto)) & (ln <= P.MTU) & (ttl >= 1) & (ttl <= 255)
    ok &= np.where(proto == TCP, (fl > 0) & (fl <= 0x3F), fl == 0)
    return ok


def repair_packets(pk: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    proto = pk["proto"].to_numpy(np.int64)
    hdr = header_bytes(proto)
    pk["length"] = np.clip(pk["length"].to_numpy(np.int64), hdr, P.MTU)
    fl = pk["flags"].to_numpy(np.int64) & 0x3F
    tcp = proto == TCP
    redraw = tcp & (fl == 0)
    fl[redraw] = rng.choice(PACKET_FLAGS, size=int(redraw.sum()), p=PACKET_FLAG_SHARE / PACKET_FLAG_SHARE.sum())
    pk["flags"] = np.where(tcp, fl, 0)
    pk["srcport"] = np.where(proto == ICMP, 0, np.clip(pk["srcport"].to_numpy(np.int64), 0, 65535))
    pk["dstport"] = np.clip(pk["dstport"].to_numpy(np.int64), 0, 65535)
    pk["ttl"] = np.clip(pk["ttl"].to_numpy(np.int64), 1, 255)
    pk["srcip"] = pk["srcip"].to_numpy(np.int64) & 0xFFFFFFFF
    pk["dstip"] = pk["dstip"].to_numpy(np.int64) & 0xFFFFFFFF
    pk["ipid"] = pk["ipid"].to_numpy(np.int64) & 0xFFFF
    return pk


@dataclass
class PacketSimulator:
    """Backend whose samples are packet-header records (PACKET_COLUMNS minus ``flow``).

    ``random`` simulates flows with ``FlowSimulator`` and samples packets of their expansion; ``vary``
    moves single headers locally (time shift, host bits before prefix bits, ports within their class,
    length on a log scale, TTL by a few hops, a new TCP flag value) or copies a field from another
    packet of the population (crossover), then repairs so every header stays valid."""

    time_window: tuple[float, float]
    crossover: float = 0.3
    name: str = "packet-simulator"
    flows: FlowSimulator | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.flows is None:
            self.flows = FlowSimulator(self.time_window, ts_resolution_s=1e-6)
        self.time_window = self.flows.time_window

    def random(self, n: int, *, label: Any = None, rng: np.random.Generator) -> Population:
        flows = self.flows.random(max(1, n // 3), rng=rng).samples
        pk = expand_flows(flows, rng, max_packets_per_flow=64, window=self.time_window)
        idx = rng.choice(len(pk), size=n, replace=len(pk) < n)
        pk = pk.iloc[np.sort(idx)].drop(columns="flow").reset_index(drop=True)
        pk = repair_packets(pk, rng)
        return Population.fresh(pk, self.name, genome=pk.copy(), label=label)

    def vary(self, pop: Population, degree: float, rng: np.random.Generator) -> Population:
        if not 0.0 <= degree <= 1.0:
            raise ValueError(f"variation degree must be in [0, 1], got {degree}")
        pk = pop.samples.reset_index(drop=True).copy()
        n, d = len(pk), float(degree)
        groups = ("ts", "srcip", "dstip", "srcport", "dstport", "length", "ttl", "flags", "tos")
        touch = rng.uniform(size=(n, len(groups))) < 0.05 + 0.45 * d
        touch[np.arange(n), rng.integers(0, len(groups), size=n)] = True
        m = {g: touch[:, i] for i, g in enumerate(groups)}
        other = rng.integers(0, max(n, 1), size=n)
        cross = rng.uniform(size=n) < self.crossover
        t0, t1 = self.time_window
        ts = pk["ts"].to_numpy(np.float64, copy=True)
        sel = m["ts"]
        span = (t1 - t0) * 1e6
        shifted = ts[sel] + rng.normal(0, 0.25 * d * span + 1.0, size=int(sel.sum()))
        rel = np.mod(shifted - t0 * 1e6, 2 * span)
        shifted = t0 * 1e6 + np.where(rel > span, 2 * span - rel, rel)
        ts[sel] = np.where(cross[sel], ts[other[sel]], shifted)
        pk["ts"] = np.rint(ts).astype(np.int64)
        for c in ("srcip", "dstip"):
            ip = pk[c].to_numpy(np.int64)
            sel = np.flatnonzero(m[c])
            h = rng.integers(1, max(1, int(round(32 * d))) + 1, size=sel.size)
            low = (np.int64(1) << h) - 1
            moved = (ip[sel] & ~low) | (rng.integers(0, 1 << 32, size=sel.size, dtype=np.int64) & low)
            new = ip.copy()
            new[sel] = np.where(cross[sel], ip[other[sel]], moved)
            pk[c] = new
        for c in ("srcport", "dstport"):
            pt = pk[c].to_numpy(np.int64)
            sel = m[c] & (port_class(pt) > 0)  # well-known ports name the service: keep them
            cls = port_class(pt[sel])
            lo = np.where(cls == 1, 1024, 49152)
            hi = np.where(cls == 1, 49151, 65535)
            new = pt.copy()
            new[sel] = np.where(cross[sel] & (port_class(pt[other[sel]]) == cls), pt[other[sel]],
                                rng.integers(lo, hi + 1))
            pk[c] = new
        ln = pk["length"].to_numpy(np.float64, copy=True)
        sel = m["length"]
        ln[sel] = np.where(cross[sel], ln[other[sel]], ln[sel] * np.exp(rng.normal(0, 0.1 + d, size=int(sel.sum()))))
        pk["length"] = np.rint(ln).astype(np.int64)
        ttl = pk["ttl"].to_numpy(np.int64, copy=True)
        sel = m["ttl"]
        ttl[sel] = ttl[sel] + np.rint(rng.normal(0, 1 + 10 * d, size=int(sel.sum()))).astype(np.int64)
        pk["ttl"] = ttl
        fl = pk["flags"].to_numpy(np.int64, copy=True)
        sel = m["flags"]
        fl[sel] = np.where(cross[sel], fl[other[sel]],
                           rng.choice(PACKET_FLAGS, size=int(sel.sum()), p=PACKET_FLAG_SHARE / PACKET_FLAG_SHARE.sum()))
        pk["flags"] = fl
        tos = pk["tos"].to_numpy(np.int64, copy=True)
        sel = m["tos"]
        tos[sel] = np.where(cross[sel], tos[other[sel]],
                            rng.choice(P.TOS_VALUES, size=int(sel.sum()), p=P.TOS_WEIGHTS / P.TOS_WEIGHTS.sum()))
        pk["tos"] = tos
        pk["ipid"] = rng.integers(0, 65536, size=n)
        # fresh draws at high degree
        fresh = np.flatnonzero(rng.uniform(size=n) < d**3)
        if fresh.size:
            new = self.random(fresh.size, rng=rng).samples
            pk.iloc[fresh] = new[list(pk.columns)].to_numpy()
        pk = repair_packets(pk.astype(np.int64), rng)
        return Population(pk, pop.source.copy(), pop.parent.copy(), pk.copy(), pop.label)
