"""Fidelity, utility and privacy-risk metrics for synthetic tables, on PUBLIC bins only.

Every row of both tables is scored (``pe_tabular.tables.scoring``): a value outside the schema is counted
in an ``(outside schema)`` cell of its column and a missing value in a ``(missing)`` cell, never dropped, so
the number of real rows scored is the file's. These are figures about the REAL data as it is (exact, not
differentially private): an operator-side check, kept with the private data.

* k-way marginal TVD (k = 1, 2, 3; mean and max over all column subsets), numbers binned on the
  schema's public range (32 bins on its scale, or one bin per value for small integer domains);
* TSTR (train on synthetic, test on real): HistGradientBoosting accuracy, macro-F1, AUC, with the
  train-on-real ceiling beside it;
* DCR: distance to the closest real training record vs the same for a real holdout; a synthetic set
  that copies training rows has far smaller DCRs than the holdout.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.io_utils import epoch_seconds
from pe_tabular.tables.encoder import TableEncoder
from pe_tabular.tables.schema import Schema
from pe_tabular.tables.scoring import EVAL_BINS, Scored, category_index, column_codes, numbers, score
from pe_tabular.voting.reference import mixed_distances
from pe_tabular.voting.registry import get_voter

SCOPE = ("operator-side: computed from the REAL data as it is (exact figures, not differentially private); "
         "keep them with the private data")


def binned(df: pd.DataFrame, schema: Schema) -> tuple[np.ndarray, np.ndarray]:
    """(n, c) public bin codes of every row and the number of cells per column (bins, missing, outside)."""
    s = score(df, schema)
    return s.codes, s.sizes


def as_internal(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Datetime columns as epoch seconds, the scale of the schema's bounds (NaN where not a date).

    Why: ``synth`` hands over pandas Timestamps and files hold text; the models and the distance to closest
    record compare numbers on the schema's scale.
    """
    cols = [c for c in schema.columns if c.type == "datetime" and c.name in df
            and not pd.api.types.is_numeric_dtype(df[c.name])]
    if not cols:
        return df
    out = df.copy()
    for c in cols:
        out[c.name] = numbers(out[c.name], c)
    return out


def _scored(x: pd.DataFrame | Scored, schema: Schema) -> Scored:
    return x if isinstance(x, Scored) else score(x, schema)


def marginal_tvd(real: pd.DataFrame | Scored, synth: pd.DataFrame | Scored, schema: Schema,
                 ways: tuple[int, ...] = (1, 2, 3), progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Mean / max TVD over all k-way marginals, plus the worst marginals (every row of both tables counts)."""
    rs, ss = _scored(real, schema), _scored(synth, schema)
    r, s, sizes = rs.codes, ss.codes, rs.sizes
    out: dict[str, Any] = {}
    worst: list[tuple[float, tuple[str, ...]]] = []
    for k in [w for w in ways if w <= len(sizes)]:
        vals = []
        for cl in itertools.combinations(range(len(sizes)), k):
            dims = sizes[list(cl)]
            hr = np.bincount(np.ravel_multi_index(r[:, cl].T, dims), minlength=int(np.prod(dims)))
            hs = np.bincount(np.ravel_multi_index(s[:, cl].T, dims), minlength=int(np.prod(dims)))
            tvd = 0.5 * np.abs(hr / max(hr.sum(), 1) - hs / max(hs.sum(), 1)).sum()
            vals.append(tvd)
            if k <= 2:
                worst.append((float(tvd), tuple(schema.columns[i].name for i in cl)))
            if progress:
                progress(1)
        out[f"tvd{k}_mean"] = float(np.mean(vals))
        out[f"tvd{k}_max"] = float(np.max(vals))
    out["worst_marginals"] = [{"columns": list(c), "tvd": v} for v, c in sorted(worst, reverse=True)[:10]]
    return out


def _features(df: pd.DataFrame, schema: Schema, target: str) -> tuple[np.ndarray, list[int]]:
    cols = [c for c in schema.columns if c.name != target]
    X, cat = [], []
    for j, c in enumerate(cols):
        if c.is_categorical:  # a category the schema lacks is a missing feature value (NaN) for the model
            idx = category_index(df[c.name], c)
            X.append(np.where(idx >= 0, idx, np.nan))
            cat.append(j)
        elif c.type == "datetime":
            X.append(epoch_seconds(pd.to_datetime(df[c.name])).to_numpy(float))
        else:
            X.append(pd.to_numeric(df[c.name], errors="coerce").to_numpy(float))
    return np.stack(X, axis=1), cat


def auc_of_present_classes(y: np.ndarray, proba: np.ndarray) -> float | None:
    """AUC over the classes present in the real test rows ``y`` (``proba``: one column per class code).

    Two present classes: the usual binary AUC, the later-coded class positive, scored by its probability
    (a label that gained an ``(other)`` or ``(missing)`` class the test rows never show is still binary).
    More: the macro average of each present class's one-vs-rest AUC. A class the model never saw has
    probability 0 and is scored like any other. None when the test rows hold one class only.
    """
    from sklearn.metrics import roc_auc_score

    present = np.unique(y)
    if present.size < 2:
        return None
    if present.size == 2:
        return float(roc_auc_score(y == present[1], proba[:, present[1]]))
    return float(np.mean([roc_auc_score(y == k, proba[:, k]) for k in present]))


def tstr(train: pd.DataFrame, test: pd.DataFrame, schema: Schema, target: str, seed: int = 0) -> dict[str, Any]:
    """Train HistGradientBoosting on ``train``, test on ``test``: accuracy, macro-F1, AUC.

    Every row of both counts: the label's classes are its evaluation cells (categories, ``(missing)``,
    ``(outside schema)``), so a test row whose label the schema lacks counts in accuracy and F1 (a miss: no
    model trained on schema-true data predicts it). The AUC is over the classes the schema defines (see
    :func:`auc_of_present_classes`); such rows are left out of it, since a class that every model scores 0
    would only pull the AUC to 0.5, and the note says how many there were.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import accuracy_score, f1_score

    col = schema[target]
    y, n_classes = column_codes(train[target], col)
    yt, _ = column_codes(test[target], col)
    if len(np.unique(y)) < 2:
        return {"accuracy": None, "f1": None, "auc": 0.5, "note": "the training table has one class only"}
    X, cat = _features(train, schema, target)
    Xt, _ = _features(test, schema, target)
    from threadpoolctl import threadpool_limits

    # early stopping (sklearn's default past 10,000 rows) holds out a stratified split, which needs 2 rows of each
    # class: a class the training table holds once (a label's missing class, an '(other)' category) is a
    # class like any other, so the model then trains on every row instead of stopping with an error
    counts = np.bincount(y)
    clf = HistGradientBoostingClassifier(categorical_features=cat or None, random_state=seed,
                                         early_stopping="auto" if counts[counts > 0].min() >= 2 else False)
    with threadpool_limits(1):  # oversubscribed OpenMP threads are 10-30x slower on a loaded machine
        clf.fit(X, y)
        proba = clf.predict_proba(Xt)
    full = np.zeros((len(Xt), n_classes))
    full[:, clf.classes_] = proba
    pred = clf.classes_[proba.argmax(1)]
    in_schema = yt != n_classes - 1
    auc = auc_of_present_classes(yt[in_schema], full[in_schema])
    out: dict[str, Any] = {"accuracy": float(accuracy_score(yt, pred)),
                           "f1": float(f1_score(yt, pred, average="macro")), "auc": auc}
    notes = [] if in_schema.all() else [f"{int((~in_schema).sum())} test rows have a label outside the schema: "
                                        "counted in accuracy and F1, not in the AUC"]
    if auc is None:
        notes.append("the real test rows hold one class of the schema only: AUC is undefined")
    if notes:
        out["note"] = "; ".join(notes)
    return out


