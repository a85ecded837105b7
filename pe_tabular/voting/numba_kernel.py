"""The numba nearest-neighbour kernel: same contract and same answers as ``reference.nearest``.

Mixed-type metric (``MixedMetric``): distances are computed directly on the integer codes, one
column at a time into a small per-row buffer of candidate distances, so the inner loop is a plain
vectorisable loop over candidates (no one-hot expansion, no (n × m) matrix). Arithmetic is exact
integer arithmetic; when a bound on the largest possible distance proves it safe, codes are shifted
per column and the kernel runs in int32 (twice the SIMD lanes of int64), otherwise in int64.
Shifting preserves every kind's distance: CAT/ABS/SQ depend on differences only, IPv4 prefixes on
``a XOR b`` (flipping bit 31 of both sides cancels), and PORT columns are left unshifted.

L2 metric: ``‖x‖² + ‖y‖² − 2x·y`` with the cross term from a float32 GEMM (numpy matmul, i.e. the
BLAS) on blocks of private rows, followed by a parallel numba pass that combines the terms in
float64 and keeps a running top-k. Agreement with the float64 reference is *exact* when the inputs
are integer-valued and every dot product and partial sum stays below 2**24 in magnitude (float32
then represents each of them exactly, whatever the BLAS summation order). For general floats the
two kernels agree up to float rounding: candidates whose distances differ by less than the
rounding error may be ordered differently.

Top-k: candidates are scanned in ascending index order and a candidate enters the running list
only if it is *strictly* closer than the current k-th, so ties go to the smallest index and the
list stays nearest-first, exactly like the reference's stable sort. Candidates are scanned in
chunks whose minimum is computed first (a vectorised reduction); a chunk is inspected element by
element only when it can improve the list, which makes the top-k pass nearly free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from ..distance.base import ABS, CAT, IPV4, PORT, SQ, L2Metric, Metric, MixedMetric
from .reference import _block_rows

_I64_MAX = np.iinfo(np.int64).max
_CHUNK = 256  # candidates per distance buffer / min-reduction chunk (fits L1 with room to spare)
_L2_BLOCK_ELEMS = 1 << 21  # float32 GEMM output per block: 8 MB, stays near the caches
_KNOWN_KINDS = (CAT, ABS, SQ, IPV4, PORT)


@intrinsic
def _clz(typingctx, x):
    """Count leading zeros (LLVM ctlz; defined for 0 as the bit width)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.ctlz(args[0], ir.Constant(ir.IntType(1), 0))

    return x(x), codegen


@njit(inline="always")
def _insert(best_d, best_i, d, j):
    """Insert (d, j) into the sorted lists, after every entry with distance <= d (so ties keep
    the earlier, smaller index first); the caller guarantees d < best_d[-1]."""
    p = best_d.shape[0] - 1
    while p > 0 and best_d[p - 1] > d:
        best_d[p] = best_d[p - 1]
        best_i[p] = best_i[p - 1]
        p -= 1
    best_d[p] = d
    best_i[p] = j


@njit(inline="always")
def _chunk_min(buf, L):
    mn = buf[0]
    for t in range(1, L):
        v = buf[t]
        mn = v if v < mn else mn
    return mn


