"""A tree-structured generator fitted only on DP marginals (post-processing), used as a PE backend.

The tree (Chow & Liu 1968) is chosen from a DP release of every pair on coarse groups, its one- and
two-way marginals are noisy releases; sampling follows the tree from the root, each column drawn
from its conditional given its parent's (coarse) bin, then refined to a fine public bin by that
column's one-way marginal. ``vary`` resamples a degree-sized subset of columns (each with its subtree, so no
child contradicts a new parent) from their tree conditionals given the row's current parent values — a
local, structure-preserving move.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.population import Population
from pe_tabular.tables.marginals import PAIR_BINS, Binning, Key, Resolutions, fine_to_coarse, pair_binning
from pe_tabular.tables.schema import Schema


class TreeBackend:
    name = "tree"

    def __init__(self, schema: Schema, one_way: dict[str, np.ndarray], pairs: dict[Key, np.ndarray],
                 rng_root: str | None = None, decoders: dict[str, Any] | None = None,
                 res: Resolutions | None = None):
        self.schema = schema
        self.decoders = dict(decoders or {})  # within-bin decoding from released information (resolution.py)
        self.res: Resolutions = {tuple(k): tuple(v) for k, v in (res or {}).items()}  # type: ignore[misc]
        self.fine = {c.name: Binning.of(c) for c in schema.columns}
        self.p1 = {n: np.asarray(one_way[n], float) for n in schema.names}
        self.pairs = {tuple(k): np.asarray(v, float) for k, v in pairs.items()}  # kept for save/load
        self._f2c: dict[tuple[str, int], np.ndarray] = {}
        adj: dict[str, list[tuple[str, np.ndarray, int, int]]] = {n: [] for n in schema.names}
        for (a, b), joint in pairs.items():
            ka, kb = self.res.get((a, b), (PAIR_BINS, PAIR_BINS))
            j = np.asarray(joint, float).reshape(pair_binning(schema[a], ka).n_bins, pair_binning(schema[b], kb).n_bins)
            adj[a].append((b, j, ka, kb))
            adj[b].append((a, j.T, kb, ka))
        first = rng_root or schema.label or schema.names[0]
        self.order: list[tuple[str, str | None, np.ndarray | None]] = []
        self.parent: dict[str, tuple[str, np.ndarray, int, int]] = {}
        seen: set[str] = set()
        for root in [first, *[n for n in schema.names if n != first]]:  # every tree of the forest, BFS
            if root in seen:
                continue
            seen.add(root)
            queue = deque([root])
            self.order.append((root, None, None))  # a root (or a column without edges): its one-way marginal
            while queue:
                a = queue.popleft()
                for b, j, ka, kb in adj[a]:
                    if b not in seen:
                        seen.add(b)
                        queue.append(b)
                        cond = j / np.maximum(j.sum(1, keepdims=True), 1e-300)  # P(b at kb | a at ka)
                        self.order.append((b, a, cond))
                        self.parent[b] = (a, cond, ka, kb)

    def parents_of(self, name: str) -> tuple[str, ...]:
        """The columns ``name`` is drawn conditionally on (its tree parent, if any)."""
        return (self.parent[name][0],) if name in self.parent else ()

    def f2c(self, name: str, k: int) -> np.ndarray:
        """Fine bin → bin at pair resolution k (cached)."""
        if (name, k) not in self._f2c:
            self._f2c[(name, k)] = fine_to_coarse(self.schema[name], k)
        return self._f2c[(name, k)]

    def _draw_fine(self, name: str, coarse: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        p = self.p1[name]
        mask = self.f2c(name, k)[None, :] == coarse[:, None]
        w = np.where(mask, p[None, :], 0.0)
        empty = w.sum(1) == 0
        w[empty] = mask[empty] + 1e-12  # coarse bin with no one-way mass: uniform inside it
        return draw_rows(w, rng)

    def _sample_columns(self, df: dict[str, np.ndarray], cols: list[str], rows: np.ndarray,
                        rng: np.random.Generator) -> None:
        for name in cols:
            n = rows.size
            if name in self.parent:
                pa, cond, kp, kc = self.parent[name]
                pc = self.f2c(pa, kp)[df[pa][rows]]
                coarse = draw_rows(cond[pc], rng)
                df[name][rows] = self._draw_fine(name, coarse, kc, rng)
            else:
                df[name][rows] = draw_rows(np.broadcast_to(self.p1[name], (n, self.p1[name].size)), rng)

    def _frame(self, bins: dict[str, np.ndarray], rng: np.random.Generator) -> pd.DataFrame:
        out = {n: self.fine[n].values(rng, bins[n], self.decoders.get(n)) for n in self.schema.names}
        df = pd.DataFrame(out)
        for c in self.schema.columns:
            if not c.is_categorical:
                df[c.name] = pd.to_numeric(df[c.name], errors="coerce").astype(float)
        return df

    def random(self, n: int, *, label: Any = None, rng: np.random.Generator) -> Population:
        bins = {name: np.zeros(n, dtype=np.int64) for name in self.schema.names}
        rows = np.arange(n)
        order = [o[0] for o in self.order]
        if label is not None:
            lab = self.schema.label
            cats = [str(c) for c in self.schema[lab].categories]
            bins[lab][:] = cats.index(str(label))
            order = [c for c in order if c != lab]
        self._sample_columns(bins, order, rows, rng)
        return Population(self._frame(bins, rng), np.full(n, self.name, dtype=object), np.full(n, -1, np.int64),
                          bins_to_genome(bins, self.schema), None if label is None else np.full(n, label, object))

    def vary(self, pop: Population, degree: float, rng: np.random.Generator) -> Population:
        bins = genome_to_bins(pop.genome, self.schema) if pop.genome is not None else {
            n: self.fine[n].index(pop.samples[n]) for n in self.schema.names}
        n = len(pop)
        cols = [o[0] for o in self.order if o[0] != self.schema.label or pop.label is None]
        mut = rng.random((n, len(cols))) < degree
        none = ~mut.any(1)
        mut[np.flatnonzero(none), rng.integers(0, len(cols), none.sum())] = True
        at = {name: j for j, name in enumerate(cols)}
        for j, name in enumerate(cols):  # a resampled column takes its subtree along (parents come first):
            for pa in self.parents_of(name):  # a child kept as it was would contradict its new parent
                if pa in at:
                    mut[:, j] |= mut[:, at[pa]]
        for j, name in enumerate(cols):  # tree order: a resampled parent conditions its children
            rows = np.flatnonzero(mut[:, j])
            if rows.size:
                self._sample_columns(bins, [name], rows, rng)
        return Population(self._frame(bins, rng), np.full(n, self.name, dtype=object), pop.parent,
                          bins_to_genome(bins, self.schema), pop.label)


def draw_rows(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of a (rows, k) probability matrix (rows need not be normalised)."""
    c = np.cumsum(p, axis=1)
    u = rng.random(c.shape[0]) * c[:, -1]
    return np.minimum((c < u[:, None]).sum(1), p.shape[1] - 1).astype(np.int64)


def bins_to_genome(bins: dict[str, np.ndarray], schema: Schema) -> np.ndarray:
    return np.stack([bins[n] for n in schema.names], axis=1)


def genome_to_bins(genome: Any, schema: Schema) -> dict[str, np.ndarray]:
    g = np.asarray(genome, dtype=np.int64)
    return {n: g[:, j].copy() for j, n in enumerate(schema.names)}