def _min_distances(a: np.ndarray, b: np.ndarray, metric: Any) -> np.ndarray:
    """Distance from each row of ``a`` to its nearest row of ``b`` (the fastest exact voting kernel)."""
    nn = get_voter("auto")(a, b, metric, k=1)[:, 0]
    return np.array([mixed_distances(a[i:i + 1], b[j:j + 1], metric)[0, 0] for i, j in enumerate(nn)],
                    dtype=np.int64)


def dcr(train: pd.DataFrame, holdout: pd.DataFrame, synth: pd.DataFrame, schema: Schema, n: int = 2000,
        seed: int = 0) -> dict[str, Any]:
    """Distance to closest training record: synthetic vs a real holdout (same encoder as the votes)."""
    rng = np.random.default_rng(seed)
    enc = TableEncoder(schema)
    tr = enc.encode(train)
    s = enc.encode(synth.iloc[rng.choice(len(synth), min(n, len(synth)), replace=False)])
    h = enc.encode(holdout.iloc[rng.choice(len(holdout), min(n, len(holdout)), replace=False)])
    ds, dh = _min_distances(s, tr, enc.metric), _min_distances(h, tr, enc.metric)
    edges = np.histogram_bin_edges(np.concatenate([ds, dh]), bins=30)  # shared, so the two histograms compare
    return {"synth_median": float(np.median(ds)), "holdout_median": float(np.median(dh)),
            "synth_exact_copies": float(np.mean(ds == 0)), "holdout_exact_copies": float(np.mean(dh == 0)),
            "share_synth_closer_than_holdout_median": float(np.mean(ds < np.median(dh))),
            "synth_hist": np.histogram(ds, bins=edges)[0].tolist(),
            "holdout_hist": np.histogram(dh, bins=edges)[0].tolist(),
            "hist_edges": edges.tolist()}


def evaluate(real: pd.DataFrame, synth: pd.DataFrame, schema: Schema, test: pd.DataFrame | None = None,
             target: str | None = None, ways: tuple[int, ...] = (1, 2, 3), with_dcr: bool = True,
             progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """The full evaluation (the dict every report and benchmark uses), on every row of each table.

    ``n_real`` is the real table's row count; ``real_fit`` / ``synth_fit`` count the rows (and per column the
    values) outside the schema, which sit in their columns' ``(outside schema)`` cells; ``missing_share`` gives
    each column's missing share in both tables where either has any.
    """
    rs, ss = score(real, schema), score(synth, schema)
    mr, ms = rs.missing_shares(), ss.missing_shares()
    out: dict[str, Any] = {"scope": SCOPE, "n_real": rs.n_rows, "n_synth": ss.n_rows,
                           "real_fit": rs.fit(), "synth_fit": ss.fit(),
                           "missing_share": {n: {"real": mr[n], "synth": ms[n]} for n in schema.names
                                             if mr[n] or ms[n]}}
    out.update(marginal_tvd(rs, ss, schema, ways, progress))
    real, synth = as_internal(real, schema), as_internal(synth, schema)
    test = as_internal(test, schema) if test is not None else None
    if test is not None and target:
        out["tstr"] = tstr(synth, test, schema, target)
        out["trtr"] = tstr(real, test, schema, target)
    if with_dcr and test is not None:
        out["dcr"] = dcr(real, test, synth, schema)
    return out


__all__ = ["EVAL_BINS", "SCOPE", "as_internal", "auc_of_present_classes", "binned", "dcr", "evaluate",
           "marginal_tvd", "tstr"]
