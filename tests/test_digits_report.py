"""The digits HTML report: one grid per digit, iteration grids and ledger embedded, optional inputs optional,
bad --out/--report refused before any work, written atomically; one headless-Chromium render check.

A tiny real run (``digits synth`` on 300 rendered "private" images, 2 iterations) stands in for MNIST, and
stroke-rendered images stand in for the real test split, so nothing here needs ../shared.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from pe_tabular.cli import main
from renderers.digits.io import write_mnist, write_npz
from renderers.digits.report import class_mosaic, write_digits_report
from renderers.digits.synth import DigitsConfig, render_baseline
from tests.test_report_browser import check_page, needs_chromium

SECTION = re.compile(r'<section id="([^"]+)"><h2>(.*?)</h2>(.*?)</section>', re.S)


def _sections(html: str) -> dict[str, str]:
    """h2 title -> section body."""
    return {m.group(2): m.group(3) for m in SECTION.finditer(html)}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("digits-run")
    x, y = render_baseline(DigitsConfig(renderer="font"), np.random.default_rng(1), 300)
    write_npz(d / "priv.npz", x, y)
    out = d / "out"
    assert main(["digits", "synth", "--private", str(d / "priv.npz"), "--epsilon", "5", "--out", str(out),
                 "--population", "100", "--iterations", "2", "--n-out", "100", "--renderer", "mix", "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> tuple[Path, tuple[np.ndarray, np.ndarray]]:
    """A stand-in 'real test split' (stroke renderer), as arrays and as an MNIST IDX folder."""
    d = tmp_path_factory.mktemp("digits-real")
    x, y = render_baseline(DigitsConfig(renderer="stroke"), np.random.default_rng(2), 200)
    write_mnist(d, x, y, "test")
    return d, (x, y)


@pytest.fixture(scope="module")
def report(run_dir, real, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("digits-report") / "report.html"
    return write_digits_report(run_dir, out, real_test=real[1])


def _copy_run(run_dir: Path, dst: Path, keep: tuple[str, ...]) -> Path:
    dst.mkdir()
    for name in keep:
        src = run_dir / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst / name)
    return dst


@pytest.mark.slow
def test_report_has_a_grid_per_digit_the_iteration_grids_and_the_ledger(report, run_dir):
    text = report.read_text(encoding="utf-8")
    secs = _sections(text)
    for c in range(10):  # synthetic grid and the real one beside it, in the digit's own section
        body = secs[f"Digit {c}"]
        assert body.count("<img") == 2, c
        assert f"images labelled {c}" in body and "real test split" in body
    # every per-iteration grid synth wrote is embedded byte for byte, and the final one
    grids = sorted((run_dir / "grids").glob("iteration_*.png"))
    assert len(grids) == 2
    for p in [*grids, run_dir / "grids" / "final.png"]:
        assert base64.b64encode(p.read_bytes()).decode() in secs["Iterations"], p.name
    led = json.loads((run_dir / "synthetic.privacy.json").read_text())
    assert f"{led['epsilon']:.4g}" in secs["Privacy ledger"]  # the guarantee table
    assert f"<b>{led['epsilon']:.3g}</b><span>epsilon (whole run)</span>" in text  # the key card
    run = json.loads((run_dir / "run.json").read_text())
    assert "Evolution" in secs and len(run["history"]) == 2
    assert "Renderer shares" in secs  # --renderer mix: more than one renderer drew images
    assert "Accuracy by class" not in secs  # never evaluated
    # self-contained: every src/href is inline data or an in-page anchor, no scripts
    refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', text)
    assert refs and all(r.startswith(("data:", "#")) for r in refs)
    assert "<script" not in text.lower()
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.html"]  # no temp file left behind


def test_missing_side_files_only_leave_their_sections_out(run_dir, tmp_path):
    bare = _copy_run(run_dir, tmp_path / "bare", ("synthetic.npz",))
    secs = _sections(write_digits_report(bare, tmp_path / "bare.html").read_text(encoding="utf-8"))
    for gone in ("Privacy ledger", "Evolution", "Iterations", "Accuracy by class"):
        assert gone not in secs, gone
    assert sum(t.startswith("Digit ") for t in secs) == 10 and "Class balance" in secs
    assert all(b.count("<img") == 1 for t, b in secs.items() if t.startswith("Digit "))  # no real images given
    assert "no ledger found" in (tmp_path / "bare.html").read_text(encoding="utf-8")
    # run.json but no ledger; an evaluation.json of another image set (folder overwritten) is ignored, not shown
    part = _copy_run(run_dir, tmp_path / "part", ("synthetic.npz", "run.json"))
    (part / "evaluation.json").write_text(json.dumps({"acc": 0.5, "per_class_acc": [0.5] * 10, "n_images": 999}))
    secs = _sections(write_digits_report(part, tmp_path / "part.html").read_text(encoding="utf-8"))
    assert "Evolution" in secs and "Privacy ledger" not in secs and "Accuracy by class" not in secs


def test_a_failed_report_leaves_the_previous_file_untouched(run_dir, tmp_path):
    broken = _copy_run(run_dir, tmp_path / "broken", ("synthetic.npz", "synthetic.privacy.json"))
    (broken / "evaluation.json").write_text("{not json")
    out = tmp_path / "r.html"
    out.write_text("previous report")
    with pytest.raises(ValueError, match="evaluation.json is not valid JSON"):
        write_digits_report(broken, out)
    assert out.read_text() == "previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "r.html"]


@pytest.mark.slow
@pytest.mark.extra("digits")
def test_evaluate_report_and_the_standalone_command(run_dir, real, tmp_path):
    d = _copy_run(run_dir, tmp_path / "run", ("synthetic.npz", "synthetic.privacy.json", "run.json", "grids"))
    out = tmp_path / "eval.html"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["digits", "evaluate", str(d), "--real", str(real[0]), "--no-fd", "--report", str(out),
                     "--threads", "1", "--json"]) == 0
    summary = json.loads(buf.getvalue())
    assert summary["report"]["out"] == str(out) and summary["report"]["bytes"] == out.stat().st_size
    ev = json.loads((d / "evaluation.json").read_text())
    secs = _sections(out.read_text(encoding="utf-8"))
    acc = secs["Accuracy by class"]
    assert f"accuracy {ev['acc']:.4f}" in acc
    for c, a in enumerate(ev["per_class_acc"]):  # the per-class row carries evaluation.json's number
        assert re.search(rf"<tr><td class=num>{c}</td><td class=num>{a:.3f}</td>", acc), c
    assert "Confusion matrix" in acc
    # the standalone command picks evaluation.json up from DIR
    out2 = tmp_path / "standalone.html"
    assert main(["digits", "report", str(d), "--out", str(out2), "-q"]) == 0
    secs2 = _sections(out2.read_text(encoding="utf-8"))
    assert secs2["Accuracy by class"] == acc
    assert all(b.count("<img") == 1 for t, b in secs2.items() if t.startswith("Digit "))  # no --real: no real grid


def test_bad_report_paths_are_refused_before_any_work(run_dir, tmp_path, capsys):
    d = _copy_run(run_dir, tmp_path / "run", ("synthetic.npz",))
    assert main(["digits", "report", str(d), "--out", str(tmp_path / "report.pdf")]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and ".html" in err
    assert main(["digits", "report", str(d), "--out", str(d / "synthetic.npz" / "r.html")]) == 2  # below a file
    assert "--out" in capsys.readouterr().err
    # evaluate: checked before the (slow) evaluation, and the message names --report, not --out
    assert main(["digits", "evaluate", str(d), "--real", str(tmp_path / "none"), "--report",
                 str(tmp_path / "r.txt")]) == 2
    err = capsys.readouterr().err
    assert "--report" in err and ".html" in err and "--out" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and not (d / "evaluation.json").exists()
    assert main(["digits", "report", str(tmp_path / "missing"), "--out", str(tmp_path / "r.html")]) == 2
    assert "DIR" in capsys.readouterr().err and not (tmp_path / "r.html").exists()


def test_class_mosaic_shows_only_that_class_and_shrinks_for_rare_classes():
    labels = np.repeat(np.arange(3), [40, 5, 0])
    images = np.zeros((45, 28, 28), np.uint8)
    images[:, 5:20, 5:20] = (labels * 50 + 10)[:, None, None]  # each class has its own grey level
    grid, n = class_mosaic(images, labels, 1, np.random.default_rng(0), rows=10, cols=16, scale=2)
    assert n == 5 and grid.shape == (28 * 2, 16 * 28 * 2)  # one row, not ten mostly blank ones
    assert set(np.unique(grid)) == {0, 60}
    assert (grid[:, :5 * 56] == 60).sum() == 5 * (15 * 2) ** 2 and not grid[:, 5 * 56:].any()
    grid, n = class_mosaic(images, labels, 0, np.random.default_rng(0), rows=2, cols=16, scale=1)
    assert n == 40 and grid.shape == (56, 448) and set(np.unique(grid)) == {0, 10}
    assert (grid == 10).sum() == 32 * 15 * 15  # 32 of the 40 shown, all filled
    grid, n = class_mosaic(images, labels, 2, np.random.default_rng(0))
    assert n == 0 and not grid.any()


@pytest.mark.slow
@needs_chromium
def test_digits_report_renders_in_chromium(report):
    found, console = check_page(report)
    assert found["errors"] == [] and console == [], (found["errors"], console)
    assert found["broken"] == [] and found["blank"] == [], found
    # mean images, renderer shares, 10 x 2 digit grids, 2 iterations + final, evolution
    assert found["images"] == 1 + 1 + 20 + 3 + 1, found
    assert found["sections"] == 16, found
