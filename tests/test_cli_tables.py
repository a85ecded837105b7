"""The tables CLI end to end: synth writes the data and the accountant's (ε, δ) (rule 5), evaluate, schema."""

from __future__ import annotations

import json

import pytest

from pe_tabular.cli import main
from pe_tabular.tables.datasets import adult_schema, load_adult


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    load_adult("train").head(1500).to_csv(d / "private.csv", index=False)
    load_adult("test").head(500).to_csv(d / "test.csv", index=False)
    adult_schema().save(d / "schema.json")
    return d


def test_synth_prints_and_saves_the_accountants_epsilon(files, capsys):
    out = files / "synth.csv"
    rc = main(["synth", str(files / "private.csv"), "--schema", str(files / "schema.json"), "--epsilon", "2",
               "--iterations", "1", "--population", "200", "--k", "2", "--voter", "numpy", "--samples", "300",
               "--out", str(out), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    saved = json.loads((files / "synth.privacy.json").read_text())
    assert summary["epsilon"] == pytest.approx(2.0, rel=1e-6) == saved["epsilon"]
    assert saved["delta"] == 1e-5 and len(saved["releases"]) >= 3
    assert sum(1 for _ in open(out)) == 301


def test_evaluate_json(files, capsys):
    rc = main(["evaluate", str(files / "private.csv"), str(files / "private.csv"), "--schema",
               str(files / "schema.json"), "--test", str(files / "test.csv"), "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["tvd2_mean"] == 0.0 and res["tstr"]["auc"] > 0.8
    assert res["dcr"]["synth_exact_copies"] == 1.0  # the real data copies itself: DCR flags it


def test_schema_infer_warns_about_private_data(files, capsys):
    rc = main(["schema", "infer", str(files / "test.csv"), "--label", "income"])
    assert rc == 0
    cap = capsys.readouterr()
    assert "PUBLIC data only" in cap.err and json.loads(cap.out)["label"] == "income"


def test_schema_infer_dp_needs_public_types(files, capsys):
    rc = main(["schema", "infer", str(files / "private.csv"), "--dp-epsilon", "0.5"])
    assert rc == 2 and "--types" in capsys.readouterr().err


def test_schema_infer_public_takes_types_and_summarises_each_column(tmp_path, capsys):
    (tmp_path / "p.csv").write_text("k,when,x\n" + "1,2017-01-01T06:00:42Z,0\n10,2017-02-01T00:00:00Z,0\n2,,3.5\n" * 10)
    rc = main(["schema", "infer", str(tmp_path / "p.csv"), "--types", "x=float"])
    assert rc == 0
    cap = capsys.readouterr()
    cols = {c["name"]: c for c in json.loads(cap.out)["columns"]}
    assert cols["k"]["categories"] == [1, 2, 10] and cols["when"]["type"] == "datetime"
    assert cols["x"]["type"] == "float" and cols["x"]["special_values"] == [0.0, 3.5]
    assert all(f"  {n}: " in cap.err for n in ("k", "when", "x"))  # one summary line per column
