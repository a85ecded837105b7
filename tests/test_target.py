"""``synth --target COL``: the analyst's task column gets its pair with every column measured and raked onto.

The table below is built so a Chow-Liu tree cannot keep the task: x1..x4 form a strong chain, so the tree is
the chain with y hanging off ONE of them, and y depends on x1 and x4 alike. Without a target the tree keeps
y's relation to its one neighbour only (the other end of the chain reaches y through three noisy hops); with
``target="y"`` every pair (y, x) is released and the final population is raked onto them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pe_tabular.errors import ConfigError
from pe_tabular.tables.schema import Column, Schema
from pe_tabular.tables.synthesizer import PESynthesizer

CATS = ("0", "1", "2")
SCHEMA = Schema(tuple(Column(f"x{i}", "categorical", categories=CATS) for i in range(1, 5))
                + (Column("y", "categorical", categories=("a", "b")), Column("v", "float", lower=0, upper=10)))
FAST = dict(epsilon=30.0, seed=0, population=2000, iterations=1)
FULL = {**FAST, "population": 16000}  # the default population: few repeats in an 8,000-row sample


def _frame(n: int = 8000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = [rng.integers(0, 3, n)]
    for _ in range(3):  # a strong chain: each column copies the previous one 85 % of the time
        x.append(np.where(rng.random(n) < 0.85, x[-1], rng.integers(0, 3, n)))
    score = (x[0] == 2).astype(float) + (x[3] == 0).astype(float) + rng.normal(0, 0.3, n)
    y = np.where(score > 0.8, "b", "a")
    df = pd.DataFrame({f"x{i + 1}": v.astype(str) for i, v in enumerate(x)})
    return df.assign(y=y, v=np.round(rng.uniform(0, 10, n) + (y == "b") * 2, 2).clip(0, 10))


def _pair_tvd(real: pd.DataFrame, syn: pd.DataFrame, a: str, b: str) -> float:
    p = real.groupby([a, b]).size() / len(real)
    q = syn.groupby([a, b]).size() / len(syn)
    return 0.5 * float(p.subtract(q, fill_value=0).abs().sum())


def _worst_pair_with_y(real: pd.DataFrame, syn: pd.DataFrame) -> float:
    return max(_pair_tvd(real, syn, "y", f"x{i}") for i in range(1, 5))


def test_every_pair_with_the_target_is_released_and_on_the_ledger():
    df = _frame()
    syn = PESynthesizer(SCHEMA, target="y", **FAST).fit(df)
    whats = {r.what for r in syn.ledger_.releases}
    for c in SCHEMA.names:
        if c != "y":
            assert f"marginal y×{c}" in whats or f"marginal {c}×y" in whats, c
    assert "y" in syn.ledger_.public_inputs["target"]
    assert syn.label_ == "y"  # a class target is the class column: votes within classes


def test_the_target_keeps_its_relation_to_every_column_where_the_tree_does_not(monkeypatch):
    monkeypatch.setenv("PE_TABULAR_TEST_ONLY_NOISE_SEED", "5")  # the thresholds below cannot flake on a noise draw
    df = _frame()
    plain = PESynthesizer(SCHEMA, label=None, **FULL).fit(df)
    tree_whats = {r.what for r in plain.ledger_.releases}
    assert sum("×" in w and "y" in w.split(" ", 1)[1].split("×") for w in tree_whats) <= 2  # y hangs off the chain
    task = PESynthesizer(SCHEMA, target="y", **FULL).fit(df)
    worst_plain = _worst_pair_with_y(df, plain.sample(8000))  # 0.11 on this seed
    worst_task = _worst_pair_with_y(df, task.sample(8000))  # 0.05 (0.004 without varying the repeats)
    assert worst_task < 0.6 * worst_plain and worst_task < 0.07
    # the generator alone (what the votes start from) is task-aware too
    rng = np.random.default_rng(0)
    assert (_worst_pair_with_y(df, task.backend_.random(8000, rng=rng).samples)
            < 0.9 * _worst_pair_with_y(df, plain.backend_.random(8000, rng=rng).samples))


def test_a_number_target_measures_its_pairs_without_class_conditioning():
    syn = PESynthesizer(SCHEMA, target="v", **FAST).fit(_frame(4000))
    assert syn.label_ is None and syn.classes_ is None
    whats = {r.what for r in syn.ledger_.releases}
    assert all(f"marginal v×{c}" in whats or f"marginal {c}×v" in whats for c in SCHEMA.names if c != "v")


def test_an_unknown_target_is_refused_before_any_data_is_read():
    with pytest.raises(ConfigError, match="`target` 'nope'") as e:
        PESynthesizer(SCHEMA, target="nope")
    assert e.value.for_cli().startswith("--target")


def test_the_target_round_trips_through_save_and_load(tmp_path):
    syn = PESynthesizer(SCHEMA, target="y", **FAST).fit(_frame(3000))
    syn.save(tmp_path / "m")
    assert PESynthesizer.load(tmp_path / "m").get_params()["target"] == "y"


def test_a_network_weighs_its_draws_by_the_target_as_the_tree_does(tmp_path, monkeypatch):
    """``--structure bn2 --target y``: the network starts at the task and every column whose family does not
    hold it is drawn weighed by its released pair with the task (the tree's one draw step), which brings those
    pairs closer than the same network's unweighted draws; saved and loaded, it draws the same rows.
    ε = 1 leaves some columns without the task in their family; the noise is pinned (test-only) so which ones
    does not vary between runs."""
    from pe_tabular.tables.generators.cliques import BayesNetBackend

    monkeypatch.setenv("PE_TABULAR_TEST_ONLY_NOISE_SEED", "3")
    df = _frame()
    net = PESynthesizer(SCHEMA, target="y", structure="bn2", **{**FAST, "epsilon": 1.0}).fit(df).backend_
    assert isinstance(net, BayesNetBackend) and net.order[0][0] == "y" and net.task == "y"
    weighed = dict(net.likelihood)
    assert weighed and all("y" not in net.parents_of(c) for c in weighed)

    def tvd_sum() -> float:
        draw = net.random(8000, rng=np.random.default_rng(0)).samples
        return sum(_pair_tvd(df, draw, "y", c) for c in weighed)

    with_task = tvd_sum()
    net.likelihood = {}
    assert with_task < 0.95 * tvd_sum()
    net.likelihood = weighed
    net_path = tmp_path / "m"
    syn = PESynthesizer(SCHEMA, target="y", structure="bn2", **{**FAST, "epsilon": 1.0}).fit(df)
    syn.save(net_path)
    back = PESynthesizer.load(net_path).backend_
    assert isinstance(back, BayesNetBackend) and back.task == "y" and set(back.likelihood) == set(weighed)
    pd.testing.assert_frame_equal(back.random(500, rng=np.random.default_rng(1)).samples,
                                  syn.backend_.random(500, rng=np.random.default_rng(1)).samples)
