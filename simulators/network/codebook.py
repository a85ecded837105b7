"""Data-adaptive codes of flow fields, found by DP releases (the resolution follows the data).

Every field has a PUBLIC fine grid (exact ports 0..65535, exact packet and byte counts up to 2¹⁶, a
millisecond-octave grid of durations, 64 cells over the public time window, every protocol, flag mask
and ToS byte) and a PUBLIC coarse partition of it (port ranges, octaves of sizes and durations). Two
Gaussian releases per field, L2 sensitivity 1 per record (or per privacy unit): the fine histogram
and the coarse one. Fine cells whose noisy count clears a noise threshold are *frequent values* and
become codes of their own (a byte count that holds a third of the records is reproduced exactly);
each coarse bin's residual mass (its noisy count minus the frequent values inside it) becomes one
more code, decoded uniformly (log-uniformly for sizes) inside the bin. Addresses take their codes
from the DP prefix trie (``dp_priors.fit_addresses``): the heaviest released prefixes and hosts.

This is the threshold mechanism for frequent items (Korolova et al., "Releasing search queries and
clicks privately", WWW 2009; over a public domain the Gaussian threshold costs no extra δ) combined
with a public hierarchical fallback, as in the tables wing's point-mass detection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulators.network import priors as P
from simulators.network.encoder import (
    ICMP,
    PROTO_NUMBERS,
    TCP,
    UDP,
    flags_to_mask,
    ip_to_uint32,
    proto_to_number,
)

MAX_EXACT = 32  # frequent values kept per field (public cap: bounds the pair tables)
MAX_ADDRESS_CODES = 63  # released prefixes/hosts kept as address codes (+1 'elsewhere')
EXACT_SIZES = 1 << 16  # packet and byte counts below this are exact fine cells
TIME_CELLS = 64
# A coarse bin's residual counts when it clears COARSE_Z noise standard deviations: the coarse domain is
# small (tens of bins), so a low bar keeps the real mass of small traces while empty bins add ≈ nothing
COARSE_Z = 2.0


@dataclass(frozen=True)
class Grid:
    """The public fine grid and coarse partition of one field.

    ``cell(df)`` maps records to fine cells in [0, size); ``coarse[c]`` is the coarse bin of fine cell
    c; ``draw(cells, rng)`` turns fine cells into field values; ``rest(bin, n, rng)`` draws n fine
    cells of a coarse bin (what a coarse code decodes to). ``candidates`` (public) are the only fine
    cells that may become frequent values (None: every cell): a noise spike on a protocol number no
    export writes (CHAOS, 16, made half of one small run's output) cannot become a code, and the
    threshold controls false positives over the candidates only."""

    name: str
    size: int
    cell: Callable[[pd.DataFrame], np.ndarray]
    coarse: np.ndarray
    draw: Callable[[np.ndarray, np.random.Generator], np.ndarray]
    rest: Callable[[int, int, np.random.Generator], np.ndarray]
    max_exact: int = MAX_EXACT
    candidates: np.ndarray | None = None

    @property
    def n_coarse(self) -> int:
        return int(self.coarse.max()) + 1

    @property
    def n_candidates(self) -> int:
        """How many fine cells may become frequent values (the threshold's false-positive domain)."""
        return self.size if self.candidates is None else int(self.candidates.size)


def _log_cells(x: np.ndarray, exact: int, per_octave: int) -> np.ndarray:
    """Integers below ``exact`` are their own cell; above, ``per_octave`` log cells per doubling."""
    x = np.maximum(np.asarray(x, np.float64), 0)
    big = x >= exact
    lg = np.floor(np.log2(np.maximum(x, exact) / exact) * per_octave).astype(np.int64)
    return np.where(big, exact + lg, np.floor(x).astype(np.int64))


def _log_values(cells: np.ndarray, exact: int, per_octave: int, rng: np.random.Generator) -> np.ndarray:
    c = np.asarray(cells, np.int64)
    lo = exact * 2.0 ** ((c - exact) / per_octave)
    hi = exact * 2.0 ** ((c - exact + 1) / per_octave)
    v = np.floor(lo + rng.uniform(size=c.size) * (hi - lo))
    return np.where(c < exact, c, v).astype(np.int64)


def _octave(v: np.ndarray) -> np.ndarray:
    return np.where(v >= 1, np.floor(np.log2(np.maximum(v, 1))).astype(np.int64) + 1, 0)


def size_grid(name: str, octaves: int = 40) -> Grid:
    """Packet or byte counts: exact below 2¹⁶, 8 log cells per octave above; coarse = octaves."""
    per = 8
    size = EXACT_SIZES + (octaves - 16) * per
    cells = np.arange(size)
    lo_val = np.where(cells < EXACT_SIZES, cells, EXACT_SIZES * 2.0 ** ((cells - EXACT_SIZES) / per))
    coarse = np.minimum(_octave(lo_val), octaves)

    def rest(b: int, n: int, rng: np.random.Generator) -> np.ndarray:
        if b == 0:
            return np.zeros(n, np.int64)
        lo, hi = 2.0 ** (b - 1), 2.0 ** b  # log-uniform inside the octave
        v = np.floor(lo * (hi / lo) ** rng.uniform(size=n))
        return _log_cells(v, EXACT_SIZES, per)

    return Grid(name, size, lambda df: np.minimum(_log_cells(df[name].to_numpy(), EXACT_SIZES, per), size - 1),
                coarse, lambda c, rng: _log_values(c, EXACT_SIZES, per, rng), rest)


def duration_grid(octaves: int = 28) -> Grid:
    """Durations: cell 0 is exactly 0 s; then 4 cells per octave of milliseconds; coarse = octaves."""
    per = 4
    size = 1 + octaves * per

    def cell(df: pd.DataFrame) -> np.ndarray:
        ms = df["td"].to_numpy(np.float64) * 1000.0
        c = 1 + np.floor(np.log2(1.0 + np.maximum(ms, 0)) * per).astype(np.int64)
        return np.where(ms <= 0, 0, np.minimum(c, size - 1))

    def draw(c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = np.asarray(c, np.int64)
        lo, hi = 2.0 ** ((c - 1) / per), 2.0 ** (c / per)
        ms = lo * (hi / lo) ** rng.uniform(size=c.size) - 1.0
        return np.where(c == 0, 0.0, np.round(np.maximum(ms, 0.0)) / 1000.0)

    coarse = np.r_[0, 1 + (np.arange(size - 1) // per)]

    def rest(b: int, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(n, np.int64) if b == 0 else 1 + (b - 1) * per + rng.integers(0, per, n)

    return Grid("td", size, cell, coarse, draw, rest)


def _service_port_prior() -> tuple[np.ndarray, np.ndarray]:
    """Public service ports (IANA, ``priors.SERVICES`` and the registered service list) with rough
    popularity: where a port range holds mass but no frequent value, its ports are drawn from here."""
    from simulators.network.dp_priors import REGISTERED_SERVICE_PORTS

    ports = {int(s.port): float(s.weight) for s in P.SERVICES if s.port >= 0 and s.proto != ICMP}
    for p in REGISTERED_SERVICE_PORTS:
        ports.setdefault(int(p), 0.5)
    k = np.array(sorted(ports))
    return k, np.array([ports[int(p)] for p in k])


SERVICE_PORTS, SERVICE_PORT_WEIGHTS = _service_port_prior()
PRIOR_SHARE = 0.8  # of a range's rest drawn from the public service ports in it (the rest uniform)


def port_grid(name: str) -> Grid:
    """Ports: every value a fine cell; coarse = well-known, then 16 ranges of 4096 (OS ephemeral ranges
    fall into different ranges). A range's rest is drawn from the public service ports inside it
    (``PRIOR_SHARE``) or uniformly."""
    cells = np.arange(65536)
    coarse = np.where(cells < 1024, 0, 1 + (cells - 1024) // 4096)

    def rest(b: int, n: int, rng: np.random.Generator) -> np.ndarray:
        lo = 0 if b == 0 else 1024 + (b - 1) * 4096
        hi = 1024 if b == 0 else min(lo + 4096, 65536)
        out = rng.integers(lo, hi, n)
        inside = (SERVICE_PORTS >= lo) & (SERVICE_PORTS < hi)
        if inside.any():
            w = SERVICE_PORT_WEIGHTS[inside]
            pick = rng.uniform(size=n) < PRIOR_SHARE
            out[pick] = rng.choice(SERVICE_PORTS[inside], size=int(pick.sum()), p=w / w.sum())
        return out

    return Grid(name, 65536, lambda df: np.clip(df[name].to_numpy(np.int64), 0, 65535), coarse,
                lambda c, rng: np.asarray(c, np.int64), rest)


def category_grid(name: str, size: int, values: Callable[[pd.DataFrame], np.ndarray],
                  fallback: np.ndarray, candidates: np.ndarray | None = None) -> Grid:
    """A small nominal field (protocol, flags, ToS): one coarse bin whose rest decodes to ``fallback``
    values (public: the common ones); ``candidates``: the public values that may become codes."""
    fb = np.asarray(fallback, np.int64)
    cand = None if candidates is None else np.unique(np.asarray(candidates, np.int64))
    return Grid(name, size, lambda df: np.clip(values(df), 0, size - 1), np.zeros(size, np.int64),
                lambda c, rng: np.asarray(c, np.int64), lambda b, n, rng: rng.choice(fb, n), max_exact=min(size, 64),
                candidates=cand)


#: the protocols NetFlow exports name (public registry): the only protocol values the fitted generator
#: reproduces exactly; any other protocol's records count in the rest, decoded as TCP, UDP or ICMP
EXPORTED_PROTOCOLS = np.array(sorted(PROTO_NUMBERS.values()), np.int64)


def time_grid(window: tuple[float, float], cells: int = TIME_CELLS) -> Grid:
    """Start times: ``cells`` equal cells of the public window; coarse = 16 super-cells."""
    t0, t1 = window
    per = cells // 16

    def cell(df: pd.DataFrame) -> np.ndarray:
        t = df["ts"].to_numpy(np.float64) / 1e6
        return np.clip(np.floor((t - t0) / (t1 - t0) * cells), 0, cells - 1).astype(np.int64)

    def draw(c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return (t0 + (np.asarray(c) + rng.uniform(size=len(c))) * (t1 - t0) / cells) * 1e6

    return Grid("ts", cells, cell, np.arange(cells) // per, draw,
                lambda b, n, rng: b * per + rng.integers(0, per, n), max_exact=cells)


def flow_grids(window: tuple[float, float], has_flags: bool, has_tos: bool) -> list[Grid]:
    """The public grids of the NetFlow fields modelled besides the addresses."""
    out = [
        category_grid("proto", 256, lambda df: proto_to_number(df["proto"]), np.array([TCP, UDP, ICMP]),
                      EXPORTED_PROTOCOLS),
        port_grid("srcport"), port_grid("dstport"), time_grid(window), duration_grid(),
        size_grid("pkt", 32), size_grid("byt", 44),
    ]
    if has_flags:
        out.append(category_grid("flags", 64, lambda df: flags_to_mask(df["flags"]) & 0x3F,
                                 np.array([0x10, 0x18, 0x02, 0x1B, 0x1A, 0x12, 0x14])))
    if has_tos:
        out.append(category_grid("tos", 256, lambda df: df["tos"].to_numpy(np.int64), np.array([0])))
    return out


def packet_grids(window: tuple[float, float]) -> list[Grid]:
    """The public grids of packet-header fields modelled besides the addresses."""
    return [
        category_grid("proto", 256, lambda df: proto_to_number(df["proto"]), np.array([TCP, UDP, ICMP]),
                      EXPORTED_PROTOCOLS),
        port_grid("srcport"), port_grid("dstport"), time_grid(window), size_grid("length", 17),
        category_grid("ttl", 256, lambda df: df["ttl"].to_numpy(np.int64), np.array([64, 128, 255, 63, 127, 254])),
        category_grid("flags", 64, lambda df: flags_to_mask(df["flags"]) & 0x3F,
                      np.array([0x10, 0x18, 0x02, 0x12, 0x11])),
        category_grid("tos", 256, lambda df: df["tos"].to_numpy(np.int64), np.array([0])),
    ]


@dataclass(frozen=True)
class Codebook:
    """Codes of one field: ``exact`` fine cells (frequent values), then one code per coarse bin.

    ``mass`` is the noisy one-way count of every code (post-processing of the two releases)."""

    grid: Grid
    exact: np.ndarray
    mass: np.ndarray
    sigma: float  # noise of one fine/coarse count (for the raking threshold)

    @property
    def size(self) -> int:
        return self.exact.size + self.grid.n_coarse

    def encode_cells(self, cells: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.exact, cells)
        hit = (pos < self.exact.size) & (self.exact[np.minimum(pos, max(self.exact.size - 1, 0))] == cells) \
            if self.exact.size else np.zeros(len(cells), bool)
        return np.where(hit, pos, self.exact.size + self.grid.coarse[cells])

    def encode(self, df: pd.DataFrame) -> np.ndarray:
        return self.encode_cells(self.grid.cell(df))

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        codes = np.asarray(codes, np.int64)
        cells = np.zeros(codes.size, np.int64)
        ex = codes < self.exact.size
        cells[ex] = self.exact[codes[ex]]
        for b in np.unique(codes[~ex]):
            rows = np.flatnonzero(codes == b)
            cells[rows] = self.grid.rest(int(b - self.exact.size), rows.size, rng)
            # a rest code stands for the bin's values that are NOT frequent ones: redraw those that are
            for _ in range(20):
                hit = rows[np.isin(cells[rows], self.exact)]
                if hit.size == 0:
                    break
                cells[hit] = self.grid.rest(int(b - self.exact.size), hit.size, rng)
        return self.grid.draw(cells, rng)


def build_codebook(grid: Grid, fine: np.ndarray, coarse: np.ndarray, sigma: float, thresh: float) -> Codebook:
    """Frequent values (noisy fine count above ``thresh``, at most MAX_EXACT) and coarse residuals.

    A coarse bin's residual (its noisy count minus its frequent values') counts only when it clears the
    noise threshold of the coarse release, so empty bins do not get the clipped noise as mass; when no
    bin clears it (a tiny trace), the clipped residuals are kept rather than nothing."""
    keep = np.flatnonzero(fine > thresh)
    if grid.candidates is not None:
        keep = keep[np.isin(keep, grid.candidates)]
    keep = np.sort(keep[np.argsort(-fine[keep], kind="stable")[:grid.max_exact]])
    resid = coarse - np.bincount(grid.coarse[keep], weights=fine[keep], minlength=grid.n_coarse)
    n_in = np.bincount(grid.coarse[keep], minlength=grid.n_coarse)
    t = COARSE_Z * sigma * np.sqrt(1.0 + n_in)
    sure = np.where(resid > t, resid, 0.0)
    if grid.n_coarse > 1 and sure.sum() <= 0 and keep.size == 0:
        sure = np.clip(resid, 0, None)
    mass = np.r_[fine[keep], sure]
    return Codebook(grid, keep.astype(np.int64), np.clip(mass, 0, None), sigma)


@dataclass(frozen=True)
class AddressCodebook:
    """Address codes from the DP prefix trie: the heaviest released deep prefixes and hosts (a host is a
    /32 prefix), every released /8 for the rest of its addresses, and 'elsewhere'.

    A record's code is its deepest matching code prefix. A /8 code decodes through the released
    prefixes inside that /8 that are not codes themselves (by their released weights), 'elsewhere'
    through the released prefixes outside every code /8, else public unicast space: every draw stays in
    networks the data uses, as far as the releases tell."""

    name: str
    nets: np.ndarray
    lens: np.ndarray
    mass: np.ndarray
    plan: P.FittedAddressPlan  # released prefixes that are not codes

    @property
    def size(self) -> int:
        return self.nets.size + 1

    @classmethod
    def from_plan(cls, name: str, plan: P.FittedAddressPlan) -> AddressCodebook:
        idx = np.arange(len(plan.weights))
        deep = idx[plan.prefix_len > 8]
        deep = deep[np.argsort(-plan.weights[deep], kind="stable")[:MAX_ADDRESS_CODES]]
        eights = idx[plan.prefix_len == 8]
        eights = eights[np.argsort(-plan.weights[eights], kind="stable")[:MAX_ADDRESS_CODES + 1]]
        order = np.r_[deep, eights].astype(np.int64)
        # deepest first, so the first match of a record is its most specific prefix
        order = order[np.argsort(-plan.prefix_len[order], kind="stable")]
        rest = np.setdiff1d(idx, order)
        rest_plan = P.FittedAddressPlan(plan.prefixes[rest], plan.prefix_len[rest], plan.weights[rest])
        w = plan.weights[order]
        return cls(name, plan.prefixes[order].astype(np.int64), plan.prefix_len[order].astype(np.int64),
                   np.r_[w, max(float(plan.weights.sum() - w.sum()), 0.0)], rest_plan)

    def encode(self, df: pd.DataFrame) -> np.ndarray:
        ip = ip_to_uint32(df[self.name], self.name)
        code = np.full(ip.size, self.nets.size, np.int64)
        for i in range(self.nets.size - 1, -1, -1):  # deepest prefixes are first: they win
            shift = 32 - int(self.lens[i])
            code = np.where((ip >> shift) == (int(self.nets[i]) >> shift), i, code)
        return code

    def _inside(self, net: int, plen: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """n addresses in net/plen: through the non-code released prefixes inside it, else uniform."""
        p = self.plan
        shift = 32 - plen
        sub = (p.prefix_len >= plen) & ((p.prefixes >> shift) == (net >> shift)) & (p.weights > 0)
        if sub.any():
            return P.FittedAddressPlan(p.prefixes[sub], p.prefix_len[sub], p.weights[sub],
                                       tail_share=0.0).sample(n, rng)
        return net | (rng.integers(0, 1 << 32, size=n, dtype=np.int64) & ((np.int64(1) << shift) - 1))

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        codes = np.asarray(codes, np.int64)
        out = np.zeros(codes.size, np.int64)
        for c in np.unique(codes):
            rows = np.flatnonzero(codes == c)
            if c == self.nets.size:
                # elsewhere: the released prefixes outside every code /8, and public space for the mass
                # they cannot hold (their weights count both address columns: an upper bound)
                eights = self.nets[self.lens == 8] >> 24
                p = self.plan
                outside = ~np.isin(p.prefixes >> 24, eights)
                held = float(p.weights[outside].sum())
                tail = float(np.clip(1.0 - held / max(float(self.mass[-1]), 1e-9), 0.05, 1.0))
                out[rows] = P.FittedAddressPlan(p.prefixes[outside], p.prefix_len[outside], p.weights[outside],
                                                tail_share=tail).sample(rows.size, rng)
            elif self.lens[c] == 8 or self.lens[c] < 32:
                out[rows] = self._inside(int(self.nets[c]), int(self.lens[c]), rows.size, rng)
            else:
                out[rows] = self.nets[c]
        return out
