"""Iterative proportional fitting (Deming & Stephan 1940) onto released margins: post-processing only.

Three uses, one module. ``fit_table_to_margins`` makes a released pair table agree with the released
one-way distributions of its two columns (each margin is estimated on its own, so they disagree, and a
generator built from the pairs would miss the one-way margins). The two ``rake_*`` functions reweight a
final population of candidates so its weighted marginals match the releases; they differ in what a
release is taken to say, and each wing's results depend on its rule, so both are kept:

- ``rake_to_shares``: every target is a whole distribution (all bins), weights stay a distribution, a
  fixed number of passes;
- ``rake_to_known``: targets are noisy counts of which only the bins measured above the noise constrain
  anything; the other bins keep their current share, passes stop once no factor moves by 0.1 %, and the
  weights keep their total.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fit_table_to_margins(table: np.ndarray, rows: np.ndarray, cols: np.ndarray, iterations: int) -> np.ndarray:
    """``table`` (non-negative, rows × cols, changed in place and returned) scaled alternately so its row sums
    are ``rows`` and its column sums ``cols``. IPF keeps the table's odds ratios and zero pattern; a row or
    column with no mass stays empty."""
    na, nb = table.shape
    for _ in range(iterations):
        table *= np.divide(rows, table.sum(1), out=np.zeros(na), where=table.sum(1) > 0)[:, None]
        table *= np.divide(cols, table.sum(0), out=np.zeros(nb), where=table.sum(0) > 0)[None, :]
    return table


def rake_to_shares(weights: np.ndarray, bins: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                   iterations: int = 30, max_ratio: float = 20.0) -> np.ndarray:
    """Normalised weights whose marginal over ``bins[m]`` (each row's bin) approaches the distribution
    ``targets[m]``, for every m in turn. A factor per pass is clipped to [1/max_ratio, max_ratio] so one noisy
    target cannot starve a bin; all-zero weights start uniform."""
    w = np.asarray(weights, dtype=float).copy()
    if w.sum() <= 0:
        w[:] = 1.0
    w /= w.sum()
    for _ in range(iterations):
        for b, t in zip(bins, targets):
            cur = np.bincount(b, weights=w, minlength=t.size)
            cur = cur / cur.sum()
            ratio = np.where(cur > 0, t / np.maximum(cur, 1e-300), 1.0)
            w *= np.clip(ratio, 1.0 / max_ratio, max_ratio)[b]
            w /= w.sum()
    return w


def rake_to_known(weights: np.ndarray, bins: Sequence[np.ndarray], noisy: Sequence[np.ndarray],
                  known: Sequence[np.ndarray], iterations: int = 100, max_step: float = 20.0) -> np.ndarray:
    """Weights (same total) whose marginal over ``bins[m]`` matches the noisy counts ``noisy[m]`` on the bins
    ``known[m]``: those bins share the mass not held by the others, in proportion to their (clipped) counts.
    Factors are clipped to [1/max_step, max_step] per pass; zero weights stay zero."""
    w = np.asarray(weights, dtype=np.float64).copy()
    total = w.sum()
    if total <= 0 or not bins:
        return w
    for _ in range(iterations):
        worst = 0.0
        for b, target, ok in zip(bins, noisy, known):
            cur = np.bincount(b, weights=w, minlength=target.size)
            covered = ok & (cur > 0)
            if not covered.any():
                continue
            tgt = np.where(covered, np.clip(target, 0, None), 0.0)
            if tgt.sum() <= 0:
                continue
            tgt = tgt / tgt.sum() * cur[covered].sum()
            ratio = np.ones(target.size)
            ratio[covered] = np.clip(tgt[covered] / cur[covered], 1.0 / max_step, max_step)
            w *= ratio[b]
            worst = max(worst, float(np.abs(np.log(ratio[covered])).max()))
        if worst < 1e-3:
            break
    return w * (total / w.sum())
