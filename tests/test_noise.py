"""Privacy noise: the claimed sigma is the sigma added; secure noise is not reproducible by --seed."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pe_tabular.evolution import release_histogram
from pe_tabular.privacy import Ledger, NoiseSource, noise_source
from pe_tabular.privacy.noise import TEST_NOISE_ENV


@pytest.mark.parametrize("sigma", [0.5, 3.7, 20.0])
def test_added_noise_has_claimed_sigma(sigma):
    counts = np.arange(200_000, dtype=float) % 7  # the mechanism must not depend on the counts
    led = Ledger(1e-5)
    noisy = release_histogram(counts, sigma, "k", 1, led, NoiseSource(), None, "test", (1, 0))
    z = noisy - counts
    n = z.size
    # chi-square 99.9% interval for the sample variance, and normality (KS) of z / sigma
    lo, hi = stats.chi2.ppf([0.0005, 0.9995], n - 1) / (n - 1)
    assert lo <= z.var(ddof=1) / sigma**2 <= hi
    assert abs(z.mean()) < 4 * sigma / np.sqrt(n)
    assert stats.kstest(z / sigma, "norm").pvalue > 1e-3
    assert led.releases[0].sigma == sigma and led.releases[0].sensitivity == 1.0


def test_secure_noise_differs_every_time_and_ignores_seeds():
    src = NoiseSource()
    a = src.gaussian(1000, 1.0, (1, 0))
    b = src.gaussian(1000, 1.0, (1, 0))
    assert not np.allclose(a, b)
    np.random.seed(0)  # noqa: NPY002 - global seeding must not fix privacy noise either
    c = src.gaussian(1000, 1.0, (1, 0))
    np.random.seed(0)  # noqa: NPY002
    d = src.gaussian(1000, 1.0, (1, 0))
    assert not np.allclose(c, d)


def test_deterministic_switch_is_test_only_and_recorded(monkeypatch):
    monkeypatch.delenv(TEST_NOISE_ENV, raising=False)
    assert noise_source().mode == "secure"
    monkeypatch.setenv(TEST_NOISE_ENV, "7")
    src = noise_source()
    assert src.mode == "deterministic-test-only"
    assert np.array_equal(src.gaussian(10, 1.0, (3, 0)), src.gaussian(10, 1.0, (3, 0)))
    assert not np.array_equal(src.gaussian(10, 1.0, (3, 0)), src.gaussian(10, 1.0, (4, 0)))


def test_release_is_charged_before_noise_is_drawn():
    led = Ledger(1e-5, mu_budget=0.1)
    with pytest.raises(ValueError, match="exceeds the remaining budget"):
        release_histogram(np.ones(5), 1.0, "k", 1, led, NoiseSource(), None, "too expensive", (1, 0))
    assert led.releases == []
