"""``PESynthesizer``: the fit/sample facade analysts know from scikit-learn and SDV.

    syn = PESynthesizer(schema, epsilon=1.0, delta=1e-5).fit(private_df)
    synthetic = syn.sample(32_000)
    syn.privacy_report()

``fit`` validates the private frame against the public schema (nothing is spent on invalid input),
plans the budget (optional DP label shares, then the votes), and runs Private Evolution. ``sample``
is post-processing: rows are drawn ∝ the final noisy vote counts; asking for more rows than the
final population draws duplicates and, optionally, light variations of them.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.backends.base import Backend
from pe_tabular.backends.mixture import explore_every_source
from pe_tabular.checkpoint import Checkpointer, open_checkpoint
from pe_tabular.evolution import ConfigError, Evolution, EvolutionConfig, EvolutionResult
from pe_tabular.io_utils import atomic_write, atomic_write_json, atomic_write_npz, from_epoch_seconds
from pe_tabular.measure.histograms import OnePass
from pe_tabular.measure.measurement import Measurement
from pe_tabular.measure.raking import rake_to_shares
from pe_tabular.measure.schedule import degree_schedule
from pe_tabular.measure.shares import class_counts, release_label_shares
from pe_tabular.memory import MemoryGuard
from pe_tabular.population import Population
from pe_tabular.privacy.accountant import gdp_mu, sigma_for_share
from pe_tabular.privacy.ledger import Ledger, Release
from pe_tabular.privacy.noise import noise_source
from pe_tabular.privacy.release import ReleasePath, Spec, release_count, size_from_count
from pe_tabular.privacy.schedules import BudgetPolicy, make_policy
from pe_tabular.source import DEFAULT_CHUNK_ROWS
from pe_tabular.tables.encoder import TableEncoder
from pe_tabular.tables.generators.statistical import StatisticalBackend
from pe_tabular.tables.generators.tree import TreeBackend
from pe_tabular.tables.marginals import (
    PAIR_BINS,
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
from pe_tabular.tables.schema import Schema, decimal_places
from pe_tabular.voting.streaming import SourceVoter

log = logging.getLogger(__name__)
DUPLICATE_VARY = 0.25  # default variation degree of repeated output rows (see PESynthesizer.sample)
SAMPLE_CHUNK = 250_000  # output rows per chunk of sample_chunks (the CLI writes a large output chunk by chunk)
RESOLUTION_DELTA = 0.1  # share of δ paid by the thresholded exact-value releases of the resolution stage
INTERVAL_SIGMAS = 10.0  # an interval bin should hold at least this many σ of its one-way measurement


class PESynthesizer:
    """Differentially private tabular synthesizer by Private Evolution (no model training).

    Shaped like scikit-learn / SDV estimators: every constructor argument is stored unchanged under
    its own name (``get_params``), derived settings carry a trailing underscore (``config_``,
    ``label_``, ``mu_``), ``fit`` learns, ``sample`` is post-processing, and ``save``/``load``
    round-trip every argument that can be written to JSON (``on_event`` and ``vote_fn`` are run-time
    hooks, given again to ``load``). Errors name arguments; the command line maps them to flags.
    """

    def __init__(
        self, schema: Schema, epsilon: float = 1.0, delta: float = 1e-5, *,
        backend: Backend | str = "statistical", iterations: int = 2, population: int | Sequence[int] = 16000,
        k: int = 16, degree: float | Sequence[float] | None = None, threshold: float = 0.0,
        budget: str = "uniform", label: str | None | bool = True, label_shares: Mapping[str, float] | None = None,
        label_budget_share: float = 0.02, calibrate: float = 0.20, pair_share: float = 0.47,
        structure_share: float = 0.05, count_share: float = 0.01, resolution_share: float = 0.10,
        votes: bool = True, min_vote_snr: float = 0.1, keep_selected: float = 0.0,
        voter: str = "auto", structure: str = "tree",
        weights: Mapping[str, float] | None = None, on_invalid: str = "error", seed: int | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None, vote_fn: Any = None,
    ):
        self.schema, self.epsilon, self.delta = schema, epsilon, delta
        self.backend, self.iterations, self.population, self.k, self.degree = backend, iterations, population, k, degree
        self.threshold, self.budget, self.label, self.label_shares = threshold, budget, label, label_shares
        self.label_budget_share, self.calibrate, self.pair_share = label_budget_share, calibrate, pair_share
        self.structure_share, self.keep_selected = structure_share, keep_selected
        self.count_share, self.resolution_share, self.votes = count_share, resolution_share, votes
        self.min_vote_snr = min_vote_snr
        self.voter, self.weights = voter, weights
        self.structure = structure  # "tree" (Chow–Liu forest) or "bn2" (families of ≤ 2 parents, tables/families.py)
        self.on_invalid, self.seed, self.on_event = on_invalid, seed, on_event
        self.vote_fn = vote_fn  # e.g. Dask-sharded voting (pe_tabular.voting.sharded.make_vote_fn)
        self._check()
        self.marginals_: dict[str, np.ndarray] = {}
        self.result: EvolutionResult | None = None
        self.ledger: Ledger | None = None

    #: the arguments ``save`` writes and ``load`` restores (JSON-able; ``schema`` is saved on its own)
    PARAMS = ("epsilon", "delta", "backend", "iterations", "population", "k", "degree", "threshold", "budget",
              "label", "label_shares", "label_budget_share", "calibrate", "pair_share", "structure_share",
              "count_share", "resolution_share", "votes", "min_vote_snr", "keep_selected", "voter", "weights",
              "on_invalid", "seed", "structure")

    def get_params(self) -> dict[str, Any]:
        """Every constructor argument, as given (scikit-learn's convention)."""
        return {"schema": self.schema, **{k: getattr(self, k) for k in self.PARAMS},
                "on_event": self.on_event, "vote_fn": self.vote_fn}

    def _check(self) -> None:
        """Validate the arguments before any data is read; derive the run settings (trailing _)."""
        self.mu_ = gdp_mu(float(self.epsilon), float(self.delta))
        schema = self.schema
        self.label_ = schema.label if self.label is True else (self.label or None)
        if self.label_ is not None and self.label_ not in schema.names:
            raise ConfigError(f"`label` {self.label_!r} is not a schema column", "label")
        if self.label_ is not None and schema[self.label_].nullable:  # missing labels are no class to condition on
            log.warning("label column %r is nullable: the run is not class-conditional", self.label_)
            self.label_ = None
        # backends read the class column from the schema
        self.schema_ = schema.with_label(self.label_) if self.label_ != schema.label else schema
        self.schema_given_ = self.schema_  # fit() refines schema_ with the DP resolution of number columns
        deg = self.degree if self.degree is not None else degree_schedule(self.iterations, 0.2, 0.1)
        self.config_ = EvolutionConfig.build(self.iterations, self.population, deg, k=self.k,
                                             threshold=self.threshold, keep_selected=self.keep_selected,
                                             voter=self.voter)
        self.label_shares_ = (dict(self.label_shares) if self.label_shares
                              else (schema.label_shares if self.label_ else None))
        if not 0 < self.label_budget_share < 1:
            raise ConfigError("`label_budget_share` must be in (0, 1)", "label_budget_share")
        if not 0 <= self.calibrate < 1:
            raise ConfigError("`calibrate` (budget share of the one-way marginals) must be in [0, 1)", "calibrate")
        if not 0 <= self.structure_share < 1:
            raise ConfigError("`structure_share` must be in [0, 1)", "structure_share")
        if not 0 < self.count_share < 1:
            raise ConfigError("`count_share` (budget share of the noisy row count) must be in (0, 1)", "count_share")
        if not 0 <= self.resolution_share < 1:
            raise ConfigError("`resolution_share` must be in [0, 1)", "resolution_share")
        if self.structure not in ("tree", "bn2"):
            raise ConfigError("`structure` must be 'tree' or 'bn2'", "structure")
        if not 0 <= self.pair_share < 1 or self._measure_total() >= 1:
            raise ConfigError("`pair_share` must be in [0, 1) and, with label_budget_share, calibrate, "
                              "structure_share, count_share and resolution_share, leave budget for the votes",
                              "pair_share")

    def _measure_total(self) -> float:
        return (self.label_budget_share + self.calibrate + self.pair_share + self.structure_share + self.count_share
                + self.resolution_share)

    def _share(self, name: str) -> float:
        """A measurement's budget share; without votes the measurements after the row count share the whole
        budget (same ratios). The row count's share is fixed: it is released before votes are decided."""
        v = float(getattr(self, name))
        if name == "count_share" or getattr(self, "votes_", self.votes):
            return v
        return v * (1 - self.count_share) / (self._measure_total() - self.count_share)

    def vote_snr(self, n_rows: float) -> float:
        """Expected vote mass per final candidate over the vote noise σ (uniform budget), from a released row
        count: each row casts k votes of weight 1/√k (mass √k) over the last population. Below
        ``min_vote_snr`` the votes are noise (a 4,000-row table at ε = 0.3 gives a candidate ~1 vote against
        σ ≈ 40) and resampling by them only scrambles the generator's rows (benchmarks/RESULTS.md)."""
        rho_pe = gdp_mu(self.epsilon, self.delta) ** 2 * (1 - self._measure_total()) if math.isfinite(
            self.mu_) else math.inf
        if not math.isfinite(rho_pe):
            return math.inf
        sigma = math.sqrt(self.config_.iterations / max(rho_pe, 1e-300))
        return n_rows * math.sqrt(self.config_.k) / self.config_.population[-1] / sigma

    # -- helpers --------------------------------------------------------------------------------
    def _backend(self) -> Backend:
        if not isinstance(self.backend, str):
            return self.backend
        if self.backend == "statistical":
            return StatisticalBackend(self.schema_, marginals=self.marginals_)
        from pe_tabular.tables.generators.factory import make_backend  # optional backends (llm, sdv, mix)

        return make_backend(self.backend, self.schema_)

    def _policy(self, mu_left: float) -> BudgetPolicy:
        return make_policy(self.budget, mu_left, self.config_.iterations, threshold=self.config_.threshold)

    def _delta_reserved(self) -> float:
        """δ the resolution stage pays for thresholding exact values (a public choice: depends on the schema)."""
        return RESOLUTION_DELTA * self.delta if self.resolution_share > 0 and thresholded(self.schema_) else 0.0

    def _start_ledger(self) -> Ledger:
        extra = sum(r.get("extra_delta", 0.0) for r in (self.schema_.dp_cost or {}).get("releases", []))
        extra += self._delta_reserved()
        mu = self.mu_ if extra == 0 else gdp_mu(self.epsilon, self.delta - extra)
        led = Ledger(self.delta, mu_budget=mu, noise_mode=noise_source().mode)
        led.public_inputs = {"schema": "public (categories, bounds, rounding, special values)",
                             "label_shares": "public" if self.label_shares_ else None}
        if self.schema_.dp_cost:  # a DP-estimated schema is charged to this run's budget
            for r in self.schema_.dp_cost.get("releases", []):
                led.record(**{**r, "iteration": -1})
            led.public_inputs["schema"] = f"DP-estimated, {len(self.schema_.dp_cost['releases'])} releases charged"
        return led

    # -- API ------------------------------------------------------------------------------------
    def fit(self, data: Any, *, checkpoint: str | Path | Checkpointer | None = None, resume: bool = False,
            input_fingerprint: Any = None, show_invalid: Callable[[str], None] | None = None,
            chunk_rows: int = DEFAULT_CHUNK_ROWS, max_memory: str | int | None = None,
            na_values: Sequence[str] = ()) -> PESynthesizer:
        """Run the DP measurements and the evolution on ``data``: a pandas or polars frame, or a
        :class:`~pe_tabular.source.ChunkedSource` (``ChunkedSource.scan("folder/")``: Parquet / CSV files
        streamed in chunks, never held whole). Both go the same way (``tables.private``): one validation pass
        into a private on-disk cache, then every release as a sum over chunks, and the votes on compact codes.

        ``checkpoint``: a directory (or an open ``Checkpointer``) for per-release checkpoints; ``resume``
        continues the run it holds. ``input_fingerprint`` (e.g. ``checkpoint.input_fingerprint(path)``)
        identifies the input file, so a resume on other data is refused. ``show_invalid`` receives offending
        values and rows of invalid input (local terminal only, see ``schema.validate``). ``chunk_rows`` and
        ``max_memory`` (``MemoryGuard``) apply to a frame; a source carries its own. ``na_values``: more strings
        that mean "missing" in every input (a CSV also takes pandas' own: empty, ``NA``, ``NaN``, ``null``…)."""
        rows = PrivateRows.open(data, self.schema_given_, on_invalid=self.on_invalid, show=show_invalid,
                                chunk_rows=chunk_rows, guard=MemoryGuard.from_flag(max_memory),
                                on_event=self.on_event, na_values=na_values)
        try:
            return self._fit(rows, checkpoint, resume, input_fingerprint)
        finally:
            rows.close()

    def _fit(self, rows: PrivateRows, checkpoint: str | Path | Checkpointer | None, resume: bool,
             input_fingerprint: Any) -> PESynthesizer:
        rng = np.random.default_rng(self.seed)
        noise = noise_source()
        settings = {k: v for k, v in self.get_params().items() if k in self.PARAMS}
        ckpt = open_checkpoint(checkpoint, resume, {"settings": settings, "schema": self.schema_.to_dict(),
                                                    "input": input_fingerprint})
        self.schema_ = self.schema_given_
        ledger = self._start_ledger()
        path = ReleasePath(ledger, noise, ckpt)
        rho = ledger.remaining_rho()  # stage shares below are fractions of this total
        # 0) the number of private rows is private: every size derives from this noisy count (or is public)
        self.n_hat_ = size_from_count(release_count(
            path, Spec("count", "number of private rows", self._sigma(rho * self._share("count_share"), 1),
                       stream=(0, 399)), rows.count))
        ledger.public_inputs["output_size"] = "the noisy row count (default) or the caller's --samples"
        # votes only where they carry signal (a public function of the released count and the settings)
        self.votes_ = bool(self.votes and self.vote_snr(self.n_hat_) >= self.min_vote_snr)
        labelled = self.label_ is not None
        if self.label_ is not None:
            classes = [str(c) for c in self.schema_[self.label_].categories]
            if self.label_shares_ is None:
                shares = release_label_shares(
                    classes, self._sigma(rho * self._share("label_budget_share"), 1), path,
                    lambda: rows.sum(lambda f: class_counts(f[self.label_].astype(str), classes), len(classes),
                                     "label histogram"))
                ledger.public_inputs["label_shares"] = f"DP-estimated ({self.label_budget_share:.0%} of mu^2)"
            else:
                shares = {str(k): float(v) for k, v in self.label_shares_.items()}
                missing = set(classes) - set(shares)
                if missing:
                    raise ConfigError(f"public label shares lack classes {sorted(missing)}")
            self.shares_ = shares
        # 1) data-adaptive resolution of number columns: point masses and DP quantile bins
        self.decoders_: dict[str, Any] = {}
        cols = [c.name for c in self.schema_.columns if c.name != self.label_]
        if self.resolution_share > 0 and numeric_columns(self.schema_):
            sigma_1 = self._sigma(rho * self._share("calibrate"), len(cols)) if self.calibrate > 0 else 0.0
            plan = resolution_plan(self.schema_, rho * self._share("resolution_share"), self._delta_reserved())
            target = max(self.n_hat_ / MAX_INTERVALS, INTERVAL_SIGMAS * sigma_1)
            self.schema_, self.decoders_ = resolve(rows, self.schema_, path, plan, self.n_hat_, target)
        targets: dict[Any, np.ndarray] = {}
        self._raw: dict[tuple[str, ...], Measurement] = {}  # released noisy counts and σ, by marginal
        if self.calibrate > 0:
            sigma = self._sigma(rho * self._share("calibrate"), len(cols))
            stage = self._stage(rows, [(n,) for n in cols], "one-way marginals")
            for j, name in enumerate(cols):
                targets[name] = self._measure(stage, (name,), sigma, f"marginal_{j:03d}", ledger, noise, ckpt,
                                              100 + j)
            self._order_categories(targets)
            self.marginals_ = dict(targets)
        if labelled:
            cats = [str(c) for c in self.schema_[self.label_].categories]
            targets[self.label_] = np.array([self.shares_[c] for c in cats] + [0.0])
        encoder = TableEncoder(self.schema_, self.weights)
        extra = {"vote_fn": self.vote_fn} if self.vote_fn is not None else {}
        lab_shares = self.shares_ if labelled else None
        backend = self._backend()
        if self.pair_share > 0:
            # 2) every pair's two-way table on coarse groups read off the released one-way marginals, in
            #    one release (L2 sensitivity √pairs); its Chow-Liu tree is the dependence structure
            names = self.schema_.names
            one = {n: targets.get(n, self._uniform(n)) for n in names}
            groups = {n: coarse_groups(self.schema_[n], one[n]) for n in names}
            every = list(itertools.combinations(names, 2))
            sens = math.sqrt(len(every))
            schema = self.schema_
            noisy = path.release(
                Spec("structure", f"all {len(every)} two-way tables on coarse groups (structure)",
                     self._sigma(rho * self._share("structure_share"), 1, sens), sens, stream=(0, 300)),
                rows.one_pass({0: lambda f: structure_counts(f, schema, groups, every)}, "structure tables").counts(0))
            pairs = noisy_chow_liu(noisy, groups, every, names, ledger.releases[-1].sigma, self.n_hat_)
            fam = None  # structure="bn2": three-way families on top of the tree where a DP score says they pay
            if self.structure == "bn2":
                from pe_tabular.tables.families import plan_families

                fam = plan_families(rows, self.schema_, path, noisy, groups, every, pairs, self.n_hat_,
                                    rho * self._share("pair_share"), self.label_ or names[0])
            # 3) DP two-way marginals of the tree's edges (none when no dependence beat the noise: their share
            #    then stays with the votes), each at the finest resolution its noise supports; 4) a tree
            #    generator fitted on them
            n_fam, rho_fam = (len(fam.triples), fam.rho_spent) if fam else (0, 0.0)
            n_fam += len(pairs)
            sigma = self._sigma(rho * self._share("pair_share") - rho_fam, n_fam) if n_fam else 0.0
            self.res_ = pair_resolutions(self.schema_, pairs, self.n_hat_, sigma)
            stage = self._stage(rows, pairs, "two-way marginals")
            for j, key in enumerate(pairs):
                targets[key] = self._measure(stage, key, sigma, f"pair_{j:03d}", ledger, noise, ckpt, 200 + j)
            self.pairs_ = pairs
            if fam and fam.triples:
                from pe_tabular.tables import families

                self.res_.update(families.triple_resolutions(self.schema_, fam.triples, self.n_hat_, sigma))
                triples = families.measure_triples(rows, self.schema_, path, fam.triples, sigma, self.res_)
            if not self.votes_:  # no votes to take what the pairs left (e.g. no dependence beat the noise)
                self._remeasure_one_way(rows, ledger, noise, ckpt)
            raw1 = [m for m in self._raw.values() if len(m.query) == 1]
            targets.update(combine_one_way(raw1, [m for m in self._raw.values() if len(m.query) > 1],
                                           self.schema_, self.res_))
            self.marginals_.update({m.query[0]: targets[m.query[0]] for m in raw1})
            one = {n: targets.get(n, self._uniform(n)) for n in self.schema_.names}
            targets.update(consistent_pairs(one, {k: v for k, v in targets.items() if isinstance(k, tuple)},
                                            self.schema_, res=self.res_))
            tree = TreeBackend(self.schema_, one, {k: v for k, v in targets.items() if isinstance(k, tuple)},
                               decoders=self.decoders_, res=self.res_)
            if fam:
                from pe_tabular.tables.generators.cliques import BayesNetBackend

                fitted = families.consistent_triples(one, triples, self.schema_, self.res_) if fam.triples else {}
                tree = BayesNetBackend(self.schema_, one, {k: v for k, v in targets.items() if isinstance(k, tuple)},
                                       fitted, fam.order, decoders=self.decoders_, res=self.res_)
                targets.update(fitted)
            if isinstance(self.backend, str) and self.backend == "statistical":
                backend = tree
            elif isinstance(self.backend, str):  # mixtures / LLM fallback get the calibrated generator
                from pe_tabular.tables.generators.factory import make_backend

                backend = make_backend(self.backend, self.schema_, statistical=lambda: tree)
        self.backend_ = backend  # the generator the evolution used; sample() varies duplicates with it
        if self.votes_:
            rho_pe = ledger.remaining_rho()
            policy = self._policy(math.sqrt(rho_pe) if math.isfinite(rho_pe) else math.inf)
            cfg = explore_every_source(self.config_, backend)
            codes = rows.encoded(encoder.encode, self.label_ if labelled else None)
            if self.vote_fn is None:  # votes chunk by chunk on the cached codes
                voter = SourceVoter(codes, cfg.voter)
                private, labels = voter.private, None
                extra = {"vote_fn": voter}
            else:  # a vote_fn of its own (e.g. Dask-sharded) takes the codes as one array (memory O(rows))
                batches = [b.data for p in codes.parts for b in p.batches(None)]
                private = np.concatenate([b.codes for b in batches]) if batches else np.zeros((0, 0), np.int64)
                labels = np.concatenate([b.labels for b in batches]) if labelled and batches else None
            evo = Evolution(backend, encoder, cfg, policy, ledger, noise, rng, self.on_event, **extra)
            self.result = evo.run(private, private_labels=labels, label_shares=lab_shares, checkpoint=ckpt,
                                  resume=resume)
        else:  # generator only (ablation): the measurements had the whole budget; no private row votes
            pop = backend.random(self.config_.population[-1], rng=rng)
            self.result = EvolutionResult(pop, np.ones(len(pop)), ledger, [])
        if targets:
            rows = target_codes(self.result.population.samples, self.schema_, targets, getattr(self, "res_", None))
            self.result.weights = rake_to_shares(self.result.weights, rows, list(targets.values()))
        self.ledger = ledger
        self._rng = rng
        return self

    def _remeasure_one_way(self, rows: PrivateRows, ledger: Ledger, noise: Any, ckpt: Checkpointer | None) -> None:
        """Spend the budget left without votes on a second one-way release per column, averaged with the first
        by inverse variance (post-processing), so a run without votes still spends its whole ε."""
        cols = [k[0] for k in self._raw if len(k) == 1]
        rho = ledger.remaining_rho()
        if not cols or not math.isfinite(rho) or rho <= 1e-12:
            return
        sigma = self._sigma(rho * (1 - 1e-9), len(cols))
        stage = self._stage(rows, [(n,) for n in cols], "one-way marginals (again)")
        for j, name in enumerate(cols):
            first = self._raw[(name,)]
            self._measure(stage, (name,), sigma, f"marginal_again_{j:03d}", ledger, noise, ckpt, 500 + j)
            self._raw[(name,)] = first.averaged(self._raw[(name,)])

    def _order_categories(self, targets: dict[Any, np.ndarray]) -> None:
        """List every category column (but the label) by its released frequency, so two-way marginals keep the
        frequent categories apart and pool the rare ones (post-processing; permutes the released vectors)."""
        cols = []
        for c in self.schema_.columns:
            if c.is_categorical and c.name != self.label_ and c.name in targets:
                c, perm = by_frequency(c, targets[c.name])
                targets[c.name] = targets[c.name][perm]
                m = self._raw[(c.name,)]
                self._raw[(c.name,)] = dataclasses.replace(m, noisy=np.asarray(m.noisy)[perm])
            cols.append(c)
        self.schema_ = dataclasses.replace(self.schema_, columns=tuple(cols))

    def _uniform(self, name: str) -> np.ndarray:
        from pe_tabular.tables.marginals import Binning

        n = Binning.of(self.schema_[name]).n_bins
        p = np.ones(n)
        p[-1] = 1.0 if self.schema_[name].nullable else 0.0
        return p / p.sum()

    @staticmethod
    def _sigma(rho: float, n_releases: int, sensitivity: float = 1.0) -> float:
        """σ for n releases of sensitivity Δ that together spend ``rho`` of μ²."""
        return sigma_for_share(rho, n_releases, sensitivity)

    def _stage(self, rows: PrivateRows, keys: Sequence[tuple[str, ...]], desc: str) -> OnePass:
        """The clean histograms of marginals ``keys`` under the current schema and resolutions, summed in one
        pass over the rows when the first of them is released."""
        schema, res = self.schema_, getattr(self, "res_", None)
        return rows.one_pass({k: (lambda f, k=k: histogram(f, schema, k, res=res)) for k in keys}, desc)

    def _measure(self, stage: OnePass, key: tuple[str, ...], sigma: float, name: str, ledger: Ledger,
                 noise: Any, ckpt: Checkpointer | None, stream: int) -> np.ndarray:
        """One noisy marginal on public bins (Δ = 1: a row sits in one cell), as a distribution."""
        res = getattr(self, "res_", None)
        noisy, rel = ReleasePath(ledger, noise, ckpt).release_recorded(
            Spec(name, f"marginal {'×'.join(key)}", sigma, stream=(0, stream)), stage.counts(key))
        self._raw[key] = Measurement(key, noisy, rel.sigma)  # for combine_one_way
        return estimate(noisy, self.schema_, key, res)

    def _need_fit(self) -> EvolutionResult:
        if self.result is None:
            raise RuntimeError("call fit() (or load()) before sample()")
        return self.result

    def sample(self, n: int | None = None, *, seed: int | None = None, vary_degree: float | None = None
               ) -> pd.DataFrame:
        """n synthetic rows ∝ final noisy counts (post-processing; no privacy cost). The default n is the
        released noisy row count (``n_hat_``), never the exact number of private rows (privacy rule 6).

        Rows are drawn by systematic resampling, so a candidate with weight p appears ⌊n·p⌋ or ⌈n·p⌉
        times. Repeats of a candidate are then varied by ``vary_degree`` with the evolution's own
        generator: exact copies make sparse (3-way) cells lumpy, light tree-consistent variations do not
        (Adult, ε = 1, benchmarks/tables_ablation.py: 3-way TVD 0.109 → 0.099, 2-way 0.047 → 0.046,
        TSTR AUC 0.871 → 0.884, 1-way 0.0067 → 0.0076 at 0.25).
        The default (None) is 0.25 for the built-in local generators and 0 for API-backed ones, so that
        sampling never calls an LLM. For many rows, :meth:`sample_chunks` yields them in bounded pieces."""
        n = self._sample_size(n)
        return next(iter(self.sample_chunks(n, chunk_rows=n, seed=seed, vary_degree=vary_degree)))

    def _sample_size(self, n: int | None) -> int:
        if n is None:
            n = getattr(self, "n_hat_", None)
            if n is None:
                raise ValueError("sample() needs n: this synthesizer holds no released row count")
        if n < 1:
            raise ValueError(f"--samples must be >= 1, got {n}")
        return int(n)

    def sample_chunks(self, n: int | None = None, *, chunk_rows: int = SAMPLE_CHUNK, seed: int | None = None,
                      vary_degree: float | None = None) -> Iterator[pd.DataFrame]:
        """:meth:`sample`'s rows as frames of at most ``chunk_rows`` rows, so writing a large output never
        holds it whole (memory: the draw's index, 8 bytes per row, plus one chunk). The same draw as
        :meth:`sample`; a repeated candidate is varied in the chunk it falls in, so with more than one chunk
        the variations (not the drawn candidates) differ from :meth:`sample`'s; one chunk is :meth:`sample`."""
        res = self._need_fit()
        n = self._sample_size(n)
        rng = np.random.default_rng(seed if seed is not None else self.seed)
        idx = res.draw(n, rng)
        varied_by = self._duplicate_variers(vary_degree)
        seen = np.zeros(len(res.population), dtype=bool)  # candidates already drawn in an earlier chunk
        for start in range(0, n, max(int(chunk_rows), 1)):
            part = idx[start:start + max(int(chunk_rows), 1)]
            pop = res.population.take(part)
            dup = np.flatnonzero(seen[part] | pd.Series(part).duplicated().to_numpy())
            seen[part] = True
            if dup.size and varied_by:
                cols = {c: pop.samples[c].to_numpy(copy=True) for c in pop.samples.columns}  # dtype kept per column
                src = np.asarray(pop.source).astype(str)
                for tag, (backend, degree) in varied_by.items():
                    rows = dup if tag is None else dup[src[dup] == tag]
                    if rows.size:
                        varied = backend.vary(pop.take(rows), degree, rng).samples
                        for c, arr in cols.items():
                            arr[rows] = varied[c].to_numpy()
                pop = dataclasses.replace(pop, samples=pd.DataFrame(cols), genome=None)
            yield to_external(pop.samples, self.schema_)

    def _duplicate_variers(self, vary_degree: float | None) -> dict[str | None, tuple[Backend, float]]:
        """Which generator varies repeated rows, per source tag (None: every row), and how far. By default
        only local generators do (sampling must never call an API); a mixture varies the repeats of its
        local sources and leaves the others' repeats as they are."""
        from pe_tabular.backends.mixture import Mixture

        backend = getattr(self, "backend_", None)
        if vary_degree is not None and vary_degree <= 0:
            return {}
        local = (TreeBackend, StatisticalBackend)
        if isinstance(backend, Mixture):
            return {t: (b, vary_degree or DUPLICATE_VARY) for t, b in zip(backend.tags, backend.backends)
                    if vary_degree is not None or isinstance(b, local)}
        if vary_degree is None:
            return {None: (backend, DUPLICATE_VARY)} if isinstance(backend, local) else {}
        return {None: (backend or self._backend(), vary_degree)}

    def privacy_report(self) -> dict[str, Any]:
        if self.ledger is None:
            raise RuntimeError("no privacy report before fit()")
        return self.ledger.to_dict()

    # -- persistence ------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """A directory with the schema, the final population and weights, the ledger and settings."""
        res = self._need_fit()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.schema.save(d / "schema.json")
        atomic_write(d / "population.parquet", lambda t: res.population.samples.to_parquet(t, index=False))
        meta = pd.DataFrame({"source": res.population.source.astype(str), "weight": res.weights})
        if res.population.label is not None:
            meta["label"] = res.population.label.astype(str)
        atomic_write(d / "meta.parquet", lambda t: meta.to_parquet(t, index=False))
        if isinstance(res.population.genome, np.ndarray):  # the generator's own codes (bins): vary() reads them
            atomic_write_npz(d / "genome.npz", {"genome": res.population.genome})
        res.ledger.save(d / "ledger.json")
        if self.schema_ is not self.schema_given_:  # the DP resolution (released bins): sample() needs it
            self.schema_.save(d / "resolved_schema.json")
        if isinstance(getattr(self, "backend_", None), TreeBackend):  # released marginals: sample() varies with it
            tree = self.backend_
            fams = getattr(tree, "triples", {})  # a two-parent network's three-way tables (structure="bn2")
            keys = [[n] for n in tree.p1] + [[*k, *tree.res.get(k, (PAIR_BINS,) * len(k))]
                                             for k in [*tree.pairs, *fams]]
            arrays = {f"m{i}": np.asarray(v) for i, v in
                      enumerate([*tree.p1.values(), *tree.pairs.values(), *fams.values()])}
            for name, dec in tree.decoders.items():
                arrays.update(dec.to_arrays(f"d{tree.schema.names.index(name)}_"))
            if fams:
                arrays["order"] = np.array(json.dumps([o[0] for o in tree.order]))
            atomic_write_npz(d / "generator.npz", {"keys": np.array(json.dumps(keys)), **arrays})
        params = {k: getattr(self, k) for k in self.PARAMS}
        if not isinstance(self.backend, str):  # a generator object: its name is kept; load() needs it again
            params["backend"] = None
            params["backend_name"] = getattr(self.backend, "name", type(self.backend).__name__)
        atomic_write_json(d / "settings.json", {"params": params, "history": res.history,
                                                "n_hat": getattr(self, "n_hat_", None)})
        return d

    @classmethod
    def load(cls, directory: str | Path, **runtime: Any) -> PESynthesizer:
        """A saved synthesizer, every constructor argument restored. ``runtime`` gives what JSON cannot hold
        (``on_event``, ``vote_fn``, a ``backend`` object) or overrides a saved argument."""
        d = Path(directory)
        schema = Schema.load(d / "schema.json")
        st = json.loads((d / "settings.json").read_text())
        params = {k: v for k, v in st["params"].items() if k in cls.PARAMS}
        if params.get("backend") is None:
            params.pop("backend", None)
        syn = cls(schema, **{**params, **runtime})
        meta = pd.read_parquet(d / "meta.parquet")
        genome = None
        if (d / "genome.npz").exists():
            with np.load(d / "genome.npz", allow_pickle=False) as z:
                genome = z["genome"].copy()
        pop = Population(pd.read_parquet(d / "population.parquet"), meta["source"].to_numpy(object),
                         np.full(len(meta), -1, np.int64), genome,
                         meta["label"].to_numpy(object) if "label" in meta else None)
        led = Ledger.load(d / "ledger.json")
        syn.result = EvolutionResult(pop, meta["weight"].to_numpy(float), led, st.get("history", []))
        syn.ledger = led
        if st.get("n_hat") is not None:
            syn.n_hat_ = int(st["n_hat"])
        if (d / "resolved_schema.json").exists():
            syn.schema_ = Schema.load(d / "resolved_schema.json")
        syn.backend_ = None  # unknown generator: sample() draws without varying unless asked to
        if (d / "generator.npz").exists():
            from pe_tabular.tables.resolution import Decoder

            with np.load(d / "generator.npz", allow_pickle=False) as z:
                keys = json.loads(str(z["keys"]))
                arrays = [z[f"m{i}"] for i in range(len(keys))]
                decoders = {n: Decoder.from_arrays(z, f"d{j}_") for j, n in enumerate(syn.schema_.names)
                            if f"d{j}_sub" in z.files}
                order = json.loads(str(z["order"])) if "order" in z.files else None
            one = {k[0]: a for k, a in zip(keys, arrays) if len(k) == 1}
            tables = {tuple(k[:len(k) // 2]): a for k, a in zip(keys, arrays) if len(k) > 1}
            res = {tuple(k[:len(k) // 2]): tuple(k[len(k) // 2:]) for k in keys if len(k) > 1}
            pairs = {k: a for k, a in tables.items() if len(k) == 2}
            if order is None:
                syn.backend_ = TreeBackend(syn.schema_, one, pairs, decoders=decoders, res=res)
            else:
                from pe_tabular.tables.generators.cliques import BayesNetBackend

                triples = {k: a for k, a in tables.items() if len(k) == 3}
                syn.backend_ = BayesNetBackend(syn.schema_, one, pairs, triples, order, decoders=decoders, res=res)
        return syn


def to_external(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Internal representation → user-facing values (integers as ints, numbers on a decimal grid rounded to
    its places, datetimes as timestamps); a missing value stays missing (an empty CSV cell, a Parquet null)."""
    out = df.copy()
    for c in schema.columns:
        if c.is_categorical:
            continue
        if c.type == "datetime":
            out[c.name] = from_epoch_seconds(out[c.name])
        elif c.rounding == 1.0:
            out[c.name] = pd.to_numeric(out[c.name]).round().astype("Int64")
        elif (places := decimal_places(c.rounding)) is not None:  # 41.15, not 41.150000000000006 in a CSV
            out[c.name] = pd.to_numeric(out[c.name]).round(places)
    return out[schema.names]


__all__ = ["PESynthesizer", "Release", "to_external"]
