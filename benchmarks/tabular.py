"""Adult side by side: our PE against DP baselines, a DP-fine-tuned generator and non-DP references.

    nice -n 10 python -m benchmarks.tabular --quick            # ε = 1, one seed, every method
    nice -n 10 python -m benchmarks.tabular --eps 0.3,1,3,10 --seeds 3
    nice -n 10 python -m benchmarks.tabular --methods pe,mst --eps 1 --seeds 2

Same data (private = adult.data, 32,561 rows; test = adult.test), same public discretisation
(config.yml of the AIM/MST benchmarks: code-based peers run on its bins and decode uniformly within a
bin), same evaluation for every method: our ``pe_tabular.tables.evaluation`` (1/2/3-way TVD on the
schema's public bins, TSTR with HistGradientBoosting, DCR) AND the reference scorer
../shared/bench/score_adult.py (TVD on config.yml bins, TSTR on all of adult.test).

Our evaluation's TSTR/DCR test set is adult.test WITHOUT its last 1,000 rows, for every method,
because the DP-SGD peer pre-trains on those rows as its public split.

Each (method, ε, seed) runs in its own process (benchmarks/peers/run_one.py) with one thread per
numeric library ("one core each", as the peer figures were measured); ``os.wait4`` gives its wall
time and CPU time (user + sys, children included); peak memory is the child's own VmHWM (and its
snsynth grandchild's), not ru_maxrss, which on Linux inherits the forking parent's high-water mark.
Results are cached in WORK/results.json (resumable); the section '## Tables: Adult vs peers' of
benchmarks/RESULTS.md is rewritten from all cached records, and benchmarks/adult_vs_eps.png plots
quality and time against ε.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
SCORER = SHARED / "bench" / "score_adult.py"
PEERS_FILE = SHARED / "bench" / "peers_adult.jsonl"
PLOT = ROOT / "benchmarks" / "adult_vs_eps.png"
HEADING = "Tables: Adult vs peers"
# cheap and must-show first, so a cut-short run still has the issue-3 table
DEFAULT_METHODS = "pe,indep,mst,dpsgd,public_pretrain,gaussian_copula,bootstrap,dpctgan,patectgan"

from benchmarks.peers.run_one import DP_METHODS, METHODS, N_PUBLIC, REF_METHODS  # noqa: E402

LABELS = {"pe": "**PE (ours)**", "mst": "MST (our code, mbi 2.0)",
          "dpsgd": "DP-SGD fine-tuned AR generator", "dpctgan": "DP-CTGAN (snsynth 1.0.8)",
          "patectgan": "PATE-CTGAN (snsynth 1.0.8)", "public_pretrain": "AR generator, public pre-training only",
          "indep": "independent marginals (exact, non-DP)", "bootstrap": "bootstrap of the real rows (non-DP)",
          "gaussian_copula": "SDV GaussianCopula (non-DP)"}
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
              "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
              "JAX_ENABLE_COMPILATION_CACHE": "false", "PYTHONWARNINGS": "ignore"}


def log(msg: str) -> None:
    print(f"[tabular {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- running one method ----------------------------------------------------------------------------------
def run_child(method: str, eps: float, seed: int, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run one method in a fresh process; its own wall/CPU/peak-memory from os.wait4."""
    tag = f"{method}_eps{eps:g}_s{seed}"
    out, meta = work / f"{tag}.csv", work / f"{tag}.meta.json"
    cmd = [sys.executable, "-m", "benchmarks.peers.run_one", method, "--eps", str(eps), "--seed", str(seed),
           "--out", str(out), "--meta", str(meta), "--mst-iters", str(args.mst_iters), "--dpsgd-epochs",
           str(args.dpsgd_epochs), "--ctgan-epochs", str(args.ctgan_epochs), "--pate-epochs", str(args.pate_epochs)]
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(ROOT)}
    load0 = os.getloadavg()[0]
    t0 = time.time()
    with open(work / f"{tag}.log", "w") as logf:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(proc.pid, 0)
    wall = time.time() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    rec: dict[str, Any] = {"method": method, "eps_target": eps, "seed": seed, "csv": str(out), "wall_s": wall,
                           "cpu_s": ru.ru_utime + ru.ru_stime, "ru_maxrss_mb": ru.ru_maxrss / 1024.0,
                           "load_avg": [load0, os.getloadavg()[0]], "rc": proc.returncode}
    if proc.returncode != 0:
        rec["error"] = (work / f"{tag}.log").read_text()[-2000:]
        return rec
    rec["meta"] = json.loads(meta.read_text())
    return rec


