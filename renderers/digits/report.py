"""The HTML report of a ``pe-tabular digits`` run: the images themselves, beside real ones.

Digits are judged by eye first, so the report leads with pictures — the mean image of every class
(real vs synthetic), then per class a 10 × 16 sample of the synthetic images next to real *test*
images of the same digit, then the populations voted on at every iteration — and puts the numbers
beside them: per-class accuracy of the synthetic-trained CNN on the real test set
(``evaluation.json`` from ``pe-tabular digits evaluate``), the class balance, the renderer shares of
a mixture, the privacy ledger and the evolution curves.

Everything is built with the engine's domain-free page API, :mod:`pe_tabular.report`
(:func:`~pe_tabular.report.html_section`, :func:`~pe_tabular.report.figure_html`,
:func:`~pe_tabular.report.write_html`, the ledger and evolution sections), so the file is
self-contained (embedded PNGs, no scripts) and written atomically.

Every input but the synthetic images is optional: a folder from ``render`` (no ledger, no history),
a bare ``.npz``, or a run never evaluated gives a shorter report, never an error. The real images
shown are the MNIST *test* split — never the private training data the run voted with.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pe_tabular.cli_support import ledger_path
from pe_tabular.report import (
    REAL_COLOR,
    SYNTH_COLOR,
    Section,
    evolution_section,
    figure_html,
    html_section,
    privacy_section,
    table_html,
    write_html,
)
from renderers.digits.io import load_images, read_npz

log = logging.getLogger("pe_tabular.digits")

GRID_ROWS, GRID_COLS = 10, 16  # samples shown per class: enough to see the variety, small enough to embed
GRID_SCALE = 2  # nearest-neighbour upscaling of the 28-px digits, so the browser does not blur them
MAX_ITERATION_GRIDS = 12  # evenly spaced (first and last always); a 40-iteration run would otherwise be huge
_ITER_RE = re.compile(r"iteration_(\d+)\.png$")


@dataclass
class DigitsRun:
    """What a run folder holds; everything but the images may be missing."""

    path: Path
    images: np.ndarray
    labels: np.ndarray
    source: np.ndarray | None = None
    ledger: dict[str, Any] | None = None
    run: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    grids: list[tuple[str, Path]] = field(default_factory=list)  # (caption, png) in iteration order


def _ledger_file(run_dir: Path) -> Path:
    """The run's ledger: ``synthetic.privacy.json`` (the one naming of every wing), or the ``ledger.json`` of
    runs made before that naming."""
    new = ledger_path(run_dir / "synthetic.npz")
    return new if new.exists() or not (run_dir / "ledger.json").exists() else run_dir / "ledger.json"


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); re-create it or delete it to leave its section out") \
            from None
    if not isinstance(d, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(d).__name__}")
    return d


def _iteration_grids(grid_dir: Path) -> list[tuple[str, Path]]:
    its = sorted((int(m.group(1)), p) for p in grid_dir.glob("iteration_*.png") if (m := _ITER_RE.search(p.name)))
    if len(its) > MAX_ITERATION_GRIDS:
        keep = np.unique(np.linspace(0, len(its) - 1, MAX_ITERATION_GRIDS).round().astype(int))
        its = [its[i] for i in keep]
    out = [(f"iteration {t}: the population voted on", p) for t, p in its]
    if (grid_dir / "final.png").is_file():
        out.append(("final output (a sample)", grid_dir / "final.png"))
    return out


def load_run(directory: str | os.PathLike) -> DigitsRun:
    """Read a ``synth``/``render`` output folder (or a bare .npz); missing side files are ``None``."""
    p = Path(directory)
    if not p.exists():
        raise FileNotFoundError(f"DIR {p} does not exist; give the --out folder of `pe-tabular digits synth`")
    source = None
    npz = p / "synthetic.npz" if p.is_dir() else p
    if npz.is_file() and npz.suffix == ".npz":
        images, labels = read_npz(npz)
        with np.load(npz, allow_pickle=False) as z:
            if "source" in z.files:
                source = z["source"].astype(str)
    else:  # IDX files (synth --format idx)
        images, labels = load_images(p, flag="DIR")
    if len(images) == 0:
        raise ValueError(f"DIR {p} holds no images")
    if not p.is_dir():  # a bare .npz: its neighbours may belong to another run, so none are read
        return DigitsRun(p, images, labels, source)
    return DigitsRun(p, images, labels, source, ledger=_read_json(_ledger_file(p)), run=_read_json(p / "run.json"),
                     evaluation=_read_json(p / "evaluation.json"), grids=_iteration_grids(p / "grids"))


# ------------------------------------------------------------------------------------------------
# pictures


def class_mosaic(images: np.ndarray, labels: np.ndarray, digit: int, rng: np.random.Generator,
                 rows: int = GRID_ROWS, cols: int = GRID_COLS, scale: int = GRID_SCALE) -> tuple[np.ndarray, int]:
    """A (rows·28·scale, cols·28·scale) uint8 mosaic of random images of one class, in their original order
    (fewer rows, and blank cells at the end, when the class has fewer); also returns the class's size."""
    idx = np.flatnonzero(np.asarray(labels) == digit)
    n = len(idx)
    rows = min(rows, max(1, math.ceil(n / cols)))  # no wall of blank rows for a rare class
    if n > rows * cols:
        idx = np.sort(rng.choice(idx, rows * cols, replace=False))
    h, w = images.shape[1:]
    tiles = np.zeros((rows * cols, h, w), dtype=np.uint8)
    tiles[:len(idx)] = images[idx]
    grid = tiles.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w)
    if scale > 1:
        grid = grid.repeat(scale, 0).repeat(scale, 1)
    return grid, n


