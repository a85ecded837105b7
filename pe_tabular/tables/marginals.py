"""DP one-way marginals on public bins, and raking a weighted population onto them.

Optional stage of a tabular run ("calibration"): a declared slice of the budget measures every
column's histogram on *public* bins (Gaussian mechanism, Δ = 1 per column since a row falls in one
bin of each column); the PE candidates' prior uses them, and the final weighted population is raked
(iterative proportional fitting, Deming & Stephan 1940) onto them. Raking is post-processing of
released values, so it costs nothing extra; it corrects the mode-seeking bias of nearest-neighbour
votes on sparse candidate sets while the evolved population keeps the joint structure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.io_utils import epoch_seconds
from pe_tabular.measure.information import mutual_information
from pe_tabular.measure.measurement import Measurement
from pe_tabular.measure.raking import fit_table_to_margins
from pe_tabular.measure.spanning import max_spanning_forest, max_spanning_tree, ranked_pairs
from pe_tabular.tables.cells import CategoryLookup
from pe_tabular.tables.schema import Column, Schema
from pe_tabular.tables.values import from_unit, to_unit

#: With a DP schema, a nullable column's missing cell is kept only when its combined estimate stands
#: MISSING_SIGNIFICANCE standard deviations above zero. Why: a DP schema makes every column but the label
#: nullable (a public default, not evidence that values are missing), so columns with no missing value get a
#: missing cell whose noise alone would put ~2 % of a small table's output rows at "missing"; a share that the
#: noise cannot tell from zero is read as zero (post-processing of the released counts). A public schema's
#: `nullable` is knowledge that missing values occur, so its released share is kept as it is. 3σ, as the DP
#: schema's own released decisions: at 2σ one of a 20-column table's empty cells passed by chance in about
#: a third of the runs (mlc_churn, benchmarks/real_files.py); the bias this adds to a real share is < 3σ/n.
MISSING_SIGNIFICANCE = 3.0
MAX_INTEGER_BINS = 100
NUMERIC_BINS = 64


@dataclass(frozen=True, eq=False)
class Binning:
    """Bins of one column: categories (+ null); one bin per value of a small public grid; an equal-width
    grid on the public scale; or, for a number with ``special_values`` / ``bin_edges`` (public, or found by
    the DP resolution stage, ``pe_tabular.tables.resolution``), *mixed* bins: each special value (a point
    mass) is a bin of its own, the remaining values fall into intervals between the edges. A coarser mixed
    binning (fewer ``numeric_bins``) groups the fine bins: the first-listed (heaviest) special values keep
    their own bins, the rest are merged in value order into runs of about equal size (``group``)."""

    column: Column
    n_bins: int
    numeric_bins: int = NUMERIC_BINS
    max_integer_bins: int = MAX_INTEGER_BINS
    kind: str = "grid"  # category | value | grid | mixed
    points: tuple[float, ...] = ()
    edges: tuple[float, ...] = ()  # interior interval edges of a mixed binning
    n_intervals: int = 0
    group: tuple[int, ...] | None = None  # mixed, coarsened: fine bin -> bin of this binning

    @classmethod
    def of(cls, c: Column, numeric_bins: int = NUMERIC_BINS, max_integer_bins: int = MAX_INTEGER_BINS,
           max_categories: int | None = None) -> Binning:
        """``max_categories``: categories beyond the first max_categories − 1 listed share one bin."""
        return _binning(c, numeric_bins, max_integer_bins, max_categories)

    @property
    def per_value(self) -> bool:
        return self.kind == "value"

    def fine(self) -> Binning:
        """The uncoarsened mixed binning this one groups (itself when not coarsened)."""
        if self.group is None:
            return self
        return Binning(self.column, len(self.points) + self.n_intervals + 1, self.numeric_bins, self.max_integer_bins,
                       "mixed", self.points, self.edges, self.n_intervals, None)

    def _numbers(self, s: pd.Series) -> np.ndarray:
        if pd.api.types.is_datetime64_any_dtype(s):
            return epoch_seconds(s).to_numpy(float)  # schema bounds are epoch seconds
        return pd.to_numeric(s, errors="coerce").to_numpy(float)

    def index(self, s: pd.Series) -> np.ndarray:
        c = self.column
        if self.kind == "category":
            b = CategoryLookup(c.categories, c.type == "boolean").codes(s)  # cell by cell: 12 == 12.0 == "12"
            b = np.where(b < 0, len(c.categories), b)  # missing (or unknown): the last bin
            if self.group is not None:
                b = np.append(np.asarray(self.group, np.int64), self.n_bins - 1)[b]
            return b
        x = self._numbers(s)
        null = np.isnan(x)
        xf = np.where(null, c.lower, x)
        if self.kind == "mixed":
            b = self._mixed_index(xf)
            if self.group is not None:
                b = np.asarray(self.group, np.int64)[b]
            return np.where(null, self.n_bins - 1, b)
        if self.kind == "value":
            b = np.rint((xf - c.lower) / c.rounding)
        else:
            b = np.floor(to_unit(c, xf) * self.numeric_bins)
        b = np.clip(b, 0, self.n_bins - 2).astype(np.int64)
        return np.where(null, self.n_bins - 1, b)

    def _mixed_index(self, x: np.ndarray) -> np.ndarray:
        p = len(self.points)
        pts = np.asarray(self.points, float)
        if self.n_intervals:
            b = p + np.searchsorted(np.asarray(self.edges, float), x, side="right").astype(np.int64)
        else:  # the special values enumerate the whole public grid: an off-grid value goes to the nearest
            order = np.argsort(pts)
            near = np.clip(np.searchsorted(pts[order], x), 1, p - 1) if p > 1 else np.zeros(x.size, np.int64)
            lo_, hi_ = pts[order][np.maximum(near - 1, 0)], pts[order][near]
            b = order[np.where(np.abs(x - lo_) <= np.abs(x - hi_), np.maximum(near - 1, 0), near)]
        for j, v in enumerate(pts):
            b = np.where(np.isclose(x, v, rtol=1e-9, atol=1e-12), j, b)
        return b.astype(np.int64)

    def interval(self, i: int) -> tuple[float, float]:
        """Raw-value range [a, b) of interval ``i`` of a mixed binning."""
        c = self.column
        full = [c.lower, *self.edges, c.upper]
        return float(full[i]), float(full[i + 1])

    def values(self, rng: np.random.Generator, bins: np.ndarray, decoder: Any = None) -> np.ndarray:
        """Values for bin indices (drawing candidates from a marginal): a category or point mass as itself, an
        interval by ``decoder`` (released within-bin information, ``resolution.Decoder``) or else uniformly
        on the public scale, a grid bin uniformly; snapped onto the public precision grid."""
        from pe_tabular.tables.values import snap

        c = self.column
        bins = np.asarray(bins, np.int64)
        out = np.empty(bins.size, dtype=object)
        null = bins == self.n_bins - 1
        if self.kind == "category":
            if self.group is not None:
                raise ValueError(f"column {c.name!r}: values() needs the ungrouped categories")
            cats = np.empty(len(c.categories), dtype=object)
            cats[:] = list(c.categories)
            out[~null] = cats[bins[~null]]
        elif self.kind == "value":
            out[~null] = c.lower + bins[~null] * c.rounding
        elif self.kind == "mixed":
            fine = self.fine()
            fb = bins[~null]
            if self.group is not None:  # a member fine bin, uniformly
                g = np.asarray(self.group, np.int64)
                members = [np.flatnonzero(g == k) for k in range(self.n_bins - 1)]
                fb = np.array([m[rng.integers(m.size)] for m in (members[k] for k in fb)], np.int64)
            out[~null] = fine._mixed_values(rng, fb, decoder)
        else:
            u = (bins[~null] + rng.random((~null).sum())) / self.numeric_bins
            out[~null] = snap(c, from_unit(c, u))
        out[null] = None
        return out

    def _mixed_values(self, rng: np.random.Generator, fb: np.ndarray, decoder: Any) -> np.ndarray:
        from pe_tabular.tables.values import snap

        c = self.column
        p = len(self.points)
        v = np.empty(fb.size, float)
        pt = fb < p
        v[pt] = np.asarray(self.points, float)[fb[pt]]
        iv = np.flatnonzero(~pt)
        if iv.size:
            k = fb[iv] - p
            if decoder is not None:
                v[iv] = decoder.draw(rng, k)
            else:
                full = np.concatenate([[c.lower], np.asarray(self.edges, float), [c.upper]])
                a, b = to_unit(c, full[k]), to_unit(c, full[k + 1])
                v[iv] = from_unit(c, a + rng.random(k.size) * (b - a))
            v[iv] = snap(c, v[iv])
        return v

    def labels(self) -> list[str]:
        """A short label per bin (for reports)."""
        from pe_tabular.tables.values import from_unit as fu

        c = self.column

        def fmt(v: float) -> str:
            return pd.Timestamp(v, unit="s").strftime("%Y-%m-%d") if c.type == "datetime" else f"{v:.4g}"

        if self.kind == "category":
            return [str(v) for v in c.categories] + ["(missing)"]
        if self.kind == "value":
            return [fmt(c.lower + i * c.rounding) for i in range(self.n_bins - 1)] + ["(missing)"]
        if self.kind == "grid":
            return [fmt(float(fu(c, np.array([i / self.numeric_bins]))[0])) for i in range(self.n_bins - 1)] + \
                ["(missing)"]
        fine = self.fine()
        names = [f"={fmt(v)}" for v in self.points] + \
            [f"[{fmt(fine.interval(i)[0])}, {fmt(fine.interval(i)[1])})" for i in range(self.n_intervals)]
        if self.group is None:
            return names + ["(missing)"]
        g = np.asarray(self.group)
        return ["|".join(names[j] for j in np.flatnonzero(g == k)[:3]) for k in range(self.n_bins - 1)] + \
            ["(missing)"]


def _grid_enumerated(c: Column) -> bool:
    """The special values list every value of the column's public precision grid."""
    if not c.rounding or not c.special_values:
        return False
    return (c.upper - c.lower) / c.rounding + 1 <= len(c.special_values) + 1e-9


