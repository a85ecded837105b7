"""Empirical privacy audit: a statistical lower bound on ε from canary records.

A claimed (ε, δ)-DP guarantee says that for neighbouring datasets D and D' = D + canary, every
test S on the output obeys P_D'(S) ≤ e^ε P_D(S) + δ (and the same with D, D' swapped, and for the
complement of S). Running the mechanism many times on D and on D', counting how often a threshold
test fires, and bounding those rates with Clopper–Pearson intervals gives, with 95% confidence, a
*lower bound* on the ε the mechanism really has (Jagielski, Ullman & Oprea, "Auditing
Differentially Private Machine Learning: How Private is Private SGD?", NeurIPS 2020; Nasr, Song,
Thakurta, Papernot & Carlini, "Adversary Instantiation: Lower Bounds for Differentially Private
Machine Learning", IEEE S&P 2021). A lower bound above the claimed ε proves a bug; one below it is
consistent with the claim (it cannot prove it). The threshold and the direction of the test are
chosen on one part of the runs and the bound is computed on the other part, so choosing the best
test does not inflate the bound.

The canary is placed to be *decisive*: its k nearest candidates receive no vote from any other row,
so the only difference between D and D' is the canary's own vote, and the released statistic is
the noisy count(s) of the canary's candidate(s) — for a Gaussian mechanism the likelihood-ratio
(i.e. optimal) test. The mechanisms audited are the library's own functions (``nearest``,
``vote_histogram``, ``ReleasePath``, ``NoiseSource``, ``Evolution``), so a regression in
them shows up here. The deliberately broken variants (noise σ/4; k-NN votes without the 1/√k weight)
exist to show the audit can fail.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.stats import beta

from pe_tabular.distance import L2Metric
from pe_tabular.evolution import Evolution, EvolutionConfig
from pe_tabular.population import Population
from pe_tabular.privacy.accountant import gdp_epsilon, gdp_mu, schedule_sigmas
from pe_tabular.privacy.ledger import Ledger, Release
from pe_tabular.privacy.noise import NoiseSource
from pe_tabular.privacy.release import ReleasePath, Spec
from pe_tabular.privacy.schedules import make_policy
from pe_tabular.voting.histogram import vote_histogram
from pe_tabular.voting.reference import nearest


# -- statistics ----------------------------------------------------------------------------------
def clopper_pearson(successes: np.ndarray | int, trials: int, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-sided binomial confidence interval (lower, upper) for each success count."""
    k = np.asarray(successes, dtype=float)
    a = 1.0 - level
    with np.errstate(invalid="ignore"):
        lo = np.where(k > 0, beta.ppf(a / 2, k, trials - k + 1), 0.0)
        hi = np.where(k < trials, beta.ppf(1 - a / 2, k + 1, trials - k), 1.0)
    return np.nan_to_num(lo, nan=0.0), np.nan_to_num(hi, nan=1.0)


def _log_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((num > 0) & (den > 0), np.log(np.maximum(num, 1e-300) / np.maximum(den, 1e-300)), -np.inf)


def _bounds(fire_out: np.ndarray, fire_in: np.ndarray, n_out: int, n_in: int, delta: float,
            level: float) -> np.ndarray:
    """ε lower bounds (4, n_thresholds) from firing counts of the tests S = {score ≥ thr}.

    Rows: P_D'(S) ≤ e^ε P_D(S) + δ; P_D(S^c) ≤ e^ε P_D'(S^c) + δ; and both with D, D' swapped."""
    out_lo, out_hi = clopper_pearson(fire_out, n_out, level)
    in_lo, in_hi = clopper_pearson(fire_in, n_in, level)
    return np.stack([
        _log_ratio(in_lo - delta, out_hi),              # TPR_lo vs FPR_hi
        _log_ratio((1 - out_hi) - delta, 1 - in_lo),    # TNR_lo vs FNR_hi
        _log_ratio(out_lo - delta, in_hi),              # swapped roles
        _log_ratio((1 - in_hi) - delta, 1 - out_lo),
    ])


