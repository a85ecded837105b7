"""The HTML report, rendered in a real headless Chromium: no JavaScript error, no broken or blank figure.

Chromium loads a copy of the report with a small checker script injected at the top of <head>: it
records every error event (script errors and failed resource loads), and on ``load`` draws each
<img> on a canvas to check it decoded (naturalWidth > 0) and is not a single flat colour, and that
every inline <svg> has a non-empty box. The result lands in a <pre id="pe-check"> that
``--dump-dom`` prints; Chromium's console log (``--enable-logging=stderr``) is checked as well.
A second test feeds the checker a deliberately broken page, so a checker that sees nothing fails.

Also the screenshot tool for the docs:

    pe-tabular demo --out /tmp/demo
    python tests/test_report_browser.py /tmp/demo/report.html docs/report-screenshot.png
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio"]
MARKER = re.compile(r'<pre id="pe-check">(.*?)</pre>', re.S)

CHECK_SCRIPT = """<script>
(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t !== window && t.tagName) { errors.push("failed to load <" + t.tagName.toLowerCase() + ">"); }
    else { errors.push(String(e.message || e)); }
  }, true);
  window.addEventListener("unhandledrejection", function (e) { errors.push("unhandled rejection: " + e.reason); });
  window.addEventListener("load", function () {
    var imgs = Array.prototype.slice.call(document.images), broken = [], blank = [], sizes = [];
    imgs.forEach(function (img, i) {
      var name = i + ":" + (img.alt || "");
      if (!img.complete || img.naturalWidth === 0 || img.naturalHeight === 0) { broken.push(name); return; }
      sizes.push([img.naturalWidth, img.naturalHeight]);
      try {
        var c = document.createElement("canvas"); c.width = img.naturalWidth; c.height = img.naturalHeight;
        var g = c.getContext("2d"); g.drawImage(img, 0, 0);
        var d = g.getImageData(0, 0, c.width, c.height).data, same = true;
        for (var k = 4; k < d.length; k += 4) {
          if (d[k] !== d[0] || d[k + 1] !== d[1] || d[k + 2] !== d[2] || d[k + 3] !== d[3]) { same = false; break; }
        }
        if (same) { blank.push(name); }
      } catch (err) { broken.push(name + " (unreadable: " + err + ")"); }
    });
    var svgs = Array.prototype.slice.call(document.querySelectorAll("svg")).filter(function (s) {
      return !(s.parentNode && s.parentNode.closest && s.parentNode.closest("svg")); });
    var emptySvg = [];
    svgs.forEach(function (s, i) { var b = s.getBoundingClientRect();
      if (b.width === 0 || b.height === 0 || s.querySelectorAll("*").length === 0) { emptySvg.push(i); } });
    var out = document.createElement("pre"); out.id = "pe-check";
    out.textContent = JSON.stringify({images: imgs.length, sizes: sizes, broken: broken, blank: blank,
      svgs: svgs.length, empty_svgs: emptySvg, errors: errors, sections: document.querySelectorAll("section").length});
    document.body.appendChild(out);
  });
})();
</script>"""


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def _chromium(url: str, extra: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    exe = find_chromium()
    assert exe is not None
    with tempfile.TemporaryDirectory(prefix="pe-chromium-") as profile:  # a fresh profile every run
        return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *extra, url], capture_output=True,
                              text=True, timeout=timeout, check=False)


def check_page(html_path: Path) -> tuple[dict, list[str]]:
    """Load a checker-injected copy of the page; returns the checker's findings and console errors."""
    text = html_path.read_text(encoding="utf-8")
    head = re.search(r"<head[^>]*>", text)
    assert head is not None, "the report has no <head>"
    probe = html_path.with_name(html_path.stem + ".checked.html")
    probe.write_text(text[:head.end()] + CHECK_SCRIPT + text[head.end():], encoding="utf-8")
    try:
        res = _chromium(probe.resolve().as_uri(), ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
                                                   "--dump-dom"])
    finally:
        probe.unlink()
    m = MARKER.search(res.stdout)
    assert m is not None, f"the checker never ran (exit {res.returncode}); stderr tail:\n{res.stderr[-2000:]}"
    import html

    found = json.loads(html.unescape(m.group(1)))
    console = [ln for ln in res.stderr.splitlines() if ":CONSOLE" in ln and
               re.search(r"Uncaught|Error|error", ln.split(":CONSOLE", 1)[1])]
    return found, console


