"""The numpy reference nearest-neighbour kernel: the specification every fast kernel must match.

For each private row the k nearest candidates, ties broken by the smallest candidate index.
Work is blocked over private rows so memory is O(block_rows × n_candidates), never
O(n_private × n_candidates).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pe_tabular.distance import ABS, CAT, IPV4, SQ, L2Metric, Metric, MixedMetric

_BLOCK_ELEMS = 1 << 22  # ~32 MB of int64 distances per block


def _block_rows(n_candidates: int, block_elems: int = _BLOCK_ELEMS) -> int:
    return max(1, block_elems // max(n_candidates, 1))


def _lcp32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Common binary prefix length of two uint32 codes (32 when equal)."""
    x = (a ^ b).astype(np.uint64)
    # number of significant bits of x = floor(log2 x) + 1; exact via frexp on values < 2^32
    nbits = np.where(x == 0, 0, np.frexp(x.astype(np.float64))[1])
    return 32 - nbits


def mixed_distances(p: np.ndarray, c: np.ndarray, metric: MixedMetric) -> np.ndarray:
    """Exact int64 distance matrix (len(p), len(c)) under a MixedMetric."""
    d = np.zeros((p.shape[0], c.shape[0]), dtype=np.int64)
    for j, (kind, w) in enumerate(zip(metric.kinds.tolist(), metric.weights.tolist())):
        if w == 0:
            continue
        a, b = p[:, j, None], c[None, :, j]
        if kind == CAT:
            d += w * (a != b)
        elif kind == ABS:
            d += w * np.abs(a - b)
        elif kind == SQ:
            d += w * (a - b) ** 2
        elif kind == IPV4:
            d += w * (32 - _lcp32(a, b))
        else:
            raise ValueError(f"unknown distance kind {kind} in column {j}")
    return d


def l2_distances(p: np.ndarray, c: np.ndarray, c_sq: np.ndarray | None = None) -> np.ndarray:
    """Squared L2 distances in float64 via ‖x‖² + ‖y‖² − 2x·y (exact for integer-valued inputs)."""
    p64, c64 = p.astype(np.float64), c.astype(np.float64)
    if c_sq is None:
        c_sq = np.einsum("ij,ij->i", c64, c64)
    return np.einsum("ij,ij->i", p64, p64)[:, None] + c_sq[None, :] - 2.0 * (p64 @ c64.T)


def _topk_int(d: np.ndarray, k: int) -> np.ndarray:
    m = d.shape[1]
    key = d * m + np.arange(m, dtype=np.int64)[None, :]  # unique keys: (distance, index) order
    if k == 1:
        return np.argmin(key, axis=1)[:, None]
    part = np.argpartition(key, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(key, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _topk_float(d: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return np.argmin(d, axis=1)[:, None]  # first minimum = smallest index
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def nearest(
    private: np.ndarray, candidates: np.ndarray, metric: Metric, k: int = 1,
    block_rows: int | None = None, progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Indices (n_private, k) of each private row's k nearest candidates, nearest first."""
    m = candidates.shape[0]
    if not 1 <= k <= m:
        raise ValueError(f"k={k} must be between 1 and the number of candidates ({m})")
    if private.ndim != 2 or candidates.ndim != 2 or private.shape[1] != candidates.shape[1]:
        raise ValueError(f"private codes {private.shape} and candidate codes {candidates.shape} do not match")
    out = np.empty((private.shape[0], k), dtype=np.int64)
    b = block_rows or _block_rows(m)
    if isinstance(metric, MixedMetric):
        pi, ci = private.astype(np.int64), candidates.astype(np.int64)
        for s in range(0, private.shape[0], b):
            out[s:s + b] = _topk_int(mixed_distances(pi[s:s + b], ci, metric), k)
            if progress:
                progress(min(b, private.shape[0] - s))
    elif isinstance(metric, L2Metric):
        c64 = candidates.astype(np.float64)
        c_sq = np.einsum("ij,ij->i", c64, c64)
        for s in range(0, private.shape[0], b):
            out[s:s + b] = _topk_float(l2_distances(private[s:s + b], candidates, c_sq), k)
            if progress:
                progress(min(b, private.shape[0] - s))
    else:
        raise TypeError(f"unsupported metric {metric!r}")
    return out
