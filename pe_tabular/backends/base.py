"""The Backend contract: a generator used only through inference.

``random`` draws fresh candidates from public knowledge; ``vary`` makes neighbours of chosen
candidates, with ``degree`` in [0, 1] setting how far (1 = as far as a fresh draw). Backends never
see private data: the evolution loop only hands them synthetic populations.

Optional feedback: a backend with a method ``observe(population, noisy_counts, step, steps)`` gets,
after each vote but the last, the voted population and its *released* noisy histogram (so anything
it does with them is post-processing). The mixture uses it to plan how many candidates each source
makes next (pe_tabular/backends/mixture.py).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from pe_tabular.population import Population


@runtime_checkable
class Backend(Protocol):
    name: str

    def random(self, n: int, *, label: Any = None, rng: np.random.Generator) -> Population:
        """n fresh candidates (all of class ``label`` when given)."""
        ...

    def vary(self, pop: Population, degree: float, rng: np.random.Generator) -> Population:
        """One variation per sample of ``pop``; must keep ``label`` and set ``parent`` by the caller."""
        ...
