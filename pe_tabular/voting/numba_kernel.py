"""The numba nearest-neighbour kernel: same contract and same answers as ``reference.nearest``.

Mixed-type metric (``MixedMetric``): distances are computed directly on the integer codes (no
one-hot expansion, no n × m matrix), column by column into a buffer of 512 candidate distances, so
every inner loop is a plain SIMD loop over candidates. Codes are first narrowed by
``prepare.prepare_mixed`` to the smallest exact integer type (int16 for Adult-like tables: 16 lanes
per AVX2 instruction). Loop order keeps one chunk of candidate codes in L1 while all rows of a
block are scored against it. Arithmetic is exact, so results are bit-identical to the reference.

L2 metric: the key ‖c‖² − 2 p·c comes straight out of one GEMM on augmented operands
(``prepare.l2_operands``: numpy matmul, i.e. the BLAS, in float32 — or float64 when integer-valued
inputs are too large for float32 to stay exact). The top-k pass then only compares keys. Exact
for integer-valued inputs; for general floats the kernels agree with the float64 reference up to
float rounding (candidates whose distances differ by less than the rounding error may swap).

Top-k: candidates are scanned in ascending index order and a candidate enters the running list
only if it is *strictly* closer than the current k-th, so ties go to the smallest index and the
list stays nearest-first, exactly like the reference's stable sort. Each chunk is first tested
with a vectorised reduction and scanned element by element only when it can improve the list, so
the top-k pass costs little more than reading the distances.

Parallelism: private rows are split into blocks run by a thread pool on GIL-free serial kernels
(``driver="threads"``, the default), or by one numba ``prange`` region (``driver="prange"``). Both
give identical results; the pool is the default because OpenMP's spin-waiting barriers, and their
fight with the BLAS threads between GEMM tiles, cost 3–6× on shared, oversubscribed CPUs in our
measurements. Memory is O(threads × block), never O(n_private × n_candidates).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic
from threadpoolctl import threadpool_limits

from pe_tabular.distance import L2Metric, Metric, MixedMetric
from pe_tabular.voting.prepare import PreparedCodes, l2_operands, prepare_mixed
from pe_tabular.voting.reference import mixed_distances

_CHUNK = 512  # candidates per distance buffer / reduction chunk: c × 512 codes stay in L1
_L2_BLOCK_ELEMS = 1 << 22  # float32 GEMM output per block of the prange driver (16 MB)
_L2_TILE = 1024  # candidates per GEMM tile: a 256 × 1024 float32 tile (1 MB) stays in L2 for the top-k pass
_L2_ROWS = 256  # private rows per L2 task
_PLAN_SAMPLE = 256  # private × candidate pairs sampled (256 × 256) to order columns for pruning
_PLAN_CHECKS = (0.5, 0.7, 0.85)  # pruning checkpoints: shares of the mean distance computed so far
_MIXED_TASK_PAIRS = 1 << 22  # private × candidate pairs per mixed-metric task (sets rows per task)


@intrinsic
def _bitlen32(typingctx, x):
    """Bit length of the low 32 bits of x (0 for 0): 32 − ctlz(trunc₃₂ x). Numba widens
    int32 ^ int32 to int64 with sign extension; truncating first makes the count right for the
    int32 codes (bit 31 flipped on both sides) and the int64 codes (< 2**32) alike."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        v = args[0]
        if v.type.width > 32:
            v = builder.trunc(v, i32)
        elif v.type.width < 32:
            v = builder.zext(v, i32)
        n = builder.sub(ir.Constant(i32, 32), builder.ctlz(v, ir.Constant(ir.IntType(1), 0)))
        return builder.zext(n, ir.IntType(64))

    return types.int64(x), codegen


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


@njit(nogil=True, cache=True)
def _mixed_rows(P, Ct, kinds, weights, checks, k, big, out):  # pragma: no cover - compiled
    """Serial kernel over a block of private rows (releases the GIL, so blocks run in threads).

    Loop order: candidate chunk outermost, so a chunk's codes (c × 512) stay in L1 while every
    row of the block is scored against it. Kinds are the prepared ones: 0 CAT, 1 ABS, 2 SQ,
    3 IPV4, 5 ABS with the weight already folded into the codes (no multiply).

    Pruning: after each column flagged in ``checks`` the chunk's partial distances are tested; if
    none is below the current k-th best, no candidate of the chunk can enter (every term is ≥ 0)
    and the remaining columns are skipped. Results are unchanged; only work is saved."""
    n, c = P.shape
    m = Ct.shape[1]
    buf = np.empty(_CHUNK, dtype=P.dtype)
    best_d = np.full((n, k), big, dtype=P.dtype)
    best_i = np.full((n, k), -1, dtype=np.int64)
    for j0 in range(0, m, _CHUNK):
        L = min(_CHUNK, m - j0)
        b = buf[:L]
        for i in range(n):
            prow = P[i]
            b[:] = 0
            pruned = False
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
                else:  # 3, IPV4: 32 - common prefix = bit length of a XOR b
                    for t in range(L):
                        b[t] += w * _bitlen32(row[t] ^ a)
                if checks[col] and _chunk_min(b, L) >= best_d[i, k - 1]:
                    pruned = True
                    break
            if pruned:
                continue
            bd = best_d[i]
            bi = best_i[i]
            mn = _chunk_min(b, L)
            if mn < bd[k - 1]:
                if k == 1:
                    for t in range(L):
                        if b[t] == mn:
                            bd[0] = mn
                            bi[0] = j0 + t
                            break
                else:
                    for t in range(L):
                        if b[t] < bd[k - 1]:
                            _insert(bd, bi, b[t], j0 + t)
    out[:, :] = best_i


