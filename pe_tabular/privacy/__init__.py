"""Privacy accounting (Gaussian DP), the ledger / privacy filter, and the privacy noise source."""

from pe_tabular.privacy.accountant import (
    AccountingError,
    compose_mu,
    epsilon_for_sigmas,
    gdp_delta,
    gdp_epsilon,
    gdp_mu,
    schedule_sigmas,
    sigma_for_epsilon,
)
from pe_tabular.privacy.ledger import BudgetExceeded, Ledger, Release
from pe_tabular.privacy.noise import NoiseSource, noise_source

__all__ = [
    "AccountingError", "BudgetExceeded", "Ledger", "NoiseSource", "Release", "compose_mu",
    "epsilon_for_sigmas", "gdp_delta", "gdp_epsilon", "gdp_mu", "noise_source", "schedule_sigmas",
    "sigma_for_epsilon",
]
