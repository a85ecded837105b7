"""Maximum spanning trees and forests over released pair scores (post-processing).

A Chow–Liu structure keeps the pairs of columns that carry the most information. Which of two equal scores
wins is the caller's decision (each wing pins its own order so its releases stay reproducible), so the
forest takes its candidate edges already ranked, best first; the tree grown from one root takes a score
matrix and breaks ties by the larger (score, i, j), as ``max`` on tuples does.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

import numpy as np

N = TypeVar("N", bound=Hashable)


def max_spanning_forest(ranked: Iterable[tuple[N, N]], nodes: Iterable[N]) -> list[tuple[N, N]]:
    """Kruskal: each edge of ``ranked`` (best first) that joins two components, in that order, as given.

    Edges left out of ``ranked`` (scores below a caller's threshold) are never used, so the result is a
    forest when they disconnect the nodes."""
    root: dict[N, N] = {n: n for n in nodes}

    def find(x: N) -> N:
        while root[x] != x:
            root[x] = root[root[x]]  # path halving
            x = root[x]
        return x

    edges = []
    for a, b in ranked:
        ra, rb = find(a), find(b)
        if ra != rb:
            root[ra] = rb
            edges.append((a, b))
    return edges


def ranked_pairs(weight: np.ndarray, names: Sequence[N], min_weight: float = 0.0) -> list[tuple[N, N]]:
    """Pairs (names[i], names[j]), i < j, of a symmetric score matrix with score ≥ ``min_weight``, best first
    (ties: the larger i, then the larger j, first)."""
    cand = sorted(((weight[i, j], i, j) for i in range(len(names)) for j in range(i + 1, len(names))
                   if weight[i, j] >= min_weight), reverse=True)
    return [(names[i], names[j]) for _, i, j in cand]


def max_spanning_tree(weight: np.ndarray, names: Sequence[N]) -> list[tuple[N, N]]:
    """Prim from ``names[0]`` on a symmetric score matrix: the tree's edges in the order they join, each
    written (node already in the tree, new node), so every edge reads parent first from the root."""
    in_tree, edges = {0}, []
    while len(in_tree) < len(names):
        best = max((weight[i, j], i, j) for i in in_tree for j in range(len(names)) if j not in in_tree)
        edges.append((names[best[1]], names[best[2]]))
        in_tree.add(best[2])
    return edges
