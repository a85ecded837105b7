"""Budget schedules: exact spending, the GDP privacy filter, and the adaptive policy's decisions."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pe_tabular.audit import BoxBackend, IdentityEncoder
from pe_tabular.evolution import Evolution, EvolutionConfig
from pe_tabular.population import Population
from pe_tabular.privacy import schedules
from pe_tabular.privacy.accountant import gdp_epsilon, gdp_mu, schedule_sigmas
from pe_tabular.privacy.ledger import BudgetExceeded, Ledger
from pe_tabular.privacy.noise import NoiseSource
from pe_tabular.privacy.schedules import (
    BUDGET_NAMES,
    AdaptivePolicy,
    Scheduled,
    geometric,
    make_policy,
    noise_share,
    uniform,
)

DELTA = 1e-5


def _drive(policy, ledger: Ledger, histories, max_t: int = 100) -> list[float]:
    """Ask the policy for σ_t and charge each to the ledger (which raises on overspending)."""
    sigmas, history = [], []
    for t in range(1, max_t + 1):
        s = policy.next_sigma(t, ledger, history)
        if s is None:
            break
        ledger.record(t, s, 1.0, f"vote {t}", 10)
        sigmas.append(s)
        history.append({**histories(t), "iteration": t, "sigma": s})
    return sigmas


def _toy_run(policy, mu: float, iterations: int, seed: int = 0, ledger: Ledger | None = None):
    rng = np.random.default_rng(seed)
    private = np.clip(rng.normal(0.3, 0.05, (300, 2)), 0, 1).astype(np.float32)
    cfg = EvolutionConfig.build(iterations, 60, degree=0.5, voter="numpy")
    ledger = ledger if ledger is not None else Ledger(DELTA, mu_budget=mu)
    evo = Evolution(BoxBackend(dim=2), IdentityEncoder(), cfg, policy, ledger, NoiseSource(test_seed=seed), rng)
    return evo.run(private), ledger


# -- fixed schedules ---------------------------------------------------------------------------------
@pytest.mark.parametrize("eps,T", [(0.5, 1), (1.0, 5), (4.0, 12)])
def test_uniform_and_geometric_spend_exactly_mu_squared(eps, T):
    mu = gdp_mu(eps, DELTA)
    for policy in (uniform(mu, T), geometric(mu, T, ratio=1.7)):
        ledger = Ledger(DELTA, mu_budget=mu)
        sigmas = _drive(policy, ledger, lambda t: {})
        assert len(sigmas) == T
        assert ledger.rho_spent == pytest.approx(mu**2, rel=1e-12)
        assert ledger.epsilon == pytest.approx(eps, rel=1e-9)


def test_geometric_precision_grows_by_the_ratio():
    mu, T, r = gdp_mu(1.0, DELTA), 6, 1.7
    prec = 1.0 / np.array(geometric(mu, T, ratio=r).sigmas) ** 2
    np.testing.assert_allclose(prec[1:] / prec[:-1], r, rtol=1e-12)
    np.testing.assert_allclose(geometric(mu, T, ratio=1.0).sigmas, uniform(mu, T).sigmas, rtol=1e-12)
    assert uniform(mu, T).sigmas == tuple(schedule_sigmas(mu, T))


def test_fixed_schedule_stops_instead_of_overspending_after_an_earlier_release(caplog):
    mu, T = gdp_mu(1.0, DELTA), 4
    ledger = Ledger(DELTA, mu_budget=mu)
    ledger.record(0, 1.0 / (0.5 * mu), 1.0, "label shares", 2)  # a quarter of μ² already spent
    with caplog.at_level(logging.WARNING):
        sigmas = _drive(uniform(mu, T), ledger, lambda t: {})
    assert len(sigmas) == 3  # the 4th uniform vote no longer fits
    assert ledger.rho_spent <= mu**2 * (1 + 1e-9)
    assert "stopping early" in caplog.text


# -- the filter cannot be bypassed ---------------------------------------------------------------------
class _Greedy:
    """A broken policy asking for 10x less noise than the budget allows."""

    def __init__(self, mu: float, T: int):
        self.sigmas = [s / 10 for s in schedule_sigmas(mu, T)]

    def next_sigma(self, t, ledger, history):
        return self.sigmas[t - 1]


def test_ledger_refuses_an_overspending_release_before_it_happens():
    mu = gdp_mu(1.0, DELTA)
    ledger = Ledger(DELTA, mu_budget=mu)
    with pytest.raises(BudgetExceeded, match="exceeds the remaining budget"):
        ledger.record(1, 0.5 / mu, 1.0, "vote", 10)  # costs 4 μ²
    assert ledger.releases == []


def test_evolution_refuses_a_policy_that_asks_for_too_little_noise():
    mu, T = gdp_mu(1.0, DELTA), 3
    drawn = []

    class Spy(NoiseSource):
        def gaussian(self, shape, sigma, release_key):
            drawn.append(sigma)
            return super().gaussian(shape, sigma, release_key)

    rng = np.random.default_rng(0)
    private = rng.random((50, 1)).astype(np.float32)
    cfg = EvolutionConfig.build(T, 20, degree=0.5, voter="numpy")
    ledger = Ledger(DELTA, mu_budget=mu)
    evo = Evolution(BoxBackend(), IdentityEncoder(), cfg, _Greedy(mu, T), ledger, Spy(test_seed=1), rng)
    with pytest.raises((RuntimeError, BudgetExceeded)):
        evo.run(private)
    assert drawn == [] and ledger.releases == []  # refused before any noisy histogram existed
    assert ledger.rho_spent <= mu**2


# -- policies inside a real evolution run ----------------------------------------------------------------
@pytest.mark.parametrize("name", BUDGET_NAMES)
def test_each_policy_in_a_run_reports_exactly_the_target_epsilon(name):
    eps, T = 1.0, 5
    mu = gdp_mu(eps, DELTA)
    res, ledger = _toy_run(make_policy(name, mu, T), mu, T)
    assert ledger.rho_spent <= mu**2 * (1 + 1e-9)
    assert ledger.epsilon == pytest.approx(eps, rel=1e-6)
    assert 1 <= len(res.history) <= T
    assert [r.iteration for r in ledger.releases] == list(range(1, len(res.history) + 1))


def test_adaptive_accounts_for_releases_made_before_the_votes():
    """Label shares/marginals are charged first (iteration 0); the votes get the rest, counted once."""
    eps, T = 1.0, 4
    mu = gdp_mu(eps, DELTA)
    ledger = Ledger(DELTA, mu_budget=mu)
    ledger.record(0, 1.0 / (mu * math.sqrt(0.3)), 1.0, "marginals", 5)  # 30% of μ²
    mu_left = math.sqrt(ledger.remaining_rho())
    _, ledger = _toy_run(AdaptivePolicy(mu_left, T), mu, T, ledger=ledger)
    assert ledger.rho_spent == pytest.approx(mu**2, rel=1e-9)
    assert ledger.epsilon == pytest.approx(eps, rel=1e-6)


# -- the adaptive policy -------------------------------------------------------------------------------
_stats = st.fixed_dictionaries({
    "above_threshold": st.floats(0, 1), "clipped_mass": st.floats(0, 1e9),
    "population": st.integers(0, 10**6), "top10_share": st.floats(0, 1), "ess": st.floats(0, 1e6),
})
_weird = st.one_of(_stats, st.just({}), st.fixed_dictionaries({"above_threshold": st.just(float("nan")),
                                                                 "clipped_mass": st.just(-1.0),
                                                                 "population": st.just(5)}))


@settings(max_examples=150, deadline=None)
@given(eps=st.floats(0.05, 20), T=st.integers(1, 40), start=st.floats(0.01, 1), final_share=st.floats(0, 0.95),
       growth=st.floats(1, 16), max_noise=st.floats(0, 1), hist=st.lists(_weird, min_size=40, max_size=40),
       pre=st.floats(0, 0.9))
def test_adaptive_never_overspends_and_spends_everything(eps, T, start, final_share, growth, max_noise, hist, pre):
    mu = gdp_mu(eps, DELTA)
    ledger = Ledger(DELTA, mu_budget=mu)
    if pre > 0:
        ledger.record(0, 1.0 / (mu * math.sqrt(pre)), 1.0, "pre-vote release", 3)
    policy = AdaptivePolicy(math.sqrt(ledger.remaining_rho()), T, start=start, final_share=final_share,
                            growth=growth, max_noise=max_noise)
    sigmas = _drive(policy, ledger, lambda t: hist[t - 1])  # ledger.record raises on any overspending
    assert 1 <= len(sigmas) <= T
    assert policy.next_sigma(len(sigmas) + 1, ledger, []) is None  # stopped for good
    assert ledger.rho_spent <= mu**2 * (1 + 1e-9)
    assert ledger.rho_spent == pytest.approx(mu**2, rel=1e-7)  # the remainder goes to the final vote


def test_adaptive_raises_precision_only_after_noise_dominated_histograms():
    mu, T = gdp_mu(1.0, DELTA), 10
    pol = AdaptivePolicy(mu, T, growth=2.0, max_noise=0.5)
    ledger = Ledger(DELTA, mu_budget=mu)
    s1 = pol.next_sigma(1, ledger, [])
    ledger.record(1, s1, 1.0, "vote 1", 100)
    noisy = {"iteration": 1, "sigma": s1, "population": 100, "above_threshold": 0.5, "clipped_mass": 40 * s1}
    clean = {**noisy, "above_threshold": 1.0, "clipped_mass": 1e4 * s1}
    assert pol.next_sigma(2, ledger, [noisy]) == pytest.approx(s1 / math.sqrt(2))
    assert pol.next_sigma(2, ledger, [clean]) == pytest.approx(s1)
    stale = {**noisy, "iteration": 0}  # stats not of the previous vote are ignored
    assert pol.next_sigma(2, ledger, [stale]) == pytest.approx(s1)


def test_adaptive_stops_early_when_the_budget_runs_out():
    """Always noise-dominated: precision doubles each vote until the budget cannot pay for another
    vote plus the final one; that vote takes the rest and the run stops before T."""
    mu, T = gdp_mu(1.0, DELTA), 20
    pol = AdaptivePolicy(mu, T, growth=2.0)
    ledger = Ledger(DELTA, mu_budget=mu)
    sigmas = _drive(pol, ledger, lambda t: {"population": 100, "above_threshold": 0.5, "clipped_mass": 1.0})
    assert len(sigmas) < T
    assert ledger.rho_spent == pytest.approx(mu**2, rel=1e-9)
    prec = 1 / np.array(sigmas) ** 2
    np.testing.assert_allclose(prec[1:-1] / prec[:-2], 2.0, rtol=1e-9)
    assert prec[-1] >= prec[-2]  # the final vote is the sharpest


def test_adaptive_with_spent_budget_allows_no_vote():
    mu, T = gdp_mu(1.0, DELTA), 3
    ledger = Ledger(DELTA, mu_budget=mu)
    ledger.record(0, 1.0 / mu, 1.0, "everything", 1)
    assert AdaptivePolicy(mu, T).next_sigma(1, ledger, []) is None
    with pytest.raises(RuntimeError, match="no vote at all"):
        _toy_run(AdaptivePolicy(mu, T), mu, T, ledger=ledger)


def test_adaptive_is_a_function_of_the_releases_only():
    """Same ledger and history -> same σ (so a resumed run repeats the choices from saved releases)."""
    mu, T = gdp_mu(2.0, DELTA), 6
    res, ledger = _toy_run(AdaptivePolicy(mu, T), mu, T, seed=3)
    replay = Ledger(DELTA, mu_budget=mu)
    pol = AdaptivePolicy(mu, T)
    for t, (rel, _) in enumerate(zip(ledger.releases, res.history), start=1):
        assert pol.next_sigma(t, replay, res.history[: t - 1]) == pytest.approx(rel.sigma, rel=1e-12)
        replay.record(t, rel.sigma, 1.0, rel.what, rel.size)


# -- noise_share: what the adaptive policy reads from a release ----------------------------------------
def _released_stats(counts: np.ndarray, sigma: float, threshold: float, rng) -> dict:
    """The stats the evolution loop computes for a noisy histogram (calls the engine's own _stats)."""
    m = counts.size
    cfg = EvolutionConfig.build(1, m, threshold=threshold, voter="numpy")
    evo = Evolution(BoxBackend(), IdentityEncoder(), cfg, schedules.fixed((sigma,)), Ledger(DELTA), NoiseSource(), rng)
    noisy = counts + rng.normal(0, sigma, m)
    pop = Population.fresh(np.zeros((m, 1)), "box")
    return evo._stats(1, noisy, pop, sigma, False), noisy


@pytest.mark.parametrize("threshold", [0.0, 10.0])
@pytest.mark.parametrize("signal_frac", [0.0, 0.1, 0.5, 0.9])
def test_noise_share_estimates_the_noise_part_of_the_selection_mass(threshold, signal_frac):
    rng = np.random.default_rng(7)
    m, sigma = 20_000, 8.0
    counts = np.zeros(m)
    k = int(signal_frac * m)
    counts[:k] = rng.poisson(60, k)  # well above noise
    stats, noisy = _released_stats(counts, sigma, threshold, rng)
    w = np.where(noisy >= max(threshold, 1e-12), np.maximum(noisy, 0), 0)
    true_share = w[k:].sum() / w.sum()  # mass of candidates without a single vote
    assert noise_share(stats, threshold) == pytest.approx(true_share, abs=0.03)


def test_noise_share_handles_edge_cases():
    assert noise_share({}) is None
    assert noise_share({"sigma": 0.0, "above_threshold": 0.3, "clipped_mass": 5, "population": 10}) == 0.0
    assert noise_share({"sigma": 3.0, "above_threshold": 0.0, "clipped_mass": 0, "population": 10}) == 1.0


# -- factory -------------------------------------------------------------------------------------------
def test_make_policy_names_and_errors():
    mu = gdp_mu(1.0, DELTA)
    assert isinstance(make_policy("uniform", mu, 3), Scheduled)
    g = make_policy("geometric", mu, 3, ratio=3.0, start=0.2)  # adaptive-only keywords are ignored
    assert g.sigmas == geometric(mu, 3, ratio=3.0).sigmas
    a = make_policy("adaptive", mu, 3, ratio=3.0, final_share=0.2, growth=4.0, max_noise=None)
    assert (a.final_share, a.growth, a.max_noise) == (0.2, 4.0, AdaptivePolicy(mu, 3).max_noise)
    with pytest.raises(ValueError, match="--budget"):
        make_policy("greedy", mu, 3)
    with pytest.raises(ValueError, match="final_share"):
        make_policy("adaptive", mu, 3, final_share=1.5)
    with pytest.raises(ValueError, match="--iterations"):
        make_policy("uniform", mu, 0)


def test_no_privacy_budget_means_no_noise():
    for name in BUDGET_NAMES:
        ledger = Ledger(DELTA, mu_budget=math.inf)
        sig = _drive(make_policy(name, math.inf, 3), ledger, lambda t: {})
        assert sig == [0.0, 0.0, 0.0]
        assert math.isinf(gdp_epsilon(ledger.mu, DELTA))
