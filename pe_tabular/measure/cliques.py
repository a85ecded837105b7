"""Families of at most two parents (a degree-2 Bayesian network) chosen and fitted from DP measurements.

A tree (Chow & Liu 1968; MST, McKenna et al. 2021) holds every column's dependence on ONE other column, so a
three-way interaction with no two-way trace (y = a XOR b) is lost whatever the budget. PrivBayes (Zhang et al.,
"PrivBayes: private data release via Bayesian networks", TODS 2017) lets each column condition on a *set* of
earlier columns (degree k), picked greedily by a DP score of how much the set tells about the column; AIM
(McKenna et al., "AIM: an adaptive and iterative mechanism for differentially private synthetic data", VLDB
2022) picks the marginals to measure by how badly the current model answers them, and keeps one only when that
error beats what measuring it would cost in noise. This module is the wing-free part of our take on both:

- :func:`bfs_order` fixes the column order (the tree's breadth-first order, so every tree parent comes first);
- :func:`candidates` lists, per column, the parent pairs worth a score (its tree parent with one more earlier
  column, or for a column the tree left alone, two earlier columns), a public function of released values;
- :func:`conditional_gap` is the score: the L1 distance of a three-way count table from conditional
  independence (what the tree, given perfect pair tables, would get wrong on it), with L2-sensitivity
  :data:`GAP_SENSITIVITY` per candidate;
- :func:`choose` keeps, per column, the best candidate whose noisy score clears the no-interaction level and
  the noise (AIM's "worth measuring" test, in our units);
- :func:`fit_to_margins` makes a measured three-way table agree with the one-way margins (IPF, Deming & Stephan
  1940), the consistency step of the fit.

Everything here is post-processing of released values, except :func:`conditional_gap`, which the caller runs on
exact private counts and releases only through the release path with noise scaled to
``GAP_SENSITIVITY · √(number of candidates)``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

N = TypeVar("N", bound=Hashable)

#: L1 sensitivity of :func:`conditional_gap` to adding or removing one row (proof in its docstring)
GAP_SENSITIVITY = 4.0


def bfs_order(names: Sequence[N], edges: Iterable[tuple[N, N]], root: N) -> tuple[list[N], dict[N, N]]:
    """Every column once, breadth first over the forest ``edges`` from ``root`` and then from each column not
    reached yet (in ``names``' order), and each column's parent in that forest (roots have none)."""
    adj: dict[N, list[N]] = {n: [] for n in names}
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    order: list[N] = []
    parent: dict[N, N] = {}
    seen: set[N] = set()
    for r in [root, *[n for n in names if n != root]]:
        if r in seen:
            continue
        seen.add(r)
        queue = deque([r])
        while queue:
            a = queue.popleft()
            order.append(a)
            for b in adj[a]:
                if b not in seen:
                    seen.add(b)
                    parent[b] = a
                    queue.append(b)
    return order, parent


@dataclass(frozen=True)
class Candidate(Generic[N]):
    """Child ``child`` with parents (``given``, ``other``). ``conditioned``: the score measures what ``other``
    adds once ``given`` (the child's tree parent) is known; otherwise what the pair adds to nothing (a column
    the tree left without a parent)."""

    child: N
    given: N
    other: N
    conditioned: bool

    @property
    def key(self) -> tuple[N, N, N]:
        """The three-way marginal this family needs: (given, other, child)."""
        return (self.given, self.other, self.child)


def candidates(order: Sequence[N], parent: dict[N, N], strength: dict[tuple[N, N], float],
               per_column: int = 3) -> list[Candidate[N]]:
    """Parent pairs worth scoring, at most ``per_column`` per column, all among earlier columns (so any choice
    is a DAG). A column with a tree parent p is offered (p, b) for the ``per_column`` earlier b it is most
    associated with by ``strength`` (released pair mutual information); a column without one is offered the
    best pairs of its ``per_column`` + 1 strongest earlier partners. The first two columns get none.

    Few candidates keep the score release's noise low (its L2 sensitivity grows as √candidates); which ones is a
    function of released values only, so the list is public."""
    def s(a: N, b: N) -> float:
        return strength.get((a, b), strength.get((b, a), 0.0))

    out: list[Candidate[N]] = []
    for i, x in enumerate(order):
        earlier = list(order[:i])
        if len(earlier) < 2:
            continue
        ranked = sorted(earlier, key=lambda b: (-s(x, b), earlier.index(b)))
        if x in parent:
            p = parent[x]
            out += [Candidate(x, p, b, True) for b in [b for b in ranked if b != p][:per_column]]
        else:
            top = ranked[:per_column + 1]
            pairs = sorted(((a, b) for j, a in enumerate(top) for b in top[j + 1:]),
                           key=lambda ab: (-(s(x, ab[0]) + s(x, ab[1])), top.index(ab[0]), top.index(ab[1])))
            out += [Candidate(x, a, b, False) for a, b in pairs[:per_column]]
    return out


def conditional_gap(table: np.ndarray, conditioned: bool) -> float:
    """L1 distance between a (given, other, child) count table N and its fit under "child ⊥ other | given"
    (``conditioned``) or "child ⊥ (given, other)": Σ |N − N̂| with N̂ = N(g,x)·N(g,o)/N(g) (resp. N(x)·N(g,o)/n).

    This is what a model holding the child's dependence on ``given`` alone (a tree edge), even measured
    exactly, misses on this triple. y = a XOR b on n rows gives n; independent columns give only sampling
    noise, about √(2/π · cells · n) at most (:func:`null_gap`).

    Sensitivity: adding one row at (x₀, b₀) changes one slice (conditioned) or the whole table. There, N moves
    by 1 in L1; with m rows in the slice and p, q its margins as distributions, N̂ = m·p⊗q becomes
    (m·p + e_x₀)⊗(m·q + e_b₀)/(m + 1), and the difference is [−m·p⊗q + m·p⊗e_b₀ + e_x₀⊗m·q + e_x₀⊗e_b₀]/(m + 1),
    of L1 norm at most (3m + 1)/(m + 1) < 3 (an empty slice: 1). The distance moves by less than 1 + 3 =
    :data:`GAP_SENSITIVITY` (removal is the same step backwards)."""
    t = np.asarray(table, float)
    if not conditioned:
        t = t.reshape(1, -1, t.shape[-1])  # one slice: (given, other) flattened
    m = t.sum(axis=(1, 2), keepdims=True)
    gx = t.sum(axis=1, keepdims=True)
    go = t.sum(axis=2, keepdims=True)
    fit = np.divide(gx * go, m, out=np.zeros(np.broadcast_shapes(gx.shape, go.shape)), where=m > 0)
    return float(np.abs(t - fit).sum())


def null_gap(cells: int, n_rows: float) -> float:
    """An upper bound on :func:`conditional_gap`'s expected value without interaction (sampling noise only):
    Σ E|N − N̂| ≈ √(2/π) Σ √N̂ ≤ √(2/π · cells · n) (Cauchy–Schwarz)."""
    return math.sqrt(2.0 / math.pi * max(cells, 1) * max(n_rows, 0.0))


def choose(cands: Sequence[Candidate[N]], noisy: np.ndarray, cells: Sequence[int], sigma: float, n_rows: float,
           z: float = 3.0, min_share: float = 0.02) -> dict[N, Candidate[N]]:
    """Per child, its best candidate by noisy score, kept only where the score clears the no-interaction level
    (:func:`null_gap`), ``z`` standard deviations of the release's noise, and ``min_share`` of the rows (an
    interaction too small to move a synthetic table is not worth a measurement's noise). A public function of
    the released scores."""
    best: dict[N, tuple[float, Candidate[N]]] = {}
    for c, score, k in zip(cands, np.asarray(noisy, float), cells):
        gain = score - null_gap(k, n_rows) - z * sigma
        if gain > min_share * n_rows and (c.child not in best or score > best[c.child][0]):
            best[c.child] = (score, c)
    return {x: c for x, (_, c) in best.items()}


def worth_scoring(sigma: float, n_rows: float, cells: int, z: float = 3.0) -> bool:
    """Whether even the strongest interaction a table of ``n_rows`` can hold (XOR: a gap of n) could clear
    :func:`choose`'s bar at this noise: if not, the score release would only spend budget (a public test)."""
    return n_rows - null_gap(cells, n_rows) - z * sigma > 0


def fit_to_margins(table: np.ndarray, margins: Sequence[np.ndarray], iterations: int = 100,
                   support: float = 1e-6) -> np.ndarray:
    """A non-negative table scaled by iterative proportional fitting (Deming & Stephan 1940) until its margin
    on every axis is ``margins[axis]`` (distributions), as a distribution. IPF keeps the table's interaction
    (its odds ratios) and zero pattern; a tiny ``support`` of the independent table lets a margin cell the
    table missed receive mass. The consistency step of the fit: each measurement is noisy on its own, the
    one-way margins are the more precise ones, so the family tables follow them."""
    t = np.clip(np.asarray(table, float), 0, None)
    ms = [np.asarray(m, float) / max(float(np.sum(m)), 1e-300) for m in margins]
    indep = ms[0]
    for m in ms[1:]:
        indep = np.multiply.outer(indep, m)
    t = (1 - support) * t / max(t.sum(), 1e-300) + support * indep
    for _ in range(iterations):
        for ax, m in enumerate(ms):
            other = tuple(i for i in range(t.ndim) if i != ax)
            cur = t.sum(axis=other)
            f = np.divide(m, cur, out=np.zeros_like(m), where=cur > 0)
            shape = [1] * t.ndim
            shape[ax] = -1
            t = t * f.reshape(shape)
    return t / max(t.sum(), 1e-300)


def is_dag(order: Sequence[N], parents: dict[N, Sequence[N]]) -> bool:
    """Every parent comes before its child in ``order`` (so the families form a DAG)."""
    pos = {n: i for i, n in enumerate(order)}
    return all(pos[p] < pos[x] for x, ps in parents.items() for p in ps)
