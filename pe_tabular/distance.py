"""Encoders turn samples into arrays whose distance the voting kernels compute.

Two metric families, both understood by every voting kernel:

* ``MixedMetric`` — integer codes, one column per field, each with a distance *kind* and an integer
  weight. All arithmetic is exact integer arithmetic, so the numpy, numba and JAX kernels agree
  bit-for-bit (ties included) whatever their summation order. Kinds:
  CAT (w·[a≠b]), ABS (w·|a−b|), SQ (w·(a−b)²), IPV4 (w·(32 − common prefix length)).
  IPV4 is a generic *common binary prefix* distance on unsigned 32-bit codes (the bit length of
  a XOR b), for any code whose leading bits form a hierarchy; IPv4 addresses are the use that
  named it. Domain distances are composed by the wings from these kinds — e.g. a value and its
  coarse class as two CAT columns of weights w and w′ give 0 / w / w + w′ for equal / same class /
  other class — so the engine needs no domain kind.
* ``L2Metric`` — float32 vectors under squared Euclidean distance (images, embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

# Kind codes are stable across versions: 4 is retired and stays unassigned, so a metric still using it
# fails loudly (unknown kind) instead of silently meaning another distance.
CAT, ABS, SQ, IPV4 = 0, 1, 2, 3
KIND_NAMES = {"cat": CAT, "abs": ABS, "sq": SQ, "ipv4": IPV4}


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

