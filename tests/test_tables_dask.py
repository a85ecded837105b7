"""`pe-tabular synth --dask-local/--dask-scheduler` (issue 25): the tables votes run on Dask workers through the
engine's one distributed path (``DaskSource`` + ``SourceVoter``), with the releases and output of one process,
and streamed: the coordinator reads the private code cache one chunk at a time and never holds the whole table
(it used to concatenate every row's codes into one array before the first vote)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from pe_tabular.cli import main
from pe_tabular.tables.datasets import adult_schema, load_adult
from pe_tabular.tables.schema import Column, Schema
from pe_tabular.tables.synthesizer import PESynthesizer
from tests.streaming_util import capture_releases

pytestmark = pytest.mark.extra("dask")
ROWS = 2717  # odd, so a leaked count is recognisable
SMALL = ["--iterations", "2", "--population", "120", "--k", "3", "--voter", "numpy", "--samples", "80"]


def test_a_two_worker_cluster_gives_the_releases_and_output_of_one_process(client, tmp_path, monkeypatch, capsys):
    """Same seed, test-only noise: the CLI with --dask-scheduler (a 2-process LocalCluster) writes the bytes the
    one-process run writes, and every release (count, labels, resolution, marginals, structure, pairs, votes) is
    identical; k = 3 weighs each vote 1/√3, so the per-worker sums really are float sums in another order."""
    monkeypatch.setenv("PE_TABULAR_TEST_ONLY_NOISE_SEED", "23")
    load_adult("train").head(ROWS).to_csv(tmp_path / "adult.csv", index=False)
    adult_schema().save(tmp_path / "s.json")
    seen = capture_releases(monkeypatch)
    outs = []
    for i, extra in enumerate([[], ["--dask-scheduler", client.scheduler.address]]):
        out = tmp_path / f"o{i}.csv"
        rc = main(["synth", str(tmp_path / "adult.csv"), "--schema", str(tmp_path / "s.json"), "--out", str(out),
                   "--chunk-rows", "500", "--seed", "3", "--epsilon", "3", *SMALL, *extra, "-q"])
        assert rc == 0, capsys.readouterr().err
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert any(k.startswith("vote_") for k in seen) and "count" in seen and any(k.startswith("pair_") for k in seen)
    for key, values in seen.items():
        assert len(values) == 2, key
        np.testing.assert_array_equal(values[1], values[0], err_msg=key)
    assert client.status == "running"  # the CLI closed its own client, not the cluster it was pointed at


def _wide(n: int, rng: np.random.Generator) -> pd.DataFrame:
    cols = {f"c{j}": rng.integers(0, 10, n) for j in range(WIDE)}
    return pd.DataFrame({**cols, "y": rng.choice(["a", "b"], n)})


WIDE = 40
WIDE_SCHEMA = Schema((*(Column(f"c{j}", "integer", lower=0, upper=9) for j in range(WIDE)),
                      Column("y", "categorical", categories=("a", "b"))), label="y")


def _dask_fit_peak(client, frame: pd.DataFrame) -> tuple[int, list[str]]:
    """The coordinator's peak of traced memory during a Dask fit, and the workers holding the spread codes."""
    from pe_tabular.dask_source import DaskVoting

    votes = DaskVoting(client)
    syn = PESynthesizer(WIDE_SCHEMA, 4.0, 1e-5, iterations=1, population=60, k=2, voter="numpy", seed=1,
                        min_vote_snr=0.0, pair_share=0.0, structure_share=0.0, resolution_share=0.0, vote_fn=votes)
    tracemalloc.start()
    try:
        syn.fit(frame, chunk_rows=500)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert votes.source is not None
    holders = sorted({w for ws in client.who_has(votes.source.parts).values() for w in ws})
    votes.close()
    assert votes.source is None
    return peak, holders


def test_the_coordinator_streams_the_codes_memory_o_chunk_not_o_rows(client):
    """Ten times the rows must not raise the coordinator's peak by anything like the rows' codes (the old
    sharded voter concatenated them: 40 int64 columns, 320 bytes a row, ~5.8 MB here); both workers get a share."""
    rng = np.random.default_rng(4)
    small, large = _wide(2000, rng), _wide(20000, rng)
    _dask_fit_peak(client, small)  # warm-up: imports and first-use caches are not the data's
    peak_small, _ = _dask_fit_peak(client, small)
    peak_large, holders = _dask_fit_peak(client, large)
    codes_bytes = (len(large) - len(small)) * WIDE * 8
    assert peak_large - peak_small < codes_bytes / 4, (peak_small, peak_large)
    assert len(holders) == 2  # spread over both workers, not one part on one worker


def test_connect_takes_exactly_one_place_to_run():
    from pe_tabular.dask_source import DaskVoting

    for kw in ({}, {"scheduler": "tcp://127.0.0.1:1", "local": 2}):
        with pytest.raises(ValueError, match="exactly one of --dask-scheduler ADDRESS or --dask-local N"):
            DaskVoting.connect(**kw)
    with pytest.raises(ValueError, match="--dask-local must be >= 1"):
        DaskVoting.connect(local=0)
