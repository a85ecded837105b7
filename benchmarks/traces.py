"""Network traces on UGR'16 alone: PE vs MST on public bins vs the simulator alone (first round).

The corpus benchmark (``benchmarks/traces_corpus.py``, every capture of ``../shared/data/net``) supersedes this
file for every reported figure; this one keeps the MST implementation and the per-setting grid (``--grid``) on
UGR'16. PE runs with the library defaults unless ``--pe`` overrides them.

    nice -n 10 python benchmarks/traces.py [--eps 0.5 2 8] [--units record flow] [--seeds 0]
                                           [--write] [--methods pe mst sim] [--out-dir DIR]

Data: ../shared/data/net/ugr16/ugr16_flows_40k.csv (UGR'16, 40,000 NetFlow records). Every synthetic
file goes through the same fidelity suite (simulators.network.fidelity) and the reference scorer
../shared/bench/score_traces.py; wall and CPU time are measured around the synthesis call only.

MST (McKenna, Miklau & Sheldon, "Winning the NIST contest: a scalable and general approach to
differentially private synthetic data", JPC 2021) is implemented here on mbi 2.0's estimation: 1/3 of
the zCDP budget measures every one-way marginal, 1/3 selects a maximum spanning tree of pairs with the
exponential mechanism (score: L1 error of the independent estimate), 1/3 measures the tree's two-way
marginals; rare one-way bins (noisy count < 3σ) are merged before selection, as in the reference
design. Attributes use NetDPSyn-style public bins (Sun et al., IMC 2024): each IPv4 address as its
two 16-bit halves (network /16 and host part, 65,536 values each, so one tree edge can reproduce exact
addresses; four octets left the tree unable to chain them), ports exact below 1024 and in 16 ranges
above, protocol, 32 time cells over the public window, log₂ bins of duration, packets and bytes, TCP
flags and ToS; binned values are decoded uniformly inside their bin, independently per column.
Flow-level MST weights every record by 1/(records of its flow), so each flow's contribution to any
marginal has L1 and L2 norm ≤ 1. (ε, δ) -> ρ uses the zCDP conversion
of Canonne, Kamath & Steinke (NeurIPS 2020).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data" / "net" / "ugr16" / "ugr16_flows_40k.csv"
SCORER = SHARED / "bench" / "score_traces.py"
# Public: the UGR'16 capture documents this trace as 2016-04-11 00:01-08:36 UTC; whole hours around it.
WINDOW = (1460332800.0, 1460365200.0)


# ---------------------------------------------------------------------------------------------
# zCDP accounting for MST
# ---------------------------------------------------------------------------------------------
def cdp_delta(rho: float, eps: float) -> float:
    """δ of ρ-zCDP at ε (Canonne, Kamath & Steinke 2020, Prop. 12: optimise the Rényi order α)."""
    if rho <= 0:
        return 0.0
    lo, hi = 1.01, (eps + 1) / (2 * rho) + 2
    for _ in range(200):
        a = (lo + hi) / 2
        if (2 * a - 1) * rho - eps + math.log1p(-1.0 / a) < 0:
            lo = a
        else:
            hi = a
    a = (lo + hi) / 2
    return min(math.exp((a - 1) * (a * rho - eps) + a * math.log1p(-1 / a)) / (a - 1.0), 1.0)


def cdp_rho(eps: float, delta: float) -> float:
    """Largest ρ whose zCDP guarantee implies (ε, δ)-DP."""
    lo, hi = 0.0, eps + 1
    for _ in range(200):
        mid = (lo + hi) / 2
        if cdp_delta(mid, eps) <= delta:
            lo = mid
        else:
            hi = mid
    return lo


# ---------------------------------------------------------------------------------------------
# MST on public bins
# ---------------------------------------------------------------------------------------------
def _log2_bin(x: np.ndarray, size: int) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.clip(np.where(x >= 1, np.floor(np.log2(np.maximum(x, 1))) + 1, 0), 0, size - 1).astype(np.int64)


def _log2_decode(b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lo = np.where(b == 0, 0.0, 2.0 ** (b - 1))
    hi = np.where(b == 0, 1.0, 2.0 ** b)
    return lo + rng.uniform(size=len(b)) * (hi - lo)


def encode_public_bins(df: pd.DataFrame, window: tuple[float, float]) -> tuple[pd.DataFrame, dict[str, int]]:
    from simulators.network.encoder import flags_to_mask, proto_to_number

    t0, t1 = window
    out, dom = {}, {}
    for side in ("src", "dst"):
        ip = df[f"{side}ip"].to_numpy(np.int64)
        out[f"{side}ip_hi"], dom[f"{side}ip_hi"] = ip >> 16, 1 << 16
        out[f"{side}ip_lo"], dom[f"{side}ip_lo"] = ip & 0xFFFF, 1 << 16
    for c in ("srcport", "dstport"):
        p = df[c].to_numpy(np.int64)
        out[c], dom[c] = np.where(p < 1024, p, 1024 + (p - 1024) // 4096), 1040
    pr = proto_to_number(df["proto"])
    out["proto"], dom["proto"] = np.select([pr == 6, pr == 17, pr == 1], [0, 1, 2], 3), 4
    ts = df["ts"].to_numpy(np.float64) / 1e6
    out["ts"], dom["ts"] = np.clip(np.floor((ts - t0) / (t1 - t0) * 32), 0, 31).astype(np.int64), 32
    out["td"], dom["td"] = _log2_bin(df["td"].to_numpy(np.float64) * 1000, 24), 24
    out["pkt"], dom["pkt"] = _log2_bin(df["pkt"], 32), 32
    out["byt"], dom["byt"] = _log2_bin(df["byt"], 40), 40
    out["flags"], dom["flags"] = flags_to_mask(df["flags"]) & 0x3F, 64
    out["tos"], dom["tos"] = np.clip(df["tos"].to_numpy(np.int64), 0, 255), 256
    return pd.DataFrame(out), dom


def decode_public_bins(b: pd.DataFrame, window: tuple[float, float], rng: np.random.Generator) -> pd.DataFrame:
    from simulators.network.encoder import mask_to_flags

    t0, t1 = window
    n = len(b)
    out = {}
    for side in ("src", "dst"):
        out[f"{side}ip"] = (b[f"{side}ip_hi"].to_numpy(np.int64) << 16) | b[f"{side}ip_lo"].to_numpy(np.int64)
    for c in ("srcport", "dstport"):
        v = b[c].to_numpy(np.int64)
        out[c] = np.where(v < 1024, v, np.minimum(1024 + (v - 1024) * 4096 + rng.integers(0, 4096, n), 65535))
    out["proto"] = np.array(["TCP", "UDP", "ICMP", "GRE"], dtype=object)[b["proto"].to_numpy(np.int64)]
    cell = (t1 - t0) / 32
    out["ts"] = np.round(t0 + (b["ts"].to_numpy(np.int64) + rng.uniform(size=n)) * cell) * 1e6
    out["td"] = np.round(_log2_decode(b["td"].to_numpy(np.int64), rng), 0) / 1000.0
    out["pkt"] = np.maximum(1, np.floor(_log2_decode(b["pkt"].to_numpy(np.int64), rng))).astype(np.int64)
    out["byt"] = np.maximum(1, np.floor(_log2_decode(b["byt"].to_numpy(np.int64), rng))).astype(np.int64)
    out["type"] = "background"
    out["flags"] = mask_to_flags(b["flags"].to_numpy(np.int64))
    out["tos"] = b["tos"].to_numpy(np.int64)
    return pd.DataFrame(out)


@dataclass
class _Measured:
    clique: tuple[str, ...]
    y: np.ndarray
    sigma: float


def _marginal(data: pd.DataFrame, dom: dict[str, int], clique: tuple[str, ...], w: np.ndarray) -> np.ndarray:
    idx = np.zeros(len(data), dtype=np.int64)
    for a in clique:
        idx = idx * dom[a] + data[a].to_numpy(np.int64)
    return np.bincount(idx, weights=w, minlength=int(np.prod([dom[a] for a in clique])))


def mst_synthesize(df: pd.DataFrame, epsilon: float, delta: float, window: tuple[float, float],
                   groups: np.ndarray | None, rng: np.random.Generator, n_out: int | None = None,
                   iters: int = 5000, bins: tuple[Any, Any] | None = None) -> pd.DataFrame:
    """MST on public bins; ``bins`` = (encode, decode) of another record kind (default: NetFlow)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_enable_compilation_cache", False)  # mbi's advice: many small programs
    from mbi import Domain, LinearMeasurement, estimation

    encode, decode = bins or (encode_public_bins, decode_public_bins)
    data, dom = encode(df, window)
    if groups is None:
        w = np.ones(len(data))
    else:
        _, inv, cnt = np.unique(groups, return_inverse=True, return_counts=True)
        w = 1.0 / cnt[inv]  # each flow contributes total weight 1 to every marginal
    rho = cdp_rho(epsilon, delta)
    attrs = list(dom)
    sigma1 = math.sqrt(len(attrs) / (2 * rho / 3))  # ρ/3 over the d one-way marginals
    one = {a: _marginal(data, dom, (a,), w) + rng.normal(0, sigma1, dom[a]) for a in attrs}
    # compress: bins below 3σ merge into one rare bin (their noisy counts are mostly noise)
    keep = {a: np.flatnonzero(one[a] >= 3 * sigma1) for a in attrs}
    maps, cdom = {}, {}
    for a in attrs:
        m = np.full(dom[a], len(keep[a]), dtype=np.int64)
        m[keep[a]] = np.arange(len(keep[a]))
        rare = len(keep[a]) < dom[a]
        maps[a], cdom[a] = m, len(keep[a]) + int(rare)
        if cdom[a] == 0:
            maps[a][:], cdom[a] = 0, 1
    cdata = pd.DataFrame({a: maps[a][data[a].to_numpy(np.int64)] for a in attrs})
    meas = []
    for a in attrs:
        y = np.bincount(maps[a], weights=one[a], minlength=cdom[a])
        rare_n = np.bincount(maps[a], minlength=cdom[a])
        meas.append(_Measured((a,), y / np.sqrt(rare_n), sigma1))  # merged bins: sum of noisy counts / sqrt(k)
    domain = Domain(attrs, [cdom[a] for a in attrs])

    def fit(measured: list[_Measured], it: int):
        lms = []
        for m in measured:
            if len(m.clique) == 1:
                k = np.bincount(maps[m.clique[0]], minlength=cdom[m.clique[0]]).astype(float)
                from mbi.marginal_loss import WeightedQuery
                lms.append(LinearMeasurement(m.y, m.clique, m.sigma, query=WeightedQuery(1 / np.sqrt(k))))
            else:
                lms.append(LinearMeasurement(m.y, m.clique, m.sigma))
        return estimation.MirrorDescent().estimate(domain, lms, iters=it)

    # the one-way model is a product distribution: its two-way estimate is the outer product of the
    # (clipped, normalised) noisy one-way marginals on the compressed domains
    total = float(np.mean([one[a].sum() for a in attrs]))  # unbiased noisy record count
    p1 = {}
    for a in attrs:
        y = np.clip(np.bincount(maps[a], weights=one[a], minlength=cdom[a]), 0, None)
        p1[a] = y / max(y.sum(), 1e-12)
    scores = {}
    for a, b in itertools.combinations(attrs, 2):
        x = _marginal(cdata, cdom, (a, b), w)
        xhat = total * np.outer(p1[a], p1[b]).ravel()
        scores[(a, b)] = float(np.abs(x - xhat).sum())
    from benchmarks.peers.mst import private_spanning_tree

    tree = private_spanning_tree(scores, attrs, rho / 3, rng)
    print("MST tree:", tree, flush=True)
    sigma2 = math.sqrt(len(tree) / (2 * rho / 3))
    for a, b in tree:
        meas.append(_Measured((a, b), _marginal(cdata, cdom, (a, b), w) + rng.normal(0, sigma2, cdom[a] * cdom[b]),
                              sigma2))
    model = fit(meas, iters)
    n = n_out or len(df)
    syn = model.synthetic_data(rows=n)
    sd = pd.DataFrame({a: np.asarray(syn.data[a]) for a in attrs})
    # undo compression: the rare bin decodes to a uniformly chosen rare value
    for a in attrs:
        rare_vals = np.flatnonzero(maps[a] == len(keep[a]))
        v = sd[a].to_numpy(np.int64)
        out = np.where(v < len(keep[a]), keep[a][np.minimum(v, max(len(keep[a]) - 1, 0))] if len(keep[a]) else 0, 0)
        is_rare = v >= len(keep[a])
        if rare_vals.size:
            out[is_rare] = rare_vals[rng.integers(0, rare_vals.size, int(is_rare.sum()))]
        sd[a] = out
    return decode(sd, window, rng)


