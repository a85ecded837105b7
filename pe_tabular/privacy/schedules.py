"""Budget schedules: how the run's Gaussian-DP budget μ is split over the vote histograms.

Every schedule is a ``BudgetPolicy`` (below); three implementations:

* ``uniform``   — every vote gets σ = Δ√T/μ (the PE papers' default).
* ``geometric`` — the precision 1/σ_t² grows by a factor ``ratio`` per iteration, so early votes,
  taken while the population is still far from the data and only needs coarse steering, are cheap,
  and the late votes (and the final one, whose noisy counts become the output weights) are sharp.
  The total is exactly μ².
* ``adaptive``  — chooses each σ_t, and when to stop, from what was already released: the noisy
  histogram statistics of the previous vote (``Evolution._stats``) and the ledger. It anneals like
  AIM (McKenna, Mullins, Sheldon & Miklau, "AIM: An Adaptive and Iterative Mechanism for
  Differentially Private Synthetic Data", VLDB 2022, Sec. 4.3): reserve a large share of μ² for the
  final vote (its noisy counts become the output weights, so its noise lands directly in the
  synthetic data); spend a small, constant slice per intermediate vote while the selection it
  drives is mostly signal; multiply the precision by ``growth`` when the released histogram shows
  that noise made up most of the selection mass (the selection was mostly random); give whatever
  the intermediate votes did not use to the final vote; and when the remaining budget cannot pay
  for another vote at the current precision plus the final one, spend all of it on this vote,
  which becomes the final one (the run stops early).

Why an adaptive schedule is still μ-GDP — the exact result relied on. The vote at iteration t is a
Gaussian mechanism with L2 sensitivity Δ whose σ_t (and whether it runs at all) is a function of the
earlier *noisy* releases only, so conditionally on the past it is μ_t-GDP with μ_t = Δ/σ_t. Smith &
Thakurta ("Fully Adaptive Composition for Gaussian Differential Privacy", arXiv:2210.17520, 2022,
main theorem) prove: if each mechanism in an adaptive sequence is μ_t-GDP given the previous
outputs, with μ_t chosen from those outputs, and the interaction halts (a privacy *filter*) before
Σ_t μ_t² would exceed μ², then the whole interaction is μ-GDP — the same parameter as
non-adaptive composition (Dong, Roth & Su 2022), with no loss for adaptivity. Koskela, Tobaben &
Honkela ("Individual Privacy Accounting with Gaussian Differential Privacy", AISTATS 2023) prove
fully adaptive GDP filters of this form too (and individual ones). The filter here is the
:class:`~pe_tabular.privacy.ledger.Ledger` with ``mu_budget``: it refuses any release whose (Δ/σ)²
does not fit in ``remaining_rho()``; the policies never ask for one, and the evolution loop
double-checks with ``can_afford`` before voting. The (ε, δ) reported is then the accountant's exact
conversion of μ.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Protocol

from scipy.stats import norm

from pe_tabular.privacy.accountant import AccountingError, schedule_sigmas
from pe_tabular.privacy.ledger import Ledger, Release
from pe_tabular.privacy.subsampling import sigma_for_epsilon_subsampled

log = logging.getLogger(__name__)
BUDGET_NAMES = ("uniform", "geometric", "adaptive")
_EXHAUSTED = 1e-9  # remaining ρ below this fraction of μ² counts as spent (float round-off of the filter)


class BudgetPolicy(Protocol):
    """Chooses σ for each vote from what was already released (None = stop early)."""

    def next_sigma(self, t: int, ledger: Ledger, history: list[dict[str, Any]]) -> float | None: ...


@dataclass(frozen=True)
class Scheduled:
    """A schedule fixed before the run: σ_t = ``sigmas[t-1]``; stops (None) after the last one.

    It also refuses, by returning None, a σ the ledger's filter would not accept — so a fixed schedule
    combined with an earlier charged release (e.g. DP label shares) stops cleanly instead of
    overspending."""

    sigmas: tuple[float, ...]
    name: str = "fixed"
    sensitivity: float = 1.0
    sampling_rate: float = 1.0  # votes on a Poisson subsample at this rate (see privacy.subsampling)

    def next_sigma(self, t: int, ledger: Ledger, history: list[dict[str, Any]]) -> float | None:
        if t < 1 or t > len(self.sigmas):
            return None
        sigma = self.sigmas[t - 1]
        if not ledger.can_afford(sigma, self.sensitivity, self.sampling_rate):
            log.warning("%s budget schedule: vote %d (sigma=%.4g) does not fit in the remaining budget "
                        "(mu^2 left %.4g); stopping early", self.name, t, sigma, ledger.remaining_rho())
            return None
        return sigma


def _check(mu: float, iterations: int) -> None:
    if not (mu > 0) or math.isnan(mu):
        raise AccountingError(f"the budget mu must be > 0 (from --epsilon/--delta), got {mu}")
    if not isinstance(iterations, int) or iterations < 1:
        raise AccountingError(f"--iterations must be a positive integer, got {iterations!r}")


def uniform(mu: float, iterations: int, sensitivity: float = 1.0) -> Scheduled:
    """Equal σ for every vote: σ = Δ√T/μ."""
    _check(mu, iterations)
    return Scheduled(tuple(schedule_sigmas(mu, iterations, None, sensitivity)), "uniform", sensitivity)


def fixed(sigmas: tuple[float, ...] | list[float], sensitivity: float = 1.0) -> Scheduled:
    """A schedule given as explicit σ_t (e.g. from ``pe-tabular privacy sigma``)."""
    return Scheduled(tuple(float(s) for s in sigmas), "fixed", sensitivity)


def subsampled(epsilon: float, delta: float, iterations: int, sampling_rate: float, sensitivity: float = 1.0,
               spent: tuple[tuple[float, float], ...] = ()) -> Scheduled:
    """Equal σ for every vote, each vote on a Poisson subsample at ``sampling_rate``: the σ whose PLD
    composition with the ``spent`` releases ((σ/Δ, q) each, e.g. marginals) reaches (ε, δ). A fixed
    schedule, as PLD composition requires (see :mod:`pe_tabular.privacy.subsampling`)."""
    sigma = sigma_for_epsilon_subsampled(epsilon, delta, iterations, sampling_rate, sensitivity, spent)
    return Scheduled((sigma,) * iterations, "subsampled", sensitivity, float(sampling_rate))


def geometric_weights(iterations: int, ratio: float) -> list[float]:
    """Relative precisions ratio^(t-1), t = 1..T (ratio 1 = uniform)."""
    if not (ratio > 0) or math.isinf(ratio):
        raise AccountingError(f"--budget-ratio must be a positive number, got {ratio}")
    return [ratio ** (t - 1) for t in range(1, iterations + 1)]


def geometric(mu: float, iterations: int, ratio: float = 1.5, sensitivity: float = 1.0) -> Scheduled:
    """Precision 1/σ_t² ∝ ratio^(t-1), scaled so Σ (Δ/σ_t)² = μ² exactly."""
    _check(mu, iterations)
    return Scheduled(tuple(schedule_sigmas(mu, iterations, geometric_weights(iterations, ratio), sensitivity)),
                     "geometric", sensitivity)


# -- the adaptive policy -----------------------------------------------------------------------------
def noise_share(stats: dict[str, Any], threshold: float = 0.0) -> float | None:
    """Estimated share of a released histogram's clipped vote mass that is pure noise (None if the
    stats lack the fields). Selection is ∝ clipped mass, so this is how random the selection was.

    A candidate with no true vote has noisy count N(0, σ²): it reaches the threshold h = H/σ with
    probability p₀ = Q(h) and then contributes E[σZ·1(Z≥h)] = σφ(h) of clipped mass. Candidates with
    real votes are (nearly) always above it, so the number of vote-less candidates is estimated from
    the share *below* the threshold, m₀ ≈ m(1 − above)/(1 − p₀), and their mass is m₀σφ(h). Only
    released statistics are used, so acting on it is post-processing."""
    try:
        sigma = float(stats["sigma"])
        above, mass = float(stats["above_threshold"]), float(stats["clipped_mass"])
        m = int(stats["population"])
    except (KeyError, TypeError, ValueError):
        return None
    if sigma == 0:
        return 0.0
    if mass <= 0:
        return 1.0
    h = max(threshold, 1e-12) / sigma
    p0 = float(norm.sf(h))
    m0 = m * min(max((1.0 - above) / max(1.0 - p0, 1e-12), 0.0), 1.0)
    noise_mass = m0 * sigma * float(norm.pdf(h))
    return 1.0 if noise_mass >= mass else noise_mass / mass


@dataclass(frozen=True)
class AdaptivePolicy:
    """AIM-style annealing of the vote precision under the GDP filter (see the module docstring).

    Stateless: everything it needs is in the ledger (earlier σ_t, remaining budget) and the history
    of released statistics, so a resumed run makes the same choices from the same releases.

    ``start``       first vote's precision as a fraction of the uniform share of the non-final budget;
    ``final_share`` fraction of μ² kept for the final vote (its noisy counts are the output weights);
                    whatever the intermediate votes do not use also goes to the final vote;
    ``growth``      precision multiplier after a noise-dominated histogram;
    ``max_noise``   share of the selection mass that is noise (``noise_share``) above which a
                    histogram counts as noise-dominated;
    ``threshold``   the run's public vote threshold H (calibrates the pure-noise reference).
    """

    mu: float
    iterations: int
    start: float = 1.0
    final_share: float = 0.6
    growth: float = 2.0
    max_noise: float = 0.5
    threshold: float = 0.0
    sensitivity: float = 1.0

    def __post_init__(self) -> None:
        _check(self.mu, self.iterations)
        if not 0 < self.start <= 1:
            raise AccountingError(f"adaptive budget: start must be in (0, 1], got {self.start}")
        if not 0 <= self.final_share < 1:
            raise AccountingError(f"adaptive budget: final_share must be in [0, 1), got {self.final_share}")
        if not self.growth >= 1:
            raise AccountingError(f"adaptive budget: growth must be >= 1, got {self.growth}")
        if not 0 <= self.max_noise <= 1:
            raise AccountingError(f"adaptive budget: max_noise must be in [0, 1], got {self.max_noise}")
        if self.sensitivity <= 0:
            raise AccountingError(f"adaptive budget: sensitivity must be > 0, got {self.sensitivity}")

    @staticmethod
    def _votes(ledger: Ledger) -> list[Release]:
        return [r for r in ledger.releases if r.iteration >= 1]

    def remaining(self, ledger: Ledger) -> float:
        """ρ still spendable on votes: the filter's remainder, and never more than this policy's μ²
        minus the votes already charged (releases before the votes, iteration ≤ 0, are the filter's)."""
        own = max(self.mu**2 - sum(r.rho for r in self._votes(ledger)), 0.0)
        return min(ledger.remaining_rho(), own)

    def plan(self, t: int, ledger: Ledger, history: list[dict[str, Any]]) -> tuple[float, str] | None:
        """(ρ_t, reason) for vote t, or None to stop. ``reason`` is for logs and tests."""
        if math.isinf(self.mu):
            return (math.inf, "no privacy") if t <= self.iterations else None
        mu2, T = self.mu**2, self.iterations
        rem = self.remaining(ledger)
        if t > T or rem <= _EXHAUSTED * mu2:
            return None
        if t == T:
            return rem, "final iteration: all that is left"
        votes = self._votes(ledger)
        if not votes:
            rho, why = self.start * mu2 * (1.0 - self.final_share) / (T - 1), "first vote"
        else:
            rho, why = votes[-1].rho, "previous precision"
            last = history[-1] if history else None
            if last is not None and int(last.get("iteration", -1)) == votes[-1].iteration:
                share = noise_share(last, self.threshold)
                if share is not None and share > self.max_noise:
                    rho, why = rho * self.growth, f"noise {share:.0%} of the selection: precision x{self.growth:g}"
        if rem - rho < max(self.final_share * mu2, rho) * (1 - 1e-9):
            return rem, why + "; too little left for another vote and the final one: spend the rest now and stop"
        return rho, why

    def next_sigma(self, t: int, ledger: Ledger, history: list[dict[str, Any]]) -> float | None:
        p = self.plan(t, ledger, history)
        if p is None:
            return None
        rho, why = p
        if math.isinf(rho):
            return 0.0
        sigma = self.sensitivity / math.sqrt(rho)
        log.debug("adaptive budget, vote %d: sigma=%.4g (%s)", t, sigma, why)
        # guard against float round-off at the filter's edge: never ask for what the ledger would refuse
        for _ in range(64):
            if ledger.can_afford(sigma, self.sensitivity):
                return sigma
            sigma *= 1 + 1e-9
        raise AccountingError(f"adaptive budget: no affordable sigma near {sigma:g} at iteration {t}")


def adaptive(mu: float, iterations: int, **kw: Any) -> AdaptivePolicy:
    """The adaptive policy (see :class:`AdaptivePolicy` for the keyword arguments)."""
    return AdaptivePolicy(mu, iterations, **kw)


def make_policy(name: str, mu: float, iterations: int, **kw: Any) -> Scheduled | AdaptivePolicy:
    """The policy for ``--budget NAME``. Keywords: ``ratio`` (geometric); ``start``, ``final_share``,
    ``growth``, ``max_noise``, ``threshold`` (adaptive); ``sensitivity`` (all). Keywords that do not
    apply to the chosen policy are ignored, so a CLI can pass all of its budget flags unconditionally."""
    sens = kw.pop("sensitivity", 1.0)
    if name == "uniform":
        return uniform(mu, iterations, sensitivity=sens)
    if name == "geometric":
        return geometric(mu, iterations, ratio=kw.get("ratio", 1.5), sensitivity=sens)
    if name == "adaptive":
        keys = ("start", "final_share", "growth", "max_noise", "threshold")
        return adaptive(mu, iterations, sensitivity=sens, **{k: kw[k] for k in keys if k in kw and kw[k] is not None})
    raise ValueError(f"unknown --budget {name!r}; choose one of {', '.join(BUDGET_NAMES)}")
