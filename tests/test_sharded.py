"""Sharded voting on a 2-process Dask LocalCluster: same counts as one process, and the private rows
stay on their workers (only per-candidate float histograms come back)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import tests.toy as toy  # noqa: E402
from pe_tabular.distance import ABS, CAT, MixedMetric  # noqa: E402
from pe_tabular.evolution import Evolution, EvolutionConfig  # noqa: E402
from pe_tabular.privacy import Ledger, NoiseSource, gdp_mu, schedules  # noqa: E402
from pe_tabular.tables.encoder import TableEncoder  # noqa: E402
from pe_tabular.tables.schema import Column, Schema  # noqa: E402
from pe_tabular.voting import numba_kernel  # noqa: E402
from pe_tabular.voting.histogram import vote_histogram  # noqa: E402
from pe_tabular.voting.registry import class_conditional_nearest  # noqa: E402
from pe_tabular.voting.sharded import ShardedVoter, make_vote_fn  # noqa: E402

cloudpickle.register_pickle_by_value(toy)  # the workers cannot import the tests package

SCHEMA = Schema((
    Column("age", "integer", lower=17, upper=90),
    Column("hours", "integer", lower=1, upper=99),
    Column("job", "categorical", categories=("a", "b", "c", "d")),
    Column("income", "categorical", categories=("<=50K", ">50K")),
), label="income")


def table(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "age": rng.integers(17, 91, n), "hours": rng.choice([20, 40, 40, 40, 60], n),
        "job": rng.choice(list("abcd"), n), "income": rng.choice(["<=50K", ">50K"], n),
        "user": rng.integers(0, 10**6, n),
    })


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    parts = [table(rng, n) for n in (120, 75, 0, 133)]  # an empty partition too
    for i, p in enumerate(parts):  # user ids never span partitions (group-level DP needs that)
        p["user"] = i * 1000 + p["user"] % 40
    cand = table(rng, 60).drop(columns=["user"])
    return parts, cand


def single_process(parts, cand, encoder, k, labels=False, groups=False):
    full = pd.concat(parts, ignore_index=True)
    codes = encoder.encode(full.drop(columns=["user"]))
    cl = cand["income"].to_numpy() if labels else None
    nn = class_conditional_nearest(numba_kernel.nearest, codes, encoder.encode(cand), encoder.metric, k,
                                   full["income"].to_numpy() if labels else None, cl)
    return vote_histogram(nn, len(cand), full["user"].to_numpy() if groups else None)


@pytest.mark.parametrize("k, labels, groups", [(1, False, False), (3, False, False), (2, True, True)])
def test_counts_match_a_single_process(client, data, k, labels, groups):
    parts, cand = data
    enc = TableEncoder(SCHEMA, exclude=("income",))
    # TableEncoder encodes its schema's columns only; label and group columns are split off first anyway
    with ShardedVoter(client, parts, enc, voter="numba", label_column="income",
                      group_column="user" if groups else None) as voter:
        assert len(voter.private) == sum(map(len, parts))
        got = voter(voter.private, enc.encode(cand), enc.metric, k, None,
                    cand["income"].to_numpy() if labels else None, None, None)
    want = single_process(parts, cand, enc, k, labels, groups)
    if k == 1:
        np.testing.assert_array_equal(got, want)  # integer counts: bit-identical
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12)  # 1/sqrt(k) weights summed in another order
    assert got.sum() == pytest.approx(want.sum())


def test_only_histograms_reach_the_coordinator(client, data, monkeypatch):
    parts, cand = data
    enc = TableEncoder(SCHEMA, exclude=("income",))
    received: list[object] = []
    real_gather = distributed.Client.gather

    def spy(self, futures, *a, **kw):
        out = real_gather(self, futures, *a, **kw)
        received.extend(out if isinstance(out, list) else [out])
        return out

    monkeypatch.setattr(distributed.Client, "gather", spy)
    frames = [p.drop(columns=["user"]) for p in parts]
    voter = ShardedVoter(client, frames, enc, voter="numba", label_column="income")
    assert all(isinstance(x, int) for x in received) and sum(received) == len(voter.private)  # row counts
    received.clear()
    m = len(cand)
    progress: list[int] = []
    voter(voter.private, enc.encode(cand), enc.metric, 1, None, None, None, progress.append)
    assert len(received) == len(parts)
    for x in received:
        assert isinstance(x, np.ndarray) and x.dtype == np.float64 and x.shape == (m,)
    assert sorted(progress) == sorted(map(len, parts))
    # each encoded shard lives on exactly one worker and never moved between workers
    shard_keys = {f.key for f in voter._shards}
    who = client.who_has(voter._shards)
    assert all(len(who[key]) == 1 for key in shard_keys)
    moved = client.run(lambda dask_worker: [str(key) for e in dask_worker.transfer_outgoing_log
                                            for key in e.get("keys", ())])
    assert not any(key in shard_keys for keys in moved.values() for key in keys)
    voter.close()


def test_parquet_partitions_are_read_by_the_workers_only(client, data, tmp_path, monkeypatch):
    parts, cand = data
    for i, p in enumerate(parts):
        p.drop(columns=["user"]).to_parquet(tmp_path / f"part-{i}.parquet")

    def forbidden(*a, **kw):
        raise AssertionError("the coordinator opened a private Parquet file")

    monkeypatch.setattr(pd, "read_parquet", forbidden)  # the workers are other processes: unaffected
    enc = TableEncoder(SCHEMA, exclude=("income",))
    with ShardedVoter(client, str(tmp_path), enc, voter="numba", label_column="income") as voter:
        assert voter.private.n_partitions == len(parts)
        got = voter(voter.private, enc.encode(cand), enc.metric, 1, None, None, None, None)
        np.testing.assert_array_equal(voter.label_counts(["<=50K", ">50K"]),
                                      pd.concat(parts)["income"].value_counts().reindex(["<=50K", ">50K"]).to_numpy())
    np.testing.assert_array_equal(got, single_process(parts, cand, enc, 1))


def test_a_group_split_over_parquet_files_moves_the_votes_by_at_most_one(client, data, tmp_path):
    """Privacy hardening #6 / issue 23, finding 8: a user spread over P partitions would contribute up to √P to
    the vote sum. The voter used to refuse such a layout — an exit status set by one user's rows; now each
    part of a group found in m partitions counts 1/m, so removing that user moves the sum by at most 1."""
    parts, cand = data
    enc = TableEncoder(SCHEMA, exclude=("income",))
    user = parts[0]["user"].iloc[0]
    leak = parts[1].head(3).assign(user=user)  # rows of a user of part 0 in another file
    with_leak, without = tmp_path / "d", tmp_path / "d_minus"
    for folder, extra in ((with_leak, leak), (without, leak.iloc[:0])):
        folder.mkdir()
        for i, p in enumerate([*parts, extra]):
            (p if folder == with_leak else p[p["user"] != user]).to_parquet(folder / f"part-{i}.parquet")
    votes = []
    for folder in (with_leak, without):
        with ShardedVoter(client, str(folder), enc, voter="numpy", label_column="income", group_column="user") as v:
            votes.append(v(v.private, enc.encode(cand), enc.metric, 2, None, None, None, None))
    moved = np.linalg.norm(votes[0] - votes[1])
    assert 0.5 < moved <= 1.0 + 1e-9  # the user's two parts count 1/2 each (unscaled: up to √2)


@pytest.mark.parametrize("mode", ["partitions", "codes"])
def test_evolution_with_sharded_votes_equals_the_local_run(client, mode):
    """The vote_fn hook, class-conditional: same seeds and (test-only) noise seed give the same run,
    whether the rows vote locally, as partitions encoded on the workers, or as codes sent once."""
    rng = np.random.default_rng(5)
    private = toy.two_clusters(rng, 600)
    labels = (private[:, 0] > 50).astype(int)
    shares = {0: 0.5, 1: 0.5}

    def run(vote_fn=None, data=private, lab=labels):
        mu = gdp_mu(4.0, 1e-5)
        cfg = EvolutionConfig.build(3, 100, [0.4, 0.2], voter="numba")
        evo = Evolution(toy.PointBackend(), toy.PointEncoder(), cfg, schedules.uniform(mu, 3), Ledger(1e-5, mu),
                        NoiseSource(test_seed=11), np.random.default_rng(3), vote_fn=vote_fn)
        return evo.run(data, private_labels=lab, label_shares=shares)

    local = run()
    address = client.scheduler_info()["address"]
    if mode == "partitions":
        frame = pd.DataFrame(private, columns=["x", "y"]).assign(label=labels)
        frames = [frame.iloc[s:s + 200] for s in range(0, 600, 200)]
        with make_vote_fn(address, partitions=frames, encoder=toy.PointEncoder(), voter="numba",
                          label_column="label") as voter:
            sharded = run(voter, voter.private, None)
    else:
        with make_vote_fn(address, voter="numba") as voter:
            sharded = run(voter)
            assert sorted(voter.sizes) == [300, 300]  # one partition per worker, sent once
    np.testing.assert_array_equal(sharded.population.samples, local.population.samples)
    np.testing.assert_array_equal(sharded.weights, local.weights)
    assert sharded.ledger.epsilon == pytest.approx(local.ledger.epsilon)


def test_codes_mode_keeps_each_group_on_one_worker(client):
    """Group-level DP needs each group's votes normalised together: interleaved group ids would be
    split by a contiguous row split, and the normalised counts would then differ."""
    rng = np.random.default_rng(8)
    codes = rng.integers(0, 6, size=(500, 3))
    cand = rng.integers(0, 6, size=(40, 3))
    groups = np.arange(500) % 37
    metric = MixedMetric(np.array([CAT, CAT, ABS], np.int8), np.array([2, 2, 1], np.int64))
    with ShardedVoter(client, voter="numba") as voter:
        got = voter(codes, cand, metric, 2, None, None, groups, None)
    want = vote_histogram(numba_kernel.nearest(codes, cand, metric, k=2), 40, groups)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    nn = numba_kernel.nearest(codes, cand, metric, k=2)
    split = sum(vote_histogram(nn[s:s + 250], 40, groups[s:s + 250]) for s in (0, 250))
    assert np.abs(split - want).max() > 0.1  # what a contiguous split would have released instead


def test_bad_settings_are_named(client, data):
    with pytest.raises(ValueError, match="exactly one of --dask-scheduler"):
        make_vote_fn(partitions=[], encoder=None)
    parts, cand = data
    enc = TableEncoder(SCHEMA, exclude=("income",))
    with pytest.raises(ValueError, match="no .parquet files"):
        ShardedVoter(client, "/nonexistent-folder", enc)
    with pytest.raises(ValueError, match="partitions need an encoder"):
        ShardedVoter(client, parts)
    with ShardedVoter(client, [parts[0].drop(columns=["user"])], enc, voter="numba") as voter:
        with pytest.raises(ValueError, match="labels/groups live on the workers"):
            voter(voter.private, enc.encode(cand), enc.metric, 1, np.zeros(1), None, None, None)


def test_an_undeclared_label_is_named_as_a_problem_never_by_its_value():
    """Issue 23, finding 8: both label counters printed up to five private label values in their error."""
    from pe_tabular.measure.shares import estimate_label_shares
    from pe_tabular.voting.sharded import _label_counts, _Shard

    labels = np.array(["<=50K", "rare-secret-label"], dtype=object)
    errors = []
    for count in (lambda: estimate_label_shares(labels, ["<=50K", ">50K"], 1.0, Ledger(1e-5), NoiseSource()),
                  lambda: _label_counts(_Shard(np.zeros((2, 1)), labels, None), ["<=50K", ">50K"])):
        with pytest.raises(ValueError, match="not among the declared classes") as e:
            count()
        errors.append(str(e.value))
    assert all("rare-secret-label" not in m for m in errors)
