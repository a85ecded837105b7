"""``PESynthesizer``: the fit/sample facade analysts know from scikit-learn and SDV.

    syn = PESynthesizer(schema, epsilon=1.0, delta=1e-5).fit(private_df)
    synthetic = syn.sample(32_000)
    syn.privacy_report()

``fit`` reads as its steps: validate (the arguments, then the private rows against the public schema:
nothing is spent on invalid input) → measure (``tables.plan``: every DP release before the votes, one value)
→ evolve (Private Evolution on a generator fitted on the measurements) → rake (the final population onto
the released marginals). ``sample`` draws: post-processing, rows ∝ the raked weights; asking for more rows
than the final population draws duplicates and, optionally, light variations of them.
"""

from __future__ import annotations

import dataclasses
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
from pe_tabular.checkpoint import Checkpointer
from pe_tabular.errors import ConfigError
from pe_tabular.evolution import EvolutionConfig, EvolutionResult
from pe_tabular.io_utils import atomic_write, atomic_write_json, atomic_write_npz, from_epoch_seconds
from pe_tabular.measure.schedule import degree_schedule
from pe_tabular.memory import MemoryGuard
from pe_tabular.population import Population
from pe_tabular.privacy.accountant import gdp_mu
from pe_tabular.privacy.ledger import Ledger, Release
from pe_tabular.privacy.schedules import make_policy
from pe_tabular.runkit import RunKit
from pe_tabular.source import DEFAULT_CHUNK_ROWS
from pe_tabular.tables import labels
from pe_tabular.tables.budget import BudgetShares
from pe_tabular.tables.encoder import TableEncoder
from pe_tabular.tables.generators.cliques import BayesNetBackend
from pe_tabular.tables.generators.statistical import StatisticalBackend
from pe_tabular.tables.generators.tree import TreeBackend
from pe_tabular.tables.plan import Measured, RunSettings, measure, public_inputs, schema_releases
from pe_tabular.tables.private import PrivateRows
from pe_tabular.tables.schema import Schema, decimal_places
from pe_tabular.tables.votes import vote_inputs

log = logging.getLogger(__name__)
DUPLICATE_VARY = 0.25  # default variation degree of repeated output rows (see PESynthesizer.sample)
SAMPLE_CHUNK = 250_000  # output rows per chunk of sample_chunks (the CLI writes a large output chunk by chunk)


