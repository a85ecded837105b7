"""A minimal mixture of digit renderers in one evolution (until the general engine Mixture exists).

Each component keeps its own genome layout; the mixture's genome is ``[component, *component genome,
NaN padding]`` so populations from different renderers can be concatenated, checkpointed and varied:
``vary`` hands every sample back to the renderer that made it, so a font sample stays a font sample
and PE's votes decide how much of the final data each renderer contributes (reported per iteration
as ``source_share``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pe_tabular.population import Population
from renderers.digits.stroke import check_label


class DigitMixture:
    def __init__(self, components: Sequence[Any], weights: Sequence[float] | None = None, name: str = "mix"):
        if len(components) < 1:
            raise ValueError("a mixture needs at least one renderer")
        self.components = list(components)
        w = np.ones(len(components)) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (len(components),) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"mixture weights must be {len(components)} non-negative numbers, not all zero")
        self.weights = w / w.sum()
        self.name = name
        self.width = 1 + max(c.spec.width for c in self.components)

    def _pad(self, j: int, genome: np.ndarray) -> np.ndarray:
        out = np.full((len(genome), self.width), np.nan)
        out[:, 0] = j
        out[:, 1:1 + genome.shape[1]] = genome
        return out

    def _split(self, genome: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
        g = np.asarray(genome, dtype=np.float64)
        if g.ndim != 2 or g.shape[1] != self.width:
            raise ValueError(f"mixture genome has shape {g.shape}, expected (n, {self.width})")
        comp = g[:, 0]
        if np.any(~np.isin(comp, np.arange(len(self.components)))):
            raise ValueError(f"mixture genome column 0 must be a component index 0..{len(self.components) - 1}")
        parts = []
        for j, c in enumerate(self.components):
            rows = np.flatnonzero(comp == j)
            if rows.size:
                parts.append((j, rows, g[rows, 1:1 + c.spec.width]))
        return parts

    def random(self, n: int, *, label: Any = None, rng: np.random.Generator) -> Population:
        if label is not None:
            check_label(label)
        counts = rng.multinomial(n, self.weights)
        pops = []
        for j, (c, m) in enumerate(zip(self.components, counts)):
            if m:
                p = c.random(int(m), label=label, rng=rng)
                pops.append(Population(p.samples, p.source, p.parent, self._pad(j, p.genome), p.label))
        pop = Population.concat(pops)
        return pop.take(rng.permutation(len(pop)))

    def vary(self, pop: Population, degree: float, rng: np.random.Generator) -> Population:
        samples = np.empty_like(np.asarray(pop.samples))
        genome = np.full((len(pop), self.width), np.nan)
        source = np.empty(len(pop), dtype=object)
        for j, rows, g in self._split(pop.genome):
            c = self.components[j]
            sub = Population(samples[rows], pop.source[rows], pop.parent[rows], g, None)
            out = c.vary(sub, degree, rng)
            samples[rows], genome[rows], source[rows] = out.samples, self._pad(j, out.genome), out.source
        return Population(samples, source, pop.parent, genome, pop.label)

    def render(self, genome: np.ndarray) -> np.ndarray:
        parts = self._split(genome)
        out = np.empty((len(genome), 28, 28), dtype=np.uint8)
        for j, rows, g in parts:
            out[rows] = self.components[j].render(g)
        return out

    def digit_of(self, genome: np.ndarray) -> np.ndarray:
        out = np.empty(len(genome), dtype=np.int64)
        for j, rows, g in self._split(genome):
            out[rows] = self.components[j].digit_of(g)
        return out