@njit(parallel=True, cache=True)
def _mixed_knn(P, Ct, kinds, weights, k, big, wbits, out):  # pragma: no cover - compiled
    """Kinds here are the prepared ones: 0 CAT, 1 ABS, 2 SQ, 3 IPV4, 4 PORT, 5 ABS with the weight
    already folded into the codes (no multiply)."""
    n, c = P.shape
    m = Ct.shape[1]
    for i in prange(n):
        buf = np.empty(_CHUNK, dtype=P.dtype)
        best_d = np.full(k, big, dtype=P.dtype)
        best_i = np.full(k, -1, dtype=np.int64)
        prow = P[i]
        for j0 in range(0, m, _CHUNK):
            L = min(_CHUNK, m - j0)
            b = buf[:L]
            b[:] = 0
            for col in range(c):
                w = weights[col]
                if w == 0:
                    continue
                a = prow[col]
                row = Ct[col, j0:j0 + L]
                kind = kinds[col]
                if kind == 0:  # CAT
                    for t in range(L):
                        b[t] += w * (row[t] != a)
                elif kind == 5:  # ABS, weight folded into the codes
                    for t in range(L):
                        x = row[t]
                        b[t] += max(x, a) - min(x, a)
                elif kind == 1:  # ABS
                    for t in range(L):
                        x = row[t]
                        b[t] += w * (max(x, a) - min(x, a))
                elif kind == 2:  # SQ
                    for t in range(L):
                        x = row[t] - a
                        b[t] += w * (x * x)
                elif kind == 3:  # IPV4: 32 - common prefix = bit length of a XOR b
                    for t in range(L):
                        b[t] += w * (wbits - _clz(row[t] ^ a))
                else:  # PORT: 0 equal, w same service class, 3w otherwise
                    ca = (a >= 1024) + (a >= 49152)
                    w3 = 3 * w
                    for t in range(L):
                        x = row[t]
                        cx = (x >= 1024) + (x >= 49152)
                        v = w if cx == ca else w3
                        b[t] += v if x != a else 0
            mn = _chunk_min(b, L)
            if mn < best_d[k - 1]:
                if k == 1:
                    for t in range(L):
                        if b[t] == mn:
                            best_d[0] = mn
                            best_i[0] = j0 + t
                            break
                else:
                    for t in range(L):
                        if b[t] < best_d[k - 1]:
                            _insert(best_d, best_i, b[t], j0 + t)
        for q in range(k):
            out[i, q] = best_i[q]


@njit(parallel=True, cache=True)
def _l2_merge(G, p_sq, c_sq, best_d, best_i, j_off):  # pragma: no cover - compiled
    """Fold one GEMM tile G = P_blk · C_tileᵀ into each row's running top-k. ``c_sq`` is the
    tile's slice of candidate norms; distances are formed in float64 exactly as the reference does."""
    B, L = G.shape
    k = best_d.shape[1]
    for r in prange(B):
        kb = np.empty(_CHUNK, dtype=np.float64)
        ps = p_sq[r]
        bd = best_d[r]
        bi = best_i[r]
        for t0 in range(0, L, _CHUNK):
            n = min(_CHUNK, L - t0)
            g = G[r, t0:t0 + n]
            cs = c_sq[t0:t0 + n]
            kv = kb[:n]
            for t in range(n):
                kv[t] = (ps + cs[t]) - 2.0 * np.float64(g[t])
            worst = bd[k - 1]
            hit = False
            for t in range(n):
                hit |= kv[t] < worst
            if hit:
                for t in range(n):
                    if kv[t] < bd[k - 1]:
                        _insert(bd, bi, kv[t], j_off + t0 + t)


@dataclass(frozen=True)
class _Prepared:
    """Codes ready for ``_mixed_knn``: private (n, c), candidates transposed (c, m), prepared kinds
    and weights, the empty-slot sentinel and the bit width for the IPv4 bit-length."""

    p: np.ndarray
    ct: np.ndarray
    kinds: np.ndarray
    weights: np.ndarray
    big: np.integer
    wbits: int


def _prepare(p: np.ndarray, c: np.ndarray, metric: MixedMetric) -> _Prepared:
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
            elif kind == IPV4:
                bound += 32 * w
            else:  # PORT codes stay unshifted (service classes depend on the value)
                fits &= info.min <= int(lo[j]) and int(hi[j]) <= info.max
                bound += 3 * w
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

        pk = np.where((kinds == ABS) & active, 5, kinds)
        wt = np.where((kinds == ABS) & active, 1, weights)
        return _Prepared(narrow(p), np.ascontiguousarray(narrow(c).T), pk, wt.astype(dtype),
                         dtype(info.max), 8 * np.dtype(dtype).itemsize)
    return _Prepared(p, np.ascontiguousarray(c.T), kinds, weights, np.int64(_I64_MAX), 64)


