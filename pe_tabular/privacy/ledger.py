"""The privacy ledger: every release that touched private data, and the guarantee they add up to.

The ledger doubles as a GDP *privacy filter*: with a budget μ it refuses any release that would
push Σ (Δ/σ_t)² above μ². For Gaussian mechanisms whose σ_t are chosen adaptively from earlier
releases this is still μ-GDP (Smith & Thakurta, "Fully Adaptive Composition for Gaussian
Differential Privacy", 2022; Koskela, Tobaben & Honkela, AISTATS 2023), which is what lets the
adaptive budget schedule stop early or change σ mid-run.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pe_tabular.io_utils import atomic_write_json
from pe_tabular.privacy.accountant import AccountingError, gdp_epsilon

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

    @property
    def rho(self) -> float:
        """(Δ/σ)², this release's share of μ²."""
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
        """ε at the run's δ, after setting aside the δ that thresholded releases already used."""
        left = self.delta - self.extra_delta
        if left <= 0:
            raise AccountingError(f"thresholded releases used delta {self.extra_delta:g} >= the run's --delta "
                                  f"{self.delta:g}; raise --delta")
        return gdp_epsilon(self.mu, left)

    def remaining_rho(self) -> float:
        if self.mu_budget is None or math.isinf(self.mu_budget):
            return math.inf
        return max(self.mu_budget**2 - self.rho_spent, 0.0)

    def can_afford(self, sigma: float, sensitivity: float = 1.0) -> bool:
        cost = Release(0, sigma, sensitivity, "", 0).rho
        return cost <= self.remaining_rho() * (1 + _TOL) + _TOL

    def record(self, iteration: int, sigma: float, sensitivity: float, what: str, size: int,
               extra_delta: float = 0.0) -> Release:
        """Charge one release; raises BudgetExceeded *before* anything is released if it does not fit."""
        if sigma < 0 or sensitivity < 0:
            raise AccountingError("sigma and sensitivity must be >= 0")
        if not self.can_afford(sigma, sensitivity):
            raise BudgetExceeded(
                f"release '{what}' (sigma={sigma:g}, sensitivity={sensitivity:g}) exceeds the remaining "
                f"budget (mu^2 left {self.remaining_rho():.4g}); raise --epsilon or lower --iterations"
            )
        rel = Release(int(iteration), float(sigma), float(sensitivity), what, int(size), float(extra_delta))
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
            "accounting": "Gaussian DP composition (Dong, Roth & Su 2022), exact (eps, delta) conversion",
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
                  public_inputs=dict(d.get("public_inputs", {})), noise_mode=d.get("noise", "secure"))
        led.releases = [Release(**r) for r in d.get("releases", [])]
        return led

    @classmethod
    def load(cls, path: str | Path) -> Ledger:
        return cls.from_dict(json.loads(Path(path).read_text()))
