"""DP one-way marginals on public bins, and raking a weighted population onto them.

Optional stage of a tabular run ("calibration"): a declared slice of the budget measures every
column's histogram on *public* bins (Gaussian mechanism, Δ = 1 per column since a row falls in one
bin of each column); the PE candidates' prior uses them, and the final weighted population is raked
(iterative proportional fitting, Deming & Stephan 1940) onto them. Raking is post-processing of
released values, so it costs nothing extra; it corrects the mode-seeking bias of nearest-neighbour
votes on sparse candidate sets while the evolved population keeps the joint structure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pe_tabular.tables.schema import Column, Schema
from pe_tabular.tables.values import from_unit, to_unit

MAX_INTEGER_BINS = 100
NUMERIC_BINS = 64


@dataclass(frozen=True)
class Binning:
    """Public bins of one column: categories (+ null), or a grid on the public scale."""

    column: Column
    n_bins: int
    numeric_bins: int = NUMERIC_BINS
    max_integer_bins: int = MAX_INTEGER_BINS

    @classmethod
    def of(cls, c: Column, numeric_bins: int = NUMERIC_BINS, max_integer_bins: int = MAX_INTEGER_BINS) -> Binning:
        if c.is_categorical:
            return cls(c, len(c.categories) + 1, numeric_bins, max_integer_bins)
        if c.rounding and (c.upper - c.lower) / c.rounding + 1 <= max_integer_bins:
            return cls(c, int(round((c.upper - c.lower) / c.rounding)) + 2, numeric_bins, max_integer_bins)
        return cls(c, numeric_bins + 1, numeric_bins, max_integer_bins)

    @property
    def per_value(self) -> bool:
        c = self.column
        return bool(c.rounding) and (c.upper - c.lower) / c.rounding + 1 <= self.max_integer_bins

    def index(self, s: pd.Series) -> np.ndarray:
        c = self.column
        if c.is_categorical:
            lut = {str(v): i for i, v in enumerate(c.categories)}
            return s.astype(str).map(lut).fillna(len(lut)).to_numpy(np.int64)
        if pd.api.types.is_datetime64_any_dtype(s):
            x = s.astype("int64").to_numpy(float) / 1e9  # schema bounds are epoch seconds
            x[s.isna().to_numpy()] = np.nan
        else:
            x = pd.to_numeric(s, errors="coerce").to_numpy(float)
        null = np.isnan(x)
        if self.per_value:
            b = np.rint((np.where(null, c.lower, x) - c.lower) / c.rounding)
        else:
            b = np.floor(to_unit(c, np.where(null, c.lower, x)) * self.numeric_bins)
        b = np.clip(b, 0, self.n_bins - 2).astype(np.int64)
        return np.where(null, self.n_bins - 1, b)

    def values(self, rng: np.random.Generator, bins: np.ndarray) -> np.ndarray:
        """Representative values for bin indices (for drawing candidates from a marginal)."""
        c = self.column
        out = np.empty(bins.size, dtype=object)
        null = bins == self.n_bins - 1
        if c.is_categorical:
            cats = np.empty(len(c.categories), dtype=object)
            cats[:] = list(c.categories)
            out[~null] = cats[bins[~null]]
        elif self.per_value:
            out[~null] = c.lower + bins[~null] * c.rounding
        else:
            u = (bins[~null] + rng.random((~null).sum())) / self.numeric_bins
            from pe_tabular.tables.values import snap

            out[~null] = snap(c, from_unit(c, u))
        out[null] = None
        return out


PAIR_BINS = 16  # coarser bins for two-way marginals: fewer cells, more signal per cell

Key = tuple[str, ...]


def codes(df: pd.DataFrame, schema: Schema, key: Key) -> tuple[np.ndarray, int]:
    """Cell index of every row in the public (one- or two-way) marginal ``key``, and the cell count."""
    if len(key) == 1:
        b = Binning.of(schema[key[0]])
        return b.index(df[key[0]]), b.n_bins
    bins = [Binning.of(schema[k], PAIR_BINS, PAIR_BINS) for k in key]
    idx = [b.index(df[k]) for b, k in zip(bins, key)]
    dims = tuple(b.n_bins for b in bins)
    return np.ravel_multi_index(idx, dims), int(np.prod(dims))


def histogram(df: pd.DataFrame, schema: Schema, key: Key, weights: np.ndarray | None = None) -> np.ndarray:
    """Clean counts of marginal ``key`` (private input: only ever released with noise)."""
    c, size = codes(df, schema, key)
    return np.bincount(c, weights=weights, minlength=size).astype(float)


def histograms(df: pd.DataFrame, schema: Schema) -> dict[str, np.ndarray]:
    return {c.name: histogram(df, schema, (c.name,)) for c in schema.columns}


def to_distribution(noisy: np.ndarray) -> np.ndarray:
    """Noisy counts → distribution by Euclidean projection onto {p ≥ 0, Σp = noisy total}.

    Clipping negatives and renormalising adds roughly 0.4σ of spurious mass to every empty cell, which
    swamps sparse two-way marginals; the projection subtracts a common offset first (the
    least-squares estimate consistent with non-negativity), keeping empty cells empty."""
    y = np.asarray(noisy, dtype=float)
    total = y.sum()
    if not np.isfinite(total) or total <= 0:
        return np.full(y.size, 1.0 / y.size)
    u = np.sort(y)[::-1]
    css = np.cumsum(u) - total
    rho = np.nonzero(u - css / np.arange(1, y.size + 1) > 0)[0][-1]
    p = np.maximum(y - css[rho] / (rho + 1.0), 0.0)
    return p / p.sum()


def allowed_cells(schema: Schema, key: Key) -> np.ndarray:
    """Boolean mask of cells that can hold rows: the null bin only exists for nullable columns."""
    masks = []
    for name in key:
        c = schema[name]
        b = Binning.of(c) if len(key) == 1 else Binning.of(c, PAIR_BINS, PAIR_BINS)
        m = np.ones(b.n_bins, dtype=bool)
        m[-1] = c.nullable
        masks.append(m)
    out = masks[0]
    for m in masks[1:]:
        out = np.outer(out, m).ravel()
    return out


def estimate(noisy: np.ndarray, schema: Schema, key: Key) -> np.ndarray:
    """A released marginal as a distribution over the cells the public schema allows."""
    ok = allowed_cells(schema, key)
    p = np.zeros(noisy.size)
    p[ok] = to_distribution(np.asarray(noisy, dtype=float)[ok])
    return p


def fine_to_coarse(c: Column) -> np.ndarray:
    """Coarse (two-way) bin of every fine (one-way) bin of column ``c``, via each fine bin's
    representative value (a fixed generator: the map is a function of the public schema only)."""
    fine, coarse = Binning.of(c), Binning.of(c, PAIR_BINS, PAIR_BINS)
    reps = fine.values(np.random.default_rng(0), np.arange(fine.n_bins))
    return coarse.index(pd.Series(reps, dtype=object))


def combine_one_way(one: dict[str, tuple[np.ndarray, float]], pairs: dict[Key, tuple[np.ndarray, float]],
                    schema: Schema) -> dict[str, np.ndarray]:
    """Better one-way marginals from every release that measures them (post-processing).

    A column's one-way histogram (fine bins, noise σ₁ per cell) is not its only measurement: every
    released pair containing it measures its coarse margin too (row sums of the pair table, noise
    √(cells summed)·σ₂). Per coarse cell, the inverse-variance average of these independent unbiased
    estimates has the least variance of any unbiased linear combination; the fine cells inside a
    coarse cell then move by an equal share of the correction, which is the generalised least-squares
    solution when the fine cells share one noise scale (the hierarchical consistency of Hay et al.,
    VLDB 2010). ``one`` maps a column to its raw noisy counts and σ, ``pairs`` a pair key to its raw
    noisy counts and σ; the result maps each column of ``one`` to a distribution."""
    out: dict[str, np.ndarray] = {}
    for name, (y1, s1) in one.items():
        if s1 <= 0:  # released without noise (ε = ∞): already exact
            out[name] = estimate(y1, schema, (name,))
            continue
        c = schema[name]
        f2c = fine_to_coarse(c)
        nc = Binning.of(c, PAIR_BINS, PAIR_BINS).n_bins
        k = np.bincount(f2c, minlength=nc).astype(float)
        num = np.bincount(f2c, weights=y1, minlength=nc)
        coarse_1 = num.copy()
        prec = np.divide(1.0, k * s1**2, out=np.zeros(nc), where=k > 0)
        num *= prec
        for (a, b), (y2, s2) in pairs.items():
            if name not in (a, b) or s2 <= 0:
                continue
            na, nb = (Binning.of(schema[x], PAIR_BINS, PAIR_BINS).n_bins for x in (a, b))
            t = np.asarray(y2, float).reshape(na, nb)
            m, other = (t.sum(1), nb) if name == a else (t.sum(0), na)
            p = 1.0 / (other * s2**2)
            num += p * m
            prec = prec + p
        best = np.divide(num, prec, out=coarse_1.copy(), where=prec > 0)
        shift = np.divide(best - coarse_1, k, out=np.zeros(nc), where=k > 0)
        out[name] = estimate(np.asarray(y1, float) + shift[f2c], schema, (name,))
    return out


def consistent_pairs(one_way: dict[str, np.ndarray], pairs: dict[Key, np.ndarray], schema: Schema,
                     iterations: int = 200, support: float = 1e-6) -> dict[Key, np.ndarray]:
    """Two-way marginals adjusted to agree with the one-way ones (post-processing).

    Each noisy marginal is estimated on its own, so a pair's row and column sums disagree with the
    one-way estimates of the same columns; a generator built from the pairs then misses the one-way
    marginals, and raking onto both oscillates between them. The one-way estimates are the more precise
    margins (each coarse cell sums ~1–4 fine cells instead of 16 pair cells), so every pair table is
    fitted to them by iterative proportional fitting (Deming & Stephan 1940), which keeps its
    dependence (odds ratios) and zero pattern; a tiny ``support`` of the independent table lets a
    margin cell the pair missed receive mass."""
    out: dict[Key, np.ndarray] = {}
    for (a, b), joint in pairs.items():
        na, nb = (Binning.of(schema[x], PAIR_BINS, PAIR_BINS).n_bins for x in (a, b))
        ra = np.bincount(fine_to_coarse(schema[a]), weights=one_way[a], minlength=na)[:na]
        cb = np.bincount(fine_to_coarse(schema[b]), weights=one_way[b], minlength=nb)[:nb]
        ra, cb = ra / ra.sum(), cb / cb.sum()
        t = np.asarray(joint, float).reshape(na, nb)
        t = (1 - support) * t / max(t.sum(), 1e-300) + support * np.outer(ra, cb)
        for _ in range(iterations):
            t *= np.divide(ra, t.sum(1), out=np.zeros(na), where=t.sum(1) > 0)[:, None]
            t *= np.divide(cb, t.sum(0), out=np.zeros(nb), where=t.sum(0) > 0)[None, :]
        out[(a, b)] = (t / t.sum()).ravel()
    return out


def mutual_information(joint: np.ndarray) -> float:
    """I(A; B) of a (possibly unnormalised, non-negative) two-way table."""
    pj = joint / joint.sum() if joint.sum() > 0 else joint
    indep = pj.sum(1, keepdims=True) @ pj.sum(0, keepdims=True)
    nz = pj > 0
    return float(np.sum(pj[nz] * np.log(pj[nz] / indep[nz])))


def max_spanning_tree(weight: np.ndarray, names: list[str]) -> list[Key]:
    """Edges of the maximum spanning tree of a symmetric weight matrix (Prim), parent first."""
    in_tree, edges = {0}, []
    while len(in_tree) < len(names):
        best = max((weight[i, j], i, j) for i in in_tree for j in range(len(names)) if j not in in_tree)
        edges.append((names[best[1]], names[best[2]]))
        in_tree.add(best[2])
    return edges


STRUCTURE_GROUPS = 5  # groups per column in the all-pairs structure release


def coarse_groups(c: Column, one_way: np.ndarray, n_groups: int = STRUCTURE_GROUPS) -> np.ndarray:
    """Group id of every fine bin of ``c``, read off its *released* one-way marginal (post-processing):
    the n−1 most frequent categories each alone plus 'other'; numbers cut into equal-mass runs of
    bins, so a point mass (capital-gain = 0) gets a group of its own and a near-empty tail shares one.
    Coarse groups keep the all-pairs release small (≤ 25 cells per pair) while still showing which
    columns depend on which."""
    p = np.asarray(one_way, float)
    g = np.full(p.size, n_groups - 1, dtype=np.int64)  # null bin / rare categories: 'other'
    body = p[:-1]
    if c.is_categorical:
        top = np.argsort(-body, kind="stable")[: n_groups - 1]
        g[top] = np.arange(top.size)
    elif body.sum() > 0:
        mid = (np.cumsum(body) - body / 2) / body.sum()
        g[:-1] = np.minimum((mid * n_groups).astype(np.int64), n_groups - 1)
    return np.unique(g, return_inverse=True)[1].astype(np.int64)


def structure_counts(df: pd.DataFrame, schema: Schema, groups: dict[str, np.ndarray], pairs: list[Key]) -> np.ndarray:
    """Clean counts of every pair's two-way table on coarse groups, concatenated (private input: released
    once with noise; one row adds 1 to one cell of each table, so the L2 sensitivity is √len(pairs))."""
    gi = {n: groups[n][Binning.of(schema[n]).index(df[n])] for n in groups}
    parts = []
    for a, b in pairs:
        na, nb = int(groups[a].max()) + 1, int(groups[b].max()) + 1
        parts.append(np.bincount(gi[a] * nb + gi[b], minlength=na * nb).astype(float))
    return np.concatenate(parts)


def noisy_chow_liu(noisy: np.ndarray, groups: dict[str, np.ndarray], pairs: list[Key], names: list[str]) -> list[Key]:
    """Chow–Liu tree from the released all-pairs tables: mutual information of each table after the
    simplex projection (which keeps empty cells empty instead of inflating them with noise)."""
    idx = {n: i for i, n in enumerate(names)}
    mi = np.zeros((len(names), len(names)))
    pos = 0
    for a, b in pairs:
        na, nb = int(groups[a].max()) + 1, int(groups[b].max()) + 1
        t = to_distribution(noisy[pos:pos + na * nb]).reshape(na, nb)
        pos += na * nb
        mi[idx[a], idx[b]] = mi[idx[b], idx[a]] = mutual_information(t)
    return max_spanning_tree(mi, names)


def rake(df: pd.DataFrame, weights: np.ndarray, schema: Schema, targets: dict, iterations: int = 30,
         max_ratio: float = 20.0) -> np.ndarray:
    """Reweight rows so each marginal (key: column name or tuple of names) matches its target."""
    w = np.asarray(weights, dtype=float).copy()
    if w.sum() <= 0:
        w[:] = 1.0
    w /= w.sum()
    keys = {k: (k,) if isinstance(k, str) else tuple(k) for k in targets}
    idx = {k: codes(df, schema, key)[0] for k, key in keys.items()}
    for _ in range(iterations):
        for k, t in targets.items():
            cur = np.bincount(idx[k], weights=w, minlength=t.size)
            cur = cur / cur.sum()
            ratio = np.where(cur > 0, t / np.maximum(cur, 1e-300), 1.0)
            w *= np.clip(ratio, 1.0 / max_ratio, max_ratio)[idx[k]]
            w /= w.sum()
    return w
