"""The JAX nearest-neighbour kernel: same contract and same answers as ``reference.nearest``.

Runs wherever JAX runs (CPU here, a GPU unchanged). Work is a grid of fixed-shape blocks — a
block of private rows against a block of candidates — compiled once per (block shape, columns,
kinds, k, dtype): the last blocks are padded (padded candidates get a distance no real candidate
can have, padded rows are dropped), so varying population sizes never trigger a recompile.
Memory is O(block_rows × block_cands), never O(n_private × n_candidates).

Exactness. Mixed-type distances are integer arithmetic in the narrowest exact type chosen by
``prepare.prepare_mixed`` (int16/int32 need no 64-bit mode; the int64 fallback runs inside a
*local* ``jax.enable_x64`` context, so the process-wide JAX setting is never changed). L2 uses
the augmented GEMM of ``prepare.l2_operands`` with ``Precision.HIGHEST`` (true float32, never
TF32 on a GPU): exact for integer-valued inputs, float rounding otherwise.

Ties. Each block's k nearest are found by k min-reductions that return the smallest index among
equal distances, then merged with the running list by a lexicographic sort on (distance, index),
so among equal distances the smaller candidate index always wins, as in the reference's stable
sort. (Plain min-reductions rather than ``lax.top_k``/``argmin``: those are 10–40× slower on
XLA:CPU in our measurements.)
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from pe_tabular.distance import L2Metric, Metric, MixedMetric
from pe_tabular.voting.prepare import ABS_FOLDED, l2_operands, prepare_mixed

_BLOCK_ELEMS = 1 << 21  # distances per (rows × candidates) block: 8 MB of int32 / float32
_MAX_CANDS = 4096
_MIN_BLOCK = 64  # small inputs share one padded shape (and one compile)
_FEATURE_PAD = 8  # L2 feature dimension padded to a multiple of this (zeros leave dot products unchanged)


def _bucket(n: int, cap: int) -> int:
    """Next power of two ≥ n (at least _MIN_BLOCK), capped: few distinct shapes, few compiles."""
    return int(min(cap, max(_MIN_BLOCK, 1 << max(0, int(n - 1).bit_length()))))


def _block_topk(d: jax.Array, k: int, packed: bool) -> tuple[jax.Array, jax.Array]:
    """The k smallest (distance, local index) pairs of each row, nearest first, ties by index.

    k passes of plain min-reductions (XLA's ``top_k`` and variadic ``argmin`` are slow on CPU).
    ``packed``: integer distances small enough that key = d·cols + j fits int32, so one reduction
    per pass finds both the distance and the smallest index holding it; else value, then index."""
    cb = d.shape[1]
    j = jnp.arange(cb, dtype=jnp.int32)[None, :]
    ds, js = [], []
    if packed:
        key = d.astype(jnp.int32) * cb + j
        for q in range(k):
            mk = jnp.min(key, axis=1)
            ds.append((mk // cb).astype(d.dtype))
            js.append(mk % cb)
            if q + 1 < k:
                key = jnp.where(key == mk[:, None], jnp.iinfo(jnp.int32).max, key)
    else:
        empty = jnp.inf if jnp.issubdtype(d.dtype, jnp.floating) else jnp.iinfo(d.dtype).max
        for q in range(k):
            mn = jnp.min(d, axis=1)
            mj = jnp.min(jnp.where(d == mn[:, None], j, cb), axis=1)
            ds.append(mn)
            js.append(mj)
            if q + 1 < k:
                d = jnp.where(j == mj[:, None], empty, d)
    return jnp.stack(ds, axis=1), jnp.stack(js, axis=1)


def _merge(d: jax.Array, j_off: jax.Array, best_d: jax.Array, best_i: jax.Array, k: int, packed: bool = False):
    """Running top-k (nearest first) after one block of distances d (rows × cands).

    Running entries come from earlier blocks, so their indices are smaller; sorting the 2k
    candidates lexicographically by (distance, index) therefore reproduces the reference order."""
    bd, bj = _block_topk(d, k, packed)
    bj = (bj + j_off).astype(best_i.dtype)
    if k == 1:
        better = bd < best_d  # strict: an equal distance keeps the earlier candidate
        return jnp.where(better, bd, best_d), jnp.where(better, bj, best_i)
    cat_d = jnp.concatenate([best_d, bd], axis=1)
    cat_i = jnp.concatenate([best_i, bj], axis=1)
    sd, si = lax.sort((cat_d, cat_i), dimension=1, num_keys=2)
    return sd[:, :k], si[:, :k]


@partial(jax.jit, static_argnames=("kinds", "k", "wbits", "packed"))
def _mixed_step(p, ct, weights, j_off, m, best_d, best_i, big, *, kinds, k, wbits, packed):
    """One block: p (rows, c) against ct (c, cands) starting at candidate j_off."""
    d = jnp.zeros((p.shape[0], ct.shape[1]), dtype=p.dtype)
    for col, kind in enumerate(kinds):
        a, x, w = p[:, col, None], ct[col][None, :], weights[col]
        if kind == 0:  # CAT
            term = w * (x != a).astype(d.dtype)
        elif kind == ABS_FOLDED:
            term = jnp.maximum(x, a) - jnp.minimum(x, a)
        elif kind == 1:  # ABS
            term = w * (jnp.maximum(x, a) - jnp.minimum(x, a))
        elif kind == 2:  # SQ
            term = w * (x - a) * (x - a)
        else:  # 3, IPV4: bit length of a XOR b
            term = w * (wbits - lax.clz(x ^ a)).astype(d.dtype)
        d = d + term
    j = j_off + jnp.arange(ct.shape[1])
    d = jnp.where((j < m)[None, :], d, big)
    return _merge(d, j_off, best_d, best_i, k, packed)


@partial(jax.jit, static_argnames=("k",))
def _l2_step(pa, ca, j_off, m, best_d, best_i, *, k):
    g = jnp.dot(pa, ca, precision=lax.Precision.HIGHEST, preferred_element_type=pa.dtype)
    j = j_off + jnp.arange(ca.shape[1])
    g = jnp.where((j < m)[None, :], g, jnp.inf)
    return _merge(g, j_off, best_d, best_i, k)


def _cand_block(m: int, k: int) -> int:
    """Candidates per block: a power of two ≤ _MAX_CANDS, but never fewer than k."""
    return max(_bucket(m, _MAX_CANDS), _bucket(k, 1 << 30))


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    if x.shape[0] == rows:
        return x
    out = np.zeros((rows, *x.shape[1:]), dtype=x.dtype)
    out[: x.shape[0]] = x
    return out


def _run(private: np.ndarray, cand_t: np.ndarray, k: int, block_rows: int | None,
         progress: Callable[[int], None] | None, step: Callable, init_d) -> np.ndarray:
    """Drive ``step`` over the block grid. ``cand_t`` is (features, m); ``init_d`` the empty-slot value."""
    n, m = private.shape[0], cand_t.shape[1]
    cb = _cand_block(m, k)
    rb = block_rows or _bucket(n, max(_MIN_BLOCK, _BLOCK_ELEMS // cb))
    n_cb = -(-m // cb)
    ct_pad = np.zeros((cand_t.shape[0], n_cb * cb), dtype=cand_t.dtype)
    ct_pad[:, :m] = cand_t
    blocks = [jnp.asarray(ct_pad[:, b * cb:(b + 1) * cb]) for b in range(n_cb)]
    m_dev = jnp.asarray(m, dtype=jnp.int32)
    offs = [jnp.asarray(b * cb, dtype=jnp.int32) for b in range(n_cb)]
    out = np.empty((n, k), dtype=np.int64)
    for s in range(0, n, rb):
        e = min(s + rb, n)
        p = jnp.asarray(_pad_rows(private[s:e], rb))
        best_d = jnp.full((rb, k), init_d, dtype=private.dtype)
        best_i = jnp.full((rb, k), -1, dtype=jnp.int32)
        for b in range(n_cb):
            best_d, best_i = step(p, blocks[b], offs[b], m_dev, best_d, best_i)
        out[s:e] = np.asarray(best_i)[: e - s]
        if progress:
            progress(e - s)
    return out


def nearest(
    private: np.ndarray, candidates: np.ndarray, metric: Metric, k: int = 1,
    block_rows: int | None = None, progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Indices (n_private, k) of each private row's k nearest candidates, nearest first; ties go to
    the smallest candidate index. Same contract and results as ``reference.nearest``."""
    m = candidates.shape[0]
    if not 1 <= k <= m:
        raise ValueError(f"k={k} must be between 1 and the number of candidates ({m})")
    if private.ndim != 2 or candidates.ndim != 2 or private.shape[1] != candidates.shape[1]:
        raise ValueError(f"private codes {private.shape} and candidate codes {candidates.shape} do not match")
    if m >= 2**31:
        raise ValueError(f"{m} candidates exceed the int32 indices of the JAX kernel; use --voter numba")
    if isinstance(metric, MixedMetric):
        pi = np.ascontiguousarray(private, dtype=np.int64)
        ci = np.ascontiguousarray(candidates, dtype=np.int64)
        if len(metric.kinds) != pi.shape[1]:
            raise ValueError(f"the MixedMetric has {len(metric.kinds)} columns but the codes have {pi.shape[1]}")
        pr = prepare_mixed(pi, ci, metric)
        wide = pr.p.dtype == np.int64
        with jax.enable_x64(True) if wide else nullcontext():
            big = jnp.asarray(pr.big, dtype=pr.p.dtype)
            weights = jnp.asarray(pr.weights)
            kinds = tuple(int(x) for x in pr.kinds)

            # (largest distance, i.e. the padding value) · block width + index must fit int32
            packed = (int(pr.big) + 1) * _cand_block(m, k) <= np.iinfo(np.int32).max

            def step(p, ct, j_off, m_dev, best_d, best_i):
                return _mixed_step(p, ct, weights, j_off, m_dev, best_d, best_i, big,
                                   kinds=kinds, k=k, wbits=pr.wbits, packed=packed)

            return _run(pr.p, pr.ct, k, block_rows, progress, step, pr.big)
    if isinstance(metric, L2Metric):
        p, c = np.asarray(private), np.asarray(candidates)
        if not (np.isfinite(p).all() and np.isfinite(c).all()):
            raise ValueError("L2 codes contain NaN or infinite values; check the encoder's output")
        pa, ca = l2_operands(p, c)
        f = -(-pa.shape[1] // _FEATURE_PAD) * _FEATURE_PAD
        pa = np.pad(pa, ((0, 0), (0, f - pa.shape[1])))
        ca = np.pad(ca, ((0, f - ca.shape[0]), (0, 0)))
        with jax.enable_x64(True) if pa.dtype == np.float64 else nullcontext():
            def step(p_, ct, j_off, m_dev, best_d, best_i):
                return _l2_step(p_, ct, j_off, m_dev, best_d, best_i, k=k)

            return _run(pa, ca, k, block_rows, progress, step, np.inf)
    raise TypeError(f"unsupported metric {metric!r}")
