"""The Private Evolution loop (Lin et al., ICLR 2024, Alg. 1; Xie et al., ICML 2024 for the
variation/selection schedule): candidates from ``random``, private rows vote for their nearest
candidates, the vote histogram is released with Gaussian noise, candidates are resampled by noisy
count and varied, repeat. The only thing that touches private data is ``_vote``, and its only output
that leaves this module is the *noisy* histogram, released through the one release path
(:mod:`pe_tabular.privacy.release`: charged to the ledger before the noise is drawn).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pe_tabular.backends.base import Backend
from pe_tabular.checkpoint import Checkpointer
from pe_tabular.distance import Encoder, L2Metric
from pe_tabular.errors import ConfigError  # re-exported: wings still import it from here
from pe_tabular.population import Population
from pe_tabular.privacy.ledger import Ledger
from pe_tabular.privacy.noise import NoiseSource
from pe_tabular.privacy.release import ReleasePath, Spec
from pe_tabular.privacy.sampling import PoissonSample
from pe_tabular.privacy.schedules import BudgetPolicy, Scheduled
from pe_tabular.source import ProgressSteps
from pe_tabular.voting.histogram import clip_counts, select, vote_histogram
from pe_tabular.voting.registry import VoteFn, class_conditional_nearest, get_voter

log = logging.getLogger(__name__)
Event = dict[str, Any]


def _expand(name: str, value: float | Sequence[float], length: int, cast: Callable = float) -> tuple:
    if isinstance(value, int | float | np.integer | np.floating):
        return tuple(cast(value) for _ in range(length))
    vals = tuple(cast(v) for v in value)
    if len(vals) != length:
        raise ConfigError(f"`{name}` schedule has {len(vals)} entries but needs {length} "
                          f"(one per {'variation step' if name == 'degree' else 'iteration'})", name)
    return vals


@dataclass(frozen=True)
class EvolutionConfig:
    """Settings of one PE run. ``population[t]`` is the size voted on at iteration t+1;
    ``degrees[t]`` the variation degree between votes t+1 and t+2 (so T−1 entries)."""

    iterations: int
    population: tuple[int, ...]
    degrees: tuple[float, ...]
    k: int = 1
    threshold: float = 0.0
    selection: str = "sample"
    keep_selected: float = 0.0
    lookahead: int = 0
    voter: str = "auto"
    sampling_rate: float = 1.0  # q < 1: each vote on a Poisson subsample of the private units (PLD accounting)

    @classmethod
    def build(cls, iterations: int, population: int | Sequence[int], degree: float | Sequence[float] = 0.5,
              **kw: Any) -> EvolutionConfig:
        if not isinstance(iterations, int | np.integer) or iterations < 1:
            raise ConfigError(f"`iterations` must be a positive integer, got {iterations!r}", "iterations")
        cfg = cls(int(iterations), _expand("population", population, iterations, int),
                  _expand("degree", degree, iterations - 1), **kw)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if any(n < 2 for n in self.population):
            raise ConfigError(f"`population` sizes must be >= 2, got {list(self.population)}", "population")
        if any(not 0.0 <= d <= 1.0 for d in self.degrees):
            raise ConfigError(f"variation degrees (`degree`) must lie in [0, 1], got {list(self.degrees)}", "degree")
        if self.k < 1 or self.k > min(self.population):
            raise ConfigError(f"`k` must be between 1 and the smallest population ({min(self.population)})", "k")
        if self.selection not in ("sample", "systematic", "rank"):
            raise ConfigError(f"`selection` must be 'sample', 'systematic' or 'rank', got {self.selection!r}",
                              "selection")
        if not 0.0 <= self.keep_selected < 1.0:
            raise ConfigError(f"`keep_selected` must be in [0, 1), got {self.keep_selected}", "keep_selected")
        if self.lookahead < 0:
            raise ConfigError(f"`lookahead` must be >= 0, got {self.lookahead}", "lookahead")
        if self.threshold < 0:
            raise ConfigError(f"`threshold` must be >= 0, got {self.threshold}", "threshold")
        if not 0.0 < self.sampling_rate <= 1.0:
            raise ConfigError(f"`sampling_rate` must be in (0, 1], got {self.sampling_rate}", "sampling_rate")


@dataclass
class EvolutionResult:
    population: Population
    weights: np.ndarray  # clipped noisy counts of the final vote (post-processing of a release)
    ledger: Ledger
    history: list[dict[str, Any]] = field(default_factory=list)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Indices of n samples ∝ final noisy counts (uniform if none survived). Systematic resampling:
        a multinomial draw would add sampling noise of order √(cells/n) to every marginal of the output
        on top of the privacy noise; the low-variance draw reproduces the weighted population's
        marginals up to rounding."""
        return select(self.weights, n, rng, threshold=0.0, mode="systematic").index


