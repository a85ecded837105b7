"""Several histograms of one chunked private source, summed in ONE pass, the first time any is needed.

Each wing releases its histograms one at a time through the release path, but reading the private data once
per histogram would cost a pass each. ``OnePass`` defers the reading to the first release that is not
restored from a checkpoint, so a resumed run whose releases are all restored reads no private data at all;
``concatenated`` and ``split`` turn several per-chunk histograms into the one vector a source sums and back.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Generic, TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)


class OnePass(Generic[K]):
    """Clean counts by key from ``compute()`` (one pass over the private source), called at most once."""

    def __init__(self, compute: Callable[[], Mapping[K, np.ndarray]]):
        self._compute = compute
        self._out: Mapping[K, np.ndarray] | None = None

    def _all(self) -> Mapping[K, np.ndarray]:
        if self._out is None:
            self._out = self._compute()
        return self._out

    def counts(self, key: K) -> Callable[[], np.ndarray]:
        """The clean counts of ``key``, as a release's lazy counting function."""
        return lambda: self._all()[key]


def concatenated(fns: Sequence[Callable[..., np.ndarray]]) -> Callable[..., np.ndarray]:
    """One chunk function giving every histogram of ``fns`` end to end (floats), for a source's sum."""
    return lambda chunk: np.concatenate([np.asarray(f(chunk), float) for f in fns])


def split(total: np.ndarray, keys: Sequence[K], sizes: Sequence[int]) -> dict[K, np.ndarray]:
    """The histograms of a concatenated ``total``, by key (``sizes`` in the order of ``keys``)."""
    return dict(zip(keys, np.split(total, np.cumsum(sizes)[:-1])))
