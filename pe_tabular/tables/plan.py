"""The measurement plan of a tables run: every DP release before the votes, in order, returned as one value.

:func:`measure` takes the private rows, the run's settings (:class:`RunSettings`, derived from the
``PESynthesizer`` arguments before any data is read) and the run's release path, and makes, in this order:

0. the noisy row count every size derives from (privacy rule 6), and from it (a public function of the
   released count and the settings) whether the votes carry signal at all;
1. the class shares (``tables.labels``), unless public;
2. the data-adaptive resolution of number columns (exact values and DP quantile bins, ``tables.resolution``);
3. one-way marginals on those bins, categories then listed by released frequency;
4. every pair's table on coarse groups in one release (sensitivity √pairs), whose Chow-Liu forest keeps the
   edges that beat the noise; the forest's two-way marginals, each at the finest resolution its noise
   supports; without votes, a second one-way release spends what the votes would have had;
5. post-processing: one-way marginals combined from every release that measures them, pair tables made
   consistent with them, and the tree generator fitted on the result.

The value it returns, :class:`Measured`, holds the released marginals (the raking targets), the resolved
schema and the fitted tree generator; :meth:`Measured.reweight` rakes a final population onto the targets.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pe_tabular.evolution import EvolutionConfig, EvolutionResult
from pe_tabular.measure.histograms import OnePass
from pe_tabular.measure.measurement import Measurement
from pe_tabular.measure.raking import rake_to_shares
from pe_tabular.privacy.accountant import sigma_for_share
from pe_tabular.privacy.release import ReleasePath, Spec, release_count, size_from_count
from pe_tabular.tables import labels
from pe_tabular.tables.budget import BudgetShares
from pe_tabular.tables.families import (
    FamilyPlan,
    consistent_triples,
    measure_triples,
    plan_families,
    triple_resolutions,
)
from pe_tabular.tables.generators.cliques import BayesNetBackend
from pe_tabular.tables.generators.tree import TreeBackend
from pe_tabular.tables.marginals import (
    Binning,
    by_frequency,
    coarse_groups,
    combine_one_way,
    consistent_pairs,
    estimate,
    histogram,
    noisy_chow_liu,
    pair_resolutions,
    structure_counts,
    target_codes,
)
from pe_tabular.tables.private import PrivateRows
from pe_tabular.tables.resolution import MAX_INTERVALS, numeric_columns, resolve, thresholded
from pe_tabular.tables.resolution import plan as resolution_plan
from pe_tabular.tables.schema import Schema

RESOLUTION_DELTA = 0.1  # share of δ paid by the thresholded exact-value releases of the resolution stage
INTERVAL_SIGMAS = 10.0  # an interval bin should hold at least this many σ of its one-way measurement
Key = Any  # a column name (one-way target) or a tuple of names (a marginal)


@dataclass(frozen=True)
class RunSettings:
    """What a tables run derives from its arguments before it reads any data (all public)."""

    schema: Schema                              # the given schema, labelled with ``label``
    label: str | None                           # the class column (``tables.labels.class_column``)
    label_shares: dict[str, float] | None       # public class shares; None: released
    budget: BudgetShares
    epsilon: float
    delta: float
    mu: float                                   # gdp_mu(ε, δ) of the whole run
    config: EvolutionConfig
    votes: bool                                 # votes asked for (taken only where they carry signal)
    min_vote_snr: float
    target: str | None = None                   # the analyst's task column: every pair with it is measured
    structure: str = "tree"                     # "tree" (Chow-Liu forest) or "bn2" (families of <= 2 parents)

    @property
    def delta_reserved(self) -> float:
        """δ the resolution stage pays for thresholding exact values (a public choice: depends on the schema)."""
        return RESOLUTION_DELTA * self.delta if self.budget.resolution > 0 and thresholded(self.schema) else 0.0

    def vote_snr(self, n_rows: float) -> float:
        """Expected vote mass per final candidate over the vote noise σ (uniform budget), from a released row
        count: each row casts k votes of weight 1/√k (mass √k) over the last population. Below
        ``min_vote_snr`` the votes are noise (a 4,000-row table at ε = 0.3 gives a candidate ~1 vote against
        σ ≈ 40) and resampling by them only scrambles the generator's rows (benchmarks/RESULTS.md)."""
        if not math.isfinite(self.mu):
            return math.inf
        rho_pe = self.mu ** 2 * self.budget.votes
        sigma = math.sqrt(self.config.iterations / max(rho_pe, 1e-300))
        return n_rows * math.sqrt(self.config.k) / self.config.population[-1] / sigma


