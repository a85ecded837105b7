"""One self-contained HTML report per synthetic data set: people judge synthetic data by looking at it.

The file needs nothing at view time — no network, no JavaScript: every figure is a matplotlib PNG
embedded as a base64 ``data:`` URI (or inline SVG), every style rule is inline. It can be mailed,
archived next to the data, or opened on an air-gapped machine.

Two layers:

* a small, domain-free page API — :func:`figure_html`, :func:`table_html`, :func:`html_section`,
  :func:`render_html`, :func:`write_html` — plus two domain-free sections every PE run has,
  :func:`privacy_section` (the ledger) and :func:`evolution_section` (the per-iteration curves).
  The traces and digits reports build their own sections with these (CDFs, port bars, sample grids)
  and either call :func:`write_html` or pass them to :func:`write_report` as ``extra_sections``;
* :func:`write_report` for tables: per-column distributions, Cramér's V association maps, k-way TVD,
  TSTR, distance to closest record, ledger and evolution.

Everything is computed on the schema's PUBLIC bins (``pe_tabular.tables.evaluation.binned``), the
same bins the TVD is measured on, so a plot and the number beside it always agree.
Figures are drawn on ``matplotlib.figure.Figure`` objects directly (no pyplot), so building a report
touches no global state and works in threads and on headless machines.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import itertools
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.io_utils import atomic_write_text
from pe_tabular.tables.schema import Schema

REAL_COLOR, SYNTH_COLOR, HOLDOUT_COLOR = "#4c72b0", "#dd8452", "#55a868"
MAX_CATEGORIES_SHOWN = 12  # per distribution panel; the rest are pooled into "other"
MAX_RELEASES_SHOWN = 60  # ledger rows before the middle is elided (the JSON ledger has them all)
DPI = 80

FigureLike = Any  # matplotlib Figure | PNG bytes | image ndarray | SVG markup str | path to .png/.svg
TableLike = Any  # pandas DataFrame | sequence of mappings | (header, rows) | mapping (two-column table)


# ------------------------------------------------------------------------------------------------
# page API (domain-free)


@dataclass(frozen=True)
class Section:
    """One titled block of the page; ``body`` is trusted HTML built by the helpers below."""

    title: str
    body: str
    anchor: str


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_bytes(fig: Any, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")  # no bbox_inches="tight": it draws twice
    return buf.getvalue()


def _array_png(img: np.ndarray) -> bytes:
    from matplotlib.image import imsave

    a = np.asarray(img)
    if a.ndim not in (2, 3) or a.size == 0:
        raise ValueError(f"an image figure must be a non-empty 2-d (grey) or 3-d (RGB[A]) array, got shape {a.shape}")
    buf = io.BytesIO()
    if a.ndim == 2:
        lo, hi = (0, 255) if a.dtype == np.uint8 else (float(np.nanmin(a)), float(np.nanmax(a)) or 1.0)
        imsave(buf, a, cmap="gray", vmin=lo, vmax=hi, format="png")
    else:
        imsave(buf, a, format="png")
    return buf.getvalue()


def figure_html(fig: FigureLike, *, alt: str = "", caption: str = "", dpi: int = DPI) -> str:
    """A ``<figure>`` embedding one plot.

    ``fig`` may be a matplotlib Figure (rendered to PNG), PNG bytes, an image array (grey or RGB),
    SVG markup, or a path to a .png/.svg file (e.g. a sample grid another module saved).
    """
    alt_attr = html.escape(alt or caption or "figure", quote=True)
    if isinstance(fig, (str, os.PathLike)) and not str(fig).lstrip().startswith("<"):
        p = Path(fig)
        if not p.is_file():
            raise FileNotFoundError(f"figure file {p} does not exist")
        fig = p.read_bytes() if p.suffix.lower() == ".png" else p.read_text(encoding="utf-8")
    if isinstance(fig, str):
        svg = fig.strip()
        if "<svg" not in svg[:400]:
            raise ValueError("a string figure must be SVG markup starting with <svg (or an XML prolog)")
        inner = f'<div class="svg" role="img" aria-label="{alt_attr}">{svg}</div>'
    else:
        if isinstance(fig, (bytes, bytearray)):
            data = bytes(fig)
            if not data.startswith(b"\x89PNG\r\n\x1a\n"):
                raise ValueError("figure bytes must be a PNG file")
        elif isinstance(fig, np.ndarray):
            data = _array_png(fig)
        elif hasattr(fig, "savefig"):
            data = _figure_bytes(fig, dpi)
        else:
            raise TypeError(f"cannot embed a {type(fig).__name__} as a figure")
        inner = f'<img alt="{alt_attr}" src="{_png_uri(data)}">'
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f"<figure>{inner}{cap}</figure>"


def _fmt(v: Any, floatfmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return floatfmt.format(float(v)) if math.isfinite(v) else str(float(v))
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x, floatfmt) for x in v)
    return str(v)


def _rows_of(table: TableLike) -> tuple[list[str], list[list[Any]]]:
    if isinstance(table, pd.DataFrame):
        return [str(c) for c in table.columns], table.astype(object).values.tolist()
    if isinstance(table, Mapping):
        return ["", ""], [[k, v] for k, v in table.items()]
    if isinstance(table, tuple) and len(table) == 2 and not isinstance(table[0], Mapping):
        header, rows = table
        return [str(h) for h in header], [list(r) for r in rows]
    rows = list(table)
    if rows and isinstance(rows[0], Mapping):
        header = list(dict.fromkeys(k for r in rows for k in r))
        return [str(h) for h in header], [[r.get(h) for h in header] for r in rows]
    raise TypeError("a table must be a DataFrame, a mapping, (header, rows) or a list of mappings")


def table_html(table: TableLike, *, caption: str = "", floatfmt: str = "{:.4g}") -> str:
    """An HTML table; every cell is escaped, numbers are right-aligned and formatted with ``floatfmt``."""
    header, rows = _rows_of(table)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    head = "" if not any(header) else "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + \
        "</tr></thead>"
    body = []
    for r in rows:
        cells = []
        for v in r:
            num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
            cells.append(f'<td{" class=num" if num else ""}>{html.escape(_fmt(v, floatfmt))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>{cap}{head}<tbody>{''.join(body)}</tbody></table>"


def html_section(title: str, figures: Iterable[FigureLike] = (), tables: Iterable[TableLike] = (), *,
                 text: str = "", captions: Sequence[str] = (), anchor: str | None = None) -> Section:
    """A report section: an optional paragraph (plain text, escaped), tables, then figures.

    ``figures`` items may be anything :func:`figure_html` accepts, or an already rendered
    ``<figure>`` string; ``tables`` items anything :func:`table_html` accepts, or a rendered
    ``<table>`` string. This is the hook other domains use to add their plots to a report.
    """
    parts = [f"<p>{html.escape(text)}</p>"] if text else []
    for t in tables:
        parts.append(t if isinstance(t, str) and t.lstrip().startswith("<table") else table_html(t))
    caps = list(captions)
    for i, f in enumerate(figures):
        if isinstance(f, str) and f.lstrip().startswith("<figure"):
            parts.append(f)
        else:
            parts.append(figure_html(f, caption=caps[i] if i < len(caps) else ""))
    return Section(title, "\n".join(parts), anchor or _anchor(title))


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d232a;
background:#f6f7f9}
header{background:#1f3b57;color:#fff;padding:18px 32px}header h1{margin:0 0 4px;font-size:24px}
header p{margin:0;opacity:.85}main{max-width:1400px;margin:0 auto;padding:8px 32px 40px}
nav{margin:14px 0;font-size:14px}nav a{margin-right:14px;color:#1f3b57}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;margin:18px 0;padding:4px 20px 14px}
h2{font-size:19px;border-bottom:1px solid #eee;padding-bottom:6px}
table{border-collapse:collapse;margin:10px 18px 10px 0;display:inline-table;vertical-align:top;font-size:14px}
caption{text-align:left;font-weight:600;padding:4px 0}
th,td{border:1px solid #dde1e6;padding:3px 9px;text-align:left}th{background:#eef1f4}td.num{text-align:right;
font-variant-numeric:tabular-nums}
figure{margin:10px 0}figure img{max-width:100%;height:auto;display:block}figcaption{font-size:13px;color:#555}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:14px 0}.card{background:#fff;border:1px solid #dde1e6;
border-radius:6px;padding:10px 16px;min-width:150px}.card b{display:block;font-size:22px}.card span{font-size:13px;
color:#555}footer{color:#777;font-size:12px;padding:0 32px 24px}
"""