@njit(parallel=True, cache=True)
def _mixed_prange(P, Ct, kinds, weights, checks, k, big, out, rows_per_task):  # pragma: no cover
    """The same kernel as one numba-parallel region (prange over row blocks): the ``prange``
    driver, kept for comparison in benchmarks/voting.py (see ``nearest(..., driver=)``)."""
    n = P.shape[0]
    n_tasks = (n + rows_per_task - 1) // rows_per_task
    for q in prange(n_tasks):
        s = q * rows_per_task
        e = min(n, s + rows_per_task)
        _mixed_rows(P[s:e], Ct, kinds, weights, checks, k, big, out[s:e])


@njit(nogil=True, cache=True)
def _l2_merge(G, best_d, best_i, j_off):  # pragma: no cover - compiled
    """Fold one tile of keys G[r, t] = ‖c‖² − 2 p·c (from the augmented GEMM) into each row's
    running top-k. A chunk is scanned element by element only if it holds a key below the
    current k-th best, which a vectorised any() decides."""
    B, L = G.shape
    k = best_d.shape[1]
    for r in range(B):
        bd = best_d[r]
        bi = best_i[r]
        for t0 in range(0, L, _CHUNK):
            n = min(_CHUNK, L - t0)
            g = G[r, t0:t0 + n]
            worst = bd[k - 1]
            hit = False
            for t in range(n):
                hit |= g[t] < worst
            if hit:
                for t in range(n):
                    if g[t] < bd[k - 1]:
                        _insert(bd, bi, g[t], j_off + t0 + t)


@njit(parallel=True, cache=True)
def _l2_merge_prange(G, best_d, best_i, j_off, rows_per_task):  # pragma: no cover
    n = G.shape[0]
    n_tasks = (n + rows_per_task - 1) // rows_per_task
    for q in prange(n_tasks):
        s = q * rows_per_task
        e = min(n, s + rows_per_task)
        _l2_merge(G[s:e], best_d[s:e], best_i[s:e], j_off)


def _check(private: np.ndarray, candidates: np.ndarray, k: int) -> None:
    m = candidates.shape[0]
    if not 1 <= k <= m:
        raise ValueError(f"k={k} must be between 1 and the number of candidates ({m})")
    if private.ndim != 2 or candidates.ndim != 2 or private.shape[1] != candidates.shape[1]:
        raise ValueError(f"private codes {private.shape} and candidate codes {candidates.shape} do not match")


def _column_plan(pr: PreparedCodes, pi: np.ndarray, ci: np.ndarray, metric: MixedMetric) -> PreparedCodes:
    """Reorder columns by their mean contribution to the distance (largest first, estimated on a
    fixed sample of pairs) and flag pruning checkpoints where a chunk's partial sums usually
    already exceed the best: after the columns holding ~50%, 70% and 85% of the mean distance.
    Integer sums do not depend on column order, so results are unchanged."""
    c = pi.shape[1]
    if c <= 2 or pi.shape[0] == 0:
        return replace(pr, checks=np.zeros(c, np.int8))
    rng = np.random.default_rng(0)
    ps = pi[rng.integers(0, pi.shape[0], _PLAN_SAMPLE)]
    cs = ci[rng.integers(0, ci.shape[0], _PLAN_SAMPLE)]
    mean = np.array([mixed_distances(ps[:, j:j + 1], cs[:, j:j + 1],
                                     MixedMetric(metric.kinds[j:j + 1], metric.weights[j:j + 1])).mean()
                     for j in range(c)])
    order = np.argsort(-mean, kind="stable")
    share = np.cumsum(mean[order]) / max(mean.sum(), 1e-12)
    checks = np.zeros(c, np.int8)
    for f in _PLAN_CHECKS:
        pos = int(np.searchsorted(share, f))
        if pos < c - 1:
            checks[pos] = 1
    return replace(pr, p=np.ascontiguousarray(pr.p[:, order]), ct=np.ascontiguousarray(pr.ct[order]),
                   kinds=pr.kinds[order], weights=pr.weights[order], checks=checks)


def _run_blocks(task: Callable[[int, int], None], n: int, rows: int, threads: int,
                progress: Callable[[int], None] | None) -> None:
    """Run ``task(start, stop)`` over row blocks on a pool of threads (the kernels release the
    GIL). Progress is reported from the calling thread, in completion order."""
    starts = range(0, n, rows)
    if threads <= 1 or len(starts) <= 1:
        for s in starts:
            task(s, min(s + rows, n))
            if progress:
                progress(min(rows, n - s))
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pe-vote") as ex:
        futs = {ex.submit(task, s, min(s + rows, n)): min(rows, n - s) for s in starts}
        for f in as_completed(futs):
            f.result()
            if progress:
                progress(futs[f])