# ---------------------------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------------------------
def _timed(fn: Any) -> tuple[Any, float, float]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def run_one(method: str, real: pd.DataFrame, eps: float, unit: str, seed: int, out_dir: Path,
            pe_kw: dict[str, Any]) -> dict[str, Any]:
    from simulators.network.fidelity import flow_fidelity
    from simulators.network.io import write_netflow_csv
    from simulators.network.pipeline import TraceSynthConfig, privacy_groups, simulate_flows, synthesize_flows

    rng = np.random.default_rng(seed)
    if method == "pe":
        cfg = TraceSynthConfig(epsilon=eps, unit=unit, time_window=WINDOW, ts_resolution_s=1.0, seed=seed, **pe_kw)
        res, wall, cpu = _timed(lambda: synthesize_flows(real, cfg))
        syn, eps_spent = res.records, res.ledger.epsilon
    elif method == "mst":
        groups = privacy_groups(real, unit)
        syn, wall, cpu = _timed(lambda: mst_synthesize(real, eps, 1e-5, WINDOW, groups, rng))
        eps_spent = eps
    elif method == "sim":
        syn, wall, cpu = _timed(lambda: simulate_flows(len(real), WINDOW, seed, 1.0))
        eps_spent = 0.0
    else:
        raise ValueError(method)
    name = f"{method}_{unit}_eps{eps:g}_s{seed}"
    path = write_netflow_csv(syn, out_dir / f"{name}.csv")
    fid = flow_fidelity(real, syn)
    scorer = {}
    if SCORER.exists():
        cmd = [sys.executable, str(SCORER), str(DATA), str(path), "--method", name, "--eps", str(eps),
               "--wall-s", f"{wall:.1f}", "--json-out", str(out_dir / "scores.jsonl")]
        scorer = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return {"method": method, "unit": unit, "eps": eps, "eps_spent": eps_spent, "seed": seed, "wall_s": wall,
            "cpu_s": cpu, "fidelity": {k: v for k, v in fid.items() if k != "pairwise_tvd_by_pair"},
            "scorer": scorer}


