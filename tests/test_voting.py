"""The numpy reference kernel (the specification), the vote histogram's sensitivity, and selection."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from pe_tabular.distance import ABS, CAT, IPV4, SQ, L2Metric, MixedMetric
from pe_tabular.voting import nearest, select, vote_histogram
from pe_tabular.voting.reference import mixed_distances


def brute_mixed(p, c, metric):
    d = np.zeros((len(p), len(c)), dtype=np.int64)
    for i in range(len(p)):
        for j in range(len(c)):
            tot = 0
            for col, (kind, w) in enumerate(zip(metric.kinds, metric.weights)):
                a, b = int(p[i, col]), int(c[j, col])
                if kind == CAT:
                    tot += w * (a != b)
                elif kind == ABS:
                    tot += w * abs(a - b)
                elif kind == SQ:
                    tot += w * (a - b) ** 2
                elif kind == IPV4:
                    x = a ^ b
                    tot += w * x.bit_length()
            d[i, j] = tot
    return d


def test_mixed_distances_match_brute_force():
    rng = np.random.default_rng(1)
    metric = MixedMetric(np.array([CAT, ABS, SQ, IPV4], np.int8), np.array([5, 2, 1, 3], np.int64))
    def rows(n):
        return np.stack([rng.integers(0, 4, n), rng.integers(0, 50, n), rng.integers(0, 9, n),
                         rng.integers(0, 2**32, n, dtype=np.int64)], axis=1)
    p, c = rows(30), rows(40)
    assert np.array_equal(mixed_distances(p, c, metric), brute_mixed(p, c, metric))


def test_ties_break_to_smallest_index_and_blocks_do_not_matter():
    metric = MixedMetric(np.array([CAT, CAT], np.int8), np.array([1, 1], np.int64))
    cand = np.array([[0, 1], [0, 0], [0, 0], [1, 1]])
    priv = np.array([[0, 0], [0, 1], [1, 0]])
    nn = nearest(priv, cand, metric, k=2)
    assert nn.tolist() == [[1, 2], [0, 1], [1, 2]]  # [1,0] is 1 away from 1, 2, 3: take 1, 2
    rng = np.random.default_rng(0)
    priv = rng.integers(0, 3, (500, 4))
    cand = rng.integers(0, 3, (60, 4))
    m4 = MixedMetric(np.zeros(4, np.int8), np.ones(4, np.int64))
    for k in (1, 3):
        assert np.array_equal(nearest(priv, cand, m4, k, block_rows=7), nearest(priv, cand, m4, k))
        full = mixed_distances(priv, cand, m4)
        order = np.lexsort((np.broadcast_to(np.arange(60), full.shape), full), axis=1)[:, :k]
        assert np.array_equal(nearest(priv, cand, m4, k), order)


def test_l2_kernel_on_integer_vectors_is_exact():
    rng = np.random.default_rng(3)
    priv = rng.integers(0, 4, (200, 8)).astype(np.float32)
    cand = rng.integers(0, 4, (50, 8)).astype(np.float32)
    d = ((priv[:, None, :] - cand[None]) ** 2).sum(-1)
    want = np.argsort(d, axis=1, kind="stable")[:, :3]
    assert np.array_equal(nearest(priv, cand, L2Metric(), k=3, block_rows=13), want)


@pytest.mark.parametrize("k", [1, 4, 16])
def test_sensitivity_removing_one_row_moves_histogram_by_at_most_one(k):
    rng = np.random.default_rng(k)
    metric = MixedMetric(np.array([CAT, ABS, ABS], np.int8), np.array([100, 1, 1], np.int64))
    priv = np.stack([rng.integers(0, 5, 400), rng.integers(0, 100, 400), rng.integers(0, 100, 400)], 1)
    cand = np.stack([rng.integers(0, 5, 64), rng.integers(0, 100, 64), rng.integers(0, 100, 64)], 1)
    full = vote_histogram(nearest(priv, cand, metric, k), 64)
    assert full.sum() == pytest.approx(400 * np.sqrt(k))
    for i in rng.choice(400, 20, replace=False):
        rest = np.delete(priv, i, axis=0)
        diff = full - vote_histogram(nearest(rest, cand, metric, k), 64)
        assert np.linalg.norm(diff) == pytest.approx(1.0) and np.linalg.norm(diff) <= 1.0 + 1e-12


def test_group_votes_have_unit_norm_per_group():
    rng = np.random.default_rng(5)
    nn = rng.integers(0, 30, (300, 4))
    groups = rng.integers(0, 25, 300)
    full = vote_histogram(nn, 30, groups)
    for g in np.unique(groups):
        keep = groups != g
        diff = full - vote_histogram(nn[keep], 30, groups[keep])
        assert np.linalg.norm(diff) == pytest.approx(1.0)
    # without normalisation a big group would move the histogram far more than 1
    big = np.linalg.norm(vote_histogram(nn[groups == 0], 30))
    assert big > 1.5


def test_all_negative_noisy_histogram_falls_back_to_uniform(caplog):
    rng = np.random.default_rng(0)
    with caplog.at_level(logging.WARNING):
        sel = select(-np.abs(rng.normal(size=50)) - 1.0, 1000, rng, threshold=0.0)
    assert sel.fallback and sel.index.min() >= 0 and sel.index.max() < 50
    assert len(np.unique(sel.index)) > 40
    assert "selecting uniformly" in caplog.text


def test_selection_follows_clipped_counts_and_threshold():
    rng = np.random.default_rng(0)
    noisy = np.array([-5.0, 0.5, 10.0, 30.0])
    sel = select(noisy, 40_000, rng, threshold=1.0)
    freq = np.bincount(sel.index, minlength=4) / 40_000
    assert freq[0] == 0 and freq[1] == 0  # negative and below-threshold counts are dropped
    assert freq[3] == pytest.approx(0.75, abs=0.01)
    rank = select(noisy, 5, rng, threshold=1.0, mode="rank")
    assert rank.index.tolist() == [3, 2, 3, 2, 3]