def screenshot(html_path: Path, png: Path, width: int = 1400, height: int = 2600) -> Path:
    """Screenshot of the page's first ``height`` pixels, exactly as a browser shows it."""
    png.parent.mkdir(parents=True, exist_ok=True)
    res = _chromium(Path(html_path).resolve().as_uri(), [f"--window-size={width},{height}",
                                                         f"--screenshot={png.resolve()}"])
    assert png.is_file(), f"chromium wrote no screenshot (exit {res.returncode}): {res.stderr[-2000:]}"
    return png


needs_chromium = pytest.mark.skipif(
    find_chromium() is None,
    reason="Chromium not found (looked for chromium/chromium-browser/google-chrome on PATH and /usr/bin/chromium); "
           "install it with `apt-get install chromium` (.ci/run does this before `make test`)")


# ------------------------------------------------------------------------------------------------
# a demo-sized run on an Adult subsample (seconds, not minutes)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from pe_tabular.tables.datasets import adult_schema, load_adult
    from pe_tabular.tables.synthesizer import PESynthesizer

    schema = adult_schema()
    train = load_adult("train").sample(2000, random_state=1).reset_index(drop=True)
    test = load_adult("test").sample(800, random_state=1).reset_index(drop=True)
    syn = PESynthesizer(schema, 1.0, 1e-5, iterations=2, population=[200, 400], k=4, seed=0, voter="numpy").fit(train)
    synth = syn.sample(2000)
    d = tmp_path_factory.mktemp("report")
    return {"dir": d, "schema": schema, "train": train, "test": test, "synth": synth,
            "ledger": syn.privacy_report(), "history": syn.result_.history}


def _grid_image() -> np.ndarray:
    """A digits-style sample grid, to exercise the section API other domains use."""
    rng = np.random.default_rng(0)
    return (rng.random((56, 140)) * 255).astype(np.uint8)


def _svg() -> str:
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40" viewBox="0 0 120 40">'
            '<rect x="0" y="10" width="80" height="20" fill="#4c72b0"/></svg>')


def few_threads():
    """One OpenMP/BLAS thread: HistGradientBoosting's spinning OpenMP threads crawl on a busy 2-core machine.

    sklearn's OpenMP runtime loads on import, so import it first or threadpool_limits cannot see it."""
    import sklearn.ensemble  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


@pytest.fixture(scope="module")
def report(run):

    from pe_tabular.report import html_section
    from pe_tabular.tables.report import write_report

    extra = html_section("Other domain (section API)", figures=[_grid_image(), _svg()],
                         tables=[pd.DataFrame({"class": [0, 1], "samples": [10, 12]})],
                         captions=["sample grid", "an inline SVG"], text="Added through html_section.")
    path = run["dir"] / "report.html"
    with few_threads():
        write_report(run["train"], run["synth"], run["schema"], path, ledger=run["ledger"], history=run["history"],
                     test=run["test"], target="income", extra_sections=[extra])
    return path


