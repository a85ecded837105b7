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
  ±10¹³; the bounds are its DP 0.5 % and 99.5 % quantiles (``BOUND_Q``: 99 % of the rows inside), read off
  leaf masses that reach a region only with evidence (:func:`bounds_from_tree`), widened by ``MARGIN`` of
  their span (a heavy right tail by more, on the log scale) and rounded outward. Where the noise swamps a
  column (little noisy mass for this σ, or both quantiles in one coarse node the noise could not split) a
  :class:`DPSchemaWarning` names the column and the budget that would do — measured on the corpus in
  ``benchmarks/dp_schema.py``.
* **Typing**: types are the user's ``--types``; the released values are labels as written in the file,
  read as text (``text_table``), so a label never depends on another row (one missing value made every
  label of a number-coded column ``"12.0"``: issue 23, finding 2).
* **Nullable**: every column is nullable, the label too, whatever the data (a public choice, so it releases
  nothing): a few missing cells below the noise would otherwise make the schema refuse the very file it was
  estimated from (or drop those rows under ``--on-invalid clip``), and "nullable" only lets missing be a cell
  of the column's marginals, whose noisy share then says how many there are. A nullable label keeps runs
  class-conditional: a missing label is a class of its own (``tables.labels``). A number column's histogram
  also counts the values that are not numbers (dates), a public cell: past 3σ the column is named in a
  warning.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from pe_tabular.privacy.accountant import gdp_epsilon, gdp_mu, sigma_for_share
from pe_tabular.privacy.ledger import Ledger
from pe_tabular.privacy.noise import NoiseSource
from pe_tabular.privacy.release import ReleasePath, Spec
from pe_tabular.tables import dp_quantiles as dq
from pe_tabular.tables.schema import (
    CATEGORICAL_TYPES,
    DATE_GRIDS,
    INTEGER_TYPES,
    NUMERIC_TYPES,
    OTHER,
    TYPES,
    Column,
    Schema,
    SchemaError,
    bounds_text,
    category_order,
    on_grid,
    outward,
    parse_dates,
    snap_outward,
)

DECADES = 13.0  # the public scale covers ±10^13
BOUND_Q = 0.005  # bounds are the DP 0.5 % and 99.5 % quantiles (then padded and rounded outward): 99 % inside
CAT_WEIGHT = 4.0  # a category histogram gets 4 times the budget of a column's bound histogram
MARGIN = 0.3  # the bounds reach 30 % of the inner span beyond the quantiles (then rounded outward)
LOG_MARGIN = 0.75  # a positive column's upper bound reaches at least 3/4 of the log-distance median → quantile beyond
LOG_MARGIN_MAX = 3.0  # ... but at most 3 times the quantile,
LOG_SPAN = 100.0  # ... and only when the median is within 2 decades of it (a median at 0 would make it absurd)
BOUND_SIGMAS = 4.0  # a cell of the two coarsest levels gets mass only when it stands out by 4σ ...
ADJACENT_SIGMAS = 3.0  # ... or by 3σ right next to one that does (a thin tail beside the bulk)
RESOLVED_LEVEL = 3  # a bound placed by an even spread over a node of level < 3 (0.4 decades) is coarse
MIN_MASS_SIGMAS = 60.0  # fewer than 60σ of noisy mass: the column is too small for this budget (warned)
TARGET_MASS_SIGMAS = 250.0  # the budget a warning suggests: a 1 % tail clears ADJACENT_SIGMAS on its own
DECIMAL_GRIDS = (1.0, 0.1, 0.01, 0.001, 0.0001)  # the decimal grids a float column may be written on
GRID_WEIGHT = 0.1  # a column's grid histogram gets a tenth of a bound histogram's budget
GRID_FINER_SHARE = 0.05  # a grid is kept when, at 2σ, at most 5 % of the values are written finer than it


class DPSchemaWarning(UserWarning):
    """A column whose DP schema entry is noise-limited at the asked budget. Names the column and the budget
    (and released noisy quantities only): never a count or a private value."""


