"""The classes of a class-conditional tables run: the label's categories, and a missing label as a class.

A label column with empty cells used to turn class-conditional runs off, and a DP schema then kept the label
non-nullable unless its missing count cleared the noise, so the rows with an empty label did not fit the
schema and were dropped (issue 22: 67 of 23k rows on gssvocab). Now a nullable label has one more class,
``MISSING_CLASS`` (``"(missing)"``, the name the evaluation gives every column's missing bucket): it is
counted, drawn, voted and raked like any other class, and written out as a missing value (an empty cell),
never as its name. Its bin is the one after the categories (the null bin of ``marginals.Binning``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pe_tabular.measure.shares import MISSING_CLASS, class_strings
from pe_tabular.tables.schema import Column, SchemaError

__all__ = ["MISSING_CLASS", "class_bin", "class_strings", "is_missing_class", "label_cells", "label_classes"]


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
