"""MST (McKenna, Miklau & Sheldon 2021, "Winning the NIST Contest: a scalable and general approach
to differentially private synthetic data", JPC 11(3)) on mbi 2.0 — our own code of the mechanism.

Three equal thirds of a ρ-zCDP budget (zcdp.py converts (ε, δ) to ρ):

1. **1-way marginals** of every column, Gaussian noise; the d measurements share ρ/3 (the stacked
   vector has L2 sensitivity √d, so each gets σ₁ = √d·√(3/(2ρ))).
2. **Domain compression** (post-processing): values whose noisy count is < 3σ₁ are merged into one
   "other" value per column; their noisy counts are summed (mbi's ``LinearMeasurement.compress``
   re-weights the merged cell so its noise stays σ₁).
3. **Selection** of a maximum spanning tree over the 2-way marginals: the d−1 edges are picked one
   at a time by the exponential mechanism (ρ/3 in all: ε₀ = √(8·(ρ/3)/(d−1)) each), scoring a pair by
   the L1 distance between its true 2-way marginal and the independent estimate from step 1
   (sensitivity 1 under add/remove-one-row), among pairs that do not close a cycle (Kruskal).
4. **2-way marginals** of the tree's d−1 edges, Gaussian noise, sharing the last ρ/3.
5. **Estimation** of a graphical model from all noisy measurements (mbi ``MirrorDescent``), sampling
   (mbi ``synthetic_data``, 'round' method), and decompression (the "other" value → one of its
   merged values, uniformly).

Privacy: ρ/3 + ρ/3 + ρ/3 = ρ-zCDP → (ε, δ) by CKS 2020. Read from the private data: nothing but the
noisy measurements above; the domain (bins, categories) is the public config.yml.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .zcdp import cdp_rho


@dataclass
class MSTResult:
    codes: dict[str, np.ndarray]  # synthetic rows as public-bin codes (original domain)
    rho: float
    tree: list[tuple[str, str]]
    compressed: dict[str, int] = field(default_factory=dict)  # column -> values merged into "other"
    sigmas: dict[str, float] = field(default_factory=dict)


def _silence_mbi() -> None:
    import warnings

    warnings.filterwarnings("ignore", message="JAX is running in float32", category=UserWarning)
    warnings.filterwarnings("ignore", message="JAX persistent compilation cache", category=UserWarning)


def measure(data: Any, cliques: list[tuple[str, ...]], sigma: float, rng: np.random.Generator) -> list[Any]:
    """Gaussian measurements (sd ``sigma`` each) of the count vectors of ``cliques``."""
    from mbi import LinearMeasurement

    out = []
    for cl in cliques:
        x = np.asarray(data.project(cl).datavector(), dtype=float)
        out.append(LinearMeasurement(x + rng.normal(0.0, sigma, x.size), cl, sigma))
    return out


def compression_map(one_way: list[Any], threshold: float) -> dict[str, np.ndarray]:
    """Per column, a map value -> compressed value that merges the values with noisy count < threshold."""
    maps = {}
    for m in one_way:
        y = np.asarray(m.noisy_measurement)
        keep = y >= threshold
        if keep.all():
            continue
        mapping = np.full(y.size, int(keep.sum()), dtype=np.int64)
        mapping[keep] = np.arange(int(keep.sum()))
        maps[m.clique[0]] = mapping
    return maps


def exponential_mechanism(scores: np.ndarray, eps0: float, sensitivity: float, rng: np.random.Generator) -> int:
    """Index drawn with P ∝ exp(eps0 · score / (2 · sensitivity))."""
    z = 0.5 * eps0 / sensitivity * np.asarray(scores, float)
    p = np.exp(z - z.max())
    return int(rng.choice(len(p), p=p / p.sum()))


def select_tree(data: Any, one_way: list[Any], rho_select: float, rng: np.random.Generator,
                iters: int = 1000) -> list[tuple[str, str]]:
    """The MST selection step: d−1 exponential mechanisms, each costing rho_select/(d−1)."""
    from mbi.estimation import MirrorDescent

    attrs = list(data.domain.attributes)
    indep = MirrorDescent().estimate(data.domain, one_way, iters=iters)
    score = {}
    for a, b in itertools.combinations(attrs, 2):
        x = np.asarray(data.project((a, b)).datavector(), float)
        xhat = np.asarray(indep.project((a, b)).datavector(), float)
        score[(a, b)] = float(np.abs(x - xhat).sum())
    return private_spanning_tree(score, attrs, rho_select, rng)


def private_spanning_tree(score: dict[tuple[str, str], float], attrs: list[str], rho_select: float,
                          rng: np.random.Generator) -> list[tuple[str, str]]:
    """MST's Kruskal loop: d−1 exponential mechanisms (score sensitivity 1), each costing rho_select/(d−1)
    in zCDP, each choosing among the pairs that join two components (union-find with path halving)."""
    parent = {a: a for a in attrs}

    def root(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    eps0 = math.sqrt(8.0 * rho_select / (len(attrs) - 1))
    tree = []
    for _ in range(len(attrs) - 1):
        cand = [e for e in score if root(e[0]) != root(e[1])]
        e = cand[exponential_mechanism(np.array([score[c] for c in cand]), eps0, 1.0, rng)]
        tree.append(e)
        parent[root(e[0])] = root(e[1])
    return tree


def decompress(codes: dict[str, np.ndarray], maps: dict[str, np.ndarray],
               rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = dict(codes)
    for a, mapping in maps.items():
        other = int(mapping.max())
        merged = np.flatnonzero(mapping == other)
        col = np.asarray(codes[a], np.int64)
        inv = np.flatnonzero(mapping != other)  # compressed k -> original value, for k < other
        res = np.empty_like(col)
        kept = col < other
        res[kept] = inv[col[kept]]
        res[~kept] = merged[rng.integers(0, len(merged), int((~kept).sum()))]
        out[a] = res
    return out


def mst(codes: dict[str, np.ndarray], sizes: dict[str, int], epsilon: float, delta: float,
        rng: np.random.Generator, iters: int = 5000, rows: int | None = None, sample_seed: int = 0) -> MSTResult:
    """Run MST on private public-bin ``codes`` (column -> int array) over the public domain ``sizes``."""
    _silence_mbi()
    from mbi import Dataset, Domain
    from mbi.estimation import MirrorDescent

    rho = cdp_rho(epsilon, delta)
    domain = Domain(list(sizes), [sizes[a] for a in sizes])
    data = Dataset({a: np.asarray(codes[a]) for a in sizes}, domain)
    d = len(sizes)
    base = math.sqrt(3.0 / (2.0 * rho))
    sigma1 = base * math.sqrt(d)
    one_way = measure(data, [(a,) for a in sizes], sigma1, rng)
    maps = compression_map(one_way, 3.0 * sigma1)
    cdata = data.compress(maps) if maps else data
    one_way = [m.compress(maps, domain) for m in one_way]
    tree = select_tree(cdata, one_way, rho / 3.0, rng)
    sigma2 = base * math.sqrt(d - 1)
    two_way = measure(cdata, tree, sigma2, rng)
    model = MirrorDescent().estimate(cdata.domain, one_way + two_way, iters=iters)
    # mbi's sampler draws from NumPy's legacy global generator: seed it (this runs in its own process)
    np.random.seed(sample_seed)  # noqa: NPY002 - the library's own generator
    synth = model.synthetic_data(rows)
    out = decompress({a: np.asarray(synth.data[a]) for a in sizes}, maps, rng)
    return MSTResult(out, rho, tree, {a: int((m == m.max()).sum()) for a, m in maps.items()},
                     {"one_way": sigma1, "two_way": sigma2})