# -- evaluation --------------------------------------------------------------------------------------------
class Evaluator:
    """Our evaluation (pe_tabular.tables.evaluation) + the reference scorer, on one synthetic CSV."""

    def __init__(self) -> None:
        from pe_tabular.tables.datasets import adult_schema, load_adult
        from pe_tabular.tables.evaluation import tstr

        self.schema = adult_schema()
        self.real = load_adult("train")
        self.test = load_adult("test").iloc[:-N_PUBLIC].reset_index(drop=True)
        self.trtr = tstr(self.real, self.test, self.schema, "income")

    def ours(self, synth: Any) -> dict[str, Any]:
        from pe_tabular.tables.evaluation import dcr, marginal_tvd, tstr

        out = marginal_tvd(self.real, synth, self.schema)
        out.pop("worst_marginals", None)
        out["tstr"] = tstr(synth, self.test, self.schema, "income")
        d = dcr(self.real, self.test, synth, self.schema)
        out["dcr"] = {k: d[k] for k in ("synth_median", "holdout_median", "synth_exact_copies",
                                        "holdout_exact_copies", "share_synth_closer_than_holdout_median")}
        return out

    def reference(self, csv: Path, method: str, eps: float, wall: float) -> dict[str, Any]:
        import pandas as pd

        if not SCORER.exists():
            return {"error": f"{SCORER} missing"}
        ref_csv = csv.with_suffix(".scorer.csv")
        pd.read_csv(csv).rename(columns={"income": "income>50K"}).to_csv(ref_csv, index=False)
        r = subprocess.run([sys.executable, str(SCORER), str(ref_csv), "--method", method, "--eps", str(eps),
                            "--wall-s", f"{wall:.1f}"], capture_output=True, text=True,
                           env={**os.environ, **ONE_THREAD})
        ref_csv.unlink(missing_ok=True)
        if r.returncode != 0:
            return {"error": r.stderr[-1000:]}
        return json.loads(r.stdout.strip().splitlines()[-1])

    def score(self, rec: dict[str, Any]) -> None:
        import pandas as pd

        synth = pd.read_csv(rec["csv"], keep_default_na=False)
        rec["ours"] = self.ours(synth)
        rec["ref"] = self.reference(Path(rec["csv"]), rec["method"], rec["eps_target"], rec["wall_s"])


# -- cache ------------------------------------------------------------------------------------------------
class Store:
    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def put(self, key: str, value: dict[str, Any]) -> None:
        from pe_tabular.io_utils import atomic_write_json

        self.data[key] = value
        atomic_write_json(self.path, self.data)


def plan(methods: list[str], eps_list: list[float], seeds: int, first: int = 0) -> list[tuple[str, float, int]]:
    """Seed-major order, so an interrupted grid still covers every (method, ε) with its first seeds."""
    jobs = []
    for s in range(first, first + seeds):
        for m in methods:
            if m in DP_METHODS:
                jobs += [(m, eps, s) for eps in eps_list]
            elif m in REF_METHODS:  # ε-free references once per seed (listed at every ε in the tables)
                jobs.append((m, math.inf, s))
    return jobs


def ok(rec: dict[str, Any]) -> bool:
    return rec.get("rc") == 0 and "ours" in rec


def key_of(method: str, eps: float, seed: int) -> str:
    return f"{method}|{eps:g}|{seed}"


