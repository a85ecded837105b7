"""A self-contained HTML report for synthetic network traces (flows or packet headers).

Built only from the engine's domain-free page API, :mod:`pe_tabular.report` (sections, tables,
embedded PNG figures, atomic write), so it opens anywhere without network or scripts. The numbers
come from the traces fidelity suite (:func:`simulators.network.fidelity.flow_fidelity` /
``packet_fidelity``) — the report shows the same values ``pe-tabular traces evaluate`` prints, and the
figures show *why* they are what they are: CDFs of sizes, durations and timing, service mixes, heavy
hitters and address-prefix distributions, real beside synthetic.

Every figure is computed from the REAL trace too, so the report is as sensitive as the private data:
it carries a warning in its header and must stay with the private data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.report import (
    REAL_COLOR,
    SYNTH_COLOR,
    Section,
    evolution_section,
    html_section,
    privacy_section,
    table_html,
    write_html,
)
from simulators.network.encoder import ip_to_uint32, number_to_proto, proto_to_number, uint32_to_ip
from simulators.network.fidelity import flow_fidelity, flow_validity, packet_fidelity, tvd

PRIVATE_WARNING = ("Warning: this report shows statistics of the REAL (private) trace; it is not differentially "
                   "private — do not share it, keep it with the private data.")
CDF_POINTS = 2000  # points per plotted CDF (quantiles of the full data; the numbers use every record)
TOP_BARS = 15  # categories per bar chart before the rest is pooled into "other"
TOP_PREFIXES = 12

# what each per-field metric of the suite compares (field, metric, description)
FIELD_METRICS: dict[str, tuple[str, str, str]] = {
    "jsd_srcport": ("srcport", "JS distance", "source port distribution"),
    "jsd_dstport": ("dstport", "JS distance", "destination port distribution"),
    "jsd_proto": ("proto", "JS distance", "protocol mix"),
    "jsd_srcip_rank": ("srcip", "JS distance", "popularity-rank curve of source addresses (identities ignored)"),
    "jsd_dstip_rank": ("dstip", "JS distance", "popularity-rank curve of destination addresses"),
    "emd_ts": ("ts", "EMD / range", "start times"),
    "emd_td": ("td", "EMD / range", "log(1 + duration)"),
    "emd_pkt": ("pkt", "EMD / range", "log(1 + packets per flow)"),
    "emd_byt": ("byt", "EMD / range", "log(1 + bytes per flow)"),
    "emd_length": ("length", "EMD / range", "packet lengths"),
    "emd_ttl": ("ttl", "EMD / range", "TTLs"),
    "emd_iat": ("ts", "EMD / range", "log(1 + inter-arrival time)"),
    "emd_flow_size": ("5-tuple", "EMD / range", "log(1 + packets per 5-tuple)"),
}


def trace_kind(df: pd.DataFrame) -> str:
    """``"packet"`` for packet-header tables (a ``length`` column, no ``pkt``), else ``"flow"``."""
    return "packet" if "length" in df.columns and "pkt" not in df.columns else "flow"


def fidelity_rows(fidelity: Mapping[str, Any]) -> list[list[Any]]:
    """One row (field, metric, value, what it compares) per per-field metric present in a suite result."""
    return [[field, metric, float(fidelity[key]), what] for key, (field, metric, what) in FIELD_METRICS.items()
            if key in fidelity]


# ------------------------------------------------------------------------------------------------
# figures


def _figure(width: float, height: float, rows: int, cols: int, *, bottom: float, gap: float = 0.0,
            **grid: Any) -> tuple[Any, np.ndarray]:
    """A figure with a grid of axes at fixed spacing in inches (constrained layout doubles the drawing time).
    ``bottom`` is the space under each row for tick labels and the x label, ``gap`` the extra room between
    rows for two-line titles."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    top_in = 0.5
    axes_h = (height - top_in - bottom - (rows - 1) * (bottom + top_in + gap)) / rows
    spacing = {"left": 0.75 / width, "right": 1 - 0.2 / width, "top": 1 - top_in / height, "bottom": bottom / height,
               "wspace": 0.22, "hspace": (bottom + top_in + gap) / axes_h if rows > 1 else 0.0}
    return fig, fig.subplots(rows, cols, squeeze=False, gridspec_kw={**spacing, **grid})


