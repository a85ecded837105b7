"""Encoders turn samples into arrays whose distance the voting kernels compute.

Two metric families, both understood by every voting kernel:

* ``MixedMetric`` — integer codes, one column per field, each with a distance *kind* and an integer
  weight. All arithmetic is exact integer arithmetic, so the numpy, numba and JAX kernels agree
  bit-for-bit (ties included) whatever their summation order. Kinds:
  CAT (w·[a≠b]), ABS (w·|a−b|), SQ (w·(a−b)²), IPV4 (w·(32 − common prefix length)),
  PORT (0 if equal, w if same service class, 3w otherwise).
* ``L2Metric`` — float32 vectors under squared Euclidean distance (images, embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

CAT, ABS, SQ, IPV4, PORT = 0, 1, 2, 3, 4
KIND_NAMES = {"cat": CAT, "abs": ABS, "sq": SQ, "ipv4": IPV4, "port": PORT}


@dataclass(frozen=True)
class MixedMetric:
    kinds: np.ndarray  # int8 (c,)
    weights: np.ndarray  # int64 (c,)

    def __post_init__(self) -> None:
        if self.kinds.shape != self.weights.shape:
            raise ValueError("MixedMetric kinds and weights must have one entry per column")
        if np.any(self.weights < 0):
            raise ValueError("MixedMetric weights must be >= 0")


@dataclass(frozen=True)
class L2Metric:
    pass


Metric = MixedMetric | L2Metric


@runtime_checkable
class Encoder(Protocol):
    metric: Metric

    def encode(self, samples: Any) -> np.ndarray:
        """int64 (n, c) codes for a MixedMetric, float32 (n, d) for L2Metric."""
        ...


def port_class(p: np.ndarray) -> np.ndarray:
    """0 = well-known (<1024), 1 = registered (<49152), 2 = ephemeral."""
    p = np.asarray(p)
    return np.where(p < 1024, 0, np.where(p < 49152, 1, 2))
