"""Skeleton templates (allographs) of the ten digits, drawn as Catmull-Rom splines through nodes.

Glyph space: x to the right, y *down*, the digit about one unit high and centred on the origin.
A template is a set of nodes plus strokes (index lists into the nodes, open or closed). Strokes that
meet at a sharp corner share a node, so jittering that node moves both and the joint never breaks.
Sampling a spline is linear in its nodes: ``points = basis @ nodes`` with a fixed basis matrix,
which lets a whole batch of jittered skeletons be evaluated with one ``einsum``.

Several allographs per digit reflect the common ways people write them (open/closed 4, 7 with or
without a crossbar, 1 with or without a flag and base, 2 with or without a loop, ...): the
handwriting variation Private Evolution then reweights by private votes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Template:
    digit: int
    name: str
    nodes: tuple[tuple[float, float], ...]
    strokes: tuple[tuple[tuple[int, ...], bool], ...]  # (node indices, closed)
    subdiv: int = 4  # samples per spline span

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @cached_property
    def node_array(self) -> np.ndarray:
        return np.asarray(self.nodes, dtype=np.float64)

    @cached_property
    def _sampling(self) -> tuple[np.ndarray, np.ndarray]:
        """(basis (P, K), segment index pairs (S, 2)) over all strokes."""
        rows: list[np.ndarray] = []
        segs: list[np.ndarray] = []
        off = 0
        for idx, closed in self.strokes:
            b = _catmull_rom_basis(len(idx), closed, self.subdiv if len(idx) > 2 else 2)
            full = np.zeros((b.shape[0], self.n_nodes))
            np.add.at(full, (slice(None), np.asarray(idx)), b)  # repeated node ids add up
            rows.append(full)
            p = b.shape[0]
            segs.append(np.stack([np.arange(p - 1), np.arange(1, p)], axis=1) + off)
            off += p
        return np.concatenate(rows), np.concatenate(segs).astype(np.int64)

    @property
    def basis(self) -> np.ndarray:
        return self._sampling[0]

    @property
    def segments(self) -> np.ndarray:
        return self._sampling[1]


def _catmull_rom_basis(m: int, closed: bool, subdiv: int) -> np.ndarray:
    """Weights (P, m) of a uniform Catmull-Rom spline through m points, sampled ``subdiv`` times a span.

    Open ends are extended by reflection (P_-1 = 2 P_0 - P_1) so the curve starts and ends on the
    first and last nodes with a natural tangent; closed curves wrap around."""
    if m == 1:
        return np.ones((1, 1))
    spans = m if closed else m - 1
    t = np.arange(subdiv) / subdiv
    # Catmull-Rom (tension 0.5) weights of P_{i-1}, P_i, P_{i+1}, P_{i+2}
    w = 0.5 * np.stack([-t**3 + 2 * t**2 - t, 3 * t**3 - 5 * t**2 + 2, -3 * t**3 + 4 * t**2 + t, t**3 - t**2], 1)
    ext = m + 3
    rows = []
    for s in range(spans):
        for r in range(subdiv):
            row = np.zeros(ext)  # ext index j <-> point j-1 (index 0 = P_-1)
            for q in range(4):
                row[s + q] += w[r, q]
            rows.append(row)
    last = np.zeros(ext)
    last[spans + 1] = 1.0  # the end point (P_0 again when closed)
    rows.append(last)
    e = np.asarray(rows)
    out = np.zeros((e.shape[0], m))
    for j in range(ext):
        p = j - 1
        if closed:
            out[:, p % m] += e[:, j]
        elif p < 0:  # P_-1 = 2 P_0 - P_1
            out[:, 0] += 2 * e[:, j]
            out[:, 1] -= e[:, j]
        elif p >= m:  # P_m = 2 P_{m-1} - P_{m-2} (and beyond: same reflection)
            out[:, m - 1] += 2 * e[:, j]
            out[:, m - 2] -= e[:, j]
        else:
            out[:, p] += e[:, j]
    return out


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int, start: float = 0.0, stop: float = 360.0,
             ) -> list[tuple[float, float]]:
    """Points on an ellipse; angle 0 = top, clockwise on screen (y down)."""
    a = np.deg2rad(np.linspace(start, stop, n, endpoint=stop - start < 360))
    return [(float(cx + rx * np.sin(t)), float(cy - ry * np.cos(t))) for t in a]


def _t(digit: int, name: str, nodes: list[tuple[float, float]], *strokes: tuple[list[int], bool]) -> Template:
    return Template(digit, name, tuple((round(x, 4), round(y, 4)) for x, y in nodes),
                    tuple((tuple(i), c) for i, c in strokes))


def _r(n: int) -> list[int]:
    return list(range(n))


def _build() -> tuple[Template, ...]:
    T: list[Template] = []
    # 0 -------------------------------------------------------------------------------------------
    T.append(_t(0, "oval", _ellipse(0, 0, 0.3, 0.5, 8), (_r(8), True)))
    T.append(_t(0, "oval-overlap", _ellipse(0, 0, 0.3, 0.5, 11, -20, 380), (_r(11), False)))
    T.append(_t(0, "egg", [(0.05, -0.5), (-0.2, -0.38), (-0.3, -0.05), (-0.2, 0.38), (0.02, 0.5),
                           (0.24, 0.32), (0.3, -0.05), (0.24, -0.38)], (_r(8), True)))
    # 1 -------------------------------------------------------------------------------------------
    T.append(_t(1, "bar", [(0.0, -0.5), (0.0, 0.0), (0.0, 0.5)], ([0, 1, 2], False)))
    T.append(_t(1, "flag", [(-0.17, -0.3), (0.0, -0.5), (0.0, 0.0), (0.0, 0.5)], ([0, 1], False), ([1, 2, 3], False)))
    T.append(_t(1, "flag-base", [(-0.17, -0.3), (0.0, -0.5), (0.0, 0.0), (0.0, 0.5), (-0.17, 0.5), (0.17, 0.5)],
                ([0, 1], False), ([1, 2, 3], False), ([4, 3, 5], False)))
    # 2 -------------------------------------------------------------------------------------------
    T.append(_t(2, "plain", [(-0.26, -0.28), (-0.05, -0.5), (0.22, -0.4), (0.22, -0.12), (-0.05, 0.18),
                             (-0.28, 0.5), (0.02, 0.49), (0.3, 0.5)],
                ([0, 1, 2, 3, 4, 5], False), ([5, 6, 7], False)))
    T.append(_t(2, "loop", [(-0.26, -0.28), (-0.05, -0.5), (0.22, -0.4), (0.22, -0.12), (-0.02, 0.16),
                            (-0.2, 0.34), (-0.26, 0.48), (-0.1, 0.5), (-0.06, 0.36), (0.1, 0.44), (0.3, 0.48)],
                (_r(11), False)))
    T.append(_t(2, "z", [(-0.24, -0.4), (0.04, -0.5), (0.24, -0.36), (-0.28, 0.5), (0.3, 0.48)],
                ([0, 1, 2], False), ([2, 3], False), ([3, 4], False)))
    T.append(_t(2, "swan", [(-0.26, -0.26), (-0.04, -0.5), (0.22, -0.38), (0.18, -0.06), (-0.08, 0.22),
                            (-0.26, 0.46), (0.0, 0.42), (0.28, 0.5)], (_r(8), False)))
    T.append(_t(2, "curly", [(-0.26, -0.3), (0.0, -0.5), (0.25, -0.32), (0.1, 0.0), (-0.2, 0.3),
                             (-0.24, 0.48), (0.05, 0.45), (0.3, 0.5)],
                (_r(8), False)))
    # 3 -------------------------------------------------------------------------------------------
    T.append(_t(3, "round", [(-0.25, -0.36), (0.0, -0.5), (0.22, -0.34), (0.12, -0.1), (-0.06, -0.04),
                             (0.2, 0.06), (0.27, 0.28), (0.02, 0.5), (-0.27, 0.38)],
                ([0, 1, 2, 3, 4], False), ([4, 5, 6, 7, 8], False)))
    T.append(_t(3, "flat-top", [(-0.24, -0.5), (0.24, -0.5), (-0.04, -0.06), (0.24, 0.08), (0.24, 0.34),
                                (0.0, 0.5), (-0.26, 0.38)],
                ([0, 1], False), ([1, 2], False), ([2, 3, 4, 5, 6], False)))
    T.append(_t(3, "wide-top", [(-0.3, -0.3), (-0.06, -0.5), (0.22, -0.42), (0.24, -0.2), (-0.02, -0.02),
                                (0.26, 0.14), (0.24, 0.4), (0.0, 0.5), (-0.3, 0.42)],
                ([0, 1, 2, 3, 4], False), ([4, 5, 6, 7, 8], False)))
    T.append(_t(3, "smooth", [(-0.24, -0.38), (0.02, -0.5), (0.22, -0.32), (0.0, -0.05), (0.27, 0.24),
                              (0.02, 0.5), (-0.26, 0.36)],
                (_r(7), False)))
    # 4 -------------------------------------------------------------------------------------------
    T.append(_t(4, "closed", [(0.12, -0.5), (-0.3, 0.15), (0.3, 0.15), (0.12, 0.5)],
                ([0, 1], False), ([1, 2], False), ([0, 3], False)))
    T.append(_t(4, "open", [(-0.22, -0.5), (-0.26, 0.1), (0.3, 0.1), (0.16, -0.36), (0.16, 0.5)],
                ([0, 1], False), ([1, 2], False), ([3, 4], False)))
    T.append(_t(4, "open-slant", [(-0.14, -0.5), (-0.3, 0.08), (0.3, 0.04), (0.2, -0.46), (0.12, 0.5)],
                ([0, 1], False), ([1, 2], False), ([3, 4], False)))
    T.append(_t(4, "closed-tall", [(0.16, -0.5), (0.12, -0.34), (-0.3, 0.16), (0.32, 0.12), (0.08, 0.5)],
                ([1, 2], False), ([2, 3], False), ([0, 1, 4], False)))
    T.append(_t(4, "curved-open", [(-0.16, -0.5), (-0.26, -0.06), (-0.1, 0.1), (0.3, 0.06), (0.2, -0.4),
                                   (0.14, 0.5)], ([0, 1, 2, 3], False), ([4, 5], False)))
    # 5 -------------------------------------------------------------------------------------------
    T.append(_t(5, "standard", [(0.26, -0.5), (-0.18, -0.5), (-0.22, -0.05), (0.1, -0.12), (0.28, 0.16),
                                (0.06, 0.5), (-0.26, 0.38)],
                ([0, 1], False), ([1, 2], False), ([2, 3, 4, 5, 6], False)))
    T.append(_t(5, "round-belly", [(0.24, -0.5), (-0.14, -0.48), (-0.24, -0.06), (0.16, -0.08), (0.26, 0.25),
                                   (0.0, 0.5), (-0.28, 0.32)],
                ([0, 1], False), ([1, 2], False), ([2, 3, 4, 5, 6], False)))
    T.append(_t(5, "one-stroke", [(-0.14, -0.5), (-0.2, -0.06), (0.14, -0.1), (0.28, 0.2), (0.04, 0.5),
                                  (-0.26, 0.36), (0.28, -0.5)],
                ([0, 1], False), ([1, 2, 3, 4, 5], False), ([0, 6], False)))
    T.append(_t(5, "s-like", [(0.28, -0.48), (-0.06, -0.5), (-0.22, -0.36), (-0.16, -0.12), (0.2, -0.02),
                              (0.26, 0.3), (0.0, 0.5), (-0.28, 0.36)], (_r(8), False)))
    # 6 -------------------------------------------------------------------------------------------
    T.append(_t(6, "loop", [(0.2, -0.5), (-0.12, -0.25), (-0.26, 0.18), (0.0, 0.5), (0.25, 0.25),
                            (0.02, 0.0), (-0.24, 0.2)], (_r(7), False)))
    T.append(_t(6, "straight", [(0.14, -0.5), (-0.2, 0.05), (-0.22, 0.34), (0.02, 0.5), (0.24, 0.3),
                                (0.04, 0.06), (-0.2, 0.22)], (_r(7), False)))
    T.append(_t(6, "small-loop", [(0.22, -0.5), (-0.04, -0.3), (-0.22, 0.1), (-0.12, 0.46), (0.14, 0.44),
                                  (0.18, 0.18), (-0.04, 0.12), (-0.2, 0.3)], (_r(8), False)))
    T.append(_t(6, "big-loop", [(0.16, -0.5), (-0.14, -0.2), (-0.28, 0.16), (-0.1, 0.48), (0.2, 0.4),
                                (0.26, 0.1), (0.0, -0.08), (-0.26, 0.06)], (_r(8), False)))
    # 7 -------------------------------------------------------------------------------------------
    T.append(_t(7, "plain", [(-0.28, -0.5), (0.28, -0.5), (0.1, -0.05), (-0.04, 0.5)],
                ([0, 1], False), ([1, 2, 3], False)))
    T.append(_t(7, "crossbar", [(-0.28, -0.5), (0.28, -0.5), (0.1, -0.05), (-0.04, 0.5), (-0.1, 0.0), (0.26, 0.0)],
                ([0, 1], False), ([1, 2, 3], False), ([4, 5], False)))
    T.append(_t(7, "hooked", [(-0.28, -0.36), (-0.26, -0.5), (0.28, -0.5), (0.06, -0.05), (-0.02, 0.5)],
                ([0, 1], False), ([1, 2], False), ([2, 3, 4], False)))
    T.append(_t(7, "curved", [(-0.28, -0.46), (0.0, -0.5), (0.28, -0.5), (0.06, -0.1), (-0.08, 0.5)],
                ([0, 1, 2], False), ([2, 3, 4], False)))
    # 8 -------------------------------------------------------------------------------------------
    T.append(_t(8, "figure", [(0.2, -0.38), (0.0, -0.5), (-0.2, -0.36), (0.0, -0.04), (0.25, 0.24),
                              (0.0, 0.5), (-0.25, 0.24), (0.0, -0.04), (0.2, -0.3), (0.08, -0.48)],
                (_r(10), False)))
    T.append(_t(8, "two-loops", _ellipse(0, -0.27, 0.19, 0.23, 6) + _ellipse(0, 0.24, 0.25, 0.26, 7),
                ([0, 1, 2, 3, 4, 5], True), ([6, 7, 8, 9, 10, 11, 12], True)))
    T.append(_t(8, "slanted", [(0.22, -0.4), (0.02, -0.5), (-0.18, -0.34), (0.08, -0.02), (0.2, 0.28),
                               (-0.05, 0.5), (-0.24, 0.26), (0.06, -0.06), (0.24, -0.32), (0.22, -0.4)],
                (_r(10), False)))
    T.append(_t(8, "snowman", _ellipse(0, -0.28, 0.17, 0.22, 6) + _ellipse(0.02, 0.22, 0.25, 0.28, 7, 180, 540)
                [:7], ([0, 1, 2, 3, 4, 5], True), ([6, 7, 8, 9, 10, 11, 12], True)))
    # 9 -------------------------------------------------------------------------------------------
    T.append(_t(9, "loop-stem", _ellipse(-0.02, -0.24, 0.22, 0.26, 6, 90, 450)[:6] + [(0.2, 0.1), (0.16, 0.5)],
                ([0, 1, 2, 3, 4, 5], True), ([0, 6, 7], False)))
    T.append(_t(9, "one-stroke", [(0.2, -0.3), (0.0, -0.5), (-0.22, -0.32), (-0.14, -0.06), (0.1, -0.08),
                                  (0.2, -0.3), (0.18, 0.1), (0.12, 0.5)], (_r(8), False)))
    T.append(_t(9, "curved-stem", _ellipse(-0.02, -0.26, 0.2, 0.24, 6, 90, 450)[:6] + [(0.16, 0.2), (0.0, 0.48),
                                                                                         (-0.2, 0.4)],
                ([0, 1, 2, 3, 4, 5], True), ([0, 6, 7, 8], False)))
    T.append(_t(9, "big-loop", _ellipse(-0.02, -0.14, 0.26, 0.36, 6, 90, 450)[:6] + [(0.22, 0.26), (0.2, 0.5)],
                ([0, 1, 2, 3, 4, 5], True), ([0, 6, 7], False)))
    T.append(_t(9, "open-loop", [(0.22, -0.42), (0.0, -0.5), (-0.22, -0.34), (-0.2, -0.1), (0.02, -0.04),
                                 (0.2, -0.16), (0.24, -0.48), (0.2, 0.5)], (_r(7), False), ([6, 7], False)))
    T.append(_t(1, "long-flag", [(-0.26, -0.2), (0.0, -0.5), (0.0, 0.0), (0.0, 0.5)], ([0, 1], False),
                ([1, 2, 3], False)))
    return tuple(T)


TEMPLATES: tuple[Template, ...] = _build()
MAX_NODES: int = max(t.n_nodes for t in TEMPLATES)


def padded_tables(templates: tuple[Template, ...] = TEMPLATES) -> dict[str, np.ndarray]:
    """Templates as padded arrays for the numba kernel (nodes, nnodes, basis, npts, pairs, nseg)."""
    n, k = len(templates), max(t.n_nodes for t in templates)
    p = max(t.basis.shape[0] for t in templates)
    s = max(t.segments.shape[0] for t in templates)
    out = {"nodes": np.zeros((n, k, 2)), "nnodes": np.zeros(n, np.int64), "basis": np.zeros((n, p, k)),
           "npts": np.zeros(n, np.int64), "pairs": np.zeros((n, s, 2), np.int64), "nseg": np.zeros(n, np.int64)}
    for i, t in enumerate(templates):
        out["nodes"][i, :t.n_nodes] = t.node_array
        out["nnodes"][i] = t.n_nodes
        out["basis"][i, :t.basis.shape[0], :t.n_nodes] = t.basis
        out["npts"][i] = t.basis.shape[0]
        out["pairs"][i, :len(t.segments)] = t.segments
        out["nseg"][i] = len(t.segments)
    return out
BY_DIGIT: dict[int, np.ndarray] = {d: np.array([i for i, t in enumerate(TEMPLATES) if t.digit == d])
                                   for d in range(10)}