@dataclass(frozen=True)
class Measured:
    """What the measurement plan released, and what post-processing made of it."""

    n_hat: int                                  # the noisy row count (rounded)
    votes: bool                                 # whether the votes carry signal (else they were not budgeted)
    class_shares: dict[str, float] | None       # shares of the classes (None: not class-conditional)
    schema: Schema                              # resolved number columns, categories by released frequency
    decoders: dict[str, Any]                    # values inside a number bin, decoded from released data
    targets: dict[Key, np.ndarray]              # raking targets, in raking order
    marginals: dict[str, np.ndarray]            # the released one-way marginals (as distributions)
    pairs: list[tuple[str, str]] | None         # the forest's edges (None: no structure measured)
    res: dict[tuple[str, str], tuple[int, int]] | None  # each pair's resolution
    tree: TreeBackend | None                    # the generator fitted on the released marginals

    def reweight(self, result: EvolutionResult) -> None:
        """Reweight ``result``'s final population onto the released marginals (post-processing)."""
        if self.targets:
            cells = target_codes(result.population.samples, self.schema, self.targets, self.res)
            result.weights = rake_to_shares(result.weights, cells, list(self.targets.values()))


def measure(rows: PrivateRows, settings: RunSettings, path: ReleasePath) -> Measured:
    """Every release of the run before the votes (see the module docstring), as one value."""
    return _Plan(rows, settings, path).run()


