"""A population of synthetic candidates with provenance.

Samples can be a DataFrame (tables, flows) or an ndarray (images). ``genome`` holds whatever a
simulator/renderer needs to vary or re-render a sample; ``source`` names the backend that made each
sample; ``parent`` is the index of the sample it was varied from in the previous population (−1 for
fresh ``random`` draws); ``label`` is the class for class-conditional runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

Samples = Any  # pd.DataFrame | np.ndarray


def _take(x: Any, idx: np.ndarray) -> Any:
    if x is None:
        return None
    if isinstance(x, pd.DataFrame):
        return x.iloc[idx].reset_index(drop=True)
    return np.asarray(x)[idx]


def _concat(parts: list[Any]) -> Any:
    if parts[0] is None:
        if any(p is not None for p in parts):
            raise ValueError("cannot concatenate populations where only some carry a genome")
        return None
    if isinstance(parts[0], pd.DataFrame):
        return pd.concat(parts, ignore_index=True)
    return np.concatenate([np.asarray(p) for p in parts], axis=0)


@dataclass(frozen=True)
class Population:
    samples: Samples
    source: np.ndarray  # str per sample
    parent: np.ndarray  # int64 per sample, -1 = fresh
    genome: Any = None
    label: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.samples)
        for name in ("source", "parent", "label"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ValueError(f"Population.{name} has {len(v)} entries for {n} samples")
        if self.genome is not None and len(self.genome) != n:
            raise ValueError(f"Population.genome has {len(self.genome)} entries for {n} samples")

    def __len__(self) -> int:
        return len(self.samples)

    @classmethod
    def fresh(cls, samples: Samples, source: str, genome: Any = None, label: Any = None) -> Population:
        n = len(samples)
        lab = None if label is None else np.broadcast_to(np.asarray(label), (n,)).copy()
        return cls(samples, np.full(n, source, dtype=object), np.full(n, -1, dtype=np.int64), genome, lab)

    def take(self, idx: np.ndarray) -> Population:
        idx = np.asarray(idx, dtype=np.int64)
        return Population(
            _take(self.samples, idx), self.source[idx], self.parent[idx], _take(self.genome, idx),
            None if self.label is None else self.label[idx],
        )

    def with_parents(self, parent: np.ndarray) -> Population:
        return replace(self, parent=np.asarray(parent, dtype=np.int64))

    @staticmethod
    def concat(pops: list[Population]) -> Population:
        pops = [p for p in pops if len(p) > 0] or pops[:1]
        labels = [p.label for p in pops]
        if any(lab is None for lab in labels) and not all(lab is None for lab in labels):
            raise ValueError("cannot concatenate labelled and unlabelled populations")
        return Population(
            _concat([p.samples for p in pops]),
            np.concatenate([p.source for p in pops]),
            np.concatenate([p.parent for p in pops]),
            _concat([p.genome for p in pops]),
            None if labels[0] is None else np.concatenate(labels),
        )
