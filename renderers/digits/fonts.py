"""The font renderer: digits drawn from TrueType outlines available offline.

Glyph outlines come from the fonts matplotlib ships (DejaVu Sans/Sans Mono/Serif and STIX in four
styles each, and the Computer Modern cmr/cmss/cmtt/cmb/cmti faces), read with
``matplotlib.textpath.TextPath`` — no download, no PIL needed. Quadratic/cubic Bézier pieces are
flattened to line segments once, so rendering is the same distance-based anti-aliased raster as the
stroke renderer (``raster.render_outlines``). Genes: template (font × digit), bold (outline offset,
the font 'stroke' parameter), soft (blur), slant, rotation, aspect, size, translation, elastic.
This mirrors the font-based simulator of Sim-PE (Lin et al. 2025) with our own parameterisation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from renderers.digits.genome import Gene, GenomeSpec
from renderers.digits.geometry import ELASTIC_P, ELASTIC_W, check_placement
from renderers.digits.raster import SIZE, render_outlines
from renderers.digits.stroke import COMMON_GENES, TemplateBackend

DEFAULT_FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmb10.ttf", "cmti10.ttf",
)
FONT_GENES = GenomeSpec((Gene("bold", 0.4, 0.5, -0.5, 2.0), *COMMON_GENES))


def font_dir() -> str:
    import matplotlib

    return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf")


def _flatten(path, per_curve: int = 4) -> list[np.ndarray]:
    """Closed contours (k, 2) of a matplotlib Path, Bézier pieces sampled ``per_curve`` times."""
    contours: list[np.ndarray] = []
    cur: list[np.ndarray] = []
    for bez, code in path.iter_bezier():
        if code == path.MOVETO:
            if len(cur) > 2:
                contours.append(np.asarray(cur))
            cur = [bez.control_points[-1]]
            continue
        if code == path.CLOSEPOLY:
            if len(cur) > 2:
                contours.append(np.asarray(cur))
            cur = []
            continue
        deg = bez.control_points.shape[0] - 1
        ts = np.linspace(0, 1, (per_curve if deg > 1 else 1) + 1)[1:]
        cur.extend(bez(ts))
    if len(cur) > 2:
        contours.append(np.asarray(cur))
    return contours


@lru_cache(maxsize=8)
def load_glyphs(fonts: tuple[str, ...] = DEFAULT_FONTS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                                   tuple[str, ...]]:
    """(edges (T, E, 4), nedge (T,), centroid (T, 2), digit (T,), names) for every font × digit.

    Glyph units: height 1, y down, bounding box centred on the origin. ``centroid`` is the area
    centroid of the filled glyph (even-odd), used for MNIST centre-of-mass placement."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    edges_l, cents, digits, names = [], [], [], []
    for f in fonts:
        path = f if os.path.isabs(f) else os.path.join(font_dir(), f)
        if not os.path.exists(path):
            raise FileNotFoundError(f"font {f!r} not found (looked in {font_dir()}); pass fonts that exist")
        prop = FontProperties(fname=path)
        for d in range(10):
            contours = _flatten(TextPath((0, 0), str(d), size=1.0, prop=prop))
            if not contours:
                raise ValueError(f"font {f} has no outline for digit {d}")
            pts = np.concatenate(contours)
            lo, hi = pts.min(0), pts.max(0)
            h = hi[1] - lo[1]
            if h <= 0 or sum(len(c) for c in contours) > 1000:
                raise ValueError(f"font {f}: digit {d} has no usable outline (a missing-glyph box?)")
            centre = (lo + hi) / 2
            e, area, cx, cy = [], 0.0, 0.0, 0.0
            for c in contours:
                q = (c - centre) / h * np.array([1.0, -1.0])  # y down
                a, b = q, np.roll(q, -1, axis=0)
                e.append(np.concatenate([a, b], axis=1))
                cr = a[:, 0] * b[:, 1] - b[:, 0] * a[:, 1]
                area += cr.sum() / 2
                cx += ((a[:, 0] + b[:, 0]) * cr).sum() / 6
                cy += ((a[:, 1] + b[:, 1]) * cr).sum() / 6
            edges_l.append(np.concatenate(e))
            cents.append([cx / area, cy / area] if abs(area) > 1e-9 else [0.0, 0.0])
            digits.append(d)
            names.append(f"{os.path.basename(f)}:{d}")
    emax = max(len(e) for e in edges_l)
    edges = np.zeros((len(edges_l), emax, 4))
    for i, e in enumerate(edges_l):
        edges[i, :len(e)] = e
    return (edges, np.array([len(e) for e in edges_l], np.int64), np.asarray(cents, float),
            np.asarray(digits, np.int64), tuple(names))


class FontRenderer(TemplateBackend):
    """Backend drawing digits from TrueType outlines; genome column 0 = font × digit template id."""

    spec = FONT_GENES

    def __init__(self, placement: str = "free", name: str = "font", fonts: Sequence[str] = DEFAULT_FONTS,
                 template_weights: Sequence[float] | None = None):
        self.placement, self.name = check_placement(placement), name
        self._edges, self._nedge, self._centroid, self.template_digits, self.template_names = \
            load_glyphs(tuple(fonts))
        self._init_weights(template_weights)

    def render(self, genome: np.ndarray) -> np.ndarray:
        """uint8 (n, 28, 28) images, white on black, from genome rows (deterministic)."""
        g = np.ascontiguousarray(self.spec.check(genome, self.n_templates))
        out = np.empty((len(g), SIZE, SIZE), dtype=np.uint8)
        render_outlines(g, self._edges, self._nedge, self._centroid, ELASTIC_W, ELASTIC_P,
                        self.placement == "mnist", out)
        return out
