"""Fast empirical privacy audit: the correct mechanism passes, deliberately broken ones are caught.

A lower bound above the claimed ε proves a privacy bug; the audit runs the library's own voting,
release and evolution code, so a regression there (less noise, a lost 1/√k weight) fails these tests.
Noise is seeded (test-only NoiseSource) so the outcome is reproducible; the margins are several
standard deviations wide, not tuned to one seed.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.stats import binomtest

from pe_tabular.audit import (
    ScaledNoise,
    UnweightedEvolution,
    audit_pe_run,
    audit_voting,
    clopper_pearson,
    epsilon_lower_bound,
    unweighted_vote_histogram,
)
from pe_tabular.privacy.accountant import gdp_epsilon, gdp_mu
from pe_tabular.privacy.noise import NoiseSource

DELTA = 1e-5


@pytest.fixture(autouse=True)
def _quiet():
    logging.disable(logging.WARNING)  # uniform-fallback warnings of the tiny audit runs
    yield
    logging.disable(logging.NOTSET)


# -- the statistics ------------------------------------------------------------------------------------
@pytest.mark.parametrize("k,n", [(0, 50), (1, 50), (17, 50), (50, 50), (3, 10_000)])
def test_clopper_pearson_matches_scipy_exact_interval(k, n):
    lo, hi = clopper_pearson(k, n)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert float(lo) == pytest.approx(ci.low, abs=1e-12)
    assert float(hi) == pytest.approx(ci.high, abs=1e-12)


def test_lower_bound_is_a_95_percent_bound_on_randomized_response():
    """Randomized response is exactly ε-DP and a threshold test attains it: the bound must fall
    below ε in at least ~95% of repeated audits, and get close to ε with many runs."""
    eps, n, reps = 1.5, 1000, 200
    rng = np.random.default_rng(11)
    p_in = np.exp(eps) / (1 + np.exp(eps))
    above = 0
    for _ in range(reps):
        out = (rng.random(n) < 1 - p_in).astype(float)
        inn = (rng.random(n) < p_in).astype(float)
        above += epsilon_lower_bound(out, inn, 0.0).epsilon_lb > eps
    assert above <= 0.05 * reps + 2 * np.sqrt(0.05 * 0.95 * reps)
    big = 200_000
    lb = epsilon_lower_bound((rng.random(big) < 1 - p_in).astype(float), (rng.random(big) < p_in).astype(float), 0.0)
    assert 0.9 * eps < lb.epsilon_lb <= eps


def test_lower_bound_is_zero_when_the_canary_changes_nothing():
    rng = np.random.default_rng(5)
    assert epsilon_lower_bound(rng.normal(size=20_000), rng.normal(size=20_000), DELTA).epsilon_lb < 0.15


def test_lower_bound_of_a_gaussian_shift_stays_below_its_gdp_epsilon():
    rng = np.random.default_rng(6)
    for mu in (0.5, 2.0):
        lb = epsilon_lower_bound(rng.normal(size=50_000), rng.normal(mu, 1, 50_000), DELTA).epsilon_lb
        assert 0.3 * mu < lb <= gdp_epsilon(mu, DELTA)


# -- (a) the voting release alone -------------------------------------------------------------------------
RUNS = 50_000


@pytest.mark.parametrize("k", [1, 16])
def test_correct_vote_release_passes_the_audit(k):
    r = audit_voting(1.0, DELTA, RUNS, k=k, noise=NoiseSource(test_seed=100 + k))
    assert r.claimed_epsilon == 1.0
    assert r.details["sigma"] == pytest.approx(1 / gdp_mu(1.0, DELTA))
    assert not r.violated, r


def test_vote_release_with_a_quarter_of_the_noise_is_caught():
    r = audit_voting(1.0, DELTA, RUNS, noise=ScaledNoise(test_seed=201, scale=0.25), variant="sigma/4")
    assert r.violated and r.epsilon_lb > 1.5, r


def test_knn_votes_without_the_sqrt_k_weight_are_caught():
    r = audit_voting(1.0, DELTA, RUNS, k=16, noise=NoiseSource(test_seed=202),
                     histogram_fn=unweighted_vote_histogram, variant="no 1/sqrt(k)")
    assert r.violated and r.epsilon_lb > 1.5, r


# -- (b) a short full PE run ------------------------------------------------------------------------------
PE_RUNS = 900  # per side; the broken variants' bound is ~2.6 ± 0.2 against the claimed 2 at this size


def test_correct_pe_run_passes_the_audit():
    results = audit_pe_run(2.0, DELTA, PE_RUNS // 2, iterations=3, deterministic_noise=True, seed=1)
    for r in results:
        assert r.claimed_epsilon == pytest.approx(2.0, rel=1e-6)  # the ledger's ε for the run
        assert not r.violated, r


def test_pe_run_with_a_quarter_of_the_noise_is_caught():
    results = audit_pe_run(2.0, DELTA, PE_RUNS, iterations=3, noise_scale=0.25, deterministic_noise=True, seed=2,
                           variant="sigma/4")
    assert results[0].violated, results[0]


def test_pe_run_knn_without_the_sqrt_k_weight_is_caught():
    results = audit_pe_run(2.0, DELTA, PE_RUNS, iterations=3, k=16, evolution_cls=UnweightedEvolution,
                           deterministic_noise=True, seed=3, variant="no 1/sqrt(k)")
    assert results[0].violated, results[0]
