"""Fidelity of synthetic network traces: one code path for every method (PE, MST, a simulator, ...).

Per-field metrics follow NetShare (Yin et al., "Practical GAN-based synthetic IP header trace
generation using NetShare", SIGCOMM 2022) and NetDPSyn (Sun et al., IMC 2024): Jensen-Shannon
distance of ports, protocol and IP popularity ranks, and normalised earth mover's distance of
timestamps, durations, packet and byte counts. Those see one field at a time — a file whose columns
were shuffled independently scores a perfect 0 on them — so the headline adds

* **pairwise TVD**: the mean total-variation distance over every pair of coarsely, publicly binned
  columns (the only metric here that sees joint structure), and
* **validity**: the share of records a network stack could have produced (TCP-only flags only on TCP,
  bytes ≥ packets × 20-byte IPv4 header, ports in range, packets ≥ 1, duration ≥ 0),
* **heavy hitters**: relative error of the top-k destination counts as an analyst would estimate them
  from the synthetic trace with a Count-Min sketch (Cormode & Muthukrishnan, J. Algorithms 2005).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from simulators.network.encoder import ACK, ICMP, PROTO_NUMBERS, TCP, UDP, flags_to_mask, ip_to_uint32, proto_to_number

_MERSENNE = (1 << 61) - 1


# ---------------------------------------------------------------------------------------------
# Count-Min sketch
# ---------------------------------------------------------------------------------------------
@dataclass
class CountMinSketch:
    """Count-Min sketch over non-negative integer keys (Cormode & Muthukrishnan 2005).

    ``depth`` rows of ``width`` counters, row hashes h(x) = ((a·x + b) mod p) mod width with the
    Mersenne prime p = 2⁶¹ − 1 and (a, b) drawn from ``seed``. Estimates never undercount; with
    width ⌈e/ε⌉ and depth ⌈ln 1/δ⌉ they overcount by at most ε·total with probability 1 − δ."""

    width: int = 1 << 14
    depth: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.width < 1 or self.depth < 1:
            raise ValueError("Count-Min sketch width and depth must be >= 1")
        rng = np.random.default_rng(self.seed)
        self._a = [int(v) for v in rng.integers(1, _MERSENNE, size=self.depth)]
        self._b = [int(v) for v in rng.integers(0, _MERSENNE, size=self.depth)]
        self.table = np.zeros((self.depth, self.width), dtype=np.float64)
        self.total = 0.0

    def _hash(self, row: int, keys: np.ndarray) -> np.ndarray:
        # exact modular arithmetic on Python ints, vectorised through object arrays
        k = np.asarray(keys, dtype=np.int64).astype(object)
        return np.array(((self._a[row] * k + self._b[row]) % _MERSENNE) % self.width, dtype=np.int64)

    def add(self, keys: np.ndarray, counts: np.ndarray | None = None) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        c = np.ones(len(keys)) if counts is None else np.asarray(counts, dtype=np.float64)
        for r in range(self.depth):
            np.add.at(self.table[r], self._hash(r, keys), c)
        self.total += float(c.sum())

    def query(self, keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys, dtype=np.int64)
        est = np.full(len(keys), np.inf)
        for r in range(self.depth):
            est = np.minimum(est, self.table[r, self._hash(r, keys)])
        return est


def heavy_hitter_error(real_keys: np.ndarray, synth_keys: np.ndarray, top: int = 10,
                       sketch: Callable[[], CountMinSketch] = CountMinSketch) -> dict[str, float]:
    """Mean relative error of the real top-``top`` keys' counts estimated from a Count-Min sketch of the
    synthetic keys (scaled to the real size), and the recall of the real top keys among the synthetic
    sketch's top estimates."""
    real_keys, synth_keys = np.asarray(real_keys, np.int64), np.asarray(synth_keys, np.int64)
    vc = pd.Series(real_keys).value_counts()
    top_keys, true = vc.index.to_numpy(np.int64)[:top], vc.to_numpy(np.float64)[:top]
    cms = sketch()
    uniq, cnt = np.unique(synth_keys, return_counts=True)
    cms.add(uniq, cnt)
    scale = len(real_keys) / max(len(synth_keys), 1)
    est = cms.query(top_keys) * scale
    syn_top = uniq[np.argsort(-cms.query(uniq), kind="stable")[:top]] if len(uniq) else uniq
    return {"hh_error": float(np.mean(np.abs(est - true) / true)),
            "hh_recall": float(len(set(top_keys.tolist()) & set(syn_top.tolist())) / max(len(top_keys), 1))}


