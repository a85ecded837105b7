"""CLI manners: every bad input gets exit code 2 (3 for privacy errors), a one-line message that names
the flag / column / row at fault, no traceback, and no output file (not even a half-written one).

Runs in-process through ``pe_tabular.cli.main`` on tiny inline files; runs that get as far as voting
use ``--iterations 1 --population 50 --voter numpy`` so nothing is JIT-compiled.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pe_tabular.cli import main

SCHEMA = {"columns": [{"name": "age", "type": "integer", "lower": 0, "upper": 100},
                      {"name": "color", "type": "categorical", "categories": ["red", "green", "blue"]},
                      {"name": "y", "type": "categorical", "categories": ["a", "b"]}],
          "label": "y"}
TINY = ["--iterations", "1", "--population", "50", "--k", "2", "--voter", "numpy", "--seed", "0"]


def _good_csv(n: int = 120) -> str:
    rng = np.random.default_rng(0)
    rows = [f"{rng.integers(0, 101)},{rng.choice(['red', 'green', 'blue'])},{rng.choice(['a', 'b'])}"
            for _ in range(n)]
    return "age,color,y\n" + "\n".join(rows) + "\n"


def _setup(tmp_path: Path, files: dict[str, str]) -> None:
    base = {"schema.json": json.dumps(SCHEMA), "data.csv": _good_csv()}
    for name, text in {**base, **files}.items():
        (tmp_path / name).write_text(text)


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Exit code, stdout, stderr of one in-process run (argparse errors raise SystemExit)."""
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


def _synth(*extra: str, data: str = "data.csv", schema: str = "schema.json", out: str = "o.csv") -> list[str]:
    return ["synth", data, "--schema", schema, "--out", out, "--quiet", *TINY, *extra]


DP_COST_SCHEMA = {**SCHEMA, "dp_cost": {"releases": [
    {"iteration": 0, "sigma": 0.5, "sensitivity": 1.0, "what": "bounds of age", "size": 2}]}}

# id, extra files, argv (paths relative to tmp_path), exit code, substrings the message must contain
CASES = [
    ("bad schema JSON", {"bad.json": '{"columns": ['}, _synth(schema="bad.json"), 2,
     ["--schema", "bad.json", "not valid"]),
    ("schema without bounds", {"nb.json": json.dumps({"columns": [{"name": "age", "type": "integer"}]})},
     _synth(schema="nb.json"), 2, ["'age'", "'lower' and 'upper'"]),
    ("schema with unknown type", {"ut.json": json.dumps({"columns": [{"name": "age", "type": "int"}]})},
     _synth(schema="ut.json"), 2, ["'age'", "unknown type 'int'"]),
    ("unknown category", {"d.csv": "age,color,y\n5,red,a\n7,purple,b\n9,blue,a\n"}, _synth(data="d.csv"), 2,
     ["'color'", "outside the public categories", "--on-invalid drop"]),
    ("value out of bounds", {"d.csv": "age,color,y\n5,red,a\n9,blue,a\n700,red,b\n"}, _synth(data="d.csv"), 2,
     ["'age'", "[0, 100]", "--on-invalid clip"]),
    ("non-numeric integer", {"d.csv": "age,color,y\n5,red,a\nabc,red,b\n9,blue,a\n"}, _synth(data="d.csv"), 2,
     ["'age'", "not numbers"]),
    ("missing value", {"d.csv": "age,color,y\n5,red,a\n,red,b\n9,blue,a\n"}, _synth(data="d.csv"), 2,
     ["'age'", "missing values", "nullable"]),
    ("missing column", {"d.csv": "age,y\n5,a\n7,b\n"}, _synth(data="d.csv"), 2,
     ["['color']", "not in the private data"]),
    ("duplicate columns", {"d.csv": "age,color,color,y\n5,red,red,a\n7,red,blue,b\n"}, _synth(data="d.csv"), 2,
     ["d.csv", "duplicate column names ['color']"]),
    ("empty CSV", {"d.csv": ""}, _synth(data="d.csv"), 2, ["d.csv", "is empty", "header row"]),
    ("header-only CSV", {"d.csv": "age,color,y\n"}, _synth(data="d.csv"), 2, ["no rows"]),
    ("missing input file", {}, _synth(data="nope.csv"), 2, ["nope.csv", "does not exist"]),
    ("unknown --voter", {}, _synth("--voter", "fast"), 2, ["--voter", "invalid choice: 'fast'"]),
    ("unknown --backend", {}, _synth("--backend", "gpt"), 2, ["--backend", "invalid choice: 'gpt'"]),
    ("negative --epsilon", {}, _synth("--epsilon", "-1"), 2, ["--epsilon", "must be > 0"]),
    ("--delta above 1", {}, _synth("--delta", "2"), 2, ["--delta", "(0, 1)"]),
    ("--samples 0", {}, _synth("--samples", "0"), 2, ["--samples", ">= 1"]),
    ("--population 0", {}, _synth("--population", "50,0"), 2, ["--population", ">= 1"]),
    ("--label not categorical", {}, _synth("--label", "age"), 2, ["'age'", "categorical"]),
    ("--out below a file", {"afile": "x"}, _synth(out="afile/o.csv"), 2, ["--out", "afile", "not a directory"]),
    ("--out under a file", {"f.txt": "x"}, _synth(out="f.txt/o.csv"), 2, ["--out", "f.txt"]),
    ("--out with a wrong suffix", {}, _synth(out="o.txt"), 2, ["--out", ".csv or .parquet"]),
    ("--resume without --checkpoint", {}, _synth("--resume"), 2, ["--resume needs --checkpoint"]),
    ("DP schema cost above the budget", {"dp.json": json.dumps(DP_COST_SCHEMA)}, _synth(schema="dp.json"), 3,
     ["privacy error", "bounds of age", "exceeds the remaining budget", "--epsilon"]),
    ("evaluate: numeric --target", {}, ["evaluate", "data.csv", "data.csv", "--schema", "schema.json", "--test",
                                        "data.csv", "--target", "age"], 2, ["--target 'age'", "categorical"]),
    ("evaluate: missing schema", {}, ["evaluate", "data.csv", "data.csv", "--schema", "no.json"], 2,
     ["--schema", "no.json", "does not exist", "schema infer"]),
    ("schema infer --dp-epsilon without --types", {}, ["schema", "infer", "data.csv", "--dp-epsilon", "0.1", "--out",
                                                       "s.json"], 2, ["--types"]),
    ("privacy: --delta 2", {}, ["privacy", "epsilon", "--sigma", "1", "--delta", "2"], 2, ["--delta", "(0, 1)"]),
    ("privacy: --sensitivity -1", {}, ["privacy", "sigma", "--epsilon", "1", "--sensitivity", "-1"], 2,
     ["--sensitivity", "> 0"]),
    ("report: --out not .html", {}, ["report", "data.csv", "data.csv", "--schema", "schema.json", "--out", "r.txt"],
     2, ["--out", ".html"]),
    ("report: corrupt --ledger", {"l.json": "{oops"}, ["report", "data.csv", "data.csv", "--schema", "schema.json",
                                                        "--ledger", "l.json", "--out", "r.html"], 2,
     ["--ledger", "l.json", "not valid JSON"]),
]


