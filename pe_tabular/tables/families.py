"""Degree-2 network structure for the tables pipeline (``structure="bn2"``): which columns get two parents,
their three-way marginals, and their fit (the engine half is ``pe_tabular.measure.cliques``).

PrivBayes-style (Zhang et al., TODS 2017) families scored AIM-style (McKenna et al., VLDB 2022), on top of the
Chow–Liu forest the pipeline already chooses (MST, McKenna et al. 2021):

1. the forest's breadth-first order fixes who may be whose parent (:func:`measure.cliques.bfs_order`);
2. ONE release scores every candidate family (:func:`measure.cliques.candidates`, a handful per column, chosen
   from the released structure tables): the L1 gap of its exact three-way table on the structure release's
   coarse groups from conditional independence, Gaussian noise at L2 sensitivity 4·√candidates; skipped (and
   nothing spent) when even an XOR-strength interaction could not clear the noise;
3. a column whose best noisy gap clears the no-interaction level and the noise (:func:`measure.cliques.choose`)
   gets that parent pair: its three-way marginal is measured at the same σ as every pair and at the finest
   resolution that σ supports (:func:`triple_resolutions`); its tree edge stays measured too, at its own finer
   resolution, and refines the draw inside the three-way table's coarse bins;
4. each three-way marginal is projected onto the simplex and fitted to the combined one-way margins
   (:func:`consistent_triples`), and ``generators.cliques.BayesNetBackend`` samples the network.

Budget (fractions of the synthesizer's pair share, inside the same total ε): :data:`SELECT_SHARE` for the score
release when it is made, the rest split evenly over the measured families (pairs and triples alike).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pe_tabular.measure.cliques import (
    GAP_SENSITIVITY,
    Candidate,
    bfs_order,
    candidates,
    choose,
    conditional_gap,
    fit_to_margins,
    worth_scoring,
)
from pe_tabular.measure.information import mutual_information
from pe_tabular.privacy.accountant import sigma_for_share
from pe_tabular.privacy.release import ReleasePath, Spec
from pe_tabular.tables.marginals import (
    PAIR_BINS,
    PAIR_CELL_SIGMAS,
    Binning,
    Key,
    Resolutions,
    estimate,
    fine_size,
    fine_to_coarse,
    histogram,
    pair_binning,
    to_distribution,
)
from pe_tabular.tables.private import PrivateRows
from pe_tabular.tables.schema import Schema

SELECT_SHARE = 0.06  # of the pair share: the family score release (≈ 2.8 % of μ² at the default pair share)
MIN_TRIPLE_BINS = 3
PER_COLUMN = 3  # candidate families scored per column
SELECT_STREAM = 3000
TRIPLE_STREAM = 3100


@dataclass
class FamilyPlan:
    """The network: its order, the forest's parents, the chosen two-parent families (the tree's edges are all
    measured as pairs too), and the μ² the score release spent."""

    order: list[str]
    parent: dict[str, str]
    chosen: dict[str, Candidate[str]] = field(default_factory=dict)
    rho_spent: float = 0.0

    @property
    def triples(self) -> list[Key]:
        return [self.chosen[x].key for x in self.order if x in self.chosen]


def structure_strength(noisy: np.ndarray, groups: dict[str, np.ndarray], every: Sequence[Key]
                       ) -> dict[Key, float]:
    """Mutual information of every released structure table after the simplex projection (post-processing)."""
    out, pos = {}, 0
    for a, b in every:
        na, nb = int(groups[a].max()) + 1, int(groups[b].max()) + 1
        out[(a, b)] = mutual_information(to_distribution(np.asarray(noisy[pos:pos + na * nb], float)).reshape(na, nb))
        pos += na * nb
    return out


def gap_counts(df: pd.DataFrame, schema: Schema, groups: dict[str, np.ndarray], cands: Sequence[Candidate[str]]
               ) -> np.ndarray:
    """Exact three-way counts of every candidate on coarse groups, concatenated (private; summed over chunks,
    then turned into gaps by :func:`gaps`, which alone is released)."""
    gi = {n: groups[n][Binning.of(schema[n]).index(df[n])] for n in {n for c in cands for n in c.key}}
    parts = []
    for c in cands:
        dims = [int(groups[n].max()) + 1 for n in c.key]
        idx = np.ravel_multi_index(tuple(gi[n] for n in c.key), dims)
        parts.append(np.bincount(idx, minlength=int(np.prod(dims))).astype(float))
    return np.concatenate(parts) if parts else np.zeros(0)


def _dims(groups: dict[str, np.ndarray], c: Candidate[str]) -> list[int]:
    return [int(groups[n].max()) + 1 for n in c.key]


def gaps(counts: np.ndarray, groups: dict[str, np.ndarray], cands: Sequence[Candidate[str]]) -> np.ndarray:
    """Each candidate's :func:`measure.cliques.conditional_gap` from the concatenated counts."""
    out, pos = [], 0
    for c in cands:
        dims = _dims(groups, c)
        size = int(np.prod(dims))
        out.append(conditional_gap(counts[pos:pos + size].reshape(dims), c.conditioned))
        pos += size
    return np.asarray(out, float)