def _side_by_side(figures: list[str], min_px: int = 420, max_px: int = 920) -> str:
    """Figures in a row that wraps on narrow screens (inline style: the page has no stylesheet of ours)."""
    cells = "".join(f'<div style="flex:1 1 {min_px}px;max-width:{max_px}px">{f}</div>' for f in figures)
    return f'<div style="display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start">{cells}</div>'


def _classes(run: DigitsRun, real: tuple[np.ndarray, np.ndarray] | None) -> list[int]:
    seen = set(np.unique(run.labels).tolist())
    if real is not None:
        seen |= set(np.unique(real[1]).tolist())
    return sorted(int(c) for c in seen)


def class_sections(run: DigitsRun, real: tuple[np.ndarray, np.ndarray] | None, classes: list[int],
                   rng: np.random.Generator) -> list[Section]:
    """One section per digit: synthetic sample grid, and the real test images of that digit beside it."""
    out = []
    for c in classes:
        grid, n = class_mosaic(run.images, run.labels, c, rng)
        shown = min(n, GRID_ROWS * GRID_COLS)
        figs = [figure_html(grid, alt=f"synthetic digit {c}",
                            caption=f"synthetic: {shown} of {n:,} images labelled {c}")]
        if real is not None:
            rgrid, rn = class_mosaic(real[0], real[1], c, rng)
            figs.append(figure_html(rgrid, alt=f"real digit {c}",
                                    caption=f"real test split: {min(rn, GRID_ROWS * GRID_COLS)} of {rn:,} images"))
        text = "" if n else f"The synthetic set has no image labelled {c}."
        body = (f"<p>{text}</p>" if text else "") + _side_by_side(figs)
        out.append(Section(f"Digit {c}", body, f"digit-{c}"))
    return out


def mean_images_section(run: DigitsRun, real: tuple[np.ndarray, np.ndarray] | None,
                        classes: list[int]) -> Section:
    """Mean image per class, synthetic and real, and their difference: shifts in size, slant, thickness."""
    from matplotlib.figure import Figure

    def means(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        xf = x.astype(np.float32) / 255.0
        return np.stack([xf[y == c].mean(0) if (y == c).any() else np.full(x.shape[1:], np.nan) for c in classes])

    rows = [("synthetic", means(run.images, run.labels))]
    if real is not None:
        rows.append(("real (test)", means(real[0], real[1])))
        rows.append(("synthetic − real", rows[0][1] - rows[1][1]))
    fig = Figure(figsize=(1.05 * len(classes) + 0.9, 1.15 * len(rows) + 0.2), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(rows), len(classes), squeeze=False))
    for r, (name, m) in enumerate(rows):
        diff = name.startswith("synthetic −")
        for j, c in enumerate(classes):
            ax = axes[r, j]
            img = np.nan_to_num(m[j])
            if diff:
                ax.imshow(img, cmap="RdBu_r", vmin=-0.5, vmax=0.5)
            else:
                ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(str(c), fontsize=10)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    text = "Mean image of every class." + (
        " Difference row: red = more ink in the synthetic images, blue = more in the real ones; a ring or a "
        "shifted blob means a different size or position, a tilted band a different slant." if real is not None
        else " Give the real test images (--real) to compare them with real ones.")
    return html_section("Mean image per class", [fig], text=text)


def iteration_section(run: DigitsRun) -> Section | None:
    if not run.grids:
        return None
    figs = [figure_html(p, alt=cap, caption=cap) for cap, p in run.grids]
    n_iter = len(list((run.path / "grids").glob("iteration_*.png")))
    text = ("A sample of every population the private images voted on (one row per class), then of the output. "
            "The digits should move from the renderer's prior towards MNIST's look.")
    if n_iter > MAX_ITERATION_GRIDS:
        text += f" {MAX_ITERATION_GRIDS} of the {n_iter} iterations are shown, evenly spaced."
    return Section("Iterations", f"<p>{text}</p>" + _side_by_side(figs, 380, 700), "iterations")


