"""The built-in, embedded backend: public priors for ``random``, local moves for ``vary``.

Numeric variation is designed to land on, and stay on, public point masses. A field that mutates
either (a) copies the value of another member of the (vote-selected) population — crossover,
which is post-processing of released samples and spreads point masses the votes favoured, such as
hours-per-week = 40 — or (b) jitters on the public scale and snaps to the public rounding grid, or
(c) jumps to a public *anchor* (bounds, 0, special values, round numbers), or (d) redraws from the
prior. Fields that do not mutate keep their exact value, so point masses persist. This avoids the
failure of uniform ±rate·range jitter (Tab-PE), which never returns to a point mass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.population import Population
from pe_tabular.tables.labels import label_cells
from pe_tabular.tables.schema import Column, Schema
from pe_tabular.tables.values import anchors, from_unit, snap, to_unit


class StatisticalBackend:
    """``random`` from public knowledge; ``vary`` by crossover, jitter, anchors and prior redraws."""

    name = "statistical"

    def __init__(self, schema: Schema, priors: Mapping[str, Mapping[Any, float]] | None = None,
                 marginals: Mapping[str, np.ndarray] | None = None,
                 anchor_share: float = 0.3, null_share: float = 0.05,
                 move_probs: tuple[float, float, float, float] = (0.45, 0.3, 0.1, 0.15)):
        self.schema = schema
        self.priors = dict(priors or {})
        unknown = set(self.priors) - set(schema.names)
        if unknown:
            raise ValueError(f"public priors given for unknown columns {sorted(unknown)}")
        self.marginals = dict(marginals or {})  # distributions over public bins (pe_tabular.tables.marginals)
        self.anchor_share, self.null_share = anchor_share, null_share
        self.move_probs = np.asarray(move_probs, dtype=float) / np.sum(move_probs)
        self._anchors = {c.name: anchors(c) for c in schema.columns if not c.is_categorical}

    # -- random -------------------------------------------------------------------------------
    def _prior_column(self, c: Column, n: int, rng: np.random.Generator) -> np.ndarray:
        if c.name in self.marginals:
            from pe_tabular.tables.marginals import Binning

            p = self.marginals[c.name]
            return Binning.of(c).values(rng, rng.choice(p.size, size=n, p=p))
        if c.is_categorical:
            cats = np.empty(len(c.categories), dtype=object)
            cats[:] = list(c.categories)
            p = None
            if c.name in self.priors:
                pr = self.priors[c.name]
                p = np.array([float(pr.get(v, pr.get(str(v), 0.0))) for v in c.categories])
                p = p / p.sum()
            out = cats[rng.choice(len(cats), size=n, p=p)]
        else:
            u = rng.random(n)
            x = from_unit(c, u)
            use_anchor = rng.random(n) < self.anchor_share
            a = self._anchors[c.name]
            x[use_anchor] = a[rng.integers(0, a.size, use_anchor.sum())]
            out = snap(c, x).astype(object)
        if c.nullable:
            out = out.astype(object)
            out[rng.random(n) < self.null_share] = None
        return out

    def random(self, n: int, *, label: Any = None, rng: np.random.Generator) -> Population:
        data = {c.name: self._prior_column(c, n, rng) for c in self.schema.columns}
        if label is not None:
            if self.schema.label is None:
                raise ValueError("a class-conditional draw needs schema.label")
            data[self.schema.label] = label_cells(label, n)  # the missing class: a missing label
        return Population.fresh(self._frame(data), self.name, label=label)

    def _frame(self, data: dict[str, np.ndarray]) -> pd.DataFrame:
        df = pd.DataFrame(data)
        for c in self.schema.columns:
            if not c.is_categorical:
                df[c.name] = pd.to_numeric(df[c.name], errors="coerce").astype(float)
        return df

    # -- vary ---------------------------------------------------------------------------------
    def vary(self, pop: Population, degree: float, rng: np.random.Generator) -> Population:
        df = pop.samples
        n = len(df)
        cols = [c for c in self.schema.columns if c.name != self.schema.label or pop.label is None]
        if n == 0 or not cols:
            return Population(df.copy(), np.full(n, self.name, object), pop.parent, None, pop.label)
        mut = rng.random((n, len(cols))) < degree
        none = ~mut.any(axis=1)
        mut[np.flatnonzero(none), rng.integers(0, len(cols), none.sum())] = True  # every row moves
        out = {c.name: df[c.name].to_numpy(dtype=object).copy() for c in self.schema.columns}
        for j, c in enumerate(cols):
            rows = np.flatnonzero(mut[:, j])
            if rows.size:
                out[c.name][rows] = self._mutate(c, df[c.name].to_numpy(dtype=object), rows, degree, rng)
        return Population(self._frame(out), np.full(n, self.name, dtype=object), pop.parent, None, pop.label)

    def _mutate(self, c: Column, col: np.ndarray, rows: np.ndarray, degree: float,
                rng: np.random.Generator) -> np.ndarray:
        m = rows.size
        move = rng.choice(4, size=m, p=self.move_probs)  # 0 crossover, 1 jitter, 2 anchor, 3 prior
        new = col[rng.integers(0, col.size, m)].copy()  # crossover by default
        fresh = self._prior_column(c, m, rng)
        if c.is_categorical:
            redraw = move >= 1
            new[redraw] = fresh[redraw]
            return new
        cur = pd.to_numeric(pd.Series(col[rows]), errors="coerce").to_numpy(float)
        isnull = np.isnan(cur)
        u = to_unit(c, np.where(isnull, c.lower, cur))
        jit = snap(c, from_unit(c, u + rng.normal(0.0, 0.25 * max(degree, 0.02), m)))
        a = self._anchors[c.name]
        near = a[np.clip(np.searchsorted(a, np.where(isnull, c.lower, cur)), 0, a.size - 1)]
        anchor = np.where(rng.random(m) < 0.5, near, a[rng.integers(0, a.size, m)])
        new = np.where(move == 1, jit, new)
        new = np.where(move == 2, anchor, new)
        new = np.where(move == 3, fresh, new)
        if not c.nullable:
            nulls = pd.isna(new)
            new[nulls] = jit[nulls]
        return new.astype(object)
