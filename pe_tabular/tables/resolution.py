"""Data-adaptive resolution of number columns, found through DP releases (the first stage of a tables run).

A fixed grid (64 equal-width bins over the public range, decoded uniformly) loses what real tables hold:
exact values that carry most of the mass (0 in two thirds of the rows, round amounts, repeated codes), and
bulk mass squeezed into a few bins by an outlier that stretched the range. For every number column this
stage makes two Gaussian releases through the engine's one release path and derives, by post-processing:

1. **Frequent exact values** — a thresholded histogram of the column's exact values (the Gaussian
   sparse-histogram / DP set-union mechanism: Korolova et al., WWW 2009; Gopi et al., ICML 2020; Wilkins,
   Kifer, Zhang & Karrer 2024): one row adds 1 to one value's count (Δ = 1); a value absent from the public
   keys (the schema's special values, 0, or the whole public grid when it has at most ``MAX_ENUMERATED``
   values) is released only if its noisy count clears τ = 1 + σ·Φ⁻¹(1 − δ_t), so a value held by one row
   appears with probability ≤ δ_t (charged as extra δ). Released values holding ≥ ``POINT_SHARE`` of the
   rows become **point-mass bins** (``Column.special_values``, heaviest first) and exact output values; the
   other released values are **atoms** that the decoder lands on inside an interval.
2. **DP quantiles of the rest** — a hierarchical histogram of the remaining values on the column's public
   scale (``dp_quantiles``; Hay et al. VLDB 2010, Qardaji et al. VLDB 2013); with the atoms' noisy counts
   added at their places, ``bin_edges`` are its equal-mass quantiles (as many intervals as the noise of the
   later one-way measurement supports, at most ``MAX_INTERVALS``); edges of a rounded column sit half-way
   between grid values, so rounding a decoded value never moves it to another bin.

A schema that declares ``bin_edges`` publicly keeps them (the hierarchical histogram then only shapes the
decoding inside them).

The ``Decoder`` of a column turns an interval bin back into a value from this released information: an atom
with its noisy share of the interval, otherwise a draw between equal-mass sub-quantiles of the interval
(not uniformly over it). Nothing here reads private data except the two releases.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.stats import norm

from pe_tabular.privacy.accountant import sigma_for_share
from pe_tabular.privacy.release import ReleasePath, Spec
from pe_tabular.tables import dp_quantiles as dq
from pe_tabular.tables.private import PrivateRows
from pe_tabular.tables.schema import Column, Schema
from pe_tabular.tables.values import from_unit, to_unit

MAX_ENUMERATED = 32  # a public grid with at most this many values is enumerated (every value a public key)
POINT_SHARE = 0.01  # a released value with at least this share of the rows becomes a bin of its own
MAX_POINTS = 24
MAX_INTERVALS = 32
SUB = 8  # equal-mass sub-quantiles per interval for within-bin decoding


@dataclass(frozen=True, eq=False)
class Decoder:
    """Within-interval decoding of one number column from released information (post-processing).

    ``sub[i]``: SUB + 1 raw values, equal-mass sub-quantiles of interval i's continuous part;
    ``cont[i]``: that part's estimated mass; ``atoms``/``atom_bin``/``atom_w``: released exact values inside
    the intervals, the interval each falls in, and their noisy counts (clipped at 0)."""

    sub: np.ndarray
    cont: np.ndarray
    atoms: np.ndarray
    atom_bin: np.ndarray
    atom_w: np.ndarray

    def draw(self, rng: np.random.Generator, k: np.ndarray) -> np.ndarray:
        """A value for every interval index in ``k``."""
        k = np.asarray(k, np.int64)
        j = rng.integers(0, self.sub.shape[1] - 1, k.size)
        a, b = self.sub[k, j], self.sub[k, j + 1]
        out = a + rng.random(k.size) * (b - a)
        if self.atoms.size:
            tot = np.bincount(self.atom_bin, weights=self.atom_w, minlength=self.cont.size)
            p_atom = np.divide(tot, tot + self.cont, out=np.zeros_like(tot), where=(tot + self.cont) > 0)
            hit = np.flatnonzero(rng.random(k.size) < p_atom[k])
            for i in np.unique(k[hit]):
                rows = hit[k[hit] == i]
                m = self.atom_bin == i
                out[rows] = rng.choice(self.atoms[m], size=rows.size, p=self.atom_w[m] / self.atom_w[m].sum())
        return out

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}{k}": np.asarray(getattr(self, k)) for k in ("sub", "cont", "atoms", "atom_bin", "atom_w")}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> Decoder:
        return cls(*(np.asarray(arrays[f"{prefix}{k}"]) for k in ("sub", "cont", "atoms", "atom_bin", "atom_w")))


@dataclass(frozen=True)
class Plan:
    """Noise scales of the resolution releases, fixed before any private data is read."""

    sigma_values: float
    sigma_tree: float
    delta_t: float  # extra δ per thresholded values release
    tau: float  # release threshold of a value that is not a public key


def numeric_columns(schema: Schema) -> list[Column]:
    return [c for c in schema.columns if not c.is_categorical]


def grid_values(c: Column) -> np.ndarray | None:
    """Every value of a small public precision grid, or None when the grid is large or absent."""
    if not c.rounding:
        return None
    n = int(round((c.upper - c.lower) / c.rounding)) + 1
    if n > MAX_ENUMERATED:
        return None
    return c.lower + np.arange(n) * c.rounding


def thresholded(schema: Schema) -> int:
    """How many of the releases are thresholded (pay extra δ): columns whose grid is not enumerated."""
    return sum(grid_values(c) is None for c in numeric_columns(schema))


def plan(schema: Schema, rho: float, delta_res: float) -> Plan:
    cols = numeric_columns(schema)
    n = max(len(cols), 1)
    s_val = sigma_for_share(rho / 2, n)
    s_tree = sigma_for_share(rho / 2, n, dq.sensitivity())
    k = max(thresholded(schema), 1)
    delta_t = delta_res / k
    tau = 1.0 + s_val * float(norm.isf(delta_t)) if delta_res > 0 else math.inf
    return Plan(s_val, s_tree, delta_t, tau)


def resolve(rows: PrivateRows | pd.DataFrame, schema: Schema, path: ReleasePath, p: Plan, n_hat: float,
            target_mass: float, stream: int = 400) -> tuple[Schema, dict[str, Decoder]]:
    """The schema with data-adaptive ``special_values`` and ``bin_edges`` for every number column, and each
    column's decoder. ``rows`` are the validated private rows (numbers as floats); ``n_hat`` a released row
    count; ``target_mass`` the least noisy mass an interval should hold (sets how many intervals).

    Two passes over the rows, whatever the number of columns: the exact values of every number column with
    their counts (merged across chunks, memory O(distinct values)), released column by column; then, once
    every column's points and atoms are known, the hierarchical histograms of the rest of every column,
    summed together and released column by column."""
    if isinstance(rows, pd.DataFrame):  # a validated frame: the same passes over its chunks
        with PrivateRows.open(rows, schema) as cached:
            return resolve(cached, schema, path, p, n_hat, target_mass, stream)
    nums = [(j, c) for j, c in enumerate(schema.columns) if not c.is_categorical]
    values = rows.value_counts([c.name for _, c in nums]) if nums else {}
    found = {c.name: _release_values(c, *values[c.name], path, p, n_hat, stream + j, j) for j, c in nums}
    trees = rows.one_pass({c.name: _rest_tree(c, found[c.name][3]) for _, c in nums if found[c.name][3] is not None},
                          "hierarchical histograms of number columns")
    cols = []
    decoders: dict[str, Decoder] = {}
    for j, c in enumerate(schema.columns):
        if c.is_categorical:
            cols.append(c)
            continue
        col, points, atoms_w, taken = found[c.name]
        if taken is None:
            cols.append(col)
            continue
        col, dec = _resolve_column(col, points, *atoms_w, trees.counts(c.name), path, p, n_hat, target_mass,
                                   stream + j, j)
        cols.append(col)
        decoders[c.name] = dec
    return Schema(tuple(cols), schema.label, schema.label_shares, schema.description, schema.dp_cost,
                  schema.meta), decoders


def _release_values(c: Column, vals: np.ndarray, cnt: np.ndarray, path: ReleasePath, p: Plan, n_hat: float,
                    stream: int, j: int) -> tuple[Column, np.ndarray, tuple[np.ndarray, np.ndarray], np.ndarray | None]:
    """The thresholded exact-value release of one column from its exact value counts (``vals`` ascending):
    the column (finished when its grid is enumerated), its point masses, its atoms and their noisy counts,
    and every value taken by a point or an atom (None: nothing left to resolve)."""
    grid = grid_values(c)
    public = grid if grid is not None else np.array(sorted({*c.special_values, *([0.0] if c.lower <= 0 <= c.upper
                                                                                   else [])}), float)
    if grid is not None:  # counts of every grid value (an off-grid value counts for the nearest)
        k = np.clip(np.rint((vals - c.lower) / c.rounding), 0, grid.size - 1).astype(np.int64)
        private_keys = np.empty(0)

        def counts() -> np.ndarray:
            return np.bincount(k, weights=cnt, minlength=grid.size).astype(float)
    else:  # public keys first, then the values found in the data in ascending order (chunking does not show)
        is_pub = np.isin(vals, public)
        private_keys = vals[~is_pub]
        pub_counts = pd.Series(cnt, index=vals).reindex(public, fill_value=0).to_numpy(float)

        def counts() -> np.ndarray:
            return np.concatenate([pub_counts, cnt[~is_pub]]).astype(float)

    noisy = path.release(Spec(f"resolution_values_{j:03d}", f"frequent exact values of {c.name!r}"
                              + (" (thresholded)" if grid is None else " (public grid)"), p.sigma_values,
                              stream=(0, stream), extra_delta=p.delta_t if grid is None else 0.0,
                              threshold=p.tau if grid is None else None, public_cells=public.size,
                              keys=private_keys if grid is None else None), counts)
    npub = public.size
    keys = np.concatenate([public, private_keys])
    released = np.concatenate([noisy[:npub] > 3 * p.sigma_values, noisy[npub:] > p.tau])
    if grid is not None:
        order = np.argsort(-noisy[:npub], kind="stable")
        return replace(c, special_values=tuple(float(v) for v in public[order]), bin_edges=()), public, \
            (np.empty(0), np.empty(0)), None
    share = noisy / max(n_hat, 1.0)
    point = released & (share >= POINT_SHARE)
    order = np.flatnonzero(point)[np.argsort(-noisy[point], kind="stable")][:MAX_POINTS]
    points = keys[order]
    atom_idx = np.setdiff1d(np.flatnonzero(released), order)
    atoms, atom_w = keys[atom_idx], np.maximum(noisy[atom_idx], 0.0)
    return c, points, (atoms, atom_w), np.concatenate([points, atoms])


def _rest_tree(c: Column, taken: np.ndarray) -> Callable[[pd.DataFrame], np.ndarray]:
    """Per chunk: the hierarchical histogram of the column's values that are neither a point nor an atom."""
    def fn(f: pd.DataFrame) -> np.ndarray:
        x = f[c.name].to_numpy(float)
        x = x[np.isfinite(x)]
        return dq.tree_counts(to_unit(c, x[~np.isin(x, taken)]))
    return fn