@dataclass(frozen=True)
class Bounds:
    """Bounds read off a released hierarchical histogram (post-processing only). ``mass``: the released
    noisy mass of the column's values; ``coarse``: a bound was placed by noise-level evidence only."""

    lower: float
    upper: float
    scale: str
    mass: float
    coarse: bool


def to_signed_log(x: np.ndarray) -> np.ndarray:
    """Public map of any real number to [0, 1]: 0.5 ± log10(1 + |x|) / (2·DECADES)."""
    x = np.asarray(x, float)
    return np.clip(0.5 + np.sign(x) * np.log10(1.0 + np.abs(x)) / (2 * DECADES), 0.0, 1.0)


def from_signed_log(u: np.ndarray) -> np.ndarray:
    v = (np.asarray(u, float) - 0.5) * 2 * DECADES
    return np.sign(v) * (10.0 ** np.abs(v) - 1.0)


def bounds_from_tree(tree: np.ndarray, sigma: float, type_: str) -> Bounds | None:
    """Bounds from the noisy tree of a column on the signed-log scale; None when it holds no mass.

    Two exclusive levels: no mass reaches a coarse cell (decades of the public scale) unless it stands out
    (``BOUND_SIGMAS``) or continues a standing run by a thinner tail (``ADJACENT_SIGMAS``) — what would make a
    bound absurd; finer levels share a node's excess evenly, so bounds err on the wide side. The bounds are
    the ``BOUND_Q`` and 1 − ``BOUND_Q`` quantiles, padded by ``MARGIN`` of their span (the upper one, of a
    positive column, by ``LOG_MARGIN`` of its log-distance from the median when that reaches further: a heavy
    tail the noise hides beyond the quantile), rounded outward."""
    leaves, depth = dq.leaf_masses_resolved(tree, sigma, min_split=0.0, child_min=BOUND_SIGMAS, exclusive=2,
                                            adjacent_min=ADJACENT_SIGMAS)
    mass = float(leaves.sum())
    if mass <= 0:
        return None
    u = dq.quantiles(leaves, np.array([BOUND_Q, 0.5, 1 - BOUND_Q]))
    coarse = _unresolved(u, depth)
    q = from_signed_log(u)
    lo_q = float(min(from_signed_log(u[0] - 1.0 / leaves.size), q[0]))  # the quantile leaf's lower edge
    hi_q = float(q[2])
    pad = MARGIN * (hi_q - lo_q)  # tails the quantiles cut (few rows each) get room before clipping
    hi = hi_q + pad
    if hi_q > 0 and 0 < LOG_SPAN * q[1] and hi_q <= LOG_SPAN * q[1]:  # a heavy right tail (the median is within
        hi = max(hi, hi_q * min((hi_q / float(q[1])) ** LOG_MARGIN, LOG_MARGIN_MAX))  # 2 decades): reach further
    lo, hi = outward(max(lo_q - pad, 0.0) if lo_q >= 0 else lo_q - pad, hi)
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        lo, hi = float(q[0]) - 1.0, float(q[2]) + 1.0
    scale = "log" if type_ != "datetime" and lo >= 0 and hi > 1000 * max(float(q[1]), 1.0) else "linear"
    return Bounds(lo, hi, scale, mass, coarse)


