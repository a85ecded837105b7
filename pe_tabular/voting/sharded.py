"""Voting on private data sharded over Dask workers (extra ``dask``).

Each partition of the private data is loaded (or received once) by one worker, encoded there, and
stays there: every iteration the coordinator broadcasts the candidate codes, each worker votes its
rows against them and sends back only its *partial clean histogram* (float counts, one per
candidate, from ``vote_histogram``), and the coordinator sums them. Noise is not added here: the
evolution adds it once, to the sum, with the same L2 sensitivity 1 as a single-process vote (each
row, or each group, lives in exactly one partition, so it still moves the sum by at most 1).

The coordinator, like the single-process curator, sees clean counts before noise: it is trusted.
What sharding adds is that private *rows* never travel: with a Parquet dataset each worker reads its
own files, and with in-memory frames each frame is sent once, to the one worker that keeps it.

Usage (what ``pe-tabular synth --dask-scheduler ADDRESS`` / ``--dask-local N`` wire up)::

    # rows stay where they are read: each worker reads and encodes its own Parquet files
    voter = make_vote_fn(local_workers=2, partitions="private.parquet/", encoder=encoder)
    result = Evolution(..., vote_fn=voter).run(voter.private, label_shares=shares)
    voter.close()

    # or: the coordinator already holds the codes; they are split over the workers once
    voter = make_vote_fn(scheduler_address="tcp://host:8786")
    result = Evolution(..., vote_fn=voter).run(codes, private_labels=labels, label_shares=shares)
    voter.close()

With ``group_column`` (user/flow-level DP) each partition normalises a group's votes to L2 norm 1; a
group found in m partitions would then move the sum by up to √m, so each of its parts is scaled by 1/m
(the workers send salted digests of their group ids, the coordinator counts in how many partitions
each digest lies and sends the counts back): the group moves the sum by at most 1 wherever its rows
are, and nothing refuses a layout (a refusal would be an exit status set by one group's rows). Writing
the Parquet dataset partitioned by the group column keeps every m = 1 (no group loses weight).

Trust: the coordinator (this process), the scheduler and the workers are the data owner's own processes.
The coordinator sees clean counts before noise, the row count of each partition and the digests of
group ids under a salt it chose (so it could enumerate, e.g., hashed IPv4 ids); nothing of that is
printed, logged or written (``docs/distributed.md``).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.measure.shares import UNKNOWN_LABEL
from pe_tabular.voting.histogram import vote_histogram
from pe_tabular.voting.registry import class_conditional_nearest, get_voter

log = logging.getLogger(__name__)
Partitions = Sequence[pd.DataFrame] | str | os.PathLike


@dataclass(frozen=True)
class RemotePrivate:
    """Stands for private rows that live on the workers: ``Evolution.run`` only needs their count."""

    n_rows: int
    n_partitions: int

    def __len__(self) -> int:
        return self.n_rows


@dataclass
class _Shard:
    """One partition's codes, as kept in a worker's memory (never sent back)."""

    codes: np.ndarray
    labels: np.ndarray | None
    groups: np.ndarray | None
    spans: np.ndarray | None = None  # per row: in how many partitions its group lies (None: all 1)


# -- functions that run on the workers --------------------------------------------------------------
def _encode(frame: pd.DataFrame, encoder: Any, label_column: str | None, group_column: str | None) -> _Shard:
    labels = frame[label_column].to_numpy() if label_column else None
    groups = frame[group_column].to_numpy() if group_column else None
    features = frame.drop(columns=[c for c in (label_column, group_column) if c])
    return _Shard(np.asarray(encoder.encode(features)), labels, groups)


def _read_and_encode(path: str, encoder: Any, label_column: str | None, group_column: str | None) -> _Shard:
    return _encode(pd.read_parquet(path), encoder, label_column, group_column)


def _n_rows(shard: _Shard) -> int:
    return int(shard.codes.shape[0])


def _group_digests(shard: _Shard, salt: str) -> np.ndarray:
    """Salted 64-bit hashes of the shard's distinct group ids: enough for the coordinator to check that
    no group spans two partitions, without group ids (addresses, user ids) leaving the worker."""
    if shard.groups is None or len(shard.groups) == 0:
        return np.zeros(0, np.uint64)
    ids = pd.unique(pd.Series(shard.groups).astype(str)).astype(object)
    return np.unique(pd.util.hash_array(ids, hash_key=salt, categorize=False))


def _digest_rows(shard: _Shard, salt: str) -> np.ndarray:
    return pd.util.hash_array(pd.Series(shard.groups).astype(str).to_numpy(object), hash_key=salt,
                              categorize=False)


def _with_spans(shard: _Shard, salt: str, split: np.ndarray, counts: np.ndarray) -> _Shard:
    """The shard with each row's group span (``split`` digests lie in ``counts`` partitions, others in 1)."""
    if shard.groups is None or len(shard.groups) == 0 or split.size == 0:
        return shard
    d = _digest_rows(shard, salt)
    pos = np.clip(np.searchsorted(split, d), 0, split.size - 1)
    spans = np.where(split[pos] == d, counts[pos], 1).astype(np.int64)
    return _Shard(shard.codes, shard.labels, shard.groups, spans if (spans > 1).any() else None)


