"""The stroke renderer: handwritten-looking digits from jittered skeleton splines (no fonts).

A sample is fully described by its genome row (see ``STROKE_GENES``): template (allograph) id,
pen width, edge softness (blur), slant, rotation, aspect, size, translation, elastic amplitudes and a
jitter of every skeleton node. Rendering is a pure function of the genome, so ``render(genome)``
reproduces a sample bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pe_tabular.population import Population
from renderers.digits.genome import Gene, GenomeSpec
from renderers.digits.geometry import ELASTIC_P, ELASTIC_W, N_ELASTIC, check_placement
from renderers.digits.raster import SIZE, render_strokes
from renderers.digits.templates import MAX_NODES, TEMPLATES, padded_tables

# shared layout with the font renderer: columns 1..16 mean the same in both (see raster.py)
COMMON_GENES = (
    Gene("soft", 1.3, 0.4, 0.6, 2.8),        # anti-aliasing band (blur) in px
    Gene("slant", 0.12, 0.25, -0.6, 0.8),    # shear: x -= slant * y
    Gene("rotation", 0.0, 0.12, -0.45, 0.45),  # radians
    Gene("aspect", 0.0, 0.2, -0.7, 0.6),     # log x-scale
    Gene("size", -0.05, 0.1, -0.4, 0.2),     # log size ('free' placement only)
    Gene("tx", 0.0, 1.0, -3.0, 3.0),         # px ('free' placement only)
    Gene("ty", 0.0, 1.0, -3.0, 3.0),
    *(Gene(f"elastic{i}", 0.0, 0.025, -0.08, 0.08) for i in range(N_ELASTIC)),
)
STROKE_GENES = GenomeSpec((
    Gene("width", 2.9, 0.9, 1.2, 6.0),      # pen width in px at the nominal 20 px digit height
    *COMMON_GENES,
    *(Gene(f"jitter{i}", 0.0, 0.045, -0.14, 0.14) for i in range(2 * MAX_NODES)),
))


def check_label(label: Any) -> int:
    try:
        d = int(label)
    except (TypeError, ValueError):
        raise ValueError(f"label must be a digit 0-9, got {label!r}") from None
    if d != label or not 0 <= d <= 9:
        raise ValueError(f"label must be a digit 0-9, got {label!r}")
    return d


class TemplateBackend:
    """Shared Backend logic: class-conditional template draws, genome variation, re-rendering."""

    spec: GenomeSpec
    name: str
    template_digits: np.ndarray  # digit of each template id

    def _init_weights(self, template_weights: Sequence[float] | None) -> None:
        n = len(self.template_digits)
        w = np.ones(n) if template_weights is None else np.asarray(template_weights, float)
        if w.shape != (n,) or np.any(w < 0):
            raise ValueError(f"template_weights needs {n} non-negative entries, one per template")
        self._w = w
        self._by_digit = {d: np.flatnonzero(self.template_digits == d) for d in range(10)}
        missing = [d for d in range(10) if self._w[self._by_digit[d]].sum() <= 0]
        if missing:
            raise ValueError(f"no template with positive weight for digit(s) {missing}")

    @property
    def n_templates(self) -> int:
        return len(self.template_digits)

    def digit_of(self, genome: np.ndarray) -> np.ndarray:
        return self.template_digits[np.asarray(genome)[:, 0].astype(np.int64)]

    def _draw_templates(self, digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.empty(len(digits))
        for d in np.unique(digits):
            ids = self._by_digit[int(d)]
            sel = np.flatnonzero(digits == d)
            out[sel] = rng.choice(ids, size=sel.size, p=self._w[ids] / self._w[ids].sum())
        return out

    def random(self, n: int, *, label: Any = None, rng: np.random.Generator) -> Population:
        digits = rng.integers(0, 10, n) if label is None else np.full(n, check_label(label))
        genome = self.spec.sample(self._draw_templates(digits, rng), rng)
        return Population.fresh(self.render(genome), self.name, genome, None if label is None else label)

    def vary(self, pop: Population, degree: float, rng: np.random.Generator) -> Population:
        g = self.spec.check(pop.genome, self.n_templates)
        genome = self.spec.vary(g, degree, self._draw_templates(self.digit_of(g), rng), rng)
        return Population(self.render(genome), np.full(len(g), self.name, dtype=object), pop.parent, genome,
                          pop.label)

    def render(self, genome: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class StrokeRenderer(TemplateBackend):
    """Backend: ``random(n, label=d)`` draws skeleton digits of class d; ``vary`` perturbs genomes.

    ``placement``: 'mnist' (fit 20×20 + centre of mass) or 'free' (Sim-PE-style size/position genes).
    ``template_weights``: optional prior weight per allograph (default uniform within a digit)."""

    spec = STROKE_GENES
    template_digits = np.array([t.digit for t in TEMPLATES], dtype=np.int64)
    _tables = padded_tables()

    def __init__(self, placement: str = "free", name: str = "stroke",
                 template_weights: Sequence[float] | None = None):
        self.placement, self.name = check_placement(placement), name
        self._init_weights(template_weights)

    def render(self, genome: np.ndarray) -> np.ndarray:
        """uint8 (n, 28, 28) images, white on black, from genome rows (deterministic)."""
        g = np.ascontiguousarray(self.spec.check(genome, self.n_templates))
        out = np.empty((len(g), SIZE, SIZE), dtype=np.uint8)
        tb = self._tables
        render_strokes(g, tb["nodes"], tb["nnodes"], tb["basis"], tb["npts"], tb["pairs"], tb["nseg"],
                       ELASTIC_W, ELASTIC_P, self.placement == "mnist", out)
        return out