@pytest.mark.parametrize("files,argv,code,needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_named_and_leaves_nothing(tmp_path, monkeypatch, capsys, files, argv, code, needles):
    _setup(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    before = {p.name for p in tmp_path.rglob("*")}
    rc, out, err = run_cli(argv, capsys)
    assert rc == code, (rc, err)
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in message: {err.strip()}"
    assert out == ""
    after = {p.name for p in tmp_path.rglob("*")}
    assert after == before, f"left behind: {sorted(after - before)}"


def test_at_least_ten_distinct_bad_inputs():
    assert len({c[0] for c in CASES}) >= 10


def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    """Disk full while writing the synthetic CSV: the error is reported, no o.csv and no temp file remain."""
    import pandas as pd

    _setup(tmp_path, {})
    monkeypatch.chdir(tmp_path)
    real_to_csv = pd.DataFrame.to_csv

    def half_then_fail(self, path, *a, **k):
        real_to_csv(self.head(3), path, *a, **k)  # something is on disk already
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_fail)
    before = {p.name for p in tmp_path.iterdir()}
    try:
        rc = main(_synth())
    except OSError as e:  # surfacing the OS error as a traceback or as a message are both fine here
        assert "No space" in str(e)
    else:
        assert rc != 0 and "No space" in capsys.readouterr().err
    assert {p.name for p in tmp_path.iterdir()} == before


COMMANDS = [[], ["synth"], ["schema"], ["schema", "infer"], ["evaluate"], ["demo"], ["privacy"], ["report"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "pe-tabular")
def test_every_command_help_has_examples(cmd, capsys):
    rc, out, _ = run_cli([*cmd, "--help"], capsys)
    assert rc == 0
    examples = out.split("examples:", 1)
    assert len(examples) == 2, f"`pe-tabular {' '.join(cmd)} --help` has no examples"
    assert "pe-tabular " + (cmd[0] if cmd else "") in examples[1]
    if cmd and cmd != ["schema"]:
        assert "--json" in out and "--quiet" in out  # the common flags


def test_json_and_quiet_summaries(tmp_path, monkeypatch, capsys):
    _setup(tmp_path, {})
    monkeypatch.chdir(tmp_path)
    rc, out, _ = run_cli(["privacy", "sigma", "--epsilon", "1", "--iterations", "4", "--json"], capsys)
    assert rc == 0 and json.loads(out)["iterations"] == 4 and json.loads(out)["sigma"] > 0
    rc, out, err = run_cli([a for a in _synth() if a != "--quiet"] + ["--json"], capsys)
    assert rc == 0, err
    summary = json.loads(out)  # stdout is exactly one JSON document
    assert summary["epsilon"] == pytest.approx(1.0, rel=1e-6)
    assert Path(summary["privacy"]).is_file() and Path(summary["out"]).is_file()
    # the row count is the released noisy count of the 120 private rows (privacy rule 6), as written
    assert summary["rows"] == sum(1 for _ in open(summary["out"])) - 1
    rc, out, _ = run_cli(_synth(out="q.csv"), capsys)
    assert rc == 0 and out == "" and (tmp_path / "q.csv").is_file()
