"""Degree-2 network structure (structure="bn2"): the score's sensitivity, the network's shape, a three-way
interaction a tree cannot hold, and every measurement charged on the ledger at its documented noise."""

from __future__ import annotations

import itertools
import math
import os

import numpy as np
import pandas as pd
import pytest

from pe_tabular.measure.cliques import (
    GAP_SENSITIVITY,
    bfs_order,
    candidates,
    conditional_gap,
    fit_to_margins,
    is_dag,
)
from pe_tabular.privacy.noise import TEST_NOISE_ENV
from pe_tabular.tables.datasets import adult_schema, load_adult
from pe_tabular.tables.families import SELECT_SHARE, gap_counts, gaps
from pe_tabular.tables.marginals import coarse_groups, histogram
from pe_tabular.tables.schema import Column, Schema, validate
from pe_tabular.tables.synthesizer import PESynthesizer

FAST = dict(iterations=2, population=1000, k=4, voter="numpy", label=False)


def _xor(n: int, seed: int = 0) -> tuple[pd.DataFrame, Schema]:
    rng = np.random.default_rng(seed)
    a, b, c = rng.integers(0, 2, n), rng.integers(0, 2, n), rng.integers(0, 3, n)
    df = pd.DataFrame({"a": a, "b": b, "c": c, "y": a ^ b}).astype(str)
    return df, Schema(tuple(Column(k, "categorical", categories=tuple(sorted(df[k].unique()))) for k in df))


def _xor_rate(out: pd.DataFrame) -> float:
    return float(((out.a.astype(int) ^ out.b.astype(int)) == out.y.astype(int)).mean())


@pytest.fixture(scope="module")
def xor_fits():
    """The privacy noise is pinned (the test-only switch): at ε = 2 about one noise draw in twenty leaves the XOR
    family below its keep threshold (2 of 40 seeds), and a behaviour test must not fail by chance."""
    df, schema = _xor(4000)
    old = os.environ.get(TEST_NOISE_ENV)
    os.environ[TEST_NOISE_ENV] = "3"
    try:
        return {st: PESynthesizer(schema, 2.0, 1e-5, seed=0, structure=st, votes=False, **FAST).fit(df)
                for st in ("tree", "bn2")}
    finally:
        if old is None:
            os.environ.pop(TEST_NOISE_ENV, None)
        else:
            os.environ[TEST_NOISE_ENV] = old


@pytest.mark.parametrize("conditioned", [True, False])
def test_conditional_gap_moves_by_at_most_its_sensitivity(conditioned):
    """Privacy: adding or removing one row (any cell, including an empty slice) moves the score by < 4."""
    rng = np.random.default_rng(1)
    worst = 0.0
    for shape in [(2, 2, 2), (3, 1, 4), (1, 3, 2), (4, 3, 5)]:
        for _ in range(20):
            t = rng.poisson(rng.choice([0.3, 2.0, 20.0]), shape).astype(float)
            g = conditional_gap(t, conditioned)
            for cell in itertools.product(*map(range, shape)):
                for step in (1, -1):
                    if t[cell] + step < 0:
                        continue
                    u = t.copy()
                    u[cell] += step
                    worst = max(worst, abs(conditional_gap(u, conditioned) - g))
    assert worst <= GAP_SENSITIVITY + 1e-9
    assert worst > 3.0  # and nearly tight: one row can move the score by more than 3


def test_the_score_release_moves_within_its_charged_l2_sensitivity_on_real_rows():
    """Privacy: the released vector of candidate scores moves by ≤ 4·√candidates in L2 when one row goes."""
    schema = adult_schema()
    df = validate(load_adult("train").sample(1500, random_state=0).reset_index(drop=True), schema)
    one = {n: histogram(df, schema, (n,)) for n in schema.names}
    groups = {n: coarse_groups(schema[n], one[n] / one[n].sum()) for n in schema.names}
    order, parent = bfs_order(schema.names, [("age", "education"), ("education", "income")], "income")
    cands = candidates(order, parent, {}, 3)
    full = gaps(gap_counts(df, schema, groups, cands), groups, cands)
    for i in (0, 7, 1499):
        diff = full - gaps(gap_counts(df.drop(index=i), schema, groups, cands), groups, cands)
        assert np.linalg.norm(diff) <= GAP_SENSITIVITY * math.sqrt(len(cands)) + 1e-9
        assert np.abs(diff).max() <= GAP_SENSITIVITY + 1e-9


