"""Mixed-row encoder: each column becomes one integer code column with its own distance kind.

Numbers are mapped to an integer grid of ``Q`` steps over their *public* range (log scale for
heavy-tailed columns) and compared by |Δ|; categories by mismatch, costing as much as a full-range
numeric difference. Integer arithmetic keeps every voting kernel exactly in agreement.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pe_tabular.distance import ABS, CAT, MixedMetric
from pe_tabular.tables.cells import CategoryLookup
from pe_tabular.tables.marginals import Binning
from pe_tabular.tables.schema import Schema
from pe_tabular.tables.values import to_unit

Q = 1000  # numeric grid steps over the public range; a category mismatch costs Q
COARSE_BINS = 32  # numbers also vote on their coarse public bin, compared like a category
FINE_WEIGHT = 0.5  # the full public range of the fine |Δ| costs half a category mismatch


class TableEncoder:
    """Encoder for tabular rows under a public schema (``weights`` override column weights by name)."""

    def __init__(self, schema: Schema, weights: Mapping[str, float] | None = None, exclude: tuple[str, ...] = ()):
        self.schema = schema
        self.columns = [c for c in schema.columns if c.name not in exclude]
        unknown = set(weights or {}) - set(schema.names)
        if unknown:
            raise ValueError(f"--weights names unknown columns {sorted(unknown)}")
        kinds, w = [], []
        for c in self.columns:
            wt = (weights or {}).get(c.name, c.weight)
            if c.is_categorical:
                kinds.append(CAT)
                w.append(int(round(wt * Q)))
            else:  # coarse bin as a category (a different bin is a real difference), fine |Δ| within
                kinds += [CAT, ABS]
                w += [int(round(wt * Q)), int(round(wt * FINE_WEIGHT))]
            if c.nullable and not c.is_categorical:
                kinds.append(CAT)
                w.append(int(round(wt * Q)))
        self.metric = MixedMetric(np.array(kinds, dtype=np.int8), np.array(w, dtype=np.int64))
        self._coarse = {c.name: Binning.of(c, COARSE_BINS, COARSE_BINS) for c in self.columns if not c.is_categorical}
        self._cat_index = {c.name: CategoryLookup(c.categories, c.type == "boolean")
                           for c in self.columns if c.is_categorical}

    def encode(self, samples: pd.DataFrame) -> np.ndarray:
        out = []
        for c in self.columns:
            s = samples[c.name]
            if c.is_categorical:
                codes = self._cat_index[c.name].codes(s)  # cell by cell; missing: a code of its own
                out.append(np.where(codes < 0, len(c.categories), codes))
            else:
                x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
                null = np.isnan(x)
                u = np.where(null, 0.0, to_unit(c, np.where(null, c.lower, x)))
                out.append(self._coarse[c.name].index(s))
                out.append(np.rint(u * Q).astype(np.int64))
                if c.nullable:
                    out.append(null.astype(np.int64))
        return np.stack(out, axis=1) if out else np.zeros((len(samples), 0), np.int64)