def _nearest_mixed(private, candidates, metric, k, block_rows, progress, threads, driver) -> np.ndarray:
    pi = np.ascontiguousarray(private, dtype=np.int64)
    ci = np.ascontiguousarray(candidates, dtype=np.int64)
    if len(metric.kinds) != pi.shape[1]:
        raise ValueError(f"the MixedMetric has {len(metric.kinds)} columns but the codes have {pi.shape[1]}")
    pr = _column_plan(prepare_mixed(pi, ci, metric), pi, ci, metric)
    checks = pr.checks
    n = pi.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    # kernel memory is one chunk buffer per thread; blocks set the task size and progress pace
    rows = block_rows or int(np.clip(_MIXED_TASK_PAIRS // max(ci.shape[0], 1), 8, 4096))
    if driver == "prange":
        _mixed_prange(pr.p, pr.ct, pr.kinds, pr.weights, checks, k, pr.big, out, rows)
        if progress:
            progress(n)
        return out

    def task(s: int, e: int) -> None:
        _mixed_rows(pr.p[s:e], pr.ct, pr.kinds, pr.weights, checks, k, pr.big, out[s:e])

    _run_blocks(task, n, rows, threads, progress)
    return out


def _nearest_l2(private, candidates, k, block_rows, progress, threads, driver) -> np.ndarray:
    p = np.asarray(private)
    c = np.asarray(candidates)
    if not (np.isfinite(p).all() and np.isfinite(c).all()):
        raise ValueError("L2 codes contain NaN or infinite values; check the encoder's output")
    pa, ca = l2_operands(p, c)
    n, m = p.shape[0], c.shape[0]
    tile = min(m, _L2_TILE)
    rows = block_rows or _L2_ROWS
    out = np.empty((n, k), dtype=np.int64)
    local = threading.local()

    def task(s: int, e: int) -> None:
        g = getattr(local, "g", None)
        if g is None or g.shape[0] < e - s:
            g = local.g = np.empty((e - s, tile), dtype=pa.dtype)
        best_d = np.full((e - s, k), np.inf, dtype=pa.dtype)
        best_i = np.full((e - s, k), -1, dtype=np.int64)
        for j0 in range(0, m, tile):
            j1 = min(j0 + tile, m)
            gv = g[: e - s, : j1 - j0]
            np.matmul(pa[s:e], ca[:, j0:j1], out=gv)
            _l2_merge(gv, best_d, best_i, j0)
        out[s:e] = best_i

    if driver == "prange":  # BLAS threads for the GEMM, a numba-parallel region for the top-k pass
        big = max(rows, _L2_BLOCK_ELEMS // max(tile, 1))
        for s in range(0, n, big):
            e = min(s + big, n)
            best_d = np.full((e - s, k), np.inf, dtype=pa.dtype)
            best_i = np.full((e - s, k), -1, dtype=np.int64)
            for j0 in range(0, m, tile):
                j1 = min(j0 + tile, m)
                _l2_merge_prange(pa[s:e] @ ca[:, j0:j1], best_d, best_i, j0, rows)
            out[s:e] = best_i
            if progress:
                progress(e - s)
        return out
    with threadpool_limits(limits=1, user_api="blas"):  # one BLAS thread per voting thread
        _run_blocks(task, n, rows, threads, progress)
    return out


def nearest(
    private: np.ndarray, candidates: np.ndarray, metric: Metric, k: int = 1,
    block_rows: int | None = None, progress: Callable[[int], None] | None = None,
    *, threads: int | None = None, driver: str = "threads",
) -> np.ndarray:
    """Indices (n_private, k) of each private row's k nearest candidates, nearest first; ties go to
    the smallest candidate index. Same contract and results as ``reference.nearest``.

    ``threads`` defaults to ``numba.get_num_threads()`` (so ``numba.set_num_threads`` and
    ``NUMBA_NUM_THREADS`` apply). ``driver="threads"`` runs GIL-free serial kernels on row blocks in
    a thread pool; ``driver="prange"`` runs one numba-parallel (OpenMP) region instead. Both give
    identical results; the pool is the default because OpenMP's spin-waiting barriers collapsed on
    shared, oversubscribed CPUs in our measurements (benchmarks/RESULTS.md, "Voting kernels")."""
    _check(private, candidates, k)
    if driver not in ("threads", "prange"):
        raise ValueError(f"driver must be 'threads' or 'prange', got {driver!r}")
    t = max(1, int(threads or numba.get_num_threads()))
    if isinstance(metric, MixedMetric):
        return _nearest_mixed(private, candidates, metric, k, block_rows, progress, t, driver)
    if isinstance(metric, L2Metric):
        return _nearest_l2(private, candidates, k, block_rows, progress, t, driver)
    raise TypeError(f"unsupported metric {metric!r}")
