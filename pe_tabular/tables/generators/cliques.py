"""A degree-2 Bayesian network generator fitted only on DP marginals (post-processing), used as a PE backend.

PrivBayes (Zhang et al., TODS 2017) samples a Bayesian network whose columns each condition on at most k
earlier ones; here k = 2 and the families come from ``pe_tabular.tables.families`` (chosen from DP scores,
measured as three-way marginals, fitted to the one-way margins). A column without a second parent keeps its
tree edge (a measured pair, as :class:`~pe_tabular.tables.generators.tree.TreeBackend`), a root its one-way
marginal. Same contract as the tree generator: ``random(n)`` draws columns in the network's order, each from its
conditional given its parents' (coarse) bins, refined to a fine public bin by its one-way marginal; ``vary``
resamples a degree-sized subset of columns, each with every column below it, given the row's other values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pe_tabular.tables.generators.tree import TreeBackend, draw_rows
from pe_tabular.tables.marginals import PAIR_BINS, Binning, Key, Resolutions, pair_binning
from pe_tabular.tables.schema import Schema

Family = tuple[tuple[str, ...], np.ndarray, tuple[int, ...], int]  # parents, P(child | parents), their ks, child k


class BayesNetBackend(TreeBackend):
    """``families``: a child's three-way table keyed (parent, parent, child), a distribution over
    ``res[key]``'s bins; ``pairs``: the tree edges (either orientation) — a column's family when it has no
    three-way table, else its finer dependence on its first parent (see ``_draw_refined``); ``order``: every
    column, each after its parents (checked)."""

    name = "bn2"

    def __init__(self, schema: Schema, one_way: dict[str, np.ndarray], pairs: dict[Key, np.ndarray],
                 families: dict[Key, np.ndarray], order: list[str], decoders: dict[str, Any] | None = None,
                 res: Resolutions | None = None):
        self.schema = schema
        self.decoders = dict(decoders or {})
        self.res = {tuple(k): tuple(v) for k, v in (res or {}).items()}  # type: ignore[misc]
        self.fine = {c.name: Binning.of(c) for c in schema.columns}
        self.p1 = {n: np.asarray(one_way[n], float) for n in schema.names}
        self._f2c: dict[tuple[str, int], np.ndarray] = {}
        if sorted(order) != sorted(schema.names):
            raise ValueError("the network's order must list every column once")
        pos = {n: i for i, n in enumerate(order)}
        self.fam: dict[str, Family] = {}
        self.pairs: dict[Key, np.ndarray] = {}  # the released tables, as given (save() writes them)
        self.triples = {tuple(k): np.asarray(v, float) for k, v in families.items()}
        for key, joint in self.triples.items():
            ks = self._ks(key)
            t = joint.reshape([pair_binning(schema[n], k).n_bins for n, k in zip(key, ks)])
            self.fam[key[-1]] = (tuple(key[:-1]), _conditional(t), ks[:-1], ks[-1])
        self.refine: dict[str, Family] = {}  # a two-parent child's finer pair with its first parent
        for (a, b), joint in pairs.items():
            child, par = (b, a) if pos[a] < pos[b] else (a, b)
            ka, kb = self._ks((a, b))
            t = np.asarray(joint, float).reshape(pair_binning(schema[a], ka).n_bins, pair_binning(schema[b], kb).n_bins)
            if child == a:
                t, ka, kb = t.T, kb, ka
            self.pairs[(a, b)] = np.asarray(joint, float)
            if child not in self.fam:
                self.fam[child] = ((par,), _conditional(t), (ka,), kb)
            elif self.fam[child][0][0] == par and child not in self.refine:
                self.refine[child] = ((par,), _conditional(t), (ka,), kb)
            else:
                raise ValueError(f"column {child!r} has two families")
        for child, (ps, *_rest) in self.fam.items():
            if any(pos[p] >= pos[child] for p in ps):
                raise ValueError(f"column {child!r} comes before a parent: the network must be a DAG in its order")
        self.order = [(n, None, None) for n in order]  # random() reads the names
        self.parent = {}  # the tree's single-parent map is not used: parents_of and _sample_columns below are

    def _ks(self, key: Key) -> tuple[int, ...]:
        return tuple(self.res.get(tuple(key), (PAIR_BINS,) * len(key)))

    def parents_of(self, name: str) -> tuple[str, ...]:
        return self.fam[name][0] if name in self.fam else ()

    def _sample_columns(self, df: dict[str, np.ndarray], cols: list[str], rows: np.ndarray,
                        rng: np.random.Generator) -> None:
        for name in cols:
            if name in self.fam:
                ps, cond, kps, kc = self.fam[name]
                at = tuple(self.f2c(p, k)[df[p][rows]] for p, k in zip(ps, kps))
                coarse = draw_rows(cond[at], rng)
                if name in self.refine:
                    df[name][rows] = self._draw_refined(name, coarse, kc, df, rows, rng)
                else:
                    df[name][rows] = self._draw_fine(name, coarse, kc, rng)
            else:
                df[name][rows] = draw_rows(np.broadcast_to(self.p1[name], (rows.size, self.p1[name].size)), rng)

    def _draw_refined(self, name: str, coarse: np.ndarray, k: int, df: dict[str, np.ndarray], rows: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
        """A fine bin inside each row's coarse bin (the three-way table's resolution k) weighted by the child's
        finer pair with its first parent: P(fine) ∝ p1(fine) · P(pair bin | parent) / P(pair bin). The family
        then holds the interaction at the three-way table's resolution and the first parent's dependence at
        the pair's (finer) one; the one-way marginal alone would flatten the latter inside a coarse bin."""
        (par,), cond, (kp,), kx = self.refine[name]
        p = self.p1[name]
        pb = self.f2c(name, kx)
        margin = np.bincount(pb, weights=p, minlength=cond.shape[1])
        ratio = np.divide(cond[self.f2c(par, kp)[df[par][rows]]][:, pb], margin[pb][None, :],
                          out=np.zeros((rows.size, p.size)), where=margin[pb][None, :] > 0)
        mask = self.f2c(name, k)[None, :] == coarse[:, None]
        w = np.where(mask, p[None, :] * ratio, 0.0)
        empty = w.sum(1) <= 0
        if empty.any():  # the pair holds no mass inside the coarse bin: the one-way marginal decides
            w[empty] = np.where(mask[empty], p[None, :], 0.0) + mask[empty] * 1e-12
        return draw_rows(w, rng)


def _conditional(t: np.ndarray) -> np.ndarray:
    """P(last axis | the others) of a joint table; a parent cell with no mass gets the child's margin."""
    t = np.clip(np.asarray(t, float), 0, None)
    s = t.sum(axis=-1, keepdims=True)
    margin = t.sum(axis=tuple(range(t.ndim - 1)))
    margin = margin / margin.sum() if margin.sum() > 0 else np.full(margin.size, 1.0 / margin.size)
    return np.where(s > 0, t / np.where(s > 0, s, 1.0), margin)