# -- aggregation and report -------------------------------------------------------------------------------
def metrics(rec: dict[str, Any]) -> dict[str, float]:
    o, r = rec.get("ours", {}), rec.get("ref", {})
    m = {f"ours_{k}": o.get(k) for k in ("tvd1_mean", "tvd1_max", "tvd2_mean", "tvd2_max", "tvd3_mean", "tvd3_max")}
    m.update({f"ours_tstr_{k}": o.get("tstr", {}).get(k) for k in ("accuracy", "f1", "auc")})
    m.update({f"ref_{k}": r.get(k) for k in ("tvd1_mean", "tvd1_max", "tvd2_mean", "tvd2_max", "tvd3_mean",
                                            "tvd3_max", "tstr_acc", "tstr_f1", "tstr_auc")})
    m["dcr_copies"] = o.get("dcr", {}).get("synth_exact_copies")
    own = rec.get("meta", {}).get("peak_mb")  # VmHWM of the run itself; older records only have ru_maxrss,
    bound = rec.get("ru_maxrss_mb", rec.get("peak_mb"))  # an upper bound (includes the forking parent's RSS)
    m["peak_is_bound"] = 0.0 if own is not None else 1.0
    m.update(wall_s=rec["wall_s"], cpu_s=rec["cpu_s"], peak_mb=own if own is not None else bound,
             eps_spent=rec.get("meta", {}).get("epsilon"))
    return {k: (float(v) if v is not None else math.nan) for k, v in m.items()}


def aggregate(store: Store) -> dict[tuple[str, float], dict[str, Any]]:
    import numpy as np

    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for rec in store.data.values():
        if ok(rec):
            groups.setdefault((rec["method"], float(rec["eps_target"])), []).append(rec)
    agg = {}
    for key, recs in groups.items():
        ms = [metrics(r) for r in recs]
        stats = {}
        for k in ms[0]:
            v = np.array([m[k] for m in ms], float)
            stats[k] = (float(np.nanmean(v)) if (~np.isnan(v)).any() else math.nan,
                        float(np.nanstd(v, ddof=1)) if np.isfinite(v).sum() > 1 else math.nan)
        agg[key] = {"n": len(recs), "stats": stats, "meta": recs[0].get("meta", {}),
                    "load": float(np.mean([np.mean(r["load_avg"]) for r in recs]))}
    return agg


def fmt(ms: tuple[float, float], digits: int = 3) -> str:
    m, s = ms
    if not math.isfinite(m):
        return "–"
    return f"{m:.{digits}f}" if not math.isfinite(s) else f"{m:.{digits}f} ± {s:.{digits}f}"


def fmt_t(ms: tuple[float, float]) -> str:
    m, s = ms
    return "–" if not math.isfinite(m) else (f"{m:.0f}" if not math.isfinite(s) else f"{m:.0f} ± {s:.0f}")


def eps_label(e: float) -> str:
    return "∞ (non-DP)" if math.isinf(e) else f"{e:g}"


def quoted_peers() -> list[dict[str, Any]]:
    if not PEERS_FILE.exists():
        return []
    return [json.loads(line) for line in PEERS_FILE.read_text().splitlines() if line.strip()]


def quoted_summary(name_prefix: str) -> str:
    import numpy as np

    recs = [r for r in quoted_peers() if r["method"].startswith(name_prefix) and str(r.get("eps")) in ("1", "1.0")
            and r.get("delta") == 1e-5]
    if not recs:
        return "–"
    v = {k: np.array([r[k] for r in recs if r.get(k) is not None], float) for k in
         ("tvd1_mean", "tvd2_mean", "tvd3_mean", "tstr_acc", "tstr_auc", "wall_s")}
    f = {k: (f"{a.min():.3f}–{a.max():.3f}" if len(a) > 1 else f"{a[0]:.3f}") if len(a) else "–" for k, a in v.items()}
    w = v["wall_s"]
    f["wall_s"] = f"{w.min():.0f}–{w.max():.0f}" if len(w) else "–"
    return (f"| {name_prefix} — *quoted* from peers_adult.jsonl ({len(recs)} runs) | 1 | {f['tvd1_mean']} | "
            f"{f['tvd2_mean']} | {f['tvd3_mean']} | {f['tstr_acc']} | {f['tstr_auc']} | {f['wall_s']} (one core) | – |")


