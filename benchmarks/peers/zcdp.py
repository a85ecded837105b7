"""zCDP bookkeeping for the marginal-based peers (MST, AIM).

ρ-zCDP (Bun & Steinke 2016) → (ε, δ)-DP by the conversion of Canonne, Kamath & Steinke 2020
(Prop. 12 / Cor. 13), which is the one MST and AIM report:

    δ(ρ, ε) = inf_{α>1}  exp((α−1)(αρ−ε) + α·log(1−1/α)) / (α−1)

Pieces: a Gaussian measurement with L2 sensitivity Δ and noise σ costs Δ²/(2σ²); an exponential
mechanism with parameter ε₀ (score sensitivity Δ, P ∝ exp(ε₀·q/(2Δ))) costs ε₀²/8 (bounded range,
Cesar & Rogers 2021). Costs add.
"""

from __future__ import annotations

import math

from scipy.optimize import brentq, minimize_scalar


def cdp_delta(rho: float, eps: float) -> float:
    """Smallest δ for which ρ-zCDP implies (ε, δ)-DP (CKS 2020)."""
    if rho <= 0:
        return 0.0

    def log_delta(log_am1: float) -> float:
        a = 1.0 + math.exp(log_am1)
        return (a - 1) * (a * rho - eps) + a * math.log1p(-1.0 / a) - math.log(a - 1)

    res = minimize_scalar(log_delta, bounds=(-12.0, 12.0), method="bounded", options={"xatol": 1e-10})
    return min(1.0, math.exp(min(res.fun, log_delta(-12.0), log_delta(12.0))))


def cdp_rho(eps: float, delta: float) -> float:
    """Largest ρ whose zCDP guarantee implies (ε, δ)-DP."""
    if not (eps > 0 and 0 < delta < 1):
        raise ValueError(f"--eps must be > 0 and delta in (0, 1), got eps={eps}, delta={delta}")
    hi = eps + 1.0
    while cdp_delta(hi, eps) < delta:
        hi *= 2
    return brentq(lambda r: cdp_delta(r, eps) - delta, 1e-12, hi, xtol=1e-14)
