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


def histograms(df: pd.DataFrame, schema: Schema) -> dict[str, np.ndarray]:
    """Clean per-column bin counts (private input: only ever released with noise)."""
    out = {}
    for c in schema.columns:
        b = Binning.of(c)
        out[c.name] = np.bincount(b.index(df[c.name]), minlength=b.n_bins).astype(float)
    return out


def to_distribution(noisy: np.ndarray) -> np.ndarray:
    p = np.maximum(noisy, 0.0)
    return p / p.sum() if p.sum() > 0 else np.full(p.size, 1.0 / p.size)


def rake(df: pd.DataFrame, weights: np.ndarray, schema: Schema, targets: dict[str, np.ndarray],
         iterations: int = 30, max_ratio: float = 20.0) -> np.ndarray:
    """Reweight rows so each column's weighted marginal matches ``targets`` (distributions)."""
    w = np.asarray(weights, dtype=float).copy()
    if w.sum() <= 0:
        w[:] = 1.0
    idx = {name: Binning.of(schema[name]).index(df[name]) for name in targets}
    for _ in range(iterations):
        for name, t in targets.items():
            cur = np.bincount(idx[name], weights=w, minlength=t.size)
            cur = cur / cur.sum()
            ratio = np.where(cur > 0, t / np.maximum(cur, 1e-300), 1.0)
            w *= np.clip(ratio, 1.0 / max_ratio, max_ratio)[idx[name]]
            w /= w.sum()
    return w
