"""The network-traces HTML report: self-contained figures, the suite's numbers, joint structure in the
cards, optional ledger/evolution sections, atomic writes and `--report` validation."""

from __future__ import annotations

import base64
import html
import json
import re

import numpy as np
import pandas as pd
import pytest

from pe_tabular.cli import main
from simulators.network.encoder import uint32_to_ip
from simulators.network.fidelity import flow_fidelity, packet_fidelity
from simulators.network.flows import FlowSimulator
from simulators.network.io import write_netflow_csv
from simulators.network.packets import expand_flows
from simulators.network.report import FIELD_METRICS, PRIVATE_WARNING, write_traces_report

T0 = 1460332800.0
WINDOW = (T0, T0 + 3600)
WINDOW_ARGS = ["2016-04-11T00:00Z", "2016-04-11T01:00Z"]
SMALL = ["--iterations", "3", "--population", "60", "--seed", "0", "--voter", "numpy"]
PNG_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _flows(n: int, seed: int) -> pd.DataFrame:
    return FlowSimulator(WINDOW, ts_resolution_s=1.0).random(n, rng=np.random.default_rng(seed)).samples


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return _flows(1200, 0)


@pytest.fixture(scope="module")
def other(real) -> pd.DataFrame:
    """An independent draw of the same simulator: every metric is non-zero but moderate."""
    return _flows(900, 1)


@pytest.fixture(scope="module")
def shuffled(real) -> pd.DataFrame:
    """Every column permuted independently: each marginal is exact, every joint is destroyed."""
    rng = np.random.default_rng(2)
    out = real.copy()
    for c in out.columns:
        out[c] = out[c].to_numpy()[rng.permutation(len(out))]
    return out


@pytest.fixture(scope="module")
def other_report(real, other, tmp_path_factory) -> str:
    path = write_traces_report(real, other, tmp_path_factory.mktemp("rep") / "other.html", window=WINDOW)
    return path.read_text(encoding="utf-8")


def _cards(page: str) -> dict[str, str]:
    return {html.unescape(k): html.unescape(v)
            for v, k in re.findall(r'<div class="card"><b>(.*?)</b><span>(.*?)</span></div>', page)}


