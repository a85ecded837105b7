"""A parametric NetFlow simulator used as a Private Evolution backend.

The *genome* of a flow record is the handful of parameters the simulator draws — service, client and
server address and port, direction, start time, duration, packets, payload bytes, TCP flag pattern,
ToS, TTL — and the record itself (UGR'16/NetShare columns) is rendered from it deterministically.
``random`` draws genomes from broad public priors (``priors.py``); ``vary`` makes coherent local
moves on the genome whose size follows ``degree`` and re-renders, so every record stays valid:

* ports stay in their service class (a client's ephemeral port moves to another ephemeral port),
* addresses change their host bits before their prefix bits (the low ``h`` bits are re-drawn; ``h`` is
  self-adapted per lineage, and moves happen more often at higher degree),
* packets, payload and duration jitter on a log scale, start times shift inside the public window,
* crossover moves copy a field from another member of the (already selected) population — pure
  post-processing of released candidates, so it costs no privacy.

Validity (every record, always): ports in 0..65535, packets ≥ 1, bytes ≥ packets × header bytes of the
protocol (≥ 20 × packets), bytes ≤ packets × MTU, duration ≥ 0 (0 for single-packet flows), TCP-only
flags only on TCP (non-TCP flows carry at most the ACK mark UGR'16's nfdump export puts on them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.population import Population
from simulators.network import priors as P
from simulators.network.encoder import ACK, FIN, ICMP, PSH, SYN, TCP, mask_to_flags, number_to_proto, port_class

GENOME_COLUMNS = ("service", "proto", "srvport", "cport", "cip", "sip", "dir", "start", "td", "pkt", "payload",
                  "flags", "tos", "ttl", "cip_h", "sip_h")
_FLOAT_GENES = ("start", "td", "cip_h", "sip_h")
FLOW_COLUMNS = ("srcip", "dstip", "srcport", "dstport", "proto", "ts", "td", "pkt", "byt", "type", "flags", "tos")
PKT_MAX = 10_000_000
TD_MAX = 86_400.0


def header_bytes(proto: np.ndarray) -> np.ndarray:
    """Minimal header bytes per packet (IPv4 + transport) by protocol number."""
    proto = np.asarray(proto)
    out = np.full(proto.shape, P.DEFAULT_HEADER, dtype=np.int64)
    for num, h in P.HEADER_BYTES.items():
        out[proto == num] = h
    return out


def elite_mask(parent: np.ndarray) -> np.ndarray:
    """True for the first copy of each selected parent. Keeping that copy unchanged (elitism) stops the
    mutation load — every child being a little worse than its parent — from capping the population's
    fit, and only the further copies of a popular parent spend their slot on exploring its
    neighbourhood. Fresh samples (parent −1) are never elite."""
    parent = np.asarray(parent)
    first = np.zeros(parent.size, dtype=bool)
    valid = np.flatnonzero(parent >= 0)
    _, pos = np.unique(parent[valid], return_index=True)
    first[valid[pos]] = True
    return first


def _jitter_in_class(port: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Ports moved by about ``scale`` without leaving their service class (reflected at class edges)."""
    cls = port_class(port)
    lo = np.select([cls == 0, cls == 1], [1, 1024], 49152)
    hi = np.select([cls == 0, cls == 1], [1023, 49151], 65535)
    x = port + np.rint(rng.normal(0.0, scale, size=port.shape)).astype(np.int64)
    span = hi - lo
    rel = np.mod(x - lo, 2 * span)
    return lo + np.where(rel > span, 2 * span - rel, rel)


