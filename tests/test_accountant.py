"""The GDP accountant against Google's dp-accounting PLD accountant, and its edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pe_tabular.privacy import (
    AccountingError,
    BudgetExceeded,
    Ledger,
    compose_mu,
    epsilon_for_sigmas,
    gdp_delta,
    gdp_epsilon,
    gdp_mu,
    schedule_sigmas,
    sigma_for_epsilon,
)

dp_accounting = pytest.importorskip("dp_accounting")


def pld_epsilon(sigma: float, T: int, delta: float) -> float:
    acc = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-3)
    acc.compose(dp_accounting.GaussianDpEvent(sigma), T)
    return acc.get_epsilon(delta)


GRID = [(s, T, d) for s, T in [(1.0, 1), (2.0, 5), (4.0, 10), (10.0, 10), (20.0, 30), (0.8, 3), (50.0, 100)]
        for d in (1e-5, 1e-3)]


def test_matches_dp_accounting_pld(report_table):
    lines = [f"{'sigma':>7} {'T':>4} {'delta':>7} {'ours':>10} {'PLD':>10} {'rel.err':>8}"]
    worst = 0.0
    for sigma, T, delta in GRID:
        ours = epsilon_for_sigmas([sigma] * T, delta)
        ref = pld_epsilon(sigma, T, delta)
        rel = abs(ours - ref) / ref
        worst = max(worst, rel)
        lines.append(f"{sigma:7.2f} {T:4d} {delta:7.0e} {ours:10.5f} {ref:10.5f} {rel:8.2%}")
        assert rel < 0.01, (sigma, T, delta, ours, ref)
    lines.append(f"worst relative error {worst:.3%} (tolerance 1%)")
    report_table("accountant vs dp-accounting PLD", lines)


def test_heterogeneous_sigmas_match_pld():
    sigmas, delta = [3.0, 5.0, 8.0, 13.0], 1e-5
    acc = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-3)
    for s in sigmas:
        acc.compose(dp_accounting.GaussianDpEvent(s))
    assert epsilon_for_sigmas(sigmas, delta) == pytest.approx(acc.get_epsilon(delta), rel=0.01)


@pytest.mark.parametrize("eps", [0.05, 0.3, 1.0, 2.0, 10.0, 50.0])
def test_round_trip(eps):
    mu = gdp_mu(eps, 1e-5)
    assert gdp_epsilon(mu, 1e-5) == pytest.approx(eps, rel=1e-8)
    sig = sigma_for_epsilon(eps, 1e-5, iterations=7)
    assert epsilon_for_sigmas(sig, 1e-5) == pytest.approx(eps, rel=1e-8)


def test_design_numbers():
    # DESIGN.md: mu ≈ 0.27 at eps=1, 0.50 at eps=2, 2.0 at eps=10; sigma ≈ 3.7, 8.3, 11.8, 20.4 for T=1,5,10,30
    assert gdp_mu(1, 1e-5) == pytest.approx(0.268, abs=0.002)
    assert gdp_mu(2, 1e-5) == pytest.approx(0.50, abs=0.005)
    assert gdp_mu(10, 1e-5) == pytest.approx(2.0, abs=0.01)
    for T, s in [(1, 3.7), (5, 8.3), (10, 11.8), (30, 20.4)]:
        assert sigma_for_epsilon(1, 1e-5, T)[0] == pytest.approx(s, abs=0.05)


def test_weighted_schedule_spends_exactly_mu():
    mu = gdp_mu(1, 1e-5)
    sig = schedule_sigmas(mu, 4, [1, 2, 4, 8])
    assert compose_mu(sig) == pytest.approx(mu, rel=1e-12)
    assert sig[0] > sig[-1]  # more precision later
    with pytest.raises(AccountingError, match="4 weights"):
        schedule_sigmas(mu, 3, [1, 2, 4, 8])


def test_infinite_and_huge_epsilon():
    assert sigma_for_epsilon(math.inf, 1e-5, 5) == [0.0] * 5
    assert compose_mu([0.0, 1.0]) == math.inf
    assert gdp_epsilon(math.inf, 1e-5) == math.inf
    big = gdp_epsilon(60.0, 1e-5)  # large but finite: a correct answer, not a silent bracket failure
    assert gdp_delta(big, 60.0) == pytest.approx(1e-5, rel=1e-6)
    huge = gdp_epsilon(1e5, 1e-5)  # ~mu^2/2: still the exact answer, found without overflow
    assert huge == pytest.approx(5e9, rel=1e-3) and gdp_delta(huge, 1e5) <= 1e-5 * (1 + 1e-6)
    with pytest.raises(AccountingError, match="above the supported"):
        gdp_mu(1e9, 1e-5)


@pytest.mark.parametrize("bad", [0.0, 1.0, -1e-5, 2.0])
def test_bad_delta(bad):
    with pytest.raises(AccountingError, match="delta"):
        gdp_mu(1.0, bad)


def test_bad_epsilon():
    with pytest.raises(AccountingError, match="epsilon"):
        gdp_mu(-1.0, 1e-5)
    with pytest.raises(AccountingError, match="epsilon 0"):
        gdp_mu(0.0, 1e-5)


def test_ledger_filter_refuses_overspend(tmp_path):
    mu = gdp_mu(1, 1e-5)
    led = Ledger(1e-5, mu_budget=mu)
    for s in sigma_for_epsilon(1, 1e-5, 3):
        led.record(1, s, 1.0, "vote", 10)
    assert led.epsilon == pytest.approx(1.0, rel=1e-6)
    with pytest.raises(BudgetExceeded):
        led.record(4, 100.0, 1.0, "one more", 10)
    path = led.save(tmp_path / "ledger.json")
    again = Ledger.load(path)
    assert again.releases == led.releases and again.epsilon == pytest.approx(led.epsilon)


def test_the_scipy_free_normal_tails_and_root_finder_match_scipy():
    """The accountant runs without scipy (start-up of `pe-tabular privacy`): its Φ, log Φ and root finder
    must give scipy's answers, deep into the tails where δ(ε) lives."""
    from scipy.optimize import brentq
    from scipy.special import log_ndtr, ndtr

    from pe_tabular.privacy import accountant as acc

    xs = np.concatenate([np.linspace(-60.0, 9.0, 4001), -np.logspace(0, 4, 400)])
    for x in xs:
        assert acc._log_ndtr(x) == pytest.approx(float(log_ndtr(x)), rel=1e-13), x
        if ndtr(x) > 1e-300:
            assert acc._ndtr(x) == pytest.approx(float(ndtr(x)), rel=1e-12), x
    for eps in (0.01, 0.3, 1.0, 8.0, 300.0):
        for delta in (1e-10, 1e-5, 0.2):
            want = brentq(lambda m, e=eps, d=delta: acc.gdp_delta(e, m) - d, 1e-12, 1e3, xtol=1e-14, rtol=1e-13)
            assert acc.gdp_mu(eps, delta) == pytest.approx(want, rel=1e-10)
            mu = acc.gdp_mu(eps, delta)
            assert acc.gdp_delta(acc.gdp_epsilon(mu, delta), mu) == pytest.approx(delta, rel=1e-8)
