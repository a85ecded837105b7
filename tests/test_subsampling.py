"""PLD accounting of Poisson-subsampled Gaussian releases (pe_tabular.privacy.subsampling) and the
ledger/evolution paths that use it: q = 1 gives the exact GDP answer, the PLD δ of one subsampled
release upper-bounds (and nearly equals) a direct numerical integration of the hockey-stick divergence,
RDP upper-bounds it, ε grows with q, the σ solver meets its target, and the engine refuses what the
accounting cannot cover (an adaptive schedule, a vote function that cannot subsample)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

pytest.importorskip("dp_accounting")

from dp_accounting import dp_event  # noqa: E402
from dp_accounting.rdp import rdp_privacy_accountant  # noqa: E402

from pe_tabular.errors import ConfigError  # noqa: E402
from pe_tabular.evolution import Evolution, EvolutionConfig  # noqa: E402
from pe_tabular.privacy import BudgetExceeded, Ledger, NoiseSource, gdp_mu, schedules  # noqa: E402
from pe_tabular.privacy.accountant import epsilon_for_sigmas, sigma_for_epsilon  # noqa: E402
from pe_tabular.privacy.subsampling import (  # noqa: E402
    mechanisms,
    pld_epsilon,
    sigma_for_epsilon_subsampled,
)
from tests.toy import PointBackend, PointEncoder, two_clusters  # noqa: E402


@pytest.mark.parametrize("sigma, T", [(1.0, 1), (4.0, 5), (12.0, 30)])
def test_q_equal_one_is_the_exact_gdp_answer(sigma, T):
    assert pld_epsilon(mechanisms([sigma] * T), 1e-5) == pytest.approx(epsilon_for_sigmas([sigma] * T, 1e-5),
                                                                      rel=2e-3, abs=2e-3)


def _exact_delta(q: float, sigma: float, eps: float) -> float:
    """δ(ε) of one Poisson-subsampled Gaussian (sensitivity 1), both neighbouring directions, by direct
    integration: remove = ((1−q)N(0,σ²) + qN(1,σ²)) vs N(0,σ²), add = the reverse."""
    x = np.linspace(-30 * sigma, 30 * sigma + 1, 600_001)
    q0, q1 = norm.pdf(x, 0, sigma), norm.pdf(x, 1, sigma)
    p = (1 - q) * q0 + q * q1
    rem = np.trapezoid(np.maximum(p - math.exp(eps) * q0, 0), x)
    add = np.trapezoid(np.maximum(q0 - math.exp(eps) * p, 0), x)
    return float(max(rem, add))


@pytest.mark.parametrize("q, sigma, eps", [(0.1, 1.0, 0.5), (0.3, 2.0, 0.3), (0.05, 0.8, 1.0)])
def test_one_subsampled_release_matches_a_direct_integration(q, sigma, eps):
    got = pld_epsilon(mechanisms([sigma], 1.0, q), _exact_delta(q, sigma, eps))  # ε at the exact δ(ε)
    assert got >= eps * (1 - 1e-6)  # PLD is pessimistic ...
    assert got <= eps * 1.01  # ... and tight


def test_rdp_upper_bounds_pld_and_epsilon_grows_with_q():
    eps = []
    for q in (0.05, 0.1, 0.2, 0.5, 1.0):
        e = pld_epsilon(mechanisms([3.0] * 20, 1.0, q), 1e-5)
        rdp = rdp_privacy_accountant.RdpAccountant()
        inner = dp_event.GaussianDpEvent(3.0)
        rdp.compose(inner if q == 1 else dp_event.PoissonSampledDpEvent(q, inner), 20)
        assert e <= rdp.get_epsilon(1e-5) + 1e-9
        assert e >= 0.6 * rdp.get_epsilon(1e-5)  # a tighter accountant, not a different guarantee
        eps.append(e)
    assert eps == sorted(eps) and eps[0] < 0.3 * eps[-1]


@pytest.mark.slow
@pytest.mark.parametrize("q", [1.0, 0.5, 0.1])
def test_the_sigma_solver_meets_its_target_and_no_smaller_sigma_does(q):
    s = sigma_for_epsilon_subsampled(1.0, 1e-5, 5, q)
    assert pld_epsilon(mechanisms([s] * 5, 1.0, q), 1e-5) <= 1.0
    assert pld_epsilon(mechanisms([s * 0.99] * 5, 1.0, q), 1e-5) > 1.0
    if q == 1:  # the non-subsampled limit: the GDP σ
        assert s == pytest.approx(sigma_for_epsilon(1.0, 1e-5, 5)[0], rel=5e-3)
    # earlier releases on all data (e.g. marginals) leave less for the votes: more noise
    assert sigma_for_epsilon_subsampled(1.0, 1e-5, 5, q, fixed=((8.0, 1.0),) * 3) > s


def test_a_ledger_with_a_subsampled_release_reports_the_pld_epsilon():
    led = Ledger(1e-5)
    led.record(0, 10.0, 1.0, "marginal", 20)
    gdp_only = led.epsilon
    led.record(1, 2.0, 1.0, "vote", 100, sampling_rate=0.1)
    assert led.subsampled and "privacy loss distribution" in led.summary()["accounting"]
    want = pld_epsilon(mechanisms([10.0, 2.0], 1.0, [1.0, 0.1]), 1e-5)
    assert led.epsilon == pytest.approx(want) and led.epsilon > gdp_only
    unsampled = epsilon_for_sigmas([10.0, 2.0], 1e-5)
    assert led.epsilon < 0.6 * unsampled  # the amplification is what the ledger reports
    back = Ledger.from_dict(led.to_dict())
    assert back.releases[1].sampling_rate == 0.1 and back.epsilon == pytest.approx(led.epsilon)


@pytest.mark.slow
def test_filters_refuse_a_release_beyond_the_budget():
    led = Ledger(1e-5, epsilon_budget=1.0)
    s = sigma_for_epsilon_subsampled(1.0, 1e-5, 3, 0.2)
    for t in range(3):
        led.record(t + 1, s, 1.0, "vote", 10, sampling_rate=0.2)
    assert led.epsilon <= 1.0
    with pytest.raises(BudgetExceeded):
        led.record(4, s, 1.0, "vote", 10, sampling_rate=0.2)
    # the GDP filter charges a subsampled release its unsampled cost (valid, never cheaper)
    gdp = Ledger(1e-5, mu_budget=0.5)
    assert not gdp.can_afford(1.9, 1.0, sampling_rate=0.01)


def _evo(policy, rate, vote_fn=None):
    cfg = EvolutionConfig.build(3, 100, [0.4, 0.2], sampling_rate=rate, voter="numpy")
    return Evolution(PointBackend(), PointEncoder(), cfg, policy, Ledger(1e-5), NoiseSource(),
                     np.random.default_rng(0), vote_fn=vote_fn)


def test_a_subsampled_evolution_spends_its_target_epsilon():
    pol = schedules.subsampled(1.0, 1e-5, 3, 0.2)
    res = _evo(pol, 0.2).run(two_clusters(np.random.default_rng(1), 4000))
    assert res.ledger.epsilon <= 1.0 and res.ledger.epsilon == pytest.approx(1.0, abs=0.01)
    assert [r.sampling_rate for r in res.ledger.releases] == [0.2] * 3


def test_the_evolution_refuses_what_pld_cannot_account():
    with pytest.raises(ConfigError, match="fixed budget schedule"):
        _evo(schedules.AdaptivePolicy(gdp_mu(1.0, 1e-5), 3), 0.5)
    with pytest.raises(ConfigError, match="fixed budget schedule"):
        _evo(schedules.uniform(gdp_mu(1.0, 1e-5), 3), 0.5)  # a schedule at another rate (1)

    def plain_vote_fn(*args):  # e.g. the federated voter: no way to subsample
        raise AssertionError("never called")
    with pytest.raises(ConfigError, match="subsamples where the data lives"):
        _evo(schedules.subsampled(1.0, 1e-5, 3, 0.5), 0.5, plain_vote_fn)
    with pytest.raises(ConfigError, match="sampling_rate"):
        EvolutionConfig.build(3, 100, 0.3, sampling_rate=0.0)


@pytest.mark.slow
def test_the_privacy_calculator_solves_and_checks_subsampled_schedules(capsys):
    import json

    from pe_tabular.cli import main
    assert main(["privacy", "sigma", "--epsilon", "1", "--iterations", "5", "--sampling-rate", "0.2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["accounting"] == "PLD" and out["sigma"] == pytest.approx(sigma_for_epsilon_subsampled(1, 1e-5, 5, 0.2))
    assert main(["privacy", "epsilon", "--sigma", str(out["sigma"]), "--iterations", "5", "--sampling-rate", "0.2",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epsilon"] <= 1.0
    assert main(["privacy", "sigma", "--epsilon", "1", "--sampling-rate", "2"]) == 2
    assert "--sampling-rate" in capsys.readouterr().err
