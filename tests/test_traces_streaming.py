"""`traces synth` streams its input (issue 19): every release is a chunk sum over the records, so a file read
in small chunks gives the releases and output of the same records in one frame; a privacy unit spread over
chunks and files still moves every release by L2 ≤ 1; --max-memory fails clearly; Parquet folders work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pe_tabular.cli import main
from pe_tabular.privacy.release import ReleasePath
from simulators.network.flows import FlowSimulator
from simulators.network.io import SortedCsvSink, read_netflow_csv, write_netflow_csv
from simulators.network.pipeline import TraceSynthConfig, privacy_groups, synthesize_flows
from simulators.network.records import TraceRecords, unit_keys
from tests.streaming_util import capture_releases, parquet_folder

WINDOW = (1.6e9, 1.6e9 + 3600)


def _trace(n: int, seed: int) -> pd.DataFrame:
    """Flows with both directions of some connections and repeated clients (several records per unit)."""
    rng = np.random.default_rng(seed)
    one = FlowSimulator(WINDOW, ts_resolution_s=1.0).random(n, rng=rng).samples
    rev = one.rename(columns={"srcip": "dstip", "dstip": "srcip", "srcport": "dstport", "dstport": "srcport"})
    again = one.iloc[rng.choice(n, n // 3)]
    df = pd.concat([one, rev[one.columns].iloc[: n // 2], again], ignore_index=True)
    return df.iloc[rng.permutation(len(df))].reset_index(drop=True)  # a unit's records end up in many chunks


def _files(df: pd.DataFrame, folder: Path, parts: int = 2, row_group: int = 97) -> Path:
    """The records as a folder of Parquet files (raw table as read from a NetFlow CSV, small row groups)."""
    return parquet_folder(df, folder, parts, row_group)


def _cfg(unit: str = "record", epsilon: float = 2.0, **kw) -> TraceSynthConfig:
    return TraceSynthConfig(epsilon=epsilon, unit=unit, time_window=WINDOW, iterations=3, seed=0, voter="numpy", **kw)


@pytest.mark.parametrize("generator", ["mix", "simulator"])
def test_streamed_file_gives_the_in_memory_releases_and_output(tmp_path, monkeypatch, generator):
    """Record level, test-only noise switch: the same records in one frame, or as a CSV file and as a folder of
    Parquet files read in chunks of 128 records, give identical releases (every key, every value) and an
    identical output."""
    monkeypatch.setenv("PE_TABULAR_TEST_ONLY_NOISE_SEED", "11")
    csv = tmp_path / "flows.csv"
    write_netflow_csv(_trace(900, 1), csv)
    frame = read_netflow_csv(csv)
    folder = _files(pd.read_csv(csv), tmp_path / "parquet")
    seen = capture_releases(monkeypatch)
    cfg = _cfg(generator=generator, population=120)
    ref = synthesize_flows(frame, cfg)
    for src in (csv, folder):
        got = synthesize_flows(TraceRecords.scan(src, "record", chunk_rows=128), cfg)
        pd.testing.assert_frame_equal(got.records, ref.records)
        assert [r.what for r in got.ledger.releases] == [r.what for r in ref.ledger.releases]
    assert len(seen) >= 10 and any(k.startswith("vote_") for k in seen)
    for key, values in seen.items():
        assert len(values) == 3, key
        for v in values[1:]:
            np.testing.assert_array_equal(v, values[0], err_msg=key)


def test_streamed_output_sink_writes_the_in_memory_output(tmp_path, monkeypatch):
    """The chunked, bucket-sorted CSV writer gives the bytes of the whole frame written at once, also when the
    output spans several finishing chunks."""
    monkeypatch.setenv("PE_TABULAR_TEST_ONLY_NOISE_SEED", "12")
    monkeypatch.setattr("simulators.network.pipeline.OUTPUT_CHUNK", 256)
    frame = _trace(700, 2)
    cfg = _cfg(population=100)
    ref = synthesize_flows(frame, cfg)
    assert len(ref.records) > 3 * 256
    write_netflow_csv(ref.records, tmp_path / "ref.csv")
    sink = SortedCsvSink(tmp_path / "out.csv", WINDOW, max_rows=100, cells=64)
    got = synthesize_flows(TraceRecords.from_frame(frame, "record", chunk_rows=50), cfg, sink=sink)
    sink.close()
    assert got.records is None and got.n_records == len(ref.records)
    assert (tmp_path / "out.csv").read_bytes() == (tmp_path / "ref.csv").read_bytes()
    assert not sink.tmp.exists()


@pytest.mark.slow
@pytest.mark.parametrize("unit", ["flow", "host"])
def test_unit_spread_over_chunks_and_files_moves_every_release_by_at_most_one(tmp_path, monkeypatch, unit):
    """Unit-level DP over a streamed source: the exact counts of EVERY release of a whole run (count, trie,
    services, one-way, structure, pairs, votes) move by L2 ≤ 1 when one unit — its records spread over many
    32-record chunks of two Parquet files — is removed. Later releases are conditioned on D's noisy values
    (adaptive composition), as in the privacy proof."""
    df = _trace(400, 3)
    groups = privacy_groups(df, unit)
    sizes = np.bincount(np.unique(groups, return_inverse=True)[1].ravel())
    chunk = 32
    chunk_of = np.arange(len(df)) // chunk
    spread = [g for g in np.unique(groups) if np.unique(chunk_of[groups == g]).size >= 3]
    assert spread, "the test needs units whose records lie in several chunks"
    biggest = np.unique(groups)[np.argmax(sizes)]
    exact: dict[str, list[np.ndarray]] = {}
    released: dict[str, tuple[np.ndarray, object]] = {}
    orig = ReleasePath.release_recorded

    def capture(self, spec, counts):
        e = np.asarray(counts() if callable(counts) else counts, float)
        exact.setdefault(spec.key, []).append(e)
        if spec.key not in released:
            released[spec.key] = orig(self, spec, e)
        return released[spec.key]

    monkeypatch.setattr(ReleasePath, "release_recorded", capture)
    cfg = _cfg(unit, epsilon=30.0, population=60)  # a large ε: the structure release is made, not skipped
    runs = [df] + [df[groups != g].reset_index(drop=True) for g in (spread[0], biggest)]
    for i, d in enumerate(runs):
        synthesize_flows(TraceRecords.scan(_files(d, tmp_path / f"d{i}", row_group=chunk), unit, chunk_rows=chunk),
                         cfg)
    assert {"record_count", "prior_addr_08", "fit_structure", "fit_tree_pairs", "vote_001"} <= set(exact)
    for key, values in exact.items():
        assert len(values) == len(runs), key
        for v in values[1:]:
            assert np.linalg.norm(v - values[0]) <= 1 + 1e-9, key


def test_unit_keys_are_exact_and_match_the_groups():
    df = pd.DataFrame({"srcip": [1, 2, 1, 3, 2**32 - 1], "dstip": [2, 1, 2, 2, 0],
                       "srcport": [51000, 80, 51000, 52000, 65535], "dstport": [80, 51000, 80, 80, 0],
                       "proto": ["TCP"] * 4 + ["UDP"]})
    k = unit_keys(df, "flow")
    assert (k[0] == k[1]).all() and (k[0] == k[2]).all() and not (k[3] == k[0]).all()
    assert k.dtype == np.uint64 and k[4, 1] == np.uint64(((2**32 - 1) << 16) | 65535)  # 48 bits, no hash
    assert unit_keys(df, "host")[3, 0] == 3


def test_max_memory_fails_with_a_clear_exit_2(tmp_path, capsys):
    csv = tmp_path / "flows.csv"
    write_netflow_csv(_trace(300, 4), csv)
    rc = main(["traces", "synth", str(csv), "--epsilon", "1", "--time-window", str(WINDOW[0]), str(WINDOW[1]),
               "--out", str(tmp_path / "s.csv"), "--max-memory", "1M", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "--max-memory" in err and "--chunk-rows" in err
    assert not (tmp_path / "s.csv").exists()


def test_cli_reads_a_parquet_folder_and_reports_percent_progress(tmp_path, capsys):
    folder = _files(_trace(300, 5), tmp_path / "flows")
    out = tmp_path / "s.csv"
    rc = main(["traces", "synth", str(folder), "--epsilon", "2", "--unit", "host", "--time-window", str(WINDOW[0]),
               str(WINDOW[1]), "--out", str(out), "--iterations", "2", "--population", "60", "--chunk-rows", "64",
               "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    syn = pd.read_csv(out)
    assert len(syn) == summary["records"] and syn["ts"].is_monotonic_increasing
    assert json.loads(Path(summary["privacy_report"]).read_text())["epsilon"] <= 2.0 + 1e-9


def test_scan_refuses_a_file_without_netflow_columns(tmp_path):
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="missing columns"):
        TraceRecords.scan(tmp_path / "x.parquet")


def test_progress_events_carry_fractions_only(tmp_path):
    events: list[dict] = []
    df = _trace(300, 6)
    synthesize_flows(TraceRecords.from_frame(df, "record", chunk_rows=64, on_event=events.append),
                     _cfg(population=60), on_event=events.append)
    scans = [e for e in events if e["type"] == "scan_progress"]
    assert scans and all(set(e) == {"type", "desc", "fraction"} and 0 <= e["fraction"] <= 1 for e in scans)
    votes = [e for e in events if e["type"] == "vote_progress"]
    assert votes and all(set(e) == {"type", "iteration", "fraction"} for e in votes)


@pytest.mark.slow
@pytest.mark.parametrize("unit", ["record", "flow"])
def test_a_two_worker_dask_cluster_gives_the_releases_and_output_of_one_process(client, tmp_path, monkeypatch, unit):
    """`traces synth --dask-local/--dask-scheduler`: the same Parquet folder, its parts read and summed on a
    2-process LocalCluster (votes there too), gives every release and the output of the one-process run under
    the test-only noise switch; with flow units spread over both files, the per-unit table is merged on the
    workers and still matches."""
    monkeypatch.setenv("PE_TABULAR_TEST_ONLY_NOISE_SEED", "13")
    folder = _files(_trace(600, 7), tmp_path / "flows", parts=2, row_group=64)
    seen = capture_releases(monkeypatch)
    cfg = _cfg(unit, population=80)
    ref = synthesize_flows(TraceRecords.scan(folder, unit, chunk_rows=64), cfg)
    dist = TraceRecords.scan(folder, unit, chunk_rows=64).on_dask(scheduler=client.scheduler.address)
    try:
        assert dist.on_cluster
        got = synthesize_flows(dist, cfg)
    finally:
        dist.close()
    pd.testing.assert_frame_equal(got.records, ref.records)
    assert any(k.startswith("vote_") for k in seen) and "record_count" in seen
    for key, values in seen.items():
        assert len(values) == 2, key
        np.testing.assert_array_equal(values[1], values[0], err_msg=key)
