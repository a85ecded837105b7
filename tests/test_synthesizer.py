"""PESynthesizer end to end on a slice of Adult: pandas/polars round trips, ledger, DP schema charge."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pe_tabular.privacy.noise import TEST_NOISE_ENV, noise_source
from pe_tabular.tables.datasets import adult_schema, load_adult
from pe_tabular.tables.schema_dp import infer_dp
from pe_tabular.tables.synthesizer import PESynthesizer

FAST = dict(iterations=2, population=400, k=4, voter="numpy")


@pytest.fixture(scope="module")
def adult():
    return load_adult("train").sample(3000, random_state=0).reset_index(drop=True)


def test_fit_sample_pandas_round_trip(adult, tmp_path):
    syn = PESynthesizer(adult_schema(), 1.0, 1e-5, seed=0, **FAST).fit(adult)
    out = syn.sample(5000)  # more rows than the final population: post-processing draws
    assert list(out.columns) == list(adult.columns) and len(out) == 5000
    assert set(out["sex"]) <= {"Male", "Female"}
    assert out["age"].between(16, 100).all()
    rep = syn.privacy_report()
    assert rep["epsilon"] == pytest.approx(1.0, rel=1e-6)
    whats = [r["what"] for r in rep["releases"]]
    assert any("label" in w for w in whats) and any("vote" in w for w in whats)
    syn.save(tmp_path / "model")
    again = PESynthesizer.load(tmp_path / "model")
    assert again.sample(5000, seed=3).equals(syn.sample(5000, seed=3))  # repeats are varied: the genome is saved too
    assert again.privacy_report()["epsilon"] == pytest.approx(1.0, rel=1e-6)


def test_save_load_round_trips_every_argument(adult, tmp_path):
    args = dict(iterations=3, population=[300, 200, 100], k=3, degree=[0.4, 0.2], threshold=0.5, budget="geometric",
                label="sex", label_shares={"Male": 0.6, "Female": 0.4}, label_budget_share=0.05, calibrate=0.2,
                pair_share=0.3, structure_share=0.04, keep_selected=0.1, voter="numpy", weights={"age": 2.0},
                on_invalid="drop", seed=11)
    syn = PESynthesizer(adult_schema(), 2.0, 1e-6, **args)
    for name, value in args.items():  # scikit-learn shape: every argument under its own name, unchanged
        assert getattr(syn, name) == value, name
    assert syn.get_params()["population"] == [300, 200, 100]
    syn.fit(adult)
    syn.save(tmp_path / "m")
    again = PESynthesizer.load(tmp_path / "m")
    got, want = again.get_params(), syn.get_params()
    for name in PESynthesizer.PARAMS:
        assert got[name] == want[name], name
    assert again.config_ == syn.config_ and again.label_ == "sex"


def test_scikit_learn_conventions_nothing_derived_before_fit(adult):
    """Arguments are stored as given and validated at once; everything derived is set by fit only (trailing _)."""
    from pe_tabular.errors import ConfigError
    from pe_tabular.tables.budget import BudgetShares

    syn = PESynthesizer(adult_schema(), 1.0, 1e-5, seed=0, **FAST)
    assert [name for name in vars(syn) if name.endswith("_")] == []
    with pytest.raises(RuntimeError, match="fit"):
        syn.sample(10)
    with pytest.raises(RuntimeError, match="fit"):
        syn.privacy_report()
    assert syn.set_params(k=3, calibrate=0.25) is syn and (syn.k, syn.get_params()["calibrate"]) == (3, 0.25)
    with pytest.raises(ConfigError, match="`pair_share`"):
        syn.set_params(k=2, pair_share=0.9)
    assert (syn.k, syn.pair_share) == (3, 0.47)  # a refused set_params changes nothing
    with pytest.raises(ValueError, match="unknown argument"):
        syn.set_params(colour="red")
    twin = PESynthesizer(**syn.get_params(deep=False))
    assert twin.get_params() == syn.get_params()
    syn.fit(adult)
    assert syn.budget_ == BudgetShares(one_way=0.25) and syn.config_.k == 3
    assert syn.ledger_ is syn.result_.ledger and len(syn.sample(20)) == 20
    assert [name for name in vars(twin) if name.endswith("_")] == []  # fitting one leaves its twin unfitted


def test_budget_shares_rescale_the_measurements_without_votes():
    """Without votes every measurement after the row count grows by the same factor, so together they take
    the whole budget the count left; the count's share never changes (it is released before votes are decided)."""
    from dataclasses import FrozenInstanceError, fields

    from pe_tabular.tables.budget import BudgetShares

    b = BudgetShares()
    stages = [f.name for f in fields(b)]
    assert sum(b.of(s, votes=False) for s in stages) == pytest.approx(1.0)
    assert b.of("count", votes=False) == b.count and b.of("pairs", votes=True) == b.pairs
    ratio = b.of("pairs", votes=False) / b.pairs
    assert b.of("one_way", votes=False) / b.one_way == pytest.approx(ratio) and ratio > 1
    with pytest.raises(FrozenInstanceError):
        b.pairs = 0.1


