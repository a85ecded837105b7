"""A tiny 2-D point backend for engine tests (public uniform prior on [0, 100]²)."""

from __future__ import annotations

import numpy as np

from pe_tabular.distance import L2Metric
from pe_tabular.population import Population


class PointBackend:
    name = "points"

    def __init__(self, name: str = "points", spread: float = 20.0):
        self.name, self.spread = name, spread
        self.seen: list[np.ndarray] = []  # everything the backend was ever handed

    def random(self, n, *, label=None, rng):
        return Population.fresh(rng.uniform(0, 100, (n, 2)).astype(np.float32), self.name, label=label)

    def vary(self, pop, degree, rng):
        self.seen.append(np.asarray(pop.samples).copy())
        x = np.clip(pop.samples + rng.normal(0, self.spread * degree, pop.samples.shape), 0, 100)
        return Population.fresh(x.astype(np.float32), self.name)


class PointEncoder:
    metric = L2Metric()

    def encode(self, samples):
        return np.asarray(samples, dtype=np.float32)


def two_clusters(rng, n=2000):
    return np.concatenate([rng.normal(20, 3, (n // 2, 2)), rng.normal(75, 3, (n // 2, 2))]).astype(np.float32)
