"""Gaussian-DP accounting for Gaussian-mechanism releases.

A Gaussian release with L2 sensitivity Δ and noise σ is exactly (Δ/σ)-GDP, and T such releases
(adaptively chosen or not) compose to μ-GDP with μ = sqrt(Σ (Δ/σ_t)²) — Dong, Roth & Su,
"Gaussian Differential Privacy", JRSS-B 2022, Cor. 3.3. The conversion to (ε, δ) is their exact
curve (Cor. 2.13): δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2). We evaluate it in log space so very
large ε neither overflows nor silently returns a wrong answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import brentq
from scipy.special import log_ndtr, ndtr

_EPS_CAP = 1e7  # beyond this no finite (ε, δ) pair is meaningful; we raise instead of guessing


class AccountingError(ValueError):
    """An (ε, δ, μ, σ) request that has no valid answer; the message says which input to change."""


def _check_delta(delta: float) -> None:
    if not (0.0 < delta < 1.0):
        raise AccountingError(f"--delta must be in (0, 1), got {delta}; a typical choice is 1/n² or 1e-5")


def gdp_delta(epsilon: float, mu: float) -> float:
    """δ(ε) of μ-GDP (exact). μ = 0 means no release: δ = 0. μ = ∞ means no privacy: δ = 1."""
    if mu < 0:
        raise AccountingError(f"mu must be >= 0, got {mu}")
    if mu == 0.0:
        return 0.0
    if math.isinf(mu):
        return 1.0
    if math.isinf(epsilon):
        return 0.0
    a = -epsilon / mu + mu / 2.0
    b = -epsilon / mu - mu / 2.0
    first = float(ndtr(a))
    second = math.exp(epsilon + float(log_ndtr(b))) if epsilon + float(log_ndtr(b)) > -745 else 0.0
    return max(first - second, 0.0)


def gdp_epsilon(mu: float, delta: float) -> float:
    """Smallest ε with δ(ε; μ) ≤ delta. Returns 0 for μ = 0 and ∞ for μ = ∞."""
    _check_delta(delta)
    if mu == 0.0:
        return 0.0
    if math.isinf(mu):
        return math.inf
    if gdp_delta(0.0, mu) <= delta:
        return 0.0
    hi = max(1.0, mu * mu)
    while gdp_delta(hi, mu) > delta:
        hi *= 2.0
        if hi > _EPS_CAP:
            raise AccountingError(
                f"mu={mu:g} gives epsilon above {_EPS_CAP:g} at delta={delta:g}: increase the noise (--sigma) "
                "or reduce --iterations"
            )
    return float(brentq(lambda e: gdp_delta(e, mu) - delta, 0.0, hi, xtol=1e-12, rtol=1e-12))


def gdp_mu(epsilon: float, delta: float) -> float:
    """Largest μ whose GDP curve satisfies (ε, δ)-DP. ε = ∞ gives μ = ∞ (no noise)."""
    _check_delta(delta)
    if epsilon < 0 or math.isnan(epsilon):
        raise AccountingError(f"--epsilon must be > 0, got {epsilon}")
    if math.isinf(epsilon):
        return math.inf
    if epsilon == 0:
        raise AccountingError("--epsilon 0 allows no release at all; use a positive epsilon")
    if epsilon > _EPS_CAP:
        raise AccountingError(f"--epsilon {epsilon:g} is above the supported {_EPS_CAP:g}; use 'inf' for no noise")
    lo, hi = 1e-12, 1.0
    while gdp_delta(epsilon, hi) < delta:
        lo, hi = hi, hi * 2.0
        if hi > 1e6:  # δ(ε; μ) → 1 as μ grows, so this only triggers for nonsensical input
            raise AccountingError(f"no mu satisfies epsilon={epsilon:g}, delta={delta:g}")
    return float(brentq(lambda m: gdp_delta(epsilon, m) - delta, lo, hi, xtol=1e-14, rtol=1e-13))


def compose_mu(sigmas: Sequence[float], sensitivities: Sequence[float] | float = 1.0) -> float:
    """μ of T Gaussian releases: sqrt(Σ (Δ_t/σ_t)²). A σ of 0 (noise-free release) gives μ = ∞."""
    s = np.asarray(sigmas, dtype=float)
    d = np.broadcast_to(np.asarray(sensitivities, dtype=float), s.shape)
    if np.any(s < 0) or np.any(d < 0):
        raise AccountingError("sigma and sensitivity must be >= 0")
    if np.any((s == 0) & (d > 0)):
        return math.inf
    ok = d > 0
    return float(math.sqrt(np.sum((d[ok] / s[ok]) ** 2)))


def sigma_for_share(rho: float, n_releases: int = 1, sensitivity: float = 1.0) -> float:
    """σ of each of ``n_releases`` equal Gaussian releases that together spend ``rho`` of μ².

    The one σ formula of the project: n releases with (Δ/σ)² each spend n(Δ/σ)² = ρ, so
    σ = Δ·√(n/ρ). ρ = ∞ (a run without privacy) gives σ = 0."""
    if n_releases < 1:
        raise AccountingError(f"a budget share must pay for at least one release, got {n_releases}")
    if not rho > 0 or math.isnan(rho):
        raise AccountingError(f"a budget share must be > 0, got {rho}")
    return 0.0 if math.isinf(rho) else float(sensitivity * math.sqrt(n_releases / rho))


def schedule_sigmas(
    mu: float, iterations: int, weights: Sequence[float] | None = None, sensitivity: float = 1.0
) -> list[float]:
    """Per-release σ_t spending exactly μ over T releases.

    ``weights`` are relative *precisions*: release t gets (Δ/σ_t)² = μ² w_t / Σ w. Uniform weights
    give σ = Δ √T / μ. μ = ∞ gives σ = 0 everywhere (non-private run)."""
    if iterations < 1:
        raise AccountingError(f"--iterations must be >= 1, got {iterations}")
    w = np.ones(iterations) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (iterations,):
        raise AccountingError(f"budget schedule has {w.size} weights but --iterations is {iterations}")
    if np.any(w <= 0) or not np.all(np.isfinite(w)):
        raise AccountingError("budget schedule weights must be positive and finite")
    share = w / w.sum()
    return [sigma_for_share(mu * mu * float(p), 1, sensitivity) for p in share]


def sigma_for_epsilon(
    epsilon: float, delta: float, iterations: int = 1, weights: Sequence[float] | None = None,
    sensitivity: float = 1.0,
) -> list[float]:
    """σ_t for a target (ε, δ) with T releases (uniform or weighted)."""
    return schedule_sigmas(gdp_mu(epsilon, delta), iterations, weights, sensitivity)


def epsilon_for_sigmas(sigmas: Sequence[float], delta: float, sensitivity: float = 1.0) -> float:
    """(ε at δ) of T Gaussian releases with the given σ_t."""
    return gdp_epsilon(compose_mu(sigmas, sensitivity), delta)
