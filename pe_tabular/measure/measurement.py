"""One released measurement: which public query was answered, its noisy answer, and the noise's σ.

The idea is private-pgm's ``LinearMeasurement`` (McKenna et al.): every estimate downstream of the release
path (marginals made consistent, raking targets, a second release averaged with the first) reads released
answers together with how noisy they are, so the two travel as one value. ``query`` is whatever names the
query in its wing — a tuple of column names in tables, a public binning spec in traces.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Generic, TypeVar

import numpy as np

Q = TypeVar("Q")


@dataclass(frozen=True)
class Measurement(Generic[Q]):
    """The noisy answer ``noisy`` to the public query ``query``, with Gaussian noise of std ``sigma`` per cell
    (0: released without noise)."""

    query: Q
    noisy: np.ndarray
    sigma: float

    def averaged(self, other: Measurement[Q]) -> Measurement[Q]:
        """The inverse-variance average with a second measurement of the same query (post-processing): the
        unbiased linear combination of least variance, σ = (σ₁⁻² + σ₂⁻²)^-½. Both σ must be positive."""
        w1, w2 = 1 / self.sigma**2, 1 / other.sigma**2
        return replace(self, noisy=(w1 * np.asarray(self.noisy) + w2 * np.asarray(other.noisy)) / (w1 + w2),
                       sigma=(w1 + w2) ** -0.5)