def _unresolved(u: np.ndarray, depth: np.ndarray) -> bool:
    """Both bounding quantiles (positions ``u[0]``, ``u[-1]``) fall in ONE node of a level coarser than
    ``RESOLVED_LEVEL`` whose mass was spread evenly: the noise hid where in that node the column lies (a year
    column "somewhere in [1778, 4467]")."""
    leaf = np.clip((np.asarray(u)[[0, -1]] * depth.size).astype(int) - 1, 0, depth.size - 1)
    d = depth[leaf]
    if d[0] != d[1] or d[0] >= RESOLVED_LEVEL:
        return False
    width = depth.size // dq.BRANCH ** int(d[0])  # leaves per node of that level
    return bool(leaf[0] // width == leaf[1] // width)


def budget_for(mass_sigmas: float, epsilon: float, delta: float) -> float:
    """The schema budget ε at which a column of ``mass_sigmas`` (noisy mass / σ, released) would hold
    ``TARGET_MASS_SIGMAS``: σ scales as 1/μ, so μ grows by their ratio (post-processing of released values)."""
    factor = TARGET_MASS_SIGMAS / max(mass_sigmas, 1.0)
    need = gdp_epsilon(gdp_mu(epsilon, delta / 2) * factor, delta / 2)
    return float(f"{need:.2g}") if need < 10 else float(math.ceil(need))


def grids_for(type_: str) -> tuple[float, ...]:
    """The grids a column of this type may be written on (none for types whose grid the type fixes)."""
    if type_ == "datetime":
        return DATE_GRIDS
    return DECIMAL_GRIDS if type_ in NUMERIC_TYPES and type_ not in INTEGER_TYPES else ()


def grid_cells(x: np.ndarray, grids: tuple[float, ...]) -> np.ndarray:
    """How many values sit on each grid as the coarsest one (cell i: grids[i]; the last cell: on none of them,
    i.e. written finer). One value, one cell: the histogram's L2 sensitivity is 1."""
    cell = np.full(x.size, len(grids))
    for i in reversed(range(len(grids))):  # fine to coarse: the coarsest grid a value sits on wins
        cell[on_grid(x, grids[i])] = i
    return np.bincount(cell, minlength=len(grids) + 1).astype(float)


def grid_from_cells(noisy: np.ndarray, grids: tuple[float, ...], sigma: float) -> float | None:
    """Post-processing: the coarsest grid that, at 2σ, at most GRID_FINER_SHARE of the values are written finer
    than; None when none is (or the noise swamps the column): the output then keeps full precision."""
    total = float(noisy.sum())
    for i, g in enumerate(grids):
        finer = noisy[i + 1:]
        if total > 0 and float(finer.sum()) + 2 * sigma * math.sqrt(finer.size) <= GRID_FINER_SHARE * total:
            return g
    return None


def _parse(s: pd.Series, type_: str) -> np.ndarray:
    """Numbers (epoch seconds for datetimes) of a column of text; NaN where missing or not a number."""
    x = parse_dates(s) if type_ == "datetime" else pd.to_numeric(s, errors="coerce")
    return np.asarray(x, dtype=float)


def infer_dp(df: pd.DataFrame, types: dict[str, str], epsilon: float, delta: float, noise: NoiseSource,
             label: str | None = None) -> Schema:
    """A schema whose categories, bounds and nullability are (ε, δ)-DP estimates; ``types`` is public input.

    ``df`` should hold the file's cells as text (``text_table.read_text_table``): category labels are then
    the released values as written, whatever the other rows hold. Columns the noise swamps at this budget
    get a :class:`DPSchemaWarning` (column name and the budget that would do, nothing else)."""
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
    n_grid = sum(bool(grids_for(t)) for t in types.values())
    unit = mu * mu / (CAT_WEIGHT * n_cat + n_num + GRID_WEIGHT * n_grid)
    sigma_cat = sigma_for_share(CAT_WEIGHT * unit, 1)
    sigma_num = sigma_for_share(unit, 1, dq.sensitivity())
    sigma_grid = sigma_for_share(GRID_WEIGHT * unit, 1) if n_grid else 0.0
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
            # the observed values only (no public cell: missing cells count nowhere, as every column is
            # nullable); the number of distinct private values is not recorded (size 0) and only values
            # clearing τ are ever used
            noisy = path.release(Spec(f"schema_{j:03d}", f"thresholded category histogram of {name!r}", sigma_cat,
                                      iteration=-1, stream=(-1, j), extra_delta=delta_t, threshold=tau),
                                 lambda vc=vc: vc.to_numpy(float))
            cats = category_order(vc.index[noisy > tau].tolist())
            if type_ == "boolean":
                cats = [c for c in cats if c.lower() in ("true", "false", "1", "0", "yes", "no")]
            if not cats:
                _warn(name, "no value cleared the DP threshold (all missing, or no value frequent enough for this "
                      "budget), so every value goes to its '(other)' category; give its categories publicly if "
                      "it has any", None, delta, 0.0)
            other = OTHER if OTHER not in cats else OTHER + "_"
            cols.append(Column(name, type_, categories=tuple([*cats, other]), other=other, nullable=True))
        else:
            x = _parse(s, type_)
            fin = x[np.isfinite(x)]
            stray = float(s.notna().sum()) - float(fin.size)  # text that is not a number (or a date)
            # [tree cells, missing count, count of values that do not parse]: a row adds to one cell of every
            # level, or to one of the two public cells, so the sensitivity stays √LEVELS
            noisy = path.release(Spec(f"schema_{j:03d}", f"hierarchical histogram of {name!r} on a public "
                                      "signed-log scale (+ missing and unparseable counts)", sigma_num,
                                      dq.sensitivity(), iteration=-1, stream=(-1, j)),
                                 lambda fin=fin, nc=null_count, st=stray: np.concatenate(
                                     [dq.tree_counts(to_signed_log(fin)), [nc, st]]))
            nullable = True  # every column is (see the module docstring)
            what = "dates" if type_ == "datetime" else "numbers"
            if noisy[-1] > 3 * sigma_num:
                _warn(name, f"some values are not {what} (a noisy estimate, not a count); the schema marks the "
                      "column nullable: give those values to synth as missing-value strings or fix them, or "
                      "declare the column categorical to keep them", None, delta, 0.0)
            b = bounds_from_tree(noisy[:-2], sigma_num, type_)
            if b is None:
                _warn(name, f"the DP histogram holds no {what} (all missing, or too few rows for this budget); "
                      "it gets placeholder bounds [0, 1]: give its bounds publicly if it has any", None, delta, 0.0)
                cols.append(Column(name, type_, lower=0.0, upper=1.0, nullable=True,
                                   description="placeholder bounds: no values found by the DP schema"))
                continue
            ratio = b.mass / sigma_num
            if ratio < MIN_MASS_SIGMAS or b.coarse:
                _warn(name, f"bounds {bounds_text(type_, b.lower, b.upper)} are noise-limited (they may cut its "
                      "tails or be far too wide)", epsilon, delta, ratio)
            lower, upper, grid = b.lower, b.upper, None
            if grids := grids_for(type_):  # the grid the values are written on (post-processing of one release)
                spec = Spec(f"schema_grid_{j:03d}", f"grid histogram of {name!r} (the coarsest of {len(grids)} public "
                            "grids each value sits on)", sigma_grid, iteration=-1, stream=(-2, j))
                noisy_grid = path.release(spec, lambda fin=fin, g=grids: grid_cells(fin, g))
                grid = grid_from_cells(noisy_grid, grids, sigma_grid)
                if grid is not None:
                    lower, upper = snap_outward(lower, upper, grid)
            cols.append(Column(name, type_, lower=lower, upper=upper, rounding=grid, scale=b.scale, nullable=nullable,
                               description="" if ratio >= MIN_MASS_SIGMAS and not b.coarse else
                               f"noise-limited DP bounds at --dp-epsilon {epsilon:g}"))
    schema = Schema(tuple(cols), label=label)
    return Schema(schema.columns, label=label, dp_cost=ledger.to_dict(),
                  description=f"categories, bounds and nullability estimated with ({epsilon:g}, {delta:g})-DP")


def _warn(name: str, problem: str, epsilon: float | None, delta: float, mass_sigmas: float) -> None:
    """One :class:`DPSchemaWarning` naming the column, the problem and (with ``epsilon``) the budget that
    would do (from released noisy quantities only)."""
    fix = ""
    if epsilon is not None:
        fix = (f" at --dp-epsilon {epsilon:g}: about --dp-epsilon {budget_for(mass_sigmas, epsilon, delta):g} would "
               "bound 99 % of its rows, or give them publicly in the schema")
    warnings.warn(DPSchemaWarning(f"DP schema, column {name!r}: {problem}{fix}"), stacklevel=3)
