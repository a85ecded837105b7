"""Marginal machinery of the tables pipeline: structure release, Chow–Liu from noisy tables, consistency of
pair marginals with one-way ones, coarse groups, and the low-variance output draw."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from pe_tabular.tables.datasets import adult_schema, load_adult
from pe_tabular.tables.marginals import (
    PAIR_BINS,
    Binning,
    coarse_groups,
    consistent_pairs,
    fine_to_coarse,
    histogram,
    noisy_chow_liu,
    structure_counts,
)
from pe_tabular.tables.schema import Column, Schema, validate
from pe_tabular.voting.histogram import select


@pytest.fixture(scope="module")
def adult():
    schema = adult_schema()
    return schema, validate(load_adult("train").sample(4000, random_state=0).reset_index(drop=True), schema)


def _groups(schema, df):
    one = {n: histogram(df, schema, (n,)) for n in schema.names}
    return {n: coarse_groups(schema[n], one[n] / one[n].sum()) for n in schema.names}


def test_structure_release_sensitivity_is_sqrt_of_the_number_of_pairs(adult):
    """Privacy: one row adds exactly 1 to one cell of every pair table, so removing it moves the released
    vector by exactly √pairs in L2 — the sensitivity the synthesizer charges."""
    schema, df = adult
    groups = _groups(schema, df)
    pairs = list(itertools.combinations(schema.names, 2))
    full = structure_counts(df, schema, groups, pairs)
    for i in (0, 17, 3999):
        diff = full - structure_counts(df.drop(index=i), schema, groups, pairs)
        assert np.linalg.norm(diff) == pytest.approx(np.sqrt(len(pairs)))
        assert set(np.unique(diff)) == {0.0, 1.0} and diff.sum() == len(pairs)
    assert full.sum() == len(df) * len(pairs)


def test_coarse_groups_follow_the_released_one_way_marginal():
    cat = Column("c", "categorical", categories=tuple("abcdefg"))
    p = np.array([0.05, 0.4, 0.02, 0.3, 0.1, 0.08, 0.05, 0.0])  # last: null bin
    g = coarse_groups(cat, p, 4)
    assert g[1] != g[3] != g[4] and len({g[1], g[3], g[4]}) == 3  # the three most frequent alone
    assert g[0] == g[2] == g[5] == g[6] == g[7]  # the rest share 'other'
    num = Column("x", "integer", lower=0, upper=99)
    b = Binning.of(num)
    p = np.zeros(b.n_bins)
    p[0], p[1:-1] = 0.9, 0.1 / (b.n_bins - 2)  # a point mass at 0 and a thin tail
    g = coarse_groups(num, p, 5)
    assert g[0] not in set(g[1:-1]) and np.all(np.diff(g[:-1]) >= 0)  # the mass alone; runs are contiguous


def test_noisy_chow_liu_recovers_a_planted_chain():
    rng = np.random.default_rng(0)
    n = 20000
    a = rng.integers(0, 4, n)
    b = np.where(rng.random(n) < 0.8, a, rng.integers(0, 4, n))
    c = np.where(rng.random(n) < 0.8, b, rng.integers(0, 4, n))
    d = rng.integers(0, 4, n)
    schema = Schema(tuple(Column(x, "categorical", categories=("0", "1", "2", "3")) for x in "abcd"))
    df = pd.DataFrame({k: v.astype(str) for k, v in zip("abcd", (a, b, c, d))})
    groups = _groups(schema, df)
    pairs = list(itertools.combinations(schema.names, 2))
    noisy = structure_counts(df, schema, groups, pairs) + rng.normal(0, 30, size=len(pairs) * 25)
    edges = {frozenset(e) for e in noisy_chow_liu(noisy, groups, pairs, schema.names)}
    assert {frozenset("ab"), frozenset("bc")} <= edges and len(edges) == 3


def test_consistent_pairs_match_the_one_way_margins_and_keep_the_dependence(adult):
    schema, df = adult
    a, b = "education", "age"
    na, nb = (Binning.of(schema[x], PAIR_BINS, PAIR_BINS).n_bins for x in (a, b))
    true = histogram(df, schema, (a, b)).reshape(na, nb)
    rng = np.random.default_rng(1)
    noisy_pair = np.clip(true + rng.normal(0, 5, true.shape), 0, None)
    one = {x: histogram(df, schema, (x,)) for x in (a, b)}
    one = {x: v / v.sum() for x, v in one.items()}
    fixed = consistent_pairs(one, {(a, b): noisy_pair.ravel()}, schema)[(a, b)].reshape(na, nb)
    ra = np.bincount(fine_to_coarse(schema[a]), weights=one[a], minlength=na)
    cb = np.bincount(fine_to_coarse(schema[b]), weights=one[b], minlength=nb)
    np.testing.assert_allclose(fixed.sum(1), ra, atol=1e-6)
    np.testing.assert_allclose(fixed.sum(0), cb, atol=1e-6)
    before = 0.5 * np.abs(noisy_pair / noisy_pair.sum() - true / true.sum()).sum()
    after = 0.5 * np.abs(fixed - true / true.sum()).sum()
    assert after <= before + 1e-9  # exact margins never make the joint worse here
    indep = np.outer(ra, cb)
    assert 0.5 * np.abs(fixed - indep).sum() > 0.1  # the dependence is kept, not flattened


def test_systematic_selection_gives_floor_or_ceil_copies():
    rng = np.random.default_rng(2)
    w = rng.gamma(0.5, size=300)
    w[:20] = -1.0  # negative noisy counts are clipped to zero
    for n in (100, 1000, 4321):
        idx = select(w, n, rng, mode="systematic").index
        counts = np.bincount(idx, minlength=w.size)
        expect = n * np.clip(w, 0, None) / np.clip(w, 0, None).sum()
        assert counts.sum() == n and np.all(np.abs(counts - expect) < 1.0 + 1e-9)
        assert counts[:20].sum() == 0
    assert not np.all(np.diff(select(w, 500, rng, mode="systematic").index) >= 0)  # returned shuffled


def test_systematic_counts_are_the_systematic_draw_without_its_n_sized_index():
    """The traces output draws 2·10⁷ records as counts per candidate: the counts of the systematic points
    (u + k)/n, as ``select``'s systematic draw makes them, for any weights (points on boundaries included)."""
    from pe_tabular.voting.histogram import systematic_counts

    for seed in range(30):
        rng = np.random.default_rng(seed)
        w = rng.gamma(0.3, size=int(rng.integers(1, 400))) * (rng.random() < 0.9)
        w[rng.random(w.size) < 0.3] = 0.0
        n = int(rng.integers(1, 5000))
        got = systematic_counts(w, n, np.random.default_rng(seed + 100))
        if w.sum() > 0:  # the definition: n points (u + k)/n against the cumulative shares
            u = np.random.default_rng(seed + 100).random()
            pts = (u + np.arange(n)) / n
            idx = np.minimum(np.searchsorted(np.cumsum(w / w.sum()), pts, side="right"), w.size - 1)
            np.testing.assert_array_equal(got, np.bincount(idx, minlength=w.size))
            np.testing.assert_array_equal(np.bincount(select(w, n, np.random.default_rng(seed + 100),
                                                             mode="systematic").index, minlength=w.size), got)
        assert got.sum() == n and got.shape == w.shape
    quarter = systematic_counts(np.array([1.0, 1.0, 1.0, 1.0]), 8, np.random.default_rng(0))
    np.testing.assert_array_equal(quarter, [2, 2, 2, 2])