class PESynthesizer:
    """Differentially private tabular synthesizer by Private Evolution (no model training).

    Shaped like scikit-learn / SDV estimators: every constructor argument is stored unchanged under its own
    name (``get_params``/``set_params``); the arguments are validated at once (so a bad one is refused
    before any data is read, and again by ``fit``), but everything derived from them or learnt from data
    is set by ``fit`` (or ``load``) only and carries a trailing underscore (``config_``, ``label_``,
    ``mu_``, ``budget_``, ``result_``, ``ledger_``); ``sample`` is post-processing; ``save``/``load``
    round-trip every argument that can be written to JSON (``on_event`` and ``vote_fn`` are run-time hooks,
    given again to ``load``). Errors name arguments; the command line maps them to flags.

    The six budget shares stay flat arguments (``count_share``, ``label_budget_share``,
    ``resolution_share``, ``calibrate`` — the one-way marginals' share —, ``structure_share``,
    ``pair_share``: the names the command line, scripts and saved models use); ``fit`` reads them as one
    frozen :class:`~pe_tabular.tables.budget.BudgetShares` (``budget_``).
    """

    def __init__(
        self, schema: Schema, epsilon: float = 1.0, delta: float = 1e-5, *,
        backend: Backend | str = "statistical", iterations: int = 2, population: int | Sequence[int] = 16000,
        k: int = 16, degree: float | Sequence[float] | None = None, threshold: float = 0.0,
        budget: str = "uniform", label: str | None | bool = True, label_shares: Mapping[str, float] | None = None,
        label_budget_share: float = 0.02, calibrate: float = 0.20, pair_share: float = 0.47,
        structure_share: float = 0.05, count_share: float = 0.01, resolution_share: float = 0.10,
        votes: bool = True, min_vote_snr: float = 0.1, keep_selected: float = 0.0,
        voter: str = "auto",
        weights: Mapping[str, float] | None = None, on_invalid: str = "error", seed: int | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None, vote_fn: Any = None, target: str | None = None,
        structure: str = "tree",
    ):
        self.schema, self.epsilon, self.delta = schema, epsilon, delta
        self.backend, self.iterations, self.population, self.k, self.degree = backend, iterations, population, k, degree
        self.threshold, self.budget, self.label, self.label_shares = threshold, budget, label, label_shares
        self.label_budget_share, self.calibrate, self.pair_share = label_budget_share, calibrate, pair_share
        self.structure_share, self.keep_selected = structure_share, keep_selected
        self.count_share, self.resolution_share, self.votes = count_share, resolution_share, votes
        self.min_vote_snr = min_vote_snr
        self.voter, self.weights = voter, weights
        self.on_invalid, self.seed, self.on_event = on_invalid, seed, on_event
        self.target = target  # the analyst's task column (see _settings)
        self.structure = structure  # "tree" (Chow-Liu forest) or "bn2" (families of <= 2 parents, tables/families.py)
        self.vote_fn = vote_fn  # (codes, voter) -> VoteFn: None = SourceVoter; Dask: dask_source.DaskVoting
        self._settings()  # refuse bad arguments now; nothing derived is kept before fit

    #: the arguments ``save`` writes and ``load`` restores (JSON-able; ``schema`` is saved on its own)
    PARAMS = ("epsilon", "delta", "backend", "iterations", "population", "k", "degree", "threshold", "budget",
              "label", "label_shares", "label_budget_share", "calibrate", "pair_share", "structure_share",
              "count_share", "resolution_share", "votes", "min_vote_snr", "keep_selected", "voter", "weights", "target",
              "structure",
              "on_invalid", "seed")
    #: arguments added after checkpoints were first written, at the value that gives the runs made before them:
    #: at that value they stay out of a checkpoint's identity, so a checkpoint written before them still resumes
    ADDED_LATER = {"target": None, "structure": "tree"}

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Every constructor argument, as given (scikit-learn's convention; ``deep`` is accepted for it)."""
        return {"schema": self.schema, **{k: getattr(self, k) for k in self.PARAMS},
                "on_event": self.on_event, "vote_fn": self.vote_fn}

    def set_params(self, **params: Any) -> PESynthesizer:
        """Change constructor arguments (scikit-learn's convention), validated together: on an invalid value
        nothing changes. A fitted synthesizer keeps its fit until ``fit`` runs again."""
        known = self.get_params()
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ValueError(f"unknown argument(s) {unknown} for PESynthesizer; valid: {sorted(known)}")
        for name, value in params.items():
            setattr(self, name, value)
        try:
            self._settings()
        except Exception:
            for name in params:
                setattr(self, name, known[name])
            raise
        return self

    def _settings(self) -> RunSettings:
        """The run settings derived from the arguments (validating them); stores nothing."""
        schema = self.schema
        if self.structure not in ("tree", "bn2"):
            raise ConfigError("`structure` must be 'tree' or 'bn2'", "structure")
        if self.target is not None and self.target not in schema.names:
            raise ConfigError(f"`target` {self.target!r} is not a schema column", "target")
        # a task names its column: a class target is the class column (class-conditional votes), a number one
        # turns class-conditioning off; either way every pair with it is measured (tables.plan.task_pairs)
        task_label = (self.target if schema[self.target].is_categorical else None) if self.target else self.label
        label = labels.class_column(schema, task_label)
        deg = self.degree if self.degree is not None else degree_schedule(self.iterations, 0.2, 0.1)
        config = EvolutionConfig.build(self.iterations, self.population, deg, k=self.k, threshold=self.threshold,
                                       keep_selected=self.keep_selected, voter=self.voter)
        budget = BudgetShares.from_arguments(self.get_params())
        unknown = sorted(set(self.weights or {}) - set(schema.names))
        if unknown:  # refused before any release (the encoder would refuse them only at the votes)
            raise ConfigError(f"`weights` names unknown columns {unknown}", "weights")
        return RunSettings(
            schema=schema.with_label(label) if label != schema.label else schema,  # backends read the class column
            label=label, label_shares=labels.public_shares(schema, label, self.label_shares), budget=budget,
            epsilon=self.epsilon, delta=self.delta, mu=gdp_mu(float(self.epsilon), float(self.delta)),
            config=config, votes=self.votes, min_vote_snr=self.min_vote_snr, target=self.target,
            structure=self.structure)

    def _keep_settings(self, s: RunSettings) -> None:
        """The derived settings as fitted attributes (trailing _)."""
        self.mu_, self.label_, self.label_shares_, self.config_, self.budget_ = (
            s.mu, s.label, s.label_shares, s.config, s.budget)
        self.classes_ = labels.label_classes(s.schema[s.label]) if s.label else None  # a missing label: a class
        self.schema_given_ = self.schema_ = s.schema  # fit() refines schema_ with the DP resolution

    def vote_snr(self, n_rows: float) -> float:
        """Expected vote mass per final candidate over the vote noise σ, from a released row count
        (:meth:`~pe_tabular.tables.plan.RunSettings.vote_snr`); votes are taken only above ``min_vote_snr``."""
        return self._settings().vote_snr(n_rows)

    # -- API ------------------------------------------------------------------------------------
    def fit(self, data: Any, *, checkpoint: str | Path | Checkpointer | None = None, resume: bool = False,
            input_fingerprint: Any = None, show_invalid: Callable[[str], None] | None = None,
            chunk_rows: int = DEFAULT_CHUNK_ROWS, max_memory: str | int | None = None,
            na_values: Sequence[str] = ()) -> PESynthesizer:
        """Run the DP measurements and the evolution on ``data``: a pandas or polars frame, or a
        :class:`~pe_tabular.source.ChunkedSource` (``ChunkedSource.scan("folder/")``: Parquet / CSV files
        streamed in chunks, never held whole). Both go the same way (``tables.private``): one validation pass
        into a private on-disk cache, then every release as a sum over chunks, and the votes on compact codes.

        The steps: validate (the arguments, then the rows against the public schema: nothing is spent on
        invalid input) → measure (``tables.plan``: every release before the votes) → evolve (PE votes where
        they carry signal, on a generator fitted on the measurements) → rake (the final population onto the
        released marginals); ``sample`` then draws (post-processing).

        ``checkpoint``: a directory (or an open ``Checkpointer``) for per-release checkpoints; ``resume``
        continues the run it holds. ``input_fingerprint`` (e.g. ``checkpoint.input_fingerprint(path)``)
        identifies the input file, so a resume on other data is refused. ``show_invalid`` receives offending
        values and rows of invalid input (local terminal only, see ``schema.validate``). ``chunk_rows`` and
        ``max_memory`` (``MemoryGuard``) apply to a frame; a source carries its own. ``na_values``: more strings
        that mean "missing" in every input (a CSV also takes pandas' own: empty, ``NA``, ``NaN``, ``null``…)."""
        settings = self._settings()
        rows = PrivateRows.open(data, settings.schema, on_invalid=self.on_invalid, show=show_invalid,
                                chunk_rows=chunk_rows, guard=MemoryGuard.from_flag(max_memory),
                                on_event=self.on_event, na_values=na_values)
        try:
            rng = np.random.default_rng(self.seed)
            kit = self._open_run(settings, checkpoint, resume, input_fingerprint)
            measured = measure(rows, settings, kit.path)
            backend = self._generator(measured.schema, measured.marginals, measured.tree)
            result = self._evolve(rows, settings, measured, backend, kit, rng)
            measured.reweight(result)
        finally:
            rows.close()
        self._keep_settings(settings)
        self._keep_fit(measured, backend, result)
        return self

    def _open_run(self, s: RunSettings, checkpoint: str | Path | Checkpointer | None, resume: bool,
                  input_fingerprint: Any) -> RunKit:
        """The run's noise, checkpoint (identified by the arguments, schema and input) and ledger, whose budget
        leaves out the δ a DP schema and the resolution stage pay outside the GDP curve."""
        extra = sum(r.get("extra_delta", 0.0) for r in (s.schema.dp_cost or {}).get("releases", []))
        extra += s.delta_reserved
        mu = s.mu if extra == 0 else gdp_mu(self.epsilon, self.delta - extra)
        settings = {k: v for k, v in self.get_params().items()
                    if k in self.PARAMS and not (k in self.ADDED_LATER and v == self.ADDED_LATER[k])}
        return RunKit.open(self.delta, mu, checkpoint=checkpoint, resume=resume,
                           run={"settings": settings, "schema": s.schema.to_dict(), "input": input_fingerprint},
                           public_inputs=public_inputs(s), charged=schema_releases(s))

    def _generator(self, schema: Schema, marginals: Mapping[str, np.ndarray], tree: TreeBackend | None) -> Backend:
        """The evolution's generator: a given object as it is; by name, the tree generator fitted on the
        measurements (or the statistical one without structure), which mixtures and LLM fallbacks also get."""
        if not isinstance(self.backend, str):
            return self.backend
        if self.backend == "statistical":
            return tree if tree is not None else StatisticalBackend(schema, marginals=dict(marginals))
        from pe_tabular.tables.generators.factory import make_backend  # optional backends (llm, sdv, mix)

        if tree is None:
            return make_backend(self.backend, schema)
        return make_backend(self.backend, schema, statistical=lambda: tree)

    def _evolve(self, rows: PrivateRows, s: RunSettings, measured: Measured, backend: Backend, kit: RunKit,
                rng: np.random.Generator) -> EvolutionResult:
        """Private Evolution on what the measurements left of the budget; without votes (they would be noise,
        or ``votes=False``) the generator alone draws the final population (the measurements had the budget)."""
        if not measured.votes:
            pop = backend.random(s.config.population[-1], rng=rng)
            return EvolutionResult(pop, np.ones(len(pop)), kit.ledger, [])
        rho_pe = kit.ledger.remaining_rho()
        policy = make_policy(self.budget, math.sqrt(rho_pe) if math.isfinite(rho_pe) else math.inf,
                             s.config.iterations, threshold=s.config.threshold)
        cfg = explore_every_source(s.config, backend)
        encoder = TableEncoder(measured.schema, self.weights)
        private, vote_fn = vote_inputs(rows, encoder.encode, s.label, cfg.voter, self.vote_fn)
        return kit.evolve(backend, encoder, cfg, policy, private, rng, on_event=self.on_event, vote_fn=vote_fn,
                          label_shares=measured.class_shares)

    def _keep_fit(self, m: Measured, backend: Backend, result: EvolutionResult) -> None:
        """What fit learnt, as fitted attributes (trailing _)."""
        self.n_hat_, self.votes_, self.shares_ = m.n_hat, m.votes, m.class_shares
        self.schema_, self.decoders_, self.marginals_ = m.schema, m.decoders, m.marginals
        self.pairs_, self.res_ = m.pairs, m.res
        self.backend_ = backend  # the generator the evolution used; sample() varies duplicates with it
        self.result_, self.ledger_ = result, result.ledger

    def _need_fit(self) -> EvolutionResult:
        if "result_" not in vars(self):
            raise RuntimeError("call fit() (or load()) before sample()")
        return self.result_

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
            n = self.n_hat_
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

        backend = self.backend_
        if vary_degree is not None and vary_degree <= 0:
            return {}
        local = (TreeBackend, StatisticalBackend)
        if isinstance(backend, Mixture):
            return {t: (b, vary_degree or DUPLICATE_VARY) for t, b in zip(backend.tags, backend.backends)
                    if vary_degree is not None or isinstance(b, local)}
        if vary_degree is None:
            return {None: (backend, DUPLICATE_VARY)} if isinstance(backend, local) else {}
        return {None: (backend or self._generator(self.schema_, {}, None), vary_degree)}

    def privacy_report(self) -> dict[str, Any]:
        if "ledger_" not in vars(self):
            raise RuntimeError("no privacy report before fit()")
        return self.ledger_.to_dict()

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
        if isinstance(self.backend_, TreeBackend):  # released marginals: sample() varies with it
            atomic_write_npz(d / "generator.npz", self.backend_.to_arrays())
        params = {k: getattr(self, k) for k in self.PARAMS}
        if not isinstance(self.backend, str):  # a generator object: its name is kept; load() needs it again
            params["backend"] = None
            params["backend_name"] = getattr(self.backend, "name", type(self.backend).__name__)
        atomic_write_json(d / "settings.json", {"params": params, "history": res.history,
                                                "n_hat": self.n_hat_})
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
        syn._keep_settings(syn._settings())
        meta = pd.read_parquet(d / "meta.parquet")
        genome = None
        if (d / "genome.npz").exists():
            with np.load(d / "genome.npz", allow_pickle=False) as z:
                genome = z["genome"].copy()
        pop = Population(pd.read_parquet(d / "population.parquet"), meta["source"].to_numpy(object),
                         np.full(len(meta), -1, np.int64), genome,
                         meta["label"].to_numpy(object) if "label" in meta else None)
        led = Ledger.load(d / "ledger.json")
        syn.result_ = EvolutionResult(pop, meta["weight"].to_numpy(float), led, st.get("history", []))
        syn.ledger_ = led
        syn.n_hat_ = int(st["n_hat"]) if st.get("n_hat") is not None else None
        if (d / "resolved_schema.json").exists():
            syn.schema_ = Schema.load(d / "resolved_schema.json")
        syn.backend_ = None  # unknown generator: sample() draws without varying unless asked to
        if (d / "generator.npz").exists():
            with np.load(d / "generator.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
                kind = BayesNetBackend if "order" in arrays else TreeBackend  # a saved network marks its order
                syn.backend_ = kind.from_arrays(syn.schema_, arrays)
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
