"""The class column of a tables run, in one place: which column the run conditions on, its classes and shares.

A class-conditional run votes within classes and draws each class by its share, so it needs the class
column (``label``), its classes, and their shares: public ones given by the caller (or the schema), or a
noisy label histogram paid with ``label_budget_share``. Everything the facade, the measurement plan and the
generators do with the label goes through these functions.

A missing label is a class of its own, ``MISSING_CLASS`` (``"(missing)"``, the name the evaluation gives every
column's missing bucket). A label column with empty cells used to turn class-conditional runs off, and a DP
schema then kept the label non-nullable unless its missing count cleared the noise, so the rows with an empty
label did not fit the schema and were dropped (issue 22: 67 of 23k rows on gssvocab). Now a nullable label has
one more class: it is counted, drawn, voted and raked like any other class, and written out as a missing value
(an empty cell), never as its name. Its bin is the one after the categories (the null bin of
``marginals.Binning``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from pe_tabular.errors import ConfigError
from pe_tabular.measure.shares import MISSING_CLASS, class_counts, class_strings, release_label_shares
from pe_tabular.privacy.release import ReleasePath
from pe_tabular.tables.private import PrivateRows
from pe_tabular.tables.schema import Column, Schema, SchemaError

log = logging.getLogger(__name__)

__all__ = ["MISSING_CLASS", "class_bin", "class_column", "class_shares", "class_strings", "class_target",
           "is_missing_class", "label_cells", "label_classes", "public_shares",
           "without_noise_missing_class"]

#: a label's missing class below this many σ of the label histogram gets no rows (see ``class_shares``)
MISSING_CLASS_SIGMAS = 2.0


def label_classes(c: Column) -> list[str]:
    """The classes of label column ``c`` as strings: its categories, then ``MISSING_CLASS`` when it is nullable.
    A nullable label with a category spelled like the missing class is refused (the two would be one class)."""
    cats = [str(v) for v in c.categories]
    if not c.nullable:
        return cats
    if MISSING_CLASS in (x.strip() for x in cats):
        raise SchemaError(f"label column {c.name!r}: a category is spelled {MISSING_CLASS!r}, the name of the class "
                          "of a missing label in a nullable label; rename that category in the schema and the data, "
                          "or make the label non-nullable")
    return [*cats, MISSING_CLASS]


def is_missing_class(label: Any) -> bool:
    """Whether a class-conditional draw asks for rows whose label is missing."""
    return isinstance(label, str) and label == MISSING_CLASS


def class_bin(c: Column, label: Any) -> int:
    """The label's bin in the column's public binning: a category's index, the missing class the bin after
    the categories (``Binning``'s null bin)."""
    return label_classes(c).index(str(label))


def label_cells(label: Any, n: int) -> np.ndarray:
    """``n`` cells of a class-conditional draw's label column: the class itself, or missing (None)."""
    out = np.empty(n, dtype=object)
    out[:] = None if is_missing_class(label) else label
    return out


def class_column(schema: Schema, label: str | None | bool) -> str | None:
    """The column a run conditions on: the schema's label for ``True``, none for ``None``/``False``. A nullable
    label stays a class column (its missing cells are the missing class); a category spelled like that class is
    refused here, before any data is read."""
    name = schema.label if label is True else (label or None)
    if name is not None and name not in schema.names:
        raise ConfigError(f"`label` {name!r} is not a schema column", "label")
    if name is not None:
        try:
            label_classes(schema[name])
        except SchemaError as e:
            raise ConfigError(str(e), "label") from e
    return name


def public_shares(schema: Schema, label: str | None, given: Mapping[str, float] | None) -> dict[str, float] | None:
    """The class shares known without reading data: the caller's, else the schema's (None: to be released).
    Every class must have one (checked here, before any data is read)."""
    shares = dict(given) if given else (schema.label_shares if label else None)
    if shares is None or label is None:
        return shares
    lack = sorted(set(label_classes(schema[label])) - {str(k) for k in shares})
    if lack:
        how = (f"; the label is nullable, so a missing label is a class of its own: add {MISSING_CLASS!r}: "
               "<share of rows whose label is missing> (0 if there are none)" if MISSING_CLASS in lack else "")
        raise ConfigError(f"public label shares (the schema's label_shares, or --label-shares) lack classes "
                          f"{lack}{how}", "label_shares")
    return {str(k): float(v) for k, v in shares.items()}


def class_shares(rows: PrivateRows, schema: Schema, label: str, public: Mapping[str, float] | None,
                 sigma: float, path: ReleasePath, n_hat: float) -> dict[str, float]:
    """Each class's share: the public ones, or a noisy label histogram (Δ = 1; a missing label counted in the
    missing class) whose missing class is set to (almost) 0 when its noisy count, read off the released share
    and the noisy row count ``n_hat``, is under ``MISSING_CLASS_SIGMAS`` σ (post-processing). Why: every
    DP-schema label is nullable, so most runs hold a missing class of noise only, and a synthetic class of a few
    rows costs ML utility (yrbss, 10 missing labels in 11k: 4-43 synthetic rows of it took the reference TSTR
    AUC on the labelled test rows from 0.88 to 0.77-0.87; the same tables without those rows gave 0.87-0.88)."""
    if public is not None:
        return {str(k): float(v) for k, v in public.items()}
    classes = label_classes(schema[label])
    shares = release_label_shares(
        classes, sigma, path,
        lambda: rows.sum(lambda f: class_counts(class_strings(f[label]), classes), len(classes), "label histogram"))
    return without_noise_missing_class(shares, n_hat, sigma)


def without_noise_missing_class(shares: Mapping[str, float], n_hat: float, sigma: float) -> dict[str, float]:
    """``shares`` with the missing class set to (almost) 0 when its noisy count ``share · n_hat`` is under
    ``MISSING_CLASS_SIGMAS`` σ of the label histogram (post-processing of released values)."""
    if MISSING_CLASS not in shares or shares[MISSING_CLASS] * n_hat >= MISSING_CLASS_SIGMAS * sigma:
        return dict(shares)
    out = {c: (1e-9 if c == MISSING_CLASS else v) for c, v in shares.items()}
    total = sum(out.values())
    return {c: v / total for c, v in out.items()}


def class_target(schema: Schema, label: str, shares: Mapping[str, float]) -> np.ndarray:
    """The label's raking target on its public bins (categories, then the missing bin): the class shares, the
    missing class's share in the missing bin (0 when the label is not nullable)."""
    classes = label_classes(schema[label])
    return np.array([shares.get(c, 0.0) for c in classes] + ([] if schema[label].nullable else [0.0]))