def test_candidates_only_offer_earlier_parents_and_keep_the_tree_parent():
    order, parent = bfs_order(list("abcdef"), [("a", "b"), ("b", "c"), ("e", "f")], "a")
    assert order[:3] == ["a", "b", "c"] and parent == {"b": "a", "c": "b", "f": "e"}
    cands = candidates(order, parent, {("c", "a"): 0.5}, 3)
    pos = {n: i for i, n in enumerate(order)}
    assert cands and all(pos[c.given] < pos[c.child] and pos[c.other] < pos[c.child] for c in cands)
    assert all(c.given == parent[c.child] and c.conditioned for c in cands if c.child in parent)
    assert all(not c.conditioned for c in cands if c.child not in parent)
    assert {c.child for c in cands} == set(order[2:]) and max(
        sum(c.child == x for c in cands) for x in order) <= 3


def test_fit_to_margins_meets_the_margins_and_keeps_the_interaction():
    xor = np.zeros((2, 2, 2))
    for a, b in itertools.product(range(2), range(2)):
        xor[a, b, a ^ b] = 1.0
    m = [np.array([0.3, 0.7]), np.array([0.5, 0.5]), np.array([0.4, 0.6])]
    t = fit_to_margins(xor + 0.01, m, iterations=300)
    for ax in range(3):
        assert np.allclose(t.sum(axis=tuple(i for i in range(3) if i != ax)), m[ax], atol=1e-6)
    assert sum(t[a, b, a ^ b] for a, b in itertools.product(range(2), range(2))) > 0.95


def test_a_two_parent_network_reproduces_xor_where_a_tree_cannot(xor_fits):
    """y = a XOR b: no pair carries any information, so the tree samples y at random; the network does not."""
    assert _xor_rate(xor_fits["tree"].sample(4000, seed=1)) < 0.6
    assert _xor_rate(xor_fits["bn2"].sample(4000, seed=1)) > 0.95
    bn = xor_fits["bn2"].backend_
    (child,) = [n for n in bn.schema.names if len(bn.parents_of(n)) == 2]
    assert {child, *bn.parents_of(child)} == {"a", "b", "y"}  # the XOR triple, whichever comes last
    vary = bn.vary(bn.random(3000, rng=np.random.default_rng(2)), 0.5, np.random.default_rng(3))
    assert _xor_rate(vary.samples) > 0.95  # a resampled parent takes its children along


def test_the_network_is_a_dag_with_at_most_two_parents(xor_fits):
    bn = xor_fits["bn2"].backend_
    parents = {n: bn.parents_of(n) for n in bn.schema.names}
    assert is_dag([o[0] for o in bn.order], parents)
    assert max(len(p) for p in parents.values()) == 2 and all(len(p) <= 2 for p in parents.values())


def test_every_measurement_is_charged_at_its_documented_noise(xor_fits):
    """Privacy: the score release at Δ = 4·√candidates and SELECT_SHARE of the pair share; each three-way
    marginal is a ledger entry at the same σ as the pairs (Δ = 1); the run adds up to its budget."""
    syn = xor_fits["bn2"]
    rep = syn.privacy_report()
    mu2 = rep["mu_budget"] ** 2
    (sc,) = [r for r in rep["releases"] if "family scores" in r["what"]]
    k = int(sc["what"].split()[0])
    assert sc["sensitivity"] == pytest.approx(GAP_SENSITIVITY * math.sqrt(k))
    pair_share = syn.budget_.of("pairs", votes=syn.votes_)
    assert (sc["sensitivity"] / sc["sigma"]) ** 2 == pytest.approx(SELECT_SHARE * pair_share * mu2)
    fams = [r for r in rep["releases"] if r["what"].startswith("marginal") and r["what"].count("×") >= 1]
    triples = [r for r in fams if r["what"].count("×") == 2]
    assert len(triples) == sum(len(f[0]) == 2 for f in syn.backend_.fam.values()) >= 1
    assert len({round(r["sigma"], 9) for r in fams}) == 1 and all(r["sensitivity"] == 1 for r in fams)
    paid = sum((r["sensitivity"] / r["sigma"]) ** 2 for r in fams) + (sc["sensitivity"] / sc["sigma"]) ** 2
    assert paid == pytest.approx(pair_share * mu2)
    spent = sum((r["sensitivity"] / r["sigma"]) ** 2 for r in rep["releases"])
    assert math.sqrt(spent) == pytest.approx(rep["mu"]) and rep["mu"] <= rep["mu_budget"] * (1 + 1e-9)