# ------------------------------------------------------------------------------------------------
# numbers


def _real_shares(run: DigitsRun, real: tuple[np.ndarray, np.ndarray] | None, classes: list[int]) -> np.ndarray | None:
    """Label shares of the real test set: from the images if given, else from the confusion matrix rows."""
    if real is not None:
        y = np.asarray(real[1])
        return np.array([(y == c).mean() for c in classes])
    conf = (run.evaluation or {}).get("confusion")
    if conf is None:
        return None
    rows = np.asarray(conf, dtype=float).sum(1)
    return np.array([rows[c] / rows.sum() if c < len(rows) and rows.sum() else np.nan for c in classes])


def balance_section(run: DigitsRun, real: tuple[np.ndarray, np.ndarray] | None, classes: list[int]) -> Section:
    counts = np.array([(run.labels == c).sum() for c in classes])
    shares = counts / max(counts.sum(), 1)
    used = (run.run or {}).get("label_shares") or {}
    real_sh = _real_shares(run, real, classes)
    header = ["digit", "synthetic images", "synthetic share"]
    if used:
        header.append("label share of the run (DP estimate or public)")
    if real_sh is not None:
        header.append("real test share")
    rows = []
    for j, c in enumerate(classes):
        row: list[Any] = [c, int(counts[j]), float(shares[j])]
        if used:
            v = used.get(str(c), used.get(c))
            row.append(None if v is None else float(v))
        if real_sh is not None:
            row.append(float(real_sh[j]))
        rows.append(row)
    text = ("How many synthetic images each digit got. The run draws the output per class by its label shares, "
            "which are either public (uniform) or a noisy estimate paid from the budget (see the ledger).")
    return html_section("Class balance", tables=[table_html((header, rows), floatfmt="{:.3f}")], text=text)


def accuracy_section(ev: dict[str, Any], classes: list[int]) -> Section | None:
    per = ev.get("per_class_acc")
    if per is None:
        return None
    conf = np.asarray(ev["confusion"], dtype=np.int64) if "confusion" in ev else None
    header = ["digit", "accuracy on real test"]
    if conf is not None:
        header += ["real test images", "most often mistaken for", "share of that mistake"]
    rows = []
    for c in classes:
        if c >= len(per):
            continue
        row: list[Any] = [c, float(per[c])]
        if conf is not None and c < len(conf):
            r = conf[c].astype(float)
            off = r.copy()
            off[c] = -1
            k = int(off.argmax())
            row += [int(r.sum()), k if r[k] > 0 else "—", r[k] / r.sum() if r.sum() and r[k] > 0 else None]
        rows.append(row)
    tables: list[Any] = [table_html((header, rows), caption="Per class", floatfmt="{:.3f}")]
    if conf is not None:
        n = len(conf)
        tables.append(table_html((["true \\ predicted"] + [str(j) for j in range(n)],
                                  [[i] + [int(v) for v in conf[i]] for i in range(n)]),
                                 caption="Confusion matrix on the real test set (rows: true digit)"))
    acc = ev.get("acc")
    fd = f"; Fréchet distance {ev['fd']:.2f} (own feature network, not comparable with Inception FID)" \
        if isinstance(ev.get("fd"), (int, float)) else ""
    text = (f"A fixed CNN trained on the synthetic images only, scored on the real MNIST test set: accuracy "
            f"{acc:.4f}{fd}. Low classes point at digits the renderers draw poorly." if isinstance(acc, (int, float))
            else "Per-class accuracy of the synthetic-trained CNN on the real test set.")
    return html_section("Accuracy by class", tables=tables, text=text)


def source_section(run: DigitsRun, classes: list[int]) -> Section | None:
    """Which renderer drew each class's images: only for mixtures (more than one renderer present)."""
    if run.source is None:
        return None
    names = sorted(np.unique(run.source).tolist())
    if len(names) < 2:
        return None
    rows = []
    for c in [*classes, None]:
        m = np.ones(len(run.labels), bool) if c is None else run.labels == c
        n = int(m.sum())
        rows.append(["all" if c is None else c, n] + [float((run.source[m] == s).mean()) if n else None
                                                      for s in names])
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 2.6), layout="constrained")
    ax = fig.subplots()
    bottom = np.zeros(len(classes))
    colors = [REAL_COLOR, SYNTH_COLOR, "#55a868", "#c44e52", "#8172b2", "#937860"]
    for i, s in enumerate(names):
        v = np.array([r[2 + i] or 0.0 for r in rows[:-1]])
        ax.bar(np.arange(len(classes)), v, bottom=bottom, label=s, color=colors[i % len(colors)])
        bottom += v
    ax.set_xticks(np.arange(len(classes)), [str(c) for c in classes])
    ax.set_ylim(0, 1)
    ax.set_xlabel("digit")
    ax.set_ylabel("share of images")
    ax.legend(fontsize=8, loc="upper right", ncols=len(names))
    text = ("Share of the synthetic images each renderer drew, per digit. The mixture lets the private votes choose "
            "the renderer; a digit dominated by one renderer is one the other draws poorly.")
    return html_section("Renderer shares", [fig], [table_html((["digit", "images", *names], rows), floatfmt="{:.3f}")],
                        text=text)


