"""Privacy accounting (Gaussian DP), the ledger / privacy filter, and the privacy noise source.

The names below resolve lazily (PEP 562): ``pe-tabular privacy sigma`` imports the accountant alone,
which needs neither numpy nor the ledger's subsampling accountant."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    **dict.fromkeys(("AccountingError", "compose_mu", "epsilon_for_sigmas", "gdp_delta", "gdp_epsilon", "gdp_mu",
                     "schedule_sigmas", "sigma_for_epsilon"), "pe_tabular.privacy.accountant"),
    **dict.fromkeys(("BudgetExceeded", "Ledger", "Release"), "pe_tabular.privacy.ledger"),
    **dict.fromkeys(("NoiseSource", "noise_source"), "pe_tabular.privacy.noise"),
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'pe_tabular.privacy' has no attribute {name!r}")