def _resolve_column(c: Column, points: np.ndarray, atoms: np.ndarray, atom_w: np.ndarray,
                    tree_counts: Callable[[], np.ndarray], path: ReleasePath, p: Plan, n_hat: float,
                    target_mass: float, stream: int, j: int) -> tuple[Column, Decoder]:
    tree = path.release(Spec(f"resolution_tree_{j:03d}", f"hierarchical histogram of {c.name!r} (quantiles)",
                             p.sigma_tree, dq.sensitivity(), stream=(0, stream + 100)), tree_counts)
    leaves = dq.leaf_masses(tree, p.sigma_tree)
    # interval edges are quantiles of everything that is not a point mass: the continuous rest + the atoms
    both = leaves.copy()
    inside = (atoms >= c.lower) & (atoms <= c.upper)
    np.add.at(both, np.clip((to_unit(c, atoms[inside]) * both.size).astype(np.int64), 0, both.size - 1),
              atom_w[inside])
    if c.bin_edges:  # public interval edges (documentation, a public discretisation) are kept as given
        edges = [float(e) for e in c.bin_edges if c.lower < e < c.upper]
    else:
        n_int = int(np.clip(np.floor(both.sum() / max(target_mass, 1.0)), 2, MAX_INTERVALS))
        edges = _edges(c, from_unit(c, dq.quantiles(both, np.arange(1, n_int) / n_int)))
    col = replace(c, special_values=tuple(float(v) for v in points), bin_edges=tuple(edges))
    return col, _decoder(c, edges, leaves, atoms, atom_w)


