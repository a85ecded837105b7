"""Privacy noise, kept apart from every other random choice.

Privacy noise comes from a generator seeded with 256 bits from the OS's CSPRNG (``secrets``), fresh
for every release, so ``--seed`` can never reproduce (and so never reveal) the noise. A test-only
switch, the environment variable ``PE_TABULAR_TEST_ONLY_NOISE_SEED``, makes noise deterministic per
(seed, release) so resume tests can compare runs; it is recorded in the ledger and warned about.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass

import numpy as np

TEST_NOISE_ENV = "PE_TABULAR_TEST_ONLY_NOISE_SEED"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NoiseSource:
    """Draws Gaussian noise for a named release. ``test_seed`` is None in every real run."""

    test_seed: int | None = None

    @property
    def mode(self) -> str:
        return "secure" if self.test_seed is None else "deterministic-test-only"

    def generator(self, release_key: tuple[int, ...]) -> np.random.Generator:
        if self.test_seed is None:
            return np.random.Generator(np.random.PCG64DXSM(secrets.randbits(256)))
        # SeedSequence takes non-negative integers only; a negative key (e.g. the schema stage's stream -1)
        # maps to 2**64 + k, far from every non-negative key in use
        key = [int(k) if int(k) >= 0 else 2**64 + int(k) for k in release_key]
        return np.random.Generator(np.random.PCG64DXSM([self.test_seed, *key]))

    def gaussian(self, shape: int | tuple[int, ...], sigma: float, release_key: tuple[int, ...]) -> np.ndarray:
        if sigma == 0:
            return np.zeros(shape)
        return self.generator(release_key).normal(0.0, sigma, size=shape)


def noise_source() -> NoiseSource:
    """The noise source for this process: secure unless the test-only switch is set."""
    raw = os.environ.get(TEST_NOISE_ENV)
    if raw is None or raw == "":
        return NoiseSource()
    log.warning("%s is set: privacy noise is DETERMINISTIC. This is for tests only; "
                "the output is NOT differentially private.", TEST_NOISE_ENV)
    return NoiseSource(test_seed=int(raw))
