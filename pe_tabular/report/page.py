"""The domain-free page toolkit: titled sections of escaped tables and embedded figures, one HTML file.

Why a page and not a notebook or a web app: people judge synthetic data by looking at it, and the
report must open anywhere — mailed, archived next to the data, on an air-gapped machine. So the file
needs nothing at view time (no network, no JavaScript): every figure is a matplotlib PNG embedded as a
base64 ``data:`` URI (or inline SVG), every style rule is inline, and it is written atomically.
Figures are drawn on ``matplotlib.figure.Figure`` objects (:func:`new_figure`, no pyplot), so
building a page touches no global state and works in threads and on headless machines.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.io_utils import atomic_write_text

# one palette for every report, so "real" and "synthetic" look the same in tables, traces and digits
REAL_COLOR, SYNTH_COLOR, HOLDOUT_COLOR = "#4c72b0", "#dd8452", "#55a868"
DPI = 80

FigureLike = Any  # matplotlib Figure | PNG bytes | image ndarray | SVG markup str | path to .png/.svg
TableLike = Any  # pandas DataFrame | sequence of mappings | (header, rows) | mapping (two-column table)


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


def new_figure(width: float, height: float, constrained: bool = True) -> Any:
    """A pyplot-free matplotlib Figure (inches); constrained layout unless the caller spaces panels itself.

    Why not ``pyplot.subplots``: pyplot keeps a global registry of open figures, which leaks memory in
    long runs and is not thread-safe; a bare Figure is garbage-collected once embedded.
    """
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained" if constrained else None)


__all__ = ["DPI", "HOLDOUT_COLOR", "REAL_COLOR", "SYNTH_COLOR", "FigureLike", "Section", "TableLike",
           "figure_html", "html_section", "new_figure", "render_html", "table_html", "write_html"]