def test_independent_columns_get_no_second_parent():
    rng = np.random.default_rng(4)
    df = pd.DataFrame({k: rng.integers(0, 4, 20000) for k in "abcd"}).astype(str)
    schema = Schema(tuple(Column(k, "categorical", categories=tuple("0123")) for k in df))
    syn = PESynthesizer(schema, 4.0, 1e-5, seed=0, structure="bn2", votes=False, **FAST).fit(df)
    assert any("family scores" in r["what"] for r in syn.privacy_report()["releases"])
    assert all(len(f[0]) < 2 for f in syn.backend_.fam.values())


def test_no_score_release_where_its_noise_would_swamp_any_interaction():
    """At tiny ε on few rows not even XOR could clear the score noise: nothing is spent on scores and the
    network is the tree (the budget stays with the pairs)."""
    df, schema = _xor(400)
    syn = PESynthesizer(schema, 0.05, 1e-5, seed=0, structure="bn2", votes=False, **FAST).fit(df)
    assert not any("family scores" in r["what"] for r in syn.privacy_report()["releases"])
    assert all(len(f[0]) < 2 for f in syn.backend_.fam.values())


def test_structure_is_validated_before_any_data_is_read():
    from pe_tabular.evolution import ConfigError

    with pytest.raises(ConfigError, match="structure"):
        PESynthesizer(_xor(10)[1], 1.0, 1e-5, structure="junction")


def test_a_saved_network_samples_as_the_fitted_one(xor_fits, tmp_path):
    """save/load keeps the three-way families: repeats of the final rows are varied by the network, so a loaded
    synthesizer draws the same rows (a tree rebuilt from the pairs alone would break XOR in the varied repeats)."""
    syn = xor_fits["bn2"]
    syn.save(tmp_path / "model")
    again = PESynthesizer.load(tmp_path / "model")
    assert type(again.backend_).__name__ == "BayesNetBackend"
    assert again.sample(6000, seed=3).equals(syn.sample(6000, seed=3))
    assert _xor_rate(again.sample(6000, seed=4)) > 0.95


def test_a_coarse_three_way_table_keeps_the_first_parents_finer_pair():
    """A two-parent child is drawn in the three-way table's coarse bin, then inside it by its finer pair with
    its first parent: x = g over 8 categories survives a 2 × 2 × 2 three-way table (by the one-way marginal
    alone inside the coarse bin, x would match g about 1/7 of the time)."""
    from pe_tabular.tables.generators.cliques import BayesNetBackend

    rng = np.random.default_rng(5)
    g, o = rng.integers(0, 8, 5000), rng.integers(0, 2, 5000)
    df = pd.DataFrame({"g": g, "o": o, "x": g}).astype(str)
    schema = Schema((Column("g", "categorical", categories=tuple("01234567")),
                     Column("o", "categorical", categories=("0", "1")),
                     Column("x", "categorical", categories=tuple("01234567"))))
    res = {("g", "o", "x"): (2, 2, 2), ("g", "x"): (8, 8)}
    one = {n: histogram(df, schema, (n,)) / len(df) for n in schema.names}
    bn = BayesNetBackend(schema, one, {("g", "x"): histogram(df, schema, ("g", "x"), res=res)},
                         {("g", "o", "x"): histogram(df, schema, ("g", "o", "x"), res=res)}, ["g", "o", "x"], res=res)
    assert bn.parents_of("x") == ("g", "o")
    out = bn.random(4000, rng=np.random.default_rng(6)).samples
    assert (out.x == out.g).mean() > 0.95


def test_a_resumed_run_restores_the_scores_and_three_way_tables_without_spending_again(tmp_path):
    """Privacy rule 4: the score release and every three-way marginal are checkpointed releases; resuming
    restores them (the same network, the same ledger) instead of drawing them again."""
    df, schema = _xor(3000)

    def fit(resume: bool) -> PESynthesizer:
        return PESynthesizer(schema, 2.0, 1e-5, seed=0, structure="bn2", votes=False, **FAST).fit(
            df, checkpoint=tmp_path / "ck", resume=resume)

    first, again = fit(False), fit(True)
    assert any("family scores" in r["what"] for r in first.privacy_report()["releases"])
    assert again.privacy_report()["releases"] == first.privacy_report()["releases"]
    assert {n: again.backend_.parents_of(n) for n in schema.names} == {
        n: first.backend_.parents_of(n) for n in schema.names}
    for key, table in first.backend_.triples.items():
        assert np.array_equal(again.backend_.triples[key], table)