def _label_counts(shard: _Shard, classes: list[Any]) -> np.ndarray:
    idx = {c: i for i, c in enumerate(classes)}
    unknown = set(np.unique(shard.labels).tolist()) - set(idx)
    if unknown:
        raise ValueError(UNKNOWN_LABEL)
    return np.bincount([idx[v] for v in shard.labels.tolist()], minlength=len(classes)).astype(np.float64)


def _vote(shard: _Shard, candidates: np.ndarray, metric: Any, k: int, candidate_labels: np.ndarray | None,
          voter: str, threads: int | None) -> np.ndarray:
    if threads is not None and voter in ("numba", "auto"):
        import numba  # noqa: PLC0415 - only where numba votes

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    if shard.codes.shape[0] == 0:
        return np.zeros(candidates.shape[0])
    labels = shard.labels if candidate_labels is not None else None  # unlabelled candidates: plain vote
    nn = class_conditional_nearest(get_voter(voter), shard.codes, candidates, metric, k, labels, candidate_labels)
    if shard.spans is None:
        return vote_histogram(nn, candidates.shape[0], shard.groups)
    out = np.zeros(candidates.shape[0])
    for m in np.unique(shard.spans):  # a group in m partitions: each part's unit vector counts 1/m
        rows = shard.spans == m
        out += vote_histogram(nn[rows], candidates.shape[0], shard.groups[rows]) / m
    return out


# -- the coordinator side ---------------------------------------------------------------------------
def _parquet_files(path: str | os.PathLike) -> list[str]:
    p = Path(path)
    if p.is_file():
        return [str(p)]
    files = sorted(str(f) for f in p.rglob("*.parquet"))
    if not files:
        raise ValueError(f"--private {path}: no .parquet files found (a Parquet dataset is a file or a folder of them)")
    return files


