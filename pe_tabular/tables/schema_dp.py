"""Estimating a schema's domains from PRIVATE data, with the budget charged.

Categories: a Gaussian histogram over the observed values with a release threshold, so a value held
by a single row appears with probability ≤ δ_t (the Gaussian sparse-histogram / DP set-union
mechanism: Korolova et al., WWW 2009; Gopi et al., ICML 2020; Wilkins, Kifer, Zhang & Karrer,
"Exact privacy analysis of the Gaussian sparse histogram mechanism", 2024). Bounds: a Gaussian
histogram on a fixed PUBLIC signed-log grid; the bounds are the outer edges of bins whose noisy
count clears a threshold. Column *types* are never read from the data: the user declares them.
Every release goes through the engine's one release path (charged before it is drawn), is recorded in
``schema.dp_cost`` and charged again by ``synth`` to the same ledger.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from pe_tabular.privacy.accountant import gdp_mu, sigma_for_share
from pe_tabular.privacy.ledger import Ledger
from pe_tabular.privacy.noise import NoiseSource
from pe_tabular.privacy.release import ReleasePath, Spec
from pe_tabular.tables.schema import CATEGORICAL_TYPES, Column, Schema, SchemaError

# public grid: 0 and ±10^(j/4) for j = -8..40, i.e. 0.01 .. 1e10 with 4 bins per decade
_POS = 10.0 ** (np.arange(-8, 41) / 4)
GRID = np.concatenate([-_POS[::-1], [0.0], _POS])


def infer_dp(df: pd.DataFrame, types: dict[str, str], epsilon: float, delta: float, noise: NoiseSource,
             label: str | None = None) -> Schema:
    """A schema whose categories and bounds are (ε, δ)-DP estimates; ``types`` is public input."""
    missing = [c for c in df.columns if c not in types]
    if missing:
        raise SchemaError(f"--types gives no type for columns {missing}; column types are public input "
                          "(e.g. --types age=integer,workclass=categorical)")
    mu = gdp_mu(epsilon, delta / 2)
    n_cols = len(types)
    sigma = sigma_for_share(mu * mu, n_cols)  # one Δ=1 histogram per column, μ² split evenly
    delta_t = delta / 2 / n_cols  # δ spent on thresholds, per column
    tau = 1.0 + sigma * norm.isf(delta_t)
    ledger = Ledger(delta, mu_budget=mu)
    path = ReleasePath(ledger, noise)
    cols = []
    for j, (name, type_) in enumerate(types.items()):
        s = df[name]
        if type_ in CATEGORICAL_TYPES:
            vc = s.dropna().astype(str).str.strip().value_counts()
            # the histogram's length is the number of distinct private values: not recorded (size 0)
            noisy = path.release(Spec(f"schema_{j:03d}", f"thresholded category histogram of {name!r}", sigma,
                                      iteration=-1, stream=(-1, j), extra_delta=delta_t, size=0), vc.to_numpy(float))
            cats = sorted(vc.index[noisy > tau].tolist())
            if not cats:
                raise SchemaError(f"column {name!r}: no category survives the DP threshold ({tau:.1f}); "
                                  "raise --dp-epsilon or give the categories publicly")
            cols.append(Column(name, type_, categories=tuple(cats), nullable=False))
        else:
            x = pd.to_numeric(s, errors="coerce").to_numpy(float) if type_ != "datetime" else \
                pd.to_datetime(s, errors="coerce").astype("int64").to_numpy(float) / 1e9
            x = x[np.isfinite(x)]
            b = np.clip(np.searchsorted(GRID, x, side="right") - 1, 0, GRID.size - 2)
            noisy = path.release(Spec(f"schema_{j:03d}", f"bound histogram of {name!r} on a public log grid", sigma,
                                      iteration=-1, stream=(-1, j)),
                                 lambda b=b: np.bincount(b, minlength=GRID.size - 1).astype(float))
            keep = np.flatnonzero(noisy > 3 * sigma)
            if keep.size == 0:
                raise SchemaError(f"column {name!r}: no bin clears the DP threshold; raise --dp-epsilon or give "
                                  "its bounds publicly")
            lo, hi = float(GRID[keep[0]]), float(GRID[keep[-1] + 1])
            scale = "log" if lo >= 0 and hi > 1e4 else "linear"
            cols.append(Column(name, type_, lower=lo, upper=hi, scale=scale, nullable=False))
    schema = Schema(tuple(cols), label=label)
    return Schema(schema.columns, label=label, dp_cost=ledger.to_dict(),
                  description=f"categories and bounds estimated with ({epsilon:g}, {delta:g})-DP")
