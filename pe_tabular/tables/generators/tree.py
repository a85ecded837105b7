"""A tree-structured generator fitted only on DP marginals (post-processing), used as a PE backend.

The tree (Chow & Liu 1968) is chosen from a DP release of every pair on coarse groups, its one- and
two-way marginals are noisy releases; sampling follows the tree from the root, each column drawn from its
conditional given its parent's (coarse) bin, then refined to a fine public bin by that column's one-way
marginal. With a task column (``synth --target``) the tree is rooted at it and every other column's released
pair with it, P(task | column), weighs that column's draw given the row's task value (p(x | parent, task) ∝
p(x | parent) · p(task | x): the tree-augmented naive-Bayes factorisation, Friedman, Geiger & Goldszmidt 1997,
with x's tree parent in place of TAN's second parent), so a column the tree hangs far from the task keeps its
relation to it in every draw and variation. ``vary`` resamples a degree-sized subset of columns (each with its
subtree, so no child contradicts a new parent) from their tree conditionals given the row's current parent
values — a local, structure-preserving move.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.population import Population
from pe_tabular.tables.labels import class_bin
from pe_tabular.tables.marginals import PAIR_BINS, Binning, Key, Resolutions, fine_to_coarse, pair_binning
from pe_tabular.tables.schema import Schema

Family = tuple[tuple[str, ...], np.ndarray, tuple[int, ...], int]  # parents, P(child | parents), their ks, child k


class TreeBackend:
    name = "tree"

    def __init__(self, schema: Schema, one_way: dict[str, np.ndarray], pairs: dict[Key, np.ndarray],
                 rng_root: str | None = None, decoders: dict[str, Any] | None = None,
                 res: Resolutions | None = None, task: str | None = None,
                 task_pairs: dict[Key, np.ndarray] | None = None):
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
        first = task or rng_root or schema.label or schema.names[0]
        self.order: list[tuple[str, str | None, np.ndarray | None]] = []
        self.fam: dict[str, Family] = {}  # a column's tree parent: ((parent,), P(child | parent), (k_parent,), k)
        self.refine: dict[str, Family] = {}  # (a network's; a tree refines by the one-way marginal alone)
        self.triples: dict[Key, np.ndarray] = {}
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
                        self.fam[b] = ((a,), cond, (ka,), kb)
        self._weigh_by_task(task, task_pairs)

    def _weigh_by_task(self, task: str | None, task_pairs: Mapping[Key, np.ndarray] | None) -> None:
        """P(task at kt | x at kx) for every column whose family does not hold the task (a child of the task
        already conditions on it); the task must be drawn before them (the first column of the order)."""
        self.task = task
        self.task_pairs = {tuple(k): np.asarray(v, float) for k, v in (task_pairs or {}).items()}  # for save/load
        self.likelihood: dict[str, tuple[np.ndarray, int, int]] = {}
        for (a, b), joint in self.task_pairs.items():
            x = b if a == task else a
            if x == task or task in self.parents_of(x):
                continue
            ka, kb = self._ks((a, b))
            j = np.asarray(joint, float).reshape(pair_binning(self.schema[a], ka).n_bins,
                                                 pair_binning(self.schema[b], kb).n_bins)
            jx, kx, kt = (j, ka, kb) if a == x else (j.T, kb, ka)
            self.likelihood[x] = (jx / np.maximum(jx.sum(1, keepdims=True), 1e-300), kx, kt)

    def _ks(self, key: Key) -> tuple[int, ...]:
        """The pair (or three-way) resolution of a released table."""
        return tuple(self.res.get(tuple(key), (PAIR_BINS,) * len(key)))

    def parents_of(self, name: str) -> tuple[str, ...]:
        """The columns ``name`` is drawn conditionally on (its family's parents, if any)."""
        return self.fam[name][0] if name in self.fam else ()

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

    def _at(self, df: dict[str, np.ndarray], name: str, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """The rows' parent bins at the resolutions of ``name``'s family table (an index into it)."""
        ps, _cond, kps, _k = self.fam[name]
        return tuple(self.f2c(p, k)[df[p][rows]] for p, k in zip(ps, kps))

    def _refined(self, name: str, df: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
        """(rows, fine bins): p1(fine) · P(pair bin | first parent) / P(pair bin), the child's finer dependence
        on its first parent (``refine``) spread over the fine bins."""
        (par,), cond, (kp,), kx = self.refine[name]
        p = self.p1[name]
        pb = self.f2c(name, kx)
        margin = np.bincount(pb, weights=p, minlength=cond.shape[1])
        ratio = np.divide(cond[self.f2c(par, kp)[df[par][rows]]][:, pb], margin[pb][None, :],
                          out=np.zeros((rows.size, p.size)), where=margin[pb][None, :] > 0)
        return p[None, :] * ratio

    def _draw_refined(self, name: str, coarse: np.ndarray, k: int, df: dict[str, np.ndarray], rows: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
        """A fine bin inside each row's coarse bin (the family table's resolution k) weighted by
        :meth:`_refined`. The family then holds the interaction at the three-way table's resolution and the first
        parent's dependence at the pair's (finer) one; the one-way marginal alone would flatten the latter
        inside a coarse bin."""
        p = self.p1[name]
        mask = self.f2c(name, k)[None, :] == coarse[:, None]
        w = np.where(mask, self._refined(name, df, rows), 0.0)
        empty = w.sum(1) <= 0
        if empty.any():  # the pair holds no mass inside the coarse bin: the one-way marginal decides
            w[empty] = np.where(mask[empty], p[None, :], 0.0) + mask[empty] * 1e-12
        return draw_rows(w, rng)

    def _inside(self, name: str, k: int, df: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
        """P(fine bin | its bin at resolution k): by the one-way marginal ((fine,)), or per row by
        :meth:`_refined` ((rows, fine)) where the column has a finer pair with its first parent."""
        p = self.p1[name]
        c = self.f2c(name, k)
        mass = np.bincount(c, weights=p, minlength=int(c.max()) + 1)
        inside = np.divide(p, mass[c], out=np.zeros_like(p), where=mass[c] > 0)
        if name not in self.refine:
            return inside
        q = self._refined(name, df, rows)
        qmass = (q @ (c[:, None] == np.arange(mass.size)[None, :]))[:, c]  # each row's mass per bin at k
        return np.where(qmass > 0, np.divide(q, qmass, out=np.zeros_like(q), where=qmass > 0), inside[None, :])

    def _task_weighted(self, df: dict[str, np.ndarray], name: str, rows: np.ndarray) -> np.ndarray:
        """(rows, fine bins) weights of ``name``'s draw: its family's conditional (or one-way marginal) spread
        over the fine bins (:meth:`_inside`), times P(task value of the row | fine bin's pair bin)."""
        p = self.p1[name]
        if name in self.fam:
            _ps, cond, _kps, kc = self.fam[name]
            w = cond[self._at(df, name, rows)][:, self.f2c(name, kc)] * self._inside(name, kc, df, rows)
        else:
            w = np.broadcast_to(p, (rows.size, p.size)).copy()
        lik, kx, kt = self.likelihood[name]
        t = self.f2c(self.task, kt)[df[self.task][rows]]  # type: ignore[index]
        w *= lik[self.f2c(name, kx)][:, t].T
        empty = w.sum(1) <= 0
        w[empty] = np.broadcast_to(p, (int(empty.sum()), p.size)) + 1e-12  # no support: the one-way marginal
        return w

    def _sample_columns(self, df: dict[str, np.ndarray], cols: list[str], rows: np.ndarray,
                        rng: np.random.Generator) -> None:
        """Draw ``cols`` (in order, parents first) for ``rows``: the one step of the tree and the network."""
        for name in cols:
            if name in self.likelihood:  # drawn after the task (the order's first column): weigh by it
                df[name][rows] = draw_rows(self._task_weighted(df, name, rows), rng)
            elif name in self.fam:
                _ps, cond, _kps, kc = self.fam[name]
                coarse = draw_rows(cond[self._at(df, name, rows)], rng)
                df[name][rows] = (self._draw_refined(name, coarse, kc, df, rows, rng) if name in self.refine
                                  else self._draw_fine(name, coarse, kc, rng))
            else:
                df[name][rows] = draw_rows(np.broadcast_to(self.p1[name], (rows.size, self.p1[name].size)), rng)

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
        if label is not None:  # the class's bin: a category, or the null bin after them for the missing class
            lab = self.schema.label
            bins[lab][:] = class_bin(self.schema[lab], label)
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

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The released marginals and decoders as named arrays (``PESynthesizer.save``'s ``generator.npz``):
        ``keys`` lists each marginal ([name], a pair [a, b, bins_a, bins_b], a task pair [a, b, bins_a, bins_b,
        "task"] with a the task, or a network's three-way table [a, b, c, bins_a, bins_b, bins_c]); ``m<i>`` is
        its table; ``d<j>_*`` the decoder of the j-th schema column; a network adds its ``order``."""
        tables = [*self.pairs.items(), *self.task_pairs.items(), *self.triples.items()]
        keys = ([[n] for n in self.p1] + [[*k, *self._ks(k)] for k in self.pairs]
                + [[*k, *self._ks(k), "task"] for k in self.task_pairs] + [[*k, *self._ks(k)] for k in self.triples])
        arrays = {f"m{i}": np.asarray(v) for i, v in enumerate([*self.p1.values(), *(t for _, t in tables)])}
        for name, dec in self.decoders.items():
            arrays.update(dec.to_arrays(f"d{self.schema.names.index(name)}_"))
        return {"keys": np.array(json.dumps(keys)), **arrays}

    @classmethod
    def from_arrays(cls, schema: Schema, z: Mapping[str, np.ndarray]) -> TreeBackend:
        """The generator :meth:`to_arrays` wrote, under the (resolved) schema it was fitted with."""
        m = saved_marginals(schema, z)
        return cls(schema, m.one_way, m.pairs, decoders=m.decoders, res=m.res,
                   task=next(iter(m.task_pairs))[0] if m.task_pairs else None, task_pairs=m.task_pairs)


@dataclass
class SavedMarginals:
    """What a saved generator holds, sorted by kind (:meth:`TreeBackend.to_arrays`)."""

    one_way: dict[str, np.ndarray] = field(default_factory=dict)
    pairs: dict[Key, np.ndarray] = field(default_factory=dict)
    task_pairs: dict[Key, np.ndarray] = field(default_factory=dict)
    triples: dict[Key, np.ndarray] = field(default_factory=dict)
    res: Resolutions = field(default_factory=dict)
    decoders: dict[str, Any] = field(default_factory=dict)


def saved_marginals(schema: Schema, z: Mapping[str, np.ndarray]) -> SavedMarginals:
    """Read ``keys``/``m<i>``/``d<j>_*`` back (every format :meth:`TreeBackend.to_arrays` has written)."""
    from pe_tabular.tables.resolution import Decoder

    out = SavedMarginals()
    for i, k in enumerate(json.loads(str(z["keys"]))):
        table = z[f"m{i}"]
        if len(k) == 1:
            out.one_way[k[0]] = table
            continue
        d = 3 if len(k) == 6 else 2
        key = tuple(k[:d])
        out.res[key] = tuple(k[d:2 * d])  # type: ignore[index]
        (out.task_pairs if len(k) == 5 else out.triples if d == 3 else out.pairs)[key] = table  # type: ignore[index]
    out.decoders = {n: Decoder.from_arrays(z, f"d{j}_") for j, n in enumerate(schema.names) if f"d{j}_sub" in z}
    return out


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
