"""Streamed private data (pe_tabular.source, units): in-memory, CSV, CSV.gz and Parquet chunks give the
same sums and the same releases; a privacy unit spread over chunks and files moves a release by ≤ 1;
only the needed columns are parsed; errors and progress carry no private value or count; the memory guard
stops a pass; votes chunk by chunk equal in-memory votes; a PE run on a streamed source equals the
in-memory run, with and without Poisson subsampling."""

from __future__ import annotations

import io
import os
import sys

import numpy as np
import pandas as pd
import pytest

from pe_tabular.errors import MemoryLimitExceeded, SourceError, UnitTypeError
from pe_tabular.evolution import Evolution, EvolutionConfig
from pe_tabular.memory import MemoryGuard, parse_memory
from pe_tabular.privacy import Ledger, NoiseSource, schedules
from pe_tabular.privacy.release import ReleasePath, Spec
from pe_tabular.privacy.sampling import PoissonSample
from pe_tabular.progress import ProgressBars
from pe_tabular.source import (
    Accumulator,
    ChunkedSource,
    Codes,
    release_sum,
    weighted_histogram,
)
from pe_tabular.units import UnitTable
from pe_tabular.voting import numba_kernel
from pe_tabular.voting.histogram import vote_histogram
from pe_tabular.voting.streaming import SourceVoter
from tests.toy import PointBackend, PointEncoder

SIZES = (700, 0, 450, 600)  # an empty part too


def frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame({"a": rng.integers(0, 10, n), "b": rng.integers(0, 5, n),
                         "x": rng.normal(50, 20, n).round(3), "y": rng.normal(50, 20, n).round(3),
                         "user": rng.integers(0, 150, n), "note": rng.choice(["p", "q"], n)})