@lru_cache(maxsize=8192)
def _binning(c: Column, numeric_bins: int, max_integer_bins: int, max_categories: int | None = None) -> Binning:
    if c.is_categorical:
        k = len(c.categories)
        if max_categories is None or k <= max_categories:
            return Binning(c, k + 1, numeric_bins, max_integer_bins, "category")
        group = tuple(min(i, max_categories - 1) for i in range(k))
        return Binning(c, max_categories + 1, numeric_bins, max_integer_bins, "category", group=group)
    if c.special_values or c.bin_edges:
        points = tuple(float(v) for v in c.special_values if c.lower <= v <= c.upper)
        if c.bin_edges:
            edges = tuple(float(e) for e in c.bin_edges if c.lower < e < c.upper)
        elif _grid_enumerated(c):
            edges = None
        else:  # public special values on an equal-width grid of the public scale
            k = max(numeric_bins - len(points), 1)
            edges = tuple(np.unique(from_unit(c, np.arange(1, k) / k)).tolist())
        n_int = 0 if edges is None else len(edges) + 1
        edges = edges or ()
        n_fine = len(points) + n_int
        if n_fine <= numeric_bins:
            return Binning(c, n_fine + 1, numeric_bins, max_integer_bins, "mixed", points, edges, n_int)
        group = _coarsen(c, points, edges, n_int, numeric_bins)
        return Binning(c, int(max(group)) + 2, numeric_bins, max_integer_bins, "mixed", points, edges, n_int,
                       tuple(int(g) for g in group))
    if c.rounding and (c.upper - c.lower) / c.rounding + 1 <= max_integer_bins:
        return Binning(c, int(round((c.upper - c.lower) / c.rounding)) + 2, numeric_bins, max_integer_bins, "value")
    return Binning(c, numeric_bins + 1, numeric_bins, max_integer_bins, "grid")


