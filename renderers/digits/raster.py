"""Fused numba kernels: genome row → skeleton/outline → transforms → anti-aliased 28×28 image.

Both renderers work from *distances* between pixel centres and line segments, which gives
anti-aliasing for free: intensity falls from 1 to 0 across a band of ``soft`` pixels around the
stroke's (or outline's) edge with a smoothstep profile (a cheap stand-in for the blur of MNIST's
down-sampling). Each stroke segment only visits the pixels of its own bounding box, and the whole
pipeline (spline evaluation, elastic field, shear/rotation, placement, raster) runs per image
inside one ``prange`` loop, so no (n × points) temporaries are built in numpy.

Pixel (row i, column j) has its centre at (x, y) = (j + 0.5, i + 0.5).

Genome columns shared by both renderers (see ``geometry.GENE_COLUMNS``): 0 template, 1 width/bold,
2 soft, 3 slant, 4 rotation, 5 aspect, 6 size, 7 tx, 8 ty, 9-16 elastic amplitudes, 17+ node jitter.
"""

from __future__ import annotations

import numba as nb
import numpy as np

SIZE = 28
NOMINAL = 20.0
C_WIDTH, C_SOFT, C_SLANT, C_ROT, C_ASPECT, C_SIZE, C_TX, C_TY, C_ELASTIC, C_JITTER = 1, 2, 3, 4, 5, 6, 7, 8, 9, 17


@nb.njit(cache=True, inline="always")
def _seg_d2(cx: float, cy: float, x0: float, y0: float, dx: float, dy: float, inv_l2: float) -> float:
    t = ((cx - x0) * dx + (cy - y0) * dy) * inv_l2
    t = min(max(t, 0.0), 1.0)
    ex = cx - x0 - t * dx
    ey = cy - y0 - t * dy
    return ex * ex + ey * ey