def versions() -> str:
    import importlib.metadata as md
    import platform

    names = ["numpy", "pandas", "scikit-learn", "jax", "mbi", "torch", "opacus", "sdv", "pe-tabular"]
    got = []
    for n in names:
        try:
            got.append(f"{n} {md.version(n)}")
        except md.PackageNotFoundError:
            pass
    sn = Path("/tmp/snsynth/lib/python3.11/site-packages")
    if sn.exists():
        got.append("smartnoise-synth 1.0.8 + opacus 0.14 + mbi 1.1 in /tmp/snsynth (separate venv)")
    return f"Python {platform.python_version()}, " + ", ".join(got)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores (shared with other jobs)"


def report(store: Store, command: str, started: str, notes: tuple[str, ...] = ()) -> list[str]:
    agg = aggregate(store)
    eps_all = sorted({e for (_, e) in agg if math.isfinite(e)})
    order = METHODS
    L: list[str] = []
    L.append("")
    L.append("Private = adult.data (32,561 rows), test = adult.test, δ = 1e-5, every method on the same public "
             "discretisation (config.yml) and scored by the same two evaluations: **ref** = "
             "`../shared/bench/score_adult.py` (TVD on config.yml bins; TSTR on all of adult.test; the yardstick of "
             "the quoted peer figures) and **ours** = `pe_tabular.tables.evaluation` (TVD on the schema's public "
             f"bins — 32 log-spaced bins for capital-gain/loss and fnlwgt; TSTR on adult.test minus its last "
             f"{N_PUBLIC} rows). Mean ± sd over seeds; times are per run in its own process, one thread per "
             "library; the machine was shared (load average in the notes), so **wall time is inflated — CPU time is "
             "the comparable cost**.")
    # -- issue 3 table ----------------------------------------------------------------------------------
    L.append("")
    L.append("### Adult at ε = 1 (issue 3 must-show)")
    L.append("")
    L.append("| method | ε | 1-way TVD | 2-way TVD | 3-way TVD | TSTR acc | TSTR AUC | wall s | CPU s |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for m in ["pe", "indep", "mst"]:
        e = 1.0 if m != "indep" else math.inf
        a = agg.get((m, e))
        if a is None:
            continue
        s = a["stats"]
        L.append(f"| {LABELS[m]} (n={a['n']}) | {eps_label(e)} | {fmt(s['ref_tvd1_mean'])} | {fmt(s['ref_tvd2_mean'])} "
                 f"| {fmt(s['ref_tvd3_mean'])} | {fmt(s['ref_tstr_acc'])} | {fmt(s['ref_tstr_auc'])} | "
                 f"{fmt_t(s['wall_s'])} | {fmt_t(s['cpu_s'])} |")
    L.append(quoted_summary("MST (mbi 2.0)"))
    L.append(quoted_summary("Tab-PE (DPSDA 9078c67)"))
    L.append("")
    L.append("TVD and TSTR by the reference scorer. The quoted rows were measured on this machine earlier with the "
             "same scorer, one core each, on a less loaded machine (their wall time is not comparable to ours).")
    pe1, mst1, ind = agg.get(("pe", 1.0)), agg.get(("mst", 1.0)), agg.get(("indep", math.inf))
    if pe1:
        s = pe1["stats"]
        verdict = []
        if ind:
            verdict.append("beats independent marginals on 2-way TVD" if s["ref_tvd2_mean"][0] <
                           ind["stats"]["ref_tvd2_mean"][0] else "does NOT beat independent marginals on 2-way TVD")
        if mst1:
            t = mst1["stats"]
            better = s["ref_tvd2_mean"][0] <= t["ref_tvd2_mean"][0]
            verdict.append(f"{'matches or beats' if better else 'falls short of'} our MST on 2-way TVD "
                           f"({s['ref_tvd2_mean'][0]:.3f} vs {t['ref_tvd2_mean'][0]:.3f}) and "
                           f"{'beats' if s['ref_tstr_auc'][0] > t['ref_tstr_auc'][0] else 'trails'} it on TSTR AUC "
                           f"({s['ref_tstr_auc'][0]:.3f} vs {t['ref_tstr_auc'][0]:.3f}), at "
                           f"{s['cpu_s'][0] / max(t['cpu_s'][0], 1e-9):.2f}× its CPU time")
        verdict.append(f"TSTR AUC {s['ref_tstr_auc'][0]:.3f} vs Tab-PE's quoted 0.86–0.88 "
                       f"({'reaches' if s['ref_tstr_auc'][0] >= 0.86 else 'below'} it)")
        L.append("")
        L.append("Verdict at ε = 1: PE " + "; ".join(verdict) + ".")
    # -- PE against MST at every ε ----------------------------------------------------------------------
    rows = []
    for e in eps_all:
        p, q = agg.get(("pe", e)), agg.get(("mst", e))
        if p and q:
            ps, qs = p["stats"], q["stats"]
            rows.append(f"| {e:g} | {ps['ref_tvd2_mean'][0]:.3f} vs {qs['ref_tvd2_mean'][0]:.3f} "
                        f"({ps['ref_tvd2_mean'][0] / qs['ref_tvd2_mean'][0]:.2f}×) | "
                        f"{ps['ref_tvd3_mean'][0]:.3f} vs {qs['ref_tvd3_mean'][0]:.3f} | "
                        f"{ps['ref_tstr_auc'][0]:.3f} vs {qs['ref_tstr_auc'][0]:.3f} | "
                        f"{ps['ours_tvd2_mean'][0]:.3f} vs {qs['ours_tvd2_mean'][0]:.3f} | "
                        f"{ps['cpu_s'][0]:.0f} vs {qs['cpu_s'][0]:.0f} ({qs['cpu_s'][0] / ps['cpu_s'][0]:.0f}× less) |")
    if rows:
        L.append("")
        L.append("### PE against MST, ε by ε (PE vs MST; means over seeds)")
        L.append("")
        L.append("| ε | 2-way TVD ref (PE/MST) | 3-way TVD ref | TSTR AUC ref | 2-way TVD ours | CPU s (PE's saving) |")
        L.append("|---|---|---|---|---|---|")
        L += rows
        L.append("")
        both = [(agg[("pe", e)]["stats"], agg[("mst", e)]["stats"]) for e in eps_all
                if ("pe", e) in agg and ("mst", e) in agg]
        worse = sum(p["ref_tvd2_mean"][0] > q["ref_tvd2_mean"][0] for p, q in both)
        auc_hi = sum(p["ref_tstr_auc"][0] > q["ref_tstr_auc"][0] for p, q in both)
        L.append(f"On MST's own bins (ref), PE's 2-way marginals are worse than MST's at {worse} of {len(both)} ε "
                 f"values; PE's TSTR AUC is higher at {auc_hi} of {len(both)}; PE's CPU cost is "
                 f"{min(q['cpu_s'][0] / p['cpu_s'][0] for p, q in both):.0f}–"
                 f"{max(q['cpu_s'][0] / p['cpu_s'][0] for p, q in both):.0f}× lower. On our evaluation's finer "
                 "public bins the TVD order flips: MST only knows config.yml bins and decodes uniformly inside "
                 "them (capital-gain = 0 in 92% of real rows becomes uniform on [0, 3125); fnlwgt is log-binned "
                 "in ours), while PE works on raw values. Both columns are shown; the ref one is the fair "
                 "yardstick for code-based peers.")
    pub = agg.get(("public_pretrain", math.inf))
    dps = [(e, agg[("dpsgd", e)]["stats"]) for e in eps_all if ("dpsgd", e) in agg]
    if pub and dps:
        ps = pub["stats"]
        L.append("")
        L.append(f"The DP-fine-tuned generator starts from {N_PUBLIC} PUBLIC rows that PE does not get: pre-training "
                 f"alone gives 2-way TVD {ps['ref_tvd2_mean'][0]:.3f} and TSTR AUC {ps['ref_tstr_auc'][0]:.3f} "
                 f"(ours, on held-out test rows: {ps['ours_tstr_auc'][0]:.3f}); DP fine-tuning on the private rows "
                 "then gives " + "; ".join(
                     f"ε = {e:g}: 2-way {st['ref_tvd2_mean'][0]:.3f}, AUC {st['ref_tstr_auc'][0]:.3f}, "
                     f"{st['cpu_s'][0]:.0f} CPU s" for e, st in dps)
                 + ". So its TSTR utility comes mostly from the public split, and its marginals from the DP "
                 "fine-tuning. Where it beats PE, the table says so; PE with the same public rows as its "
                 "starting population was not run here.")
    # -- full tables ------------------------------------------------------------------------------------
    for e in eps_all:
        L.append("")
        L.append(f"### ε = {e:g}")
        L.append("")
        L.append("| method | runs | ε spent | 1-way TVD ref / ours | 2-way TVD ref / ours (max ref) | "
                 "3-way TVD ref / ours (max ref) | TSTR acc ref / ours | TSTR F1 ref / ours | TSTR AUC ref / ours | "
                 "wall s | CPU s | peak MB |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for m in order:
            a = agg.get((m, e)) or agg.get((m, math.inf))
            if a is None:
                continue
            s = a["stats"]
            spent = s["eps_spent"][0]
            L.append(f"| {LABELS[m]} | {a['n']} | {'∞' if math.isinf(spent) else f'{spent:.3g}'} | "
                     f"{fmt(s['ref_tvd1_mean'])} / {fmt(s['ours_tvd1_mean'])} | "
                     f"{fmt(s['ref_tvd2_mean'])} / {fmt(s['ours_tvd2_mean'])} ({fmt(s['ref_tvd2_max'])}) | "
                     f"{fmt(s['ref_tvd3_mean'])} / {fmt(s['ours_tvd3_mean'])} ({fmt(s['ref_tvd3_max'])}) | "
                     f"{fmt(s['ref_tstr_acc'])} / {fmt(s['ours_tstr_accuracy'])} | "
                     f"{fmt(s['ref_tstr_f1'])} / {fmt(s['ours_tstr_f1'])} | "
                     f"{fmt(s['ref_tstr_auc'])} / {fmt(s['ours_tstr_auc'])} | {fmt_t(s['wall_s'])} | "
                     f"{fmt_t(s['cpu_s'])} | {'≤ ' if s['peak_is_bound'][0] > 0 else ''}{fmt_t(s['peak_mb'])} |")
    # -- bookkeeping -------------------------------------------------------------------------------------
    L.append("")
    L.append("### Privacy bookkeeping (one standard for all)")
    L.append("")
    L.append("| method | δ | accounting | what it read from the private data |")
    L.append("|---|---|---|---|")
    seen = set()
    for m in order:
        for (mm, _e), a in sorted(agg.items(), key=lambda kv: kv[0][1]):
            if mm != m or m in seen:
                continue
            seen.add(m)
            meta = a["meta"]
            acct = meta.get("accounting", "")
            if m == "pe":
                acct = "Gaussian DP (μ-GDP) composition, exact (ε, δ) conversion"
            elif m == "mst":
                acct = "ρ-zCDP (Gaussian measurements + exponential mechanism) → (ε, δ) by Canonne–Kamath–Steinke 2020"
            elif m == "dpsgd":
                acct = f"DP-SGD, Opacus {meta.get('accounting', '').split(' ')[0]} accountant, Poisson sampling"
            L.append(f"| {LABELS[m]} | {meta.get('delta') if meta.get('delta') is not None else '–'} | {acct} | "
                     f"{meta.get('reads', '')} |")
    L.append("| Tab-PE (DPSDA, quoted) | 1e-5 | GDP | categories, min/max bounds and label shares read from the "
             "private data (uncharged) |")
    # -- notes -------------------------------------------------------------------------------------------
    L.append("")
    L.append("Notes:")
    L.append(f"- Public split for the DP-SGD generator: the last {N_PUBLIC} rows of adult.test (a public sample of the "
             "same population, disjoint from the private adult.data). Our evaluation drops those rows from its test "
             "set for every method; the reference scorer cannot, so for the DP-SGD and public-only rows its TSTR "
             f"includes {N_PUBLIC} of the {16281} test rows the generator was pre-trained on. The public-only row "
             "shows what the public split alone gives; the DP-SGD row is fine-tuned from it.")
    L.append("- Code-based peers (MST, DP-SGD, CTGANs) decode numbers uniformly within their config.yml bin; "
             "ours' TVD uses finer log bins for capital-gain/loss, where that decoding costs them (e.g. bin "
             "[0, 3125) of capital-gain never lands on 0). The ref columns use exactly their bins.")
    for m in ("mst", "dpsgd", "dpctgan", "patectgan"):
        runs = sorted(((e, a["meta"]) for (mm, e), a in agg.items() if mm == m), key=lambda t: t[0])
        if not runs:
            continue
        per_eps = "; ".join(f"ε = {e:g}: {meta.get('accounting', '')}"
                            + (f", σ {meta['sigma']:.2f}, ε checks {meta.get('eps_checks')}" if "sigma" in meta else "")
                            for e, meta in runs)
        first = runs[0][1]
        extra = {k: first[k] for k in ("mirror_descent_iters", "config", "epochs_cap", "epochs_run") if k in first}
        L.append(f"- {LABELS[m]} (first seed per ε): {per_eps}. Settings: `{json.dumps(extra, default=str)}`"
                 + (f"; tree at ε = {runs[0][0]:g}: {', '.join('–'.join(e) for e in first['tree'])}"
                    if "tree" in first else ""))
    L.append("- Peak memory is the run's own peak RSS (VmHWM). '≤' marks groups with runs recorded before that was "
             "measured: their ru_maxrss is an upper bound that includes the benchmark process it forked from "
             "(≈ 300–350 MB).")
    loads = [a["load"] for a in agg.values()]
    if loads:
        L.append(f"- Load average (1 min) during the runs: {min(loads):.1f}–{max(loads):.1f} on 2 cores.")
    L.append("- Quoted, not re-run: Tab-PE (Microsoft DPSDA, not on PyPI): 2-way TVD 0.24–0.26 (1,000 rows), "
             "TSTR AUC 0.86–0.88, ≈ 50 s; AIM (mbi 2.0, max_model_size 10): 7 rounds in 23 min then crashed (JIT "
             "executables exhausted memory maps), ≈ 9 h projected — figures from issue 8 / peers_adult.jsonl.")
    L += [f"- {n}" for n in notes]
    if PLOT.exists():
        L.append("")
        L.append(f"![quality and time vs ε]({PLOT.name})")
    L.append("")
    L.append(f"Command: `{command}` (started {started}). Machine: {machine()}. {versions()}.")
    return L


def plot(store: Store) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    agg = aggregate(store)
    eps_all = sorted({e for (_, e) in agg if math.isfinite(e)})
    if not eps_all:
        return
    colors = dict(zip(METHODS, plt.get_cmap("tab10").colors))
    quoted = [r for r in quoted_peers() if r["method"].startswith("Tab-PE (DPSDA") and r.get("delta") == 1e-5]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    panels = [("ref_tvd2_mean", "tvd2_mean", "2-way TVD (ref scorer), lower is better"),
              ("ref_tstr_auc", "tstr_auc", "TSTR AUC (ref scorer), higher is better"),
              ("cpu_s", "wall_s", "CPU seconds per run (log; quoted: one-core wall)")]
    for ax, (k, qk, title) in zip(axes, panels):
        for m in METHODS:
            pts = [(e, agg[(m, e)]["stats"][k]) for e in eps_all if (m, e) in agg]
            if pts:
                xs, ms = [p[0] for p in pts], [p[1][0] for p in pts]
                sd = [p[1][1] if math.isfinite(p[1][1]) else 0.0 for p in pts]
                ax.errorbar(xs, ms, yerr=sd, marker="o", capsize=3, color=colors[m], label=LABELS[m].replace("*", ""),
                            lw=2.5 if m == "pe" else 1.2)
            elif (m, math.inf) in agg:
                ax.axhline(agg[(m, math.inf)]["stats"][k][0], ls="--", lw=1, color=colors[m], label=LABELS[m])
        if quoted:
            ax.plot([1.0], [float(np.mean([r[qk] for r in quoted]))], marker="*", ms=14, ls="none", color="black",
                    label="Tab-PE (DPSDA), quoted")
        ax.set_xscale("log")
        ax.set_xlabel("ε (δ = 1e-5)")
        ax.set_title(title, fontsize=10)
        if k == "cpu_s":
            ax.set_yscale("log")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("UCI Adult: PE vs peers (same public bins, same scorer; mean ± sd over seeds)")
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    tmp = PLOT.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, PLOT)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eps", default="0.3,1,3,10", help="comma-separated ε values (δ = 1e-5)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per (method, ε)")
    ap.add_argument("--methods", default=DEFAULT_METHODS,
                    help=f"comma-separated, from {', '.join(METHODS)}")
    ap.add_argument("--seed-from", type=int, default=0, help="first seed (to split a grid over parallel streams)")
    ap.add_argument("--quick", action="store_true", help="ε = 1 and one seed only")
    ap.add_argument("--work", default="/tmp/pe-bench-tabular", help="cache of runs, CSVs and logs")
    ap.add_argument("--mst-iters", type=int, default=1000, help="mbi MirrorDescent iterations of MST's estimation")
    ap.add_argument("--dpsgd-epochs", type=int, default=5)
    ap.add_argument("--ctgan-epochs", type=int, default=8)
    ap.add_argument("--pate-epochs", type=int, default=100)
    ap.add_argument("--also", action="append", default=[], metavar="WORK",
                    help="merge the cached runs of another --work directory into the report (parallel streams)")
    ap.add_argument("--note", action="append", default=[], help="a line for the report's notes (e.g. how the "
                    "merged streams were run)")
    ap.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md / the plot")
    ap.add_argument("--report-only", action="store_true", help="rewrite RESULTS.md and the plot from the cache")
    a = ap.parse_args(argv)
    try:
        eps_list = [1.0] if a.quick else [float(x) for x in a.eps.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"--eps: expected comma-separated numbers, got {a.eps!r}") from None
    seeds = 1 if a.quick else a.seeds
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise SystemExit(f"--methods: unknown {bad}; choose from {', '.join(METHODS)}")
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    store = Store(work / "results.json")
    command = "nice -n 10 python -m benchmarks.tabular " + " ".join(argv if argv is not None else sys.argv[1:])
    started = time.strftime("%Y-%m-%d %H:%M")
    if not a.report_only:
        evaluator = None
        for method, eps, seed in plan(methods, eps_list, seeds, a.seed_from):
            key = key_of(method, eps, seed)
            if key in store.data and ok(store.data[key]):
                continue
            log(f"run {key}")
            rec = run_child(method, eps, seed, work, a)
            if rec["rc"] != 0:
                log(f"{key} FAILED (rc {rec['rc']}): {rec.get('error', '')[-300:]}")
                store.put(key, rec)
                continue
            evaluator = evaluator or Evaluator()
            evaluator.score(rec)
            store.put(key, rec)
            log(f"{key}: wall {rec['wall_s']:.0f}s cpu {rec['cpu_s']:.0f}s peak {rec['meta'].get('peak_mb', 0):.0f}MB "
                f"2-way TVD ref {rec['ref'].get('tvd2_mean', float('nan')):.4f} "
                f"AUC ref {rec['ref'].get('tstr_auc', float('nan')):.3f}")
            if not a.no_write:
                plot(store)
                write(store, command, started)
    for other in a.also:  # report only: runs cached by another stream (never written back)
        extra = Path(other) / "results.json"
        if not extra.exists():
            raise SystemExit(f"--also {other}: no results.json there")
        for key, rec in json.loads(extra.read_text()).items():  # a finished run beats a failed one
            if key not in store.data or not ok(store.data[key]):
                store.data[key] = rec
    if a.no_write:
        if a.report_only:  # a dry run of the section
            print("\n".join([f"## {HEADING}", *report(store, command, started, tuple(a.note))]))
    else:
        plot(store)
        write(store, command, started, tuple(a.note))
    return 0


def write(store: Store, command: str, started: str, notes: tuple[str, ...] = ()) -> None:
    from benchmarks.audit import write_section

    write_section(HEADING, report(store, command, started, notes))


if __name__ == "__main__":
    sys.exit(main())