@pytest.mark.slow
@needs_chromium
def test_report_renders_in_chromium_without_errors_or_empty_figures(report, tmp_path, report_table):
    found, console = check_page(report)
    assert found["errors"] == [], found["errors"]
    assert console == [], console
    assert found["broken"] == [] and found["blank"] == [], found
    assert found["empty_svgs"] == [] and found["svgs"] == 1, found
    # distributions, associations, DCR, evolution + the extra section's grid; all with a real size
    assert found["images"] >= 5, found
    assert all(w >= 50 and h >= 20 for w, h in found["sizes"]), found["sizes"]
    assert found["sections"] == 8, found  # 5 table sections + ledger + evolution + the extra one
    png = screenshot(report, tmp_path / "shot.png", 1200, 1600)
    from matplotlib.image import imread

    img = imread(png)
    assert img.shape[:2] == (1600, 1200)
    assert float(img[..., :3].std()) > 0.05, "the screenshot is (nearly) one flat colour"
    report_table("report (Adult subsample, 2000 rows)",
                 [f"{report.stat().st_size / 1e6:.2f} MB, {found['images']} images, {found['sections']} sections"])


@needs_chromium
def test_checker_flags_script_errors_broken_and_blank_images(tmp_path):
    """The checker itself must fail a bad page, or the test above proves nothing."""
    from matplotlib.image import imsave

    buf = io.BytesIO()
    imsave(buf, np.ones((16, 16)), cmap="gray", vmin=0, vmax=1, format="png")
    blank = base64.b64encode(buf.getvalue()).decode()
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><head><title>bad</title></head><body>"
                    '<img alt="ok" src="data:image/png;base64,' + base64.b64encode(_png_ok()).decode() + '">'
                    '<img alt="corrupt" src="data:image/png;base64,AAAA">'
                    f'<img alt="blank" src="data:image/png;base64,{blank}">'
                    "<svg width='10' height='10'></svg>"
                    "<script>notDefinedAnywhere();</script></body></html>")
    found, console = check_page(page)
    assert found["broken"] == ["1:corrupt"]
    assert found["blank"] == ["2:blank"]
    assert found["empty_svgs"] == [0]
    assert any("notDefinedAnywhere" in e for e in found["errors"])
    assert any("failed to load <img>" in e for e in found["errors"])
    assert any("notDefinedAnywhere" in ln for ln in console)


def _png_ok() -> bytes:
    from matplotlib.image import imsave

    buf = io.BytesIO()
    imsave(buf, np.random.default_rng(1).random((16, 16)), cmap="gray", format="png")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# content checks that need no browser


def test_report_is_self_contained_and_complete(report, run):
    text = report.read_text(encoding="utf-8")
    # nothing is fetched at view time: every src/href is inline data or an in-page anchor
    refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', text)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), [r[:40] for r in refs if r[:5] != "data:"]
    assert "<script" not in text.lower() and "<link" not in text.lower() and "@import" not in text
    for title in ("Column distributions", "Pairwise associations", "Marginal fidelity (TVD)",
                  "Machine-learning utility", "Distance to closest record", "Privacy ledger", "Evolution",
                  "Other domain (section API)"):
        assert f">{title}</h2>" in text, title
    # the ledger table lists every release with its sigma
    led = run["ledger"]
    assert text.count("<tr>") > len(led["releases"])
    for r in led["releases"][:3]:
        assert f"{r['sigma']:.4g}" in text
    assert "train on real, test on real (ceiling)" in text


def test_cramers_v_is_zero_for_independent_and_one_for_identical_columns():
    from pe_tabular.tables.report import cramers_v_matrix

    rng = np.random.default_rng(0)
    a = rng.integers(0, 6, 20000)
    codes = np.stack([a, rng.integers(0, 9, 20000), a, (a + rng.integers(0, 2, 20000)) % 6], axis=1)
    v = cramers_v_matrix(codes, np.array([7, 10, 7, 7]))
    assert v[0, 2] == pytest.approx(1.0, abs=1e-9)
    assert v[0, 1] < 0.02  # bias-corrected: independent columns read as ~0 even with 9 x 6 bins
    assert 0.3 < v[0, 3] < 0.9
    assert np.allclose(v, v.T)


