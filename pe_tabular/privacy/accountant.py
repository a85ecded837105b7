"""Gaussian-DP accounting for Gaussian-mechanism releases.

A Gaussian release with L2 sensitivity Δ and noise σ is exactly (Δ/σ)-GDP, and T such releases
(adaptively chosen or not) compose to μ-GDP with μ = sqrt(Σ (Δ/σ_t)²) — Dong, Roth & Su,
"Gaussian Differential Privacy", JRSS-B 2022, Cor. 3.3. The conversion to (ε, δ) is their exact
curve (Cor. 2.13): δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2). We evaluate it in log space so very
large ε neither overflows nor silently returns a wrong answer.

Pure Python (``math``; numpy only where a schedule has weights): ``pe-tabular privacy sigma`` runs this
module alone, and scipy would cost it several times the calculation. Φ and log Φ come from ``math.erfc``
(and its asymptotic series in the far tail), roots by bisection (both functions solved are monotone).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

_EPS_CAP = 1e7  # beyond this no finite (ε, δ) pair is meaningful; we raise instead of guessing
_SQRT1_2 = math.sqrt(0.5)
_LOG_2_SQRT_PI = math.log(2.0 * math.sqrt(math.pi))


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
    first = _ndtr(a)
    log_second = epsilon + _log_ndtr(b)
    second = math.exp(log_second) if log_second > -745 else 0.0
    return max(first - second, 0.0)


def _ndtr(x: float) -> float:
    """Φ(x), the standard normal CDF (erfc has no cancellation in either tail)."""
    return 0.5 * math.erfc(-x * _SQRT1_2)


def _log_ndtr(x: float) -> float:
    """log Φ(x) without underflow: log1p near the top, log erfc down to x ≈ -37, then the asymptotic
    series of erfc(u)·exp(u²) (seven terms: relative error below 1e-15 for u ≥ 26)."""
    if x > -1.0:
        return math.log1p(-0.5 * math.erfc(x * _SQRT1_2))
    u = -x * _SQRT1_2
    if u < 26.0:
        return math.log(0.5 * math.erfc(u))
    u2 = u * u
    term = series = 1.0
    for k in range(1, 8):
        term *= -(2 * k - 1) / (2.0 * u2)
        series += term
    return -u2 + math.log(series / u) - _LOG_2_SQRT_PI


def _root(f: Callable[[float], float], lo: float, hi: float, xtol: float, rtol: float) -> float:
    """The root of a monotone ``f`` whose sign differs at ``lo`` and ``hi``, by bisection to ``xtol + rtol·|x|``.
    Both uses (δ(ε) falls with ε, rises with μ) are monotone, so bisection cannot miss the root; it halves the
    bracket about 60 times on these tolerances, microseconds of ``math`` calls."""
    flo, fhi = f(lo), f(hi)
    if flo == 0:
        return lo
    if fhi == 0:
        return hi
    if (flo < 0) == (fhi < 0):
        raise AccountingError("internal: the accountant's root bracket does not change sign")
    for _ in range(400):  # 2⁻⁴⁰⁰ of any finite bracket is below every tolerance used here
        mid = 0.5 * (lo + hi)
        if hi - lo <= xtol + rtol * abs(mid):
            return mid
        fmid = f(mid)
        if fmid == 0:
            return mid
        if (fmid < 0) == (flo < 0):
            lo, flo = mid, fmid
        else:
            hi = mid
    return 0.5 * (lo + hi)


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
    return float(_root(lambda e: gdp_delta(e, mu) - delta, 0.0, hi, xtol=1e-12, rtol=1e-12))


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
    return float(_root(lambda m: gdp_delta(epsilon, m) - delta, lo, hi, xtol=1e-14, rtol=1e-13))


def compose_mu(sigmas: Sequence[float], sensitivities: Sequence[float] | float = 1.0) -> float:
    """μ of T Gaussian releases: sqrt(Σ (Δ_t/σ_t)²). A σ of 0 (noise-free release) gives μ = ∞."""
    import numpy as np  # noqa: PLC0415 - not on `privacy sigma`'s path (start-up time)

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
    if weights is None:  # uniform: each share is exactly 1/T, as numpy's ones/sum gives, without numpy
        return [sigma_for_share(mu * mu * (1.0 / iterations), 1, sensitivity)] * iterations
    import numpy as np  # noqa: PLC0415

    w = np.asarray(weights, dtype=float)
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
