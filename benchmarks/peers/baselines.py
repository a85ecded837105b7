"""Non-DP reference points: what the real data gives with no privacy at all.

* independent marginals (exact): each column resampled on its own from the private rows — the
  floor any useful synthesizer must beat on 2-/3-way TVD;
* bootstrap: the private rows resampled with replacement — the sampling-noise floor of the metrics;
* SDV GaussianCopula (SDV 2.x defaults, metadata from our public schema): a popular non-DP model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def independent_marginals(df: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({c: df[c].to_numpy()[rng.integers(0, len(df), n)] for c in df.columns})


def bootstrap(df: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    return df.iloc[rng.integers(0, len(df), n)].reset_index(drop=True)


def gaussian_copula(df: pd.DataFrame, n: int, schema: object, seed: int) -> pd.DataFrame:
    from sdv.single_table import GaussianCopulaSynthesizer

    # SDV draws from NumPy's legacy global generator; this runs in its own process, so seed it there
    np.random.seed(seed)  # noqa: NPY002 - the library's own generator
    syn = GaussianCopulaSynthesizer(schema.to_sdv_metadata("adult", internal=True))  # type: ignore[attr-defined]
    syn.fit({"adult": df})  # SDV 2.x: single-table synthesizers take {table name: frame}
    out = syn.sample(n)
    return out["adult"] if isinstance(out, dict) else out
