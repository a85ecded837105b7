"""Votes computed chunk by chunk on encoded codes of a streamed source (this process or Dask workers).

:class:`SourceVoter` is a ``VoteFn`` (``voting.registry.VoteFn``) for ``Evolution(vote_fn=...)`` whose
private rows are an encoded :class:`~pe_tabular.source.ChunkedSource` or
:class:`~pe_tabular.dask_source.DaskSource` (``source.map_codes(encoder.encode, ...)``): every
iteration, each chunk's rows pick their k nearest candidates (of their own class, when labelled) with
the chosen kernel, and the chunk returns its weighted vote histogram; the source adds them up. Nothing
but that histogram leaves a chunk.

Sensitivity: a row's vote vector has L2 norm 1 (k votes of 1/√k); rows are weighted 1 (record-level) or
1/n_u (unit-level, n_u the unit's rows over the whole data set, :mod:`pe_tabular.units`), so one unit
moves the histogram by ≤ 1 however its rows are spread over chunks, files and workers. (In memory, the
engine instead scales each group's summed vote vector to norm exactly 1, ``vote_histogram``; the
streaming rule needs no group to be whole in a chunk, and gives a group whose rows disagree a smaller
vote.)

With ``Evolution(config with sampling_rate q < 1)``, the evolution hands each call a secret
:class:`~pe_tabular.privacy.sampling.PoissonSample` and only the sampled units vote (``supports_sampling``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pe_tabular.privacy.sampling import PoissonSample
from pe_tabular.source import Chunk
from pe_tabular.voting.registry import class_conditional_nearest, get_voter

PROGRESS_UNITS = 1_000_000  # what the handle's len() says: a public constant, never the number of rows


@dataclass(frozen=True)
class StreamedPrivate:
    """Stands for private rows that live in a source; ``len`` is a public constant (progress units), so
    ``Evolution`` never learns the number of private rows."""

    def __len__(self) -> int:
        return PROGRESS_UNITS


@dataclass(frozen=True)
class VoteChunk:
    """The per-chunk vote: k-NN (class-conditional when candidates are labelled), weight/√k per vote.
    A picklable object, so Dask workers can run it."""

    candidates: np.ndarray
    metric: Any
    k: int
    candidate_labels: np.ndarray | None
    voter: str = "auto"

    def __call__(self, chunk: Chunk) -> np.ndarray:
        codes = chunk.data
        labels = codes.labels if self.candidate_labels is not None else None
        if self.candidate_labels is not None and labels is None:
            raise ValueError("the candidates are labelled but the source has no label_column")
        nn = class_conditional_nearest(get_voter(self.voter), codes.codes, self.candidates, self.metric, self.k,
                                       labels, self.candidate_labels)
        w = np.repeat(chunk.weights / math.sqrt(self.k), self.k)
        return np.bincount(nn.ravel(), weights=w, minlength=self.candidates.shape[0]).astype(np.float64)


class SourceVoter:
    """A ``VoteFn`` over an encoded source (see the module docstring). Run ``Evolution.run(voter.private)``."""

    supports_sampling = True

    def __init__(self, source: Any, voter: str = "auto"):
        self.source, self.voter = source, voter
        self.private = StreamedPrivate()

    def __call__(self, private: Any, candidates: np.ndarray, metric: Any, k: int,
                 private_labels: np.ndarray | None, candidate_labels: np.ndarray | None,
                 groups: np.ndarray | None, progress: Callable[[int], None] | None = None,
                 sample: PoissonSample | None = None) -> np.ndarray:
        if private_labels is not None or groups is not None:
            raise ValueError("with a streamed source the labels and units live in the source: give label_column to "
                             "map_codes and unit= to the source, not arrays to Evolution.run")
        fn = VoteChunk(np.ascontiguousarray(candidates), metric, int(k),
                       None if candidate_labels is None else np.asarray(candidate_labels), self.voter)
        done = [0]

        def report(fraction: float) -> None:  # progress in public units, from the source's fraction
            if progress is not None:
                step = int(fraction * PROGRESS_UNITS) - done[0]
                if step > 0:
                    done[0] += step
                    progress(step)

        return self.source.sum(fn, sample=sample, desc="voting", report=report,
                               empty=lambda: np.zeros(candidates.shape[0]))