def _fires(sorted_scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many scores are ≥ each threshold."""
    return sorted_scores.size - np.searchsorted(sorted_scores, thresholds, side="left")


@dataclass(frozen=True)
class EpsilonBound:
    epsilon_lb: float  # 95% lower bound on ε (0 when no test beats chance)
    threshold: float
    test: int  # which of the four inequalities (see _bounds)
    tpr: float  # P_D'(score ≥ threshold) on the evaluation half
    fpr: float  # P_D(score ≥ threshold) on the evaluation half
    n_eval: int  # runs per side used for the bound


def epsilon_lower_bound(scores_out: np.ndarray, scores_in: np.ndarray, delta: float, level: float = 0.95,
                        select_fraction: float = 0.3, max_thresholds: int = 4000) -> EpsilonBound:
    """Best threshold test chosen on the first ``select_fraction`` of the runs, its ε lower bound on the rest.

    ``scores_out`` are the statistic on D (no canary), ``scores_in`` on D' (with the canary); larger
    should mean "canary present" but all four inequalities are tried, so the sign does not matter.
    Locating a good threshold needs fewer runs than bounding its rates tightly, hence the 30/70 split."""
    s_out, s_in = np.asarray(scores_out, dtype=float), np.asarray(scores_in, dtype=float)
    if s_out.size < 4 or s_in.size < 4:
        raise ValueError("the audit needs at least 4 runs per side")
    if not 0 < select_fraction < 1:
        raise ValueError(f"select_fraction must be in (0, 1), got {select_fraction}")
    h_out = min(max(int(s_out.size * select_fraction), 1), s_out.size - 1)
    h_in = min(max(int(s_in.size * select_fraction), 1), s_in.size - 1)
    sel_out, sel_in = np.sort(s_out[:h_out]), np.sort(s_in[:h_in])
    ev_out, ev_in = np.sort(s_out[h_out:]), np.sort(s_in[h_in:])
    pooled = np.unique(np.concatenate([sel_out, sel_in]))
    if pooled.size > max_thresholds:
        pooled = np.unique(np.quantile(pooled, np.linspace(0, 1, max_thresholds)))
    thr = np.concatenate([pooled, [np.inf]])
    b = _bounds(_fires(sel_out, thr), _fires(sel_in, thr), sel_out.size, sel_in.size, delta, level)
    test, j = np.unravel_index(int(np.argmax(b)), b.shape)
    t = float(thr[j])
    f_out, f_in = int(_fires(ev_out, np.array([t]))[0]), int(_fires(ev_in, np.array([t]))[0])
    lb = float(_bounds(np.array([f_out]), np.array([f_in]), ev_out.size, ev_in.size, delta, level)[test, 0])
    return EpsilonBound(max(lb, 0.0), t, int(test), f_in / ev_in.size, f_out / ev_out.size, int(ev_out.size))


@dataclass(frozen=True)
class AuditResult:
    mechanism: str  # "voting release" or "PE run (...)"
    variant: str  # "correct" or the bug it simulates
    statistic: str
    claimed_epsilon: float
    delta: float
    bound: EpsilonBound
    runs: int  # runs per side (with and without the canary)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def epsilon_lb(self) -> float:
        return self.bound.epsilon_lb

    @property
    def violated(self) -> bool:
        """True when the audit proves the claim wrong (lower bound above the claimed ε)."""
        return self.epsilon_lb > self.claimed_epsilon


# -- the broken variants ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ScaledNoise(NoiseSource):
    """A NoiseSource that adds ``scale``·σ noise while the ledger charges σ (``scale`` < 1 is a bug)."""

    scale: float = 1.0

    def gaussian(self, shape: int | tuple[int, ...], sigma: float, release_key: tuple[int, ...]) -> np.ndarray:
        return super().gaussian(shape, sigma * self.scale, release_key)


def unweighted_vote_histogram(nn_idx: np.ndarray, n_candidates: int, groups: np.ndarray | None = None) -> np.ndarray:
    """DELIBERATELY BROKEN: k-NN votes of weight 1 instead of 1/√k, so the L2 sensitivity is √k, not 1."""
    return vote_histogram(nn_idx, n_candidates, groups) * math.sqrt(nn_idx.shape[1])


class UnweightedEvolution(Evolution):
    """DELIBERATELY BROKEN Evolution whose k-NN vote histograms lack the 1/√k weight."""

    def _vote(self, private: np.ndarray, pop: Population, t: int, labels: np.ndarray | None,
              groups: np.ndarray | None) -> np.ndarray:
        return super()._vote(private, pop, t, labels, groups) * math.sqrt(self.cfg.k)


# -- (a) the voting release alone -------------------------------------------------------------------
def _decisive_setup(n_private: int, n_candidates: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-D private rows in [0, 0.3], candidates on a grid of [0, 1], the canary at 1: its k nearest
    candidates are the top k grid points, which no other row reaches when 0.3 + k/m < 1 − k/m."""
    private = np.linspace(0.0, 0.3, n_private, dtype=np.float32)[:, None]
    cand = np.linspace(0.0, 1.0, n_candidates, dtype=np.float32)[:, None]
    canary = np.ones((1, 1), dtype=np.float32)
    return private, cand, canary


def audit_voting(epsilon: float, delta: float, runs: int, *, k: int = 1, n_private: int = 200,
                 n_candidates: int = 64, noise: NoiseSource | None = None,
                 histogram_fn: Callable[..., np.ndarray] = vote_histogram, variant: str = "correct",
                 level: float = 0.95) -> AuditResult:
    """Audit one noisy vote-histogram release at the σ the accountant gives for (ε, δ).

    The clean histograms of D and D' are computed once with the library's kernel; the ``runs``
    noisy releases per side are drawn in one batched release through the one release path each (a release of
    shape (runs, m) is the same Gaussian mechanism applied ``runs`` times independently)."""
    noise = noise if noise is not None else NoiseSource()
    sigma = schedule_sigmas(gdp_mu(epsilon, delta), 1)[0]
    private, cand, canary = _decisive_setup(n_private, n_candidates, k)
    metric = L2Metric()
    nn_d = nearest(private, cand, metric, k=k)
    nn_c = nearest(canary, cand, metric, k=k)
    counts_d = histogram_fn(nn_d, n_candidates)
    counts_dp = histogram_fn(np.concatenate([nn_d, nn_c]), n_candidates)
    target = nn_c[0]
    if np.any(counts_d[target] != 0):
        raise RuntimeError("audit setup error: the canary's candidates also receive other rows' votes")
    scores = []
    for side, counts in enumerate((counts_d, counts_dp)):
        ledger = Ledger(delta=delta)  # unbounded: each batch stands for `runs` independent single releases
        batch = np.broadcast_to(counts, (runs, n_candidates))
        noisy = ReleasePath(ledger, noise).release(Spec(f"audit_{side}", "audit vote", sigma, iteration=1,
                                                        stream=(1, side)), batch)
        scores.append(noisy[:, target].sum(axis=1))
    bound = epsilon_lower_bound(scores[0], scores[1], delta, level)
    return AuditResult("voting release", variant, f"noisy count of the canary's {k} candidate(s)", epsilon, delta,
                       bound, runs, {"sigma": sigma, "k": k, "n_private": n_private, "n_candidates": n_candidates})


# -- (b) a short full PE run --------------------------------------------------------------------------
@dataclass(frozen=True)
class BoxBackend:
    """Toy backend: uniform draws in [low, high]^d; variation adds N(0, (degree·scale·range)²), clipped."""

    dim: int = 1
    low: float = 0.0
    high: float = 1.0
    scale: float = 0.3
    name: str = "box"

    def random(self, n: int, *, label: Any = None, rng: np.random.Generator) -> Population:
        return Population.fresh(rng.uniform(self.low, self.high, (n, self.dim)), self.name, label=label)

    def vary(self, pop: Population, degree: float, rng: np.random.Generator) -> Population:
        x = np.asarray(pop.samples, dtype=float)
        step = rng.normal(0.0, degree * self.scale * (self.high - self.low), x.shape)
        return Population.fresh(np.clip(x + step, self.low, self.high), self.name)


@dataclass(frozen=True)
class IdentityEncoder:
    """Toy encoder: the samples are already vectors (squared L2 distance)."""

    metric: L2Metric = field(default_factory=L2Metric)

    def encode(self, samples: Any) -> np.ndarray:
        return np.asarray(samples, dtype=np.float32).reshape(len(samples), -1)


@lru_cache(maxsize=4096)
def _epsilon(mu: float, delta: float) -> float:
    return gdp_epsilon(mu, delta)


class _AuditLedger(Ledger):
    """The real Ledger (same filter: ``record``/``can_afford``) with its ε report memoised: thousands of
    identical audit runs would otherwise spend a quarter of their time re-solving the same ε."""

    @property
    def epsilon(self) -> float:
        return _epsilon(self.mu, self.delta)


class MemoryCheckpoint:
    """Duck-typed Checkpointer that keeps every release and voted population in memory: the audit's
    adversary sees everything the run released (a stronger adversary than one who sees the output)."""

    def __init__(self) -> None:
        self.populations: dict[int, Population] = {}
        self.releases: dict[str, tuple[np.ndarray, Release]] = {}

    def check_config(self, config: dict[str, Any], resume: bool) -> None:
        return None

    def latest_population(self) -> None:
        return None

    def save_population(self, t: int, pop: Population, rng: np.random.Generator,
                        history: list[dict[str, Any]] | None = None) -> None:
        self.populations[t] = pop

    def load_release(self, key: str) -> None:
        return None

    def save_release(self, key: str, values: np.ndarray, release: Release, ledger: Ledger,
                     index: np.ndarray | None = None) -> None:
        self.releases[key] = (np.array(values, copy=True), release)


def _canary_targets(pop: Population, canary: np.ndarray, k: int) -> np.ndarray:
    """The canary's k nearest candidates (squared L2, ties to the smaller index, as the kernels do)."""
    d = ((IdentityEncoder().encode(pop.samples) - canary) ** 2).sum(axis=1)
    return np.argsort(d, kind="stable")[:k]


def pe_run_once(private: np.ndarray, *, mu: float, delta: float, iterations: int, population: int, k: int,
                budget: str, noise: NoiseSource, rng: np.random.Generator, canary: np.ndarray,
                evolution_cls: type[Evolution] = Evolution) -> tuple[float, float, float]:
    """One PE run under the GDP budget μ; returns (all-releases statistic, final-output statistic, ρ spent).

    All releases: Σ_t (noisy count of the canary's k candidates at t)/σ_t² — the likelihood-ratio
    statistic for the whole composition. Final output: the clipped final weight of those candidates."""
    cfg = EvolutionConfig.build(iterations, population, degree=0.5, k=k, voter="numpy")
    ledger = _AuditLedger(delta=delta, mu_budget=mu)
    ckpt = MemoryCheckpoint()
    evo = evolution_cls(BoxBackend(), IdentityEncoder(), cfg, make_policy(budget, mu, iterations), ledger, noise, rng)
    res = evo.run(private, checkpoint=ckpt)  # type: ignore[arg-type]
    total = 0.0
    for t, pop in ckpt.populations.items():
        rel = ckpt.releases.get(f"vote_{t:03d}")
        if rel is None:
            continue
        noisy, r = rel
        total += float(noisy[_canary_targets(pop, canary, k)].sum()) / r.sigma**2
    final = float(res.weights[_canary_targets(res.population, canary, k)].sum())
    return total, final, ledger.rho_spent


def audit_pe_run(epsilon: float, delta: float, runs: int, *, iterations: int = 3, population: int = 40, k: int = 1,
                 n_private: int = 10, budget: str = "uniform", noise_scale: float = 1.0,
                 evolution_cls: type[Evolution] = Evolution, variant: str = "correct", seed: int = 0,
                 deterministic_noise: bool = False, level: float = 0.95) -> list[AuditResult]:
    """Audit short PE runs (toy 1-D backend, private rows at 0, canary at 1). Returns two results: the
    statistic over all releases, and the one an attacker who sees only the weighted output has."""
    if population < 2 * k + 1:
        raise ValueError("population must exceed 2k so the canary's candidates differ from the other rows'")
    private = np.zeros((n_private, 1), dtype=np.float32)
    canary = np.ones((1, 1), dtype=np.float32)
    with_canary = np.concatenate([private, canary])
    stats = np.empty((2, runs, 2))
    mu = gdp_mu(epsilon, delta)
    rho_max = 0.0
    for side, data in enumerate((private, with_canary)):
        for i in range(runs):
            test_seed = (seed * 1_000_003 + i) * 2 + side if deterministic_noise else None
            noise = ScaledNoise(test_seed=test_seed, scale=noise_scale)
            rng = np.random.default_rng([seed, side, i])
            a, f, rho = pe_run_once(data, mu=mu, delta=delta, iterations=iterations, population=population,
                                  k=k, budget=budget, noise=noise, rng=rng, canary=canary,
                                  evolution_cls=evolution_cls)
            stats[side, i] = a, f
            rho_max = max(rho_max, rho)
    claimed = gdp_epsilon(math.sqrt(rho_max), delta)  # the ledger's ε (the largest over the runs)
    mech = f"PE run ({iterations} votes, {budget} budget, k={k})"
    info = {"iterations": iterations, "population": population, "k": k, "n_private": n_private, "budget": budget}
    return [AuditResult(mech, variant, name, claimed, delta, epsilon_lower_bound(stats[0, :, j], stats[1, :, j],
                                                                                  delta, level), runs, info)
            for j, name in enumerate(("all releases: sum of canary counts / sigma^2", "final output weight"))]