def plan_families(rows: PrivateRows, schema: Schema, path: ReleasePath, noisy: np.ndarray,
                  groups: dict[str, np.ndarray], every: Sequence[Key], tree: Sequence[Key], n_hat: float,
                  rho_pairs: float, root: str) -> FamilyPlan:
    """Choose the two-parent families from ONE charged release of candidate scores (see the module docstring),
    spending ``SELECT_SHARE · rho_pairs`` of μ² on it, or nothing when no interaction could clear its noise."""
    order, parent = bfs_order(schema.names, tree, root)
    plan = FamilyPlan(order, parent)
    cands = candidates(order, parent, structure_strength(noisy, groups, every), PER_COLUMN)
    if not cands or not math.isfinite(rho_pairs) or rho_pairs <= 0:
        return plan
    rho_sel = SELECT_SHARE * rho_pairs
    sens = GAP_SENSITIVITY * math.sqrt(len(cands))
    sigma = sigma_for_share(rho_sel, 1, sens)
    cells = [int(np.prod(_dims(groups, c))) for c in cands]
    if not worth_scoring(sigma, n_hat, max(cells)):
        return plan
    stage = rows.one_pass({0: lambda f: gap_counts(f, schema, groups, cands)}, "family scores")
    scores = path.release(Spec("family_scores", f"{len(cands)} candidate family scores (three-way gaps, structure)",
                               sigma, sens, stream=(0, SELECT_STREAM)),
                          lambda: gaps(stage.counts(0)(), groups, cands))
    plan.rho_spent = rho_sel
    plan.chosen = choose(cands, scores, cells, sigma, n_hat)
    return plan


def triple_resolutions(schema: Schema, keys: Sequence[Key], n_rows: float, sigma: float) -> Resolutions:
    """Per three-way marginal, the finest resolution its noise supports (as ``marginals.pair_resolutions``):
    each column at most PAIR_BINS bins, the largest side coarsened until the cells hold PAIR_CELL_SIGMAS·σ rows
    on average (never below MIN_TRIPLE_BINS, nor above a column's own bins)."""
    cap = max(n_rows, 1.0) / max(PAIR_CELL_SIGMAS * sigma, 1e-9)
    out: Resolutions = {}
    for key in keys:
        ks = [min(fine_size(schema[n]), PAIR_BINS) for n in key]
        while math.prod(ks) > cap:
            i = int(np.argmax(ks))
            low = min(MIN_TRIPLE_BINS, fine_size(schema[key[i]]))
            if ks[i] <= low:
                break
            ks[i] = max(low, int(np.ceil(ks[i] / 1.5)))
        out[tuple(key)] = tuple(ks)  # type: ignore[assignment]
    return out


def measure_triples(rows: PrivateRows, schema: Schema, path: ReleasePath, keys: Sequence[Key], sigma: float,
                    res: Resolutions) -> dict[Key, np.ndarray]:
    """Noisy counts of each three-way marginal (Δ = 1: a row sits in one cell), one charged release each."""
    stage = rows.one_pass({k: (lambda f, k=k: histogram(f, schema, k, res=res)) for k in keys}, "three-way marginals")
    return {k: path.release(Spec(f"triple_{j:03d}", f"marginal {'×'.join(k)}", sigma, stream=(0, TRIPLE_STREAM + j)),
                            stage.counts(k)) for j, k in enumerate(keys)}


def consistent_triples(one_way: dict[str, np.ndarray], noisy: dict[Key, np.ndarray], schema: Schema,
                       res: Resolutions) -> dict[Key, np.ndarray]:
    """Each noisy three-way marginal as a distribution (simplex projection on the cells the schema allows) whose
    margins are the one-way estimates, by IPF (post-processing; the three-way analogue of consistent_pairs)."""
    out = {}
    for key, y in noisy.items():
        ks = res[key]
        dims = [pair_binning(schema[n], k).n_bins for n, k in zip(key, ks)]
        margins = [np.bincount(fine_to_coarse(schema[n], k), weights=one_way[n], minlength=d)[:d]
                   for n, k, d in zip(key, ks, dims)]
        out[key] = fit_to_margins(estimate(y, schema, key, res).reshape(dims), margins).ravel()
    return out
