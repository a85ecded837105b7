"""What a new user reads: a bad flag is one line naming it (no usage dump), answers are labelled and
survive --quiet, --help states the defaults, and the help's examples use names the CLI accepts."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from pe_tabular.cli import build_parser, main
from pe_tabular.tables.datasets import adult_schema, load_adult


def _err_line(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize("eps", ["0", "-1", "abc"])
@pytest.mark.parametrize("command", [["synth", "x.csv", "--schema", "s.json", "--out", "o.csv"],
                                     ["traces", "synth", "x.csv", "--out", "o.csv"], ["privacy", "sigma"]])
def test_a_bad_epsilon_is_one_line_naming_the_flag(command, eps, capsys):
    line = _err_line([*command, "--epsilon", eps], capsys)
    assert "--epsilon must be" in line and f"'{eps}'" in line and "--help" in line
    assert "argument --epsilon" not in line  # argparse's prefix would say the flag twice


def test_a_missing_argument_is_one_line_too(capsys):
    line = _err_line(["synth"], capsys)
    assert "required" in line and "--schema" in line and "pe-tabular synth --help" in line


def test_privacy_answers_are_labelled_and_survive_quiet(capsys):
    assert main(["privacy", "sigma", "--epsilon", "1", "--iterations", "10", "--json"]) == 0
    sigma = json.loads(capsys.readouterr().out)["sigma"]
    for quiet in ([], ["-q"]):
        assert main(["privacy", "sigma", "--epsilon", "1", "--iterations", "10", *quiet]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"sigma = {sigma:.6g} per release") and "10 Gaussian releases" in out
    assert main(["privacy", "epsilon", "--sigma", f"{sigma!r}", "--iterations", "10", "-q"]) == 0
    out = capsys.readouterr().out
    assert re.match(r"epsilon = 1(\.0+)? at delta = 1e-05", out), out


def test_evaluate_quiet_still_prints_the_result(tmp_path, capsys):
    load_adult("train").head(300).to_csv(tmp_path / "real.csv", index=False)
    adult_schema().save(tmp_path / "schema.json")
    real = str(tmp_path / "real.csv")
    assert main(["evaluate", real, real, "--schema", str(tmp_path / "schema.json"), "--quiet"]) == 0
    cap = capsys.readouterr()
    assert "2-way" in cap.out and cap.err == ""


def _help_of(*path: str) -> str:
    p = build_parser()
    for name in path:
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[name]
    return p.format_help()


def _block(text: str, flag: str) -> str:
    """The help text of one option (up to the next option)."""
    start = text.index(f"  {flag} ")
    nxt = text.find("\n  -", start + 2)
    return " ".join(text[start: nxt if nxt > 0 else None].split())


def test_synth_help_states_the_measured_defaults_and_demo_documents_every_flag():
    from pe_tabular.tables.cli import synth_defaults

    text = _help_of("synth")
    for flag, value in synth_defaults().items():
        assert f"(default: {value})" in _block(text, f"--{flag}"), flag
    demo = _help_of("demo")
    for flag in ("--seed", "--no-report"):
        assert len(_block(demo, flag).split()) > 3, f"demo {flag} has no description"
    evaluate = _help_of("evaluate")
    for flag in ("--schema", "--test", "--target"):
        assert len(_block(evaluate, flag).split()) > 3, f"evaluate {flag} has no description"


def test_help_examples_name_only_types_the_cli_accepts():
    from pe_tabular.tables.schema import TYPES

    def helps(p: argparse.ArgumentParser):
        yield p.format_help()
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sp in a.choices.values():
                    yield from helps(sp)

    seen = 0
    for text in helps(build_parser()):
        for spec in re.findall(r"--types (\S+)", text):
            for item in spec.split(","):
                if "=" in item:
                    seen += 1
                    assert item.split("=", 1)[1] in TYPES, f"--types example {item!r} is not a known type"
    assert seen >= 2


def test_an_output_where_no_file_can_be_made_fails_before_any_work(tmp_path, monkeypatch, capsys):
    """As root, os.access calls /proc writable; the final write would fail only after the whole run."""
    from pathlib import Path

    from pe_tabular.tables import synthesizer

    if not Path("/proc").is_dir():
        pytest.skip("needs /proc (Linux)")
    load_adult("train").head(200).to_csv(tmp_path / "real.csv", index=False)
    adult_schema().save(tmp_path / "schema.json")
    monkeypatch.setattr(synthesizer.PESynthesizer, "fit", lambda *a, **k: pytest.fail("the run started"))
    rc = main(["synth", str(tmp_path / "real.csv"), "--schema", str(tmp_path / "schema.json"), "--out",
               "/proc/out.csv", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "--out /proc/out.csv" in err and "choose another --out" in err


def test_warnings_and_log_records_share_one_style_and_print_once(tmp_path, capsys):
    """Issue 24: two styles (``pe-tabular: warning:`` and ``WARNING pe_tabular.tables.report_cli:``) and
    warnings printed twice. A report whose data has a column the schema lacks logs a warning through
    ``logging``; the dropped-columns warning comes through ``warnings`` — both in one style, each once."""
    df = load_adult("train").head(300)
    df["extra_col"] = 1
    real, synth = tmp_path / "real.csv", tmp_path / "synth.csv"
    df.to_csv(real, index=False)
    df.to_csv(synth, index=False)
    schema = tmp_path / "s.json"
    adult_schema().save(schema)
    rc = main(["report", str(real), str(synth), "--schema", str(schema), "--out", str(tmp_path / "r.html")])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 0
    warned = [ln for ln in err if "warning" in ln.lower()]
    assert warned and all(ln.startswith("pe-tabular: warning: ") for ln in warned), warned
    assert not any(re.match(r"^(WARNING|INFO|DEBUG) ", ln) for ln in err)
    assert len(warned) == len(set(warned))
