"""pe-tabular: differentially private synthetic data without training, by Private Evolution.

The package root is the distribution's front door: ``from pe_tabular import PESynthesizer, Schema``
resolves lazily (PEP 562) to the tables wing, so importing the engine (``pe_tabular.privacy``,
``pe_tabular.evolution``, ...) never pulls a wing in.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["Column", "PESynthesizer", "Schema", "__version__"]
_FACADE = {"Column": "pe_tabular.tables", "PESynthesizer": "pe_tabular.tables", "Schema": "pe_tabular.tables"}


def __getattr__(name: str) -> Any:
    if name in _FACADE:
        return getattr(importlib.import_module(_FACADE[name]), name)
    raise AttributeError(f"module 'pe_tabular' has no attribute {name!r}")