def render_html(title: str, sections: Sequence[Section], *, subtitle: str = "",
                cards: Sequence[tuple[str, str]] = ()) -> str:
    """The whole page: header, key-number cards, table of contents, sections. No scripts, no links out."""
    toc = " ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    card_html = "".join(f'<div class="card"><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>'
                        for k, v in cards)
    body = "\n".join(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>\n{s.body}\n</section>'
                     for s in sections)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    version = _version()
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header><main>"
        f"{f'<div class=cards>{card_html}</div>' if cards else ''}<nav>{toc}</nav>\n{body}</main>"
        f"<footer>pe-tabular {html.escape(version)} · {stamp} · self-contained: figures are embedded "
        "PNG, no network access or scripts needed.</footer></body></html>\n"
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pe-tabular")
    except PackageNotFoundError:
        return "(not installed)"


def write_html(path: str | os.PathLike, title: str, sections: Sequence[Section], *, subtitle: str = "",
               cards: Sequence[tuple[str, str]] = ()) -> Path:
    """Render and write atomically (a crash never leaves a half-written report)."""
    return atomic_write_text(path, render_html(title, sections, subtitle=subtitle, cards=cards))


def _fig(width: float, height: float, constrained: bool = True):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained" if constrained else None)


# ------------------------------------------------------------------------------------------------
# sections every PE run has (domain-free)


