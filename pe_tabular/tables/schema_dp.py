"""Estimating a schema's domains from PRIVATE data, with the budget charged.

Column *types* are never read from the data: the user declares them (``--types``). Everything else is
released by Gaussian mechanisms through the engine's one release path (charged before it is drawn),
recorded in ``schema.dp_cost`` and charged again by ``synth`` to the same ledger:

* **Categories**: a Gaussian histogram over the observed values with a release threshold τ, so a value
  held by a single row appears with probability ≤ δ_t (the Gaussian sparse-histogram / DP set-union
  mechanism: Korolova et al., WWW 2009; Gopi et al., ICML 2020; Wilkins, Kifer, Zhang & Karrer, "Exact
  privacy analysis of the Gaussian sparse histogram mechanism", 2024). Its length (the number of distinct
  private values) is not recorded. The released categories are listed in numeric or text order, and every
  categorical column gets an explicit other bucket ``(other)`` that takes the values that did not clear τ,
  so rare values are kept (as "other") instead of dropping their rows.
* **Bounds**: a hierarchical histogram (``dp_quantiles``) on a fixed PUBLIC signed-log scale covering
  ±10¹³; the bounds are its DP quantiles q and 1 − q (q = ``BOUND_Q``, or the share of 4σ of mass when that is more,
so that a cell holding only noise can never set a bound; cells below 4σ get no mass), widened by
  ``MARGIN`` of their span and rounded outward to the leading
  digit of their span (a margin). A quantile moves by the mass of noise, not by one spurious cell, so the
  bounds are never absurd (the earlier "outer edges of bins clearing 3σ" gave −56 million for a price in
  about half of the runs).
* **Nullable**: the count of missing values is one more cell of the same release (a public key); the column
  is nullable when it clears 3σ.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm

from pe_tabular.privacy.accountant import gdp_mu, sigma_for_share
from pe_tabular.privacy.ledger import Ledger
from pe_tabular.privacy.noise import NoiseSource
from pe_tabular.privacy.release import ReleasePath, Spec
from pe_tabular.tables import dp_quantiles as dq
from pe_tabular.tables.schema import (
    CATEGORICAL_TYPES,
    OTHER,
    TYPES,
    Column,
    Schema,
    SchemaError,
    category_order,
    outward,
    parse_dates,
)

DECADES = 13.0  # the public scale covers ±10^13
BOUND_Q = 0.002  # bounds are the DP 0.2 % and 99.8 % quantiles (or further in, see BOUND_SIGMAS), rounded outward
CAT_WEIGHT = 4.0  # a category histogram gets 4 times the budget of a column's bound histogram
MARGIN = 0.2  # the bounds reach 20 % of the inner span beyond the quantiles (then rounded outward)
BOUND_SIGMAS = 4.0  # ...and never closer to the ends than 4σ of mass: one noisy cell cannot set a bound


def to_signed_log(x: np.ndarray) -> np.ndarray:
    """Public map of any real number to [0, 1]: 0.5 ± log10(1 + |x|) / (2·DECADES)."""
    x = np.asarray(x, float)
    return np.clip(0.5 + np.sign(x) * np.log10(1.0 + np.abs(x)) / (2 * DECADES), 0.0, 1.0)


def from_signed_log(u: np.ndarray) -> np.ndarray:
    v = (np.asarray(u, float) - 0.5) * 2 * DECADES
    return np.sign(v) * (10.0 ** np.abs(v) - 1.0)


def infer_dp(df: pd.DataFrame, types: dict[str, str], epsilon: float, delta: float, noise: NoiseSource,
             label: str | None = None) -> Schema:
    """A schema whose categories, bounds and nullability are (ε, δ)-DP estimates; ``types`` is public input."""
    missing = [c for c in df.columns if c not in types]
    if missing:
        raise SchemaError(f"--types gives no type for columns {missing}; column types are public input "
                          "(e.g. --types age=integer,workclass=categorical)")
    bad = {k: v for k, v in types.items() if v not in TYPES}
    if bad:
        raise SchemaError(f"--types: unknown types {bad}; use one of {sorted(TYPES)}")
    mu = gdp_mu(epsilon, delta / 2)
    n_cat = sum(t in CATEGORICAL_TYPES for t in types.values())
    n_num = len(types) - n_cat
    # one release per column; a category histogram weighs CAT_WEIGHT times a bound histogram in μ², because
    # its threshold decides which values exist at all while bounds only need a rough quantile
    unit = mu * mu / (CAT_WEIGHT * n_cat + n_num)
    sigma_cat = sigma_for_share(CAT_WEIGHT * unit, 1)
    sigma_num = sigma_for_share(unit, 1, dq.sensitivity())
    n_cat = max(n_cat, 1)
    delta_t = delta / 2 / n_cat  # δ spent on thresholds, per categorical column
    tau = 1.0 + sigma_cat * norm.isf(delta_t)
    ledger = Ledger(delta, mu_budget=mu)
    path = ReleasePath(ledger, noise)
    cols = []
    for j, (name, type_) in enumerate(types.items()):
        s = df[name]
        null_count = float(s.isna().sum())
        if type_ in CATEGORICAL_TYPES:
            vc = s.dropna().astype(str).str.strip().value_counts()
            # [null cell (a public key), the observed values]; the number of distinct private values is not
            # recorded (size 0) and only values clearing τ are ever used
            noisy = path.release(Spec(f"schema_{j:03d}", f"thresholded category histogram of {name!r}", sigma_cat,
                                      iteration=-1, stream=(-1, j), extra_delta=delta_t, threshold=tau,
                                      public_cells=1),
                                 lambda vc=vc, nc=null_count: np.concatenate([[nc], vc.to_numpy(float)]))
            cats = category_order(vc.index[noisy[1:] > tau].tolist())
            if type_ == "boolean":
                cats = [c for c in cats if c.lower() in ("true", "false", "1", "0", "yes", "no")]
            other = OTHER if OTHER not in cats else OTHER + "_"
            cols.append(Column(name, type_, categories=tuple([*cats, other]), other=other,
                               nullable=bool(noisy[0] > 3 * sigma_cat)))
        else:
            x = parse_dates(s) if type_ == "datetime" else pd.to_numeric(s, errors="coerce").astype(float)
            x = x.to_numpy(float)
            fin = x[np.isfinite(x)]
            noisy = path.release(Spec(f"schema_{j:03d}", f"hierarchical histogram of {name!r} on a public "
                                      "signed-log scale (+ missing count)", sigma_num, dq.sensitivity(),
                                      iteration=-1, stream=(-1, j)),
                                 lambda fin=fin, nc=null_count: np.concatenate(
                                     [dq.tree_counts(to_signed_log(fin)), [nc]]))
            # min_split 0 and two exclusive levels: a node splits toward any child that stands out (4σ), and no
            # mass reaches a coarse cell (decades of the public scale) without evidence — that is what would
            # make a bound absurd; finer levels share a node's excess evenly, so bounds err on the wide side
            leaves = dq.leaf_masses(noisy[:-1], sigma_num, min_split=0.0, child_min=BOUND_SIGMAS, exclusive=2)
            if leaves.sum() <= 0:
                raise SchemaError(f"column {name!r}: the DP histogram holds no mass; raise --dp-epsilon or give "
                                  "its bounds publicly")
            bq = min(max(BOUND_Q, BOUND_SIGMAS * sigma_num / leaves.sum()), 0.05)  # past any noise-sized cell
            q = from_signed_log(dq.quantiles(leaves, np.array([bq, 0.5, 1 - bq])))
            lo_leaf = from_signed_log(dq.quantiles(leaves, np.array([bq]))[0] - 1.0 / leaves.size)
            lo_q, hi_q = float(min(lo_leaf, q[0])), float(q[2])
            pad = MARGIN * (hi_q - lo_q)  # tails the quantiles cut (few rows each) get room before clipping
            lo, hi = outward(max(lo_q - pad, 0.0) if lo_q >= 0 else lo_q - pad, hi_q + pad)
            if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
                lo, hi = float(q[0]) - 1.0, float(q[2]) + 1.0
            scale = "log" if type_ != "datetime" and lo >= 0 and hi > 1000 * max(float(q[1]), 1.0) else "linear"
            cols.append(Column(name, type_, lower=lo, upper=hi, scale=scale, nullable=bool(noisy[-1] > 3 * sigma_num)))
    schema = Schema(tuple(cols), label=label)
    return Schema(schema.columns, label=label, dp_cost=ledger.to_dict(),
                  description=f"categories, bounds and nullability estimated with ({epsilon:g}, {delta:g})-DP")
