"""The chunked source of :mod:`pe_tabular.source`, run as tasks on Dask workers (extra ``dask``).

Each part (a Parquet/CSV file, an in-memory frame sent once, a Dask DataFrame partition) is read, and
its chunks summed, by a task on one worker, with the very loop a single process runs
(:func:`pe_tabular.source.sum_parts`); only the summed float arrays come back to the coordinator, never
rows. Files are read by the workers themselves (the coordinator never opens them), so on a real cluster
the paths must be visible to every worker (a shared file system or object store URL that pyarrow opens).

Unit-level DP with units spread over partitions: the per-unit row counts (see :mod:`pe_tabular.units`)
are counted per part on its worker, merged by a task on one worker, and handed worker-to-worker to the
part tasks; the table (digests and counts) never reaches the coordinator. A Poisson subsample draws
one uniform per unit from that merged table (units) or per (partition, row position) (rows), so it is
the sample a single process takes with the same seed.

Trust: the coordinator, the scheduler and the workers are the data owner's own processes (the workers hold
the rows; a scheduler can run any task on them). The coordinator sees each part's progress weight (bytes of
a file, rows of a frame) and every task's completion; it shows progress only in fixed public steps
(:class:`pe_tabular.source.ProgressSteps`) and logs no size, so nothing it prints depends on one unit
(``docs/distributed.md``, "Trust assumption").

Encoded rows the coordinator holds on its own disk (the tables wing's private cache) are *spread*
instead (:meth:`DaskSource.spread`): read here one chunk at a time, each chunk cut into one slice per
worker and sent once, so the coordinator's memory stays O(chunk) and every worker keeps its share in memory
for the votes (:class:`DaskVoting`, the factory ``pe-tabular synth --dask-local/--dask-scheduler`` wires up).

Usage::

    with DaskSource.local(2, ChunkedSource.scan("flows/", unit="src_ip")) as src:     # a LocalCluster
        noisy = path.release(spec, lambda: src.sum(fn, columns=["proto"]))
    src = DaskSource(Client("tcp://scheduler:8786"), scan_parts("s3://bucket/flows/"), unit="src_ip")
    with DaskVoting.connect(local=2) as votes:                 # votes of an encoded source on the workers
        voter = votes(coded, "numba")                          # a SourceVoter over DaskSource.spread(coded)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.memory import MemoryGuard
from pe_tabular.privacy.sampling import PoissonSample
from pe_tabular.source import (
    DEFAULT_CHUNK_ROWS,
    Accumulator,
    ChunkedSource,
    ChunkFn,
    CodedPart,
    FramePart,
    Part,
    ProgressSteps,
    emit_progress,
    encode_part,
    part_table,
    sum_parts,
)
from pe_tabular.units import UnitTable, UnitWeights
from pe_tabular.voting.streaming import SourceVoter

log = logging.getLogger(__name__)
Event = dict[str, Any]


# -- task bodies (run on the workers) ------------------------------------------------------------------
def _merge(*tables: UnitTable) -> UnitTable:
    return UnitTable.merge(tables)


def _weights(table: UnitTable, sample: PoissonSample | None) -> UnitWeights:
    return table.weights(sample)


def _sum(i: int, part: Part, fn: ChunkFn, columns: Sequence[str] | None, units: tuple[str, ...],
         weights: UnitWeights | None, sample: PoissonSample | None, guard: MemoryGuard,
         where: str) -> np.ndarray | None:
    return sum_parts([(i, part)], fn, columns=columns, units=units, unit_weights=weights, sample=sample,
                     guard=guard, where=where)


def _frame_part(frame: pd.DataFrame, chunk_rows: int) -> FramePart:
    return FramePart(frame, chunk_rows)


def _weight(part: Part) -> float:
    return float(part.weight)


def _join(*parts: CodedPart) -> CodedPart:
    """One worker's slices (each a one-chunk part already in its memory) as one part of weight 1."""
    return CodedPart([c for p in parts for c in p.chunks], 1.0)


