"""Mutual information of a two-way table (post-processing of a released table)."""

from __future__ import annotations

import numpy as np


def mutual_information(joint: np.ndarray) -> float:
    """I(A; B) in nats of an unnormalised two-way table.

    Noisy releases hold negative cells: they are clipped to zero first, so noise cannot add information
    that a table of counts could not have; a table with no positive mass carries none (0.0)."""
    p = np.clip(joint, 0, None)
    total = p.sum()
    if total <= 0:
        return 0.0
    p = p / total
    indep = p.sum(1, keepdims=True) @ p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / indep[nz])).sum())