def test_datetimes_are_binned_on_the_schema_scale_whatever_their_dtype(tmp_path):
    """`synth --report` hands over pandas Timestamps (ns); the bins are defined in epoch seconds."""
    from pe_tabular.tables.evaluation import binned
    from pe_tabular.tables.report import write_report
    from pe_tabular.tables.schema import Column, Schema

    lo, hi = pd.Timestamp("2020-01-01"), pd.Timestamp("2021-01-01")
    schema = Schema((Column("t", "datetime", lower=lo.value / 1e9, upper=hi.value / 1e9),
                     Column("y", "categorical", categories=("a", "b"))))
    rng = np.random.default_rng(0)
    stamps = lo + pd.to_timedelta(rng.integers(0, 366, 400), unit="D")
    df = pd.DataFrame({"t": stamps, "y": rng.choice(["a", "b"], 400)})
    seconds = df.assign(t=(stamps - pd.Timestamp(0)) / pd.Timedelta(seconds=1))
    codes, sizes = binned(df, schema)
    assert np.array_equal(codes, binned(seconds, schema)[0])
    assert len(np.unique(codes[:, 0])) > sizes[0] // 2  # spread over the year, not piled into one bin
    as_text = df.assign(t=df["t"].dt.strftime("%Y-%m-%d"))
    assert np.array_equal(binned(as_text, schema)[0], codes)
    out = write_report(df, as_text, schema, tmp_path / "r.html")  # 2 columns: no 3-way marginals to compute
    assert out.stat().st_size > 10_000 and ">Column distributions</h2>" in out.read_text(encoding="utf-8")


def test_figure_html_rejects_what_it_cannot_embed(tmp_path):
    from pe_tabular.report import figure_html

    with pytest.raises(ValueError, match="PNG"):
        figure_html(b"GIF89a....")
    with pytest.raises(ValueError, match="SVG"):
        figure_html("<div>not svg</div>")
    with pytest.raises(FileNotFoundError):
        figure_html(tmp_path / "missing.png")
    assert figure_html(_png_ok(), alt='a "quoted" <alt>').count("&quot;quoted&quot; &lt;alt&gt;") == 1


def test_report_command_end_to_end(run, tmp_path):
    """`pe-tabular report` from files: picks up SYNTH.privacy.json, reads --history, prints --json."""
    import contextlib

    from pe_tabular.cli import main
    from pe_tabular.tables.schema import Schema

    cols = ["age", "education", "sex", "income"]  # a narrow table keeps the figures quick
    schema = Schema(tuple(run["schema"][c] for c in cols), label="income")
    real, synth = tmp_path / "real.csv", tmp_path / "synth.csv"
    run["train"][cols].to_csv(real, index=False)
    run["synth"][cols].to_csv(synth, index=False)
    schema.save(tmp_path / "schema.json")
    (tmp_path / "synth.privacy.json").write_text(json.dumps(run["ledger"]))
    (tmp_path / "hist.json").write_text(json.dumps(run["history"]))
    out = tmp_path / "r.html"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), few_threads():
        rc = main(["report", str(real), str(synth), "--schema", str(tmp_path / "schema.json"), "--history",
                   str(tmp_path / "hist.json"), "--out", str(out), "--json"])
    assert rc == 0
    summary = json.loads(buf.getvalue())
    assert summary["ledger"] is True and summary["history"] is True and summary["bytes"] == out.stat().st_size
    text = out.read_text(encoding="utf-8")
    assert ">Privacy ledger</h2>" in text and ">Evolution</h2>" in text
    assert ">Machine-learning utility</h2>" not in text  # no --test: no TSTR
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


if __name__ == "__main__":  # python tests/test_report_browser.py REPORT.html OUT.png [WIDTH HEIGHT]
    if find_chromium() is None:
        sys.exit("chromium not found; apt-get install chromium")
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    w, h = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else (1400, 2600)
    findings, console_errors = check_page(src)
    if findings["errors"] or findings["broken"] or findings["blank"] or console_errors:
        sys.exit(f"the report does not render cleanly: {findings} {console_errors}")
    print(screenshot(src, dst, w, h), findings["images"], "images")
