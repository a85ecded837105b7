"""The chunked source on a 2-process Dask LocalCluster (pe_tabular.dask_source): the same releases as one
process for the same (test-only) noise, with units spread over partitions and Poisson subsampling; only
float histograms reach the coordinator; votes on the workers equal in-process votes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")
dd = pytest.importorskip("dask.dataframe")

import tests.test_source as ts  # noqa: E402
import tests.toy as toy  # noqa: E402
from pe_tabular.dask_source import DaskSource  # noqa: E402
from pe_tabular.privacy import Ledger  # noqa: E402
from pe_tabular.privacy.noise import TEST_NOISE_ENV, noise_source  # noqa: E402
from pe_tabular.privacy.release import ReleasePath, Spec  # noqa: E402
from pe_tabular.source import ChunkedSource  # noqa: E402
from pe_tabular.voting.streaming import SourceVoter  # noqa: E402

cloudpickle.register_pickle_by_value(ts)  # the workers cannot import the tests package
cloudpickle.register_pickle_by_value(toy)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(0)
    parts = [ts.frame(rng, n) for n in ts.SIZES]
    folder = tmp_path_factory.mktemp("dask-scan")
    ts.write(parts, folder)
    return parts, folder


def _release(src, rate):
    path = ReleasePath(Ledger(1e-5), noise_source())  # PE_TABULAR_TEST_ONLY_NOISE_SEED, set by the test
    spec = Spec("m_ab", "marginal a×b", sigma=1.5, stream=(0, 9), sampling_rate=rate)
    return path.release_subsampled(spec, lambda s: src.sum(ts.hist, columns=["a", "b"], sample=s))


@pytest.mark.parametrize("unit, rate", [(None, 1.0), (None, 0.4), ("user", 1.0), ("user", 0.3)])
def test_two_workers_give_the_releases_of_one_process(client, data, unit, rate, monkeypatch):
    monkeypatch.setenv(TEST_NOISE_ENV, "21")
    parts, folder = data
    one = ChunkedSource.scan(folder, unit=unit, chunk_rows=64, csv_block_bytes=2048)
    want = _release(one, rate)
    np.testing.assert_array_equal(_release(ChunkedSource.from_frames(parts, chunk_rows=50, unit=unit), rate), want)
    np.testing.assert_array_equal(_release(DaskSource.from_source(client, one), rate), want)  # workers read files
    frames = DaskSource.from_source(client, ChunkedSource.from_frames(parts, chunk_rows=33, unit=unit))
    np.testing.assert_array_equal(_release(frames, rate), want)  # frames sent once each
    if rate == 1.0 or unit is not None:  # a Dask DataFrame repartitions rows: row-level samples differ, units' not
        ddf = dd.from_pandas(pd.concat(parts, ignore_index=True), npartitions=3)
        np.testing.assert_array_equal(_release(DaskSource.from_dask(client, ddf, unit=unit), rate), want)


def test_any_scheduler_address_works_and_the_source_owns_its_client(client, data):
    one = ChunkedSource.scan(data[1], unit="user", chunk_rows=64)
    with DaskSource.remote(client.scheduler.address, one) as src:
        got = src.sum(ts.hist, columns=["a", "b"])
        own = src._owns[0]
    np.testing.assert_allclose(got, one.sum(ts.hist, columns=["a", "b"]), rtol=0, atol=1e-12)
    assert own.status == "closed" and client.status == "running"  # closes its own client, not the caller's


def test_a_unit_spread_over_partitions_counts_once(client, data, tmp_path):
    parts = [p.copy() for p in data[0]]
    for i, p in enumerate(parts):  # unit 10 000 has rows in every file, all in bin 0
        parts[i] = pd.concat([p, pd.DataFrame({"a": 0, "b": 0, "x": 1.0, "y": 1.0, "user": 10_000, "note": "p"},
                                              index=range(30))]).reset_index(drop=True)
    ts.write(parts, tmp_path)
    before = DaskSource.from_source(client, ChunkedSource.scan(data[1], unit="user", chunk_rows=64))
    after = DaskSource.from_source(client, ChunkedSource.scan(tmp_path, unit="user", chunk_rows=64))
    diff = after.sum(ts.hist, columns=["a", "b"]) - before.sum(ts.hist, columns=["a", "b"])
    assert np.linalg.norm(diff) <= 1 + 1e-9 and diff[0] == pytest.approx(1.0)


def test_only_float_histograms_reach_the_coordinator(client, data, monkeypatch):
    seen = []
    real = distributed.Future.result

    def watch(self, *a, **kw):
        out = real(self, *a, **kw)
        seen.append(out)
        return out
    src = DaskSource.from_source(client, ChunkedSource.scan(data[1], unit="user", chunk_rows=64))
    monkeypatch.setattr(distributed.Future, "result", watch)
    src.sum(ts.hist, columns=["a", "b"])
    assert seen and all(x is None or (isinstance(x, np.ndarray) and x.dtype == np.float64 and x.shape == (2, 50))
                        for x in seen)


def test_votes_on_the_workers_equal_in_process_votes(client, data):
    parts, folder = data
    cand = np.random.default_rng(6).uniform(0, 100, (70, 2)).astype(np.float32)
    one = ChunkedSource.scan(folder, unit="user", chunk_rows=64).map_codes(ts.XY().encode, columns=["x", "y"])
    want = SourceVoter(one, voter="numba")(None, cand, ts.XY.metric, 2, None, None, None, None)
    coded = DaskSource.from_source(client, ChunkedSource.scan(folder, unit="user", chunk_rows=64)).map_codes(
        ts.XY().encode, columns=["x", "y"])
    got = SourceVoter(coded, voter="numba")(None, cand, ts.XY.metric, 2, None, None, None, None)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    one.close()


def test_spread_codes_vote_as_in_one_process(client, data):
    """``DaskSource.spread`` (the tables wing's ``--dask-local``): codes this process holds, cut chunk by chunk
    into one slice per worker; each slice keeps its rows' unit digests and offsets, so the per-unit weights and
    the votes are those of one process, and both workers hold a share."""
    parts, folder = data
    cand = np.random.default_rng(7).uniform(0, 100, (50, 2)).astype(np.float32)
    events: list[dict] = []
    one = ChunkedSource.scan(folder, unit="user", chunk_rows=64, on_event=events.append).map_codes(
        ts.XY().encode, columns=["x", "y"])
    want = SourceVoter(one, voter="numba")(None, cand, ts.XY.metric, 3, None, None, None, None)
    events.clear()
    with DaskSource.spread(client, one) as spread:
        sent = [e["fraction"] for e in events if e["desc"].startswith("sending private codes")]
        assert sent == pytest.approx([i / 10 for i in range(1, 11)])  # fixed public steps, never a row count
        got = SourceVoter(spread, voter="numba")(None, cand, ts.XY.metric, 3, None, None, None, None)
        holders = {w for ws in client.who_has(spread.parts).values() for w in ws}
        assert len(spread.parts) == len(holders) == 2
    np.testing.assert_allclose(got, want, rtol=1e-12)
    one.close()
