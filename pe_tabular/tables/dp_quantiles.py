"""Hierarchical histograms on a public grid, and DP quantiles read off them (post-processing).

A value in [0, 1) (a column mapped through its public scale) falls into exactly one cell of every level
of a ``BRANCH``-ary tree of ``LEVELS`` levels (4, 16, ..., 4096 cells). All levels are released in one
Gaussian release; adding or removing a row changes one cell per level, so the L2 sensitivity is
√LEVELS. This is the hierarchical method of Hay, Rastogi, Miklau & Suciu ("Boosting the accuracy of
differentially private histograms through consistency", VLDB 2010); branching 4 rather than 2 follows
Qardaji, Yang & Li ("Understanding hierarchical methods for differentially private histograms", VLDB
2013). A range, and so a quantile, is answered from O(levels) noisy cells instead of one per leaf, which
is what makes quantile bins affordable at small ε; the recursive-split view of quantiles is that of
Kaplan, Schnapp & Stemmer ("Differentially private approximate quantiles", ICML 2022).

The estimate is top-down (post-processing): a node whose children would average less than ``min_split``·σ,
or none of whose children stands out of the noise, is not split by noise — its mass is spread evenly over its range (the
honest resolution at that noise level); otherwise its mass is split among its children by the
least-squares fit of their noisy counts on
{x ≥ 0, Σx = the node's mass} (a Euclidean projection onto a scaled simplex) of the children whose noisy
count clears ``child_min``·σ, which keeps empty regions empty instead of filling them with clipped noise.
Quantiles are read off the cumulative leaf masses.
"""

from __future__ import annotations

import numpy as np

BRANCH = 8
LEVELS = 4
MIN_SPLIT = 1.5  # a node whose children would average less than this many σ is spread evenly over them
CHILD_MIN = 2.0  # a child whose noisy count is below this many σ gets no mass of a split node
OPEN_SIGMAS = 2.0  # bounds: a node gives its excess over its standing children to the others past 2σ·√(k + 1)


def n_cells(branch: int = BRANCH, levels: int = LEVELS) -> int:
    """Length of the released vector (every level's cells, coarsest first)."""
    return sum(branch**level for level in range(1, levels + 1))


def sensitivity(levels: int = LEVELS) -> float:
    return float(np.sqrt(levels))


