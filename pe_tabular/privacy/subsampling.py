"""Accounting for releases made on a Poisson subsample of the privacy units, by privacy loss distribution.

A Gaussian release computed on a Poisson subsample (each unit kept independently with public probability
q) is more private than the same release on all units — privacy amplification by subsampling (Balle,
Barthe & Gaboardi, NeurIPS 2018, tight for Poisson sampling under add/remove-one neighbours) — but it is
not a Gaussian mechanism any more, so its guarantee is not exactly μ-GDP (Dong, Roth & Su 2022, Sec. 5
give only a CLT limit; Zhu, Dong & Wang, "Optimal Accounting of Differential Privacy via Characteristic
Function", AISTATS 2022, show why the exact trade-off must be composed numerically). We account it
exactly, up to a pessimistic discretisation, with the privacy loss distribution (PLD) of each release
(Meiser & Mohammadi, "Tight on Budget? Tight Bounds for r-Fold Approximate Differential Privacy",
CCS 2018; Koskela, Jälkö & Honkela, "Computing Tight Differential Privacy Guarantees Using FFT",
AISTATS 2020) as implemented by Google's ``dp-accounting`` (``PLDAccountant`` with
``PoissonSampledDpEvent(q, GaussianDpEvent(σ/Δ))``; its discretisation rounds the loss *up*, so the ε
it returns is an upper bound).

When any release of a run is subsampled, *all* its releases are composed by PLD (an unsampled one is a
``GaussianDpEvent``); a run without subsampling keeps the exact GDP path of :mod:`accountant`.

Adaptivity: PLD composition is valid for a sequence of mechanisms fixed in advance (σ_t and q_t chosen
from public inputs before the run). The adaptive budget policy (σ chosen from earlier releases) relies on
the GDP filter, which has no exact PLD counterpart, so the engine refuses it with subsampling.

``dp-accounting`` is an optional dependency (extras ``subsample``, ``dev``, ``bench``): it is imported
only when a subsampled release is accounted.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

from scipy.optimize import brentq

from pe_tabular.privacy.accountant import AccountingError

DISCRETISATION = 1e-4  # dp-accounting's default loss grid; ε is rounded up by at most about T·1e-4
Mechanism = tuple[float, float]  # (noise multiplier σ/Δ, sampling rate q)


def _check_delta(delta: float) -> None:
    if not 0.0 < delta < 1.0:
        raise AccountingError(f"--delta must be in (0, 1), got {delta}")


def _dp() -> tuple:
    try:
        from dp_accounting import dp_event  # noqa: PLC0415 - optional, only for subsampled releases
        from dp_accounting.pld import pld_privacy_accountant  # noqa: PLC0415
    except ImportError as e:  # pragma: no cover - depends on the install
        raise AccountingError("subsampled releases (--sampling-rate < 1) are accounted with dp-accounting: "
                              "pip install 'pe-tabular[subsample]'") from e
    return dp_event, pld_privacy_accountant


def mechanisms(sigmas: Sequence[float], sensitivities: Sequence[float] | float = 1.0,
               rates: Sequence[float] | float = 1.0) -> tuple[Mechanism, ...]:
    """(σ/Δ, q) per release, in a canonical order (composition is commutative), releases of Δ = 0 dropped."""
    n = len(sigmas)
    d = [sensitivities] * n if isinstance(sensitivities, int | float) else list(sensitivities)
    q = [rates] * n if isinstance(rates, int | float) else list(rates)
    out = []
    for s, dd, r in zip(sigmas, d, q):
        if s < 0 or dd < 0 or not 0 < r <= 1:
            raise AccountingError(f"need sigma >= 0, sensitivity >= 0 and 0 < sampling rate <= 1; got {s}, {dd}, {r}")
        if dd == 0:
            continue
        out.append((float(s) / float(dd), float(r)))  # σ = 0 (no noise) gives multiplier 0: ε = ∞
    return tuple(sorted(out))


def _accountant(mechs: tuple[Mechanism, ...], discretisation: float):  # noqa: ANN202 - a dp-accounting object
    dp_event, pld = _dp()
    acc = pld.PLDAccountant(value_discretization_interval=discretisation)  # add/remove-one neighbours (rule 6)
    for (m, q), count in sorted(Counter(mechs).items()):
        ev = dp_event.GaussianDpEvent(m)
        acc.compose(ev if q >= 1.0 else dp_event.PoissonSampledDpEvent(q, ev), count)
    return acc


@lru_cache(maxsize=256)
def _epsilon(mechs: tuple[Mechanism, ...], delta: float, discretisation: float) -> float:
    return float(_accountant(mechs, discretisation).get_epsilon(delta))


def pld_epsilon(mechs: Sequence[Mechanism], delta: float, discretisation: float = DISCRETISATION) -> float:
    """ε at δ of the composition of ``mechs`` ((σ/Δ, q) each), by PLD. No release: 0; a σ = 0 release: ∞."""
    _check_delta(delta)
    mechs = tuple(sorted(mechs))
    if not mechs:
        return 0.0
    if any(m == 0 for m, _ in mechs):  # a noise-free release
        return math.inf
    return _epsilon(mechs, float(delta), float(discretisation))


def sigma_for_epsilon_subsampled(epsilon: float, delta: float, iterations: int, sampling_rate: float,
                                 sensitivity: float = 1.0, fixed: Sequence[Mechanism] = (),
                                 rtol: float = 1e-3) -> float:
    """The smallest σ (to ``rtol``) such that ``iterations`` releases with noise σ, sensitivity Δ, each on
    a Poisson subsample at rate q, composed by PLD with the ``fixed`` releases (e.g. marginals on all
    data, (σ/Δ, 1)), are (ε, δ)-DP. The ε of the returned σ is ≤ the target (bisection keeps the upper
    end)."""
    _check_delta(delta)
    if not epsilon > 0 or math.isinf(epsilon):
        raise AccountingError(f"--epsilon must be a positive finite number here, got {epsilon}")
    if iterations < 1:
        raise AccountingError(f"--iterations must be >= 1, got {iterations}")
    if not 0 < sampling_rate <= 1:
        raise AccountingError(f"--sampling-rate must be in (0, 1], got {sampling_rate}")
    base = tuple(fixed)
    if (before := pld_epsilon(base, delta)) >= epsilon:
        raise AccountingError(f"the releases made before the votes already spend epsilon {before:.4g} >= {epsilon:g}; "
                              "raise --epsilon or give the votes a larger share")

    def eps(log_m: float) -> float:
        return pld_epsilon(base + ((math.exp(log_m), float(sampling_rate)),) * iterations, delta) - epsilon

    lo, hi = math.log(1e-2), math.log(1.0)
    while eps(hi) > 0:
        lo, hi = hi, hi + math.log(4.0)
        if hi > math.log(1e7):
            raise AccountingError(f"no noise level reaches epsilon={epsilon:g} at delta={delta:g}")
    while eps(lo) <= 0:
        lo -= math.log(4.0)
        if lo < math.log(1e-4):
            return float(sensitivity * math.exp(lo))
    root = brentq(eps, lo, hi, xtol=rtol / 4)
    m = math.exp(root)
    while eps(math.log(m)) > 0:  # keep the feasible side of the root
        m *= 1 + rtol / 4
    return float(sensitivity * m)