# ---------------------------------------------------------------------------------------------
# distances between distributions
# ---------------------------------------------------------------------------------------------
def js_distance(p_counts: pd.Series, q_counts: pd.Series) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two count Series over the union of keys."""
    keys = p_counts.index.union(q_counts.index)
    p = p_counts.reindex(keys, fill_value=0).to_numpy(np.float64)
    q = q_counts.reindex(keys, fill_value=0).to_numpy(np.float64)
    if p.sum() == 0 or q.sum() == 0:
        return 1.0
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return float(np.sqrt(max(0.5 * kl(p) + 0.5 * kl(q), 0.0)))


def rank_js(a: np.ndarray, b: np.ndarray) -> float:
    """JS distance between popularity-rank curves (sorted per-value counts), identities ignored."""
    pa = np.sort(pd.Series(a).value_counts().to_numpy(np.float64))[::-1]
    pb = np.sort(pd.Series(b).value_counts().to_numpy(np.float64))[::-1]
    n = max(len(pa), len(pb))
    return js_distance(pd.Series(np.pad(pa, (0, n - len(pa)))), pd.Series(np.pad(pb, (0, n - len(pb)))))


def emd_normalised(real: np.ndarray, synth: np.ndarray) -> float:
    """1-D Wasserstein distance divided by the range of the real values (0 = same distribution)."""
    r, s = np.asarray(real, np.float64), np.asarray(synth, np.float64)
    r, s = r[np.isfinite(r)], s[np.isfinite(s)]
    if len(r) == 0 or len(s) == 0:
        return float("nan")
    span = r.max() - r.min()
    return float(wasserstein_distance(r, s) / (span if span > 0 else 1.0))


def tvd(a: np.ndarray, b: np.ndarray) -> float:
    """Total variation distance between the empirical distributions of two integer code arrays
    (1-D, or 2-D with one row per record and one column per field)."""
    a2, b2 = np.atleast_2d(np.asarray(a, np.int64).T).T, np.atleast_2d(np.asarray(b, np.int64).T).T
    if a2.shape[1] != b2.shape[1]:
        raise ValueError("tvd needs the same number of fields on both sides")
    both = np.concatenate([a2, b2])
    inv = np.zeros(len(both), dtype=np.int64)
    for j in range(both.shape[1]):  # mixed-radix key over per-column codes: exact and fast
        _, code = np.unique(both[:, j], return_inverse=True)
        _, inv = np.unique(inv * (int(code.max()) + 1) + code.ravel(), return_inverse=True)
    inv = inv.ravel()
    pa = np.bincount(inv[: len(a2)], minlength=inv.max() + 1) / max(len(a2), 1)
    pb = np.bincount(inv[len(a2):], minlength=inv.max() + 1) / max(len(b2), 1)
    return float(0.5 * np.abs(pa - pb).sum())


# ---------------------------------------------------------------------------------------------
# coarse public bins and pairwise TVD
# ---------------------------------------------------------------------------------------------
def _log2_code(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.where(x >= 1, np.floor(np.log2(np.maximum(x, 1))) + 1, 0).astype(np.int64)


def _port_code(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, np.int64)
    return np.where(p < 1024, p, 1024 + (np.clip(p, 1024, 65535) - 1024) // 4096)


def _time_code(ts_us: np.ndarray, window: tuple[float, float], bins: int = 32) -> np.ndarray:
    t0, t1 = window
    t = np.asarray(ts_us, np.float64) / 1e6
    return np.clip(np.floor((t - t0) / max(t1 - t0, 1e-9) * bins), -1, bins).astype(np.int64)


def flow_coarse(df: pd.DataFrame, window: tuple[float, float]) -> dict[str, np.ndarray]:
    """Public coarse bins of flow columns: /8 networks, ports (well-known exact, else 16 ranges),
    protocol, 32 time cells over the window, log₂ of duration (ms), packets and bytes, flags."""
    out = {
        "srcip8": ip_to_uint32(df["srcip"], "srcip") >> 24, "dstip8": ip_to_uint32(df["dstip"], "dstip") >> 24,
        "srcport": _port_code(df["srcport"]), "dstport": _port_code(df["dstport"]),
        "proto": proto_to_number(df["proto"]), "ts": _time_code(df["ts"], window),
        "td": _log2_code(df["td"].to_numpy(np.float64) * 1000), "pkt": _log2_code(df["pkt"]),
        "byt": _log2_code(df["byt"]),
    }
    if "flags" in df.columns:
        out["flags"] = flags_to_mask(df["flags"])
    return out


def packet_coarse(df: pd.DataFrame, window: tuple[float, float]) -> dict[str, np.ndarray]:
    """Public coarse bins of packet headers: /8s, ports, protocol, time, length (100-byte cells),
    TTL (16-hop cells), TCP flags."""
    return {
        "srcip8": ip_to_uint32(df["srcip"], "srcip") >> 24, "dstip8": ip_to_uint32(df["dstip"], "dstip") >> 24,
        "srcport": _port_code(df["srcport"]), "dstport": _port_code(df["dstport"]),
        "proto": proto_to_number(df["proto"]), "ts": _time_code(df["ts"], window),
        "length": np.asarray(df["length"], np.int64) // 100, "ttl": np.asarray(df["ttl"], np.int64) // 16,
        "flags": flags_to_mask(df["flags"]),
    }


def pairwise_tvd(real: dict[str, np.ndarray], synth: dict[str, np.ndarray]) -> dict[str, float]:
    """TVD of every pair of coarse columns present in both (key 'a|b')."""
    cols = [c for c in real if c in synth]
    nr = len(next(iter(real.values()))) if real else 0
    codes, sizes = {}, {}
    for c in cols:  # one joint code per column, shared by real and synthetic
        _, inv = np.unique(np.concatenate([np.asarray(real[c], np.int64), np.asarray(synth[c], np.int64)]),
                           return_inverse=True)
        codes[c], sizes[c] = inv.ravel(), int(inv.max()) + 1
    out = {}
    for a, b in itertools.combinations(cols, 2):
        key = codes[a] * sizes[b] + codes[b]
        m = sizes[a] * sizes[b]
        pa = np.bincount(key[:nr], minlength=m) / max(nr, 1)
        pb = np.bincount(key[nr:], minlength=m) / max(len(key) - nr, 1)
        out[f"{a}|{b}"] = float(0.5 * np.abs(pa - pb).sum())
    return out


# ---------------------------------------------------------------------------------------------
# validity
# ---------------------------------------------------------------------------------------------
def flow_validity(df: pd.DataFrame) -> dict[str, float]:
    """Shares of flows passing each protocol rule and all of them (``valid_rate``)."""
    n = max(len(df), 1)
    sp, dp = df["srcport"].to_numpy(np.float64), df["dstport"].to_numpy(np.float64)
    pkt, byt, td = (df[c].to_numpy(np.float64) for c in ("pkt", "byt", "td"))
    whole = lambda x: np.isfinite(x) & (np.floor(x) == x)  # noqa: E731
    try:
        proto = proto_to_number(df["proto"])
        proto_ok = np.isin(proto, list(PROTO_NUMBERS.values()))
    except ValueError:
        proto = np.full(len(df), -1)
        proto_ok = np.zeros(len(df), dtype=bool)
    rules = {
        "valid_ports": whole(sp) & whole(dp) & (sp >= 0) & (sp <= 65535) & (dp >= 0) & (dp <= 65535),
        "valid_pkt": whole(pkt) & (pkt >= 1),
        "valid_byt": np.isfinite(byt) & (byt >= 20 * pkt),
        "valid_td": np.isfinite(td) & (td >= 0),
        "valid_proto": proto_ok,
    }
    if "flags" in df.columns:
        try:
            fl = flags_to_mask(df["flags"])
            rules["valid_flags"] = (proto == TCP) | ((fl & ~ACK) == 0)  # ACK mark tolerated (nfdump export)
        except ValueError:
            rules["valid_flags"] = np.zeros(len(df), dtype=bool)
    every = np.ones(len(df), dtype=bool)
    for v in rules.values():
        every &= v
    return {**{k: float(v.sum() / n) for k, v in rules.items()}, "valid_rate": float(every.sum() / n)}


def packet_validity(df: pd.DataFrame) -> dict[str, float]:
    n = max(len(df), 1)
    proto = proto_to_number(df["proto"])
    ln, ttl = df["length"].to_numpy(np.int64), df["ttl"].to_numpy(np.int64)
    sp, dp = df["srcport"].to_numpy(np.int64), df["dstport"].to_numpy(np.int64)
    fl = flags_to_mask(df["flags"])
    hdr = np.select([proto == TCP, proto == UDP, proto == ICMP], [40, 28, 28], 20)
    rules = {
        "valid_ports": (sp >= 0) & (sp <= 65535) & (dp >= 0) & (dp <= 65535),
        "valid_length": (ln >= hdr) & (ln <= 65535),
        "valid_ttl": (ttl >= 1) & (ttl <= 255),
        "valid_flags": np.where(proto == TCP, fl > 0, fl == 0),
    }
    every = np.ones(len(df), dtype=bool)
    for v in rules.values():
        every &= v
    return {**{k: float(v.sum() / n) for k, v in rules.items()}, "valid_rate": float(every.sum() / n)}


# ---------------------------------------------------------------------------------------------
# suites
# ---------------------------------------------------------------------------------------------
def _window(real: pd.DataFrame) -> tuple[float, float]:
    t = real["ts"].to_numpy(np.float64) / 1e6
    return float(t.min()), float(max(t.max(), t.min() + 1e-6))


def _headline(r: dict[str, float], jsd_keys: list[str], emd_keys: list[str]) -> dict[str, float]:
    return {"pairwise_tvd": r["pairwise_tvd"], "valid_rate": r["valid_rate"], "hh_error": r["hh_error"],
            "jsd_mean": float(np.mean([r[k] for k in jsd_keys])),
            "emd_mean": float(np.nanmean([r[k] for k in emd_keys]))}


_HEADER_JSD = ["jsd_srcport", "jsd_dstport", "jsd_proto", "jsd_srcip_rank", "jsd_dstip_rank"]


def _header_jsds(real: pd.DataFrame, synth: pd.DataFrame) -> dict[str, object]:
    """JSDs of the header fields flows and packets share (``_HEADER_JSD``): ports and protocol by
    value, addresses by popularity rank (NetShare's per-field metrics)."""
    r: dict[str, object] = {}
    for c in ("srcport", "dstport"):
        r[f"jsd_{c}"] = js_distance(real[c].value_counts(), synth[c].value_counts())
    r["jsd_proto"] = js_distance(pd.Series(proto_to_number(real["proto"])).value_counts(),
                                 pd.Series(proto_to_number(synth["proto"])).value_counts())
    for c in ("srcip", "dstip"):
        r[f"jsd_{c}_rank"] = rank_js(ip_to_uint32(real[c]), ip_to_uint32(synth[c]))
    return r


def _joint_and_headline(r: dict[str, object], real: pd.DataFrame, synth: pd.DataFrame, window: tuple[float, float],
                        top: int, validity: Callable[[pd.DataFrame], dict[str, float]],
                        coarse: Callable[[pd.DataFrame, tuple[float, float]], dict[str, np.ndarray]],
                        emd_keys: list[str]) -> dict[str, object]:
    """The part both suites share after their per-field metrics: destination heavy hitters, validity
    of the synthetic records, pairwise TVD over the coarse bins, then the headline. Kept in one
    place so flow and packet headlines stay comparable."""
    r.update(heavy_hitter_error(ip_to_uint32(real["dstip"]), ip_to_uint32(synth["dstip"]), top))
    r.update(validity(synth))
    pairs = pairwise_tvd(coarse(real, window), coarse(synth, window))
    r["pairwise_tvd"] = float(np.mean(list(pairs.values())))
    r["pairwise_tvd_by_pair"] = pairs
    r["headline"] = _headline(r, _HEADER_JSD, emd_keys)  # type: ignore[arg-type]
    return r


def flow_fidelity(real: pd.DataFrame, synth: pd.DataFrame, window: tuple[float, float] | None = None,
                  top: int = 10) -> dict[str, object]:
    """Every flow metric; ``headline`` holds pairwise TVD, validity, heavy-hitter error and the means of
    the per-field JSDs and EMDs. Lower is better except ``valid_*`` and ``hh_recall``."""
    window = window or _window(real)
    r = _header_jsds(real, synth)
    r["emd_ts"] = emd_normalised(real["ts"].to_numpy(np.float64) / 1e6, synth["ts"].to_numpy(np.float64) / 1e6)
    for c in ("td", "pkt", "byt"):
        r[f"emd_{c}"] = emd_normalised(np.log1p(np.clip(real[c].to_numpy(np.float64), 0, None)),
                                       np.log1p(np.clip(synth[c].to_numpy(np.float64), 0, None)))
    return _joint_and_headline(r, real, synth, window, top, flow_validity, flow_coarse,
                               ["emd_ts", "emd_td", "emd_pkt", "emd_byt"])


def packet_fidelity(real: pd.DataFrame, synth: pd.DataFrame, window: tuple[float, float] | None = None,
                    top: int = 10) -> dict[str, object]:
    """Packet-header metrics: port/protocol JSDs and IP rank JSDs, EMD of length, TTL, inter-arrival
    time and flow size (packets per 5-tuple), heavy hitters, validity and pairwise TVD."""
    window = window or _window(real)
    r = _header_jsds(real, synth)
    r["emd_length"] = emd_normalised(real["length"], synth["length"])
    r["emd_ttl"] = emd_normalised(real["ttl"], synth["ttl"])

    def iat(df: pd.DataFrame) -> np.ndarray:
        return np.log1p(np.diff(np.sort(df["ts"].to_numpy(np.float64))))

    def flow_size(df: pd.DataFrame) -> np.ndarray:
        key = ["srcip", "dstip", "srcport", "dstport", "proto"]
        return np.log1p(df.groupby(key, sort=False).size().to_numpy(np.float64))

    r["emd_iat"] = emd_normalised(iat(real), iat(synth))
    r["emd_flow_size"] = emd_normalised(flow_size(real), flow_size(synth))
    return _joint_and_headline(r, real, synth, window, top, packet_validity, packet_coarse,
                               ["emd_length", "emd_ttl", "emd_iat", "emd_flow_size"])
