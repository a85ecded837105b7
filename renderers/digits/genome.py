"""Continuous genomes: named genes with a public prior, and the degree-scaled variation move.

Every rendered sample keeps its genome (one float row), so a population can be re-rendered,
checkpointed and varied without the images. Column 0 is always the template id (an integer stored
as float: a font×digit or allograph×digit index, which also fixes the label).

Variation (``vary``) is an autoregressive move towards the prior: g' = m + √(1−d²)(g − m) + d·s·ε.
Its step has standard deviation d·s, and at d = 1 it is exactly a fresh draw from the prior, which
is the contract of ``Backend.vary`` (degree 1 = as far as ``random``). Because the move keeps the
prior stationary, repeated variation never drifts to absurd parameters. The template id is redrawn
with probability d³: small degrees keep the allograph, large ones may switch it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Gene:
    name: str
    mean: float
    std: float
    lo: float
    hi: float


@dataclass(frozen=True)
class GenomeSpec:
    genes: tuple[Gene, ...]  # continuous genes, columns 1..g

    @property
    def width(self) -> int:
        return 1 + len(self.genes)

    @property
    def names(self) -> tuple[str, ...]:
        return ("template",) + tuple(g.name for g in self.genes)

    def col(self, name: str) -> int:
        return self.names.index(name)

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(np.array([getattr(g, a) for g in self.genes]) for a in ("mean", "std", "lo", "hi"))

    def sample(self, templates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Fresh genomes (n, width) for the given template ids, continuous genes from the prior."""
        m, s, lo, hi = self._arrays()
        n = len(templates)
        out = np.empty((n, self.width))
        out[:, 0] = templates
        out[:, 1:] = np.clip(m + s * rng.standard_normal((n, len(m))), lo, hi)
        return out

    def vary(self, genome: np.ndarray, degree: float, new_templates: np.ndarray, rng: np.random.Generator,
             ) -> np.ndarray:
        """Perturb ``genome`` with step d·s; ``new_templates`` are used where a template switch is drawn."""
        if not 0.0 <= degree <= 1.0:
            raise ValueError(f"variation degree must be in [0, 1], got {degree}")
        g = np.asarray(genome, dtype=np.float64)
        if g.ndim != 2 or g.shape[1] != self.width:
            raise ValueError(f"genome has shape {g.shape}, expected (n, {self.width}) for this renderer")
        m, s, lo, hi = self._arrays()
        out = g.copy()
        keep = np.sqrt(max(1.0 - degree**2, 0.0))
        out[:, 1:] = np.clip(m + keep * (g[:, 1:] - m) + degree * s * rng.standard_normal(g[:, 1:].shape), lo, hi)
        switch = rng.random(len(g)) < degree**3
        out[switch, 0] = new_templates[switch]
        return out

    def check(self, genome: np.ndarray, n_templates: int) -> np.ndarray:
        g = np.asarray(genome, dtype=np.float64)
        if g.ndim != 2 or g.shape[1] != self.width:
            raise ValueError(f"genome has shape {g.shape}, expected (n, {self.width}) for this renderer")
        t = g[:, 0]
        if np.any(t != np.round(t)) or np.any(t < 0) or np.any(t >= n_templates):
            raise ValueError(f"genome column 0 (template id) must hold integers in [0, {n_templates})")
        return g
