"""A flow generator fitted on DP measurements — the traces counterpart of the tables' tree generator.

Fitting (every step a Gaussian release through the engine's one release path, or post-processing):

1. **codes** per field (``codebook.py``): frequent exact values of ports, protocol, packet and byte
   counts, durations, flags and ToS from thresholded noisy fine histograms, coarse public bins for the
   rest, addresses from the DP prefix trie — two releases per field (fine, coarse), one per address
   column;
2. **structure**: every pair of fields on ≤ 6 coarse groups (the 5 heaviest codes and the rest), all in
   one release (each record's pairs are one vote vector of L2 norm 1); a maximum spanning tree of
   their mutual information is the dependence structure (Chow & Liu, "Approximating discrete
   probability distributions with dependence trees", IEEE T-IT 1968; the choice MST makes — McKenna,
   Miklau & Sheldon 2021 — with a Gaussian release instead of the exponential mechanism). When the
   noisy record count says the pair tables would be mostly noise, a public tree from domain knowledge
   is used instead and the structure share goes to the tree's pairs;
3. **the tree's two-way tables** on the full codes, one release; conditionals are shrunk towards the
   child's one-way distribution in proportion to the noise, so a sparse noisy row falls back to the
   marginal instead of inventing structure.

Sampling follows the tree from its root; decoding enforces the flow invariants by construction:
ports in range, bytes between packets × header bytes and packets × MTU, single-packet flows last 0 s,
TCP-only flags only on TCP (other protocols keep at most nfdump's ACK mark). ``vary`` resamples a
degree-sized subset of fields from their conditionals given their tree neighbours (a Gibbs move), so a
variation stays on the fitted joint; unchanged fields keep their exact values.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.checkpoint import Checkpointer
from pe_tabular.measure.information import mutual_information
from pe_tabular.measure.raking import fit_table_to_margins
from pe_tabular.measure.spanning import max_spanning_forest
from pe_tabular.population import Population
from pe_tabular.privacy.ledger import Ledger
from pe_tabular.privacy.noise import NoiseSource
from pe_tabular.privacy.release import ReleasePath, Spec
from simulators.network import priors as P
from simulators.network.codebook import AddressCodebook, Codebook, build_codebook, flow_grids, packet_grids
from simulators.network.dp_priors import threshold
from simulators.network.encoder import ACK, TCP, flags_to_mask, mask_to_flags, number_to_proto, proto_to_number
from simulators.network.flows import FLOW_COLUMNS, genome_from_records, header_bytes
from simulators.network.records import Hist, TraceRecords

STRUCTURE_GROUPS = 6
# The public fallback structure (domain knowledge): the protocol decides the service ports, flags and
# sizes; the client side's address goes with its port; bytes follow packets, durations follow packets.
PUBLIC_TREE = (("proto", "dstport"), ("dstport", "srcport"), ("proto", "flags"), ("dstport", "dstip"),
               ("srcport", "srcip"), ("dstport", "pkt"), ("pkt", "byt"), ("pkt", "td"), ("proto", "tos"),
               ("proto", "ts"))
PUBLIC_PACKET_TREE = (("proto", "dstport"), ("dstport", "srcport"), ("proto", "flags"), ("dstport", "dstip"),
                      ("srcport", "srcip"), ("dstport", "length"), ("flags", "length"), ("srcip", "ttl"),
                      ("proto", "tos"), ("proto", "ts"))
PACKET_HEADER_COLUMNS = ("ts", "srcip", "dstip", "srcport", "dstport", "proto", "length", "ttl", "flags", "ipid", "tos")
# below this many noise standard deviations of record count, the structure release is skipped
STRUCTURE_MIN_SIGNAL = 30.0


@dataclass(frozen=True)
class FitShares:
    """Shares of the run's μ² spent on fitting (one-way codes, structure, tree pairs)."""

    one_way: float = 0.24
    structure: float = 0.04
    pairs: float = 0.32

    @property
    def total(self) -> float:
        return self.one_way + self.structure + self.pairs


def _release(path: ReleasePath, key: str, what: str, sigma: float, stream: int, counts: Any) -> np.ndarray:
    return path.release(Spec(key, what, sigma, stream=(0, stream)), counts)


