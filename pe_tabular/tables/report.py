"""The HTML report of a synthetic TABLE: per-column distributions, Cramér's V association maps,
k-way TVD, TSTR, distance to closest record, then the ledger and evolution sections.

The page toolkit and the ledger / evolution sections are the engine's (:mod:`pe_tabular.report`, which
explains the two layers); this module adds only what needs a :class:`~pe_tabular.tables.schema.Schema`.

Everything is computed on the schema's PUBLIC bins (``pe_tabular.tables.evaluation.binned``), the
same bins the TVD is measured on, so a plot and the number beside it always agree. Every real row is
shown: a value outside the schema sits in its column's ``(outside schema)`` cell, a missing one in
``(missing)`` (``pe_tabular.tables.scoring``).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.report import (
    HOLDOUT_COLOR,
    REAL_COLOR,
    SYNTH_COLOR,
    Section,
    evolution_section,
    html_section,
    new_figure,
    privacy_section,
    table_html,
    write_html,
)
from pe_tabular.tables.encoder import Q
from pe_tabular.tables.schema import Schema

MAX_CATEGORIES_SHOWN = 12  # per distribution panel; the rest are pooled into "other"


def _short(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


def _labels_for(c: Any, n_cells: int) -> tuple[list[str], bool]:
    """Labels of a column's public evaluation cells (the TVD's bins, then missing and outside the schema) and
    whether each bin is one value."""
    from pe_tabular.tables.scoring import MISSING, OUTSIDE, eval_binning
    from pe_tabular.tables.values import from_unit

    tail = [MISSING, OUTSIDE]
    if c.is_categorical:
        return [str(v) for v in c.categories] + tail, True
    b = eval_binning(c)
    if b.per_value:
        vals = c.lower + np.arange(n_cells - 2) * c.rounding
    else:  # left edges of the grid bins
        vals = from_unit(c, np.arange(n_cells - 2) / b.numeric_bins)
    if c.type == "datetime":
        return [pd.Timestamp(v, unit="s").strftime("%Y-%m-%d") for v in vals] + tail, b.per_value
    return [_short(float(v)) for v in vals] + tail, b.per_value


def _tail_note(pr: np.ndarray, ps: np.ndarray) -> str:
    """The missing and outside-schema shares of a panel (its last two cells), where either table has any."""
    notes = [f"{name}: real {pr[i]:.1%}, synthetic {ps[i]:.1%}"
             for name, i in (("missing", -2), ("outside schema", -1)) if pr[i] + ps[i] > 0]
    return "".join(f"\n{n}" for n in notes)


def _shares(codes: np.ndarray, n: int) -> np.ndarray:
    h = np.bincount(codes, minlength=n).astype(float)
    return h / max(h.sum(), 1.0)


def distributions_figure(real_codes: np.ndarray, synth_codes: np.ndarray, sizes: np.ndarray, schema: Schema,
                         ncols: int = 4) -> tuple[Any, list[float]]:
    """Real vs synthetic per column on public bins; returns the figure and each column's 1-way TVD."""
    n = len(schema.columns)
    nrows = math.ceil(n / ncols)
    fig = new_figure(4.2 * ncols, 2.9 * nrows, constrained=False)  # fixed spacing: constrained layout is slow here
    axes = np.atleast_1d(fig.subplots(nrows, ncols, gridspec_kw={
        "left": 0.075, "right": 0.99, "top": 1 - 0.45 / (2.9 * nrows), "bottom": 0.5 / (2.9 * nrows),
        "wspace": 0.62, "hspace": 0.62})).ravel()
    tvds = []
    for j, (ax, c) in enumerate(zip(axes, schema.columns)):
        k = int(sizes[j])
        pr, ps = _shares(real_codes[:, j], k), _shares(synth_codes[:, j], k)
        tvd = 0.5 * float(np.abs(pr - ps).sum())
        tvds.append(tvd)
        labels, per_value = _labels_for(c, k)
        missing = _tail_note(pr, ps)
        if c.is_categorical:
            order = np.argsort(-(pr[:-2] + 1e-9 * ps[:-2]), kind="stable")
            shown = order[:MAX_CATEGORIES_SHOWN]
            rest = order[MAX_CATEGORIES_SHOWN:]
            r_vals, s_vals = list(pr[shown]), list(ps[shown])
            names = [labels[i] for i in shown]
            if rest.size:
                r_vals.append(pr[rest].sum())
                s_vals.append(ps[rest].sum())
                names.append(f"other ({rest.size})")
            x = np.arange(len(names))
            ax.barh(x - 0.2, r_vals, height=0.4, color=REAL_COLOR, label="real")
            ax.barh(x + 0.2, s_vals, height=0.4, color=SYNTH_COLOR, label="synthetic")
            ax.set_yticks(x, [nm[:18] for nm in names], fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel("share", fontsize=8)
        else:
            edges = np.arange(k - 1)  # the last two cells (missing, outside) are shown in the title instead
            ax.stairs(pr[:-2], edges, color=REAL_COLOR, fill=True, alpha=0.45, label="real")
            ax.stairs(ps[:-2], edges, color=SYNTH_COLOR, linewidth=1.6, label="synthetic")
            ticks = np.unique(np.linspace(0, k - 3, 5).round().astype(int))
            ax.set_xticks(ticks + (0.5 if per_value else 0.0), [labels[t] for t in ticks], fontsize=7)
            ax.set_ylabel("share", fontsize=8)
            if c.scale == "log":
                ax.set_xlabel("log-scale public bins", fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(f"{c.name}  (TVD {tvd:.3f}){missing}", fontsize=9)
        if j == 0:
            ax.legend(fontsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, tvds


def cramers_v_matrix(codes: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Bias-corrected Cramér's V of every column pair on public bins (Bergsma 2013); empty bins are ignored.

    Why corrected: with tens of bins per column the plain V of two *independent* columns is about
    sqrt((bins - 1) / n), which would paint small synthetic samples as strongly associated.
    """
    m = codes.shape[1]
    n = len(codes)
    if n < 2:
        return np.full((m, m), np.nan)
    out = np.eye(m)
    for a, b in itertools.combinations(range(m), 2):
        ka, kb = int(sizes[a]), int(sizes[b])
        tab = np.bincount(codes[:, a] * kb + codes[:, b], minlength=ka * kb).reshape(ka, kb).astype(float)
        tab = tab[tab.sum(1) > 0][:, tab.sum(0) > 0]
        r, c = tab.shape
        v = 0.0
        if min(r, c) >= 2:
            exp = np.outer(tab.sum(1), tab.sum(0)) / n
            phi2 = float(((tab - exp) ** 2 / exp).sum()) / n
            phi2c = max(phi2 - (r - 1) * (c - 1) / (n - 1), 0.0)
            rc, cc = r - (r - 1) ** 2 / (n - 1), c - (c - 1) ** 2 / (n - 1)
            denom = min(rc, cc) - 1
            v = math.sqrt(min(phi2c / denom, 1.0)) if denom > 0 else 0.0
        out[a, b] = out[b, a] = v
    return out


def associations_figure(v_real: np.ndarray, v_synth: np.ndarray, names: Sequence[str]) -> Any:
    fig = new_figure(17, 5.8)
    axes = fig.subplots(1, 3)
    diff = v_synth - v_real
    lim = max(float(np.nanmax(np.abs(diff))), 0.05)
    for ax, mat, title, cmap, vmin, vmax in (
            (axes[0], v_real, "real: Cramér's V", "viridis", 0, 1),
            (axes[1], v_synth, "synthetic: Cramér's V", "viridis", 0, 1),
            (axes[2], diff, "synthetic − real", "RdBu_r", -lim, lim)):
        im = ax.imshow(mat, cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def dcr_figure(d: Mapping[str, Any]) -> Any:
    edges = np.asarray(d["hist_edges"], dtype=float) / Q
    fig = new_figure(7.5, 3.4)
    ax = fig.subplots()
    for key, color, label in (("holdout_hist", HOLDOUT_COLOR, "real holdout → train"),
                              ("synth_hist", SYNTH_COLOR, "synthetic → train")):
        h = np.asarray(d[key], dtype=float)
        if h.size == edges.size - 1:
            ax.stairs(h / max(h.sum(), 1.0), edges, color=color, linewidth=1.8, label=label,
                      fill=key == "holdout_hist", alpha=0.5 if key == "holdout_hist" else 1.0)
    ax.axvline(d["holdout_median"] / Q, color=HOLDOUT_COLOR, ls=":", label="holdout median")
    ax.axvline(d["synth_median"] / Q, color=SYNTH_COLOR, ls=":", label="synthetic median")
    ax.set_xlabel("distance to the closest training record (columns that differ)")
    ax.set_ylabel("share")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _cards(schema: Schema, ledger: Mapping[str, Any] | None, ev: Mapping[str, Any]) -> list[tuple[str, str]]:
    cards = [("real rows (every one scored)", f"{ev['n_real']:,}"), ("synthetic rows", f"{ev['n_synth']:,}"),
             ("columns", str(len(schema.columns)))]
    fit = ev.get("real_fit", {})
    if fit.get("rows_outside_schema"):
        cards.append(("real rows with a value outside the schema",
                      f"{fit['rows_outside_schema']:,} ({fit['rows_outside_schema'] / max(ev['n_real'], 1):.1%})"))
    if ledger:
        eps = ledger.get("epsilon")
        cards.append(("(epsilon, delta) for the whole run",
                      f"({eps if isinstance(eps, str) else f'{eps:.3g}'}, {ledger.get('delta', float('nan')):.0e})"))
    for k in (1, 2, 3):
        if f"tvd{k}_mean" in ev:
            cards.append((f"{k}-way TVD, mean", f"{ev[f'tvd{k}_mean']:.3f}"))
    if "tstr" in ev and ev["tstr"].get("auc") is not None and ev["trtr"].get("auc") is not None:
        cards.append(("AUC: synthetic-trained / real-trained", f"{ev['tstr']['auc']:.3f} / {ev['trtr']['auc']:.3f}"))
    if "dcr" in ev:
        cards.append(("DCR median, in columns that differ: synthetic / holdout",
                      f"{ev['dcr']['synth_median'] / Q:.2f} / {ev['dcr']['holdout_median'] / Q:.2f}"))
    return cards


def fit_table(ev: Mapping[str, Any], names: Sequence[str]) -> tuple[list[str], list[list[Any]]]:
    """Per column: real and synthetic values outside the schema, and missing shares (where there are any)."""
    ro, so = ev.get("real_fit", {}).get("outside_schema", {}), ev.get("synth_fit", {}).get("outside_schema", {})
    miss = ev.get("missing_share", {})
    rows = [[n, ro.get(n, 0), so.get(n, 0), miss.get(n, {}).get("real", 0.0), miss.get(n, {}).get("synth", 0.0)]
            for n in names if n in ro or n in so or n in miss]
    return ["column", "real values outside the schema", "synthetic values outside the schema",
            "missing share, real", "missing share, synthetic"], rows


def table_sections(real: pd.DataFrame, synth: pd.DataFrame, schema: Schema, ev: Mapping[str, Any]) -> list[Section]:
    """Distributions, associations, fidelity, utility and DCR sections for a synthetic table."""
    from pe_tabular.tables.evaluation import binned

    rc, sizes = binned(real, schema)
    sc, _ = binned(synth, schema)
    fit = ev.get("real_fit", {})
    out = []
    fig, tvds = distributions_figure(rc, sc, sizes, schema)
    per_col = sorted(zip(schema.names, tvds), key=lambda t: -t[1])
    out.append(html_section(
        "Column distributions", [fig],
        text="Real (filled) vs synthetic (line / orange bars) shares on the schema's public bins — the bins the TVD "
             "is measured on. Categorical panels show the most frequent real categories; the rest are pooled."))
    vr, vs = cramers_v_matrix(rc, sizes), cramers_v_matrix(sc, sizes)
    off = ~np.eye(len(sizes), dtype=bool)
    gap = float(np.nanmean(np.abs(vs - vr)[off])) if off.any() else 0.0
    out.append(html_section(
        "Pairwise associations", [associations_figure(vr, vs, schema.names)],
        text=f"Bias-corrected Cramér's V (Bergsma 2013) of every column pair on public bins (0 = independent, "
             f"1 = one determines the other). Mean absolute "
             f"difference synthetic vs real: {gap:.3f}."))
    tvd_rows = [[f"{k}-way", ev[f"tvd{k}_mean"], ev[f"tvd{k}_max"]] for k in (1, 2, 3) if f"tvd{k}_mean" in ev]
    worst = [[" × ".join(w["columns"]), len(w["columns"]), w["tvd"]] for w in ev.get("worst_marginals", [])]
    head, fit_rows = fit_table(ev, schema.names)
    fit_tables = [table_html((head, fit_rows), caption="Values outside the schema and missing values")] \
        if fit_rows else []
    out.append(html_section(
        "Marginal fidelity (TVD)",
        tables=[table_html((["marginals", "mean TVD", "max TVD"], tvd_rows), caption="Total variation distance"),
                table_html((["columns", "k", "TVD"], worst), caption="Worst 1- and 2-way marginals"),
                table_html((["column", "1-way TVD"], per_col), caption="Per column"), *fit_tables],
        text="TVD = half the L1 distance between the real and synthetic distributions of a set of columns on public "
             "bins (0 = identical, 1 = disjoint), averaged / maximised over all column subsets of each size. "
             f"Every one of the {ev['n_real']:,} real rows is scored "
             f"({fit.get('rows_outside_schema', 0):,} of them hold a value outside the schema): such a value "
             "counts in its column's '(outside schema)' cell and a missing value in '(missing)', never dropped."))
    if "tstr" in ev:
        t, r = ev["tstr"], ev["trtr"]
        rows = [["train on synthetic, test on real (TSTR)", t.get("accuracy"), t.get("f1"), t.get("auc")],
                ["train on real, test on real (ceiling)", r.get("accuracy"), r.get("f1"), r.get("auc")]]
        if r.get("auc") and t.get("auc") is not None:
            rows.append(["ratio synthetic / real", *[(t[k] / r[k]) if t.get(k) is not None and r.get(k) else None
                                                     for k in ("accuracy", "f1", "auc")]])
        note = f" Note: {t['note']}." if t.get("note") else ""
        out.append(html_section(
            "Machine-learning utility", tables=[(["model", "accuracy", "macro-F1", "AUC"], rows)],
            text="HistGradientBoosting trained on each table and scored on the real test split; the train-on-real "
                 "row is the ceiling the synthetic data is measured against." + note))
    if "dcr" in ev:
        d = ev["dcr"]
        stats = {"median DCR (columns that differ), synthetic": d["synth_median"] / Q,
                 "median DCR (columns that differ), real holdout": d["holdout_median"] / Q,
                 "share identical to a training row, synthetic": d.get("synth_exact_copies"),
                 "share identical to a training row, real holdout": d.get("holdout_exact_copies"),
                 "synthetic rows closer than the holdout median": d.get("share_synth_closer_than_holdout_median")}
        out.append(html_section(
            "Distance to closest record", [dcr_figure(d)], [stats],
            text="For each synthetic row (and each row of a real holdout that was never used), the distance to the "
                 "closest training row, in columns that differ: a category that differs counts 1, a number counts "
                 "the share of its public range it is away (the distance the votes use). Synthetic data that copies "
                 "training rows sits left of the holdout curve. A row identical to a training row is expected when "
                 "the table has few columns with few values each — then real rows repeat too, and the holdout's "
                 "share is the yardstick: a synthetic share near the holdout's is what independent draws from the "
                 "same distribution give. DP bounds what any output row can reveal regardless; this is a sanity "
                 "check, not the privacy guarantee."))
    return out


def report_ways(schema: Schema) -> tuple[int, ...]:
    """Marginal sizes the report evaluates (1, 2, 3-way; fewer on narrow tables)."""
    return tuple(k for k in (1, 2, 3) if k <= len(schema.columns))


def write_report(real: pd.DataFrame, synth: pd.DataFrame, schema: Schema, path: str | os.PathLike, *,
                 ledger: Mapping[str, Any] | None = None, history: Sequence[Mapping[str, Any]] | None = None,
                 evaluation: Mapping[str, Any] | None = None, test: pd.DataFrame | None = None,
                 target: str | None = None, extra_sections: Sequence[Section] = (),
                 title: str = "Synthetic data report", progress: Callable[[int], None] | None = None) -> Path:
    """Write the HTML report of a synthetic table; computes ``evaluate(...)`` when ``evaluation`` is None.

    ``progress`` is called with 1 per marginal evaluated (for a progress bar; see ``report_ways``).
    ``real`` is the private training table, every row of it (raw values: one outside the schema is shown as
    such): the report is as sensitive as the real data (it plots its exact distributions) and must be kept
    with it, not published with the synthetic data.
    """
    if evaluation is None:
        from pe_tabular.tables.evaluation import evaluate

        target = target or schema.label
        evaluation = evaluate(real, synth, schema, test, target if test is not None else None,
                              ways=report_ways(schema), with_dcr=test is not None, progress=progress)
    sections = table_sections(real, synth, schema, evaluation)
    if ledger:
        sections.append(privacy_section(ledger))
    if history:
        evo = evolution_section(history)
        if evo is not None:
            sections.append(evo)
    sections.extend(extra_sections)
    subtitle = ("Contains the exact distributions of the REAL data: keep this file with the private data. "
                "Only the synthetic table and its privacy ledger are DP releases.")
    return write_html(path, title, sections, subtitle=subtitle,
                      cards=_cards(schema, ledger, evaluation))


__all__ = ["MAX_CATEGORIES_SHOWN", "associations_figure", "cramers_v_matrix", "dcr_figure",
           "distributions_figure", "fit_table", "report_ways", "table_sections", "write_report"]
