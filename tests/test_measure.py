"""The DP estimation toolkit lives once, in the engine (``pe_tabular.measure``, issue 25)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from pe_tabular.wings import WINGS

ROOT = Path(__file__).resolve().parents[1]
WING_DIRS = tuple(w.package.replace(".", "/") for w in WINGS)
# names of tools that moved into pe_tabular.measure: a wing that defines one again has made a copy
MOVED = ("degree_schedule", "mutual_information", "max_spanning_tree", "max_spanning_forest", "rake", "label_shares",
         "estimate_label_shares", "Stage", "LazyPass")


def _wing_functions() -> set[str]:
    names = set()
    for d in WING_DIRS:
        for path in (ROOT / d).rglob("*.py"):
            names |= {n.name.lstrip("_") for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                      if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    return names


def test_no_wing_defines_a_tool_of_the_engine_toolkit():
    assert sorted(set(MOVED) & _wing_functions()) == []


def test_degree_schedule_decays_geometrically_over_the_variation_steps():
    from pe_tabular.measure.schedule import degree_schedule

    assert degree_schedule(1, 0.2, 0.1) == ()
    assert degree_schedule(2, 0.2, 0.1) == (0.2,)
    assert degree_schedule(3, 0.4, 0.1) == pytest.approx((0.4, 0.1))


def test_mutual_information_ignores_negative_noise_and_is_zero_for_independent_tables():
    from pe_tabular.measure.information import mutual_information

    assert mutual_information(np.outer([1, 3], [2, 2])) == pytest.approx(0.0, abs=1e-12)
    assert mutual_information(np.array([[5.0, -2.0], [-1.0, 5.0]])) == pytest.approx(np.log(2))
    assert mutual_information(np.array([[-1.0, -2.0]])) == 0.0


def test_spanning_forest_keeps_the_callers_ranking_and_skips_cycles():
    from pe_tabular.measure.spanning import max_spanning_forest, max_spanning_tree, ranked_pairs

    assert max_spanning_forest([("a", "b"), ("b", "a"), ("c", "d"), ("a", "d")], "abcd") == [
        ("a", "b"), ("c", "d"), ("a", "d")]
    w = np.array([[0, 3, 1], [3, 0, 2], [1, 2, 0]], float)
    assert max_spanning_forest(ranked_pairs(np.where(w > 1.5, w, -1.0), "xyz"), "xyz") == [("x", "y"), ("y", "z")]
    assert max_spanning_tree(w, "xyz") == [("x", "y"), ("y", "z")]
    assert max_spanning_tree(np.zeros((3, 3)), "xyz") == [("x", "z"), ("z", "y")]  # ties: the larger (i, j)


def test_raking_to_shares_matches_every_target_distribution():
    from pe_tabular.measure.raking import rake_to_shares

    a, b = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    w = rake_to_shares(np.ones(4), [a, b], [np.array([0.8, 0.2]), np.array([0.3, 0.7])], iterations=200)
    assert w.sum() == pytest.approx(1.0)
    assert np.bincount(a, w) == pytest.approx([0.8, 0.2]) and np.bincount(b, w) == pytest.approx([0.3, 0.7])


def test_raking_to_known_bins_leaves_unmeasured_bins_their_share_and_keeps_the_total():
    from pe_tabular.measure.raking import rake_to_known

    b = np.array([0, 1, 2, 2])
    w = rake_to_known(np.array([1.0, 1.0, 1.0, 0.0]), [b], [np.array([30.0, 10.0, -5.0])],
                      [np.array([True, True, False])])
    assert w.sum() == pytest.approx(3.0) and w[3] == 0.0
    assert np.bincount(b, w) == pytest.approx([1.5, 0.5, 1.0])  # bin 2 unmeasured: keeps its third


def test_fitting_a_pair_table_to_its_margins_keeps_its_odds_ratio_and_empty_cells():
    from pe_tabular.measure.raking import fit_table_to_margins

    t = fit_table_to_margins(np.array([[4.0, 1.0, 0.0], [1.0, 4.0, 2.0]]), np.array([0.5, 0.5]),
                             np.array([0.2, 0.5, 0.3]), 500)
    assert t.sum(1) == pytest.approx([0.5, 0.5]) and t.sum(0) == pytest.approx([0.2, 0.5, 0.3])
    assert t[0, 2] == 0.0 and t[0, 0] * t[1, 1] / (t[0, 1] * t[1, 0]) == pytest.approx(16.0)


def test_label_shares_count_each_class_once_and_skip_values_of_no_class():
    from pe_tabular.measure.shares import class_counts, estimate_label_shares
    from pe_tabular.privacy.ledger import Ledger
    from pe_tabular.privacy.noise import NoiseSource

    assert list(class_counts(np.array(["b", "a", "b", "z"], dtype=object), ["a", "b", "c"])) == [1.0, 2.0, 0.0]
    ledger = Ledger(1e-5)
    shares = estimate_label_shares(np.array(["b", "a", "b", "b"], dtype=object), ["a", "b"], 0.0, ledger,
                                   NoiseSource())
    assert shares == pytest.approx({"a": 0.25, "b": 0.75}) and [r.what for r in ledger.releases] == ["label histogram"]


def test_an_undeclared_label_is_named_as_a_problem_never_by_its_value():
    """Issue 23, finding 8: the label counters printed up to five private label values in their error."""
    from pe_tabular.measure.shares import estimate_label_shares
    from pe_tabular.privacy.ledger import Ledger
    from pe_tabular.privacy.noise import NoiseSource

    labels = np.array(["<=50K", "rare-secret-label"], dtype=object)
    with pytest.raises(ValueError, match="not among the declared classes") as e:
        estimate_label_shares(labels, ["<=50K", ">50K"], 1.0, Ledger(1e-5), NoiseSource())
    assert "rare-secret-label" not in str(e.value)


def test_one_pass_reads_the_source_once_and_never_when_no_count_is_asked_for():
    from pe_tabular.measure.histograms import OnePass, concatenated, split

    passes = []
    chunks = [np.array([0, 1, 1]), np.array([2, 2])]

    def compute():
        passes.append(1)
        fn = concatenated([lambda c: np.bincount(c, minlength=3), lambda c: [len(c)]])
        return split(sum(fn(c) for c in chunks), ["bins", "rows"], [3, 1])

    lazy = OnePass(compute)
    first, second = lazy.counts("bins"), lazy.counts("rows")
    assert passes == []
    assert list(first()) == [1.0, 2.0, 2.0] and list(second()) == [5.0] and passes == [1]


def test_a_measurement_averaged_with_a_second_one_weights_each_by_its_inverse_variance():
    from pe_tabular.measure.measurement import Measurement

    m = Measurement(("age",), np.array([10.0, 0.0]), 1.0).averaged(Measurement(("age",), np.array([0.0, 30.0]), 3.0))
    assert m.query == ("age",) and m.noisy == pytest.approx([9.0, 3.0]) and m.sigma == pytest.approx(0.9 ** 0.5)


def test_traces_releases_are_engine_measurements():
    from pe_tabular.measure.measurement import Measurement
    from simulators.network.marginals import Released, Targets

    assert issubclass(Released, Measurement) and issubclass(Targets, Measurement)
