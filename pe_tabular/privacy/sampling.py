"""A Poisson subsample of the privacy units, drawn from a secret seed (see :mod:`pe_tabular.units` for how a
streamed pass applies it and why the draws do not depend on chunking).

Every unit is in the sample independently with probability q (Balle, Barthe & Gaboardi, NeurIPS 2018); the
ledger accounts such releases by PLD (:mod:`pe_tabular.privacy.subsampling`). It lives in the privacy package
because the release path draws it (:meth:`pe_tabular.privacy.release.ReleasePath.release_subsampled`) and
``pe_tabular.privacy`` imports nothing of the rest of the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pe_tabular.privacy.noise import NoiseSource

_UNIT_STREAM = 2**31  # the seed-sequence word that separates unit draws from row draws


@dataclass(frozen=True)
class PoissonSample:
    """A Poisson subsample at public rate q with a secret seed (see the module docstring)."""

    rate: float
    seed: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 0.0 < self.rate <= 1.0:
            raise ValueError(f"--sampling-rate must be in (0, 1], got {self.rate}")

    @staticmethod
    def secret(rate: float, noise: NoiseSource, stream: tuple[int, ...]) -> PoissonSample:
        """A sample whose seed comes from the privacy noise source: fresh CSPRNG bits in a real run,
        deterministic per stream only under the test-only switch (rule 3)."""
        seed = noise.generator((*stream, 0x5A3)).integers(0, 2**32, size=8, dtype=np.uint64)
        return PoissonSample(float(rate), tuple(int(s) for s in seed))

    def unit_uniforms(self, n_units: int) -> np.ndarray:
        return np.random.Generator(np.random.PCG64DXSM(np.random.SeedSequence([*self.seed, _UNIT_STREAM]))).random(
            n_units)

    def row_mask(self, part: int, offset: int, n: int) -> np.ndarray:
        """Inclusion of rows offset..offset+n-1 of partition ``part`` (row-level units): a counter-based
        draw, so any chunking of the partition gives the same mask."""
        bg = np.random.PCG64DXSM(np.random.SeedSequence([*self.seed, int(part)]))
        bg.advance(int(offset))  # one 64-bit output per double drawn
        return np.random.Generator(bg).random(n) < self.rate
