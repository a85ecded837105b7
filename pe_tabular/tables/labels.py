"""The class column of a tables run, in one place: which column the run conditions on and its class shares.

A class-conditional run votes within classes and draws each class by its share, so it needs the class
column (``label``), its classes, and their shares: public ones given by the caller (or the schema), or a
noisy label histogram paid with ``label_budget_share``. Everything the facade and the measurement plan do
with the label goes through these functions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from pe_tabular.errors import ConfigError
from pe_tabular.measure.shares import class_counts, release_label_shares
from pe_tabular.privacy.release import ReleasePath
from pe_tabular.tables.private import PrivateRows
from pe_tabular.tables.schema import Schema

log = logging.getLogger(__name__)


def class_column(schema: Schema, label: str | None | bool) -> str | None:
    """The column a run conditions on: the schema's label for ``True``, none for ``None``/``False``.
    A nullable label is no class to condition on: the run is then not class-conditional."""
    name = schema.label if label is True else (label or None)
    if name is not None and name not in schema.names:
        raise ConfigError(f"`label` {name!r} is not a schema column", "label")
    if name is not None and schema[name].nullable:
        log.warning("label column %r is nullable: the run is not class-conditional", name)
        return None
    return name


def public_shares(schema: Schema, label: str | None, given: Mapping[str, float] | None) -> dict[str, float] | None:
    """The class shares known without reading data: the caller's, else the schema's (None: to be released)."""
    return dict(given) if given else (schema.label_shares if label else None)


def class_shares(rows: PrivateRows, schema: Schema, label: str, public: Mapping[str, float] | None,
                 sigma: float, path: ReleasePath) -> dict[str, float]:
    """Each class's share: the public ones (every class must have one), or a noisy label histogram (Δ = 1)."""
    classes = [str(c) for c in schema[label].categories]
    if public is None:
        return release_label_shares(
            classes, sigma, path,
            lambda: rows.sum(lambda f: class_counts(f[label].astype(str), classes), len(classes), "label histogram"))
    shares = {str(k): float(v) for k, v in public.items()}
    missing = set(classes) - set(shares)
    if missing:
        raise ConfigError(f"public label shares lack classes {sorted(missing)}")
    return shares


def class_target(schema: Schema, label: str, shares: Mapping[str, float]) -> np.ndarray:
    """The label's raking target on its marginal's cells (the last cell, missing, gets none)."""
    return np.array([shares[str(c)] for c in schema[label].categories] + [0.0])