def _ports_in_class(cls: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lo = np.select([cls == 0, cls == 1], [1, 1024], 49152)
    hi = np.select([cls == 0, cls == 1], [1023, 49151], 65535)
    return rng.integers(lo, hi + 1)


def repair(g: pd.DataFrame) -> pd.DataFrame:
    """Project a genome onto the valid set (in place and returned). Idempotent."""
    proto = g["proto"].to_numpy(np.int64)
    tcp, icmp = proto == TCP, proto == ICMP
    pkt = np.clip(np.rint(g["pkt"].to_numpy(np.float64)), 1, PKT_MAX).astype(np.int64)
    hdr = header_bytes(proto)
    payload = np.clip(np.rint(g["payload"].to_numpy(np.float64)), 0, pkt * (P.MTU - hdr)).astype(np.int64)
    td = np.clip(g["td"].to_numpy(np.float64), 0.0, TD_MAX)
    td = np.where(pkt == 1, 0.0, np.round(td, 3))
    srv = np.clip(g["srvport"].to_numpy(np.int64), 0, 65535)
    cport = np.clip(g["cport"].to_numpy(np.int64), 1024, 65535)
    cport = np.where(icmp, 0, cport)
    fl = g["flags"].to_numpy(np.int64) & 0x3F
    fl = np.where(tcp & (fl == 0), ACK, fl)
    fl = np.where(tcp & (payload == 0), fl & ~PSH, fl)
    fl = np.where(tcp & (pkt == 1) & ((fl & (SYN | FIN)) == (SYN | FIN)), fl & ~FIN, fl)
    fl = np.where(tcp, fl, fl & ACK)
    g["pkt"], g["payload"], g["td"], g["srvport"], g["cport"], g["flags"] = pkt, payload, td, srv, cport, fl
    g["cip"] = g["cip"].to_numpy(np.int64) & 0xFFFFFFFF
    g["sip"] = g["sip"].to_numpy(np.int64) & 0xFFFFFFFF
    g["dir"] = g["dir"].to_numpy(np.int64) & 1
    g["tos"] = np.clip(g["tos"].to_numpy(np.int64), 0, 255)
    g["ttl"] = np.clip(g["ttl"].to_numpy(np.int64), 1, 255)
    for c in ("cip_h", "sip_h"):
        g[c] = np.clip(g[c].to_numpy(np.float64), 1.0, 32.0)
    return g


def render(g: pd.DataFrame, ts_resolution_s: float = 1e-6) -> pd.DataFrame:
    """NetFlow records (UGR'16 columns: ts µs, td s) from a valid genome."""
    d = g["dir"].to_numpy(np.int64) == 1
    proto = g["proto"].to_numpy(np.int64)
    icmp = proto == ICMP
    cip, sip = g["cip"].to_numpy(np.int64), g["sip"].to_numpy(np.int64)
    cport, srv = g["cport"].to_numpy(np.int64), g["srvport"].to_numpy(np.int64)
    res = max(float(ts_resolution_s), 1e-6)
    ts_s = np.floor(g["start"].to_numpy(np.float64) / res) * res
    pkt = g["pkt"].to_numpy(np.int64)
    return pd.DataFrame({
        "srcip": np.where(d, sip, cip),
        "dstip": np.where(d, cip, sip),
        "srcport": np.where(icmp, 0, np.where(d, srv, cport)),
        "dstport": np.where(icmp, srv, np.where(d, cport, srv)),
        "proto": number_to_proto(proto),
        "ts": np.round(ts_s * 1e6),
        "td": g["td"].to_numpy(np.float64),
        "pkt": pkt,
        "byt": pkt * header_bytes(proto) + g["payload"].to_numpy(np.int64),
        "type": "background",
        "flags": mask_to_flags(g["flags"].to_numpy(np.int64)),
        "tos": g["tos"].to_numpy(np.int64),
    })


def genome_from_records(records: pd.DataFrame) -> pd.DataFrame:
    """A simulator genome that renders (nearly) back to ``records``: the client side is the one the
    privacy unit uses (``client_is_source``), the service is the table entry of the (protocol, server
    port) or its protocol's generic one; hidden genes get public defaults (TTL 64, address step 4).
    It lets a population mix records of other generators with the simulator's own (one genome format)."""
    from simulators.network.encoder import UDP, client_is_source, flags_to_mask, ip_to_uint32, proto_to_number

    n = len(records)
    proto = proto_to_number(records["proto"])
    src, dst = ip_to_uint32(records["srcip"], "srcip"), ip_to_uint32(records["dstip"], "dstip")
    sp, dp = records["srcport"].to_numpy(np.int64), records["dstport"].to_numpy(np.int64)
    c_src = client_is_source(records)
    icmp = proto == ICMP
    srv = np.where(icmp, np.where(sp == 0, dp, sp), np.where(c_src, dp, sp))
    names = [s.name for s in P.SERVICES]
    svc = np.select([proto == TCP, proto == UDP], [names.index("tcp-registered"), names.index("udp-registered")],
                    names.index("icmp-echo"))
    for i, s in enumerate(P.SERVICES):  # a named service where (protocol, server port) matches one
        if s.port >= 0:
            svc = np.where((proto == s.proto) & (srv == s.port), i, svc)
    pkt = records["pkt"].to_numpy(np.int64)
    g = pd.DataFrame({
        "service": svc, "proto": proto, "srvport": srv, "cport": np.where(c_src, sp, dp),
        "cip": np.where(c_src, src, dst), "sip": np.where(c_src, dst, src), "dir": (~c_src).astype(np.int64),
        "start": records["ts"].to_numpy(np.float64) / 1e6, "td": records["td"].to_numpy(np.float64),
        "pkt": pkt, "payload": records["byt"].to_numpy(np.int64) - pkt * header_bytes(proto),
        "flags": flags_to_mask(records["flags"]) if "flags" in records else np.zeros(n, np.int64),
        "tos": records["tos"].to_numpy(np.int64) if "tos" in records else np.zeros(n, np.int64),
        "ttl": np.full(n, 64, np.int64), "cip_h": np.full(n, 4.0), "sip_h": np.full(n, 4.0),
    })
    return repair(g)


def flow_validity(df: pd.DataFrame) -> np.ndarray:
    """Per-record validity of rendered flows (the invariants ``repair`` guarantees)."""
    from simulators.network.encoder import flags_to_mask, proto_to_number

    proto = proto_to_number(df["proto"])
    pkt, byt, td = (df[c].to_numpy(np.float64) for c in ("pkt", "byt", "td"))
    sp, dp = df["srcport"].to_numpy(np.float64), df["dstport"].to_numpy(np.float64)
    fl = flags_to_mask(df["flags"]) if "flags" in df else np.zeros(len(df), np.int64)
    ok = (sp >= 0) & (sp <= 65535) & (dp >= 0) & (dp <= 65535) & (sp == np.floor(sp)) & (dp == np.floor(dp))
    ok &= (pkt >= 1) & (pkt == np.floor(pkt)) & (byt >= pkt * header_bytes(proto)) & (byt <= pkt * P.MTU)
    ok &= (td >= 0) & ((pkt > 1) | (td == 0))
    ok &= (proto == TCP) | ((fl & ~ACK) == 0)
    return ok


@dataclass
class FlowSimulator:
    """Backend: NetFlow records from a parametric traffic model.

    ``time_window`` (epoch seconds) and ``ts_resolution_s`` are public. ``services``, ``addresses`` and
    ``times`` default to the broad public priors; ``dp_priors.fit_priors`` can replace them with tables
    fitted from charged DP releases. ``crossover`` is the chance that a varied field is copied from
    another member of the population instead of being perturbed; ``plan_jump`` the chance that an
    address move draws a new address from the address plan instead of re-drawing low bits."""

    time_window: tuple[float, float]
    ts_resolution_s: float = 1e-6
    crossover: float = 0.3
    plan_jump: float = 0.1
    address_move_weight: float = 3.0
    n_subnets: int = 64
    services: P.ServiceTable | None = None
    addresses: Any = None  # P.AddressPlan | P.FittedAddressPlan; drawn on first use when None
    times: P.TimePrior | None = None
    elitism: bool = True
    name: str = "flow-simulator"

    def __post_init__(self) -> None:
        t0, t1 = (float(t) for t in self.time_window)
        if not t1 > t0:
            raise ValueError(f"--time-window end {t1} must be after its start {t0}")
        self.time_window = (t0, t1)
        if self.services is None:
            self.services = P.ServiceTable.default()
        if self.times is None:
            self.times = P.TimePrior(self.time_window)
        self._svc_group, self._svc_members = self.services.groups()

    # -- random ----------------------------------------------------------------------------------
    def plan(self, rng: np.random.Generator) -> Any:
        if self.addresses is None:
            self.addresses = P.AddressPlan.draw(rng, self.n_subnets)
        return self.addresses

    def random_genome(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        S = self.services
        svc = rng.choice(len(S), size=n, p=S.p)
        proto = S.proto[svc]
        srv = S.draw_ports(svc, rng)
        plan = self.plan(rng)
        pkt_med = S.pkt[svc]
        pkt = np.exp(rng.normal(np.log(pkt_med), 1.0))
        tail = rng.uniform(size=n) < 0.05
        pkt[tail] *= rng.pareto(1.2, size=int(tail.sum())) + 1.0
        pkt = np.where(pkt_med <= 1, np.where(rng.uniform(size=n) < 0.85, 1, pkt), pkt)
        per_pkt = np.exp(rng.normal(np.log(S.payload[svc]), 0.8))
        # TCP flag pattern from the flow-state prior; non-TCP: nfdump's ACK mark or nothing
        pat = rng.choice(len(P.TCP_PATTERNS), size=n, p=P.TCP_PATTERN_SHARE / P.TCP_PATTERN_SHARE.sum())
        flags = np.where(proto == TCP, P.TCP_PATTERN_MASK[pat], np.where(rng.uniform(size=n) < 0.5, ACK, 0))
        no_data = (proto == TCP) & ((flags & PSH) == 0)
        per_pkt = np.where(no_data, rng.integers(0, 16, size=n), per_pkt)
        syn_only = (proto == TCP) & ((flags & ~SYN) == 0)
        pkt = np.where(syn_only, rng.integers(1, 4, size=n), pkt)
        td = np.exp(rng.normal(np.log(S.td[svc]), 1.5)) * np.sqrt(np.maximum(pkt, 1) / pkt_med)
        ttl_init = rng.choice(P.INITIAL_TTLS, size=n, p=P.INITIAL_TTL_WEIGHTS)
        g = pd.DataFrame({
            "service": svc.astype(np.int64), "proto": proto, "srvport": srv,
            "cport": P.ephemeral_ports(n, rng), "cip": plan.sample(n, rng), "sip": plan.sample(n, rng, 2.0),
            "dir": rng.integers(0, 2, size=n), "start": self.times.sample(n, rng),
            "td": td, "pkt": pkt, "payload": np.maximum(pkt, 1) * per_pkt, "flags": flags,
            "tos": rng.choice(P.TOS_VALUES, size=n, p=P.TOS_WEIGHTS / P.TOS_WEIGHTS.sum()),
            "ttl": ttl_init - rng.integers(0, 30, size=n),
            "cip_h": np.full(n, self._initial_h()), "sip_h": np.full(n, self._initial_h()),
        })
        return repair(g)

    def _initial_h(self) -> float:
        """Address step of fresh draws: wide for the public prior, narrow when the plan was fitted (its
        addresses are already the ones the data uses)."""
        return 32.0 if isinstance(self.addresses, P.AddressPlan) or self.addresses is None else 4.0

    def population(self, genome: pd.DataFrame, source: str | None = None) -> Population:
        return Population.fresh(render(genome, self.ts_resolution_s), source or self.name, genome=genome)

    def random(self, n: int, *, label: Any = None, rng: np.random.Generator) -> Population:
        return Population.fresh(render(g := self.random_genome(n, rng), self.ts_resolution_s), self.name,
                                genome=g, label=label)

    # -- vary ------------------------------------------------------------------------------------
    def vary_genome(self, g: pd.DataFrame, degree: float, rng: np.random.Generator) -> pd.DataFrame:
        if not 0.0 <= degree <= 1.0:
            raise ValueError(f"variation degree must be in [0, 1], got {degree}")
        g = g.reset_index(drop=True).copy()
        n = len(g)
        if n == 0:
            return g
        d = float(degree)
        S = self.services
        groups = ("service", "cport", "srvport", "cip", "sip", "dir", "start", "pkt", "payload", "td", "flags",
                  "tos", "ttl")
        # addresses carry most of the entropy of a flow (32 bits each), so they move more often
        gw = np.array([self.address_move_weight if x in ("cip", "sip") else 1.0 for x in groups])
        q = np.minimum(1.0, (0.05 + 0.45 * d) * gw)
        touch = rng.uniform(size=(n, len(groups))) < q[None, :]
        touch[np.arange(n), rng.choice(len(groups), size=n, p=gw / gw.sum())] = True  # every child moves
        m = {name: touch[:, i] for i, name in enumerate(groups)}
        other = rng.integers(0, n, size=n)  # crossover partner per row
        cross = rng.uniform(size=n) < self.crossover

        def col(c: str) -> np.ndarray:
            return g[c].to_numpy().copy()

        # service: same protocol and port class at low degree, anything at high degree
        svc, proto, srv = col("service").astype(np.int64), col("proto"), col("srvport")
        svc = np.clip(svc, 0, len(S) - 1)
        sel = np.flatnonzero(m["service"])
        if sel.size:
            new = rng.choice(len(S), size=sel.size, p=S.p)
            keep_class = rng.uniform(size=sel.size) >= d
            grp = self._svc_group[svc[sel]]
            for gid, members in enumerate(self._svc_members):
                rows = np.flatnonzero(keep_class & (grp == gid))
                if rows.size:
                    w = S.weight[members]
                    new[rows] = rng.choice(members, size=rows.size, p=w / w.sum())
            svc[sel] = new
            proto[sel] = S.proto[new]
            srv[sel] = S.draw_ports(new, rng)
        # services on random ports move their server port within its class
        sel = m["srvport"] & (S.port[svc] < 0)
        srv[sel] = np.where(cross[sel] & (S.port[svc[other[sel]]] < 0), srv[other[sel]],
                            _ports_in_class(port_class(srv[sel]), rng))
        g["service"], g["proto"], g["srvport"] = svc, proto, srv
        # client port: same class, or a partner's port
        cp = col("cport")
        sel = m["cport"]
        near = _jitter_in_class(cp[sel], 64 + d * 8192, rng)
        far = _ports_in_class(port_class(cp[sel]), rng)
        cp[sel] = np.where(cross[sel], cp[other[sel]], np.where(rng.uniform(size=int(sel.sum())) < d, far, near))
        g["cport"] = cp
        # Addresses. The number of low bits re-drawn is self-adapted (Schwefel's evolution-strategy
        # step-size adaptation): each address carries its own step h, children perturb it
        # log-normally, and steps that found closer addresses survive with them. Fresh addresses
        # start at h = 32; lineages that converge on a host shrink h to its last bits.
        plan = self.plan(rng)
        for c in ("cip", "sip"):
            ip, hs = col(c).astype(np.int64), col(c + "_h").astype(np.float64)
            sel = np.flatnonzero(m[c])
            h_new = np.clip(hs[sel] * np.exp(rng.normal(0.0, 0.5, size=sel.size)), 1.0, 32.0)
            hb = np.maximum(1, np.rint(h_new)).astype(np.int64)
            low = (np.int64(1) << hb) - 1
            moved = (ip[sel] & ~low) | (rng.integers(0, 1 << 32, size=sel.size, dtype=np.int64) & low)
            jump = rng.uniform(size=sel.size) < self.plan_jump * (0.5 + d)
            moved = np.where(jump, plan.sample(sel.size, rng), moved)
            h_new = np.where(jump, self._initial_h(), h_new)
            # crossover copies an address another member found, in either role
            pick = rng.uniform(size=sel.size) < 0.5
            ip_x = np.where(pick, col("cip").astype(np.int64)[other[sel]], col("sip").astype(np.int64)[other[sel]])
            h_x = np.where(pick, col("cip_h")[other[sel]], col("sip_h")[other[sel]])
            ip[sel] = np.where(cross[sel], ip_x, moved)
            hs[sel] = np.where(cross[sel], h_x, h_new)
            g[c], g[c + "_h"] = ip, hs
        g.loc[m["dir"], "dir"] = 1 - g.loc[m["dir"], "dir"]
        # start time: shift inside the window (reflect at the edges)
        t0, t1 = self.time_window
        st = col("start").astype(np.float64)
        sel = m["start"]
        span = t1 - t0
        shifted = st[sel] + rng.normal(0.0, 0.25 * d * span + self.ts_resolution_s, size=int(sel.sum()))
        rel = np.mod(shifted - t0, 2 * span)
        st[sel] = t0 + np.where(rel > span, 2 * span - rel, rel)
        g["start"] = np.clip(st, t0, t1)
        # sizes: log-scale jitter keeping bytes/packet, or a partner's (pkt, payload, td) block
        pkt, pay, td = col("pkt").astype(np.float64), col("payload").astype(np.float64), col("td").astype(float)
        per = pay / np.maximum(pkt, 1)
        sel = m["pkt"]
        f = np.exp(rng.normal(0.0, 0.3 + 1.5 * d, size=int(sel.sum())))
        jit_pkt = np.maximum(1.0, np.rint(pkt[sel] * f))
        use = cross[sel] & (proto[other[sel]] == proto[sel])
        pkt[sel] = np.where(use, pkt[other[sel]], jit_pkt)
        per[sel] = np.where(use, per[other[sel]], per[sel])
        td[sel] = np.where(use, td[other[sel]], td[sel] * np.sqrt(f))
        sel = m["payload"]
        per[sel] = per[sel] * np.exp(rng.normal(0.0, 0.2 + d, size=int(sel.sum())))
        sel = m["td"]
        td[sel] = np.expm1(np.log1p(td[sel] * 1e3) * np.exp(rng.normal(0.0, 0.1 + 0.5 * d, size=int(sel.sum())))) / 1e3
        zero = sel & (td < 1e-3) & (pkt > 1)
        td[zero] = rng.exponential(0.05 + d, size=int(zero.sum()))
        g["pkt"], g["payload"], g["td"] = pkt, per * pkt, td
        # TCP flags: a new flow-state pattern, one flipped bit, or a partner's pattern
        fl = col("flags").astype(np.int64)
        old_fl = fl.copy()
        sel = np.flatnonzero(m["flags"])
        pat = P.TCP_PATTERN_MASK[rng.choice(len(P.TCP_PATTERNS), size=sel.size,
                                            p=P.TCP_PATTERN_SHARE / P.TCP_PATTERN_SHARE.sum())]
        flip = fl[sel] ^ (np.int64(1) << rng.integers(0, 5, size=sel.size))
        new = np.where(rng.uniform(size=sel.size) < d, pat, flip)
        new = np.where(cross[sel] & (proto[other[sel]] == proto[sel]), fl[other[sel]], new)
        fl[sel] = np.where(proto[sel] == TCP, new, fl[sel] ^ ACK)
        # a record that became TCP needs a TCP pattern
        became_tcp = (proto == TCP) & ((old_fl & ~ACK) == 0) & m["service"]
        fl[became_tcp] = P.TCP_PATTERN_MASK[rng.choice(len(P.TCP_PATTERNS), size=int(became_tcp.sum()),
                                                       p=P.TCP_PATTERN_SHARE / P.TCP_PATTERN_SHARE.sum())]
        g["flags"] = fl
        tos = col("tos")
        sel = m["tos"]
        tos[sel] = np.where(cross[sel], tos[other[sel]],
                            rng.choice(P.TOS_VALUES, size=int(sel.sum()), p=P.TOS_WEIGHTS / P.TOS_WEIGHTS.sum()))
        g["tos"] = tos
        ttl = col("ttl")
        sel = m["ttl"]
        ttl[sel] = ttl[sel] + np.rint(rng.normal(0, 1 + 10 * d, size=int(sel.sum()))).astype(np.int64)
        g["ttl"] = ttl
        # at high degree some children are fresh draws (degree 1 = as far as a fresh draw)
        fresh = np.flatnonzero(rng.uniform(size=n) < d**3)
        if fresh.size:
            g.iloc[fresh] = self.random_genome(fresh.size, rng)[list(g.columns)].to_numpy()
            g = g.astype({c: np.int64 for c in GENOME_COLUMNS if c not in _FLOAT_GENES})
        return repair(g)

    def vary(self, pop: Population, degree: float, rng: np.random.Generator) -> Population:
        if pop.genome is None:  # records of another generator: rebuild the genome from them
            pop = Population(pop.samples, pop.source, pop.parent, genome_from_records(pop.samples), pop.label)
        varied = self.vary_genome(pop.genome, degree, rng)
        keep = elite_mask(pop.parent) if self.elitism else np.zeros(len(pop), dtype=bool)
        if keep.any():
            g = pop.genome.reset_index(drop=True).copy()
            g.loc[~keep] = varied.loc[~keep].to_numpy()
            g = repair(g.astype(varied.dtypes.to_dict()))
        else:
            g = varied
        return Population(render(g, self.ts_resolution_s), pop.source.copy(), pop.parent.copy(), g, pop.label)

    # -- output post-processing -----------------------------------------------------------------
    def spread(self, pop: Population, rng: np.random.Generator, degree: float = 0.0, ts_jitter_s: float = 0.0,
               time_coupling: float = 1.0) -> Population:
        """Up-sample drawn candidates into distinct records (post-processing of released candidates).

        * an optional variation at ``degree``;
        * client ports re-drawn uniformly inside the OS ephemeral range that holds them: stacks pick
          them at random, so their exact value carries no flow information (public knowledge);
        * start times jittered by up to ``ts_jitter_s`` (one encoder time cell, which votes cannot
          resolve), and with probability 1 − ``time_coupling`` re-drawn from the time prior (the DP
          start-time histogram when fitted): a few thousand candidates cannot cover time × every
          other field, and flow features depend on time only weakly inside a capture window."""
        g = pop.genome.reset_index(drop=True).copy()
        if degree > 0:
            g = self.vary_genome(g, degree, rng)
        cp = np.maximum(g["cport"].to_numpy(np.int64), 1024)
        icmp = g["proto"].to_numpy() == ICMP
        g["cport"] = np.where(icmp, 0, redraw_in_os_range(cp, rng))
        st = g["start"].to_numpy(np.float64, copy=True)
        if ts_jitter_s > 0:
            st = st + rng.uniform(-ts_jitter_s / 2, ts_jitter_s / 2, size=len(g))
        free = rng.uniform(size=len(g)) >= time_coupling
        st[free] = self.times.sample(int(free.sum()), rng)
        t0, t1 = self.time_window
        g["start"] = np.clip(st, t0, t1)
        g = repair(g)
        return Population(render(g, self.ts_resolution_s), pop.source, pop.parent, g, pop.label)


def redraw_in_os_range(port: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A fresh port, uniform in the common ephemeral range that contains ``port`` (Linux 32768–60999,
    IANA/Windows 49152–65535, legacy 1024–5000; ports in the overlap pick one of the two; others keep
    their 4096-port block)."""
    p = np.asarray(port, dtype=np.int64)
    lo = np.where(p >= 61000, 49152, np.where(p >= 49152, np.where(rng.uniform(size=p.size) < 0.5, 32768, 49152),
                                                np.where(p >= 32768, 32768, np.where(p <= 5000, 1024,
                                                                                     p - (p - 1024) % 4096))))
    hi = np.where(lo == 49152, 65535, np.where(lo == 32768, 60999, np.where(lo == 1024, 5000, lo + 4095)))
    return rng.integers(lo, np.minimum(hi, 65535) + 1)


__all__ = ["FLOW_COLUMNS", "GENOME_COLUMNS", "FlowSimulator", "elite_mask", "flow_validity", "genome_from_records",
           "header_bytes",
           "redraw_in_os_range", "render", "repair"]
