"""Evaluation never hides rows (issue 22): `evaluate`, `report` and `synth --report` score every real row.

A value outside the schema (a category it lacks, a number beyond its bounds, text in a number column, an
empty cell in a non-nullable column) is counted in its column's '(outside schema)' cell; an empty cell of a
nullable column in '(missing)'. Dropping such rows, as the code did before, flatters every figure.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pe_tabular.cli import main
from pe_tabular.tables.evaluation import evaluate, tstr
from pe_tabular.tables.schema import Column, Schema

SCHEMA = Schema((Column("color", "categorical", categories=("a", "b")),
                 Column("x", "integer", lower=0, upper=10),
                 Column("z", "float", lower=0, upper=1, nullable=True)))


def _worst(res: dict) -> dict[tuple[str, ...], float]:
    return {tuple(w["columns"]): w["tvd"] for w in res["worst_marginals"]}


@pytest.fixture
def rough(tmp_path: Path) -> Path:
    """100 real rows, 20 of them with one value outside SCHEMA; the synthetic rows all fit it.

    color: 50 a, 40 b, then 6 'zzz' and 4 empty (non-nullable) on rows 90-99 -> 10 outside;
    x: 1 or 2, except 5 x 50 (beyond the bounds) and 5 x 'abc' (not a number) on rows 80-89 -> 10 outside;
    z: 30 empty (nullable: the missing cell), else 0.5.
    """
    color = ["a"] * 50 + ["b"] * 40 + ["zzz"] * 6 + [""] * 4
    x = ["1"] * 70 + ["2"] * 10 + ["50"] * 5 + ["abc"] * 5 + ["1"] * 10
    z = [""] * 30 + ["0.5"] * 70
    lines = ["color,x,z", *(",".join(r) for r in zip(color, x, z))]
    (tmp_path / "real.csv").write_text("\n".join(lines) + "\n")
    pd.DataFrame({"color": ["a"] * 50 + ["b"] * 50, "x": [1] * 90 + [2] * 10, "z": [0.5] * 100}).to_csv(
        tmp_path / "synth.csv", index=False)
    SCHEMA.save(tmp_path / "schema.json")
    return tmp_path


def test_evaluate_scores_every_real_row_and_counts_values_outside_the_schema(rough, capsys):
    rc = main(["evaluate", str(rough / "real.csv"), str(rough / "synth.csv"), "--schema", str(rough / "schema.json"),
               "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_real"] == 100 and res["n_synth"] == 100
    assert res["real_fit"] == {"rows": 100, "rows_outside_schema": 20, "outside_schema": {"color": 10, "x": 10}}
    assert res["synth_fit"]["rows_outside_schema"] == 0
    assert res["missing_share"] == {"z": {"real": 0.3, "synth": 0.0}}
    worst = _worst(res)  # dropping the 20 rows would give color 0.056, x 0.0, z 0.25
    assert worst[("color",)] == pytest.approx(0.1)  # real a .5 b .4 outside .1 vs synthetic a .5 b .5
    assert worst[("x",)] == pytest.approx(0.1)
    assert worst[("z",)] == pytest.approx(0.3)  # a nullable column's missing share is compared


def test_evaluate_says_how_many_rows_it_scored_and_that_it_is_operator_side(rough, capsys):
    rc = main(["evaluate", str(rough / "real.csv"), str(rough / "synth.csv"), "--schema", str(rough / "schema.json")])
    assert rc == 0
    cap = capsys.readouterr()
    assert "rows scored: real 100 (every row of the file)" in cap.out
    assert "real rows with a value outside the schema: 20" in cap.out and "color 10, x 10" in cap.out
    assert "z 30.0% / 0.0%" in cap.out
    assert "operator-side" in cap.out and "not differentially private" in cap.out
    assert "--on-invalid" not in cap.out + cap.err  # a flag evaluate does not have


def test_an_unknown_category_is_not_a_missing_value():
    """Real: 10 % of a nullable column outside its categories; synthetic: 10 % missing. Not the same thing."""
    schema = Schema((Column("c", "categorical", categories=("a", "b"), nullable=True),))
    real = pd.DataFrame({"c": ["a"] * 45 + ["b"] * 45 + ["zzz"] * 10})
    synth = pd.DataFrame({"c": ["a"] * 45 + ["b"] * 45 + [None] * 10})
    res = evaluate(real, synth, schema, with_dcr=False)
    assert res["tvd1_mean"] == pytest.approx(0.1)
    assert res["real_fit"]["outside_schema"] == {"c": 10} and res["missing_share"]["c"] == {"real": 0.0,
                                                                                            "synth": 0.1}


def test_the_schemas_other_bucket_takes_unknown_categories():
    """A column with an 'other' category (a DP schema's '(other)') scores unknown values there, as synth does."""
    schema = Schema((Column("c", "categorical", categories=("a", "(other)"), other="(other)"),))
    real = pd.DataFrame({"c": ["a"] * 80 + ["x", "y"] * 10})
    synth = pd.DataFrame({"c": ["a"] * 80 + ["(other)"] * 20})
    res = evaluate(real, synth, schema, with_dcr=False)
    assert res["tvd1_mean"] == 0.0 and res["real_fit"]["rows_outside_schema"] == 0


def test_a_number_coded_category_with_one_empty_cell_keeps_its_categories(tmp_path, capsys):
    """One empty cell makes pandas read codes 0..3 as floats ('1.0'); every other row keeps its category."""
    schema = Schema((Column("code", "categorical", categories=("0", "1", "2", "3"), nullable=True),
                     Column("flag", "boolean")))
    codes = [str(i % 4) for i in range(39)] + [""]
    flags = ["True", "False"] * 20
    (tmp_path / "real.csv").write_text("code,flag\n" + "\n".join(f"{c},{f}" for c, f in zip(codes, flags)) + "\n")
    schema.save(tmp_path / "s.json")
    rc = main(["evaluate", str(tmp_path / "real.csv"), str(tmp_path / "real.csv"), "--schema", str(tmp_path / "s.json"),
               "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_real"] == 40 and res["real_fit"]["rows_outside_schema"] == 0
    assert res["missing_share"] == {"code": {"real": 1 / 40, "synth": 1 / 40}}
    assert res["tvd2_max"] == 0.0


def _learnable(n: int, labels: list[str], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.choice(labels, n)
    return pd.DataFrame({"f": np.where(y == labels[0], rng.normal(0.3, 0.1, n), rng.normal(0.7, 0.1, n)).clip(0, 1),
                         "y": y})


def test_auc_is_scored_when_the_label_gained_an_other_class():
    """A DP schema gives the label an '(other)' class; the test rows hold only the two real classes."""
    schema = Schema((Column("f", "float", lower=0, upper=1),
                     Column("y", "categorical", categories=("no", "yes", "(other)"), other="(other)")), label="y")
    train = _learnable(600, ["no", "yes", "(other)"], 0)
    test = _learnable(400, ["no", "yes"], 1)
    res = tstr(train, test, schema, "y")
    assert res["auc"] is not None and not np.isnan(res["auc"]) and res["auc"] > 0.9


def test_test_rows_whose_label_the_schema_lacks_count_in_accuracy_and_are_named_beside_the_auc():
    """A test label outside the schema (here 'maybe') is a miss for accuracy and F1; the AUC is over the schema's
    classes (a class every model scores 0 would only pull it to 0.5), and the note says how many rows that was."""
    schema = Schema((Column("f", "float", lower=0, upper=1), Column("y", "categorical", categories=("no", "yes"))),
                    label="y")
    train = _learnable(600, ["no", "yes"], 0)
    clean = _learnable(380, ["no", "yes"], 1)
    test = pd.concat([clean, pd.DataFrame({"f": [0.5] * 20, "y": ["maybe"] * 20})], ignore_index=True)
    res, ref = tstr(train, test, schema, "y"), tstr(train, clean, schema, "y")
    assert res["auc"] == ref["auc"] and res["auc"] > 0.9
    assert res["accuracy"] == pytest.approx(ref["accuracy"] * 380 / 400)
    assert res["note"].startswith("20 test rows have a label outside the schema")


def test_multiclass_auc_is_the_macro_one_vs_rest_of_the_present_classes():
    from sklearn.metrics import roc_auc_score

    from pe_tabular.tables.evaluation import auc_of_present_classes

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    p = rng.dirichlet(np.ones(3), 300) + np.eye(3)[y] * 0.5
    p /= p.sum(1, keepdims=True)
    assert auc_of_present_classes(y, p) == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    wider = np.concatenate([p, np.zeros((300, 2))], axis=1)  # classes no test row holds change nothing
    assert auc_of_present_classes(y, wider) == pytest.approx(auc_of_present_classes(y, p))
    assert auc_of_present_classes(np.zeros(10, np.int64), p[:10]) is None


# ------------------------------------------------------------------------------------------------
# one code path: `synth --report` and `report` give the same figures on the same two files

def _figures(html: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The report's cards and every table cell of its fidelity and utility sections."""
    cards = re.findall(r'<div class="card"><b>(.*?)</b><span>(.*?)</span>', html)
    start, end = html.index(">Marginal fidelity (TVD)</h2>"), html.index(">Privacy ledger</h2>")
    return cards, re.findall(r"<td[^>]*>(.*?)</td>", html[start:end])


@pytest.mark.slow
def test_synth_report_and_report_give_the_same_figures_on_the_same_files(tmp_path, capsys):
    from pe_tabular.tables.datasets import adult_schema, load_adult

    schema = adult_schema()
    cols = [c if c.name != "age" else Column("age", "integer", lower=17, upper=60) for c in schema.columns]
    Schema(tuple(cols), label=schema.label).save(tmp_path / "s.json")  # ages above 60 lie outside it
    real = load_adult("train").head(600)
    real.to_csv(tmp_path / "real.csv", index=False)
    n_outside = int((real["age"] > 60).sum())
    assert n_outside > 0
    rc = main(["synth", str(tmp_path / "real.csv"), "--schema", str(tmp_path / "s.json"), "--epsilon", "2",
               "--iterations", "1", "--population", "150", "--k", "2", "--voter", "numpy", "--samples", "300",
               "--on-invalid", "clip", "--out", str(tmp_path / "synth.csv"), "--report", str(tmp_path / "a.html"),
               "--quiet"])
    assert rc == 0
    rc = main(["report", str(tmp_path / "real.csv"), str(tmp_path / "synth.csv"), "--schema", str(tmp_path / "s.json"),
               "--out", str(tmp_path / "b.html"), "--quiet"])
    assert rc == 0
    capsys.readouterr()
    a, b = (_figures((tmp_path / f).read_text(encoding="utf-8")) for f in ("a.html", "b.html"))
    assert a == b
    cards = dict((label, value) for value, label in a[0])
    assert cards["real rows (every one scored)"] == "600"
    assert cards["real rows with a value outside the schema"].startswith(f"{n_outside} (")


def test_report_states_the_dcr_unit_and_what_an_identical_row_means():
    """Issue 24: 'DCR median 2000 / 1000' had no unit and 'exact copies' no word on what it means. The vote
    metric counts Q per category that differs, so the report speaks in columns that differ."""
    from pe_tabular.tables.datasets import adult_schema
    from pe_tabular.tables.encoder import Q
    from pe_tabular.tables.report import _cards

    ev = {"n_real": 10, "n_synth": 10, "dcr": {"synth_median": 2 * Q, "holdout_median": Q}}
    label, value = _cards(adult_schema(), None, ev)[-1]
    assert "columns that differ" in label and value == "2.00 / 1.00"


@pytest.mark.slow
def test_na_values_read_the_same_in_schema_infer_evaluate_and_report(tmp_path, capsys):
    """`--na-values` was on synth only: a sentinel synth read as missing ('?', -999) was an outside-schema value
    for `evaluate`/`report` and a category for `schema infer`. Every command that reads a table now takes it."""
    real = tmp_path / "real.csv"
    z = np.round(np.linspace(0.01, 0.99, 100), 2)
    z[1::4] = -999  # a sentinel: a quarter of the cells
    pd.DataFrame({"color": ["a", "b", "?", "a"] * 25, "z": z}).to_csv(real, index=False)
    schema = tmp_path / "s.json"
    assert main(["schema", "infer", str(real), "--na-values", "?,-999", "--out", str(schema), "-q"]) == 0
    cols = {c["name"]: c for c in json.loads(schema.read_text())["columns"]}
    assert "?" not in cols["color"]["categories"] and cols["color"]["nullable"]
    assert cols["z"]["type"] == "float" and cols["z"]["nullable"] and cols["z"]["lower"] >= 0
    capsys.readouterr()
    assert main(["evaluate", str(real), str(real), "--schema", str(schema), "--na-values", "?,-999", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["real_fit"]["rows_outside_schema"] == 0
    assert res["missing_share"]["color"]["real"] == pytest.approx(0.25)
    assert res["missing_share"]["z"]["real"] == pytest.approx(0.25)
    assert main(["report", str(real), str(real), "--schema", str(schema), "--na-values", "?,-999",
                 "--out", str(tmp_path / "r.html"), "-q"]) == 0
