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

from .distance.tabular import from_unit, to_unit
from .schema import Column, Schema

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
            from .backends.statistical import snap

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


def chow_liu_pairs(df: pd.DataFrame, weights: np.ndarray, schema: Schema, names: list[str]) -> list[Key]:
    """Edges of a maximum-mutual-information spanning tree (Chow & Liu 1968) of the *synthetic*
    weighted population: free structure learning, since the population is already DP."""
    w = np.asarray(weights, dtype=float)
    w = w / w.sum() if w.sum() > 0 else np.full(len(df), 1.0 / len(df))
    nbins = {n: Binning.of(schema[n], PAIR_BINS, PAIR_BINS).n_bins for n in names}
    mi = np.zeros((len(names), len(names)))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            b = names[j]
            pj = histogram(df, schema, (a, b), w).reshape(nbins[a], nbins[b])
            indep = pj.sum(1, keepdims=True) @ pj.sum(0, keepdims=True)
            nz = pj > 0
            mi[i, j] = mi[j, i] = float(np.sum(pj[nz] * np.log(pj[nz] / indep[nz])))
    # Prim's algorithm on -MI
    in_tree, edges = {0}, []
    while len(in_tree) < len(names):
        best = max((mi[i, j], i, j) for i in in_tree for j in range(len(names)) if j not in in_tree)
        edges.append((names[best[1]], names[best[2]]))
        in_tree.add(best[2])
    return edges


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
