"""Simulator priors fitted from a declared slice of the privacy budget.

Nearest-neighbour voting finds a 32-bit address one bit per iteration at best, so on its own PE
spends most of its budget searching address space. Instead a small, explicitly charged slice of the
budget releases three noisy histograms and the simulator samples from them (post-processing):

* **address prefixes** — hierarchical heavy hitters over a prefix trie (/8, /16, /24, /32): at each
  level the noisy counts of the children of the surviving prefixes are released and those above a
  threshold survive (the prefix-tree approach to private heavy hitters: Cormode et al., "Differentially
  private spatial decompositions", ICDE 2012; Bassily et al., "Practical locally private heavy hitters",
  NeurIPS 2017, use the same descent). Each record's two addresses are one contribution of L2 norm 1
  per level (both addresses weighted 1/√2, or 1 when both fall in one prefix; a privacy unit's records weighted
  1/n_u, ``records.py``).
* **services** — (protocol, server port) over a public domain: every well-known port, a few registered
  service ports, "other registered", "ephemeral", and ICMP type/code.
* **start times** — a histogram over the public time window.

Every release is a Gaussian mechanism with L2 sensitivity 1 charged to the run's ``Ledger`` before
noise is drawn (the engine's one release path, ``pe_tabular.privacy.release``), and saved to the checkpoint so a resumed
run reuses it instead of paying twice. Thresholds and domain sizes are public functions of σ.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from pe_tabular.checkpoint import Checkpointer
from pe_tabular.privacy.ledger import Ledger
from pe_tabular.privacy.noise import NoiseSource
from pe_tabular.privacy.release import ReleasePath, Spec
from simulators.network import priors as P
from simulators.network.encoder import ICMP, TCP, UDP, ip_to_uint32, port_class, proto_to_number
from simulators.network.records import Hist, TraceRecords

log = logging.getLogger(__name__)
# Prefix lengths of the trie. Four levels (octet boundaries) beat seven (every 4 bits) on the corpus
# (benchmarks/RESULTS.md, "Network traces: the corpus"): each level gets more of the budget, and the
# wider children domains cost only a logarithmic rise of the threshold
TRIE_LEVELS = (8, 16, 24, 32)
MAX_PREFIXES = 512  # survivors kept per trie level (public cap: bounds the next level's domain)
REGISTERED_SERVICE_PORTS = (1433, 1521, 1723, 1900, 3306, 3389, 5060, 5353, 5432, 5900, 6881, 8000, 8080, 8443)


@dataclass(frozen=True)
class PriorShares:
    """Fractions of the run's μ² spent on each prior release (the rest goes to PE's votes)."""

    addresses: float = 0.2
    services: float = 0.05
    times: float = 0.05
    trie_levels: tuple[int, ...] = TRIE_LEVELS  # prefix lengths the address trie releases (public)

    @property
    def total(self) -> float:
        return self.addresses + self.services + self.times


@dataclass(frozen=True)
class FittedPriors:
    services: P.ServiceTable
    addresses: P.FittedAddressPlan
    times: P.TimePrior


def threshold(sigma: float, domain: int, false_positive: float = 0.05) -> float:
    """Noisy-count threshold with about ``false_positive`` expected pure-noise survivors per release."""
    return sigma * math.sqrt(2.0 * math.log(max(domain, 2) / false_positive))


def release(counts: np.ndarray | Callable[[], np.ndarray], sigma: float, key: str, ledger: Ledger,
            noise: NoiseSource, checkpoint: Checkpointer | None, what: str,
            release_key: tuple[int, ...]) -> np.ndarray:
    """Charge and release (iteration 0), or restore the release an interrupted run already made."""
    return ReleasePath(ledger, noise, checkpoint).release(Spec(key, what, sigma, stream=release_key), counts)


def fit_addresses(records: TraceRecords, sigma: float, ledger: Ledger, noise: NoiseSource,
                  checkpoint: Checkpointer | None = None, levels: tuple[int, ...] = TRIE_LEVELS) -> P.FittedAddressPlan:
    """Noisy prefix-trie descent over both address columns (one pass per level: each level's domain is the
    children of the previous level's survivors); returns prefixes with residual weights."""
    prefixes: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    noisy_by_level: list[np.ndarray] = []
    cand = np.arange(256, dtype=np.int64)  # level-8 domain: every /8 (public)
    prev_len = 0
    for li, plen in enumerate(levels):
        if li > 0:
            step = plen - prev_len
            cand = (prefixes[-1][:, None] << step | np.arange(1 << step, dtype=np.int64)[None, :]).ravel()
        cand = np.sort(cand)
        hist = Hist(partial(_trie_bins, cand=cand, plen=plen), len(cand) + 1, ("srcip", "dstip"), k=2, rownorm=True)
        noisy = release(lambda hist=hist, plen=plen: records.histogram(hist, f"address prefixes /{plen}")[:-1],
                        sigma, f"prior_addr_{plen:02d}", ledger, noise, checkpoint,
                        f"address prefix histogram /{plen}", (0, 100 + plen))
        keep = np.flatnonzero(noisy > threshold(sigma, len(cand)))
        keep = keep[np.argsort(-noisy[keep], kind="stable")[:MAX_PREFIXES]]
        keep = np.sort(keep)
        prefixes.append(cand[keep])
        lengths.append(np.full(keep.size, plen, dtype=np.int64))
        noisy_by_level.append(noisy[keep])
        prev_len = plen
        if keep.size == 0:
            break
    # residual mass of each prefix not explained by its surviving children
    nets, lens, weights = [], [], []
    for li in range(len(prefixes)):
        w = noisy_by_level[li].copy()
        if li + 1 < len(prefixes) and prefixes[li + 1].size:
            step = levels[li + 1] - levels[li]
            parent = prefixes[li + 1] >> step
            child_mass = pd.Series(noisy_by_level[li + 1]).groupby(parent).sum()
            pos = np.searchsorted(prefixes[li], child_mass.index.to_numpy())
            w[pos] -= child_mass.to_numpy()
        plen = levels[li]
        nets.append(prefixes[li] << (32 - plen))
        lens.append(lengths[li])
        weights.append(np.clip(w, 0, None))
    net = np.concatenate(nets) if nets else np.zeros(0, np.int64)
    ln = np.concatenate(lens) if lens else np.zeros(0, np.int64)
    wt = np.concatenate(weights) if weights else np.zeros(0)
    ok = wt > 0
    log.info("address prior: %d prefixes (%d hosts) above threshold", int(ok.sum()), int((ok & (ln == 32)).sum()))
    return P.FittedAddressPlan(net[ok].astype(np.int64), ln[ok], wt[ok])


def _trie_bins(df: pd.DataFrame, cand: np.ndarray, plen: int) -> np.ndarray:
    """(n, 2): each address's position among the sorted candidate prefixes, len(cand) = elsewhere."""
    items = np.stack([ip_to_uint32(df["srcip"], "srcip"), ip_to_uint32(df["dstip"], "dstip")], axis=1)
    node = items >> (32 - plen)
    pos = np.searchsorted(cand, node)
    hit = (pos < len(cand)) & (cand[np.minimum(pos, len(cand) - 1)] == node)
    return np.where(hit, pos, len(cand))


def service_domain() -> tuple[np.ndarray, np.ndarray]:
    """Public (protocol, port) domain of the service histogram. Port codes: 0..1023 well-known, the
    listed registered service ports, RANDOM_REGISTERED, RANDOM_EPHEMERAL; ICMP uses type*256+code for
    types and codes below 16."""
    ports = np.r_[np.arange(1024), np.array(REGISTERED_SERVICE_PORTS), P.RANDOM_REGISTERED, P.RANDOM_EPHEMERAL]
    icmp = (np.arange(16)[:, None] * 256 + np.arange(16)[None, :]).ravel()
    proto = np.r_[np.full(ports.size, TCP), np.full(ports.size, UDP), np.full(icmp.size, ICMP)]
    port = np.r_[ports, ports, icmp]
    return proto.astype(np.int64), port.astype(np.int64)


def service_keys(flows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(protocol, server-port code) per record: the port on the lower service class side (ties: the
    lower port) names the service; ICMP's type/code sits in dstport (nfdump convention)."""
    proto = proto_to_number(flows["proto"])
    sp, dp = flows["srcport"].to_numpy(np.int64), flows["dstport"].to_numpy(np.int64)
    cs, cd = port_class(sp), port_class(dp)
    srv = np.where((cs < cd) | ((cs == cd) & (sp <= dp)), sp, dp)
    named = np.isin(srv, REGISTERED_SERVICE_PORTS) | (srv < 1024)
    code = np.where(named, srv, np.where(port_class(srv) == 1, P.RANDOM_REGISTERED, P.RANDOM_EPHEMERAL))
    code = np.where(proto == ICMP, dp, code)
    return proto, code


def _service_bins(df: pd.DataFrame, key_sorted: np.ndarray, order: np.ndarray) -> np.ndarray:
    proto, code = service_keys(df)
    key = proto * 70000 + (code + 10)
    pos = np.searchsorted(key_sorted, key)
    hit = (pos < len(order)) & (key_sorted[np.minimum(pos, len(order) - 1)] == key)
    return np.where(hit, order[np.minimum(pos, len(order) - 1)], len(order))


def fit_services(records: TraceRecords, sigma: float, ledger: Ledger, noise: NoiseSource,
                 checkpoint: Checkpointer | None = None) -> P.ServiceTable:
    dproto, dport = service_domain()
    key_dom = dproto * 70000 + (dport + 10)
    order = np.argsort(key_dom)
    hist = Hist(partial(_service_bins, key_sorted=key_dom[order], order=order), len(order) + 1,
                ("srcport", "dstport", "proto"))
    noisy = release(lambda: records.histogram(hist, "service histogram")[: len(order)], sigma, "prior_services",
                    ledger, noise, checkpoint, "service histogram", (0, 200))
    keep = np.flatnonzero(noisy > threshold(sigma, len(noisy)))
    base = P.ServiceTable.default()
    if keep.size == 0:
        log.info("service prior: nothing above the noise threshold; keeping the public prior")
        return base
    pkt, pay, td = [], [], []
    generic = {TCP: np.flatnonzero((base.proto == TCP) & (base.port == P.RANDOM_REGISTERED))[0],
               UDP: np.flatnonzero((base.proto == UDP) & (base.port == P.RANDOM_REGISTERED))[0]}
    for i in keep:
        same = np.flatnonzero((base.proto == dproto[i]) & (base.port == dport[i]))
        j = same[0] if same.size else generic.get(int(dproto[i]), int(np.argmax(base.proto == ICMP)))
        pkt.append(base.pkt[j])
        pay.append(base.payload[j])
        td.append(base.td[j])
    # the public prior stays in with a small weight so unseen services remain reachable
    w = np.r_[noisy[keep], base.weight / base.weight.sum() * 0.02 * noisy[keep].sum()]
    log.info("service prior: %d (protocol, port) services above threshold", keep.size)
    return P.ServiceTable(np.r_[dproto[keep], base.proto], np.r_[dport[keep], base.port], w,
                          np.r_[pkt, base.pkt], np.r_[pay, base.payload], np.r_[td, base.td])


def _time_bins(df: pd.DataFrame, window: tuple[float, float], bins: int) -> np.ndarray:
    t0, t1 = window
    t = df["ts"].to_numpy(np.float64) / 1e6
    return np.clip(np.floor((t - t0) / (t1 - t0) * bins), 0, bins - 1).astype(np.int64)


def fit_times(records: TraceRecords, window: tuple[float, float], sigma: float, ledger: Ledger, noise: NoiseSource,
              checkpoint: Checkpointer | None = None, bins: int = 64) -> P.TimePrior:
    hist = Hist(partial(_time_bins, window=window, bins=bins), bins, ("ts",))
    noisy = release(lambda: records.histogram(hist, "start-time histogram"), sigma, "prior_times", ledger, noise,
                    checkpoint, "start-time histogram", (0, 300))
    return P.TimePrior(window, np.clip(noisy, 0, None) + 1e-3 * max(float(np.clip(noisy, 0, None).max()), 1.0))


def fit_priors(records: TraceRecords, window: tuple[float, float], mu: float, shares: PriorShares, ledger: Ledger,
               noise: NoiseSource, checkpoint: Checkpointer | None = None) -> FittedPriors:
    """Spend ``shares`` of μ² on the three prior releases; returns the fitted tables."""
    if not 0 <= shares.total < 1:
        raise ValueError(f"prior budget shares must sum to less than 1, got {shares.total}")
    rho = mu * mu

    def sig(share: float, releases: int) -> float:
        return math.sqrt(releases / (share * rho)) if share > 0 and math.isfinite(rho) else (
            0.0 if not math.isfinite(rho) else math.inf)

    base = P.ServiceTable.default()
    if shares.addresses > 0:
        addr = fit_addresses(records, sig(shares.addresses, len(shares.trie_levels)), ledger, noise, checkpoint,
                             tuple(shares.trie_levels))
    else:
        addr = P.FittedAddressPlan(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    svc = fit_services(records, sig(shares.services, 1), ledger, noise, checkpoint) if shares.services > 0 else base
    times = fit_times(records, window, sig(shares.times, 1), ledger, noise, checkpoint) if shares.times > 0 \
        else P.TimePrior(window)
    return FittedPriors(svc, addr, times)