def privacy_section(ledger: Mapping[str, Any]) -> Section:
    """The accountant's guarantee, every release (σ, Δ, share of μ²) and the public inputs used."""
    mu = ledger.get("mu")
    summary = {"epsilon (whole run)": ledger.get("epsilon"), "delta": ledger.get("delta"), "mu (GDP)": mu,
               "mu budget": ledger.get("mu_budget"),
               "releases": ledger.get("n_releases", len(ledger.get("releases", []))),
               "noise": ledger.get("noise"), "accounting": ledger.get("accounting")}
    if "wall_seconds" in ledger:
        summary["wall seconds"] = ledger["wall_seconds"]
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
            "mu = sqrt(sum (sensitivity/sigma)^2). Nothing else was read from the private data.")
    return html_section("Privacy ledger", tables=tables, text=text)


def evolution_section(history: Sequence[Mapping[str, Any]]) -> Section | None:
    """Per-iteration curves: vote concentration, share above threshold, ESS, noise, ε spent, source shares."""
    hist = [h for h in history if "iteration" in h]
    if not hist:
        return None
    it = np.array([h["iteration"] for h in hist], dtype=float)

    def col(key: str) -> np.ndarray:
        return np.array([float(h.get(key, np.nan)) for h in hist])

    fig = _fig(15, 6.4)
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


# ------------------------------------------------------------------------------------------------
# tables