def _cards(run: DigitsRun) -> list[tuple[str, str]]:
    cards = [("synthetic images", f"{len(run.labels):,}"), ("classes", str(len(np.unique(run.labels))))]
    if run.ledger is not None:
        eps = run.ledger.get("epsilon")
        cards.append(("epsilon (whole run)", f"{eps:.3g}" if isinstance(eps, (int, float)) else str(eps)))
        cards.append(("delta", f"{run.ledger.get('delta'):g}" if isinstance(run.ledger.get("delta"), (int, float))
                      else str(run.ledger.get("delta"))))
    elif run.run is not None and run.run.get("epsilon") == 0.0:
        cards.append(("privacy", "no private data used"))
    else:
        cards.append(("privacy", "no ledger found"))
    ev = run.evaluation or {}
    if isinstance(ev.get("acc"), (int, float)):
        cards.append(("accuracy on real test (CNN trained on synthetic)", f"{ev['acc']:.1%}"))
    if isinstance(ev.get("fd"), (int, float)):
        cards.append(("Fréchet distance (own net)", f"{ev['fd']:.2f}"))
    if run.source is not None:
        cards.append(("renderers", ", ".join(sorted(np.unique(run.source).tolist()))))
    hist = (run.run or {}).get("history") or []
    if hist:
        cards.append(("iterations", str(len(hist))))
    return cards


def _matching_evaluation(ev: dict[str, Any] | None, run: DigitsRun) -> dict[str, Any] | None:
    """An evaluation.json scored on a different image set (the folder was overwritten) is left out."""
    if ev is None:
        return None
    n = ev.get("n_images")
    if n is not None and int(n) != len(run.labels):
        log.warning("%s: evaluation.json describes %s images but the synthetic set has %d; its sections are left "
                    "out (re-run `pe-tabular digits evaluate`)", run.path, n, len(run.labels))
        return None
    return ev


def write_digits_report(directory: str | os.PathLike, out_html: str | os.PathLike,
                        real_test: tuple[np.ndarray, np.ndarray] | None = None,
                        evaluation: dict[str, Any] | None = None, *, seed: int = 0) -> Path:
    """Write the report of the run in ``directory`` to ``out_html`` (atomically); returns the path.

    ``real_test`` — (images, labels) of the real MNIST *test* split — adds real grids and mean images
    beside the synthetic ones. ``evaluation`` defaults to ``directory/evaluation.json`` when present.
    ``seed`` only picks which images the grids show.
    """
    run = load_run(directory)
    run.evaluation = _matching_evaluation(evaluation if evaluation is not None else run.evaluation, run)
    if real_test is not None:
        real_test = (np.asarray(real_test[0]), np.asarray(real_test[1]))
        if real_test[0].shape[1:] != run.images.shape[1:]:
            raise ValueError(f"--real images are {real_test[0].shape[1:]} but the synthetic ones are "
                             f"{run.images.shape[1:]}; give the MNIST folder the run was made for")
    classes = _classes(run, real_test)
    rng = np.random.default_rng(seed)
    sections: list[Section | None] = [mean_images_section(run, real_test, classes)]
    if run.evaluation is not None:
        sections.append(accuracy_section(run.evaluation, classes))
    sections.append(balance_section(run, real_test, classes))
    sections.append(source_section(run, classes))
    sections += class_sections(run, real_test, classes, rng)
    sections.append(iteration_section(run))
    if run.ledger is not None:
        sections.append(privacy_section(run.ledger))
    hist = (run.run or {}).get("history")
    if hist:
        sections.append(evolution_section(hist))
    eps = (run.ledger or {}).get("epsilon")
    sub = f"{run.path}" + (f" · epsilon {eps:.3g}" if isinstance(eps, (int, float)) and math.isfinite(eps) else "")
    if real_test is not None:
        sub += " · real images: the MNIST test split, never the private training data"
    return write_html(out_html, f"Synthetic digits: {run.path.name}", [s for s in sections if s is not None],
                      subtitle=sub, cards=_cards(run))