def tree_counts(u: np.ndarray, branch: int = BRANCH, levels: int = LEVELS) -> np.ndarray:
    """Exact counts of every tree cell for values ``u`` in [0, 1] (private input: released only with noise)."""
    leaves = branch**levels
    leaf = np.clip((np.asarray(u, float) * leaves).astype(np.int64), 0, leaves - 1)
    parts = [np.bincount(leaf // branch ** (levels - lv), minlength=branch**lv) for lv in range(1, levels + 1)]
    return np.concatenate(parts).astype(float)


def leaf_masses(noisy: np.ndarray, sigma: float, total: float | None = None, branch: int = BRANCH,
                levels: int = LEVELS, min_split: float = MIN_SPLIT, child_min: float = CHILD_MIN,
                exclusive: int = 0, adjacent_min: float | None = None) -> np.ndarray:
    """Non-negative leaf masses consistent with the tree (top-down, see the module docstring).

    ``total`` (e.g. a separately released noisy count) fixes the root mass; by default it is the clipped sum
    of the first level (with ``exclusive``: of its cells that clear ``child_min``·σ). ``exclusive`` (a number of
    top levels) is for bounds on a wide scale, where mass must never reach a coarse region without evidence.
    ``adjacent_min`` (σ), for bounds: on every level but the first (whose cells are too wide), a cell next to
    one that stands out counts as standing out when it clears this lower bar — a tail next to the bulk, too
    thin to clear ``child_min`` on its own (one extra test per side of each run of standing cells); on the
    finer levels a node gives its excess over its standing children to the others only when that excess
    clears the bar too, in proportion to their clipped counts (:func:`_bounds_split`)."""
    return leaf_masses_resolved(noisy, sigma, total, branch, levels, min_split, child_min, exclusive,
                                adjacent_min)[0]


def leaf_masses_resolved(noisy: np.ndarray, sigma: float, total: float | None = None, branch: int = BRANCH,
                         levels: int = LEVELS, min_split: float = MIN_SPLIT, child_min: float = CHILD_MIN,
                         exclusive: int = 0, adjacent_min: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`leaf_masses`, and per leaf the deepest level (1 … ``levels``) at which its mass was placed by
    noisy counts rather than spread evenly over a node: where the estimate's resolution ends (0: never)."""
    y = np.asarray(noisy, float)
    pos = 0
    first = y[:branch]
    keep1 = first > child_min * sigma  # a first-level cell spans decades: never grown by a weak neighbour
    if total is None:
        total = float(first[keep1].sum()) if exclusive > 0 and keep1.any() else float(np.maximum(first, 0).sum())
    mass = np.array([max(float(total), 0.0)])
    depth = np.zeros(1, dtype=np.int64)
    for lv in range(1, levels + 1):
        flat = y[pos:pos + branch**lv]
        c = flat.reshape(-1, branch)
        pos += branch**lv
        weak = adjacent_min if lv > 1 else None
        keep = _standing(flat, sigma, child_min, weak).reshape(-1, branch)
        # children in the noise count as empty; on the first ``exclusive`` levels they get nothing even when the
        # node holds more than its standing-out children (else the excess is shared evenly: a smoother level)
        if adjacent_min is not None and lv > exclusive:
            split = _bounds_split(c, keep, mass, sigma, OPEN_SIGMAS)
        else:
            split = project_rows(np.where(keep, c, -1e300 if lv <= exclusive else 0.0), mass)
        even = (mass < min_split * branch * sigma) | ~keep.any(1)  # children within the noise: no split by it
        split[even] = (mass[even] / branch)[:, None]
        if lv <= exclusive and adjacent_min is not None:
            _toward_neighbours(split, mass, even)
        depth = np.where(even, depth, lv).repeat(branch)
        mass = split.ravel()
    return mass, depth


def _bounds_split(c: np.ndarray, keep: np.ndarray, mass: np.ndarray, sigma: float, bar: float) -> np.ndarray:
    """The split of a finer level for bounds: the standing children get their noisy counts (projected onto
    the node's mass); what the node holds beyond them goes to its other children in proportion to their
    clipped noisy counts — where the thin tail is — but only when it clears ``bar``·σ·√(k + 1) (the noise of
    k + 1 counts): an excess within the noise stays with the standing children, so it never reaches the far
    end of the node (a year column "up to 4467")."""
    kept = np.where(keep, c, 0.0)
    excess = mass - kept.sum(1)
    open_ = excess > bar * sigma * np.sqrt(keep.sum(1) + 1.0)
    split = project_rows(np.where(keep, c, -1e300), np.where(open_, np.minimum(kept.sum(1), mass), mass))
    weight = np.where(keep, 0.0, np.maximum(c, 0.0))
    total = weight.sum(1)
    share = np.where((open_ & (total > 0))[:, None], weight / np.where(total > 0, total, 1.0)[:, None], 0.0)
    return split + share * np.where(open_, mass - split.sum(1), 0.0)[:, None]


def _toward_neighbours(split: np.ndarray, mass: np.ndarray, even: np.ndarray) -> None:
    """On an exclusive level, a node none of whose children stands out but whose neighbour on ONE side holds
    mass (a tail beside the bulk, found only on the coarse level) puts its mass in its child on that side
    rather than evenly over decades: the nearest place the evidence allows, not the farthest."""
    left = np.concatenate([[0.0], mass[:-1]]) > 0
    right = np.concatenate([mass[1:], [0.0]]) > 0
    for i in np.flatnonzero(even & (mass > 0) & (left != right)):
        split[i] = 0.0
        split[i, 0 if left[i] else -1] = mass[i]


def _standing(cells: np.ndarray, sigma: float, child_min: float, adjacent_min: float | None) -> np.ndarray:
    """Cells whose noisy count clears ``child_min``·σ, grown by neighbours that clear ``adjacent_min``·σ."""
    keep = cells > child_min * sigma
    if adjacent_min is None or not keep.any():
        return keep
    weak = cells > adjacent_min * sigma
    while True:
        grown = keep.copy()
        grown[1:] |= keep[:-1] & weak[1:]
        grown[:-1] |= keep[1:] & weak[:-1]
        if (grown == keep).all():
            return keep
        keep = grown


def project_rows(c: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean projection of ``c`` onto {x ≥ 0, Σx = total} (Duchi et al., ICML 2008)."""
    c = np.asarray(c, float)
    total = np.asarray(total, float)
    u = -np.sort(-c, axis=1)
    css = np.cumsum(u, axis=1) - total[:, None]
    k = np.arange(1, c.shape[1] + 1)
    cond = u - css / k > 0
    r = c.shape[1] - 1 - np.argmax(cond[:, ::-1], axis=1)  # last index where cond holds
    theta = css[np.arange(c.shape[0]), r] / (r + 1)
    out = np.maximum(c - theta[:, None], 0.0)
    zero = total <= 0
    out[zero] = 0.0
    return out


def quantiles(leaves: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Positions in [0, 1] (leaf boundaries) at which the cumulative leaf mass first reaches each q."""
    m = np.asarray(leaves, float)
    tot = m.sum()
    if tot <= 0:
        return np.asarray(qs, float)
    cdf = np.cumsum(m) / tot
    idx = np.searchsorted(cdf, np.clip(np.asarray(qs, float), 0.0, 1.0), side="left")
    return (np.minimum(idx, m.size - 1) + 1.0) / m.size