def _table(page: str, caption: str) -> list[list[str]]:
    """Cell texts of the table whose caption starts with ``caption``."""
    m = re.search(r"<table><caption>" + re.escape(caption) + r".*?</caption>(.*?)</table>", page, re.S)
    assert m, f"no table captioned {caption!r}"
    body = m.group(1).split("<tbody>", 1)[1]
    return [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def _sections(page: str) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", page)


@pytest.mark.slow
def test_report_is_self_contained_with_embedded_figures(other_report):
    pngs = PNG_URI.findall(other_report)
    assert len(pngs) >= 3  # CDFs, ports/protocol bars, prefix bars
    for data in pngs:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")
    assert "<script" not in other_report and "http://" not in other_report and "https://" not in other_report
    for title in ("Fidelity", "Distributions", "Services", "Heavy hitters", "Address prefixes"):
        assert title in _sections(other_report)
    assert html.escape(PRIVATE_WARNING) in other_report


def test_per_field_table_shows_the_suites_numbers(real, other, other_report):
    suite = flow_fidelity(real, other, WINDOW)
    by_what = {what: key for key, (_, _, what) in FIELD_METRICS.items()}
    rows = _table(other_report, "Per-field distances")
    seen = set()
    for field, metric, value, what in rows:
        key = by_what[what]
        assert (field, metric) == FIELD_METRICS[key][:2]
        assert float(value) == pytest.approx(suite[key], rel=1e-3, abs=1e-12), key
        seen.add(key)
    assert seen == {k for k in FIELD_METRICS if k in suite}
    assert any(suite[k] > 0.01 for k in seen)  # the comparison is not vacuous
    cards = _cards(other_report)
    assert float(cards["pairwise TVD (lower is better)"]) == pytest.approx(suite["headline"]["pairwise_tvd"],
                                                                            abs=5e-5)
    assert float(cards["heavy-hitter error (lower is better)"]) == pytest.approx(suite["hh_error"], abs=5e-5)


def test_heavy_hitter_table_lists_the_real_top_destinations(real, other, other_report):
    rows = _table(other_report, "Top-10 destination addresses")
    top = real["dstip"].value_counts()
    scale = len(real) / len(other)
    other_counts = other["dstip"].value_counts()
    for row, (ip, count) in zip(rows, top.iloc[:10].items()):
        assert row[1] == uint32_to_ip(np.array([ip]))[0]
        assert int(row[2]) == count
        assert float(row[3]) == pytest.approx(other_counts.get(ip, 0) * scale, abs=0.06)
    ports = _table(other_report, "Top-10 destination ports")
    assert int(ports[0][1]) == real["dstport"].value_counts().index[0]


@pytest.mark.slow
def test_column_shuffle_shows_a_worse_pairwise_tvd_than_a_copy(real, shuffled, tmp_path):
    copy_page = write_traces_report(real, real.copy(), tmp_path / "copy.html", ledger=None, history=[],
                                    window=WINDOW).read_text()
    assert "Evolution" not in _sections(copy_page)  # an empty history omits its section
    shuf_page = write_traces_report(real, shuffled, tmp_path / "shuf.html", window=WINDOW).read_text()
    tvd_copy = float(_cards(copy_page)["pairwise TVD (lower is better)"])
    tvd_shuf = float(_cards(shuf_page)["pairwise TVD (lower is better)"])
    assert tvd_copy == 0.0
    assert tvd_shuf > 0.1  # the joints are gone although every per-field metric is 0
    assert max(float(r[2]) for r in _table(shuf_page, "Per-field distances")) < 1e-9
    assert float(_cards(shuf_page)["valid synthetic records"].rstrip("%")) < \
        float(_cards(copy_page)["valid synthetic records"].rstrip("%"))


def test_missing_ledger_and_history_omit_their_sections(other_report):
    assert "Privacy ledger" not in _sections(other_report) and "Evolution" not in _sections(other_report)
    assert _cards(other_report)["epsilon / delta"] == "not given"


def test_write_is_atomic(real, other, tmp_path, monkeypatch):
    out = tmp_path / "r.html"
    out.write_text("previous report")

    def fail(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pe_tabular.privacy.atomic.os.replace", fail)
    with pytest.raises(OSError):
        write_traces_report(real.iloc[:100], other.iloc[:100], out, window=WINDOW)
    assert out.read_text() == "previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temporary file left behind


def test_packet_level_report(real, tmp_path):
    rng = np.random.default_rng(3)
    pk_real = expand_flows(real.iloc[:100], rng, max_packets_per_flow=10)
    pk_syn = expand_flows(_flows(100, 4), rng, max_packets_per_flow=10)
    page = write_traces_report(pk_real, pk_syn, tmp_path / "pk.html").read_text()
    suite = packet_fidelity(pk_real, pk_syn)
    rows = {r[3]: float(r[2]) for r in _table(page, "Per-field distances")}
    assert rows[FIELD_METRICS["emd_length"][2]] == pytest.approx(suite["emd_length"], rel=1e-3, abs=1e-12)
    assert "packets (real)" in _cards(page)
    with pytest.raises(ValueError, match="like with like"):
        write_traces_report(pk_real, real, tmp_path / "mixed.html")


def test_api_rejects_a_non_html_name(real, tmp_path):
    with pytest.raises(ValueError, match="out_html.*html"):
        write_traces_report(real, real, tmp_path / "r.png")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# CLI


@pytest.fixture(scope="module")
def flows_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("traces-report") / "flows.csv"
    write_netflow_csv(_flows(400, 0), path)
    return path


@pytest.mark.slow
def test_synth_report_has_ledger_evolution_and_the_warning(flows_csv, tmp_path, capsys):
    out, rep = tmp_path / "synth.csv", tmp_path / "synth.html"
    rc = main(["traces", "synth", str(flows_csv), "--epsilon", "2", "--time-window", *WINDOW_ARGS,
               "--out", str(out), "--report", str(rep), "--json", "-q", *SMALL])
    assert rc == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["report"] == str(rep)
    page = rep.read_text()
    assert {"Privacy ledger", "Evolution", "Distributions"} <= set(_sections(page))
    assert html.escape(PRIVATE_WARNING) in page
    ledger = json.loads((tmp_path / "synth.privacy.json").read_text())
    assert _cards(page)["epsilon / delta"].startswith(f"{ledger['epsilon']:.3g} /")

    # evaluate picks the ledger and the history up from beside SYNTH (synth wrote both) ...
    rep2 = tmp_path / "eval.html"
    assert main(["traces", "evaluate", str(flows_csv), str(out), "--report", str(rep2), "-q"]) == 0
    page2 = rep2.read_text()
    assert "Privacy ledger" in _sections(page2) and "Evolution" in _sections(page2)
    # ... and without the history file there is no evolution section
    (tmp_path / "synth.history.json").unlink()
    assert main(["traces", "evaluate", str(flows_csv), str(out), "--report", str(rep2), "-q"]) == 0
    assert "Evolution" not in _sections(rep2.read_text())
    assert html.escape(PRIVATE_WARNING) in page2


def test_bad_report_name_fails_before_any_work(flows_csv, tmp_path, capsys):
    bad = tmp_path / "report.txt"
    assert main(["traces", "evaluate", str(flows_csv), str(flows_csv), "--report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "--report" in err and ".html" in err
    out = tmp_path / "synth.csv"
    assert main(["traces", "synth", str(flows_csv), "--epsilon", "2", "--time-window", *WINDOW_ARGS,
                 "--out", str(out), "--report", str(bad), "-q", *SMALL]) == 2
    assert "--report" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # neither the report nor the synthetic data was written
    assert main(["traces", "evaluate", str(flows_csv), str(flows_csv), "--ledger", "x.json"]) == 2
    assert "--report" in capsys.readouterr().err


@pytest.mark.slow
def test_real_ugr16_sample_report(tmp_path):
    from conftest import shared_path

    from simulators.network.io import read_netflow_csv

    real = read_netflow_csv(shared_path("data", "net", "ugr16", "ugr16_flows_1k.csv"))
    t = real["ts"].to_numpy(np.float64) / 1e6
    sim = FlowSimulator((t.min(), t.max() + 1), ts_resolution_s=1.0).random(len(real),
                                                                            rng=np.random.default_rng(0)).samples
    page = write_traces_report(real, sim, tmp_path / "ugr.html").read_text()
    top_ip = uint32_to_ip(np.array([real["dstip"].value_counts().index[0]]))[0]
    assert _table(page, "Top-10 destination addresses")[0][1] == top_ip
    assert len(PNG_URI.findall(page)) >= 3


@pytest.mark.slow
def test_synth_report_states_the_figures_traces_evaluate_prints(flows_csv, tmp_path, capsys):
    """One code path (cli.trace_fidelity): the report of `traces synth --report` shows the headline
    `traces evaluate INPUT OUT` prints on the same two files (issue 24: 0.1167 vs 0.1221)."""
    out, rep = tmp_path / "synth.csv", tmp_path / "synth.html"
    assert main(["traces", "synth", str(flows_csv), "--epsilon", "2", "--time-window", *WINDOW_ARGS,
                 "--out", str(out), "--report", str(rep), "-q", *SMALL]) == 0
    capsys.readouterr()
    assert main(["traces", "evaluate", str(flows_csv), str(out), "--json"]) == 0
    head = json.loads(capsys.readouterr().out)["headline"]
    cards = _cards(rep.read_text())
    assert cards["pairwise TVD (lower is better)"] == f"{head['pairwise_tvd']:.4f}"
    assert cards["heavy-hitter error (lower is better)"] == f"{head['hh_error']:.4f}"