def _quantile_curve(x: np.ndarray, points: int = CDF_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """The empirical CDF at ``points`` evenly spaced ranks: exact steps for small data, cheap to draw for big."""
    x = np.sort(x[np.isfinite(x)])
    if len(x) == 0:
        return x, x
    idx = np.unique(np.linspace(0, len(x) - 1, min(points, len(x))).round().astype(np.int64))
    return x[idx], (idx + 1) / len(x)


def _cdf_panel(ax: Any, real: np.ndarray, synth: np.ndarray, title: str, xlabel: str, log: bool) -> None:
    real, synth = np.asarray(real, np.float64), np.asarray(synth, np.float64)
    note = ""
    if log:  # zeros (single-packet flows last 0 s) cannot sit on a log axis: pin them to its left edge
        pos = np.concatenate([real[real > 0], synth[synth > 0]])
        floor = float(pos.min()) / 2 if len(pos) else 1.0
        zr, zs = np.mean(real <= 0) if len(real) else 0.0, np.mean(synth <= 0) if len(synth) else 0.0
        if zr + zs > 0:
            note = f"\n(zeros at left edge: real {zr:.0%}, synthetic {zs:.0%})"
        real, synth = np.maximum(real, floor), np.maximum(synth, floor)
    for x, color, label in ((real, REAL_COLOR, "real"), (synth, SYNTH_COLOR, "synthetic")):
        xs, ys = _quantile_curve(x)
        if len(xs):
            ax.step(xs, ys, where="post", color=color, label=label, lw=1.6)
    if log:
        ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_title(title + note, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("cumulative share")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


def _iat(df: pd.DataFrame) -> np.ndarray:
    return np.diff(np.sort(df["ts"].to_numpy(np.float64) / 1e6))


def _flow_size(df: pd.DataFrame) -> np.ndarray:
    return df.groupby(["srcip", "dstip", "srcport", "dstport", "proto"], sort=False).size().to_numpy(np.float64)


def cdf_figure(real: pd.DataFrame, synth: pd.DataFrame, kind: str, window: tuple[float, float]) -> Any:
    """Real vs synthetic CDFs: sizes and durations on log axes, start time over the window, inter-arrival."""
    t0 = window[0]
    start_label = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    def start(df: pd.DataFrame) -> np.ndarray:
        return df["ts"].to_numpy(np.float64) / 1e6 - t0

    if kind == "flow":
        panels = [(real["byt"], synth["byt"], "bytes per flow", "bytes", True),
                  (real["pkt"], synth["pkt"], "packets per flow", "packets", True),
                  (real["td"], synth["td"], "flow duration", "seconds", True)]
    else:
        panels = [(real["length"], synth["length"], "packet length", "bytes", False),
                  (real["ttl"], synth["ttl"], "TTL", "hops", False),
                  (_flow_size(real), _flow_size(synth), "packets per 5-tuple", "packets", True)]
    panels += [(start(real), start(synth), "start time", f"seconds after {start_label}", False),
               (_iat(real), _iat(synth), "inter-arrival time (sorted starts)", "seconds", True)]
    fig, axes = _figure(16, 6.6, 2, 3, bottom=0.55, gap=0.15)
    axes = axes.ravel()
    for ax, (r, s, title, xlabel, log) in zip(axes, panels):
        _cdf_panel(ax, np.asarray(r), np.asarray(s), title, xlabel, log)
    axes[-1].set_visible(False)
    return fig


def _shares(real: pd.Series, synth: pd.Series, top: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Shares of the ``top`` most common values (by real + synthetic share), the rest pooled into "other"."""
    pr = real.value_counts(normalize=True)
    ps = synth.value_counts(normalize=True)
    both = pr.add(ps, fill_value=0.0).sort_values(ascending=False, kind="stable")
    keys = list(both.index[:top])
    r = pr.reindex(keys, fill_value=0.0).to_numpy()
    s = ps.reindex(keys, fill_value=0.0).to_numpy()
    labels = [str(k) for k in keys]
    if len(both) > top:
        labels.append("other")
        r, s = np.append(r, max(1.0 - r.sum(), 0.0)), np.append(s, max(1.0 - s.sum(), 0.0))
    return labels, r, s


def _bar_panel(ax: Any, labels: Sequence[str], r: np.ndarray, s: np.ndarray, title: str) -> None:
    x = np.arange(len(labels))
    ax.bar(x - 0.2, r, 0.4, color=REAL_COLOR, label="real")
    ax.bar(x + 0.2, s, 0.4, color=SYNTH_COLOR, label="synthetic")
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("share of records")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def services_figure(real: pd.DataFrame, synth: pd.DataFrame, top: int = TOP_BARS) -> Any:
    """Top destination ports and the protocol mix, real vs synthetic (shares of records)."""
    fig, axes = _figure(16, 3.8, 1, 2, bottom=0.7, width_ratios=[2, 1])
    ax_port, ax_proto = axes[0]
    labels, r, s = _shares(real["dstport"].astype(np.int64), synth["dstport"].astype(np.int64), top)
    _bar_panel(ax_port, labels, r, s, f"top {top} destination ports")
    names = lambda df: pd.Series(number_to_proto(proto_to_number(df["proto"])))  # noqa: E731
    labels, r, s = _shares(names(real), names(synth), 8)
    _bar_panel(ax_proto, labels, r, s, "protocols")
    return fig


def _prefix_labels(prefixes: Sequence[Any], bits: int) -> list[str]:
    out = []
    for p in prefixes:
        if p == "other":
            out.append("other")
            continue
        quad = uint32_to_ip(np.array([int(p) << (32 - bits)]))[0].split(".")
        out.append(".".join(quad[: bits // 8]) + f"/{bits}")
    return out


def prefix_figure(real: pd.DataFrame, synth: pd.DataFrame, lengths: Sequence[int] = (8, 16),
                  top: int = TOP_PREFIXES) -> tuple[Any, list[list[Any]]]:
    """Shares of the most common source and destination prefixes (one row of panels per prefix length),
    and a table with each distribution's TVD (the suite's :func:`tvd`)."""
    fig, axes = _figure(16, 3.8 * len(lengths), len(lengths), 2, bottom=0.85)
    rows = []
    for i, bits in enumerate(lengths):
        for j, col in enumerate(("srcip", "dstip")):
            a = ip_to_uint32(real[col], col) >> (32 - bits)
            b = ip_to_uint32(synth[col], col) >> (32 - bits)
            labels, r, s = _shares(pd.Series(a), pd.Series(b), top)
            d = tvd(a, b)
            rows.append([col, f"/{bits}", d])
            _bar_panel(axes[i, j], _prefix_labels([k if k == "other" else int(k) for k in labels], bits), r, s,
                       f"{'source' if col == 'srcip' else 'destination'} /{bits} prefixes (TVD {d:.3f})")
    return fig, rows


# ------------------------------------------------------------------------------------------------
# tables


def heavy_hitter_rows(real_keys: np.ndarray, synth_keys: np.ndarray, top: int,
                      fmt: Any = str) -> tuple[list[str], list[list[Any]], float]:
    """The real top-``top`` keys with their real and synthetic counts (synthetic scaled to the real size),
    beside the synthetic top-``top``; and the mean relative error of the real top keys' exact counts."""
    rc = pd.Series(np.asarray(real_keys, np.int64)).value_counts()
    sc = pd.Series(np.asarray(synth_keys, np.int64)).value_counts()
    scale = len(real_keys) / max(len(synth_keys), 1)
    rk, sk = rc.index[:top], sc.index[:top]
    rows, errs = [], []
    for i in range(max(len(rk), len(sk))):
        row: list[Any] = [i + 1]
        if i < len(rk):
            true, est = int(rc.iloc[i]), float(sc.get(rk[i], 0)) * scale
            errs.append(abs(est - true) / true)
            row += [fmt(rk[i]), true, round(est, 1), errs[-1]]
        else:
            row += ["", None, None, None]
        row += [fmt(sk[i]), round(float(sc.iloc[i]) * scale, 1), int(rc.get(sk[i], 0))] if i < len(sk) \
            else ["", None, None]
        rows.append(row)
    header = ["rank", "real top", "real count", "synthetic count (scaled)", "relative error",
              "synthetic top", "synthetic count (scaled)", "real count"]
    return header, rows, float(np.mean(errs)) if errs else float("nan")


def _ip_fmt(v: Any) -> str:
    return str(uint32_to_ip(np.array([int(v)]))[0])


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def traces_cards(real: pd.DataFrame, synth: pd.DataFrame, fidelity: Mapping[str, Any],
                 ledger: Mapping[str, Any] | None, kind: str) -> list[tuple[str, str]]:
    """The key numbers above the table of contents."""
    head = fidelity["headline"]
    unit = "flows" if kind == "flow" else "packets"
    if ledger is not None:
        eps = ledger.get("epsilon")
        eps_s = f"{eps:.3g}" if isinstance(eps, (int, float)) else str(eps)
        privacy = f"{eps_s} / {ledger.get('delta', '?'):g}" if isinstance(ledger.get("delta"), (int, float)) \
            else f"{eps_s} / {ledger.get('delta', '?')}"
    else:
        privacy = "not given"
    return [(f"{unit} (real)", f"{len(real):,}"), (f"{unit} (synthetic)", f"{len(synth):,}"),
            ("epsilon / delta", privacy),
            ("pairwise TVD (lower is better)", f"{head['pairwise_tvd']:.4f}"),
            ("valid synthetic records", _pct(head["valid_rate"])),
            ("heavy-hitter error (lower is better)", f"{head['hh_error']:.4f}")]


# ------------------------------------------------------------------------------------------------
# sections and the page


def traces_sections(real: pd.DataFrame, synth: pd.DataFrame, fidelity: Mapping[str, Any],
                    window: tuple[float, float], top: int = 10) -> list[Section]:
    """The trace-specific sections, in reading order (ledger and evolution are added by the caller)."""
    kind = trace_kind(real)
    head = fidelity["headline"]
    summary = {"pairwise TVD (mean over column pairs)": head["pairwise_tvd"],
               "valid synthetic records": head["valid_rate"],
               "heavy-hitter error (top destinations, Count-Min)": head["hh_error"],
               "heavy-hitter recall": fidelity.get("hh_recall"),
               "mean JS distance": head["jsd_mean"], "mean EMD": head["emd_mean"]}
    valid = {k: v for k, v in fidelity.items() if k.startswith("valid_") and isinstance(v, float)}
    if kind == "flow":
        real_valid = flow_validity(real)
        valid_rows = [[k, real_valid.get(k), v] for k, v in valid.items()]
    else:
        valid_rows = [[k, None, v] for k, v in valid.items()]
    sections = [html_section(
        "Fidelity", tables=[
            table_html(summary, caption="Headline (the numbers `pe-tabular traces evaluate` prints)"),
            table_html((["field", "metric", "value", "compares"], fidelity_rows(fidelity)),
                       caption="Per-field distances (0 = same distribution)"),
            table_html((["rule", "real", "synthetic"], valid_rows), caption="Validity (share of records passing)")],
        text="Per-field metrics follow NetShare: JS distance of ports, protocol and address popularity ranks, "
             "earth mover's distance of times and sizes. They see one field at a time (a column-shuffled trace "
             "scores 0 on all of them); the pairwise TVD below is the number that sees joint structure.")]
    pairs = fidelity.get("pairwise_tvd_by_pair") or {}
    if pairs:
        worst = sorted(pairs.items(), key=lambda kv: -kv[1])[:12]
        sections.append(html_section(
            "Joint structure", tables=[table_html((["column pair", "TVD"], [[k.replace("|", " × "), v]
                                                                          for k, v in worst]),
                                                  caption="Column pairs furthest from the real trace")],
            text="Total variation distance of each pair of coarsely, publicly binned columns (/8 networks, "
                 "port classes, protocol, 32 time cells, log2 sizes); the headline is their mean."))
    sections.append(html_section(
        "Distributions", [cdf_figure(real, synth, kind, window)],
        captions=["Cumulative distributions, real (blue) vs synthetic (orange); log x-axes for heavy tails. "
                  "Inter-arrival times shrink as a trace gets more records: compare them at equal sizes."]))
    sections.append(html_section(
        "Services", [services_figure(real, synth)],
        captions=["Destination ports and protocols as shares of records; the rest is pooled into 'other'."]))
    header, rows, err = heavy_hitter_rows(ip_to_uint32(real["dstip"], "dstip"),
                                          ip_to_uint32(synth["dstip"], "dstip"), top, _ip_fmt)
    p_header, p_rows, p_err = heavy_hitter_rows(real["dstport"].to_numpy(np.int64),
                                                synth["dstport"].to_numpy(np.int64), top)
    sections.append(html_section(
        "Heavy hitters", tables=[
            {"HH error, top destination addresses (suite, Count-Min estimate)": fidelity.get("hh_error"),
             "HH recall of the real top destinations": fidelity.get("hh_recall"),
             f"mean relative error, top-{top} destination addresses (exact counts)": err,
             f"mean relative error, top-{top} destination ports (exact counts)": p_err},
            table_html((header, rows), caption=f"Top-{top} destination addresses"),
            table_html((p_header, p_rows), caption=f"Top-{top} destination ports")],
        text="What an analyst would read off the synthetic trace: the busiest destinations. Synthetic counts are "
             "scaled to the real trace's size; the relative error is |synthetic - real| / real per real top key."))
    fig, rows = prefix_figure(real, synth)
    sections.append(html_section(
        "Address prefixes", [fig], [(["address", "prefix", "TVD"], rows)],
        captions=["Share of records per /8 and /16 network (the most common ones; the rest pooled into 'other')."]))
    return sections


def _window(real: pd.DataFrame) -> tuple[float, float]:
    t = real["ts"].to_numpy(np.float64) / 1e6
    return float(t.min()), float(max(t.max(), t.min() + 1e-6))


def write_traces_report(real: pd.DataFrame, synth: pd.DataFrame, out_html: str | os.PathLike,
                        ledger: Any = None, history: Sequence[Mapping[str, Any]] | None = None, *,
                        fidelity: Mapping[str, Any] | None = None, window: tuple[float, float] | None = None,
                        top: int = 10, title: str = "Synthetic network trace report",
                        warning: str = PRIVATE_WARNING) -> Path:
    """Write one self-contained HTML report comparing a synthetic trace with the real one, atomically.

    ``real``/``synth`` are flow tables (``read_netflow_csv``) or packet tables (``read_pcap``), both of
    one kind. ``ledger`` is a :class:`~pe_tabular.privacy.ledger.Ledger` or its dict (``OUT.privacy.json``)
    and ``history`` the per-iteration records; each adds its section when given. ``fidelity`` is a
    precomputed suite result (computed here otherwise) so callers never evaluate twice. ``window`` is the
    public time window (default: the real trace's range, as the suite does).
    """
    out = Path(out_html)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"out_html {out}: the report is HTML; use a file name ending in .html")
    kind = trace_kind(real)
    if trace_kind(synth) != kind:
        raise ValueError(f"real is a {kind} table but synth is a {trace_kind(synth)} table; compare like with like")
    if len(real) == 0 or len(synth) == 0:
        raise ValueError("both traces need at least one record for a report")
    window = tuple(window) if window is not None else _window(real)  # type: ignore[assignment]
    if fidelity is None:
        fidelity = (flow_fidelity if kind == "flow" else packet_fidelity)(real, synth, window, top)
    led = ledger.to_dict() if hasattr(ledger, "to_dict") else ledger
    sections = traces_sections(real, synth, fidelity, window, top)  # type: ignore[arg-type]
    if led is not None:
        sections.append(privacy_section(led))
    if history:
        evo = evolution_section(history)
        if evo is not None:
            sections.append(evo)
    return write_html(out, title, sections, subtitle=warning, cards=traces_cards(real, synth, fidelity, led, kind))