def _edges(c: Column, e: np.ndarray) -> list[float]:
    """Interval edges strictly inside the bounds; on a rounded column half-way between grid values."""
    e = np.asarray(e, float)
    if c.rounding:
        r = c.rounding
        e = c.lower + (np.floor((e - c.lower) / r) + 0.5) * r
    e = np.unique(e[(e > c.lower) & (e < c.upper)])
    return [float(v) for v in e]


def _decoder(c: Column, edges: list[float], leaves: np.ndarray, atoms: np.ndarray, atom_w: np.ndarray) -> Decoder:
    full = np.concatenate([[c.lower], edges, [c.upper]])
    u = to_unit(c, full)
    n = leaves.size
    sub = np.empty((len(full) - 1, SUB + 1))
    cont = np.empty(len(full) - 1)
    for i in range(len(full) - 1):
        a, b = int(round(u[i] * n)), max(int(round(u[i + 1] * n)), int(round(u[i] * n)) + 1)
        m = leaves[a:b]
        cont[i] = m.sum()
        if m.sum() > 0:
            cdf = np.concatenate([[0.0], np.cumsum(m) / m.sum()])
            pos = np.interp(np.linspace(0, 1, SUB + 1), cdf, np.linspace(a, b, b - a + 1) / n)
        else:
            pos = np.linspace(u[i], u[i + 1], SUB + 1)
        pos = np.clip(pos, u[i], u[i + 1])
        sub[i] = from_unit(c, pos)
        sub[i, 0], sub[i, -1] = full[i], full[i + 1]
    inside = (atoms > c.lower) & (atoms < c.upper) & (atom_w > 0)
    atoms, atom_w = atoms[inside], atom_w[inside]
    atom_bin = np.searchsorted(np.asarray(edges, float), atoms, side="right").astype(np.int64)
    return Decoder(sub, cont, atoms.astype(float), atom_bin, atom_w.astype(float))
