"""A numeric column's public scale: values to [0, 1] and back, snapping onto the public grid, anchors.

Shared by the binning, the encoder and the generators, so each of them maps numbers the same way
(and none of them has to import another to do so).
"""

from __future__ import annotations

import numpy as np

from pe_tabular.tables.schema import Column


def to_unit(col: Column, x: np.ndarray) -> np.ndarray:
    """Map values to [0, 1] over the public range (log scale: log1p of the offset from the lower bound)."""
    x = np.clip(np.asarray(x, dtype=float), col.lower, col.upper)
    if col.scale == "log":
        return np.log1p(x - col.lower) / np.log1p(col.upper - col.lower)
    return (x - col.lower) / (col.upper - col.lower)


def from_unit(col: Column, u: np.ndarray) -> np.ndarray:
    u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
    if col.scale == "log":
        return col.lower + np.expm1(u * np.log1p(col.upper - col.lower))
    return col.lower + u * (col.upper - col.lower)



def anchors(col: Column, max_anchors: int = 25) -> np.ndarray:
    """Public anchor values: bounds, 0, declared special values and round numbers in range."""
    lo, hi = col.lower, col.upper
    vals = {lo, hi, *col.special_values}
    if lo <= 0 <= hi:
        vals.add(0.0)
    span = hi - lo
    for k in range(-3, 16):
        for m in (1, 2, 5):
            step = m * 10.0**k
            if span / step <= max_anchors:
                first = np.ceil(lo / step) * step
                vals.update(np.arange(first, hi + step / 2, step).tolist())
                break
        else:
            continue
        break
    out = np.array(sorted(v for v in vals if lo <= v <= hi), dtype=float)
    return snap(col, out)


def snap(col: Column, x: np.ndarray) -> np.ndarray:
    """Round to the public precision grid and clip into bounds."""
    x = np.clip(np.asarray(x, dtype=float), col.lower, col.upper)
    if col.rounding:
        x = np.round((x - col.lower) / col.rounding) * col.rounding + col.lower
        x = np.clip(x, col.lower, col.upper)
    return x
