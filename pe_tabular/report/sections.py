"""The two report sections every PE run has, whatever the domain: the privacy ledger and the evolution.

Why here and not in a wing: both read only what the engine itself records — the accountant's ledger
(``pe_tabular.privacy``) and the per-iteration history of ``pe_tabular.evolution`` — so the tables,
traces and digits reports show them identically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pe_tabular.report.page import REAL_COLOR, Section, html_section, new_figure, table_html

MAX_RELEASES_SHOWN = 60  # ledger rows before the middle is elided (the JSON ledger has them all)


def privacy_section(ledger: Mapping[str, Any]) -> Section:
    """The accountant's guarantee, every release (σ, Δ, share of μ²) and the public inputs used."""
    mu = ledger.get("mu")
    summary = {"epsilon (whole run)": ledger.get("epsilon"), "delta": ledger.get("delta"), "mu (GDP)": mu,
               "mu budget": ledger.get("mu_budget"),
               "releases": ledger.get("n_releases", len(ledger.get("releases", []))),
               "noise": ledger.get("noise"), "accounting": ledger.get("accounting")}
    timing = ledger.get("timing") or ({"wall_seconds": ledger["wall_seconds"]} if "wall_seconds" in ledger else None)
    if timing:
        summary["wall seconds (not covered by the guarantee)"] = timing.get("wall_seconds")
    rel = list(ledger.get("releases", []))
    mu2 = float(mu) ** 2 if isinstance(mu, (int, float)) and mu and math.isfinite(mu) else None
    rows = []
    for i, r in enumerate(rel):
        sig, sens = float(r.get("sigma", 0.0)), float(r.get("sensitivity", 1.0))
        rho = (sens / sig) ** 2 if sig > 0 else math.inf
        rows.append([i + 1, r.get("iteration"), r.get("what", ""), r.get("size"), sig, sens,
                     (rho / mu2) if mu2 else None, r.get("extra_delta", 0.0)])
    if len(rows) > MAX_RELEASES_SHOWN:
        keep = MAX_RELEASES_SHOWN // 2
        rows = rows[:keep] + [["…", "", f"{len(rows) - 2 * keep} more releases (all are in the JSON ledger)",
                                "", None, None, None, None]] + rows[-keep:]
    header = ["#", "iteration", "release", "size", "sigma", "sensitivity", "share of mu^2", "extra delta"]
    pub = {k: ("not used" if v is None else v) for k, v in (ledger.get("public_inputs") or {}).items()}
    tables: list[Any] = [table_html(summary, caption="Guarantee"),
                         table_html(pub or {"(none recorded)": ""},
                                    caption="Public inputs (read without privacy cost)"),
                         table_html((header, rows), caption="Every Gaussian release on private data")]
    text = ("The run is (epsilon, delta)-DP for the whole pipeline: the Gaussian releases below compose to mu-GDP with "
            "mu = sqrt(sum (sensitivity/sigma)^2). Every output of the run is computed from these releases and the "
            "public inputs only; the exceptions are run time (labelled in the sidecars: not covered by the guarantee) "
            "and input validation, whose errors name columns and problems, never values, rows or counts.")
    return html_section("Privacy ledger", tables=tables, text=text)


def evolution_section(history: Sequence[Mapping[str, Any]]) -> Section | None:
    """Per-iteration curves: vote concentration, share above threshold, ESS, noise, ε spent, source shares."""
    hist = [h for h in history if "iteration" in h]
    if not hist:
        return None
    it = np.array([h["iteration"] for h in hist], dtype=float)

    def col(key: str) -> np.ndarray:
        return np.array([float(h.get(key, np.nan)) for h in hist])

    fig = new_figure(15, 6.4)
    axes = fig.subplots(2, 3).ravel()
    panels = [("top10_share", "vote share of the top 10% candidates", "concentration"),
              ("above_threshold", "share of candidates with noisy votes > threshold", "share"),
              ("ess", "effective sample size of the noisy weights", "candidates"),
              ("sigma", "noise sigma per vote", "sigma"),
              ("epsilon_so_far", "epsilon spent after the iteration", "epsilon")]
    for ax, (key, title, ylab) in zip(axes, panels):
        y = col(key)
        ax.plot(it, y, "o-", color=REAL_COLOR, label=key)
        if key == "ess" and any("population" in h for h in hist):
            ax.plot(it, col("population"), "s--", color="#999", label="population")
            ax.legend(fontsize=8)
        fb = np.array([bool(h.get("fallback")) for h in hist])
        if fb.any():
            ax.plot(it[fb], y[fb], "x", color="red", ms=10, label="fallback (all votes below threshold)")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylab)
        if key in ("top10_share", "above_threshold"):
            ax.set_ylim(0, 1.02)
    ax = axes[5]
    sources = sorted({s for h in hist for s in (h.get("source_share") or {})})
    if sources:
        shares = np.array([[float((h.get("source_share") or {}).get(s, 0.0)) for h in hist] for s in sources])
        ax.stackplot(it, shares, labels=sources, alpha=0.85)
        ax.set_ylim(0, 1.0)
        ax.legend(fontsize=8, loc="lower left")
    ax.set_title("noisy vote share per generator (mixtures)", fontsize=10)
    ax.set_xlabel("iteration")
    for a in axes:
        a.set_xticks(it)
        a.grid(alpha=0.3)
    keys = ["iteration", "population", "sigma", "top10_share", "above_threshold", "ess", "epsilon_so_far", "fallback"]
    table = (keys + ["source shares"], [[h.get(k) for k in keys] + [", ".join(
        f"{s} {v:.2f}" for s, v in (h.get("source_share") or {}).items())] for h in hist])
    text = ("How the votes evolved. A top-10% share near 1 means the votes concentrate on few candidates (little "
            "diversity); many candidates below the threshold or a small ESS mean the noise dominates the signal "
            "(fewer, larger populations or more epsilon help).")
    return html_section("Evolution", [fig], [table], text=text)


__all__ = ["MAX_RELEASES_SHOWN", "evolution_section", "privacy_section"]
