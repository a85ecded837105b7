"""Noisy one-way marginals on public bins, and raking PE's output weights to them.

PE's candidates carry the joint structure of the trace, but a few thousand candidates cannot reproduce
every one-way distribution exactly (a start-time histogram drifts, a heavy host is represented by a
handful of candidates). A declared slice of the budget releases one-way histograms on public bins —
the same Gaussian mechanism as the votes, L2 sensitivity 1 per record (or per flow/host group) — and
the final candidate weights are *raked* to them by iterative proportional fitting (Deming & Stephan,
"On a least squares adjustment of a sampled frequency table when the expected marginal totals are
known", Ann. Math. Stat. 1940). Raking only reweights released candidates with released counts: pure
post-processing. Bins whose noisy count is below a noise threshold are treated as unknown and left
alone, so noise in sparse bins never invents or erases mass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pe_tabular.checkpoint import Checkpointer
from pe_tabular.measure.measurement import Measurement
from pe_tabular.privacy.accountant import sigma_for_share
from pe_tabular.privacy.ledger import Ledger
from pe_tabular.privacy.noise import NoiseSource
from simulators.network.dp_priors import release, threshold
from simulators.network.encoder import (
    ICMP,
    TCP,
    UDP,
    flags_to_mask,
    ip_to_uint32,
    proto_to_number,
)
from simulators.network.records import Hist, TraceRecords

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MarginalSpec:
    """A public binning of one field: ``bins(records) -> int64 bin per record`` in [0, size)."""

    name: str
    size: int
    bins: Callable[[pd.DataFrame], np.ndarray]


def _log2_bin(x: np.ndarray, top: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.clip(np.where(x >= 1, np.floor(np.log2(np.maximum(x, 1))) + 1, 0), 0, top - 1).astype(np.int64)


def port_bin(p: np.ndarray) -> np.ndarray:
    """Well-known ports exactly, then 16 ranges of 4096 (OS ephemeral ranges fall in different ranges)."""
    p = np.asarray(p, dtype=np.int64)
    return np.where(p < 1024, p, 1024 + (np.clip(p, 1024, 65535) - 1024) // 4096)


def _proto_bin(df: pd.DataFrame) -> np.ndarray:
    p = proto_to_number(df["proto"])
    return np.select([p == TCP, p == UDP, p == ICMP], [0, 1, 2], 3)


def flow_marginal_specs(window: tuple[float, float], time_bins: int = 64) -> list[MarginalSpec]:
    """The default public binnings of NetFlow fields (nothing here depends on the data)."""
    t0, t1 = window

    def tbin(df: pd.DataFrame) -> np.ndarray:
        t = df["ts"].to_numpy(np.float64) / 1e6
        return np.clip(np.floor((t - t0) / (t1 - t0) * time_bins), 0, time_bins - 1).astype(np.int64)

    return [
        MarginalSpec("time", time_bins, tbin),
        MarginalSpec("srcport", 1040, lambda df: port_bin(df["srcport"].to_numpy())),
        MarginalSpec("dstport", 1040, lambda df: port_bin(df["dstport"].to_numpy())),
        MarginalSpec("proto", 4, _proto_bin),
        MarginalSpec("pkt", 32, lambda df: _log2_bin(df["pkt"].to_numpy(), 32)),
        MarginalSpec("byt", 48, lambda df: _log2_bin(df["byt"].to_numpy(), 48)),
        MarginalSpec("td", 32, lambda df: _log2_bin(df["td"].to_numpy(np.float64) * 1000, 32)),
        MarginalSpec("flags", 64, lambda df: flags_to_mask(df["flags"]) & 0x3F if "flags" in df
                     else np.zeros(len(df), np.int64)),
        MarginalSpec("tos", 256, lambda df: np.clip(df["tos"].to_numpy(np.int64), 0, 255) if "tos" in df
                     else np.zeros(len(df), np.int64)),
        MarginalSpec("srcip8", 256, lambda df: ip_to_uint32(df["srcip"]) >> 24),
        MarginalSpec("dstip8", 256, lambda df: ip_to_uint32(df["dstip"]) >> 24),
    ]


def packet_marginal_specs(window: tuple[float, float], time_bins: int = 64) -> list[MarginalSpec]:
    """Public binnings of packet-header fields (time, ports, protocol, length, TTL, flags, ToS, /8s)."""
    by_name = {s.name: s for s in flow_marginal_specs(window, time_bins)}
    return [by_name[n] for n in ("time", "srcport", "dstport", "proto", "flags", "tos", "srcip8", "dstip8")] + [
        MarginalSpec("length", 32, lambda df: np.clip(df["length"].to_numpy(np.int64) // 50, 0, 31)),
        MarginalSpec("ttl", 64, lambda df: np.clip(df["ttl"].to_numpy(np.int64) // 4, 0, 63)),
    ]


def host_specs(hosts: np.ndarray) -> list[MarginalSpec]:
    """Exact source / destination address over a public (already released) host list, plus 'other'."""
    hosts = np.sort(np.asarray(hosts, np.int64))

    def hbin(col: str) -> Callable[[pd.DataFrame], np.ndarray]:
        def f(df: pd.DataFrame) -> np.ndarray:
            ip = ip_to_uint32(df[col])
            pos = np.searchsorted(hosts, ip)
            hit = (pos < len(hosts)) & (hosts[np.minimum(pos, len(hosts) - 1)] == ip)
            return np.where(hit, pos, len(hosts))
        return f

    return [MarginalSpec("srchost", len(hosts) + 1, hbin("srcip")), MarginalSpec("dsthost", len(hosts) + 1,
                                                                                   hbin("dstip"))]


@dataclass(frozen=True)
class Released(Measurement[MarginalSpec]):
    """A released marginal: the engine's measurement of one public binning (``query``)."""

    @property
    def known(self) -> np.ndarray:
        """Bins measured above the noise threshold (the only ones raking constrains)."""
        return self.noisy > threshold(self.sigma, self.query.size) if self.sigma > 0 else self.noisy > 0


@dataclass(frozen=True)
class Targets(Released):
    """Released counts that are already thresholded (a fitted codebook's masses): every bin is known,
    a zero one included, so raking drains candidates from bins the releases found empty."""

    @property
    def known(self) -> np.ndarray:
        return np.ones(self.query.size, dtype=bool)


def release_marginals(records: TraceRecords, specs: list[MarginalSpec], sigma: float, ledger: Ledger,
                      noise: NoiseSource, checkpoint: Checkpointer | None = None) -> list[Released]:
    """One Gaussian release per spec (L2 sensitivity 1 per record, or per flow/host unit), all counted in
    one pass over the records."""
    counts = records.one_pass([Hist(spec.bins, spec.size, None) for spec in specs], "marginals")
    out = []
    for i, spec in enumerate(specs):
        noisy = release(counts.counts(i), sigma, f"marginal_{spec.name}", ledger, noise, checkpoint,
                        f"{spec.name} marginal ({spec.size} public bins)", (0, 400 + i))
        out.append(Released(spec, noisy, sigma))
    return out


def marginal_sigma(mu: float, share: float, n_releases: int) -> float:
    """σ of each of ``n_releases`` equal releases spending ``share`` of μ²."""
    return sigma_for_share(share * mu * mu, n_releases)