def _fmt_table(rows: list[dict[str, Any]]) -> list[str]:
    head = ("| method | unit | ε | pairwise TVD (ours / scorer tvd2) | validity | HH err (CMS / scorer) | "
            "mean JSD | mean EMD | dstip seen in real | scorer summary | wall s | CPU s |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        h, s = r["fidelity"]["headline"], r["scorer"]
        lines.append(
            f"| {r['method_label']} | {r['unit']} | {'—' if math.isnan(r['eps']) else format(r['eps'], 'g')} "
            f"| {h['pairwise_tvd']:.3f} / {s.get('tvd2_mean', 0):.3f} "
            f"| {h['valid_rate']:.3f} | {h['hh_error']:.3f} / {s.get('hh_relerr_top10_dstip', 0):.3f} "
            f"| {h['jsd_mean']:.3f} | {h['emd_mean']:.4f} | {s.get('dstip_seen_in_real', 0):.2f} "
            f"| {s.get('summary', 0):.3f} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} |")
    return lines


def _aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds per (method, unit, ε)."""
    out = []
    keyf = lambda r: (r["method"], r["unit"], r["eps"])  # noqa: E731
    order = {"pe": 0, "mst": 1, "sim": 2}
    for key in sorted({keyf(r) for r in rows}, key=lambda k: (k[0] == "sim", k[2], k[1], order[k[0]])):
        grp = [r for r in rows if keyf(r) == key]
        def mean(f: Any, grp: list[dict[str, Any]] = grp) -> float:
            return float(np.nanmean([f(r) for r in grp]))

        head = {k: mean(lambda r, k=k: r["fidelity"]["headline"][k]) for k in grp[0]["fidelity"]["headline"]}
        sc = {k: mean(lambda r, k=k: r["scorer"].get(k, np.nan)) for k in
              ("tvd2_mean", "hh_relerr_top10_dstip", "dstip_seen_in_real", "summary", "valid_rate")}
        label = {"pe": "PE (this work)", "mst": "MST (mbi, public bins)", "sim": "simulator alone"}[key[0]]
        out.append({"method": key[0], "method_label": f"{label} ×{len(grp)}" if len(grp) > 1 else label,
                    "unit": key[1] if key[0] != "sim" else "—",
                    "eps": key[2] if key[0] != "sim" else math.nan, "wall_s": mean(lambda r: r["wall_s"]),
                    "cpu_s": mean(lambda r: r["cpu_s"]), "fidelity": {"headline": head}, "scorer": sc})
    return out


def _findings(agg: list[dict[str, Any]]) -> str:
    """PE vs MST per (unit, ε): pairwise-TVD and CPU ratios, validity, heavy hitters."""
    out = []
    for r in agg:
        if r["method"] != "pe":
            continue
        m = [x for x in agg if x["method"] == "mst" and x["unit"] == r["unit"] and x["eps"] == r["eps"]]
        if not m:
            continue
        m = m[0]
        hp, hm = r["fidelity"]["headline"], m["fidelity"]["headline"]
        out.append(f"{r['unit']} ε={r['eps']:g}: TVD {hp['pairwise_tvd']:.3f} vs {hm['pairwise_tvd']:.3f}, "
                   f"validity {hp['valid_rate']:.3f} vs {hm['valid_rate']:.3f}, HH {hp['hh_error']:.3f} vs "
                   f"{hm['hh_error']:.3f}, CPU {r['cpu_s']:.0f} s vs {m['cpu_s']:.0f} s "
                   f"({m['cpu_s'] / max(r['cpu_s'], 1e-9):.1f}x less)")
    return "PE vs our MST — " + "; ".join(out) + "."


def _run_args(argv: list[str]) -> list[str]:
    """The arguments of the run that produced the rows (a --rows rebuild drops its own flag)."""
    out, skip = [], False
    for x in argv:
        if skip:
            skip = False
            continue
        if x == "--rows":
            skip = True
            continue
        out.append(x)
    return out


def write_results(rows: list[dict[str, Any]], argv: list[str], pe_kw: dict[str, Any]) -> None:
    import mbi
    import numba

    agg = _aggregate(rows)
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.split(":")
    lines = ["## Network traces", "",
             "UGR'16, 40,000 NetFlow records (`../shared/data/net/ugr16/ugr16_flows_40k.csv`), δ = 1e-5. Every "
             "synthetic file is scored by the same suite (`simulators/network/fidelity.py`: pairwise TVD on coarse "
             "public bins, validity, Count-Min heavy-hitter error of the top-10 destinations, mean JSD of ports/"
             "protocol/IP ranks, mean normalised EMD of ts/td/pkt/byt) and by the reference scorer "
             "`../shared/bench/score_traces.py` (its `tvd2_mean`, `hh_relerr_top10_dstip`, `dstip_seen_in_real`, "
             "`summary`). Wall/CPU time cover synthesis only. Record level protects one NetFlow record; flow level "
             "every record of a bidirectional 5-tuple (PE: grouped votes with L2 norm 1; MST: records weighted "
             "1/flow size). PE settings: library defaults" + "".join(f", {k}={v}" for k, v in pe_kw.items())
             + ". MST: own "
             "implementation on mbi's MirrorDescent (see the module docstring). Rows with ×k are means over k "
             "seeds.", ""]
    lines += _fmt_table(agg)
    lines += ["", "Findings (means over seeds): " + _findings(agg)]
    lines += ["", "Reference points from `../shared/bench/peers_traces.jsonl` (same scorer): MST at ε = 2 record "
              "level tvd2 0.165, validity 0.84, HH error 0.07, ≈150 CPU-s; independent columns tvd2 0.315; bootstrap "
              "floor 0.022.", "",
              f"Command: `nice -n 10 python benchmarks/traces.py {' '.join(_run_args(argv))}`. Machine: "
              f"{cpu[-1].strip()}, "
              f"{os.cpu_count()} cores visible; Python {platform.python_version()}, numpy {np.__version__}, "
              f"pandas {pd.__version__}, numba {numba.__version__}, mbi {getattr(mbi, '__version__', '2.0')}.", ""]
    res = ROOT / "benchmarks" / "RESULTS.md"
    text = res.read_text() if res.exists() else "# Benchmark results\n"
    start = text.find("## Network traces")
    if start >= 0:  # replace our own section only
        end = text.find("\n## ", start + 5)
        text = text[:start] + text[end + 1:] if end >= 0 else text[:start]
    from pe_tabular.io_utils import atomic_write_text

    atomic_write_text(res, text.rstrip("\n") + "\n\n" + "\n".join(lines))


def _grid(real: pd.DataFrame, settings: list[dict[str, Any]], eps: float, unit: str, seeds: list[int]) -> int:
    """Mean ± sd of PE's pairwise TVD, HH error and CPU over seeds for each setting."""
    from simulators.network.fidelity import flow_fidelity
    from simulators.network.pipeline import TraceSynthConfig, synthesize_flows

    for kw in settings:
        res = []
        for seed in seeds:
            cfg = TraceSynthConfig(epsilon=eps, unit=unit, time_window=WINDOW, ts_resolution_s=1.0, seed=seed, **kw)
            out = synthesize_flows(real, cfg)
            h = flow_fidelity(real, out.records)["headline"]
            res.append((h["pairwise_tvd"], h["hh_error"], out.cpu_s))
        v = np.array(res)
        print(f"| {json.dumps(kw)} | {v[:, 0].mean():.3f} ± {v[:, 0].std():.3f} | {v[:, 1].mean():.3f} "
              f"| {v[:, 2].mean():.1f} |", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eps", type=float, nargs="+", default=[0.5, 2.0, 8.0])
    ap.add_argument("--units", nargs="+", default=["record", "flow"], choices=["record", "flow", "host"])
    ap.add_argument("--methods", nargs="+", default=["pe", "mst", "sim"], choices=["pe", "mst", "sim"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out-dir", default="/tmp/pe_traces_bench")
    ap.add_argument("--pe", default="{}", help="JSON overrides of TraceSynthConfig for PE")
    ap.add_argument("--write", action="store_true", help="write the section into benchmarks/RESULTS.md")
    ap.add_argument("--rows", default=None, help="rebuild the section from a saved rows.json (no runs)")
    ap.add_argument("--grid", default=None, help="JSON list of PE settings to compare at the first --eps and "
                                                 "unit over --seeds (the tuning table)")
    a = ap.parse_args(argv)
    if a.rows:
        write_results(json.loads(Path(a.rows).read_text()), argv if argv is not None else sys.argv[1:],
                      json.loads(a.pe))
        return 0
    if not DATA.exists():
        print(f"{DATA} not found: the benchmark needs ../shared beside the checkout", file=sys.stderr)
        return 2
    from simulators.network.io import read_netflow_csv

    out_dir = Path(a.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    real = read_netflow_csv(DATA)
    pe_kw = json.loads(a.pe)
    if a.grid:
        return _grid(real, json.loads(a.grid), a.eps[0], a.units[0], a.seeds)
    rows = []
    for eps in a.eps:
        for unit in a.units:
            for method in a.methods:
                for seed in (a.seeds if method != "sim" else a.seeds[:1]):
                    if method == "sim" and unit != a.units[0]:
                        continue  # no private data: the unit is irrelevant
                    if method == "sim" and eps != a.eps[0]:
                        continue
                    r = run_one(method, real, eps, unit, seed, out_dir, pe_kw)
                    rows.append(r)
                    h, s = r["fidelity"]["headline"], r["scorer"]
                    print(f"{method:4s} {unit:6s} eps={eps:<4g} seed={seed} tvd={h['pairwise_tvd']:.3f} "
                          f"(scorer {s.get('tvd2_mean', float('nan')):.3f}) valid={h['valid_rate']:.3f} "
                          f"hh={h['hh_error']:.3f} jsd={h['jsd_mean']:.3f} emd={h['emd_mean']:.4f} "
                          f"wall={r['wall_s']:.1f}s cpu={r['cpu_s']:.1f}s", flush=True)
    (out_dir / "rows.json").write_text(json.dumps(rows, default=float, indent=1))
    if a.write:
        write_results(rows, argv if argv is not None else sys.argv[1:], pe_kw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
