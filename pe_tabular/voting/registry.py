"""Choosing a nearest-neighbour kernel by name: numpy (reference), numba, jax, or auto."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from .reference import nearest as numpy_nearest

log = logging.getLogger(__name__)
NearestFn = Callable[..., np.ndarray]
VOTER_NAMES = ("numpy", "numba", "jax", "auto")


def _load(name: str) -> NearestFn:
    if name == "numpy":
        return numpy_nearest
    if name == "numba":
        from .numba_kernel import nearest as f  # noqa: PLC0415 - optional, compiled on first use
        return f
    if name == "jax":
        from .jax_kernel import nearest as f  # noqa: PLC0415
        return f
    raise ValueError(f"unknown --voter {name!r}; choose one of {', '.join(VOTER_NAMES)}")


def get_voter(name: str = "auto") -> NearestFn:
    """The kernel for ``--voter``. ``auto`` prefers numba, then jax, then numpy, and logs its pick."""
    if name != "auto":
        return _load(name)
    for cand in ("numba", "jax"):
        try:
            f = _load(cand)
        except ImportError as e:
            log.info("voter %s unavailable (%s)", cand, e)
            continue
        log.info("voter auto -> %s", cand)
        return f
    log.info("voter auto -> numpy")
    return numpy_nearest


def class_conditional_nearest(
    nearest_fn: NearestFn, private: np.ndarray, candidates: np.ndarray, metric: Any, k: int,
    private_labels: np.ndarray | None, candidate_labels: np.ndarray | None, **kw: Any,
) -> np.ndarray:
    """Global candidate indices of each private row's k nearest candidates *of its own class*.

    Private labels partition the rows, so one vote vector per row still has L2 norm 1 over the
    concatenated per-class histograms (parallel composition)."""
    if private_labels is None:
        return nearest_fn(private, candidates, metric, k=k, **kw)
    out = np.empty((private.shape[0], k), dtype=np.int64)
    for lab in np.unique(private_labels):
        prow = np.flatnonzero(private_labels == lab)
        cidx = np.flatnonzero(candidate_labels == lab)
        if cidx.size < k:
            raise ValueError(f"class {lab!r} has {cidx.size} candidates, fewer than k={k}; "
                             "raise --population or make the class share public")
        out[prow] = cidx[nearest_fn(private[prow], candidates[cidx], metric, k=k, **kw)]
    return out
