"""Reliability of the command line: it never destroys or silently changes data (through the real entry point)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pe_tabular.cli import main
from pe_tabular.io_utils import TMP_SUFFIX, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def adult_files(tmp_path: Path) -> tuple[Path, Path]:
    from pe_tabular.tables.datasets import adult_schema, load_adult

    data = tmp_path / "adult.csv"
    load_adult("train").head(400).to_csv(data, index=False)
    adult_schema().save(tmp_path / "schema.json")
    return data, tmp_path / "schema.json"


def _rc(argv: list[str], capsys) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = int(e.code)
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("how", ["same path", "relative path", "symlink", "hard link"])
def test_synth_refuses_to_overwrite_its_input(adult_files, tmp_path, how, capsys, monkeypatch):
    data, schema = adult_files
    before = data.read_bytes()
    if how == "same path":
        out = str(data)
    elif how == "relative path":
        monkeypatch.chdir(tmp_path)
        os.mkdir("sub")
        out = "sub/../adult.csv"
    elif how == "symlink":
        os.symlink(data, tmp_path / "link.csv")
        out = str(tmp_path / "link.csv")
    else:
        os.link(data, tmp_path / "hard.csv")
        out = str(tmp_path / "hard.csv")
    rc, err = _rc(["synth", str(data), "--schema", str(schema), "--out", out, "-q"], capsys)
    assert rc == 2 and "input" in err and "--out" in err
    assert data.read_bytes() == before


def test_schema_infer_and_traces_refuse_to_overwrite_their_input(adult_files, tmp_path, capsys):
    data, _ = adult_files
    before = data.read_bytes()
    rc, err = _rc(["schema", "infer", str(data), "--out", str(data), "-q"], capsys)
    assert rc == 2 and "input" in err and data.read_bytes() == before
    flows = tmp_path / "flows.csv"
    flows.write_text("srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt\n167772161,167772162,40000,80,TCP,0,0.1,3,300\n")
    fb = flows.read_bytes()
    rc, err = _rc(["traces", "synth", str(flows), "--epsilon", "1", "--time-window", "0", "10", "--out", str(flows),
                   "-q"], capsys)
    assert rc == 2 and "input" in err and flows.read_bytes() == fb


def test_digits_never_writes_into_the_private_folder(tmp_path, capsys):
    from renderers.digits.io import write_mnist

    priv = tmp_path / "mnist"
    priv.mkdir()
    write_mnist(priv, np.zeros((20, 28, 28), np.uint8), np.arange(20) % 10, "train")  # an IDX folder
    before = {p.name: p.read_bytes() for p in priv.iterdir()}
    for out in (priv, priv / "sub"):  # into the private folder, or below it
        rc, err = _rc(["digits", "synth", "--private", str(priv), "--epsilon", "1", "--out", str(out),
                       "--format", "both", "-q"], capsys)
        assert rc == 2 and "input folder" in err
    npz = tmp_path / "run" / "synthetic.npz"  # a private .npz where synth would write its own synthetic.npz
    npz.parent.mkdir()
    np.savez(npz, images=np.zeros((20, 28, 28), np.uint8), labels=np.arange(20) % 10)
    rc, err = _rc(["digits", "synth", "--private", str(npz), "--epsilon", "1", "--out", str(npz.parent), "-q"], capsys)
    assert rc == 2 and "input file" in err
    assert {p.name: p.read_bytes() for p in priv.iterdir()} == before


def test_epsilon_inf_warns_that_the_output_is_not_private(adult_files, tmp_path, capsys):
    data, schema = adult_files
    rc, err = _rc(["synth", str(data), "--schema", str(schema), "--out", str(tmp_path / "o.csv"), "--epsilon", "inf",
                   "--population", "100", "--iterations", "1", "--k", "2", "--voter", "numpy", "--samples", "50"],
                  capsys)
    assert rc == 0 and "NOT differentially private" in err


def test_default_verbosity_shows_no_info_lines_and_quiet_shows_nothing(adult_files, tmp_path, capsys):
    data, schema = adult_files
    argv = ["synth", str(data), "--schema", str(schema), "--population", "100", "--iterations", "1", "--k", "2",
            "--samples", "50"]
    rc, err = _rc([*argv, "--out", str(tmp_path / "a.csv")], capsys)
    assert rc == 0 and "INFO" not in err
    rc, err = _rc([*argv, "--out", str(tmp_path / "b.csv"), "-q"], capsys)
    assert rc == 0 and err == ""


def test_a_killed_write_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    target = tmp_path / "synth.csv"
    stale = tmp_path / f".synth.csv.abc123{TMP_SUFFIX}"
    stale.write_text("half a file")
    other = tmp_path / f".other.csv.abc123{TMP_SUFFIX}"  # another output's temporary: not ours to remove
    other.write_text("x")
    atomic_write_text(target, "a,b\n1,2\n")
    assert target.read_text() == "a,b\n1,2\n" and not stale.exists() and other.exists()


def _ctrl_c_default() -> None:
    """A test runner started in the background by a shell without job control inherits SIGINT ignored, and
    Python then never raises KeyboardInterrupt: give the child the terminal's default, as a user's shell does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("sig, word", [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")])
def test_sigint_and_sigterm_exit_130_with_a_message_and_no_partial_output(adult_files, tmp_path, sig, word):
    data, schema = adult_files
    big = tmp_path / "big.csv"
    import pandas as pd

    pd.concat([pd.read_csv(data)] * 40).to_csv(big, index=False)
    out = tmp_path / "o.csv"
    ck = tmp_path / "ck"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "pe_tabular.cli", "synth", str(big), "--schema", str(schema),
                             "--out", str(out), "--checkpoint", str(ck), "--population", "3000", "--iterations", "4",
                             "--voter", "numpy", "-q"], stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                            preexec_fn=_ctrl_c_default)
    deadline = time.time() + 120
    while time.time() < deadline and not any(ck.glob("release_*.npz")):  # wait until a release exists
        time.sleep(0.2)
    proc.send_signal(sig)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err
    assert word in err and "--resume" in err
    assert not out.exists() and not list(tmp_path.glob(f".*{TMP_SUFFIX}"))