class FittedGenerator:
    """Backend: records sampled from a tree model fitted on DP releases (see the module docstring).
    Subclasses render the decoded field values into valid records of their level."""

    name = "fitted"

    def __init__(self, codebooks: dict[str, Codebook | AddressCodebook], edges: list[tuple[str, str]],
                 tables: dict[tuple[str, str], np.ndarray], pair_sigma: float, columns: Sequence[str],
                 ts_resolution_s: float = 1e-6, single_packet_zero_duration: bool = True):
        self.single_packet_zero_duration = single_packet_zero_duration
        self.books = codebooks
        self.fields = list(codebooks)
        self.columns = list(columns)
        self.ts_resolution_s = ts_resolution_s
        self.p1 = {f: _normalise(b.mass) for f, b in codebooks.items()}
        adj: dict[str, list[tuple[str, np.ndarray]]] = {f: [] for f in self.fields}
        for (a, b) in edges:
            j = consistent_table(tables[(a, b)], self.p1[a], self.p1[b], pair_sigma,
                                 np.outer(codebooks[a].mass > 0, codebooks[b].mass > 0))
            adj[a].append((b, j))
            adj[b].append((a, j.T))
        root = "proto" if "proto" in self.fields else self.fields[0]
        self.order: list[str] = [root]
        self.parent: dict[str, tuple[str, np.ndarray]] = {}
        self.children: dict[str, list[str]] = {f: [] for f in self.fields}
        seen, queue = {root}, deque([root])
        while queue:
            a = queue.popleft()
            for b, j in adj[a]:
                if b in seen:
                    continue
                seen.add(b)
                queue.append(b)
                self.parent[b] = (a, j / np.maximum(j.sum(1, keepdims=True), 1e-300))  # P(b | a)
                self.children[a].append(b)
                self.order.append(b)
        self.order += [f for f in self.fields if f not in seen]

    # -- sampling ------------------------------------------------------------------------------
    def sample_codes(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        codes: dict[str, np.ndarray] = {}
        for f in self.order:
            if f in self.parent:
                pa, cond = self.parent[f]
                codes[f] = _draw_rows(cond[codes[pa]], rng)
            else:
                codes[f] = rng.choice(self.p1[f].size, size=n, p=self.p1[f])
        return codes

    def _resample(self, codes: dict[str, np.ndarray], f: str, rows: np.ndarray, rng: np.random.Generator) -> None:
        """Gibbs move: field f of ``rows`` from P(f | parent) · Π P(child | f)."""
        if f in self.parent:
            pa, cond = self.parent[f]
            w = cond[codes[pa][rows]].copy()
        else:
            w = np.broadcast_to(self.p1[f], (rows.size, self.p1[f].size)).copy()
        for c in self.children[f]:
            _, cc = self.parent[c]
            w *= cc[:, codes[c][rows]].T
        codes[f][rows] = _draw_rows(w, rng)

    def decode(self, codes: dict[str, np.ndarray], rng: np.random.Generator,
               keep: pd.DataFrame | None = None, changed: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
        """Records from codes; with ``keep``, fields not marked in ``changed`` keep their values."""
        n = len(next(iter(codes.values())))
        vals = {}
        for f, b in self.books.items():
            v = b.decode(codes[f], rng)
            if keep is not None and changed is not None:
                old = keep[f].to_numpy()
                if f == "proto":
                    old = proto_to_number(old)
                elif f == "flags":
                    old = flags_to_mask(old)
                v = np.where(changed[f], v, old)
            vals[f] = v
        return self._render(vals, n, rng)

    def encode(self, records: pd.DataFrame) -> dict[str, np.ndarray]:
        return {f: b.encode(records) for f, b in self.books.items()}

    def _render(self, v: dict[str, np.ndarray], n: int,
                rng: np.random.Generator) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    def _genome(self, records: pd.DataFrame) -> Any:
        """The genome format of the simulator this generator is mixed with."""
        return records.copy()

    def _population(self, records: pd.DataFrame, label: Any = None) -> Population:
        return Population.fresh(records, self.name, genome=self._genome(records), label=label)

    # -- Backend protocol ----------------------------------------------------------------------
    def random(self, n: int, *, label: Any = None, rng: np.random.Generator) -> Population:
        return self._population(self.decode(self.sample_codes(n, rng), rng), label)

    def vary(self, pop: Population, degree: float, rng: np.random.Generator) -> Population:
        n = len(pop)
        if n == 0:
            return pop
        codes = self.encode(pop.samples)
        q = 0.05 + 0.5 * float(degree)
        touch = rng.uniform(size=(n, len(self.fields))) < q
        touch[np.arange(n), rng.integers(0, len(self.fields), n)] = True  # every child moves
        elite = _first_copies(pop.parent)
        touch[elite] = False  # elitism, as in the simulator: the first copy of a parent stays
        changed = {}
        for i, f in enumerate(self.fields):
            rows = np.flatnonzero(touch[:, i])
            if rows.size:
                self._resample(codes, f, rows, rng)
            changed[f] = touch[:, i]
        out = self.decode(codes, rng, keep=pop.samples.reset_index(drop=True), changed=changed)
        return Population(out, pop.source.copy(), pop.parent.copy(), self._genome(out), pop.label)

    def refresh(self, pop: Population, rng: np.random.Generator, resample: Sequence[str] = ("ts",)) -> Population:
        """Output post-processing. Fields in ``resample`` — those the votes ignore (start time, weight 0
        in the encoder) — are re-drawn for every row from their conditional given the row's other fields,
        so they follow the fitted joint instead of whichever candidates won; repeated copies of one
        candidate re-draw their other values inside their codes (exact values stay exact)."""
        samples = pop.samples.reset_index(drop=True)
        n = len(samples)
        codes = self.encode(samples)
        changed = {f: np.zeros(n, bool) for f in self.fields}
        for f in resample:
            if f in codes:
                self._resample(codes, f, np.arange(n), rng)
                changed[f][:] = True
        dup = ~_first_copies(pop.parent) & (pop.parent >= 0)
        for f in self.fields:
            changed[f] |= dup
        out = self.decode(codes, rng, keep=samples, changed=changed)
        return Population(out, pop.source, pop.parent, self._genome(out), pop.label)


class FittedFlowGenerator(FittedGenerator):
    """Fitted NetFlow records; genomes in the flow simulator's format (one population format in a mixture)."""

    def _render(self, v: dict[str, np.ndarray], n: int, rng: np.random.Generator) -> pd.DataFrame:
        """Apply the flow invariants (validity by construction) and build the record frame."""
        proto = np.asarray(v["proto"], np.int64)
        pkt = np.clip(np.asarray(v["pkt"], np.int64), 1, 10_000_000)
        hdr = header_bytes(proto)
        byt = np.clip(np.asarray(v["byt"], np.int64), pkt * hdr, pkt * P.MTU)
        td = np.maximum(np.asarray(v["td"], np.float64), 0.0)
        if self.single_packet_zero_duration:
            td = np.where(pkt == 1, 0.0, td)
        res = max(float(self.ts_resolution_s), 1e-6)
        ts = np.floor(np.asarray(v["ts"], np.float64) / 1e6 / res) * res * 1e6
        out = {"srcip": v["srcip"], "dstip": v["dstip"], "srcport": np.clip(v["srcport"], 0, 65535),
               "dstport": np.clip(v["dstport"], 0, 65535), "proto": number_to_proto(proto), "ts": np.round(ts),
               "td": td, "pkt": pkt, "byt": byt, "type": np.full(n, "background", dtype=object)}
        fl = np.asarray(v["flags"], np.int64) & 0x3F if "flags" in v else np.zeros(n, np.int64)
        out["flags"] = mask_to_flags(np.where(proto == TCP, fl, fl & ACK))
        out["tos"] = np.asarray(v["tos"], np.int64) if "tos" in v else np.zeros(n, np.int64)
        df = pd.DataFrame(out)
        return df[[c for c in self.columns if c in df.columns]]

    def _genome(self, records: pd.DataFrame) -> Any:
        return genome_from_records(records)


class FittedPacketGenerator(FittedGenerator):
    """Fitted packet headers (ts µs, proto number, flags mask): IP length between the protocol's headers
    and the MTU, TTL 1..255, TCP flags only on TCP and never empty there; every packet inside the window."""

    def _render(self, v: dict[str, np.ndarray], n: int, rng: np.random.Generator) -> pd.DataFrame:
        proto = np.asarray(v["proto"], np.int64)
        length = np.clip(np.asarray(v["length"], np.int64), header_bytes(proto), P.MTU)
        fl = np.asarray(v["flags"], np.int64) & 0x3F if "flags" in v else np.zeros(n, np.int64)
        fl = np.where(proto == TCP, np.where(fl == 0, ACK, fl), 0)
        out = {"ts": np.round(np.asarray(v["ts"], np.float64)).astype(np.int64),
               "srcip": np.asarray(v["srcip"], np.int64), "dstip": np.asarray(v["dstip"], np.int64),
               "srcport": np.clip(np.asarray(v["srcport"], np.int64), 0, 65535),
               "dstport": np.clip(np.asarray(v["dstport"], np.int64), 0, 65535), "proto": proto, "length": length,
               "ttl": np.clip(np.asarray(v["ttl"], np.int64), 1, 255) if "ttl" in v else np.full(n, 64),
               "flags": fl, "ipid": rng.integers(0, 65536, n),
               "tos": np.asarray(v["tos"], np.int64) if "tos" in v else np.zeros(n, np.int64)}
        df = pd.DataFrame(out)
        return df[[c for c in self.columns if c in df.columns]]


def consistent_table(noisy: np.ndarray, pa: np.ndarray, pb: np.ndarray, sigma: float,
                     support: np.ndarray, iterations: int = 50) -> np.ndarray:
    """A joint P(a, b) from a noisy two-way table that agrees with the one-way distributions pa, pb.

    Cells are soft-thresholded by one noise σ (clipping alone would turn the noise of thousands of empty
    cells into mass), cells of codes the one-way releases found empty are zero, an independence prior
    pa·pbᵀ of total mass σ·√cells (the size of the table's noise) fills what the data cannot tell, and
    iterative proportional fitting (Deming & Stephan 1940) matches both margins — so sampling along the
    tree reproduces every released one-way distribution."""
    j = np.where(support, np.maximum(np.asarray(noisy, np.float64) - sigma, 0.0), 0.0)
    total = j.sum()
    prior = max(sigma * math.sqrt(j.size), 1e-9)
    return fit_table_to_margins((j + prior * np.outer(pa, pb)) / (total + prior), pa, pb, iterations)


def _first_copies(parent: np.ndarray) -> np.ndarray:
    parent = np.asarray(parent)
    first = np.zeros(parent.size, bool)
    valid = np.flatnonzero(parent >= 0)
    _, pos = np.unique(parent[valid], return_index=True)
    first[valid[pos]] = True
    return first


def _normalise(m: np.ndarray) -> np.ndarray:
    m = np.clip(np.asarray(m, np.float64), 0, None) + 1e-9
    return m / m.sum()


def _draw_rows(w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of non-negative weights ``w`` (uniform where a row is all zero)."""
    w = np.clip(w, 0, None)
    s = w.sum(1, keepdims=True)
    w = np.where(s > 0, w / np.where(s > 0, s, 1), 1.0 / w.shape[1])
    c = np.cumsum(w, axis=1)
    u = rng.uniform(size=(w.shape[0], 1)) * c[:, -1:]
    return np.minimum((c < u).sum(1), w.shape[1] - 1)


# ---------------------------------------------------------------------------------------------
# fitting
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FittedModel:
    generator: FittedFlowGenerator
    books: dict[str, Codebook | AddressCodebook]
    one_way_sigma: float

    def time_cells(self) -> np.ndarray:
        """Noisy mass of every fine start-time cell (the simulator's time prior): frequent cells their
        own count, the rest of each coarse bin spread evenly over its cells."""
        book = self.books["ts"]
        g = book.grid
        m = np.zeros(g.size)
        m[book.exact] = book.mass[: book.exact.size]
        rest = np.ones(g.size, bool)
        rest[book.exact] = False
        per_bin = np.bincount(g.coarse[rest], minlength=g.n_coarse)
        share = book.mass[book.exact.size:] / np.maximum(per_bin, 1)
        m[rest] = share[g.coarse[rest]]
        return np.clip(m, 0, None)


def fit_flow_generator(records: TraceRecords, window: tuple[float, float], plan: P.FittedAddressPlan, mu: float,
                       shares: FitShares, noisy_count: float, ledger: Ledger, noise: NoiseSource,
                       checkpoint: Checkpointer | None = None, ts_resolution_s: float = 1e-6,
                       single_packet_zero_duration: bool = True) -> FittedModel:
    """Release the codes, structure and tree tables of NetFlow fields (``shares`` of μ²); the generator."""
    grids = flow_grids(window, "flags" in records.columns, "tos" in records.columns)
    books, edges, tables, sigma, s1 = _fit_tree(records, grids, plan, mu, shares, noisy_count, ledger, noise,
                                                checkpoint, PUBLIC_TREE)
    # the simulator's columns (one frame format in a mixture); the pipeline drops what the input lacked
    gen = FittedFlowGenerator(books, edges, tables, sigma, FLOW_COLUMNS, ts_resolution_s,
                              single_packet_zero_duration)
    return FittedModel(gen, books, s1)


def fit_packet_generator(records: TraceRecords, window: tuple[float, float], plan: P.FittedAddressPlan, mu: float,
                         shares: FitShares, noisy_count: float, ledger: Ledger, noise: NoiseSource,
                         checkpoint: Checkpointer | None = None) -> FittedModel:
    """The same fit on packet-header fields (length, TTL, flags, ToS instead of flow sizes)."""
    books, edges, tables, sigma, s1 = _fit_tree(records, packet_grids(window), plan, mu, shares, noisy_count,
                                                ledger, noise, checkpoint, PUBLIC_PACKET_TREE)
    gen = FittedPacketGenerator(books, edges, tables, sigma, PACKET_HEADER_COLUMNS)
    return FittedModel(gen, books, s1)


def _coarse_cells(df: pd.DataFrame, grid: Any) -> np.ndarray:
    return grid.coarse[grid.cell(df)]


@dataclass(frozen=True)
class _PairBins:
    """(n, pairs) bins of every record in the pair tables laid end to end: pair (a, b) at ``offs`` + a·|b| + b,
    each field's code mapped through ``group`` (structure: coarse groups; tree pairs: the identity)."""

    books: dict[str, Any]
    pairs: tuple[tuple[str, str], ...]
    offs: tuple[int, ...]
    group: dict[str, np.ndarray] | None

    def __call__(self, df: pd.DataFrame) -> np.ndarray:
        names = {f for p in self.pairs for f in p}
        enc = {f: self.books[f].encode(df) for f in names}
        if self.group is not None:
            enc = {f: self.group[f][c] for f, c in enc.items()}
        size = {f: (int(self.group[f].max()) + 1 if self.group is not None else self.books[f].size) for f in names}
        return np.stack([o + enc[a] * size[b] + enc[b] for (a, b), o in zip(self.pairs, self.offs)], axis=1)


def _fit_tree(records: TraceRecords, grids: list[Any], plan: P.FittedAddressPlan, mu: float, shares: FitShares,
              noisy_count: float, ledger: Ledger, noise: NoiseSource, checkpoint: Checkpointer | None,
              public_tree: Sequence[tuple[str, str]]) -> tuple[Any, ...]:
    """Three passes over the records: every one-way histogram (fine and coarse per field, the address codes),
    the structure tables, the tree's pair tables — each released through the one release path."""
    path = ReleasePath(ledger, noise, checkpoint)
    rho = mu * mu
    inf = not math.isfinite(rho)
    # a grid with one coarse bin (protocol, flags, ToS) needs no coarse release: its total is the
    # start-time grid's (released first)
    n_one = sum(2 if g.n_coarse > 1 else 1 for g in grids) + 2

    def sig(share: float, releases: int) -> float:
        return 0.0 if inf else math.sqrt(releases / (share * rho))

    s1 = sig(shares.one_way, n_one)
    ordered = [ig for ig in sorted(enumerate(grids), key=lambda ig: ig[1].name != "ts")]
    addr = {col: AddressCodebook.from_plan(col, plan) for col in ("srcip", "dstip")}
    hists, at = [], {}
    for _, g in ordered:
        at[("fine", g.name)] = len(hists)
        hists.append(Hist(g.cell, g.size, (g.name,)))
        if g.n_coarse > 1:
            at[("coarse", g.name)] = len(hists)
            hists.append(Hist(partial(_coarse_cells, grid=g), g.n_coarse, (g.name,)))
    for col, ab in addr.items():
        at[("addr", col)] = len(hists)
        hists.append(Hist(ab.encode, ab.size, (col,)))
    one_way = records.one_pass(hists, "one-way histograms")
    books: dict[str, Codebook | AddressCodebook] = {}
    total = None
    for i, g in ordered:
        fine = _release(path, f"fit_fine_{g.name}", f"{g.name} fine histogram ({g.size} public cells)", s1,
                        600 + 2 * i, one_way.counts(at[("fine", g.name)]))
        if g.n_coarse > 1:
            coarse = _release(path, f"fit_coarse_{g.name}", f"{g.name} coarse histogram ({g.n_coarse} public bins)",
                              s1, 601 + 2 * i, one_way.counts(at[("coarse", g.name)]))
            total = float(coarse.sum()) if total is None else total
        else:
            coarse = np.array([total if total is not None else float(np.clip(fine, 0, None).sum())])
        books[g.name] = build_codebook(g, fine, coarse, s1, threshold(s1, g.n_candidates) if s1 > 0 else 0.5)
    for j, (col, ab) in enumerate(addr.items()):
        m = _release(path, f"fit_{col}", f"{col} over the released prefixes ({ab.size} codes)", s1, 640 + j,
                     one_way.counts(at[("addr", col)]))
        books[col] = AddressCodebook(col, ab.nets, ab.lens, np.clip(m, 0, None), ab.plan)
    names = list(books)
    columns = tuple(dict.fromkeys(b.grid.name if isinstance(b, Codebook) else b.name for b in books.values()))
    # structure: every pair on coarse groups, or the public tree when the data is too small to tell
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    pair_share = shares.pairs
    s_struct = sig(shares.structure, 1) if shares.structure > 0 else math.inf
    if shares.structure > 0 and (inf or noisy_count / (s_struct * math.sqrt(len(pairs))) >= STRUCTURE_MIN_SIGNAL):
        grp = {f: _coarse_groups(books[f]) for f in names}
        gsize = {f: int(grp[f].max()) + 1 for f in names}
        offs, tot = [], 0
        for a, b in pairs:
            offs.append(tot)
            tot += gsize[a] * gsize[b]
        hist = Hist(_PairBins(books, tuple(pairs), tuple(offs), grp), tot, columns, k=len(pairs))
        noisy = _release(path, "fit_structure", f"all {len(pairs)} field pairs on coarse groups", s_struct, 650,
                         lambda: records.histogram(hist, "structure tables")) * math.sqrt(len(pairs))
        mi = {(a, b): mutual_information(noisy[o:o + gsize[a] * gsize[b]].reshape(gsize[a], gsize[b]))
              for (a, b), o in zip(pairs, offs)}
        # Kruskal, ties by name order (deterministic)
        edges = max_spanning_forest([k for k, _ in sorted(mi.items(), key=lambda kv: (-kv[1], kv[0]))], names)
    else:
        pair_share += shares.structure
        edges = [(a, b) for a, b in public_tree if a in books and b in books]
    # the tree's two-way tables on the full codes, one release
    offs, tot = [], 0
    for a, b in edges:
        offs.append(tot)
        tot += books[a].size * books[b].size
    tree = Hist(_PairBins(books, tuple(edges), tuple(offs), None), tot, columns, k=len(edges))
    s_pairs = sig(pair_share, 1)
    k = math.sqrt(len(edges))
    noisy = _release(path, "fit_tree_pairs", f"{len(edges)} tree pairs on the fitted codes", s_pairs, 660,
                     lambda: records.histogram(tree, "tree pair tables")) * k
    tables = {(a, b): noisy[o:o + books[a].size * books[b].size].reshape(books[a].size, books[b].size)
              for (a, b), o in zip(edges, offs)}
    return books, edges, tables, s_pairs * k, s1


ORDINAL_FIELDS = ("ts", "td", "pkt", "byt", "length", "ttl")


def _coarse_groups(book: Codebook | AddressCodebook) -> np.ndarray:
    """Code -> structure group. Ordinal fields (times, sizes): STRUCTURE_GROUPS contiguous groups of
    about equal noisy mass, so a dependence on *when* or *how big* shows in the pair tables; nominal
    fields: the heaviest STRUCTURE_GROUPS−1 codes alone and the rest together."""
    mass = np.clip(np.asarray(book.mass, np.float64), 0, None)
    if isinstance(book, Codebook) and book.grid.name in ORDINAL_FIELDS and mass.sum() > 0:
        first = np.array([np.flatnonzero(book.grid.coarse == b)[0] for b in range(book.grid.n_coarse)])
        key = np.r_[book.exact, first[np.arange(book.grid.n_coarse)] + 0.5]  # a rest bin sorts after its start
        order = np.argsort(key, kind="stable")
        cum = np.cumsum(mass[order]) / mass.sum()
        g = np.empty(len(mass), np.int64)
        g[order] = np.minimum((cum * STRUCTURE_GROUPS - 1e-9).astype(np.int64), STRUCTURE_GROUPS - 1)
        return np.unique(g, return_inverse=True)[1].astype(np.int64)
    top = np.argsort(-mass, kind="stable")[: STRUCTURE_GROUPS - 1]
    g = np.full(len(mass), min(len(top), STRUCTURE_GROUPS - 1), np.int64)
    g[top] = np.arange(top.size)
    return g
