"""From nearest-neighbour indices to a vote histogram with L2 sensitivity 1, and its noisy release.

Sensitivity: with k neighbours each private row gives weight 1/√k to each, so its vote vector has
L2 norm exactly 1 (Lin et al., "Differentially Private Synthetic Data via Foundation Model APIs 1:
Images", ICLR 2024, Alg. 2 uses 1-NN; the 1/√k weighting keeps Δ = 1 for k-NN). With ``groups``
(user/flow/host/client ids) all votes of one group are summed and scaled to L2 norm 1, so the
guarantee covers the whole group.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


def vote_histogram(nn_idx: np.ndarray, n_candidates: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Clean vote counts (float64, length n_candidates)."""
    n, k = nn_idx.shape
    w = 1.0 / np.sqrt(k)
    if groups is None:
        return np.bincount(nn_idx.ravel(), minlength=n_candidates).astype(np.float64) * w
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups has shape {groups.shape}, expected ({n},)")
    _, g = np.unique(groups, return_inverse=True)
    # per-(group, candidate) vote mass, then each group's vector scaled to unit L2 norm
    key = g.astype(np.int64).repeat(k) * n_candidates + nn_idx.ravel()
    uk, mass = np.unique(key, return_counts=True)
    mass = mass * w
    ug = uk // n_candidates
    norms = np.sqrt(np.bincount(ug, weights=mass**2))
    return np.bincount(uk % n_candidates, weights=mass / norms[ug], minlength=n_candidates)


@dataclass(frozen=True)
class Selection:
    index: np.ndarray  # chosen candidate indices
    fallback: bool  # True when no noisy count survived and selection fell back to uniform


def clip_counts(noisy: np.ndarray, threshold: float) -> np.ndarray:
    """Counts below the threshold H are dropped (set to 0); negatives can never be weights."""
    out = np.where(noisy >= threshold, noisy, 0.0)
    return np.maximum(out, 0.0)


def _systematic(p: np.ndarray, n: int, u: float) -> np.ndarray:
    """How many of the n systematic points (u + k)/n, k = 0..n-1, fall in each candidate's interval of the
    cumulative shares ``p``: memory O(len(p)), not O(n) (an output of 2·10⁷ records held 3 arrays of n)."""
    edges = np.clip(np.ceil(np.cumsum(p) * n - u), 0, n).astype(np.int64)
    edges[-1] = n  # rounding of the last cumulative share: every point lands somewhere
    return np.diff(np.concatenate([[0], np.maximum.accumulate(edges)]))


def systematic_counts(noisy: np.ndarray, n: int, rng: np.random.Generator, threshold: float = 0.0) -> np.ndarray:
    """``select(..., mode="systematic")`` as a count per candidate (the draw without its order), for outputs
    too large to index one by one; all-noise counts fall back to uniform, as ``select`` does."""
    w = clip_counts(np.asarray(noisy, dtype=np.float64), threshold)
    if w.size == 0:
        raise ValueError("cannot select from an empty population")
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        return rng.multinomial(n, np.full(w.size, 1.0 / w.size))
    return _systematic(w / total, n, rng.random())


def select(noisy: np.ndarray, n: int, rng: np.random.Generator, threshold: float = 0.0,
           mode: str = "sample") -> Selection:
    """Choose n candidates by noisy count: ``sample`` ∝ clipped count (multinomial), ``systematic`` ∝
    clipped count with low variance (each candidate appears ⌊n·p⌋ or ⌈n·p⌉ times), or ``rank`` (top
    counts, cycled).

    When every clipped count is zero (all noise, e.g. tiny ε) this falls back to a uniform choice and
    logs it, instead of dividing by zero (a known crash of the reference PE implementation)."""
    w = clip_counts(np.asarray(noisy, dtype=np.float64), threshold)
    m = w.size
    if m == 0:
        raise ValueError("cannot select from an empty population")
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        log.warning("all %d noisy vote counts are below the threshold %.3g: selecting uniformly at random "
                    "(the noise dominates; raise epsilon, lower iterations or shrink the population)", m, threshold)
        return Selection(rng.integers(0, m, size=n), True)
    if mode == "sample":
        return Selection(rng.choice(m, size=n, replace=True, p=w / total), False)
    if mode == "systematic":  # low-variance resampling (Kitagawa 1996): counts are floor/ceil of n·p
        counts = _systematic(w / total, n, rng.random())
        return Selection(rng.permutation(np.repeat(np.arange(m), counts)), False)
    if mode == "rank":
        order = np.argsort(-w, kind="stable")
        order = order[w[order] > 0]
        return Selection(np.resize(order, n), False)
    raise ValueError(f"unknown selection mode {mode!r}; use 'sample', 'systematic' or 'rank'")