def test_errors_name_arguments_not_flags():
    from pe_tabular.errors import ConfigError

    with pytest.raises(ConfigError, match="`pair_share`") as e:
        PESynthesizer(adult_schema(), pair_share=0.9)
    assert "--" not in str(e.value) and e.value.for_cli().startswith("--pair-share")


def test_fit_polars(adult):
    pl = pytest.importorskip("polars")
    syn = PESynthesizer(adult_schema(), 2.0, 1e-5, seed=1, **FAST).fit(pl.from_pandas(adult))
    assert len(syn.sample(50)) == 50


def test_seed_fixes_everything_but_the_noise(adult, monkeypatch):
    monkeypatch.setenv("PE_TABULAR_TEST_ONLY_NOISE_SEED", "11")
    a = PESynthesizer(adult_schema(), 1.0, 1e-5, seed=5, **FAST).fit(adult).sample(300)
    b = PESynthesizer(adult_schema(), 1.0, 1e-5, seed=5, **FAST).fit(adult).sample(300)
    assert a.equals(b)
    monkeypatch.delenv("PE_TABULAR_TEST_ONLY_NOISE_SEED")
    c = PESynthesizer(adult_schema(), 1.0, 1e-5, seed=5, **FAST).fit(adult).sample(300)
    assert not a.equals(c)  # secure noise differs even with the same --seed


def test_learns_joints_beyond_independent_columns():
    """Noise-free, the pipeline must capture joint structure an exact column shuffle destroys
    (the eps=1 comparison on the full data is in benchmarks/RESULTS.md)."""
    from pe_tabular.tables.evaluation import marginal_tvd

    adult = load_adult("train")
    syn = PESynthesizer(adult_schema(), math.inf, 1e-5, seed=0, iterations=2, population=8000, k=16).fit(adult)
    out = syn.sample(len(adult))
    rng = np.random.default_rng(0)
    indep = pd.DataFrame({c: adult[c].to_numpy()[rng.permutation(len(adult))] for c in adult.columns})
    ours = marginal_tvd(adult, out, adult_schema(), ways=(2,))["tvd2_mean"]
    base = marginal_tvd(adult, indep, adult_schema(), ways=(2,))["tvd2_mean"]
    assert ours < base


def test_dp_schema_estimation_is_charged_to_the_run(adult, monkeypatch):
    # the test-only noise switch: with real noise the DP upper bound of age falls below 80 in ~2 % of runs
    # (a legitimate draw at ε = 0.5 over 15 columns), which is not what this test is about
    monkeypatch.setenv(TEST_NOISE_ENV, "5")
    types = {c.name: c.type for c in adult_schema().columns}
    est = infer_dp(adult, types, epsilon=0.5, delta=1e-6, noise=noise_source(), label="income")
    assert est.dp_cost and len(est.dp_cost["releases"]) == len(types)
    assert "Male" in est["sex"].categories and est["age"].lower <= 20 and est["age"].upper >= 80
    syn = PESynthesizer(est, 1.0, 1e-5, seed=0, on_invalid="drop", **FAST).fit(adult)
    rep = syn.privacy_report()
    schema_rel = [r for r in rep["releases"] if r["iteration"] == -1]
    assert len(schema_rel) == len(types)  # the schema's releases are in this run's ledger...
    assert rep["epsilon"] == pytest.approx(1.0, rel=1e-6)  # ...and within its total budget
    assert sum(r["extra_delta"] for r in rep["releases"]) > 0


def test_infinite_epsilon_adds_no_noise(adult):
    syn = PESynthesizer(adult_schema(), math.inf, 1e-5, seed=0, **FAST).fit(adult)
    assert all(r["sigma"] == 0 for r in syn.privacy_report()["releases"])
    assert syn.privacy_report()["epsilon"] == "inf"


