"""The numba and JAX kernels must give exactly the reference's answers, ties included.

Property-based: hypothesis draws schemas (kinds, weights, code ranges), sizes, k and duplicate
rows; code ranges are chosen to hit every exact integer type the kernels pick (int16, int32,
int64) and to make ties frequent (tiny ranges, copied rows)."""

from __future__ import annotations

import importlib
import logging

import numpy as np
import pytest
from conftest import has_extra
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pe_tabular.distance import ABS, CAT, IPV4, SQ, L2Metric, MixedMetric
from pe_tabular.voting import numba_kernel, reference
from pe_tabular.voting.prepare import l2_operands, prepare_mixed
from pe_tabular.voting.registry import get_voter

# the JAX kernel needs the jax extra: its tests skip in the core environment; the numba kernel is core
jax_kernel = importlib.import_module("pe_tabular.voting.jax_kernel") if has_extra("jax") else None
needs_jax = pytest.mark.extra("jax")
COMPILED = [numba_kernel] + ([jax_kernel] if jax_kernel is not None else [])  # what this environment has
KERNEL_PARAMS = [numba_kernel, pytest.param(jax_kernel, marks=needs_jax, id="jax_kernel")]

# code range per (kind, scale): tiny ranges force ties, huge ones force the int64 path
_RANGES = {
    CAT: (3, 50, 2**40),
    ABS: (4, 300, 2**40),
    SQ: (4, 200, 2**20),  # SQ past 2**20 would overflow the reference's int64 keys
    IPV4: (2**32 - 1,) * 3,
}


