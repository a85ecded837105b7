"""An SDV single-table model fitted on a PUBLIC table, as a PE generator (extra ``sdv``).

The model (Gaussian copula by default — fast, and enough to carry a public table's correlations;
CTGAN or TVAE optionally) is fitted once on a user-supplied *public* table, never on private data.
``random`` samples it — class-conditionally through ``sdv.sampling.Condition`` when a label is
given. ``vary`` is a local move that stands in for "re-sample a degree-sized subset of columns
conditioned on the rest":

    each row picks its columns to change (each with probability ``degree``, at least one), finds one
    of its ``1 + degree·(k−1)`` nearest rows in a fresh pool sampled from the model (same class, the
    project's mixed-type distance), and copies that neighbour's values into the chosen columns.

Why not SDV's own conditional sampling per row: a Gaussian copula conditions exactly only on numeric
columns; with categorical columns fixed SDV falls back to rejection sampling, which for a row-specific
condition over ~14 columns almost never hits and costs one model call per row. The neighbour copy is
a nearest-neighbour hot-deck draw from the model's conditional: values that the model pairs with rows
like this one. Small degrees change few columns and copy from the closest rows (small moves); degree 1
changes every column from a looser neighbourhood (close to a fresh draw).

SDV 2.0 metadata is built here (``sdv_metadata``) with the schema's public bounds as
``range_min``/``range_max``; values are clipped and snapped to the public grid afterwards.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.population import Population
from pe_tabular.tables.encoder import TableEncoder
from pe_tabular.tables.labels import class_strings, is_missing_class
from pe_tabular.tables.schema import Schema, validate
from pe_tabular.tables.values import snap

log = logging.getLogger(__name__)
TABLE = "public"
SYNTHESIZERS = ("gaussian_copula", "ctgan", "tvae")


def sdv_metadata(schema: Schema) -> Any:
    """SDV 2.x ``Metadata`` for the internal representation (numbers as floats, datetimes as epoch s)."""
    return schema.to_sdv_metadata(TABLE, internal=True)


def _quiet() -> contextlib.ExitStack:
    """SDV prints progress bars and FutureWarnings for every call; errors still raise."""
    st = contextlib.ExitStack()
    st.enter_context(contextlib.redirect_stderr(io.StringIO()))
    st.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return st


def _table(x: Any) -> pd.DataFrame:
    return next(iter(x.values())) if isinstance(x, dict) else x


class SDVBackend:
    """``random`` samples an SDV model fitted on public data; ``vary`` is a neighbour hot-deck move."""

    def __init__(self, schema: Schema, public: pd.DataFrame | str | Path, *, synthesizer: str = "gaussian_copula",
                 seed: int = 0, pool: int = 2000, neighbours: int = 8, name: str = "sdv", **kwargs: Any):
        if synthesizer not in SYNTHESIZERS:
            raise ValueError(f"unknown SDV synthesizer {synthesizer!r}; choose one of {SYNTHESIZERS}")
        if isinstance(public, str | Path):
            public = _read_public(Path(public))
        self.schema, self.name = schema, name
        self.pool, self.neighbours = int(pool), max(1, int(neighbours))
        missing = [c for c in schema.names if c not in public.columns]
        if missing:
            raise ValueError(f"--public-data lacks schema columns {missing}; the SDV model needs every column")
        data = validate(public, schema, "clip")  # internal representation; out-of-range public values clipped
        if len(data) < 10:
            raise ValueError(f"--public-data has only {len(data)} valid rows; the SDV model needs at least 10")
        from sdv import single_table

        cls = {"gaussian_copula": single_table.GaussianCopulaSynthesizer, "ctgan": single_table.CTGANSynthesizer,
               "tvae": single_table.TVAESynthesizer}[synthesizer]
        if synthesizer == "gaussian_copula":
            kwargs.setdefault("default_distribution", "norm")  # beta fits are slow and rarely better here
        else:
            kwargs.setdefault("enable_gpu", False)
        with _quiet():
            self.model = cls(sdv_metadata(schema), enforce_min_max_values=True, **kwargs)
            self.model.fit({TABLE: data})  # a copula fit is deterministic; CTGAN/TVAE use torch's own RNG
            self.model._set_random_state(int(seed))
        self.encoder = TableEncoder(schema)
        log.info("SDV %s fitted on %d public rows", synthesizer, len(data))

    # -- sampling ---------------------------------------------------------------------------------
    def _label_value(self, label: Any) -> Any:
        cats = {str(v): v for v in self.schema[self.schema.label].categories}
        if str(label) not in cats:
            raise ValueError(f"label {label!r} is not a category of {self.schema.label!r}")
        return cats[str(label)]

    def _sample(self, n: int, label: Any, rng: np.random.Generator) -> pd.DataFrame:
        """n rows from the model, of class ``label`` when one is given; rows of the missing class are drawn
        unconditionally (a copula cannot condition on a missing value) and their label set missing."""
        missing = is_missing_class(label)
        label = None if label is None or missing else self._label_value(label)
        with _quiet():
            self.model._set_random_state(int(rng.integers(0, 2**31 - 1)))
            if label is None:
                df = _table(self.model.sample(n))
                if missing:
                    df[self.schema.label] = None
            else:
                from sdv.sampling import Condition

                df = _table(self.model.sample_from_conditions(
                    [Condition(num_rows=n, column_values={self.schema.label: label})]))
        return self._conform(df.reset_index(drop=True), label)

    def _conform(self, df: pd.DataFrame, label: Any) -> pd.DataFrame:
        """Snap to the public schema: numbers clipped and rounded, categories as the schema's objects."""
        out = {}
        for c in self.schema.columns:
            if c.is_categorical:
                lut = {str(v): v for v in c.categories}
                vals = df[c.name].astype(str).map(lut)
                if vals.isna().any() and not c.nullable:  # SDV only emits seen values; this is a guard
                    vals = vals.fillna(c.categories[0])
                out[c.name] = vals.astype(object).to_numpy()
            else:
                x = pd.to_numeric(df[c.name], errors="coerce").to_numpy(float)
                null = np.isnan(x)
                x = snap(c, np.where(null, c.lower, x))
                out[c.name] = np.where(null & c.nullable, np.nan, x)
        res = pd.DataFrame(out, columns=self.schema.names)
        if label is not None:
            res[self.schema.label] = pd.Series([label] * len(res), dtype=object)
        return res

    def random(self, n: int, *, label: Any = None, rng: np.random.Generator) -> Population:
        if label is not None and self.schema.label is None:
            raise ValueError("a class-conditional draw needs schema.label")
        return Population.fresh(self._sample(n, label, rng), self.name, label=label)

    def vary(self, pop: Population, degree: float, rng: np.random.Generator) -> Population:
        df, n = pop.samples, len(pop)
        if n == 0:
            return Population(df.copy(), np.full(0, self.name, object), pop.parent, None, pop.label)
        lab = self.schema.label if pop.label is not None else None
        cols = [c.name for c in self.schema.columns if c.name != lab]
        k = max(1, int(round(1 + degree * (self.neighbours - 1))))
        if lab is None:
            pool = self._sample(max(self.pool, k), None, rng)
            pool_labels = None
        else:
            parts = [self._sample(max(self.pool // 2, 2 * int(np.sum(pop.label == c)), k), c, rng)
                     for c in np.unique(pop.label)]
            pool = pd.concat(parts, ignore_index=True)
            pool_labels = class_strings(pool[lab])
        from pe_tabular.voting.registry import class_conditional_nearest, get_voter

        nn = class_conditional_nearest(get_voter("auto"), self.encoder.encode(df), self.encoder.encode(pool),
                                       self.encoder.metric, k,
                                       None if lab is None else pop.label.astype(str).astype(object), pool_labels)
        donor = nn[np.arange(n), rng.integers(0, k, n)]
        change = rng.random((n, len(cols))) < degree
        none = ~change.any(axis=1)
        change[np.flatnonzero(none), rng.integers(0, len(cols), none.sum())] = True
        out = df.copy().reset_index(drop=True)
        for j, name in enumerate(cols):
            rows = np.flatnonzero(change[:, j])
            if rows.size:
                vals = out[name].to_numpy(dtype=object if self.schema[name].is_categorical else float).copy()
                vals[rows] = pool[name].to_numpy()[donor[rows]]
                out[name] = vals
        return Population(out, np.full(n, self.name, dtype=object), pop.parent, None, pop.label)


def _read_public(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"--public-data {path} does not exist")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, skipinitialspace=True, keep_default_na=False, na_values=[""])
