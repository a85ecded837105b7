"""The privacy ledger: every release that touched private data, and the guarantee they add up to.

The ledger doubles as a GDP *privacy filter*: with a budget μ it refuses any release that would
push Σ (Δ/σ_t)² above μ². For Gaussian mechanisms whose σ_t are chosen adaptively from earlier
releases this is still μ-GDP (Smith & Thakurta, "Fully Adaptive Composition for Gaussian
Differential Privacy", 2022; Koskela, Tobaben & Honkela, AISTATS 2023), which is what lets the
adaptive budget schedule stop early or change σ mid-run.

Releases made on a Poisson subsample of the units (``sampling_rate`` q < 1) are not Gaussian mechanisms;
when the ledger holds any, (ε, δ) comes from composing *all* releases by privacy loss distribution
(:mod:`pe_tabular.privacy.subsampling`). The GDP filter (``mu_budget``) still counts such a release at
its unsampled cost (Δ/σ)² — a valid, loose upper bound, since subsampling never hurts privacy — and a run
that wants the subsampling gain sets ``epsilon_budget`` instead: a filter on the PLD ε of the releases so
far plus the next, valid for schedules fixed before the run (the engine allows subsampling only with
those).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pe_tabular.privacy.accountant import AccountingError, gdp_epsilon
from pe_tabular.privacy.atomic import atomic_write_json
from pe_tabular.privacy.subsampling import mechanisms, pld_epsilon

_TOL = 1e-9


class BudgetExceeded(AccountingError):
    """A release would exceed the run's privacy budget."""


@dataclass(frozen=True)
class Release:
    """One Gaussian release on private data."""

    iteration: int
    sigma: float
    sensitivity: float
    what: str
    size: int
    extra_delta: float = 0.0  # δ paid outside the GDP curve (e.g. thresholding an unknown domain)
    sampling_rate: float = 1.0  # q < 1: computed on a Poisson subsample of the units (PLD accounting)

    @property
    def rho(self) -> float:
        """(Δ/σ)², this release's share of μ² (for a subsampled release: the unsampled cost, an upper bound)."""
        if self.sigma == 0:
            return math.inf
        return (self.sensitivity / self.sigma) ** 2


@dataclass
class Ledger:
    """Records releases; with ``mu_budget`` set it is also the GDP privacy filter."""

    delta: float
    mu_budget: float | None = None
    releases: list[Release] = field(default_factory=list)
    public_inputs: dict[str, Any] = field(default_factory=dict)
    noise_mode: str = "secure"
    epsilon_budget: float | None = None  # a PLD filter on ε (for subsampled runs with a fixed schedule)

    @property
    def subsampled(self) -> bool:
        """True when some release was made on a Poisson subsample: (ε, δ) then comes from PLD."""
        return any(r.sampling_rate < 1.0 for r in self.releases)

    def _pld_epsilon(self, releases: list[Release]) -> float:
        return pld_epsilon(mechanisms([r.sigma for r in releases], [r.sensitivity for r in releases],
                                      [r.sampling_rate for r in releases]), self._delta_left(releases))

    def _delta_left(self, releases: list[Release]) -> float:
        left = self.delta - float(sum(r.extra_delta for r in releases))
        if left <= 0:
            raise AccountingError(f"thresholded releases used delta {self.delta - left:g} >= the run's --delta "
                                  f"{self.delta:g}; raise --delta")
        return left

    @property
    def rho_spent(self) -> float:
        return float(sum(r.rho for r in self.releases))

    @property
    def mu(self) -> float:
        return math.sqrt(self.rho_spent)

    @property
    def extra_delta(self) -> float:
        return float(sum(r.extra_delta for r in self.releases))

    @property
    def epsilon(self) -> float:
        """ε at the run's δ, after setting aside the δ that thresholded releases already used: exact GDP,
        or PLD over all releases when some release was subsampled."""
        if self.subsampled:
            return self._pld_epsilon(self.releases)
        return gdp_epsilon(self.mu, self._delta_left(self.releases))

    def remaining_rho(self) -> float:
        if self.mu_budget is None or math.isinf(self.mu_budget):
            return math.inf
        return max(self.mu_budget**2 - self.rho_spent, 0.0)

    def can_afford(self, sigma: float, sensitivity: float = 1.0, sampling_rate: float = 1.0) -> bool:
        """Whether both filters accept one more release: the GDP one on (Δ/σ)², the PLD one on ε."""
        cost = Release(0, sigma, sensitivity, "", 0).rho
        if not cost <= self.remaining_rho() * (1 + _TOL) + _TOL:
            return False
        if self.epsilon_budget is None or math.isinf(self.epsilon_budget):
            return True
        nxt = [*self.releases, Release(0, sigma, sensitivity, "", 0, 0.0, sampling_rate)]
        return self._pld_epsilon(nxt) <= self.epsilon_budget * (1 + 1e-6)

    def record(self, iteration: int, sigma: float, sensitivity: float, what: str, size: int,
               extra_delta: float = 0.0, sampling_rate: float = 1.0) -> Release:
        """Charge one release; raises BudgetExceeded *before* anything is released if it does not fit."""
        if sigma < 0 or sensitivity < 0:
            raise AccountingError("sigma and sensitivity must be >= 0")
        if not 0.0 < sampling_rate <= 1.0:
            raise AccountingError(f"sampling rate must be in (0, 1], got {sampling_rate}")
        if not self.can_afford(sigma, sensitivity, sampling_rate):
            raise BudgetExceeded(
                f"release '{what}' (sigma={sigma:g}, sensitivity={sensitivity:g}) exceeds the remaining "
                f"budget (mu^2 left {self.remaining_rho():.4g}); raise --epsilon or lower --iterations"
            )
        rel = Release(int(iteration), float(sigma), float(sensitivity), what, int(size), float(extra_delta),
                      float(sampling_rate))
        self.releases.append(rel)
        return rel

    def summary(self) -> dict[str, Any]:
        eps = self.epsilon
        return {
            "epsilon": eps if math.isfinite(eps) else "inf",
            "delta": self.delta,
            "mu": self.mu if math.isfinite(self.mu) else "inf",
            "mu_budget": self.mu_budget if self.mu_budget is None or math.isfinite(self.mu_budget) else "inf",
            "n_releases": len(self.releases),
            "noise": self.noise_mode,
            "accounting": (
                "privacy loss distribution over all releases, some on Poisson subsamples (dp-accounting PLD; "
                "mu is the unsampled GDP bound)" if self.subsampled else
                "Gaussian DP composition (Dong, Roth & Su 2022), exact (eps, delta) conversion"),
            **({"epsilon_budget": self.epsilon_budget} if self.epsilon_budget is not None else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "releases": [asdict(r) for r in self.releases],
            "public_inputs": self.public_inputs,
        }

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Ledger:
        mb = d.get("mu_budget")
        led = cls(delta=float(d["delta"]), mu_budget=math.inf if mb == "inf" else mb,
                  public_inputs=dict(d.get("public_inputs", {})), noise_mode=d.get("noise", "secure"),
                  epsilon_budget=d.get("epsilon_budget"))
        led.releases = [Release(**r) for r in d.get("releases", [])]
        return led

    @classmethod
    def load(cls, path: str | Path) -> Ledger:
        return cls.from_dict(json.loads(Path(path).read_text()))