def _short(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


def _labels_for(c: Any, n_bins: int) -> tuple[list[str], bool]:
    """Labels of a column's public evaluation bins (the TVD's bins) and whether each bin is one value."""
    from pe_tabular.tables.evaluation import EVAL_BINS
    from pe_tabular.tables.marginals import Binning
    from pe_tabular.tables.values import from_unit

    if c.is_categorical:
        return [str(v) for v in c.categories] + ["(missing)"], True
    b = Binning.of(c, EVAL_BINS, EVAL_BINS)
    if b.per_value:
        vals = c.lower + np.arange(n_bins - 1) * c.rounding
    else:  # left edges of the grid bins
        vals = from_unit(c, np.arange(n_bins - 1) / b.numeric_bins)
    if c.type == "datetime":
        return [pd.Timestamp(v, unit="s").strftime("%Y-%m-%d") for v in vals] + ["(missing)"], b.per_value
    return [_short(float(v)) for v in vals] + ["(missing)"], b.per_value


def _shares(codes: np.ndarray, n: int) -> np.ndarray:
    h = np.bincount(codes, minlength=n).astype(float)
    return h / max(h.sum(), 1.0)


def distributions_figure(real_codes: np.ndarray, synth_codes: np.ndarray, sizes: np.ndarray, schema: Schema,
                         ncols: int = 4) -> tuple[Any, list[float]]:
    """Real vs synthetic per column on public bins; returns the figure and each column's 1-way TVD."""
    n = len(schema.columns)
    nrows = math.ceil(n / ncols)
    fig = _fig(4.2 * ncols, 2.9 * nrows, constrained=False)  # fixed spacing: constrained layout is slow here
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
        missing = f"\nmissing: real {pr[-1]:.1%}, synthetic {ps[-1]:.1%}" if pr[-1] + ps[-1] > 0 else ""
        if c.is_categorical:
            order = np.argsort(-(pr[:-1] + 1e-9 * ps[:-1]), kind="stable")
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
            edges = np.arange(k)  # the last code is the null bin, shown in the title instead
            ax.stairs(pr[:-1], edges, color=REAL_COLOR, fill=True, alpha=0.45, label="real")
            ax.stairs(ps[:-1], edges, color=SYNTH_COLOR, linewidth=1.6, label="synthetic")
            ticks = np.unique(np.linspace(0, k - 2, 5).round().astype(int))
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
    fig = _fig(17, 5.8)
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
    edges = np.asarray(d["hist_edges"], dtype=float)
    fig = _fig(7.5, 3.4)
    ax = fig.subplots()
    for key, color, label in (("holdout_hist", HOLDOUT_COLOR, "real holdout → train"),
                              ("synth_hist", SYNTH_COLOR, "synthetic → train")):
        h = np.asarray(d[key], dtype=float)
        if h.size == edges.size - 1:
            ax.stairs(h / max(h.sum(), 1.0), edges, color=color, linewidth=1.8, label=label,
                      fill=key == "holdout_hist", alpha=0.5 if key == "holdout_hist" else 1.0)
    ax.axvline(d["holdout_median"], color=HOLDOUT_COLOR, ls=":", label="holdout median")
    ax.axvline(d["synth_median"], color=SYNTH_COLOR, ls=":", label="synthetic median")
    ax.set_xlabel("distance to the closest training record (vote metric)")
    ax.set_ylabel("share")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _cards(schema: Schema, real: pd.DataFrame, synth: pd.DataFrame, ledger: Mapping[str, Any] | None,
           ev: Mapping[str, Any]) -> list[tuple[str, str]]:
    cards = [("real rows", f"{len(real):,}"), ("synthetic rows", f"{len(synth):,}"),
             ("columns", str(len(schema.columns)))]
    if ledger:
        eps = ledger.get("epsilon")
        cards.append(("(epsilon, delta) for the whole run",
                      f"({eps if isinstance(eps, str) else f'{eps:.3g}'}, {ledger.get('delta', float('nan')):.0e})"))
    for k in (1, 2, 3):
        if f"tvd{k}_mean" in ev:
            cards.append((f"{k}-way TVD, mean", f"{ev[f'tvd{k}_mean']:.3f}"))
    if "tstr" in ev and ev["tstr"].get("auc") is not None:
        cards.append(("AUC: synthetic-trained / real-trained", f"{ev['tstr']['auc']:.3f} / {ev['trtr']['auc']:.3f}"))
    if "dcr" in ev:
        cards.append(("DCR median: synthetic / holdout",
                      f"{ev['dcr']['synth_median']:.0f} / {ev['dcr']['holdout_median']:.0f}"))
    return cards


def table_sections(real: pd.DataFrame, synth: pd.DataFrame, schema: Schema, ev: Mapping[str, Any]) -> list[Section]:
    """Distributions, associations, fidelity, utility and DCR sections for a synthetic table."""
    from pe_tabular.tables.evaluation import binned

    rc, sizes = binned(real, schema)
    sc, _ = binned(synth, schema)
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
    out.append(html_section(
        "Marginal fidelity (TVD)",
        tables=[table_html((["marginals", "mean TVD", "max TVD"], tvd_rows), caption="Total variation distance"),
                table_html((["columns", "k", "TVD"], worst), caption="Worst 1- and 2-way marginals"),
                table_html((["column", "1-way TVD"], per_col), caption="Per column")],
        text="TVD = half the L1 distance between the real and synthetic distributions of a set of columns on public "
             "bins (0 = identical, 1 = disjoint), averaged / maximised over all column subsets of each size."))
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
        stats = {"median DCR, synthetic": d["synth_median"], "median DCR, real holdout": d["holdout_median"],
                 "exact copies of training rows, synthetic": d.get("synth_exact_copies"),
                 "exact copies, real holdout": d.get("holdout_exact_copies"),
                 "synthetic rows closer than the holdout median": d.get("share_synth_closer_than_holdout_median")}
        out.append(html_section(
            "Distance to closest record", [dcr_figure(d)], [stats],
            text="For each synthetic row (and each row of a real holdout that was never used), the distance to the "
                 "closest training row. Synthetic data that copies training rows sits left of the holdout curve; "
                 "DP bounds the risk regardless, this is a sanity check."))
    return out


def report_ways(schema: Schema) -> tuple[int, ...]:
    """Marginal sizes the report evaluates (1, 2, 3-way; fewer on narrow tables)."""
    return tuple(k for k in (1, 2, 3) if k <= len(schema.columns))


def _as_internal(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Datetime columns as epoch seconds, the scale of the schema's bounds and bins.

    Why: ``synth`` hands over the raw input and the user-facing output (pandas Timestamps), whose
    numeric value is nanoseconds; binned as-is, every datetime would land in the last public bin.
    """
    cols = [c.name for c in schema.columns if c.type == "datetime" and c.name in df
            and not pd.api.types.is_numeric_dtype(df[c.name])]
    if not cols:
        return df
    out = df.copy()
    for name in cols:
        t = pd.to_datetime(out[name], errors="coerce")
        out[name] = (t - pd.Timestamp(0)) / pd.Timedelta(seconds=1)  # NaT -> NaN
    return out


def write_report(real: pd.DataFrame, synth: pd.DataFrame, schema: Schema, path: str | os.PathLike, *,
                 ledger: Mapping[str, Any] | None = None, history: Sequence[Mapping[str, Any]] | None = None,
                 evaluation: Mapping[str, Any] | None = None, test: pd.DataFrame | None = None,
                 target: str | None = None, extra_sections: Sequence[Section] = (),
                 title: str = "Synthetic data report", progress: Callable[[int], None] | None = None) -> Path:
    """Write the HTML report of a synthetic table; computes ``evaluate(...)`` when ``evaluation`` is None.

    ``progress`` is called with 1 per marginal evaluated (for a progress bar; see ``report_ways``).
    ``real`` is the private training table: the report is as sensitive as the real data (it plots its
    exact distributions) and must be kept with it, not published with the synthetic data.
    """
    real, synth = _as_internal(real, schema), _as_internal(synth, schema)
    test = _as_internal(test, schema) if test is not None else None
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
                      cards=_cards(schema, real, synth, ledger, evaluation))


__all__ = ["Section", "associations_figure", "cramers_v_matrix", "dcr_figure", "distributions_figure",
           "evolution_section", "figure_html", "html_section", "privacy_section", "render_html", "table_html",
           "table_sections", "write_html", "write_report"]
