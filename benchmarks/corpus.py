"""Every table of ../shared/data/tables plus UCI Adult: PE against MST, independent columns and bootstrap.

    nice -n 10 python -m benchmarks.corpus --eps 1,0.3 --seeds 2                 # everything, cached
    nice -n 10 python -m benchmarks.corpus --methods mst --eps 1 --seeds 1 --no-write
    nice -n 10 python -m benchmarks.corpus --tables ecdat_hi,aer_cps1988 --methods pe,indep --no-write
    python -m benchmarks.corpus --report-only                                      # RESULTS.md from the cache

Protocol (the reference scorer ../shared/bench/score_table.py end to end): ``split`` each table into
train/test (seed 0, 20 % test; Adult: adult.data / adult.test), synthesize from train only (one child
process per run: ``benchmarks/corpus_one.py``), ``score`` train vs synthetic with the table's target
(TVD on the scorer's bins read off the real train rows; TSTR AUC on test). CPU seconds (user + sys of the
child, ``os.wait4``) and the child's own peak RSS (VmHWM) per run. Everything is cached under WORK
(default /tmp/tables-bench); the sections '## Tables: corpus benchmark' and '## Tables: what the votes add'
of benchmarks/RESULTS.md are rewritten from every cached record.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
TABLES = SHARED / "data" / "tables"
SCORER = SHARED / "bench" / "score_table.py"
HEADING = "Tables: corpus benchmark (issue 16)"
ABLATION_HEADING = "Tables: what the votes add (issue 16)"
DP_METHODS = ("pe", "pe_dp", "pe_gen", "mst")
REF_METHODS = ("indep", "bootstrap")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
              "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
              "PYTHONWARNINGS": "ignore"}
LABELS = {"pe": "**PE** (public schema)", "pe_dp": "**PE** (DP schema, same total ε)",
          "pe_gen": "generator only (no votes)", "mst": "MST (scorer's bins, free)",
          "indep": "independent columns (exact, non-DP)", "bootstrap": "bootstrap (non-DP)"}


def log(msg: str) -> None:
    print(f"[corpus {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tables() -> list[dict[str, Any]]:
    """The corpus manifest plus Adult (name, file, target)."""
    out = [{"name": e["file"].split(".")[0], "file": str(TABLES / e["file"]), "target": e["target"]}
           for e in json.loads((TABLES / "manifest.json").read_text())]
    return out + [{"name": "uci_adult", "file": None, "target": "income"}]


def split(t: dict[str, Any], work: Path) -> tuple[Path, Path]:
    d = work / "splits" / t["name"]
    train, test = d / "train.csv", d / "test.csv"
    if train.exists() and test.exists():
        return train, test
    d.mkdir(parents=True, exist_ok=True)
    if t["file"] is None:  # Adult: the standard UCI split
        from pe_tabular.tables.datasets import load_adult

        load_adult("train").to_csv(train, index=False)
        load_adult("test").to_csv(test, index=False)
    else:
        subprocess.run([sys.executable, str(SCORER), "split", t["file"], str(d), "--seed", "0"], check=True,
                       capture_output=True)
    return train, test


def run_one(t: dict[str, Any], method: str, eps: float, seed: int, work: Path) -> dict[str, Any]:
    train, test = split(t, work)
    tag = f"{t['name']}/{method}_eps{eps:g}_s{seed}"
    rd = work / "runs" / tag
    rd.mkdir(parents=True, exist_ok=True)
    out, meta = rd / "synth.csv", rd / "meta.json"
    cmd = [sys.executable, "-m", "benchmarks.corpus_one", method, "--train", str(train), "--target", t["target"],
           "--eps", str(eps if math.isfinite(eps) else 1.0), "--seed", str(seed), "--out", str(out),
           "--meta", str(meta), "--work", str(rd)]
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    with open(rd / "log.txt", "w") as logf:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(proc.pid, 0)
    rec: dict[str, Any] = {"table": t["name"], "method": method, "eps": eps, "seed": seed, "wall_s": time.time() - t0,
                           "cpu_s": ru.ru_utime + ru.ru_stime, "rc": os.waitstatus_to_exitcode(status)}
    if rec["rc"] != 0:
        rec["error"] = (rd / "log.txt").read_text()[-1500:]
        return rec
    rec["meta"] = json.loads(meta.read_text())
    r = subprocess.run([sys.executable, str(SCORER), "score", str(train), str(out), "--target", t["target"],
                        "--test", str(test), "--method", method, "--eps", str(eps)],
                       capture_output=True, text=True, env={**os.environ, **ONE_THREAD})
    if r.returncode != 0:
        rec["rc"], rec["error"] = -1, r.stderr[-1500:]
        return rec
    rec["score"] = json.loads(r.stdout.strip().splitlines()[-1])
    return rec


class Store:
    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def put(self, key: str, value: dict[str, Any]) -> None:
        from pe_tabular.io_utils import atomic_write_json

        fresh = json.loads(self.path.read_text()) if self.path.exists() else {}  # several drivers may share it
        fresh[key] = value
        self.data = fresh
        atomic_write_json(self.path, fresh)


def key_of(table: str, method: str, eps: float, seed: int) -> str:
    return f"{table}|{method}|{eps:g}|{seed}"


# -- report ------------------------------------------------------------------------------------------------
def _stats(recs: list[dict[str, Any]], f: Any) -> tuple[float, float, int]:
    import numpy as np

    v = np.array([f(r) for r in recs], float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan, int(v.size)


def _fmt(s: tuple[float, float, int], d: int = 3) -> str:
    m, sd, n = s
    if n == 0:
        return "—"
    return f"{m:.{d}f}" + (f" ± {sd:.{d}f}" if n > 1 else "")


def groups(store: Store) -> dict[tuple[str, str, float], list[dict[str, Any]]]:
    g: dict[tuple[str, str, float], list[dict[str, Any]]] = {}
    for rec in store.data.values():
        if rec.get("rc") == 0 and "score" in rec:
            g.setdefault((rec["table"], rec["method"], float(rec["eps"])), []).append(rec)
    return g


def metric(name: str) -> Any:
    return {"tvd1": lambda r: r["score"]["tvd1"], "tvd2": lambda r: r["score"]["tvd2"],
            "tvd3": lambda r: r["score"]["tvd3"], "auc": lambda r: r["score"].get("tstr_auc", math.nan),
            "cpu": lambda r: r["cpu_s"], "mem": lambda r: r["meta"].get("peak_mb", math.nan)}[name]


def report(store: Store, command: str, notes: list[str] | None = None) -> tuple[list[str], list[str]]:
    g = groups(store)
    eps_list = sorted({e for (_, m, e) in g if m in DP_METHODS}, reverse=True)
    names = [t["name"] for t in tables()]
    lines = ["", "Every table of `../shared/data/tables` plus UCI Adult, scored end to end by "
             "`../shared/bench/score_table.py` (split → synthesize from train → score; TVD on the scorer's bins "
             "read off the real train rows, lower is better; TSTR AUC of HistGradientBoosting on the test split, "
             "higher is better), δ = 1e-5, mean ± sd over seeds. CPU = user + sys seconds of the run's own process "
             "(one thread per numeric library), peak = its VmHWM. PE runs through the command line with its "
             "defaults; *public schema* = `schema infer` on the train file as a codebook would give it, *DP schema* "
             "= `schema infer --dp-epsilon 0.3·ε` (column types from the codebook) with the schema's cost inside "
             "the same total ε. MST gets the scorer's own bins of the real train rows for free (a non-private "
             "domain, as the reference algorithm is run).", ""]
    # summary of the goals
    lines += ["### Goals per table", "",
              "2-way TVD of PE (public / DP schema) against MST and independent columns, TSTR AUC against MST, and "
              "PE's CPU as a fraction of MST's. ✔ = goal met on the mean over seeds.", "",
              "| table | ε | PE 2-way | PE-DP 2-way | MST 2-way | indep 2-way | PE AUC | MST AUC | CPU PE/MST "
              "| goals |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    misses = []
    for name in names:
        for eps in eps_list:
            s = {m: {k: _stats(g.get((name, m, eps), g.get((name, m, math.inf), [])), metric(k))
                     for k in ("tvd2", "auc", "cpu")} for m in ("pe", "pe_dp", "mst", "indep")}
            if s["pe"]["tvd2"][2] == 0:
                continue
            pe2, dp2, ms2, in2 = (s[m]["tvd2"][0] for m in ("pe", "pe_dp", "mst", "indep"))
            ok = []
            ok.append("✔" if pe2 < ms2 else "✘ vs MST")
            ok.append("✔" if pe2 < in2 else "✘ vs indep")
            ok.append("✔" if s["pe"]["auc"][0] >= s["mst"]["auc"][0] else "✘ AUC")
            if math.isfinite(dp2):
                ok.append("✔" if dp2 < in2 else "✘ DP vs indep")
            ratio = s["pe"]["cpu"][0] / s["mst"]["cpu"][0] if s["mst"]["cpu"][2] else math.nan
            ok.append("✔" if ratio <= 0.25 else "✘ CPU")
            bad = [o for o in ok if o != "✔"]
            if bad:
                misses.append(f"{name} ε={eps:g}: {', '.join(b[2:] for b in bad)}")
            lines.append(f"| {name} | {eps:g} | {pe2:.4f} | {dp2:.4f} | {ms2:.4f} | {in2:.4f} | "
                         f"{s['pe']['auc'][0]:.3f} | {s['mst']['auc'][0]:.3f} | {ratio:.2f} | "
                         f"{'all ✔' if not bad else ' '.join(bad)} |")
    lines += ["", f"Goals missed: {len(misses)} — " + ("; ".join(misses) if misses else "none") + ".", ""]
    if notes:
        lines += ["### Reading", "", *notes, ""]
    # per table detail
    lines += ["### Per table", ""]
    for name in names:
        rows = []
        for eps in eps_list + [math.inf]:
            for m in (*DP_METHODS, *REF_METHODS):
                if (m in REF_METHODS) != (eps == math.inf):
                    continue
                recs = g.get((name, m, eps), [])
                if not recs:
                    continue
                st = {k: _stats(recs, metric(k)) for k in ("tvd1", "tvd2", "tvd3", "auc", "cpu", "mem")}
                rows.append(f"| {LABELS[m]} | {'—' if eps == math.inf else f'{eps:g}'} | {_fmt(st['tvd1'])} | "
                            f"{_fmt(st['tvd2'])} | {_fmt(st['tvd3'])} | {_fmt(st['auc'])} | {_fmt(st['cpu'], 1)} | "
                            f"{_fmt(st['mem'], 0)} | {len(recs)} |")
        if rows:
            target = next(t["target"] for t in tables() if t["name"] == name)
            lines += [f"**{name}** (target `{target}`)", "",
                      "| method | ε | 1-way TVD | 2-way TVD | 3-way TVD | TSTR AUC | CPU s | peak MB | seeds |",
                      "|---|---|---|---|---|---|---|---|---|", *rows, ""]
    failed = [r for r in store.data.values() if r.get("rc") != 0]
    if failed:
        lines += [f"Failed runs: {len(failed)} — " + "; ".join(f"{r['table']} {r['method']} ε={r['eps']:g} s{r['seed']}"
                                                              for r in failed[:20]), ""]
    lines += [f"Command: `{command}`. Machine: {machine()}. Versions: {versions()}.", ""]
    # ablation
    abl = ["", "What the PE votes add over the generator they start from, at the same total ε: *generator only* "
           "gives the votes' share of the budget back to the DP measurements and samples the tree generator "
           "fitted on them (`PESynthesizer(votes=False)`); *PE* is the default run. Public schema, same seeds and "
           "scorer as above.", "",
           "| table | ε | generator 2-way | PE 2-way | generator 3-way | PE 3-way | generator AUC "
           "| PE AUC |",
           "|---|---|---|---|---|---|---|---|"]
    for name in names:
        for eps in eps_list:
            a, b = g.get((name, "pe_gen", eps), []), g.get((name, "pe", eps), [])
            if not a or not b:
                continue
            sa = {k: _stats(a, metric(k))[0] for k in ("tvd2", "tvd3", "auc")}
            sb = {k: _stats(b, metric(k))[0] for k in ("tvd2", "tvd3", "auc")}
            abl.append(f"| {name} | {eps:g} | {sa['tvd2']:.4f} | {sb['tvd2']:.4f} | {sa['tvd3']:.4f} | "
                       f"{sb['tvd3']:.4f} | {sa['auc']:.3f} | {sb['auc']:.3f} |")
    abl += ["", f"Command: `{command}`.", ""]
    return lines, abl


def versions() -> str:
    import numpy
    import pandas

    out = [f"Python {platform.python_version()}", f"numpy {numpy.__version__}", f"pandas {pandas.__version__}"]
    try:
        from importlib.metadata import version

        import mbi  # noqa: F401

        out.append(f"mbi {version('mbi')}")
    except Exception:  # noqa: BLE001 - version string only
        pass
    return ", ".join(out)


def machine() -> str:
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout
    return f"{cpu.split(':', 1)[-1].strip() or platform.processor()}, {os.cpu_count()} cores (shared)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eps", default="1,0.3")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--methods", default="indep,bootstrap,pe,pe_dp,pe_gen,mst")
    ap.add_argument("--tables", default=None, help="comma list of table names (default: all)")
    ap.add_argument("--mst-seeds", type=int, default=None, help="seeds for MST (default: --seeds)")
    ap.add_argument("--work", default="/tmp/tables-bench")
    ap.add_argument("--rerun", action="store_true", help="run again even if cached")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--notes", help="a Markdown file whose lines go under '### Reading' in the section")
    a = ap.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    store = Store(work / "results.json")
    command = "nice -n 10 python -m benchmarks.corpus " + " ".join(argv if argv is not None else sys.argv[1:])
    if not a.report_only:
        ts = tables()
        if a.tables:
            want = set(a.tables.split(","))
            ts = [t for t in ts if t["name"] in want]
        eps_list = [float(e) for e in a.eps.split(",")]
        methods = a.methods.split(",")
        jobs = []
        for s in range(a.first_seed, a.first_seed + a.seeds):
            for t in ts:
                for m in methods:
                    if m == "mst" and a.mst_seeds is not None and s >= a.first_seed + a.mst_seeds:
                        continue
                    for e in ([math.inf] if m in REF_METHODS else eps_list):
                        jobs.append((t, m, e, s))
        for i, (t, m, e, s) in enumerate(jobs):
            k = key_of(t["name"], m, e, s)
            if k in store.data and store.data[k].get("rc") == 0 and not a.rerun:
                continue
            log(f"[{i + 1}/{len(jobs)}] {k}")
            rec = run_one(t, m, e, s, work)
            store.put(k, rec)
            sc = rec.get("score", {})
            log(f"  rc={rec['rc']} cpu={rec['cpu_s']:.1f}s tvd2={sc.get('tvd2')} auc={sc.get('tstr_auc')}"
                + (f" ERROR {rec.get('error', '')[-300:]}" if rec["rc"] != 0 else ""))
    if not a.no_write:
        from benchmarks.audit import write_section

        notes = Path(a.notes).read_text().splitlines() if a.notes else None
        main_lines, abl = report(store, command, notes)
        write_section(HEADING, main_lines)
        write_section(ABLATION_HEADING, abl)
    return 0


if __name__ == "__main__":
    sys.exit(main())