# -- where the coordinator connects ----------------------------------------------------------------------
def local_client(n_workers: int, memory_limit: str | int | None = "auto") -> tuple[Any, Any]:
    """A new ``LocalCluster`` of ``n_workers`` one-thread processes and a client of it (``--dask-local N``)."""
    from distributed import Client, LocalCluster  # noqa: PLC0415 - extra 'dask'

    if n_workers < 1:
        raise ValueError(f"--dask-local must be >= 1, got {n_workers}")
    cluster = LocalCluster(n_workers=n_workers, processes=True, threads_per_worker=1, dashboard_address=None,
                           memory_limit=memory_limit)
    try:
        return Client(cluster), cluster
    except BaseException:
        cluster.close()
        raise


class DaskSource:
    """A chunked source whose parts live on Dask workers (see the module docstring).

    ``parts``: :class:`~pe_tabular.source.Part` objects (files: each read by the worker it is placed on)
    or futures of parts already on the workers. ``unit``, ``guard`` (checked inside every task, on the
    worker's own memory) and ``on_event`` as for :class:`~pe_tabular.source.ChunkedSource`."""

    def __init__(self, client: Any, parts: Sequence[Any], *, unit: str | Sequence[str] | None = None,
                 guard: MemoryGuard | None = None, on_event: Callable[[Event], None] | None = None,
                 owns: tuple[Any, ...] = ()):
        if not parts:
            raise ValueError("no private data given (no parts)")
        self.client = client
        self.units: tuple[str, ...] = () if unit is None else ((unit,) if isinstance(unit, str) else tuple(unit))
        self.guard = guard or MemoryGuard()
        self.on_event = on_event or (lambda e: None)
        self._owns = owns
        workers = sorted(client.scheduler_info()["workers"])
        if not workers:
            raise RuntimeError("the Dask cluster has no workers; start some or use --dask-local N")
        # a part we place is pinned to one worker; a part already on the workers (a future) is left where
        # Dask keeps it, so its tasks run there (locality) and its rows never travel
        self.workers = [None if _is_future(p) else workers[i % len(workers)] for i, p in enumerate(parts)]
        self.parts = [p if w is None else client.scatter(p, workers=[w], hash=False)
                      for p, w in zip(parts, self.workers)]
        # progress weights: bytes of a file, rows of a frame; only ever shown as a share of the whole
        self._w = np.array(client.gather([self._submit(i, _weight, p) for i, p in enumerate(self.parts)]), float)
        self._table: Any = None

    # -- constructors -------------------------------------------------------------------------------
    @classmethod
    def from_source(cls, client: Any, source: ChunkedSource, **kw: Any) -> DaskSource:
        """The parts of a ChunkedSource (files, or frames sent once each) on the workers; same units/guard."""
        kw.setdefault("unit", source.units or None)
        kw.setdefault("guard", source.guard)
        return cls(client, source.parts, **kw)

    @classmethod
    def from_dask(cls, client: Any, ddf: Any, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, **kw: Any) -> DaskSource:
        """A Dask DataFrame: each partition is computed on the workers and stays there."""
        futs = client.compute(list(ddf.to_delayed()))
        return cls(client, [client.submit(_frame_part, f, chunk_rows, pure=False) for f in futs], **kw)

    @classmethod
    def local(cls, n_workers: int, source: ChunkedSource, *, memory_limit: str | int | None = "auto",
              **kw: Any) -> DaskSource:
        """A new ``LocalCluster`` of ``n_workers`` one-thread processes holding ``source``'s parts; the
        returned source owns the cluster (``close()`` / ``with``)."""
        client, cluster = local_client(n_workers, memory_limit)
        try:
            return cls.from_source(client, source, owns=(client, cluster), **kw)
        except BaseException:
            client.close()
            cluster.close()
            raise

    @classmethod
    def remote(cls, address: str, source: ChunkedSource, **kw: Any) -> DaskSource:
        """``source``'s parts on the cluster of the scheduler at ``address`` (``--dask-scheduler``, e.g.
        ``tcp://host:8786``). File parts are read by the workers, so their paths must be visible there (a
        shared file system); in-memory frames are sent once each. The returned source owns the client."""
        from distributed import Client  # noqa: PLC0415 - extra 'dask'

        client = Client(address)
        try:
            return cls.from_source(client, source, owns=(client,), **kw)
        except BaseException:
            client.close()
            raise

    @classmethod
    def spread(cls, client: Any, source: ChunkedSource, **kw: Any) -> DaskSource:
        """An encoded source (:meth:`ChunkedSource.map_codes`, or the tables wing's code cache) spread over the
        workers: its chunks are read here one at a time, each cut into one contiguous slice per worker and sent
        to that worker once; every worker then holds one part (its slices, in memory) for the votes. The
        coordinator's memory stays O(chunk), never O(rows), and its files need not be visible to the workers.

        Rows keep their offsets, so a vote sums the same per-row vectors as one process (the sums are
        compensated, and the release path snaps them: the releases are identical). A Poisson subsample of
        rows (no units) would draw other rows, since a row's partition index changes; units are unaffected.
        Every part weighs 1 (progress per worker), so no row count reaches the coordinator's progress."""
        workers = sorted(client.scheduler_info()["workers"])
        if not workers:
            raise RuntimeError("the Dask cluster has no workers; start some or use --dask-local N")
        slices: list[list[Any]] = [[] for _ in workers]
        desc = "sending private codes to the Dask workers"
        steps = ProgressSteps(lambda frac: emit_progress(source.on_event, desc, frac, None))
        for i, part in enumerate(source.parts):
            for b in part.batches(None):
                codes = b.data
                bounds = np.arange(len(workers) + 1) * len(codes) // len(workers)
                for j, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
                    if hi <= lo:
                        continue
                    sl = (np.ascontiguousarray(codes.codes[lo:hi]),
                          None if codes.labels is None else codes.labels[lo:hi],
                          None if b.digests is None else b.digests[lo:hi], b.tag, b.offset + int(lo), b.done)
                    slices[j].append(client.scatter(CodedPart([sl], 1.0), workers=[workers[j]], hash=False))
                source.guard.check(desc)
                steps((i + b.done) / len(source.parts))  # fixed public steps only
        parts = [client.submit(_join, *futs, workers=[w], allow_other_workers=False, pure=False)
                 for futs, w in zip(slices, workers)]
        for futs in slices:  # the joined parts hold the arrays; the one-slice futures can go
            for f in futs:
                f.release()
        kw.setdefault("unit", source.units or None)
        kw.setdefault("guard", source.guard)
        kw.setdefault("on_event", source.on_event)
        return cls(client, parts, **kw)

    # -- plumbing -----------------------------------------------------------------------------------
    def _submit(self, i: int, fn: Callable, *args: Any) -> Any:
        w = self.workers[i]
        if w is None:
            return self.client.submit(fn, *args, pure=False)
        return self.client.submit(fn, *args, workers=[w], allow_other_workers=False, pure=False)

    def _progress(self, desc: str, also: Callable[[float], None] | None = None) -> Callable[[int], None]:
        share = self._w / self._w.sum()
        done = [0.0]
        steps = ProgressSteps(lambda frac: emit_progress(self.on_event, desc, frac, also))

        def report(i: int) -> None:  # fixed public steps only (see pe_tabular.source)
            done[0] += float(share[i])
            steps(min(done[0], 1.0))
        return report

    def unit_table(self) -> Any:
        """A future of the merged per-unit table (on a worker; it never comes to the coordinator)."""
        if self._table is None:
            parts = [self._submit(i, part_table, p, self.units, self.guard) for i, p in enumerate(self.parts)]
            self._table = self.client.submit(_merge, *parts, pure=False)
        return self._table

    # -- the core operation -------------------------------------------------------------------------
    def sum(self, fn: ChunkFn, *, columns: Sequence[str] | None = None, sample: PoissonSample | None = None,
            desc: str = "reading private data", empty: Callable[[], np.ndarray] | None = None,
            report: Callable[[float], None] | None = None) -> np.ndarray:
        """As :meth:`pe_tabular.source.ChunkedSource.sum`, each part summed on its worker (progress per part)."""
        from distributed import as_completed  # noqa: PLC0415 - extra 'dask'

        uw = self.client.submit(_weights, self.unit_table(), sample, pure=False) if self.units else None
        futs = [self._submit(i, _sum, i, p, fn, columns, self.units, uw, sample, self.guard, desc)
                for i, p in enumerate(self.parts)]
        order = {f.key: i for i, f in enumerate(futs)}
        progress = self._progress(desc, report)
        acc = Accumulator()
        for fut in as_completed(futs):
            pair = self._fetch(fut)
            if pair is not None:
                acc.add(pair[0], pair[1])
            progress(order[fut.key])
        return acc.total(empty)

    def _fetch(self, fut: Any) -> np.ndarray | None:
        """The only way results reach the coordinator (tests watch it): a (2, size) float array or None."""
        out = fut.result()
        if out is not None and not (isinstance(out, np.ndarray) and out.dtype == np.float64 and out.ndim == 2):
            raise TypeError("a worker returned something other than a float histogram")
        return out

    def map_codes(self, encode: Callable[[pd.DataFrame], np.ndarray], *, columns: Sequence[str] | None = None,
                  label_column: str | None = None) -> DaskSource:
        """Encoded parts kept in the workers' memory (each worker encodes the parts it holds, once)."""
        coded = [self._submit(i, encode_part, p, encode, columns, label_column, self.units, None, self.guard)
                 for i, p in enumerate(self.parts)]
        out = DaskSource.__new__(DaskSource)
        out.client, out.units, out.guard, out.on_event, out._owns = (self.client, self.units, self.guard,
                                                                     self.on_event, ())
        out.workers, out.parts, out._w, out._table = self.workers, coded, self._w, self._table
        return out

    def close(self) -> None:
        """Drop the parts from worker memory; close the client/cluster if :meth:`local` made them."""
        for p in self.parts:
            if _is_future(p):
                p.release()
        self.parts = []
        for obj in self._owns:
            obj.close()
        self._owns = ()

    def __enter__(self) -> DaskSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DaskVoting:
    """Where the votes of an encoded source run: a Dask client (and the ``LocalCluster`` it started, if any).

    Called like :class:`~pe_tabular.voting.streaming.SourceVoter` — ``votes(coded, voter)`` — it spreads
    ``coded`` over the workers (:meth:`DaskSource.spread`) and returns a ``SourceVoter`` over them: a
    ``VoteFn`` for ``Evolution(vote_fn=...)``, run on ``voter.private``. Each call drops the rows the previous
    call spread; :meth:`close` drops the last ones and closes what :meth:`connect` started."""

    def __init__(self, client: Any, owns: tuple[Any, ...] = ()):
        self.client, self._owns = client, owns
        self.source: DaskSource | None = None

    @classmethod
    def connect(cls, scheduler: str | None = None, local: int | None = None) -> DaskVoting:
        """The cluster of the scheduler at ``scheduler`` (``--dask-scheduler``) or a new ``LocalCluster`` of
        ``local`` one-thread worker processes (``--dask-local``): exactly one."""
        if (scheduler is None) == (local is None):
            raise ValueError("give exactly one of --dask-scheduler ADDRESS or --dask-local N")
        if local is not None:
            client, cluster = local_client(local)
            return cls(client, (client, cluster))
        from distributed import Client  # noqa: PLC0415 - extra 'dask'

        client = Client(scheduler)
        return cls(client, (client,))

    def __call__(self, coded: ChunkedSource, voter: str = "auto") -> SourceVoter:
        if self.source is not None:
            self.source.close()
        self.source = DaskSource.spread(self.client, coded)
        return SourceVoter(self.source, voter)

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
            self.source = None
        for obj in self._owns:
            obj.close()
        self._owns = ()

    def __enter__(self) -> DaskVoting:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_future(x: Any) -> bool:
    try:
        from distributed import Future  # noqa: PLC0415 - extra 'dask'
    except ImportError:
        return False
    return isinstance(x, Future)