def write(parts: list[pd.DataFrame], folder) -> None:
    """Part 0 Parquet (small row groups), 1 Parquet, 2 CSV, 3 gzip'd CSV: one data set, four formats."""
    os.makedirs(folder, exist_ok=True)
    parts[0].to_parquet(folder / "p0.parquet", row_group_size=128)
    parts[1].to_parquet(folder / "p1.parquet")
    parts[2].to_csv(folder / "p2.csv", index=False)
    parts[3].to_csv(folder / "p3.csv.gz", index=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(0)
    parts = [frame(rng, n) for n in SIZES]
    folder = tmp_path_factory.mktemp("scan")
    write(parts, folder)
    return parts, folder


def hist(chunk) -> np.ndarray:
    return weighted_histogram(chunk.frame["a"].to_numpy() * 5 + chunk.frame["b"].to_numpy(), chunk, 50)


def sources(data, **kw):
    parts, folder = data
    return (ChunkedSource.from_frames(parts, chunk_rows=97, **kw),
            ChunkedSource.scan(folder, chunk_rows=64, csv_block_bytes=2048, **kw))


def test_record_level_sums_are_exact_counts(data):
    mem, scan = sources(data)
    full = pd.concat(data[0])
    want = np.bincount(full["a"] * 5 + full["b"], minlength=50).astype(float)
    np.testing.assert_array_equal(mem.sum(hist, columns=["a", "b"]), want)
    np.testing.assert_array_equal(scan.sum(hist, columns=["a", "b"]), want)


@pytest.mark.parametrize("unit, rate", [(None, 0.3), ("user", 1.0), ("user", 0.4), (["user", "note"], 0.5)])
def test_in_memory_and_streamed_sums_agree(data, unit, rate):
    mem, scan = sources(data, unit=unit)
    sample = PoissonSample(rate, (3, 1, 4)) if rate < 1 else None
    a = mem.sum(hist, columns=["a", "b"], sample=sample)
    b = scan.sum(hist, columns=["a", "b"], sample=sample)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    if unit is not None:  # every unit weighs 1 in total (or 0 when left out of the sample)
        n_units = pd.concat(data[0]).groupby(unit).ngroups
        assert a.sum() <= n_units + 1e-9 and (rate < 1 or a.sum() == pytest.approx(n_units))


def test_releases_are_identical_for_the_same_test_noise(data):
    outs = []
    for src in sources(data, unit="user"):
        path = ReleasePath(Ledger(1e-5), NoiseSource(test_seed=11))
        spec = Spec("m_ab", "marginal a×b", sigma=2.0, stream=(0, 5), sampling_rate=0.5)
        outs.append(path.release_subsampled(spec, lambda s, src=src: src.sum(hist, columns=["a", "b"], sample=s)))
        assert path.ledger.releases[0].sampling_rate == 0.5
    np.testing.assert_array_equal(outs[0], outs[1])


def test_release_sum_is_the_release_path_and_an_empty_source_releases_noise(tmp_path):
    pd.DataFrame({"a": pd.Series([], dtype="int64"), "b": pd.Series([], dtype="int64")}).to_parquet(
        tmp_path / "empty.parquet")
    path = ReleasePath(Ledger(1e-5), NoiseSource(test_seed=2))
    noisy = release_sum(path, Spec("m", "marginal a×b", 1.0), ChunkedSource.scan(tmp_path), hist, 50, ["a", "b"])
    assert noisy.shape == (50,) and len(path.ledger.releases) == 1 and np.std(noisy) > 0.5


def test_a_unit_spread_over_chunks_and_files_moves_the_sum_by_at_most_one(data, tmp_path):
    """Unit 'X' has rows in every file and many chunks, all in one bin: weighting by 1/n_u keeps its total
    at 1; weighting per chunk (or ignoring the unit) would give it one vote per chunk (per row)."""
    parts = [p.copy() for p in data[0]]
    with_x = []
    for i, p in enumerate(parts):
        x = pd.DataFrame({"a": 0, "b": 0, "x": 1.0, "y": 1.0, "user": 10_000, "note": "p"}, index=range(40 + 10 * i))
        with_x.append(pd.concat([p, x]).sample(frac=1, random_state=i).reset_index(drop=True))  # scattered rows
    write(with_x, tmp_path)
    for unit in ("user", ["user", "note"]):
        before = ChunkedSource.scan(data[1], unit=unit, chunk_rows=64, csv_block_bytes=2048)
        after = ChunkedSource.scan(tmp_path, unit=unit, chunk_rows=64, csv_block_bytes=2048)
        diff = after.sum(hist, columns=["a", "b"]) - before.sum(hist, columns=["a", "b"])
        assert np.linalg.norm(diff) <= 1 + 1e-9
        assert diff[0] == pytest.approx(1.0)
    # the rows of X really were spread: the record-level sum counts each of them
    rec = ChunkedSource.scan(tmp_path, chunk_rows=64).sum(hist, columns=["a", "b"]) - \
        ChunkedSource.scan(data[1], chunk_rows=64).sum(hist, columns=["a", "b"])
    assert rec[0] == sum(40 + 10 * i for i in range(4))


def test_a_unit_column_of_mixed_types_is_refused(tmp_path):
    """The same unit read as an integer in one file and as text in another would get two digests (and two
    weights of 1): refused."""
    pd.DataFrame({"a": [1, 2], "b": [0, 0], "user": [7, 8]}).to_parquet(tmp_path / "p0.parquet")
    pd.DataFrame({"a": [1, 2], "b": [0, 0], "user": ["7", "x"]}).to_parquet(tmp_path / "p1.parquet")
    with pytest.raises(UnitTypeError, match="different types"):
        ChunkedSource.scan(tmp_path, unit="user").sum(hist, columns=["a", "b"])


def test_digest_collisions_in_the_high_word_keep_units_apart():
    """Two units sharing the first 64-bit digest word stay two units (the exact path), and a unit the
    counting pass never saw is refused rather than weighted by a guess."""
    d = np.array([[5, 1], [5, 2], [5, 1], [3, 0], [5, 2], [5, 2]], dtype=np.uint64)
    table = UnitTable.from_digests(d, "text:O")
    assert table.counts.tolist() == [1, 2, 3] and table.digests[:, 0].tolist() == [3, 5, 5]
    w = table.weights().lookup(d, "text:O")
    np.testing.assert_allclose(w, [1 / 2, 1 / 3, 1 / 2, 1, 1 / 3, 1 / 3])
    merged = UnitTable.merge([table, UnitTable.from_digests(d[:2], "text:O")])
    assert merged.counts.tolist() == [1, 3, 4]
    with pytest.raises(RuntimeError, match="changed between passes"):
        table.weights().lookup(np.array([[5, 9]], dtype=np.uint64), "text:O")
    with pytest.raises(UnitTypeError):
        table.weights().lookup(d, "int")


def test_unit_lookup_with_shared_high_words_is_exact_and_vectorised(monkeypatch):
    """Derived units (a flow's 5-tuple) share their first digest word by the thousand (every flow of one
    server endpoint): the lookup stays exact (same weights as a dict of the 128-bit keys) and costs a
    fixed number of array searches per chunk, not one per row — the per-row exact search made a
    flow-level run cost 2× a record-level one (issue 28)."""
    rng = np.random.default_rng(3)
    d = np.stack([rng.integers(0, 40, 5000), rng.integers(0, 2**63, 5000)], axis=1).astype(np.uint64)
    d = d[rng.integers(0, len(d), 20000)]  # 20,000 rows of ≤ 5,000 units, ≤ 40 distinct high words
    table = UnitTable.from_digests(d, "text:O")
    exact = {(int(a), int(b)): 1 / int(c) for (a, b), c in zip(table.digests, table.counts)}
    weights = table.weights()
    np.testing.assert_array_equal(weights.lookup(d, "text:O"), [exact[int(a), int(b)] for a, b in d])
    calls = []
    real = np.searchsorted
    monkeypatch.setattr(np, "searchsorted", lambda *a, **k: calls.append(1) or real(*a, **k))
    for rows in (10, 20000):
        calls.clear()
        weights.lookup(d[:rows], "text:O")
        assert len(calls) <= 4, rows
    with pytest.raises(RuntimeError, match="changed between passes"):
        weights.lookup(np.array([[d[0, 0], 12345]], dtype=np.uint64), "text:O")


def test_only_the_requested_columns_are_parsed_and_errors_quote_no_value(tmp_path):
    n = 3000
    secret = np.arange(n).astype(object)
    secret[2500] = "SSN-123-45-6789"  # far past the first block: its type was inferred as an integer
    pd.DataFrame({"a": np.arange(n) % 10, "b": 0, "secret": secret}).to_csv(tmp_path / "t.csv", index=False)
    src = ChunkedSource.scan(tmp_path / "t.csv", csv_block_bytes=1024)
    assert src.sum(hist, columns=["a", "b"]).sum() == n  # the bad column is never parsed
    with pytest.raises(SourceError) as e:
        src.sum(lambda c: np.zeros(1), columns=["secret"])
    assert "secret" in str(e.value) and "SSN" not in str(e.value) and "6789" not in str(e.value)
    with pytest.raises(SourceError, match="not all found|not found"):
        src.sum(hist, columns=["a", "nope"])


def test_progress_reports_fractions_never_counts(data):
    events = []
    parts, folder = data
    src = ChunkedSource.scan(folder, chunk_rows=64, csv_block_bytes=2048, on_event=events.append)
    src.sum(hist, columns=["a", "b"], desc="marginals")
    fr = [e["fraction"] for e in events]
    assert all(set(e) == {"type", "desc", "fraction"} and e["type"] == "scan_progress" for e in events)
    assert fr == sorted(fr) and 0 < fr[0] and fr[-1] == pytest.approx(1.0)
    err = io.StringIO()
    old, sys.stderr = sys.stderr, err
    try:
        bars = ProgressBars(enabled=True, tty=True)  # the terminal's bars
        for e in events:
            bars(e)
        assert bars.scan is not None and bars.scan.desc == "marginals"
        assert (bars.scan.n, bars.scan.total) == (100, 100)  # a percent bar
        bars.close()
    finally:
        sys.stderr = old
    text = err.getvalue()
    assert str(sum(SIZES)) not in text  # the number of private records never shows


def _events(n: int, unit: str | None = None) -> tuple[list[dict], list[str]]:
    """The scan and vote events and the log lines of a unit-level pass and a vote over n rows."""
    import logging

    events: list[dict] = []
    f = pd.DataFrame({"a": np.arange(n) % 5, "b": np.arange(n) % 3, "u": np.arange(n)})
    src = ChunkedSource.from_frames(f, chunk_rows=64, unit=unit, on_event=events.append)
    handler = logging.Handler()
    lines: list[str] = []
    handler.emit = lambda r: lines.append(r.getMessage())  # type: ignore[method-assign]
    logging.getLogger("pe_tabular").addHandler(handler)
    old = logging.getLogger("pe_tabular").level
    logging.getLogger("pe_tabular").setLevel(logging.DEBUG)
    try:
        src.sum(hist, columns=["a", "b"], desc="marginals")
    finally:
        logging.getLogger("pe_tabular").removeHandler(handler)
        logging.getLogger("pe_tabular").setLevel(old)
    backend = PointBackend()
    evo = Evolution(backend, PointEncoder(), EvolutionConfig.build(1, 8, k=1), schedules.uniform(1.0, 1),
                    Ledger(1e-5), NoiseSource(), np.random.default_rng(0), events.append)
    private = np.random.default_rng(1).uniform(0, 100, (n, 2)).astype(np.float32)
    evo._vote(private, backend.random(8, rng=np.random.default_rng(2)), 1, None, None)
    return events, lines


def test_progress_and_logs_are_the_same_for_neighbouring_inputs():
    """Issue 23, finding 8: per-chunk fractions (64/n, 128/n, …) and per-block vote fractions told n to about
    1 %, and the unit table's size in MB (24 bytes per unit) told the unit count. Progress now comes in fixed
    public steps and the log holds no size: D and D minus one row give the same events and lines."""
    for unit in (None, "u"):
        d, d_minus = _events(5000, unit), _events(4999, unit)
        assert d == d_minus
        assert [e["fraction"] for e in d[0] if e.get("desc") == "marginals"] == [k / 10 for k in range(1, 11)]
    assert not any("MB" in line for line in _events(50_000, "u")[1])


def test_memory_guard_stops_a_pass_with_a_message_naming_the_flag(data):
    src = ChunkedSource.scan(data[1], guard=MemoryGuard(limit=1 << 20), chunk_rows=64)
    with pytest.raises(MemoryLimitExceeded, match="--max-memory") as e:
        src.sum(hist, columns=["a", "b"])
    assert "chunk" in str(e.value) and "Dask" in str(e.value)
    ChunkedSource.scan(data[1], guard=MemoryGuard.from_flag(None)).sum(hist, columns=["a", "b"])  # off: no error
    assert parse_memory("4G") == 4 << 30 and parse_memory("512MB") == 512 << 20 and parse_memory("1.5GiB") == 3 << 29
    for bad in ("lots", "-1G", "0"):
        with pytest.raises(ValueError, match="--max-memory"):
            parse_memory(bad)


def test_poisson_samples_do_not_depend_on_chunking_and_are_secret():
    s = PoissonSample(0.3, (1, 2))
    whole = s.row_mask(4, 0, 1000)
    assert np.array_equal(whole, np.concatenate([s.row_mask(4, 0, 333), s.row_mask(4, 333, 667)]))
    assert abs(whole.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 1000)
    assert not np.array_equal(whole, s.row_mask(5, 0, 1000))  # another partition: other draws
    secure = NoiseSource()
    assert PoissonSample.secret(0.3, secure, (1, 0)).seed != PoissonSample.secret(0.3, secure, (1, 0)).seed
    test = NoiseSource(test_seed=5)
    assert PoissonSample.secret(0.3, test, (1, 0)) == PoissonSample.secret(0.3, test, (1, 0))
    with pytest.raises(ValueError, match="sampling-rate"):
        PoissonSample(0.0, (1,))


def test_a_sampled_unit_is_in_or_out_as_a_whole(data):
    _, scan = sources(data, unit="user")
    per_unit = scan.sum(lambda c: weighted_histogram(c.frame["user"].to_numpy(), c, 150), columns=["user"],
                        sample=PoissonSample(0.5, (9,)))
    present = per_unit[per_unit > 0]
    np.testing.assert_allclose(present, 1.0)  # all of a unit's rows (weight 1/n_u each) or none
    assert 0.3 < present.size / 150 < 0.7


def test_compensated_sums_do_not_depend_on_order():
    rng = np.random.default_rng(3)
    arrays = [rng.normal(0, 1, 20) * 10.0 ** rng.integers(-8, 8) for _ in range(200)]
    totals = []
    for seed in range(4):
        acc = Accumulator()
        for i in np.random.default_rng(seed).permutation(len(arrays)):
            acc.add(arrays[i])
        totals.append(acc.total())
    for t in totals[1:]:
        np.testing.assert_array_equal(t, totals[0])


class XY:
    """A picklable encoder: the x, y columns as float32 points (the toy backend's space)."""

    metric = PointEncoder.metric

    def encode(self, f: pd.DataFrame) -> np.ndarray:
        return f[["x", "y"]].to_numpy(np.float32)


@pytest.mark.parametrize("cache", ["disk", "memory"])
@pytest.mark.parametrize("k", [1, 3])
def test_chunked_votes_equal_in_memory_votes(data, cache, k):
    parts, folder = data
    full = pd.concat(parts, ignore_index=True)
    rng = np.random.default_rng(4)
    cand = rng.uniform(0, 100, (80, 2)).astype(np.float32)
    want = vote_histogram(numba_kernel.nearest(XY().encode(full), cand, XY.metric, k=k), len(cand))
    with ChunkedSource.scan(folder, chunk_rows=64, csv_block_bytes=2048).map_codes(
            XY().encode, columns=["x", "y"], cache=cache) as coded:
        tmp = coded._tmp
        got = SourceVoter(coded, voter="numba")(None, cand, XY.metric, k, None, None, None, None)
        np.testing.assert_allclose(got, want, rtol=1e-12)
        assert (tmp is not None) == (cache == "disk")
        assert tmp is None or os.stat(tmp).st_mode & 0o777 == 0o700  # encoded private rows: owner only
    assert tmp is None or not os.path.exists(tmp)  # the encoded private rows are deleted on close


def test_class_conditional_chunked_votes(data):
    parts, _ = data
    full = pd.concat(parts, ignore_index=True)
    rng = np.random.default_rng(5)
    cand = rng.uniform(0, 100, (60, 2)).astype(np.float32)
    cl = np.array(["p", "q"] * 30)
    from pe_tabular.voting.registry import class_conditional_nearest
    nn = class_conditional_nearest(numba_kernel.nearest, XY().encode(full), cand, XY.metric, 2,
                                   full["note"].to_numpy(), cl)
    want = vote_histogram(nn, len(cand))
    coded = ChunkedSource.from_frames(parts, chunk_rows=50).map_codes(XY().encode, columns=["x", "y"],
                                                                      label_column="note", cache="memory")
    got = SourceVoter(coded, voter="numba")(None, cand, XY.metric, 2, None, cl, None, None)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert isinstance(next(iter(coded.parts[0].batches())).data, Codes)


def _evolve(private, rate, vote_fn=None):
    T = 3
    cfg = EvolutionConfig.build(T, 120, [0.4, 0.2], voter="numba", sampling_rate=rate)
    pol = schedules.fixed([4.0] * T) if rate == 1 else schedules.Scheduled((4.0,) * T, "subsampled", 1.0, rate)
    evo = Evolution(PointBackend(), PointEncoder(), cfg, pol, Ledger(1e-5), NoiseSource(test_seed=3),
                    np.random.default_rng(8), vote_fn=vote_fn)
    return evo.run(private)


@pytest.mark.parametrize("rate", [1.0, 0.5])
def test_a_pe_run_on_a_streamed_source_equals_the_in_memory_run(data, rate):
    full = pd.concat(data[0], ignore_index=True)
    want = _evolve(XY().encode(full), rate)
    coded = ChunkedSource.from_frames(full, chunk_rows=128).map_codes(XY().encode, columns=["x", "y"],
                                                                       cache="memory")
    voter = SourceVoter(coded, voter="numba")
    got = _evolve(voter.private, rate, voter)
    np.testing.assert_array_equal(got.population.samples, want.population.samples)
    np.testing.assert_array_equal(got.weights, want.weights)
    assert [r.sampling_rate for r in got.ledger.releases] == [rate] * 3
    assert got.ledger.subsampled == (rate < 1)
