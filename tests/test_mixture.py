"""Mixture of generators: routing of vary to each sample's source, the floor, provenance tags."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pe_tabular.backends.mixture import Mixture, plot_source_shares, source_shares
from pe_tabular.evolution import Evolution, EvolutionConfig
from pe_tabular.population import Population
from pe_tabular.privacy import Ledger, NoiseSource, gdp_mu, schedules
from tests.toy import PointBackend, PointEncoder, two_clusters


class Tagged:
    """Rows carry an id; random rows get x = marker, varied rows x = marker + 0.5."""

    def __init__(self, name: str, marker: float):
        self.name, self.marker = name, marker
        self.varied: list[np.ndarray] = []
        self.drawn: list[tuple[int, object]] = []

    def random(self, n, *, label=None, rng):
        self.drawn.append((n, label))
        df = pd.DataFrame({"id": -1 - np.arange(n), "x": np.full(n, self.marker)})
        return Population.fresh(df, self.name, label=label)

    def vary(self, pop, degree, rng):
        self.varied.append(pop.samples["id"].to_numpy().copy())
        df = pop.samples.copy()
        df["x"] = self.marker + 0.5
        return Population(df, np.full(len(pop), self.name, object), pop.parent, None, pop.label)


def _pop(sources, labels=None) -> Population:
    n = len(sources)
    df = pd.DataFrame({"id": np.arange(n), "x": np.zeros(n)})
    return Population(df, np.array(sources, dtype=object), np.arange(n) * 10, None,
                      None if labels is None else np.array(labels, dtype=object))


def test_vary_routes_each_sample_to_its_own_source_and_keeps_order():
    a, b, c = Tagged("a", 1.0), Tagged("b", 2.0), Tagged("c", 3.0)
    mix = Mixture([a, b, c], floor=0.0)
    src = np.random.default_rng(0).choice(["a", "b", "c"], 30)
    out = mix.vary(_pop(src), 0.5, np.random.default_rng(1))
    for be in (a, b, c):
        assert len(be.varied) == 1 and be.varied[0].tolist() == np.flatnonzero(src == be.name).tolist()
    assert out.samples["id"].tolist() == list(range(30))  # row i is the variation of parent i
    assert out.source.tolist() == src.tolist()
    assert out.samples["x"].tolist() == [{"a": 1.5, "b": 2.5, "c": 3.5}[s] for s in src]
    assert out.parent.tolist() == (np.arange(30) * 10).tolist()


def test_floor_replaces_variations_of_rich_sources_with_fresh_draws_of_starving_ones():
    a, b, c = Tagged("a", 1.0), Tagged("b", 2.0), Tagged("c", 3.0)
    mix = Mixture([a, b, c], floor=0.1)
    labels = ["p", "q"] * 50
    src = ["a"] * 85 + ["b"] * 12 + ["c"] * 3
    out = mix.vary(_pop(src, labels), 0.5, np.random.default_rng(2))
    counts = pd.Series(out.source).value_counts().to_dict()
    assert counts == {"a": 78, "b": 12, "c": 10}  # c topped up to the floor, b (above it) untouched
    fresh = out.samples["id"].to_numpy() < 0
    assert fresh.sum() == 7 and set(out.source[fresh]) == {"c"} and (out.samples["x"][fresh] == 3.0).all()
    assert out.label.tolist() == labels  # replaced rows keep their slot's class
    assert sorted(lab for n, lab in c.drawn for _ in range(n)) == sorted(np.array(labels)[fresh].tolist())
    assert mix.floor_log[-1]["replaced"] == {"c": 7}


def test_floor_never_pushes_a_donor_below_it():
    mix = Mixture([Tagged("a", 1), Tagged("b", 2), Tagged("c", 3)], floor=0.3)
    out = mix.vary(_pop(["a"] * 40 + ["b"] * 31 + ["c"] * 29), 0.5, np.random.default_rng(3))
    assert pd.Series(out.source).value_counts().min() >= 30


def test_random_splits_equally_and_tags_provenance():
    a, b = Tagged("llm", 1), Tagged("llm", 2)
    mix = Mixture([a, b, Tagged("statistical", 3)])
    assert mix.tags == ["llm", "llm#2", "statistical"] and mix.name == "mix(llm+llm#2+statistical)"
    pop = mix.random(10, label="p", rng=np.random.default_rng(0))
    counts = pd.Series(pop.source).value_counts()
    assert sorted(counts.tolist()) == [3, 3, 4] and set(pop.label) == {"p"} and (pop.parent == -1).all()
    out = mix.vary(pop, 0.3, np.random.default_rng(1))  # "llm#2" rows go to the second backend
    assert b.varied[0].size == counts["llm#2"] and a.varied[0].size == counts["llm"]
    with pytest.raises(ValueError, match="not in this mixture"):
        mix.vary(_pop(["gpt"] * 3), 0.3, np.random.default_rng(1))
    with pytest.raises(ValueError, match="floor"):
        Mixture([a, b, Tagged("s", 3)], floor=0.4)
    assert len(out) == 10


def test_in_an_evolution_votes_pick_the_good_source_and_the_floor_keeps_the_other_alive(tmp_path):
    rng = np.random.default_rng(4)
    private = two_clusters(rng, 1000)

    class Far(PointBackend):  # random points in a corner no private point is near
        def random(self, n, *, label=None, rng):
            return Population.fresh(rng.uniform(95, 100, (n, 2)).astype(np.float32), self.name, label=label)

    good, far = PointBackend("good"), Far("far")
    mix = Mixture([good, far], floor=0.1)
    mu = gdp_mu(4.0, 1e-5)
    cfg = EvolutionConfig.build(4, 200, [0.5, 0.3, 0.2])
    evo = Evolution(mix, PointEncoder(), cfg, schedules.uniform(mu, 4), Ledger(1e-5, mu), NoiseSource(test_seed=1), rng)
    res = evo.run(private)
    shares = source_shares(res.history)
    assert list(shares.columns) == ["far", "good"] and len(shares) == 4
    assert shares["good"].iloc[-1] > 0.9  # noisy votes go to the source whose samples are near the data
    # the floor kept "far" alive in every intermediate population (exactly floor·n: it won no votes) ...
    assert [log["before"]["far"] + log["replaced"].get("far", 0) for log in mix.floor_log[:2]] == [20, 20]
    # ... but not in the last one, which only becomes the output: no later vote could reward exploring,
    # so "far" keeps only the few parents its noisy votes won
    assert mix.floor_log[-1]["replaced"] == {} and mix.floor_log[-1]["floor"] == 0
    assert (res.population.source == "far").sum() == mix.floor_log[-1]["before"]["far"] < 20
    fig = plot_source_shares(res.history, tmp_path / "shares.png")
    assert fig is not None and (tmp_path / "shares.png").stat().st_size > 1000


def test_sources_with_and_without_a_genome_mix():
    class WithGenome(Tagged):
        def random(self, n, *, label=None, rng):
            p = super().random(n, label=label, rng=rng)
            return Population(p.samples, p.source, p.parent, np.zeros((n, 3), np.int64), p.label)

    g, plain = WithGenome("g", 1.0), Tagged("p", 2.0)
    mix = Mixture([g, plain], floor=0.0)
    pop = mix.random(8, rng=np.random.default_rng(0))
    assert pop.genome is None and len(pop) == 8  # dropped: the backends vary from the samples
    assert Mixture([g, WithGenome("h", 3.0)]).random(6, rng=np.random.default_rng(0)).genome.shape == (6, 3)


def _voted(sources, votes, labels=None) -> tuple[Population, np.ndarray]:
    return _pop(sources, labels), np.asarray(votes, dtype=float)


def test_observe_plans_a_sharpened_multiplicative_weights_step_per_class():
    a, b = Tagged("a", 1.0), Tagged("b", 2.0)
    mix = Mixture([a, b], floor=0.0, sharpness=2.0)
    # class p: a and b hold half the candidates each, a wins 80 % of the votes; class q: the reverse
    pop, votes = _voted(["a", "b"] * 50, [4.0, 1.0] * 25 + [1.0, 4.0] * 25, ["p"] * 50 + ["q"] * 50)
    mix.observe(pop, votes, 1, 3)
    # cand · (share / cand)^2 = 0.5 · 1.6² vs 0.5 · 0.4²  →  0.941 / 0.059
    assert mix._plan["p"]["a"] == pytest.approx(0.64 / 0.68) and mix._plan["q"]["b"] == pytest.approx(0.64 / 0.68)
    parents = _pop(["a"] * 40 + ["b"] * 10 + ["a"] * 10 + ["b"] * 40, ["p"] * 50 + ["q"] * 50)  # ∝ vote share
    out = mix.vary(parents, 0.5, np.random.default_rng(0))
    by = pd.crosstab(out.label, out.source)
    assert by.loc["p", "a"] == 47 and by.loc["q", "b"] == 47  # 0.941 · 50, rounded
    assert out.label.tolist() == parents.label.tolist()  # class of every slot kept
    # extra slots of a source are its own parents again (varied), never another source's rows
    assert set(out.samples["id"][out.source == "a"]) <= set(np.flatnonzero(parents.source == "a"))


def test_sharpness_one_keeps_the_vote_share_allocation_and_bad_settings_are_named():
    mix = Mixture([Tagged("a", 1.0), Tagged("b", 2.0)], floor=0.0, sharpness=1.0)
    mix.observe(*_voted(["a", "b"] * 10, [3.0, 1.0] * 10), 1, 3)
    out = mix.vary(_pop(["a"] * 15 + ["b"] * 5), 0.5, np.random.default_rng(0))
    assert out.samples["id"].tolist() == list(range(20))  # parents passed through unchanged
    with pytest.raises(ValueError, match="sharpness"):
        Mixture([Tagged("a", 1.0)], sharpness=0.5)
    with pytest.raises(ValueError, match="final_floor"):
        Mixture([Tagged("a", 1.0), Tagged("b", 1.0)], floor=0.05, final_floor=0.1)


def test_final_floor_applies_only_to_the_variation_that_makes_the_last_population():
    mix = Mixture([Tagged("a", 1.0), Tagged("b", 2.0)], floor=0.1, final_floor=0.0)
    pop = _pop(["a"] * 20)
    mix.observe(pop, np.ones(20), 1, 3)  # vote 1 of 3: the next population is not the last
    assert (mix.vary(pop, 0.5, np.random.default_rng(0)).source == "b").sum() == 2
    mix.observe(pop, np.ones(20), 2, 3)  # vote 2 of 3: the next population is voted on once and output
    assert (mix.vary(pop, 0.5, np.random.default_rng(0)).source == "b").sum() == 0


def test_observe_gets_only_the_released_noisy_histogram_never_the_clean_votes(tmp_path):
    from pe_tabular.checkpoint import Checkpointer

    class Watching(PointBackend):
        def __init__(self):
            super().__init__("w")
            self.observed: list[tuple[int, int, np.ndarray]] = []

        def observe(self, pop, noisy, step, steps):
            self.observed.append((step, steps, np.array(noisy, copy=True)))

    rng = np.random.default_rng(5)
    be, mu = Watching(), gdp_mu(2.0, 1e-5)
    ck = Checkpointer(tmp_path / "ck")
    evo = Evolution(be, PointEncoder(), EvolutionConfig.build(3, 100, [0.5, 0.3]), schedules.uniform(mu, 3),
                    Ledger(1e-5, mu), NoiseSource(test_seed=2), rng)
    evo.run(two_clusters(rng, 400), checkpoint=ck)
    assert [(s, T) for s, T, _ in be.observed] == [(1, 3), (2, 3)]  # after every vote but the last
    for step, _, seen in be.observed:
        released = ck.load_release(f"vote_{step:03d}")[0]
        np.testing.assert_array_equal(seen, released)  # exactly what the ledger released ...
        assert not np.allclose(seen, np.round(seen))  # ... which carries Gaussian noise (clean votes are integers)


def test_a_bad_mixture_setting_in_the_environment_is_named(monkeypatch):
    from pe_tabular.tables.datasets import adult_schema
    from pe_tabular.tables.generators.factory import MIX_SHARPNESS_ENV, make_backend

    monkeypatch.setenv(MIX_SHARPNESS_ENV, "sharp")
    with pytest.raises(ValueError, match=MIX_SHARPNESS_ENV):
        make_backend("mix:statistical,statistical", adult_schema())
    monkeypatch.setenv(MIX_SHARPNESS_ENV, "4")
    assert make_backend("mix:statistical,statistical", adult_schema()).sharpness == 4.0
