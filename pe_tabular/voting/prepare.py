"""Turning codes into what the fast kernels compute on, shared by the numba and JAX kernels.

Both steps are exact reformulations of the reference distances, never approximations:

* ``prepare_mixed`` picks the narrowest integer type (int16, int32, else int64) in which every
  distance of a ``MixedMetric`` is computed exactly, shifting codes per column where that
  preserves the distance (CAT/ABS/SQ depend on differences only; an IPv4 prefix depends on
  ``a XOR b``, and flipping bit 31 of both sides cancels) and folding ABS weights into the codes.
  Narrow types double or quadruple the SIMD lanes of the kernels.
* ``l2_operands`` builds augmented GEMM operands whose product is ``‖c‖² − 2 p·c``, the squared
  distance minus the private row's own norm (a per-row constant, so the order of candidates and
  every tie are unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pe_tabular.distance import ABS, CAT, IPV4, SQ, MixedMetric

_I64_MAX = np.iinfo(np.int64).max
_KNOWN_KINDS = (CAT, ABS, SQ, IPV4)
ABS_FOLDED = 5  # prepared kind: ABS whose weight is folded into the codes


@dataclass(frozen=True)
class PreparedCodes:
    """Codes ready for the mixed-metric kernels: private (n, c), candidates transposed (c, m), prepared kinds
    and weights, the empty-slot sentinel and the bit width for the IPv4 bit-length."""

    p: np.ndarray
    ct: np.ndarray
    kinds: np.ndarray
    weights: np.ndarray
    big: np.integer
    wbits: int
    checks: np.ndarray | None = None  # per column: test for pruning after it (numba kernel's plan)


def prepare_mixed(p: np.ndarray, c: np.ndarray, metric: MixedMetric) -> PreparedCodes:
    """Pick the narrowest exact integer type (int16, int32, else int64) for these codes.

    A narrow type is used only when every shifted code fits and the largest possible total
    distance is below the type's maximum (which is the "empty slot" sentinel, so no real distance
    can equal it). In narrow types ABS weights are folded into the codes (w·|a−b| = |wa − wb|),
    saving a multiply per element. int64 keeps the raw codes and the reference's exact formulas."""
    kinds = metric.kinds.astype(np.int64)
    weights = metric.weights.astype(np.int64)
    for j, kind in enumerate(kinds.tolist()):
        if kind not in _KNOWN_KINDS:
            raise ValueError(f"unknown distance kind {kind} in column {j}")
    if p.shape[0] and c.shape[0]:
        lo = np.minimum(p.min(axis=0), c.min(axis=0))
        hi = np.maximum(p.max(axis=0), c.max(axis=0))
    else:
        lo = hi = np.zeros(len(kinds), np.int64)
    active = weights > 0
    for j in np.flatnonzero((kinds == IPV4) & active).tolist():
        if lo[j] < 0 or hi[j] >= 1 << 32:
            raise ValueError(f"column {j} is an IPv4 column but holds codes outside [0, 2**32) "
                             f"(min {lo[j]}, max {hi[j]}); encode addresses as unsigned 32-bit integers")
    for dtype in (np.int16, np.int32):
        info = np.iinfo(dtype)
        if (kinds[active] == IPV4).any() and dtype is np.int16:
            continue
        bound, fits = 0, True
        for j in np.flatnonzero(active).tolist():
            kind, w, span = int(kinds[j]), int(weights[j]), int(hi[j]) - int(lo[j])
            if kind == CAT:
                fits &= span <= info.max
                bound += w
            elif kind == ABS:
                fits &= w * span <= info.max
                bound += w * span
            elif kind == SQ:
                fits &= span <= info.max
                bound += w * span * span
            else:  # IPV4
                bound += 32 * w
        if not (fits and bound < info.max):
            continue
        shift = np.where(np.isin(kinds, (CAT, ABS, SQ)) & active, lo, 0)
        scale = np.where((kinds == ABS) & active, weights, 1)
        flip = np.where((kinds == IPV4) & active, np.int64(1 << 31), 0)
        zero = ~active

        def narrow(x: np.ndarray, shift=shift, scale=scale, flip=flip, zero=zero, dtype=dtype) -> np.ndarray:
            y = ((x - shift) * scale) ^ flip
            y[:, zero] = 0
            return y.astype(dtype)

        pk = np.where((kinds == ABS) & active, ABS_FOLDED, kinds)
        wt = np.where((kinds == ABS) & active, 1, weights)
        return PreparedCodes(narrow(p), np.ascontiguousarray(narrow(c).T), pk, wt.astype(dtype),
                         dtype(info.max), 8 * np.dtype(dtype).itemsize)
    return PreparedCodes(p, np.ascontiguousarray(c.T), kinds, weights, np.int64(_I64_MAX), 64)


def l2_operands(p: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Augmented operands whose product is the key ‖c‖² − 2 p·c (‖p‖² is constant per row, so the
    order of keys is the order of distances), in the precision that keeps the order exact.

    Integer-valued inputs are exact in float32 when every partial sum of the product stays below
    2**24, which ‖c‖²_max + 2‖p‖_max‖c‖_max < 2**24 guarantees (Cauchy–Schwarz bounds every partial
    dot product); past that bound float64 is used, exact up to 2**53 like the reference. Other
    inputs use float32 and agree with the reference up to rounding of near-ties."""
    p64, c64 = p.astype(np.float64), c.astype(np.float64)
    c_sq = np.einsum("ij,ij->i", c64, c64)
    integral = bool(np.all(p64 == np.round(p64)) and np.all(c64 == np.round(c64)))
    p_max = float(np.sqrt(np.einsum("ij,ij->i", p64, p64).max(initial=0.0)))
    c_max = float(np.sqrt(c_sq.max(initial=0.0)))
    wide = integral and c_max * c_max + 2.0 * p_max * c_max >= 2.0**24
    dt = np.float64 if wide else np.float32
    pa = np.empty((p.shape[0], p.shape[1] + 1), dtype=dt)
    pa[:, :-1] = p64
    pa[:, -1] = 1.0
    ca = np.empty((c.shape[1] + 1, c.shape[0]), dtype=dt)
    ca[:-1] = -2.0 * c64.T
    ca[-1] = c_sq
    return pa, ca
