"""`pe-tabular traces` smoke tests on small inputs (exit codes, outputs, privacy report, resume)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pe_tabular.cli import main
from pe_tabular.privacy.accountant import gdp_epsilon
from simulators.network.flows import FlowSimulator, flow_validity
from simulators.network.io import read_netflow_csv, read_pcap, write_netflow_csv

WINDOW = ["2016-04-11T00:00Z", "2016-04-11T01:00Z"]
T0 = 1460332800.0
SMALL = ["--iterations", "3", "--population", "60", "--seed", "0", "--voter", "numpy"]


@pytest.fixture(scope="module")
def flows_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("traces") / "flows.csv"
    df = FlowSimulator((T0, T0 + 3600), ts_resolution_s=1.0).random(400, rng=np.random.default_rng(0)).samples
    write_netflow_csv(df, path)
    return path


def test_synth_csv_writes_valid_flows_and_privacy_report(flows_csv, tmp_path, capsys):
    out = tmp_path / "synth.csv"
    rc = main(["traces", "synth", str(flows_csv), "--epsilon", "2", "--unit", "flow", "--time-window", *WINDOW,
               "--out", str(out), "--json", "-q", *SMALL])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    syn = read_netflow_csv(out)
    assert len(syn) >= 50 and flow_validity(syn).all()  # size: a noisy count (privacy hardening #1)
    rep = json.loads((tmp_path / "synth.privacy.json").read_text())
    assert any(r["what"].startswith("record count") for r in rep["releases"])
    assert rep["epsilon"] <= 2.0 + 1e-6 and rep["delta"] == 1e-5
    assert rep["public_inputs"]["unit"] == "flow" and summary["epsilon"] == pytest.approx(rep["epsilon"])
    assert gdp_epsilon(rep["mu"], 1e-5) == pytest.approx(rep["epsilon"])


def test_evaluate_json_and_text(flows_csv, tmp_path, capsys):
    rc = main(["traces", "evaluate", str(flows_csv), str(flows_csv), "--json"])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["headline"]["pairwise_tvd"] == 0 and rep["headline"]["valid_rate"] == 1
    assert main(["traces", "evaluate", str(flows_csv), str(flows_csv)]) == 0
    assert "pairwise TVD" in capsys.readouterr().out


@pytest.mark.extra("traces")
def test_synth_from_pcap_to_pcap_packet_level(tmp_path):
    from conftest import shared_path

    cap = shared_path("data", "net", "ndpi", "1kxun.pcap")
    pk = read_pcap(cap)
    t0, t1 = pk["ts"].min() / 1e6, pk["ts"].max() / 1e6 + 1
    out = tmp_path / "pk.pcap"
    rc = main(["traces", "synth", str(cap), "--level", "packet", "--epsilon", "4", "--unit", "flow",
               "--time-window", str(np.floor(t0)), str(np.ceil(t1)), "--out", str(out), "-q", *SMALL])
    assert rc == 0
    back = read_pcap(out)
    assert len(back) >= 50  # a noisy count of packets (privacy hardening #1)
    assert (back["ts"] / 1e6 >= np.floor(t0)).all() and (back["ts"] / 1e6 <= np.ceil(t1)).all()


def test_usage_errors_exit_2(flows_csv, tmp_path, capsys):
    base = ["traces", "synth", str(flows_csv), "--epsilon", "1", "--out", str(tmp_path / "o.csv")]
    assert main(base) == 2
    assert "--time-window" in capsys.readouterr().err
    assert main(base[:-1] + [str(tmp_path / "o.txt"), "--time-window", *WINDOW]) == 2
    assert main(["traces", "synth", str(tmp_path / "missing.csv"), "--epsilon", "1", "--out",
                 str(tmp_path / "o.csv"), "--time-window", *WINDOW]) == 2
    assert main(base + ["--time-window", *WINDOW, "--resume"]) == 2


def test_resume_reuses_released_histograms(flows_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("PE_TABULAR_TEST_ONLY_NOISE_SEED", "7")
    ck = tmp_path / "ck"
    args = ["traces", "synth", str(flows_csv), "--epsilon", "2", "--time-window", *WINDOW, "-q", *SMALL,
            "--checkpoint", str(ck)]
    assert main(args + ["--out", str(tmp_path / "a.csv")]) == 0
    first = json.loads((tmp_path / "a.privacy.json").read_text())
    # resuming a finished run re-votes nothing and reports the same budget
    assert main(args + ["--out", str(tmp_path / "b.csv"), "--resume"]) == 0
    second = json.loads((tmp_path / "b.privacy.json").read_text())
    assert second["n_releases"] == first["n_releases"] and second["epsilon"] == pytest.approx(first["epsilon"])
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert a.equals(b)
    # a second run into the same checkpoint without --resume is refused
    assert main(args + ["--out", str(tmp_path / "c.csv")]) == 2


def test_simulate_command(tmp_path):
    out = tmp_path / "sim.csv"
    assert main(["traces", "simulate", "--n", "300", "--time-window", *WINDOW, "--out", str(out), "-q"]) == 0
    assert flow_validity(read_netflow_csv(out)).all()


def test_time_window_that_misses_the_trace_is_an_error_and_a_partial_one_warns(flows_csv, tmp_path, capsys):
    """Reliability: a --time-window that does not cover the trace never passes silently, and the message
    says no exact count (rule 7)."""
    from simulators.network.pipeline import TimeWindowWarning, TraceSynthConfig, synthesize_flows

    base = ["traces", "synth", str(flows_csv), "--epsilon", "1", "--out", str(tmp_path / "o.csv"), "-q", *SMALL]
    assert main(base + ["--time-window", "2020-01-01T00:00Z", "2020-01-01T01:00Z"]) == 2
    err = capsys.readouterr().err
    assert "--time-window" in err and "no record" in err
    half = (T0, T0 + 1800)  # the fixture spans one hour
    real = read_netflow_csv(flows_csv)
    with pytest.warns(TimeWindowWarning, match="some records lie outside --time-window") as rec:
        synthesize_flows(real, TraceSynthConfig(epsilon=1, time_window=half, iterations=2, population=40, seed=0))
    assert not any(ch.isdigit() for ch in str(rec[0].message))


def test_synth_reads_parquet_input(flows_csv, tmp_path):
    """Reliability: a Parquet flow file goes through `traces synth` like its CSV."""
    src = tmp_path / "flows.parquet"
    pd.read_csv(flows_csv).to_parquet(src)
    out = tmp_path / "synth.csv"
    assert main(["traces", "synth", str(src), "--epsilon", "2", "--time-window", *WINDOW, "--out", str(out), "-q",
                 *SMALL]) == 0
    assert flow_validity(read_netflow_csv(out)).all()