def test_a_mixture_explores_every_source_at_the_full_first_population(adult):
    from pe_tabular.backends.mixture import Mixture, explore_every_source
    from pe_tabular.tables.generators.statistical import StatisticalBackend

    schema = adult_schema()
    mix = Mixture([StatisticalBackend(schema), StatisticalBackend(schema)], names=["a", "b"])
    syn = PESynthesizer(schema, 1.0, 1e-5, seed=0, backend=mix, **FAST).fit(adult)
    assert [h["population"] for h in syn.result_.history] == [800, 400]  # n per source first, then n
    assert syn.privacy_report()["epsilon"] == pytest.approx(1.0, rel=1e-6)  # candidates cost no budget
    assert explore_every_source(syn.config_, StatisticalBackend(schema)) is syn.config_  # one source: unchanged


def test_sample_varies_only_repeated_rows_and_keeps_their_places(adult):
    from pe_tabular.tables.synthesizer import to_external

    syn = PESynthesizer(adult_schema(), 1.0, 1e-5, seed=0, **FAST).fit(adult)
    res = syn.result_
    idx = res.draw(3000, np.random.default_rng(7))  # the draw sample(seed=7) makes first
    exact = to_external(res.population.take(idx).samples, adult_schema()).reset_index(drop=True)
    pd.testing.assert_frame_equal(syn.sample(3000, seed=7, vary_degree=0.0), exact)
    out = syn.sample(3000, seed=7)  # default: repeats varied by the tree generator
    first = ~pd.Series(idx).duplicated().to_numpy()
    pd.testing.assert_frame_equal(out[first].reset_index(drop=True), exact[first].reset_index(drop=True))
    changed = (out[~first].to_numpy() != exact[~first].to_numpy()).any(1)
    assert changed.mean() > 0.5  # most repeats moved ...
    assert (out["income"] == exact["income"]).all()  # ... within their class


def test_default_sampling_never_calls_a_remote_source_of_a_mixture(adult):
    from pe_tabular.backends.mixture import Mixture
    from pe_tabular.tables.generators.statistical import StatisticalBackend

    schema = adult_schema()

    class Remote:  # stands in for an API-backed generator: counts its calls
        name = "remote"

        def __init__(self):
            self.inner, self.calls = StatisticalBackend(schema), 0

        def random(self, n, *, label=None, rng):
            self.calls += 1
            return self.inner.random(n, label=label, rng=rng)

        def vary(self, pop, degree, rng):
            self.calls += 1
            return self.inner.vary(pop, degree, rng)

    remote = Remote()
    syn = PESynthesizer(schema, 1.0, 1e-5, seed=0, backend=Mixture([StatisticalBackend(schema), remote],
                                                                   floor=0.2, sharpness=1.0), **FAST).fit(adult)
    assert (syn.result_.population.source == "remote").any()
    remote.calls = 0
    out = syn.sample(5000)  # more rows than candidates: many repeats, of both sources
    assert remote.calls == 0 and len(out) == 5000
    syn.sample(5000, vary_degree=0.3)  # asked for explicitly: every source varies its own repeats
    assert remote.calls == 1


def test_the_structure_release_is_charged_at_its_sqrt_pairs_sensitivity(adult):
    """Privacy: the all-pairs structure release moves by √pairs when one row is removed (tests/test_marginals.py);
    the ledger must charge exactly that, at the documented share of μ², and the whole run must still add up."""
    schema = adult_schema()
    syn = PESynthesizer(schema, 1.0, 1e-5, seed=0, **FAST).fit(adult)
    rep = syn.privacy_report()
    (st,) = [r for r in rep["releases"] if "structure" in r["what"]]
    pairs = len(schema.names) * (len(schema.names) - 1) // 2
    assert st["sensitivity"] == pytest.approx(math.sqrt(pairs))
    assert (st["sensitivity"] / st["sigma"]) ** 2 == pytest.approx(syn.structure_share * rep["mu_budget"] ** 2)
    spent = sum((r["sensitivity"] / r["sigma"]) ** 2 for r in rep["releases"])
    assert math.sqrt(spent) == pytest.approx(rep["mu"]) and rep["mu"] <= rep["mu_budget"] * (1 + 1e-9)