def _coarsen(c: Column, points: tuple[float, ...], edges: tuple[float, ...], n_int: int, k: int) -> np.ndarray:
    """Group of every fine bin for at most ``k`` groups: the heaviest special values (listed first) keep a group
    each, up to k/2 of them; every other fine bin joins a run of value-adjacent bins of about equal length."""
    p = len(points)
    kept = min(p, k // 2)
    full = [c.lower, *edges, c.upper]
    others = sorted([(points[j], j) for j in range(kept, p)] +
                    [((full[i] + full[i + 1]) / 2, p + i) for i in range(n_int)])
    group = np.zeros(p + n_int, np.int64)
    group[:kept] = np.arange(kept)
    if others:
        for g, chunk in enumerate(np.array_split(np.arange(len(others)), min(k - kept, len(others)))):
            group[[others[i][1] for i in chunk]] = kept + g
    return group


PAIR_BINS = 16  # coarser bins for two-way marginals: fewer cells, more signal per cell


def pair_binning(c: Column, k: int = PAIR_BINS) -> Binning:
    """A column's bins in a two-way marginal of resolution ``k``: at most k numbers' bins, and at most k − 1
    categories of their own (the first listed: the synthesizer lists them by released frequency) + the rest."""
    return Binning.of(c, k, k, k)


Key = tuple[str, ...]
Resolutions = dict[Key, tuple[int, int]]  # a pair marginal's resolution k per column (default PAIR_BINS)
MIN_PAIR_BINS = 4
PAIR_CELL_SIGMAS = 3.0  # a pair table's cells should hold this many σ of its noise on average


def fine_size(c: Column) -> int:
    """Non-null bins of a column's one-way binning (the finest resolution a pair can use)."""
    return Binning.of(c).n_bins - 1


def pair_resolutions(schema: Schema, pairs: list[Key], n_rows: float, sigma: float) -> Resolutions:
    """Per pair, the finest resolution its noise supports (a public function of released values): start at
    both columns' one-way bins and coarsen the larger side until the table's cells hold PAIR_CELL_SIGMAS·σ
    rows on average (never below MIN_PAIR_BINS). A category × number pair of a large table keeps every
    one-way bin (age × age group is then exact), a number × number pair of a small table at small ε is cut
    to a few equal-mass groups per side."""
    cap = max(n_rows, 1.0) / max(PAIR_CELL_SIGMAS * sigma, 1e-9)
    out: Resolutions = {}
    for a, b in pairs:
        ka, kb = fine_size(schema[a]), fine_size(schema[b])
        while ka * kb > cap and max(ka, kb) > MIN_PAIR_BINS:
            if ka >= kb:
                ka = max(MIN_PAIR_BINS, int(np.ceil(ka / 1.5)))
            else:
                kb = max(MIN_PAIR_BINS, int(np.ceil(kb / 1.5)))
        out[(a, b)] = (ka, kb)
    return out


def _pair_ks(key: Key, res: Resolutions | None) -> tuple[int, int]:
    return (res or {}).get(tuple(key), (PAIR_BINS, PAIR_BINS))  # type: ignore[return-value]


def codes(df: pd.DataFrame, schema: Schema, key: Key, res: Resolutions | None = None) -> tuple[np.ndarray, int]:
    """Cell index of every row in the public (one- or two-way) marginal ``key``, and the cell count."""
    if len(key) == 1:
        b = Binning.of(schema[key[0]])
        return b.index(df[key[0]]), b.n_bins
    bins = [pair_binning(schema[k], kk) for k, kk in zip(key, _pair_ks(key, res))]
    idx = [b.index(df[k]) for b, k in zip(bins, key)]
    dims = tuple(b.n_bins for b in bins)
    return np.ravel_multi_index(idx, dims), int(np.prod(dims))


def histogram(df: pd.DataFrame, schema: Schema, key: Key, weights: np.ndarray | None = None,
              res: Resolutions | None = None) -> np.ndarray:
    """Clean counts of marginal ``key`` (private input: only ever released with noise)."""
    c, size = codes(df, schema, key, res)
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


def allowed_cells(schema: Schema, key: Key, res: Resolutions | None = None) -> np.ndarray:
    """Boolean mask of cells that can hold rows: the null bin only exists for nullable columns."""
    masks = []
    for name, k in zip(key, _pair_ks(key, res)):
        c = schema[name]
        b = Binning.of(c) if len(key) == 1 else pair_binning(c, k)
        m = np.ones(b.n_bins, dtype=bool)
        m[-1] = c.nullable
        masks.append(m)
    out = masks[0]
    for m in masks[1:]:
        out = np.outer(out, m).ravel()
    return out


def estimate(noisy: np.ndarray, schema: Schema, key: Key, res: Resolutions | None = None) -> np.ndarray:
    """A released marginal as a distribution over the cells the public schema allows."""
    ok = allowed_cells(schema, key, res)
    p = np.zeros(noisy.size)
    p[ok] = to_distribution(np.asarray(noisy, dtype=float)[ok])
    return p


def fine_to_coarse(c: Column, k: int = PAIR_BINS) -> np.ndarray:
    """Coarse (two-way, resolution k) bin of every fine (one-way) bin of column ``c``, via each fine bin's
    representative value (a fixed generator: the map is a function of the public schema only)."""
    fine, coarse = Binning.of(c), pair_binning(c, k)
    same_intervals = bool(c.bin_edges) or _grid_enumerated(c)  # else each binning has its own grid
    if fine.kind == "mixed" and fine.group is None and coarse.kind == "mixed" and same_intervals:
        g = np.arange(fine.n_bins - 1) if coarse.group is None else np.asarray(coarse.group, np.int64)
        return np.append(g, coarse.n_bins - 1)
    reps = fine.values(np.random.default_rng(0), np.arange(fine.n_bins))
    return coarse.index(pd.Series(reps, dtype=object))


def combine_one_way(one: Sequence[Measurement[Key]], pairs: Sequence[Measurement[Key]], schema: Schema,
                    res: Resolutions | None = None) -> dict[str, np.ndarray]:
    """Better one-way marginals from every release that measures them (post-processing).

    A column's one-way histogram (fine bins, noise σ₁ per cell) is not its only measurement: every
    released pair containing it measures its margin at the pair's resolution too (row sums of the pair
    table, noise √(cells summed)·σ₂). Per coarse cell, the inverse-variance average of the two estimates has
    the least variance of any unbiased linear combination; the fine cells inside a coarse cell then move by
    an equal share of the correction, which is the generalised least-squares solution when the fine cells
    share one noise scale (the hierarchical consistency of Hay et al., VLDB 2010). Pairs are folded in one
    after the other (the running estimate's variance is tracked per fine cell). ``one`` holds the one-way
    measurements (query: a 1-tuple), ``pairs`` the pair measurements (query: (a, b)), raw noisy counts and σ;
    the result maps each column of ``one`` to a distribution."""
    out: dict[str, np.ndarray] = {}
    for (name,), y1, s1 in ((m.query, m.noisy, m.sigma) for m in one):
        if s1 <= 0:  # released without noise (ε = ∞): already exact
            out[name] = estimate(y1, schema, (name,))
            continue
        c = schema[name]
        y = np.asarray(y1, float).copy()
        var = np.full(y.size, s1**2)  # variance of each fine cell's running estimate
        for (a, b), y2, s2 in ((m.query, m.noisy, m.sigma) for m in pairs):
            if name not in (a, b) or s2 <= 0:
                continue
            ka, kb = _pair_ks((a, b), res)
            na, nb = pair_binning(schema[a], ka).n_bins, pair_binning(schema[b], kb).n_bins
            t = np.asarray(y2, float).reshape(na, nb)
            m, other, k = (t.sum(1), nb, ka) if name == a else (t.sum(0), na, kb)
            f2c = fine_to_coarse(c, k)
            nc = m.size
            cnt = np.bincount(f2c, minlength=nc).astype(float)
            cur = np.bincount(f2c, weights=y, minlength=nc)
            v1 = np.bincount(f2c, weights=var, minlength=nc)
            v2 = other * s2**2
            best = np.divide(cur * v2 + m * v1, v1 + v2, out=cur.copy(), where=(v1 + v2) > 0)
            y = y + np.divide(best - cur, cnt, out=np.zeros(nc), where=cnt > 0)[f2c]
            shrunk = np.divide(v1 * v2 / (v1 + v2), v1, out=np.ones(nc), where=v1 > 0)  # variance factor
            var = var * shrunk[f2c]
        if c.nullable and schema.dp_cost and y[-1] < MISSING_SIGNIFICANCE * math.sqrt(var[-1]):
            y[-1] = 0.0  # a missing share the noise cannot tell from zero (MISSING_SIGNIFICANCE)
        out[name] = estimate(shrink(y, s1, Binning.of(c)), schema, (name,))
    return out



def shrink(y: np.ndarray, sigma: float, b: Binning) -> np.ndarray:
    """Positive-part James–Stein shrinkage of noisy counts toward their mean, over the cells a public prior
    makes exchangeable: the categories of a column, or the intervals of a mixed binning (equal-mass DP
    quantile bins: equal counts is their prior). A column of many small cells (50 states of ~80 rows under
    σ ≈ 36) is then estimated near uniform instead of at noise-sized errors, a column with real spread keeps
    it (James & Stein 1961; post-processing of the release)."""
    y = np.asarray(y, float).copy()
    if b.kind == "category" and b.group is None:
        cells = np.arange(b.n_bins - 1)
    elif b.kind == "mixed" and b.group is None:
        cells = len(b.points) + np.arange(b.n_intervals)
    else:
        return y
    if cells.size < 4 or sigma <= 0:
        return y
    v = y[cells]
    m = v.mean()
    ss = float(((v - m) ** 2).sum())
    lam = max(0.0, 1.0 - (cells.size - 3) * sigma**2 / ss) if ss > 0 else 0.0
    y[cells] = m + lam * (v - m)
    return y


def consistent_pairs(one_way: dict[str, np.ndarray], pairs: dict[Key, np.ndarray], schema: Schema,
                     iterations: int = 200, support: float = 1e-6, res: Resolutions | None = None
                     ) -> dict[Key, np.ndarray]:
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
        ka, kb = _pair_ks((a, b), res)
        na, nb = pair_binning(schema[a], ka).n_bins, pair_binning(schema[b], kb).n_bins
        ra = np.bincount(fine_to_coarse(schema[a], ka), weights=one_way[a], minlength=na)[:na]
        cb = np.bincount(fine_to_coarse(schema[b], kb), weights=one_way[b], minlength=nb)[:nb]
        ra, cb = ra / ra.sum(), cb / cb.sum()
        t = np.asarray(joint, float).reshape(na, nb)
        t = fit_table_to_margins((1 - support) * t / max(t.sum(), 1e-300) + support * np.outer(ra, cb), ra, cb,
                                 iterations)
        out[(a, b)] = (t / t.sum()).ravel()
    return out


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
        order = value_order(Binning.of(c))
        b = body[order]
        mid = (np.cumsum(b) - b / 2) / b.sum()
        g[order] = np.minimum((mid * n_groups).astype(np.int64), n_groups - 1)
    return np.unique(g, return_inverse=True)[1].astype(np.int64)


def by_frequency(c: Column, one_way: np.ndarray) -> tuple[Column, np.ndarray]:
    """``c`` with its categories listed by released frequency, heaviest first (pair_binning keeps the first
    PAIR_BINS − 1 of them apart), and the permutation of its one-way bins: new bin i = old bin perm[i]."""
    from dataclasses import replace

    p = np.asarray(one_way, float)[:-1]
    order = np.argsort(-p, kind="stable")
    return replace(c, categories=tuple(c.categories[i] for i in order)), np.append(order, p.size)


def value_order(b: Binning) -> np.ndarray:
    """The non-null bins of a numeric binning in increasing value (a mixed binning lists its points first)."""
    n = b.n_bins - 1
    if b.kind != "mixed" or b.group is not None:
        return np.arange(n)
    full = [b.column.lower, *b.edges, b.column.upper]
    pos = list(b.points) + [(full[i] + full[i + 1]) / 2 for i in range(b.n_intervals)]
    return np.argsort(np.asarray(pos, float), kind="stable")


def structure_counts(df: pd.DataFrame, schema: Schema, groups: dict[str, np.ndarray], pairs: list[Key]) -> np.ndarray:
    """Clean counts of every pair's two-way table on coarse groups, concatenated (private input: released
    once with noise; one row adds 1 to one cell of each table, so the L2 sensitivity is √len(pairs))."""
    gi = {n: groups[n][Binning.of(schema[n]).index(df[n])] for n in groups}
    parts = []
    for a, b in pairs:
        na, nb = int(groups[a].max()) + 1, int(groups[b].max()) + 1
        parts.append(np.bincount(gi[a] * nb + gi[b], minlength=na * nb).astype(float))
    return np.concatenate(parts)


EDGE_Z = 3.0  # an edge must beat its simulated no-dependence MI by this many standard deviations
NULL_DRAWS = 24


def noisy_chow_liu(noisy: np.ndarray, groups: dict[str, np.ndarray], pairs: list[Key], names: list[str],
                   sigma: float | None = None, n_rows: float | None = None, z: float = EDGE_Z) -> list[Key]:
    """Chow–Liu tree (or forest) from the released all-pairs tables: mutual information of each table after
    the simplex projection (which keeps empty cells empty instead of inflating them with noise).

    With ``sigma`` (the release's noise) and ``n_rows`` (a released row count), an edge joins only if its MI
    beats what noise alone gives a table without dependence: NULL_DRAWS tables are simulated from the outer
    product of the pair's released (projected) margins scaled to ``n_rows``, with the release's Gaussian noise
    added and put through the same projection; the edge needs MI above the simulated mean + ``z`` standard
    deviations. Columns with no such edge stay independent, so no pair is spent on a dependence that the
    noise invented. Everything here is post-processing of released values (the simulation's generator is
    fixed and public)."""
    idx = {n: i for i, n in enumerate(names)}
    mi = np.zeros((len(names), len(names)))
    ok = np.ones_like(mi, dtype=bool)
    rng = np.random.default_rng(0)
    pos = 0
    for a, b in pairs:
        na, nb = int(groups[a].max()) + 1, int(groups[b].max()) + 1
        raw = np.asarray(noisy[pos:pos + na * nb], float)
        pos += na * nb
        m = mutual_information(to_distribution(raw).reshape(na, nb))
        mi[idx[a], idx[b]] = mi[idx[b], idx[a]] = m
        if sigma is not None and n_rows is not None and sigma > 0:
            r = raw.reshape(na, nb)
            indep = np.outer(to_distribution(r.sum(1)), to_distribution(r.sum(0))).ravel() * max(n_rows, 1.0)
            sims = indep[None, :] + rng.normal(0.0, sigma, (NULL_DRAWS, indep.size))
            null = np.array([mutual_information(to_distribution(x).reshape(na, nb)) for x in sims])
            ok[idx[a], idx[b]] = ok[idx[b], idx[a]] = m > null.mean() + z * null.std()
    if ok.all():
        return max_spanning_tree(mi, names)
    return max_spanning_forest(ranked_pairs(np.where(ok, mi, -1.0), names), names)


def target_codes(df: pd.DataFrame, schema: Schema, targets: dict, res: Resolutions | None = None
                 ) -> list[np.ndarray]:
    """Cell of every row in each target's marginal (key: column name or tuple of names), in ``targets``' order:
    the bins ``pe_tabular.measure.raking.rake_to_shares`` reweights rows on."""
    return [codes(df, schema, (k,) if isinstance(k, str) else tuple(k), res)[0] for k in targets]