def test_combining_pair_margins_makes_one_way_estimates_more_accurate(adult):
    """Post-processing: the inverse-variance combination of a column's one-way release with the coarse margins
    of the pair releases that contain it beats the one-way release alone, on average over noise draws."""
    from pe_tabular.measure.measurement import Measurement as M
    from pe_tabular.tables.marginals import combine_one_way, estimate

    schema, df = adult
    rng = np.random.default_rng(3)
    name, pairs = "age", [("age", "marital-status"), ("education", "age")]
    y1 = histogram(df, schema, (name,))
    truth = y1 / y1.sum()
    clean = {k: histogram(df, schema, k) for k in pairs}
    s1, s2 = 20.0, 15.0
    f2c = fine_to_coarse(schema[name])

    def errors(p):  # TVD on the fine bins and on the coarse (pair) bins
        return 0.5 * np.abs(p - truth).sum(), 0.5 * np.abs(np.bincount(f2c, p - truth)).sum()

    alone, combined = [], []
    for _ in range(60):
        n1 = y1 + rng.normal(0, s1, y1.size)
        raw2 = [M(k, v + rng.normal(0, s2, v.size), s2) for k, v in clean.items()]
        alone.append(errors(estimate(n1, schema, (name,))))
        combined.append(errors(combine_one_way([M((name,), n1, s1)], raw2, schema)[name]))
    alone, combined = np.array(alone), np.array(combined)
    assert combined[:, 0].mean() < alone[:, 0].mean()  # fine bins: better
    assert combined[:, 1].mean() < 0.75 * alone[:, 1].mean()  # coarse bins, where the pairs add information
    exact = combine_one_way([M((name,), y1, s1)], [M(k, v, s2) for k, v in clean.items()], schema)[name]  # exact
    np.testing.assert_allclose(exact, truth, atol=1e-12)


def test_a_missing_cell_the_noise_cannot_tell_from_zero_is_read_as_zero():
    """A DP schema makes every non-label column nullable, so a column with no missing value gets a missing
    cell of pure noise; read as it came, it put up to 2 points of a small table's output at "missing" (issue 22,
    `benchmarks/real_files.py`, churn). A missing share well above the noise is kept as released."""
    from pe_tabular.measure.measurement import Measurement as M
    from pe_tabular.tables.marginals import MISSING_SIGNIFICANCE, combine_one_way

    c = Column("x", "categorical", categories=("a", "b", "c"), nullable=True)
    public = Schema((c,))
    schema = Schema((c,), dp_cost={"epsilon": 0.1})  # a DP schema: every column nullable by default
    sigma = 40.0
    for noise in (0.5, 1.5, 2.5, 2.99):  # positive draws on an empty missing cell, in σ
        y = np.array([1500.0, 1200.0, 1300.0, noise * sigma])
        p = combine_one_way([M(("x",), y, sigma)], [], schema)["x"]
        assert noise < MISSING_SIGNIFICANCE and p[-1] == 0.0 and p.sum() == pytest.approx(1.0)
    y = np.array([1000.0, 800.0, 900.0, 1200.0])  # 30 % missing: far above the noise
    p = combine_one_way([M(("x",), y, sigma)], [], schema)["x"]
    assert p[-1] == pytest.approx(1200 / 3900, abs=0.01)
    y = np.array([1500.0, 1200.0, 1300.0, 1.5 * sigma])  # a public schema's nullable: a share as released
    assert combine_one_way([M(("x",), y, sigma)], [], public)["x"][-1] > 0
