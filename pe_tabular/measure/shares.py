"""DP label shares: one noisy label histogram (Δ = 1: one row changes one count by 1), normalised.

The class-conditional runs of every wing draw their first population per class in these shares. The
histogram is counted by the caller — over an in-memory array (``estimate_label_shares``) or summed chunk by
chunk over a streamed source with ``class_counts`` — and released here, through the one release path.

A missing label is a class of its own, ``MISSING_CLASS``: a wing whose label column may be empty lists it
among its classes, and :func:`class_strings` is the one place that turns label cells into class strings
(``astype(str)`` spells a missing cell ``"nan"`` under pandas 2 and keeps it missing, or ``"None"``, under
pandas 3, so neither the counts nor the votes may rely on it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.checkpoint import Checkpointer
from pe_tabular.privacy.ledger import Ledger
from pe_tabular.privacy.noise import NoiseSource
from pe_tabular.privacy.release import ReleasePath, Spec

# names the problem, never the labels: a label value found only in the private data is private (rule 7)
UNKNOWN_LABEL = ("some label values are not among the declared classes; declare every class in the public schema "
                 "(its label categories) or map the others to a declared one")


#: the class of a missing label (an empty cell); the evaluation's missing bucket has the same name
MISSING_CLASS = "(missing)"


def class_strings(values: pd.Series | np.ndarray) -> np.ndarray:
    """Label cells as class strings (an object array): each value's ``str``, a missing cell (``None``, NaN,
    ``pd.NA``, ``NaT``) ``MISSING_CLASS``, whatever the pandas version or the column's dtype."""
    s = pd.Series(values)
    if isinstance(s.dtype, pd.CategoricalDtype):  # one str() per category, not per cell (the private rows' case)
        table = np.array([str(c) for c in s.cat.categories] + [MISSING_CLASS], dtype=object)
        return table[s.cat.codes.to_numpy()]  # code -1 (missing) takes the table's last entry
    out = np.array(s.astype(object).map(str).to_numpy(dtype=object), dtype=object)  # a copy (read-only under CoW)
    out[s.isna().to_numpy()] = MISSING_CLASS
    return out


def class_counts(values: pd.Series | np.ndarray, classes: Sequence[Any]) -> np.ndarray:
    """How many of ``values`` (one chunk) hold each class, as floats; a missing value counts as
    ``MISSING_CLASS`` when that is one of ``classes``; a value of no class is not counted (a caller that must
    refuse one checks before it releases anything)."""
    idx = {c: float(i) for i, c in enumerate(classes)}
    s = pd.Series(values)
    k = np.array(s.map(idx).to_numpy(float), dtype=float)  # a copy: read-only under copy-on-write
    if MISSING_CLASS in idx:
        k[s.isna().to_numpy()] = idx[MISSING_CLASS]
    return np.bincount(k[np.isfinite(k)].astype(np.int64), minlength=len(classes)).astype(float)


def release_label_shares(classes: Sequence[Any], sigma: float, path: ReleasePath,
                         counts: Callable[[], np.ndarray]) -> dict[Any, float]:
    """Release the label histogram ``counts()`` (called only if the release is not already checkpointed)
    and turn it into shares: negative noisy counts become 0 and every class keeps a sliver (1e-9)."""
    noisy = path.release(Spec("label_shares", "label histogram", sigma, stream=(0, 1)), counts)
    pos = np.maximum(noisy, 0.0) + 1e-9
    return {c: float(p / pos.sum()) for c, p in zip(classes, pos)}


def estimate_label_shares(
    private_labels: np.ndarray, classes: Sequence[Any], sigma: float, ledger: Ledger, noise: NoiseSource,
    checkpoint: Checkpointer | None = None,
) -> dict[Any, float]:
    """DP label shares of an in-memory label array; a label outside ``classes`` is refused before any
    release, and the error never names it (it is private)."""
    idx = {c: i for i, c in enumerate(classes)}
    if set(np.unique(private_labels).tolist()) - set(idx):
        raise ValueError(UNKNOWN_LABEL)

    def counts() -> np.ndarray:
        return np.bincount([idx[v] for v in private_labels.tolist()], minlength=len(classes)).astype(float)

    return release_label_shares(classes, sigma, ReleasePath(ledger, noise, checkpoint), counts)