class _Plan:
    """The state of one run of the plan: what is released so far, under the schema as resolved so far."""

    def __init__(self, rows: PrivateRows, settings: RunSettings, path: ReleasePath):
        self.rows, self.s, self.path = rows, settings, path
        self.rho = path.ledger.remaining_rho()  # stage shares below are fractions of this total
        self.schema = settings.schema
        self.res: dict[tuple[str, str], tuple[int, int]] | None = None
        self.raw: dict[tuple[str, ...], Measurement] = {}  # released noisy counts and σ, by marginal
        self.votes = settings.votes
        self.n_hat = 0.0  # the noisy row count, once released
        self.triples: dict[Key, np.ndarray] = {}  # structure="bn2": the families' noisy three-way marginals
        self.struct_noisy: np.ndarray = np.zeros(0)  # the structure release and its groups (for the families)
        self.struct_groups: dict[str, np.ndarray] = {}
        self.struct_every: list[tuple[str, str]] = []

    def sigma(self, stage: str, n_releases: int, sensitivity: float = 1.0) -> float:
        """σ for ``n_releases`` releases of sensitivity Δ that together spend ``stage``'s share."""
        return sigma_for_share(self.rho * self.s.budget.of(stage, votes=self.votes), n_releases, sensitivity)

    def run(self) -> Measured:
        s, ledger = self.s, self.path.ledger
        # 0) the number of private rows is private: every size derives from this noisy count (or is public)
        n_hat = size_from_count(release_count(
            self.path, Spec("count", "number of private rows", self.sigma("count", 1), stream=(0, 399)),
            self.rows.count))
        ledger.public_inputs["output_size"] = "the noisy row count (default) or the caller's --samples"
        # votes only where they carry signal (a public function of the released count and the settings)
        self.votes = bool(s.votes and s.vote_snr(n_hat) >= s.min_vote_snr)
        self.n_hat = n_hat
        shares = self.class_shares() if s.label is not None else None
        decoders = self.resolve(n_hat)
        targets = self.one_way()
        marginals = dict(targets)
        if s.label is not None:
            targets[s.label] = labels.class_target(self.schema, s.label, shares)
        pairs = tree = None
        if s.budget.pairs > 0:
            pairs = self.structure(targets, n_hat)
            fam = self.families(pairs, n_hat) if s.structure == "bn2" else None
            self.two_way(pairs + self.task_pairs(pairs), targets, n_hat, fam)
            tree = self.fit_tree(targets, marginals, decoders, pairs, fam)
        return Measured(n_hat, self.votes, shares, self.schema, decoders, targets, marginals, pairs, self.res, tree)

    # -- stages, in order ------------------------------------------------------------------------
    def class_shares(self) -> dict[str, float]:
        s = self.s
        public = s.label_shares
        sigma = self.sigma("labels", 1) if public is None else 0.0
        shares = labels.class_shares(self.rows, self.schema, s.label, public, sigma, self.path, self.n_hat)
        if public is None:
            self.path.ledger.public_inputs["label_shares"] = f"DP-estimated ({s.budget.labels:.0%} of mu^2)"
        return shares

    def columns(self) -> list[str]:
        return [c.name for c in self.schema.columns if c.name != self.s.label]

    def resolve(self, n_hat: int) -> dict[str, Any]:
        """Data-adaptive resolution of number columns: point masses and DP quantile bins."""
        b = self.s.budget
        if not (b.resolution > 0 and numeric_columns(self.schema)):
            return {}
        cols = self.columns()
        sigma_1 = self.sigma("one_way", len(cols)) if b.one_way > 0 else 0.0
        p = resolution_plan(self.schema, self.rho * b.of("resolution", votes=self.votes), self.s.delta_reserved)
        target = max(n_hat / MAX_INTERVALS, INTERVAL_SIGMAS * sigma_1)
        self.schema, decoders = resolve(self.rows, self.schema, self.path, p, n_hat, target)
        return decoders

    def one_way(self) -> dict[Key, np.ndarray]:
        """One-way marginals of every column but the label, categories then listed by released frequency."""
        targets: dict[Key, np.ndarray] = {}
        if not self.s.budget.one_way > 0:
            return targets
        cols = self.columns()
        sigma = self.sigma("one_way", len(cols))
        stage = self.stage([(n,) for n in cols], "one-way marginals")
        for j, name in enumerate(cols):
            targets[name] = self.release(stage, (name,), sigma, f"marginal_{j:03d}", 100 + j)
        self.order_categories(targets)
        return targets

    def structure(self, targets: dict[Key, np.ndarray], n_hat: int) -> list[tuple[str, str]]:
        """Every pair's two-way table on coarse groups read off the released one-way marginals, in one release
        (L2 sensitivity √pairs); its Chow-Liu forest is the dependence structure."""
        schema = self.schema
        names = schema.names
        one = {n: targets.get(n, self.uniform(n)) for n in names}
        groups = {n: coarse_groups(schema[n], one[n]) for n in names}
        every = list(itertools.combinations(names, 2))
        sens = math.sqrt(len(every))
        noisy = self.struct_noisy = self.path.release(
            Spec("structure", f"all {len(every)} two-way tables on coarse groups (structure)",
                 self.sigma("structure", 1, sens), sens, stream=(0, 300)),
            self.rows.one_pass({0: lambda f: structure_counts(f, schema, groups, every)}, "structure tables").counts(0))
        self.struct_groups, self.struct_every = groups, every
        return noisy_chow_liu(noisy, groups, every, names, self.path.ledger.releases[-1].sigma, n_hat)

    def pairs_rho(self) -> float:
        return self.rho * self.s.budget.of("pairs", votes=self.votes)

    def families(self, forest: list[tuple[str, str]], n_hat: int) -> FamilyPlan:
        """``structure="bn2"``: two-parent families on top of the forest where one DP score release says they pay
        (``tables.families``; PrivBayes / AIM), paid from the pairs' share."""
        return plan_families(self.rows, self.schema, self.path, self.struct_noisy, self.struct_groups,
                             self.struct_every, forest, n_hat, self.pairs_rho(),
                             self.s.target or self.s.label or self.schema.names[0])

    def task_pairs(self, forest: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """With a ``target``, its pair with every column the forest does not already join it to: measured with
        the forest's edges (same σ, so the pairs' share is split over more tables) and raked onto at the end, so
        the synthetic rows keep each column's relation to the task (a tree keeps it only along its edges)."""
        t = self.s.target
        if t is None:
            return []
        joined = {b if a == t else a for a, b in forest if t in (a, b)}
        extra = [(t, c) for c in self.schema.names if c != t and c not in joined]
        self.path.ledger.public_inputs["target"] = (
            f"{t}: its pair with every column measured ({len(extra)} pairs beside the {len(forest)} of the "
            "structure, sharing the pairs' budget) and raked onto")
        return extra

    def two_way(self, pairs: list[tuple[str, str]], targets: dict[Key, np.ndarray], n_hat: int,
                fam: FamilyPlan | None = None) -> None:
        """DP two-way marginals of the forest's edges (none when no dependence beat the noise: their share then
        stays with the votes), each at the finest resolution its noise supports; with families, their three-way
        marginals at the same σ (the pairs' share less the score release, split over pairs and triples)."""
        triples = fam.triples if fam else []
        n = len(pairs) + len(triples)
        if fam is None:
            sigma = self.sigma("pairs", len(pairs)) if pairs else 0.0
        else:
            sigma = sigma_for_share(self.pairs_rho() - fam.rho_spent, n) if n else 0.0
        self.res = pair_resolutions(self.schema, pairs, n_hat, sigma)
        stage = self.stage(pairs, "two-way marginals")
        for j, key in enumerate(pairs):
            targets[key] = self.release(stage, key, sigma, f"pair_{j:03d}", 200 + j)
        if triples:
            self.res.update(triple_resolutions(self.schema, triples, n_hat, sigma))
            self.triples = measure_triples(self.rows, self.schema, self.path, triples, sigma, self.res)
        if not self.votes:  # no votes to take what the pairs left (e.g. no dependence beat the noise)
            self.remeasure_one_way()

    def fit_tree(self, targets: dict[Key, np.ndarray], marginals: dict[str, np.ndarray],
                 decoders: dict[str, Any], forest: list[tuple[str, str]],
                 fam: FamilyPlan | None = None) -> TreeBackend:
        """Post-processing: one-way marginals from every release that measures them, pair tables consistent
        with them, and the tree generator fitted on both (on the forest's edges; a task pair off the forest
        is a raking target only)."""
        raw1 = [m for m in self.raw.values() if len(m.query) == 1]
        targets.update(combine_one_way(raw1, [m for m in self.raw.values() if len(m.query) > 1],
                                       self.schema, self.res))
        marginals.update({m.query[0]: targets[m.query[0]] for m in raw1})
        one = {n: targets.get(n, self.uniform(n)) for n in self.schema.names}
        targets.update(consistent_pairs(one, {k: v for k, v in targets.items() if isinstance(k, tuple)},
                                        self.schema, res=self.res))
        edges, t = set(forest), self.s.target
        task = {k: v for k, v in targets.items() if isinstance(k, tuple) and k not in edges and k[0] == t}
        tree_pairs = {k: v for k, v in targets.items() if k in edges}
        if fam is not None:  # the network's families (fitted to the one-way margins) are raking targets too
            fitted = consistent_triples(one, self.triples, self.schema, self.res) if fam.triples else {}
            targets.update(fitted)
            return BayesNetBackend(self.schema, one, tree_pairs, fitted, fam.order, decoders=decoders, res=self.res,
                                   task=t, task_pairs=task)
        return TreeBackend(self.schema, one, tree_pairs, decoders=decoders, res=self.res, task=t, task_pairs=task)

    def remeasure_one_way(self) -> None:
        """Spend the budget left without votes on a second one-way release per column, averaged with the first
        by inverse variance (post-processing), so a run without votes still spends its whole ε."""
        cols = [k[0] for k in self.raw if len(k) == 1]
        rho = self.path.ledger.remaining_rho()
        if not cols or not math.isfinite(rho) or rho <= 1e-12:
            return
        sigma = sigma_for_share(rho * (1 - 1e-9), len(cols))
        stage = self.stage([(n,) for n in cols], "one-way marginals (again)")
        for j, name in enumerate(cols):
            first = self.raw[(name,)]
            self.release(stage, (name,), sigma, f"marginal_again_{j:03d}", 500 + j)
            self.raw[(name,)] = first.averaged(self.raw[(name,)])

    # -- helpers -----------------------------------------------------------------------------------
    def stage(self, keys: Sequence[tuple[str, ...]], desc: str) -> OnePass:
        """The clean histograms of marginals ``keys`` under the current schema and resolutions, summed in one
        pass over the rows when the first of them is released."""
        schema, res = self.schema, self.res
        return self.rows.one_pass({k: (lambda f, k=k: histogram(f, schema, k, res=res)) for k in keys}, desc)

    def release(self, stage: OnePass, key: tuple[str, ...], sigma: float, name: str, stream: int) -> np.ndarray:
        """One noisy marginal on public bins (Δ = 1: a row sits in one cell), as a distribution."""
        noisy, rel = self.path.release_recorded(
            Spec(name, f"marginal {'×'.join(key)}", sigma, stream=(0, stream)), stage.counts(key))
        self.raw[key] = Measurement(key, noisy, rel.sigma)  # for combine_one_way
        return estimate(noisy, self.schema, key, self.res)

    def order_categories(self, targets: dict[Key, np.ndarray]) -> None:
        """List every category column (but the label) by its released frequency, so two-way marginals keep the
        frequent categories apart and pool the rare ones (post-processing; permutes the released vectors)."""
        cols = []
        for c in self.schema.columns:
            if c.is_categorical and c.name != self.s.label and c.name in targets:
                c, perm = by_frequency(c, targets[c.name])
                targets[c.name] = targets[c.name][perm]
                m = self.raw[(c.name,)]
                self.raw[(c.name,)] = dataclasses.replace(m, noisy=np.asarray(m.noisy)[perm])
            cols.append(c)
        self.schema = dataclasses.replace(self.schema, columns=tuple(cols))

    def uniform(self, name: str) -> np.ndarray:
        n = Binning.of(self.schema[name]).n_bins
        p = np.ones(n)
        p[-1] = 1.0 if self.schema[name].nullable else 0.0
        return p / p.sum()


def public_inputs(settings: RunSettings) -> dict[str, Any]:
    """What the ledger lists as the run's public inputs before any release."""
    out: dict[str, Any] = {"schema": "public (categories, bounds, rounding, special values)",
                           "label_shares": "public" if settings.label_shares else None}
    if settings.schema.dp_cost:  # a DP-estimated schema is charged to this run's budget
        out["schema"] = f"DP-estimated, {len(settings.schema.dp_cost['releases'])} releases charged"
    return out


def schema_releases(settings: RunSettings) -> list[Mapping[str, Any]]:
    """A DP-estimated schema's releases, charged to this run (iteration −1)."""
    return [{**r, "iteration": -1} for r in (settings.schema.dp_cost or {}).get("releases", [])]