def _check(private: np.ndarray, candidates: np.ndarray, k: int) -> None:
    m = candidates.shape[0]
    if not 1 <= k <= m:
        raise ValueError(f"k={k} must be between 1 and the number of candidates ({m})")
    if private.ndim != 2 or candidates.ndim != 2 or private.shape[1] != candidates.shape[1]:
        raise ValueError(f"private codes {private.shape} and candidate codes {candidates.shape} do not match")


def _nearest_mixed(private, candidates, metric, k, block_rows, progress) -> np.ndarray:
    pi = np.ascontiguousarray(private, dtype=np.int64)
    ci = np.ascontiguousarray(candidates, dtype=np.int64)
    if len(metric.kinds) != pi.shape[1]:
        raise ValueError(f"the MixedMetric has {len(metric.kinds)} columns but the codes have {pi.shape[1]}")
    pr = _prepare(pi, ci, metric)
    out = np.empty((pi.shape[0], k), dtype=np.int64)
    # memory inside the kernel is O(threads × chunk); blocks only pace the progress callback
    b = block_rows or max(1024, _block_rows(ci.shape[0]))
    for s in range(0, pi.shape[0], b):
        _mixed_knn(pr.p[s:s + b], pr.ct, pr.kinds, pr.weights, k, pr.big, pr.wbits, out[s:s + b])
        if progress:
            progress(min(b, pi.shape[0] - s))
    return out


def _nearest_l2(private, candidates, k, block_rows, progress) -> np.ndarray:
    p = np.ascontiguousarray(private, dtype=np.float32)
    c = np.ascontiguousarray(candidates, dtype=np.float32)
    if not (np.isfinite(p).all() and np.isfinite(c).all()):
        raise ValueError("L2 codes contain NaN or infinite values; check the encoder's output")
    n, m = p.shape[0], c.shape[0]
    p64, c64 = p.astype(np.float64), c.astype(np.float64)
    p_sq = np.einsum("ij,ij->i", p64, p64)  # the reference's norms, bit for bit
    c_sq = np.einsum("ij,ij->i", c64, c64)
    del p64, c64
    ct = np.ascontiguousarray(c.T)
    tile = min(m, 8192)
    b = block_rows or max(16, min(512, _L2_BLOCK_ELEMS // tile))
    out = np.empty((n, k), dtype=np.int64)
    g = np.empty((b, tile), dtype=np.float32)
    for s in range(0, n, b):
        e = min(s + b, n)
        best_d = np.full((e - s, k), np.inf)
        best_i = np.full((e - s, k), -1, dtype=np.int64)
        for j0 in range(0, m, tile):
            j1 = min(j0 + tile, m)
            gv = g[: e - s, : j1 - j0]
            np.matmul(p[s:e], ct[:, j0:j1], out=gv)
            _l2_merge(gv, p_sq[s:e], c_sq[j0:j1], best_d, best_i, j0)
        out[s:e] = best_i
        if progress:
            progress(e - s)
    return out


def nearest(
    private: np.ndarray, candidates: np.ndarray, metric: Metric, k: int = 1,
    block_rows: int | None = None, progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Indices (n_private, k) of each private row's k nearest candidates, nearest first; ties go to
    the smallest candidate index. Same contract as ``reference.nearest``."""
    _check(private, candidates, k)
    if isinstance(metric, MixedMetric):
        return _nearest_mixed(private, candidates, metric, k, block_rows, progress)
    if isinstance(metric, L2Metric):
        return _nearest_l2(private, candidates, k, block_rows, progress)
    raise TypeError(f"unsupported metric {metric!r}")


def set_threads(n: int) -> None:
    """Threads for this kernel (numba's setting is per calling thread)."""
    numba.set_num_threads(n)
