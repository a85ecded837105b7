"""Fidelity, utility and privacy-risk metrics for synthetic tables, on PUBLIC bins only.

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
from pe_tabular.tables.marginals import Binning
from pe_tabular.tables.schema import Schema
from pe_tabular.voting.reference import mixed_distances
from pe_tabular.voting.registry import get_voter

EVAL_BINS = 32


def binned(df: pd.DataFrame, schema: Schema) -> tuple[np.ndarray, np.ndarray]:
    """(n, c) public bin codes and the number of bins per column."""
    bins = [Binning.of(c, EVAL_BINS, EVAL_BINS) for c in schema.columns]
    codes = np.stack([b.index(df[c.name]) for b, c in zip(bins, schema.columns)], axis=1)
    return codes, np.array([b.n_bins for b in bins], dtype=np.int64)


def marginal_tvd(real: pd.DataFrame, synth: pd.DataFrame, schema: Schema, ways: tuple[int, ...] = (1, 2, 3),
                 progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Mean / max TVD over all k-way marginals, plus the worst marginals."""
    r, sizes = binned(real, schema)
    s, _ = binned(synth, schema)
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
        if c.is_categorical:
            lut = {str(v): i for i, v in enumerate(c.categories)}
            X.append(df[c.name].astype(str).map(lut).astype(float).to_numpy())
            cat.append(j)
        elif c.type == "datetime":
            X.append(epoch_seconds(pd.to_datetime(df[c.name])).to_numpy(float))
        else:
            X.append(pd.to_numeric(df[c.name], errors="coerce").to_numpy(float))
    return np.stack(X, axis=1), cat


def tstr(train: pd.DataFrame, test: pd.DataFrame, schema: Schema, target: str, seed: int = 0) -> dict[str, Any]:
    """Train HistGradientBoosting on ``train``, test on ``test``: accuracy, macro-F1, AUC."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    classes = [str(v) for v in schema[target].categories]
    lut = {v: i for i, v in enumerate(classes)}
    y = train[target].astype(str).map(lut).to_numpy()
    yt = test[target].astype(str).map(lut).to_numpy()
    ok = ~pd.isna(y)
    if len(np.unique(y[ok])) < 2:
        return {"accuracy": None, "f1": None, "auc": 0.5, "note": "synthetic data has one class only"}
    X, cat = _features(train, schema, target)
    Xt, _ = _features(test, schema, target)
    from threadpoolctl import threadpool_limits

    clf = HistGradientBoostingClassifier(categorical_features=cat or None, random_state=seed)
    with threadpool_limits(1):  # oversubscribed OpenMP threads are 10-30x slower on a loaded machine
        clf.fit(X[ok], y[ok].astype(int))
        proba = clf.predict_proba(Xt)
    pred = clf.classes_[proba.argmax(1)]
    if len(classes) == 2:
        auc = roc_auc_score(yt, proba[:, list(clf.classes_).index(1)]) if 1 in clf.classes_ else 0.5
    else:
        full = np.zeros((len(Xt), len(classes)))
        full[:, clf.classes_] = proba
        auc = roc_auc_score(yt, full, multi_class="ovr", labels=list(range(len(classes))))
    return {"accuracy": float(accuracy_score(yt, pred)), "f1": float(f1_score(yt, pred, average="macro")),
            "auc": float(auc)}


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
    """The full evaluation (the dict every report and benchmark uses)."""
    out: dict[str, Any] = {"n_real": len(real), "n_synth": len(synth)}
    out.update(marginal_tvd(real, synth, schema, ways, progress))
    if test is not None and target:
        out["tstr"] = tstr(synth, test, schema, target)
        out["trtr"] = tstr(real, test, schema, target)
    if with_dcr and test is not None:
        out["dcr"] = dcr(real, test, synth, schema)
    return out
