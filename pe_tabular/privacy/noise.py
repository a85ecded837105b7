"""Privacy noise, kept apart from every other random choice.

Privacy noise comes from a generator seeded with 256 bits from the OS's CSPRNG (``secrets``), fresh
for every release, so ``--seed`` can never reproduce (and so never reveal) the noise. A test-only
switch, the environment variable ``PE_TABULAR_TEST_ONLY_NOISE_SEED``, makes noise deterministic per
(seed, release) so resume tests can compare runs; it is recorded in the ledger and warned about.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from dataclasses import dataclass

import numpy as np
import pandas as pd

TEST_NOISE_ENV = "PE_TABULAR_TEST_ONLY_NOISE_SEED"
log = logging.getLogger(__name__)


def _splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (uint64 → uint64, a bijection that scatters every input bit)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _unit(x: np.ndarray) -> np.ndarray:
    """uint64 → [0, 1) from the top 53 bits."""
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


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

    def keyed_gaussian(self, keys: np.ndarray, sigma: float, release_key: tuple[int, ...]) -> np.ndarray:
        """Noise for cells named by ``keys`` (a thresholded release's private cells). In a real run these are
        i.i.d. draws like :meth:`gaussian` (which cell gets which draw carries nothing). Under the test-only
        switch each cell's noise is a function of (seed, release, the cell's key) — not of its position — so
        a D-vs-D′ comparison sees the same noise on a key whether or not other keys come or go."""
        keys = np.asarray(keys)
        if self.test_seed is None or sigma == 0:
            return self.gaussian(keys.shape, sigma, release_key)
        numeric = keys.dtype.kind in "biuf"
        h = pd.util.hash_array(keys if numeric else keys.astype(str).astype(object), categorize=False)
        salt = int.from_bytes(hashlib.blake2b(repr((self.test_seed, *release_key)).encode(), digest_size=8).digest(),
                              "little")
        u1 = 1.0 - _unit(_splitmix(h ^ np.uint64(salt)))  # in (0, 1]
        u2 = _unit(_splitmix(h ^ np.uint64(salt ^ 0x9E3779B97F4A7C15)))
        return sigma * np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)  # Box-Muller


def noise_source() -> NoiseSource:
    """The noise source for this process: secure unless the test-only switch is set."""
    raw = os.environ.get(TEST_NOISE_ENV)
    if raw is None or raw == "":
        return NoiseSource()
    log.warning("%s is set: privacy noise is DETERMINISTIC. This is for tests only; "
                "the output is NOT differentially private.", TEST_NOISE_ENV)
    return NoiseSource(test_seed=int(raw))