class ShardedVoter:
    """A ``VoteFn`` (see ``registry.VoteFn``) whose private rows live on Dask workers.

    Two ways to give it the private data:

    * ``partitions``: a list of DataFrames (each sent once to one worker) or a Parquet file/folder
      (each file read by one worker; the coordinator never opens it), with a picklable ``encoder``
      that the workers apply to their rows once, at construction. Label and group columns are
      split off before encoding. Run the evolution on ``voter.private``.
    * nothing: the evolution is run on codes the coordinator already holds
      (``Evolution.run(codes, private_labels=..., groups=...)``); on the first vote they are split
      into one partition per worker (whole groups together) and sent once; later votes reuse them.
    """

    def __init__(self, client: Any, partitions: Partitions | None = None, encoder: Any = None, *,
                 voter: str = "auto", label_column: str | None = None, group_column: str | None = None,
                 threads_per_task: int | None = None, owns: tuple[Any, ...] = ()):
        self.client, self.voter, self.threads = client, voter, threads_per_task
        self.label_column, self.group_column = label_column, group_column
        self._owns = owns  # (client, cluster) made by make_vote_fn, closed by close()
        self._token = uuid.uuid4().hex[:8]
        self._all_workers = sorted(client.scheduler_info()["workers"])
        if not self._all_workers:
            raise RuntimeError("the Dask cluster has no workers; start some or use --dask-local N")
        self._shards: list[Any] = []
        self._workers: list[str] = []
        self.sizes: list[int] = []
        self._codes_key: tuple | None = None  # the coordinator-held arrays now on the workers
        self.private: RemotePrivate | None = None
        if partitions is not None:
            if encoder is None:
                raise ValueError("partitions need an encoder (picklable) that the workers apply to their rows")
            self._load_partitions(partitions, encoder)

    # -- placing the data on the workers ------------------------------------------------------------
    def _place(self, n_parts: int) -> list[str]:
        return [self._all_workers[i % len(self._all_workers)] for i in range(n_parts)]

    def _load_partitions(self, partitions: Partitions, encoder: Any) -> None:
        if isinstance(partitions, str | os.PathLike):
            sources: list[Any] = _parquet_files(partitions)
            load: Callable = _read_and_encode
        else:
            sources = list(partitions)
            if not sources:
                raise ValueError("no private partitions given")
            load = _encode
        self._workers = self._place(len(sources))
        for i, (src, w) in enumerate(zip(sources, self._workers)):
            if load is _encode:  # an in-memory frame travels once, to the worker that keeps it
                src = self.client.scatter(src, workers=[w], hash=False)
            self._shards.append(self.client.submit(load, src, encoder, self.label_column, self.group_column,
                                                   workers=[w], allow_other_workers=False, pure=False,
                                                   key=f"pe-private-shard-{self._token}-{i}"))
        if self.group_column:
            self._scale_split_groups()
        self.sizes = [int(x) for x in self._fetch(self._submit_all(_n_rows))]
        self.private = RemotePrivate(sum(self.sizes), len(self.sizes))
        log.info("private data: %d partitions on %d workers", len(self.sizes), len(set(self._workers)))

    def _scale_split_groups(self) -> None:
        """Unit-level DP with a group in m partitions: each part normalises it to norm 1, so each part is
        scaled by 1/m (sum ≤ 1). Only salted digests of the distinct group ids reach the coordinator (a
        64-bit collision can only overstate m, which lowers a weight: never above sensitivity 1)."""
        salt = uuid.uuid4().hex[:16]
        digests = self._fetch(self._submit_all(_group_digests, salt))
        allh = np.concatenate(digests) if digests else np.zeros(0, np.uint64)
        uniq, counts = np.unique(allh, return_counts=True)
        split, m = uniq[counts > 1], counts[counts > 1]
        if split.size:
            self._shards = [self.client.submit(_with_spans, sh, salt, split, m, workers=[w], allow_other_workers=False,
                                               pure=False) for sh, w in zip(self._shards, self._workers)]

    def _ensure_codes(self, codes: np.ndarray, labels: np.ndarray | None, groups: np.ndarray | None) -> None:
        """Send coordinator-held codes to the workers once (again only if other arrays are passed)."""
        key = (codes, labels, groups)  # held, so a later array cannot reuse these ids
        if self._codes_key is not None and all(a is b for a, b in zip(key, self._codes_key)):
            return
        self._release()
        n_parts = len(self._all_workers)
        n = len(codes)
        if groups is not None:  # whole groups per partition: each group is normalised where it lives
            part = np.unique(np.asarray(groups), return_inverse=True)[1] % n_parts
        else:
            part = np.arange(n) * n_parts // max(n, 1)
        self._workers = self._place(n_parts)
        for i, w in enumerate(self._workers):
            rows = np.flatnonzero(part == i)
            shard = _Shard(np.ascontiguousarray(np.asarray(codes)[rows]),
                           None if labels is None else np.asarray(labels)[rows],
                           None if groups is None else np.asarray(groups)[rows])
            self._shards.append(self.client.scatter(shard, workers=[w], hash=False))
            self.sizes.append(int(rows.size))
        self._codes_key = key
        log.info("private codes sent once to %d workers", n_parts)

    def _release(self) -> None:
        for f in self._shards:
            f.release()
        self._shards, self._workers, self.sizes, self._codes_key = [], [], [], None

    # -- voting -------------------------------------------------------------------------------------
    def _fetch(self, futures: list[Any]) -> list[Any]:
        """The only way results reach the coordinator (tests watch ``Client.gather``)."""
        return self.client.gather(futures)

    def _submit_all(self, fn: Callable, *args: Any) -> list[Any]:
        return [self.client.submit(fn, s, *args, workers=[w], allow_other_workers=False, pure=False)
                for s, w in zip(self._shards, self._workers)]

    def __call__(self, private: Any, candidates: np.ndarray, metric: Any, k: int,
                 private_labels: np.ndarray | None, candidate_labels: np.ndarray | None,
                 groups: np.ndarray | None, progress: Callable[[int], None] | None = None) -> np.ndarray:
        if isinstance(private, RemotePrivate):
            if private_labels is not None or groups is not None:
                raise ValueError("with partitioned private data the labels/groups live on the workers: pass "
                                 "label_column/group_column to the ShardedVoter, not arrays to Evolution.run")
            if candidate_labels is not None and self.label_column is None:
                raise ValueError("the candidates are labelled but the ShardedVoter has no label_column")
        else:
            self._ensure_codes(private, private_labels, groups)
        from distributed import as_completed  # noqa: PLC0415 - extra 'dask'

        cand = self.client.scatter(np.ascontiguousarray(candidates), broadcast=True, hash=False)
        cl = None if candidate_labels is None else self.client.scatter(candidate_labels, broadcast=True, hash=False)
        futs = self._submit_all(_vote, cand, metric, k, cl, self.voter, self.threads)
        order = {f.key: i for i, f in enumerate(futs)}
        parts: list[np.ndarray | None] = [None] * len(futs)
        for fut in as_completed(futs):
            i = order[fut.key]
            parts[i] = self._fetch([fut])[0]
            if progress:
                progress(self.sizes[i])
        # sum in partition order, so repeated runs give bit-identical counts
        return np.sum(np.stack(parts), axis=0) if parts else np.zeros(candidates.shape[0])

    def label_counts(self, classes: Sequence[Any]) -> np.ndarray:
        """Clean per-class counts summed over workers, for a DP label-share release on the coordinator
        (``evolution.release_once``, Δ = 1): only the per-class totals leave the workers."""
        if self.label_column is None:
            raise ValueError("label_counts needs the ShardedVoter's label_column")
        return np.sum(np.stack(self._fetch(self._submit_all(_label_counts, list(classes)))), axis=0)

    def close(self) -> None:
        """Drop the shards from worker memory; close the client/cluster if ``make_vote_fn`` made them."""
        self._release()
        for obj in self._owns:
            obj.close()
        self._owns = ()

    def __enter__(self) -> ShardedVoter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def make_vote_fn(scheduler_address: str | None = None, local_workers: int | None = None, *,
                 partitions: Partitions | None = None, encoder: Any = None, voter: str = "auto",
                 label_column: str | None = None, group_column: str | None = None) -> ShardedVoter:
    """A ``ShardedVoter`` on an existing scheduler (``--dask-scheduler ADDRESS``) or on a new local
    cluster of ``local_workers`` processes with one thread each (``--dask-local N``). Without
    ``partitions`` it shards the codes that ``Evolution.run`` is given (see ``ShardedVoter``).

    On a local cluster each worker's kernel gets ``cpu_count // N`` threads, so N workers never
    oversubscribe the machine. The returned voter owns what it created: call ``close()``."""
    if (scheduler_address is None) == (local_workers is None):
        raise ValueError("give exactly one of --dask-scheduler ADDRESS or --dask-local N")
    from distributed import Client, LocalCluster  # noqa: PLC0415 - extra 'dask'

    if local_workers is not None:
        if local_workers < 1:
            raise ValueError(f"--dask-local must be >= 1, got {local_workers}")
        cluster = LocalCluster(n_workers=local_workers, processes=True, threads_per_worker=1,
                               dashboard_address=None)
        client = Client(cluster)
        threads = max(1, (os.cpu_count() or 1) // local_workers)
        owns: tuple[Any, ...] = (client, cluster)
    else:
        client = Client(scheduler_address)
        threads, owns = None, (client,)
    try:
        return ShardedVoter(client, partitions, encoder, voter=voter, label_column=label_column,
                            group_column=group_column, threads_per_task=threads, owns=owns)
    except BaseException:
        for obj in owns:
            obj.close()
        raise