@nb.njit(cache=True, inline="always")
def _profile(edge: float, soft: float) -> float:
    """Smoothstep intensity for signed distance ``edge`` (> 0 inside the ink) over a band ``soft``."""
    u = min(max(edge / soft + 0.5, 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


@nb.njit(cache=True, inline="always")
def _stamp_segment(d2: np.ndarray, h: int, w: int, xa: float, ya: float, xb: float, yb: float,
                   reach: float) -> None:
    """Lower the squared distances ``d2`` (h·w, row-major) to segment (xa, ya)–(xb, yb) over the
    segment's bounding box grown by ``reach``: pixels farther away get no ink, so visiting only that
    box keeps the cost per segment, not per image. Inlined at numba IR level, so each renderer
    compiles it with its own ``fastmath``/``parallel`` flags, as when the loop was written out."""
    dx, dy = xb - xa, yb - ya
    l2 = dx * dx + dy * dy
    inv = 1.0 / l2 if l2 > 1e-12 else 0.0
    c0 = max(int(np.floor(min(xa, xb) - reach)), 0)
    c1 = min(int(np.ceil(max(xa, xb) + reach)), w - 1)
    r0 = max(int(np.floor(min(ya, yb) - reach)), 0)
    r1 = min(int(np.ceil(max(ya, yb) + reach)), h - 1)
    for py in range(r0, r1 + 1):
        cy = py + 0.5
        for px in range(c0, c1 + 1):
            v = _seg_d2(px + 0.5, cy, xa, ya, dx, dy, inv)
            if v < d2[py * w + px]:
                d2[py * w + px] = v


@nb.njit(cache=True)
def _shape(pts: np.ndarray, n: int, g: np.ndarray, ew: np.ndarray, ep: np.ndarray) -> None:
    """In place, glyph units: elastic field, x-scale e^aspect, shear, rotation (see geometry.py)."""
    asp = np.exp(g[C_ASPECT])
    sl, c, s = g[C_SLANT], np.cos(g[C_ROT]), np.sin(g[C_ROT])
    for p in range(n):
        x, y = pts[p, 0], pts[p, 1]
        dx, dy = 0.0, 0.0
        for k in range(4):
            ph = ew[k, 0] * x + ew[k, 1] * y + ep[k]
            dx += g[C_ELASTIC + k] * np.sin(ph)
            dy += g[C_ELASTIC + 4 + k] * np.cos(ph)
        x = (x + dx) * asp
        y = y + dy
        x = x - sl * y
        pts[p, 0] = c * x - s * y
        pts[p, 1] = s * x + c * y


@nb.njit(cache=True)
def _placement(pts: np.ndarray, n: int, pad: float, g: np.ndarray, mnist: bool, cx: float, cy: float,
               ) -> tuple[float, float, float]:
    """(scale px/unit, x0, y0) so that pixel = (p − (x0, y0)) · scale + 14 (+ translation for 'free').

    mnist: the padded bounding box fits 20 px, and (cx, cy) — the ink's centre of mass in glyph
    units — lands on the image centre. free: size/translation genes, bounding-box centre at 14 + t."""
    xmin, xmax, ymin, ymax = 1e9, -1e9, 1e9, -1e9
    for p in range(n):
        xmin = min(xmin, pts[p, 0])
        xmax = max(xmax, pts[p, 0])
        ymin = min(ymin, pts[p, 1])
        ymax = max(ymax, pts[p, 1])
    if mnist:
        ext = max(xmax - xmin, ymax - ymin) + 2 * pad
        return NOMINAL / max(ext, 1e-6), cx, cy
    sc = NOMINAL * np.exp(g[C_SIZE])
    return sc, 0.5 * (xmin + xmax) - g[C_TX] / sc, 0.5 * (ymin + ymax) - g[C_TY] / sc


@nb.njit(parallel=True, cache=True, fastmath=True)
def render_strokes(genome: np.ndarray, nodes: np.ndarray, nnodes: np.ndarray, basis: np.ndarray,
                   npts: np.ndarray, pairs: np.ndarray, nseg: np.ndarray, ew: np.ndarray, ep: np.ndarray,
                   mnist: bool, out: np.ndarray) -> None:
    """Stroke digits. Template tables are padded: nodes (T, K, 2), basis (T, P, K), pairs (T, S, 2)."""
    n = genome.shape[0]
    h, w = out.shape[1], out.shape[2]
    P = basis.shape[1]
    for i in nb.prange(n):
        g = genome[i]
        t = int(g[0])
        K, np_, ns = nnodes[t], npts[t], nseg[t]
        ctrl = np.empty((K, 2))
        for k in range(K):
            ctrl[k, 0] = nodes[t, k, 0] + g[C_JITTER + 2 * k]
            ctrl[k, 1] = nodes[t, k, 1] + g[C_JITTER + 2 * k + 1]
        pts = np.zeros((P, 2))
        for p in range(np_):
            for k in range(K):
                b = basis[t, p, k]
                if b != 0.0:
                    pts[p, 0] += b * ctrl[k, 0]
                    pts[p, 1] += b * ctrl[k, 1]
        _shape(pts, np_, g, ew, ep)
        r_units = g[C_WIDTH] / (2.0 * NOMINAL)
        # skeleton centre of mass: length-weighted segment midpoints (= pixel COM up to overlaps/AA)
        mx, my, tl = 0.0, 0.0, 0.0
        for k in range(ns):
            a, c = pairs[t, k, 0], pairs[t, k, 1]
            ln = np.sqrt((pts[c, 0] - pts[a, 0]) ** 2 + (pts[c, 1] - pts[a, 1]) ** 2)
            mx += ln * 0.5 * (pts[a, 0] + pts[c, 0])
            my += ln * 0.5 * (pts[a, 1] + pts[c, 1])
            tl += ln
        tl = max(tl, 1e-12)
        sc, x0, y0 = _placement(pts, np_, r_units, g, mnist, mx / tl, my / tl)
        for p in range(np_):
            pts[p, 0] = (pts[p, 0] - x0) * sc + 0.5 * w
            pts[p, 1] = (pts[p, 1] - y0) * sc + 0.5 * h
        r, s = r_units * sc, g[C_SOFT]
        reach = r + 0.5 * s + 0.5
        d2 = np.full(h * w, 1e9, dtype=np.float32)
        for k in range(ns):
            a, c = pairs[t, k, 0], pairs[t, k, 1]
            _stamp_segment(d2, h, w, pts[a, 0], pts[a, 1], pts[c, 0], pts[c, 1], reach)
        lim = reach * reach
        for p in range(h * w):
            val = _profile(r - np.sqrt(d2[p]), s) if d2[p] < lim else 0.0
            out[i, p // w, p % w] = np.uint8(val * 255.0 + 0.5)


@nb.njit(parallel=True, cache=True, fastmath=True)
def render_outlines(genome: np.ndarray, edges: np.ndarray, nedge: np.ndarray, centroid: np.ndarray,
                    ew: np.ndarray, ep: np.ndarray, mnist: bool, out: np.ndarray) -> None:
    """Filled glyph outlines (even-odd rule); edges (T, E, 4) in glyph units, centroid (T, 2).

    Signed distance to the outline (negative inside) is shifted by the 'bold' gene (column 1, px at
    the nominal height; > 0 thickens, < 0 thins — a font stroke parameter) and mapped through the
    same smoothstep profile as strokes."""
    n = genome.shape[0]
    h, w = out.shape[1], out.shape[2]
    for i in nb.prange(n):
        g = genome[i]
        t = int(g[0])
        ne = nedge[t]
        pts = np.empty((2 * ne + 1, 2))
        for k in range(ne):
            pts[2 * k, 0], pts[2 * k, 1] = edges[t, k, 0], edges[t, k, 1]
            pts[2 * k + 1, 0], pts[2 * k + 1, 1] = edges[t, k, 2], edges[t, k, 3]
        pts[2 * ne, 0], pts[2 * ne, 1] = centroid[t, 0], centroid[t, 1]
        _shape(pts, 2 * ne + 1, g, ew, ep)
        bold_units = g[C_WIDTH] / NOMINAL
        sc, x0, y0 = _placement(pts, 2 * ne, max(bold_units, 0.0), g, mnist, pts[2 * ne, 0], pts[2 * ne, 1])
        for p in range(2 * ne):
            pts[p, 0] = (pts[p, 0] - x0) * sc + 0.5 * w
            pts[p, 1] = (pts[p, 1] - y0) * sc + 0.5 * h
        b, s = bold_units * sc, g[C_SOFT]
        reach = abs(b) + 0.5 * s + 0.5
        # unsigned distance to the outline, stamped edge by edge over each edge's bounding box
        d2 = np.full(h * w, 1e9, dtype=np.float32)
        for k in range(ne):
            _stamp_segment(d2, h, w, pts[2 * k, 0], pts[2 * k, 1], pts[2 * k + 1, 0], pts[2 * k + 1, 1], reach)
        # inside test by even-odd scanline parity: toggle where an edge crosses the row's centre line
        flip = np.zeros(w + 1, dtype=np.uint8)
        lim = reach * reach
        for py in range(h):
            cy = py + 0.5
            flip[:] = 0
            for k in range(ne):
                ya, yb = pts[2 * k, 1], pts[2 * k + 1, 1]
                if (ya > cy) != (yb > cy):
                    xa, xb = pts[2 * k, 0], pts[2 * k + 1, 0]
                    xc = xa + (cy - ya) * (xb - xa) / (yb - ya)
                    j = min(max(int(np.floor(xc + 0.5)), 0), w)
                    flip[j] ^= 1
            inside = False
            for px in range(w):
                if flip[px]:
                    inside = not inside
                dd = d2[py * w + px]
                if dd >= lim:
                    out[i, py, px] = 255 if inside else 0
                else:
                    sd = -np.sqrt(dd) if inside else np.sqrt(dd)
                    out[i, py, px] = np.uint8(_profile(b - sd, s) * 255.0 + 0.5)