def test_resume_hint_only_when_a_checkpoint_exists(adult_files, tmp_path, monkeypatch, capsys):
    data, schema = adult_files
    from pe_tabular.tables import synthesizer

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthesizer.PESynthesizer, "fit", interrupted)
    rc, err = _rc(["synth", str(data), "--schema", str(schema), "--out", str(tmp_path / "o.csv")], capsys)
    assert rc == 130 and "--resume" not in err and "interrupted" in err


def test_inputs_people_have_latin1_gzip_and_parquet(tmp_path, capsys):
    import gzip
    import json

    schema = {"columns": [{"name": "city", "type": "categorical", "categories": ["Köln", "Málaga"]},
                          {"name": "n", "type": "integer", "lower": 0, "upper": 9}]}
    (tmp_path / "s.json").write_text(json.dumps(schema))
    rows = "city,n\n" + "".join(f"{'Köln' if i % 3 else 'Málaga'},{i % 10}\n" for i in range(120))
    (tmp_path / "l1.csv").write_bytes(rows.encode("latin-1"))
    with gzip.open(tmp_path / "d.csv.gz", "wt", encoding="utf-8") as f:
        f.write(rows)
    tiny = ["--population", "60", "--iterations", "1", "--k", "2", "--voter", "numpy", "--samples", "20", "-q"]
    rc, err = _rc(["synth", str(tmp_path / "l1.csv"), "--schema", str(tmp_path / "s.json"), "--out",
                   str(tmp_path / "a.csv"), *tiny], capsys)
    assert rc == 2 and "--encoding" in err and "l1.csv" in err and "0x" not in err
    rc, err = _rc(["synth", str(tmp_path / "l1.csv"), "--encoding", "latin-1", "--schema", str(tmp_path / "s.json"),
                   "--out", str(tmp_path / "a.csv"), *tiny], capsys)
    assert rc == 0, err
    rc, err = _rc(["synth", str(tmp_path / "d.csv.gz"), "--schema", str(tmp_path / "s.json"), "--out",
                   str(tmp_path / "b.parquet"), *tiny], capsys)
    assert rc == 0, err
    whole = (tmp_path / "b.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(whole[: len(whole) // 2])
    rc, err = _rc(["synth", str(tmp_path / "cut.parquet"), "--schema", str(tmp_path / "s.json"), "--out",
                   str(tmp_path / "c.csv"), *tiny], capsys)
    assert rc == 2 and "cut.parquet" in err and "Parquet" in err and "<Buffer>" not in err


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_a_csv_with_a_byte_order_mark_reads_like_one_without(tmp_path, capsys, suffix):
    """Excel's "CSV UTF-8" starts the file with a byte-order mark: it is not part of the first column's name
    (the header checks of `synth` and `schema infer` read it as pyarrow and pandas do)."""
    import gzip
    import json

    schema = {"columns": [{"name": "n", "type": "integer", "lower": 0, "upper": 9},
                          {"name": "city", "type": "categorical", "categories": ["Köln", "Málaga"]}]}
    (tmp_path / "s.json").write_text(json.dumps(schema))
    data = ("n,city\n" + "".join(f"{i % 10},{'Köln' if i % 3 else 'Málaga'}\n" for i in range(120))).encode("utf-8-sig")
    path = tmp_path / f"bom{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    tiny = ["--population", "60", "--iterations", "1", "--k", "2", "--voter", "numpy", "--samples", "20", "-q"]
    rc, err = _rc(["synth", str(path), "--schema", str(tmp_path / "s.json"), "--out", str(tmp_path / "o.csv"),
                   *tiny], capsys)
    assert rc == 0, err
    assert list(__import__("pandas").read_csv(tmp_path / "o.csv").columns) == ["n", "city"]
    rc, err = _rc(["schema", "infer", str(path), "--out", str(tmp_path / "inferred.json")], capsys)
    assert rc == 0, err
    assert [c["name"] for c in json.loads((tmp_path / "inferred.json").read_text())["columns"]] == ["n", "city"]


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_a_header_written_with_blanks_after_the_commas_reads_in_every_command(tmp_path, capsys, suffix):
    """"age, city, amt": `schema infer` (pandas) named the columns 'age', 'city', 'amt' while `synth`'s streamed
    reader (pyarrow) read ' city' and ' amt' and refused the file ("columns ['city', 'amt'] are in the schema
    but not in the private data"). Every reader strips the names now."""
    import gzip
    import json

    text = "age, city, amt\n" + "".join(f"{20 + i % 50}, {'Paris' if i % 3 else 'Rome'}, {i % 97}.{i % 100:02d}\n"
                                          for i in range(300))
    path = tmp_path / f"sp{suffix}"
    path.write_bytes(gzip.compress(text.encode()) if suffix.endswith(".gz") else text.encode())
    tiny = ["--population", "60", "--iterations", "1", "--k", "2", "--voter", "numpy", "--samples", "20", "-q"]
    for mode, extra, eps in (("public", [], "1"),
                             ("dp", ["--dp-epsilon", "1", "--types", "age=integer,city=categorical,amt=float"], "3")):
        rc, err = _rc(["schema", "infer", str(path), *extra, "--out", str(tmp_path / f"{mode}.json")], capsys)
        assert rc == 0, err
        assert [c["name"] for c in json.loads((tmp_path / f"{mode}.json").read_text())["columns"]] == ["age", "city",
                                                                                                     "amt"]
        rc, err = _rc(["synth", str(path), "--schema", str(tmp_path / f"{mode}.json"), "--epsilon", eps, "--out",
                       str(tmp_path / f"{mode}.csv"), *tiny], capsys)
        assert rc == 0, (mode, err)
        assert (tmp_path / f"{mode}.csv").read_text().splitlines()[0] == "age,city,amt"


def test_a_spreadsheet_is_refused_with_how_to_export_it_and_a_tsv_is_read_by_every_command(tmp_path, capsys):
    """An .xlsx used to reach `schema infer` as 'a header but no data rows'; a .tsv was split on commas by
    `schema infer` (one column) while `synth` read it by tabs."""
    import json

    (tmp_path / "t.xlsx").write_bytes(b"PK\x03\x04" + bytes(200))
    schema = {"columns": [{"name": "n", "type": "integer", "lower": 0, "upper": 9},
                          {"name": "k", "type": "categorical", "categories": ["a", "b"]}]}
    (tmp_path / "s.json").write_text(json.dumps(schema))
    dp = ["--dp-epsilon", "1", "--types", "n=integer,k=categorical"]
    xlsx = str(tmp_path / "t.xlsx")
    for argv in (["schema", "infer", xlsx], ["schema", "infer", xlsx, *dp],
                 ["synth", xlsx, "--schema", str(tmp_path / "s.json"), "--out", str(tmp_path / "o.csv")]):
        rc, err = _rc(argv, capsys)
        assert rc == 2 and "spreadsheet" in err and "CSV" in err, (argv, err)
    (tmp_path / "d.tsv").write_text("n\tk\n" + "".join(f"{i % 10}\t{'ab'[i % 2]}\n" for i in range(300)))
    rc, err = _rc(["schema", "infer", str(tmp_path / "d.tsv"), "--out", str(tmp_path / "p.json")], capsys)
    assert rc == 0, err
    assert [c["name"] for c in json.loads((tmp_path / "p.json").read_text())["columns"]] == ["n", "k"]
    rc, err = _rc(["schema", "infer", str(tmp_path / "d.tsv"), *dp, "--out", str(tmp_path / "q.json")], capsys)
    assert rc == 0, err
    assert [c["name"] for c in json.loads((tmp_path / "q.json").read_text())["columns"]] == ["n", "k"]


def test_a_malformed_csv_error_names_no_row(tmp_path, capsys):
    import json

    (tmp_path / "s.json").write_text(json.dumps({"columns": [{"name": "a", "type": "integer", "lower": 0,
                                                              "upper": 9}]}))
    (tmp_path / "bad.csv").write_text("a\n1\n2\n3,4,5\n")
    rc, err = _rc(["synth", str(tmp_path / "bad.csv"), "--schema", str(tmp_path / "s.json"), "--out",
                   str(tmp_path / "o.csv"), "-q"], capsys)
    assert rc == 2 and "bad.csv" in err and "well-formed" in err
    told = err.split("bad.csv", 1)[1]  # what is said about the file (its path may hold digits)
    assert "line" not in told and not any(ch.isdigit() for ch in told)


def test_every_option_with_a_default_shows_it_in_help():
    import argparse

    from pe_tabular.cli import build_parser

    def options(p, path):
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sp in a.choices.items():
                    yield from options(sp, [*path, name])
            elif a.option_strings and a.default not in (None, False, argparse.SUPPRESS) and a.dest != "help":
                yield " ".join(path), p, a

    seen = 0
    for cmd, parser, action in options(build_parser(), []):
        text = parser.format_help()
        text = text[text.index("options:"):]
        start = max(text.find(f"  {o} ") for o in action.option_strings)
        start = start if start >= 0 else max(text.find(f"  {o}\n") for o in action.option_strings)
        block = text[start:]
        nxt = block.find("\n  -", 2)
        block = block[: nxt if nxt > 0 else len(block)]
        assert "default" in block, f"{cmd} {action.option_strings[-1]}: --help does not show its default"
        seen += 1
    assert seen > 40


def test_one_ledger_naming_in_every_wing():
    from pe_tabular.cli_support import ledger_path

    assert ledger_path("out/synth.csv").name == "synth.privacy.json"
    assert ledger_path("out/synth.parquet").name == "synth.privacy.json"
    assert ledger_path("out/flows.csv.gz").name == "flows.privacy.json"
    assert ledger_path("run/synthetic.npz") == Path("run/synthetic.privacy.json")


def test_a_data_column_missing_from_the_schema_is_named_not_dropped_silently(adult_files, tmp_path, capsys):
    import pandas as pd

    data, schema = adult_files
    df = pd.read_csv(data).assign(notes="free text")
    df.to_csv(tmp_path / "extra.csv", index=False)
    rc, err = _rc(["synth", str(tmp_path / "extra.csv"), "--schema", str(schema), "--out", str(tmp_path / "o.csv"),
                   "--population", "100", "--iterations", "1", "--k", "2", "--samples", "50"], capsys)
    assert rc == 0 and "pe-tabular: warning:" in err and "'notes'" in err and "left out" in err
    assert "free text" not in err


def test_a_missing_out_directory_is_created_like_a_checkpoint_directory(adult_files, tmp_path, capsys):
    data, schema = adult_files
    out = tmp_path / "new" / "deeper" / "o.csv"
    rc, err = _rc(["synth", str(data), "--schema", str(schema), "--out", str(out), "--population", "100",
                   "--iterations", "1", "--k", "2", "--samples", "50", "-q"], capsys)
    assert rc == 0 and out.exists() and (out.parent / "o.privacy.json").exists()


def test_the_real_data_report_is_written_only_where_the_user_says(adult_files, tmp_path, capsys):
    """Rule 7: no file beside the output holds private values; the report of REAL vs synthetic (exact real
    distributions) is written only to an explicit --report path, with a reminder to keep it private."""
    data, schema = adult_files
    (tmp_path / "share").mkdir()
    (tmp_path / "private").mkdir()
    argv = ["synth", str(data), "--schema", str(schema), "--out", str(tmp_path / "share" / "o.csv"), "--population",
            "100", "--iterations", "1", "--k", "2", "--samples", "50"]
    rc, _ = _rc(argv, capsys)
    assert rc == 0 and sorted(p.name for p in (tmp_path / "share").iterdir()) == ["o.csv", "o.privacy.json"]
    rc, _ = _rc([*argv, "--report", str(tmp_path / "private" / "r.html")], capsys)
    assert rc == 0 and (tmp_path / "private" / "r.html").exists()
    assert sorted(p.name for p in (tmp_path / "share").iterdir()) == ["o.csv", "o.privacy.json"]