@st.composite
def mixed_problem(draw, max_rows: int = 40, max_cands: int = 40):
    c = draw(st.integers(1, 6))
    kinds = np.array(draw(st.lists(st.sampled_from([CAT, ABS, SQ, IPV4]), min_size=c, max_size=c)), np.int8)
    weights = np.array(draw(st.lists(st.integers(0, 6), min_size=c, max_size=c)), np.int64)
    scale = draw(st.integers(0, 2))
    n = draw(st.integers(0, max_rows))
    m = draw(st.integers(1, max_cands))
    k = draw(st.integers(1, min(m, 5)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    hi = [_RANGES[int(kind)][scale] for kind in kinds]
    pool = np.stack([rng.integers(0, h + 1, size=n + m) for h in hi], axis=1)
    if draw(st.booleans()):  # duplicates: copy some rows onto others (exact ties between candidates)
        src = rng.integers(0, n + m, size=(n + m) // 2)
        dst = rng.integers(0, n + m, size=src.size)
        pool[dst] = pool[src]
    return pool[:n], pool[n:], MixedMetric(kinds, weights), k


_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@settings(max_examples=60, **_SETTINGS)
@given(mixed_problem())
def test_numba_mixed_matches_reference(problem):
    p, c, metric, k = problem
    want = reference.nearest(p, c, metric, k=k)
    np.testing.assert_array_equal(numba_kernel.nearest(p, c, metric, k=k), want)
    # tiny row blocks exercise the thread pool with many tasks; results must not change
    np.testing.assert_array_equal(numba_kernel.nearest(p, c, metric, k=k, block_rows=3, threads=2), want)


@pytest.mark.slow
@needs_jax
@settings(max_examples=15, **_SETTINGS)
@given(mixed_problem(max_rows=20, max_cands=20))
def test_jax_mixed_matches_reference(problem):
    p, c, metric, k = problem
    np.testing.assert_array_equal(jax_kernel.nearest(p, c, metric, k=k), reference.nearest(p, c, metric, k=k))


@st.composite
def integer_l2_problem(draw):
    d = draw(st.integers(1, 8))
    n = draw(st.integers(0, 30))
    m = draw(st.integers(1, 30))
    k = draw(st.integers(1, min(m, 4)))
    lim = draw(st.sampled_from([1, 3, 50]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    pool = rng.integers(-lim, lim + 1, size=(n + m, d)).astype(np.float32)
    if draw(st.booleans()):
        pool[rng.integers(0, n + m, size=(n + m) // 2)] = pool[rng.integers(0, n + m)]
    return pool[:n], pool[n:], k


@settings(max_examples=40, **_SETTINGS)
@given(integer_l2_problem())
def test_l2_integer_valued_matches_reference_exactly(problem):
    p, c, k = problem
    want = reference.nearest(p, c, L2Metric(), k=k)
    for kernel in COMPILED:
        np.testing.assert_array_equal(kernel.nearest(p, c, L2Metric(), k=k), want)


def test_l2_large_integers_switch_to_float64_and_stay_exact():
    """Pixel-like vectors (0..255, d = 784) have dot products past 2**24, where float32 is no longer
    exact; the kernels must notice and still match the float64 reference, ties included."""
    rng = np.random.default_rng(3)
    p = rng.integers(0, 256, size=(40, 784)).astype(np.float32)
    c = rng.integers(0, 256, size=(50, 784)).astype(np.float32)
    c[7] = c[31] = c[44]  # exact ties between candidates
    p[:5] = c[44] + 1
    assert l2_operands(p, c)[0].dtype == np.float64
    for k in (1, 3):
        want = reference.nearest(p, c, L2Metric(), k=k)
        for kernel in COMPILED:
            np.testing.assert_array_equal(kernel.nearest(p, c, L2Metric(), k=k), want)


def test_l2_general_floats_agree_up_to_rounding():
    """Non-integer floats: the chosen neighbours' true distances equal the reference's up to float32
    rounding (the order of near-ties may differ; that is the documented limit)."""
    rng = np.random.default_rng(4)
    p = rng.standard_normal((200, 16)).astype(np.float32)
    c = rng.standard_normal((300, 16)).astype(np.float32)
    want = reference.nearest(p, c, L2Metric(), k=3)
    d = reference.l2_distances(p, c)
    best = np.take_along_axis(d, want, axis=1)
    for kernel in COMPILED:
        got = kernel.nearest(p, c, L2Metric(), k=3)
        np.testing.assert_allclose(np.take_along_axis(d, got, axis=1), best, rtol=1e-5, atol=1e-5)
        assert (got == want).mean() > 0.99


@pytest.mark.parametrize("kernel", KERNEL_PARAMS)
def test_progress_reports_every_row_once(kernel):
    rng = np.random.default_rng(5)
    metric = MixedMetric(np.array([CAT, ABS], np.int8), np.array([2, 1], np.int64))
    p, c = rng.integers(0, 9, size=(103, 2)), rng.integers(0, 9, size=(17, 2))
    seen: list[int] = []
    kernel.nearest(p, c, metric, k=2, block_rows=10, progress=seen.append)
    assert sum(seen) == 103 and all(s > 0 for s in seen)


def test_prange_driver_matches_thread_pool():
    rng = np.random.default_rng(6)
    metric = MixedMetric(np.array([CAT, ABS, IPV4, CAT], np.int8), np.array([3, 1, 1, 2], np.int64))
    p = np.stack([rng.integers(0, 5, 300), rng.integers(0, 40, 300), rng.integers(0, 2**32, 300),
                  rng.integers(0, 65536, 300)], axis=1)
    c = p[rng.integers(0, 300, 90)]
    want = reference.nearest(p, c, metric, k=4)
    np.testing.assert_array_equal(numba_kernel.nearest(p, c, metric, k=4, driver="prange"), want)
    pf, cf = p[:, :2].astype(np.float32), c[:, :2].astype(np.float32)
    np.testing.assert_array_equal(numba_kernel.nearest(pf, cf, L2Metric(), k=2, driver="prange"),
                                  reference.nearest(pf, cf, L2Metric(), k=2))


@pytest.mark.parametrize("k", [1, 3])
def test_pruned_chunks_never_change_the_answer(k):
    """Many candidate chunks (m > 512): the numba kernel skips a chunk's remaining columns once its
    partial sums cannot beat the k-th best. Exact duplicates of private rows make the best distance
    0 early, so later chunks are pruned at the first checkpoint; later duplicates (ties at 0) must
    still lose to the first ones."""
    rng = np.random.default_rng(9)
    metric = MixedMetric(np.array([CAT, CAT, CAT, ABS, ABS, SQ], np.int8), np.array([1000, 800, 900, 3, 1, 2]))
    p = np.stack([rng.integers(0, 8, 150), rng.integers(0, 5, 150), rng.integers(0, 3, 150),
                  rng.integers(0, 100, 150), rng.integers(0, 50, 150), rng.integers(0, 9, 150)], axis=1)
    c = np.concatenate([rng.permutation(np.concatenate([p[:60], p[:60]])), p[rng.integers(0, 150, 2400)]])
    c[::7, 3] += 1  # near-duplicates too
    want = reference.nearest(p, c, metric, k=k)
    np.testing.assert_array_equal(numba_kernel.nearest(p, c, metric, k=k), want)
    np.testing.assert_array_equal(numba_kernel.nearest(p, c, metric, k=k, driver="prange"), want)


def test_narrow_types_are_chosen_only_when_exact():
    kinds, w = np.array([CAT, ABS, SQ], np.int8), np.array([5, 2, 1], np.int64)
    small = np.array([[0, 10, 3], [2, 90, 7]])
    assert prepare_mixed(small, small, MixedMetric(kinds, w)).p.dtype == np.int16
    # a squared span of 300**2 = 90,000 no longer fits int16 but fits int32
    wide = np.array([[0, 10, 0], [2, 90, 300]])
    assert prepare_mixed(wide, wide, MixedMetric(kinds, w)).p.dtype == np.int32
    huge = np.array([[0, 0, 0], [2, 2**40, 7]])
    assert prepare_mixed(huge, huge, MixedMetric(kinds, w)).p.dtype == np.int64


@pytest.mark.parametrize("kernel", KERNEL_PARAMS)
def test_bad_inputs_name_the_problem(kernel):
    metric = MixedMetric(np.array([IPV4], np.int8), np.array([1], np.int64))
    with pytest.raises(ValueError, match="k=3 must be between 1"):
        kernel.nearest(np.zeros((2, 1), np.int64), np.zeros((2, 1), np.int64), metric, k=3)
    with pytest.raises(ValueError, match="do not match"):
        kernel.nearest(np.zeros((2, 1), np.int64), np.zeros((2, 2), np.int64), metric)
    with pytest.raises(ValueError, match="column 0 is an IPv4 column"):
        kernel.nearest(np.array([[-1]]), np.array([[5]]), metric)
    with pytest.raises(ValueError, match="NaN or infinite"):
        kernel.nearest(np.array([[np.nan]], np.float32), np.zeros((1, 1), np.float32), L2Metric())


@pytest.mark.parametrize("kernel", [reference, *KERNEL_PARAMS])
def test_retired_and_unknown_kinds_are_refused(kernel):
    """Kind 4 (retired) and prepared-only or unknown codes must fail, never fall into another kind's branch."""
    for kind in (4, 5, 9):
        metric = MixedMetric(np.array([kind], np.int8), np.array([1], np.int64))
        with pytest.raises(ValueError, match="unknown distance kind"):
            kernel.nearest(np.zeros((2, 1), np.int64), np.zeros((2, 1), np.int64), metric)


@needs_jax
def test_jax_int64_path_leaves_global_x64_setting_alone():
    import jax

    before = jax.config.jax_enable_x64
    metric = MixedMetric(np.array([ABS], np.int8), np.array([1], np.int64))
    p, c = np.array([[0], [2**40]]), np.array([[2**40 - 1], [1]])
    assert prepare_mixed(p, c, metric).p.dtype == np.int64
    np.testing.assert_array_equal(jax_kernel.nearest(p, c, metric), reference.nearest(p, c, metric))
    assert jax.config.jax_enable_x64 == before


def test_auto_voter_picks_a_compiled_kernel_and_logs_it(caplog):
    with caplog.at_level(logging.INFO, logger="pe_tabular.voting.registry"):
        f = get_voter("auto")
    assert f in [k.nearest for k in COMPILED]
    assert any("voter auto ->" in r.getMessage() for r in caplog.records)
    assert get_voter("numba") is numba_kernel.nearest
    if jax_kernel is not None:
        assert get_voter("jax") is jax_kernel.nearest
    with pytest.raises(ValueError, match="unknown --voter 'faiss'"):
        get_voter("faiss")