def allocate(n: int, shares: dict[Any, float], minimum: int = 2) -> dict[Any, int]:
    """Split n over classes ∝ shares (largest remainder), at least ``minimum`` per class.

    Class-conditional voting needs k candidates in every class a private row may hold; giving every
    declared class at least k (a public rule) keeps the run's control flow independent of which
    classes the private data holds (a class held by one private row must not crash the run)."""
    labels = list(shares)
    s = np.clip(np.array([shares[c] for c in labels], dtype=float), 0, None)
    s = s / s.sum() if s.sum() > 0 else np.full(len(s), 1 / len(s))
    raw = s * n
    base = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - base), kind="stable")[: n - base.sum()]:
        base[i] += 1
    return {c: max(int(b), minimum) for c, b in zip(labels, base)}


class Evolution:
    """Runs PE with one backend and one encoder over pre-encoded private codes."""

    def __init__(self, backend: Backend, encoder: Encoder, config: EvolutionConfig, policy: BudgetPolicy,
                 ledger: Ledger, noise: NoiseSource, rng: np.random.Generator,
                 on_event: Callable[[Event], None] | None = None, stage: str = "", vote_fn: VoteFn | None = None):
        self.backend, self.encoder, self.cfg, self.policy = backend, encoder, config, policy
        self.ledger, self.noise, self.rng = ledger, noise, rng
        self.on_event = on_event or (lambda e: None)
        self.stage = stage  # names this run's releases in the ledger (e.g. "warm-up")
        ss = getattr(rng.bit_generator, "seed_seq", None)
        if not isinstance(ss, np.random.SeedSequence):  # a generator built from a state: fresh OS entropy
            ss = np.random.SeedSequence()
        self._seed = (ss.entropy, (*ss.spawn_key, zlib.crc32(stage.encode())))
        self.nearest = get_voter(config.voter)
        self.vote_fn = vote_fn  # None: vote in this process; else e.g. a SourceVoter (its contract: Δ ≤ 1)
        if config.lookahead and not isinstance(encoder.metric, L2Metric):
            raise ConfigError("`lookahead` needs a vector (L2) encoder: the mean of mixed-type codes is undefined",
                              "lookahead")
        if config.sampling_rate < 1.0:
            # PLD composition needs a schedule fixed in advance at the rate the votes use (privacy.subsampling)
            if not isinstance(policy, Scheduled) or policy.sampling_rate != config.sampling_rate:
                raise ConfigError("`sampling_rate` < 1 needs a fixed budget schedule at the same rate "
                                  "(schedules.subsampled(...)); the adaptive schedule cannot be accounted with "
                                  "subsampling", "sampling_rate")
            if vote_fn is not None and not getattr(vote_fn, "supports_sampling", False):
                raise ConfigError("`sampling_rate` < 1 needs a vote function that subsamples where the data lives "
                                  "(voting.streaming.SourceVoter)", "sampling_rate")

    def _iteration_rng(self, t: int) -> np.random.Generator:
        """A fresh generator for the work after iteration ``t``'s population is saved, from the run's seed
        material (``--seed``, or OS entropy) and ``t`` only. Why: a checkpoint holds the RNG state, and the
        state a generator reaches depends on how much work it did — which may depend on the private data (the
        whole-pipeline audit saw a checkpoint's ``has_uint32`` flag follow one clipped row, issue 23). A state
        derived from public seed material and the iteration number says nothing about the data, and a resumed
        run rebuilds exactly the generator the uninterrupted one used."""
        entropy, key = self._seed
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=(*key, t))))

    # -- building blocks ------------------------------------------------------------------------
    def _random(self, n: int, shares: dict[Any, float] | None) -> Population:
        if shares is None:
            return self.backend.random(n, rng=self.rng)
        return Population.concat([self.backend.random(m, label=c, rng=self.rng)
                                  for c, m in allocate(n, shares, max(2, self.cfg.k)).items()])

    def _vary(self, parents: Population, degree: float) -> Population:
        out = self.backend.vary(parents, degree, self.rng)
        if len(out) != len(parents):
            raise RuntimeError(f"backend {self.backend.name} returned {len(out)} variations for {len(parents)}")
        return Population(out.samples, out.source, parents.parent, out.genome, parents.label)

    def _candidate_codes(self, pop: Population, t: int) -> np.ndarray:
        if not self.cfg.lookahead or t >= self.cfg.iterations:
            return self.encoder.encode(pop.samples)
        deg = self.cfg.degrees[t - 1]
        acc = np.zeros_like(self.encoder.encode(pop.samples), dtype=np.float64)
        for _ in range(self.cfg.lookahead):
            acc += self.encoder.encode(self._vary(pop, deg).samples)
        return (acc / self.cfg.lookahead).astype(np.float32)

    def _vote(self, private: np.ndarray, pop: Population, t: int, labels: np.ndarray | None,
              groups: np.ndarray | None, sample: PoissonSample | None = None) -> np.ndarray:
        cand = self._candidate_codes(pop, t)
        if len(private) == 0:  # nothing votes: the release is pure noise (no error: an error would reveal n = 0)
            return np.zeros(len(pop))
        done = [0]
        steps = ProgressSteps(lambda frac: self.on_event({"type": "vote_progress", "iteration": t, "fraction": frac}))

        def progress(n: int) -> None:  # fixed public steps, never a row count or a per-block fraction (block/n)
            done[0] += n
            steps(done[0] / max(len(private), 1))

        if self.vote_fn is not None:
            kw = {} if sample is None else {"sample": sample}
            counts = np.asarray(self.vote_fn(private, cand, self.encoder.metric, self.cfg.k, labels, pop.label,
                                             groups, progress, **kw), dtype=np.float64)
            if counts.shape != (len(pop),):
                raise RuntimeError(f"vote_fn returned counts of shape {counts.shape} for {len(pop)} candidates")
            return counts
        if sample is not None:  # Poisson subsample: each row, or each group as a whole, in with prob. q
            if groups is None:
                keep = sample.row_mask(0, 0, len(private))
            else:
                uniq, inv = np.unique(np.asarray(groups), return_inverse=True)
                keep = (sample.unit_uniforms(uniq.size) < sample.rate)[inv.ravel()]
            private = np.asarray(private)[keep]
            labels = None if labels is None else np.asarray(labels)[keep]
            groups = None if groups is None else np.asarray(groups)[keep]
            if len(private) == 0:
                return np.zeros(len(pop))
        nn = class_conditional_nearest(self.nearest, private, cand, self.encoder.metric, self.cfg.k,
                                       labels, pop.label, progress=progress)
        return vote_histogram(nn, len(pop), groups)

    def _next_population(self, pop: Population, noisy: np.ndarray, t: int,
                         shares: dict[Any, float] | None) -> tuple[Population, bool]:
        n_next = self.cfg.population[t]
        if pop.label is None:
            sel = select(noisy, n_next, self.rng, self.cfg.threshold, self.cfg.selection)
            idx, fallback = sel.index, sel.fallback
        else:
            parts, fallback = [], False
            for c, m in allocate(n_next, shares or {}, max(2, self.cfg.k)).items():
                cidx = np.flatnonzero(pop.label == c)
                sel = select(noisy[cidx], m, self.rng, self.cfg.threshold, self.cfg.selection)
                parts.append(cidx[sel.index])
                fallback |= sel.fallback
            idx = np.concatenate(parts)
        parents = pop.take(idx).with_parents(idx)
        n_keep = int(round(self.cfg.keep_selected * len(parents)))
        varied = self._vary(parents.take(np.arange(n_keep, len(parents))), self.cfg.degrees[t - 1])
        return Population.concat([parents.take(np.arange(n_keep)), varied]), fallback

    def _stats(self, t: int, noisy: np.ndarray, pop: Population, sigma: float, fallback: bool) -> Event:
        w = clip_counts(noisy, self.cfg.threshold)
        tot = w.sum()
        top = np.sort(w)[::-1][: max(1, len(w) // 10)].sum() / tot if tot > 0 else 0.0
        share = {}
        for s in np.unique(pop.source):
            share[str(s)] = float(w[pop.source == s].sum() / tot) if tot > 0 else 0.0
        return {"type": "iteration", "iteration": t, "sigma": sigma, "population": len(pop),
                "above_threshold": float(np.mean(noisy >= max(self.cfg.threshold, 1e-12))),
                "top10_share": float(top), "ess": float(tot**2 / (w**2).sum()) if tot > 0 else 0.0,
                "clipped_mass": float(tot),
                "source_share": share, "fallback": bool(fallback),
                "epsilon_so_far": self.ledger.epsilon, **self._generator_counters()}

    def _generator_counters(self) -> Event:
        """``{"generators": {source: counters}}`` when the backend keeps any (an API-backed generator's requests,
        tokens, seconds, rows parsed and rejected: work done on synthetic rows and public settings only), else {}.
        Cumulative since the start of the run, taken after the iteration's variation step."""
        counters = getattr(self.backend, "counters", None)
        got = counters() if callable(counters) else None
        return {"generators": got} if got else {}

    # -- the loop -------------------------------------------------------------------------------
    def run(self, private: np.ndarray, *, private_labels: np.ndarray | None = None,
            label_shares: dict[Any, float] | None = None, groups: np.ndarray | None = None,
            checkpoint: Checkpointer | None = None, resume: bool = False) -> EvolutionResult:
        if private_labels is not None and label_shares is None:
            raise ConfigError("class-conditional runs need label shares (public, or DP-estimated first)")
        if checkpoint is not None:
            checkpoint.check_config({**asdict(self.cfg), "backend": self.backend.name,
                                     "labels": sorted(map(str, label_shares)) if label_shares else None},
                                    resume)
        history: list[Event] = []
        saved = checkpoint.latest_population() if (checkpoint is not None and resume) else None
        if saved is not None:
            t0, pop, _, history = saved
            self.rng = self._iteration_rng(t0)  # the generator the uninterrupted run used from here
            for s in range(1, t0):  # votes released before the interruption belong to this run's ledger too
                if (old := checkpoint.load_release(f"vote_{s:03d}")) is not None:
                    self.ledger.releases.append(old[1])
            log.info("resuming at iteration %d from %s", t0, checkpoint.dir)
        else:
            self.rng = self._iteration_rng(0)
            t0, pop = 1, self._random(self.cfg.population[0], label_shares)
            self.rng = self._iteration_rng(1)
            if checkpoint is not None:
                checkpoint.save_population(1, pop, self.rng)

        path = ReleasePath(self.ledger, self.noise, checkpoint)
        voted: tuple[Population, np.ndarray] | None = None
        for t in range(t0, self.cfg.iterations + 1):
            self.on_event({"type": "iteration_start", "iteration": t, "total": self.cfg.iterations})
            key = f"vote_{t:03d}"
            if checkpoint is not None and checkpoint.load_release(key) is not None:
                sigma = 0.0  # restored below, with its recorded sigma
            else:
                sigma = self.policy.next_sigma(t, self.ledger, history)
                if sigma is None:
                    log.info("budget policy stops after %d iterations", t - 1)
                    break
            q = self.cfg.sampling_rate
            sample = PoissonSample.secret(q, self.noise, (t, 0)) if q < 1.0 else None  # secret, like noise
            noisy, rel = path.release_recorded(
                Spec(key, f"{self.stage} vote histogram, iteration {t}".lstrip(), sigma, iteration=t, stream=(t, 0),
                     sampling_rate=q),
                lambda p=pop, i=t, s=sample: self._vote(private, p, i, private_labels, groups,
                                                        **({} if s is None else {"sample": s})))
            sigma = rel.sigma
            voted = (pop, noisy)
            fallback = False
            if t < self.cfg.iterations:
                if (observe := getattr(self.backend, "observe", None)) is not None:
                    observe(pop, noisy, t, self.cfg.iterations)  # optional feedback: post-processing only
                nxt, fallback = self._next_population(pop, noisy, t, label_shares)
            ev = self._stats(t, noisy, pop, sigma, fallback)
            history.append(ev)
            self.on_event(ev)
            if t < self.cfg.iterations:
                pop = nxt
                self.rng = self._iteration_rng(t + 1)
                if checkpoint is not None:
                    checkpoint.save_population(t + 1, pop, self.rng, history)
        if voted is None:
            raise RuntimeError("the budget policy allowed no vote at all; raise --epsilon")
        return EvolutionResult(voted[0], clip_counts(voted[1], self.cfg.threshold), self.ledger, history)
