"""Progress on a terminal is a bar; in a log (stderr a file or a pipe) it is plain lines without escape codes."""

from __future__ import annotations

import io
import subprocess
import sys

import pandas as pd
import pytest

from pe_tabular.progress import ProgressBars, bar, stage

EVENTS = [{"type": "iteration_start", "iteration": 1, "total": 3},
          {"type": "vote_progress", "iteration": 1, "fraction": 0.5},
          {"type": "scan_progress", "desc": "marginals", "fraction": 0.25},
          {"type": "iteration", "iteration": 1, "epsilon_so_far": 0.4, "ess": 10.0},
          {"type": "iteration_start", "iteration": 2, "total": 3},
          {"type": "iteration", "iteration": 2, "epsilon_so_far": 0.7, "ess": 10.0}]


def _run(fn, monkeypatch) -> str:
    err = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", err)
    fn()
    return err.getvalue()


def test_a_log_gets_plain_lines_per_iteration(monkeypatch):
    def go():
        bars = ProgressBars(enabled=True)
        for e in EVENTS:
            bars(e)
        bars.close()
        with stage("sampling"):
            pass
        with bar(10, "evaluating") as b:
            b.update(10)

    text = _run(go, monkeypatch)
    assert "\r" not in text and "\x1b[" not in text
    lines = text.splitlines()
    assert [ln.split(" done")[0] for ln in lines if "iteration" in ln] == ["PE iteration 1/3", "PE iteration 2/3"]
    assert "ETA" in lines[1] and "sampling ..." in lines and any(ln.startswith("sampling: done in") for ln in lines)
    assert "evaluating ..." in lines and "marginals ..." in lines
    assert "50%" not in text and "25%" not in text  # per-percent redraws stay out of logs


def test_a_terminal_still_gets_bars(monkeypatch):
    def go():
        bars = ProgressBars(enabled=True, tty=True)
        for e in EVENTS:
            bars(e)
        assert bars.outer is not None and bars.outer.n == 2
        bars.close()

    assert "\r" in _run(go, monkeypatch)


def test_quiet_prints_nothing(monkeypatch):
    def go():
        bars = ProgressBars(enabled=False)
        for e in EVENTS:
            bars(e)
        with stage("sampling", enabled=False):
            pass

    assert _run(go, monkeypatch) == ""


@pytest.mark.slow
def test_synth_logged_to_a_file_has_no_escape_codes(tmp_path):
    from pe_tabular.tables.datasets import load_adult

    data = tmp_path / "d.csv"
    load_adult("train").head(1000).to_csv(data, index=False)
    schema = tmp_path / "s.json"
    subprocess.run([sys.executable, "-m", "pe_tabular.cli", "schema", "infer", str(data), "--out", str(schema),
                    "--quiet"], check=True)
    log = tmp_path / "run.log"
    with open(log, "w") as f:
        rc = subprocess.run([sys.executable, "-m", "pe_tabular.cli", "synth", str(data), "--schema", str(schema),
                             "--epsilon", "1", "--out", str(tmp_path / "o.csv"), "--iterations", "2"],
                            stderr=f, stdout=subprocess.DEVNULL).returncode
    text = log.read_text()
    assert rc == 0, text[-2000:]
    assert "\r" not in text and "\x1b[" not in text
    assert "validating the private rows ..." in text.splitlines() and len(pd.read_csv(tmp_path / "o.csv")) > 0
