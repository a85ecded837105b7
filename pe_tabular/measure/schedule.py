"""The variation-degree schedule of a PE run (public: read from settings only)."""

from __future__ import annotations

import numpy as np


def degree_schedule(iterations: int, start: float, end: float) -> tuple[float, ...]:
    """The T−1 variation degrees of a T-iteration run, decaying geometrically from ``start`` to ``end``.

    Coarse moves first, fine ones last: early candidates are far from the data and need large steps, late
    ones sit near it. A run of one iteration varies nothing, so its schedule is empty."""
    if iterations <= 1:
        return ()
    return tuple(float(d) for d in np.geomspace(start, end, iterations - 1))
