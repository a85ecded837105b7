"""Tree vs degree-2 network (``PESynthesizer(structure=...)``) on the corpus tables, same ε, same seeds.

    nice -n 10 python -m benchmarks.structure --tables modeldata_mlc_churn --eps 1,0.3 --seeds 0,1
    python -m benchmarks.structure --report            # the table of figures from every cached record
    nice -n 19 python -m benchmarks.structure --tvd-only --seeds 1,2,3,4 --tables aer_cps1988   # TVD, no TSTR
    nice -n 10 python -m benchmarks.structure --structures tree_task,bn2_task   # both with synth --target
    python -m benchmarks.structure --report --pair tree_task,bn2_task

Protocol as ``benchmarks/corpus.py`` (method ``pe``): the reference scorer's ``split`` (seed 0, 20 % test), a
public schema read off the train file (``schema infer --label TARGET``), the synthesizer's defaults
(``synth_defaults``), rows synthesized from train only, ``score`` train vs synthetic with the manifest's target
(2-way / 3-way TVD on the scorer's bins, TSTR AUC on test). The scorer runs under ``--scorer-python`` (it needs
pandas 2). One record per (table, ε, seed, structure) in WORK/records.jsonl; a cached record is not rerun.
Also recorded: fit CPU seconds and how many columns the network gave two parents.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
SHARED = Path(__import__("os").environ.get("PE_TABULAR_SHARED", ROOT.parent / "shared"))
TABLES = SHARED / "data" / "tables"
SCORER = SHARED / "bench" / "score_table.py"
DELTA = 1e-5
STRUCTURES = ("tree", "bn2")
TASK = "_task"  # "tree_task", "bn2_task": the same structure with target=<the manifest's target> (synth --target)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def prepare(table: str, target: str, work: Path, scorer_python: str) -> Path:
    """Train/test split and public schema of one table (cached)."""
    d = work / table
    if not (d / "schema.json").exists():
        d.mkdir(parents=True, exist_ok=True)
        subprocess.run([scorer_python, str(SCORER), "split", str(TABLES / f"{table}.csv.gz"), str(d)], check=True)
        from pe_tabular.cli import main

        if main(["schema", "infer", str(d / "train.csv"), "--label", target, "--out", str(d / "schema.json"),
                 "--quiet"]) != 0:
            raise SystemExit(f"schema infer failed on {table}")
    return d


def scorer() -> Any:
    """The reference scorer as a module (its TVD functions only: ``--tvd-only`` scores in this process)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("score_table", SCORER)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def run_one(table: str, target: str, eps: float, seed: int, structure: str, work: Path, scorer_python: str,
            tvd_only: bool = False) -> dict[str, Any]:
    from pe_tabular.tables.cli import synth_defaults
    from pe_tabular.tables.io import read_table, write_table
    from pe_tabular.tables.schema import Schema
    from pe_tabular.tables.synthesizer import PESynthesizer

    d = prepare(table, target, work, scorer_python)
    out = d / f"synth_{structure}_e{eps:g}_s{seed}.csv"
    train = read_table(d / "train.csv")
    t0, w0 = cpu_seconds(), time.time()
    base = structure.removesuffix(TASK)
    syn = PESynthesizer(Schema.load(d / "schema.json"), eps, DELTA, seed=seed, on_invalid="clip", structure=base,
                        target=target if structure.endswith(TASK) else None, **synth_defaults()).fit(train)
    write_table(syn.sample(), out)
    cpu, wall = cpu_seconds() - t0, time.time() - w0
    fams = getattr(syn.backend_, "fam", {})
    n_two = sum(len(v[0]) == 2 for v in fams.values())
    rep = syn.privacy_report()
    rec = {"table": table, "eps": eps, "seed": seed, "structure": structure, "cpu_s": round(cpu, 1),
           "wall_s": round(wall, 1), "two_parent_columns": n_two, "mu": rep["mu"], "mu_budget": rep["mu_budget"]}
    if tvd_only:  # many seeds cheaply: TVD without the TSTR model (the scorer's own functions, in process)
        import pandas as pd

        return {**rec, "score": scorer().score(pd.read_csv(d / "train.csv", low_memory=False),
                                               pd.read_csv(out, low_memory=False))}
    score = subprocess.run([scorer_python, str(SCORER), "score", str(d / "train.csv"), str(out), "--target", target,
                            "--test", str(d / "test.csv"), "--method", structure, "--eps", f"{eps:g}"],
                           check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return {**rec, "score": json.loads(score)}


def records(work: Path, name: str = "records.jsonl") -> list[dict[str, Any]]:
    f = work / name
    return [json.loads(x) for x in f.read_text().splitlines() if x.strip()] if f.exists() else []


def report(work: Path, name: str = "records.jsonl", pair: tuple[str, str] = STRUCTURES) -> str:
    """Mean over seeds per (table, ε): two structures (``pair``, e.g. tree and bn2) side by side."""
    import numpy as np

    a, b = pair
    recs = records(work, name)
    rows = [f"| table | ε | seeds | 2-way {a} | 2-way {b} | 3-way {a} | 3-way {b} | AUC {a} | AUC {b} "
            f"| 2-parent cols ({b}) | CPU s {a} / {b} |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["table"], r["eps"]) for r in recs}, key=lambda k: (k[0], -k[1]))
    for table, eps in keys:
        by = {s: [r for r in recs if r["table"] == table and r["eps"] == eps and r["structure"] == s]
              for s in pair}
        seeds = sorted({r["seed"] for r in by[a]} & {r["seed"] for r in by[b]})
        if not seeds:
            continue

        def m(s: str, f: str, seeds: list[int] = seeds, by: dict = by) -> float:
            return float(np.mean([_metric(r, f) for r in by[s] if r["seed"] in seeds]))

        two = np.mean([r["two_parent_columns"] for r in by[b] if r["seed"] in seeds])
        rows.append(f"| {table} | {eps:g} | {len(seeds)} | {m(a, 'tvd2'):.4f} | {m(b, 'tvd2'):.4f} | "
                    f"{m(a, 'tvd3'):.4f} | {m(b, 'tvd3'):.4f} | {m(a, 'auc'):.3f} | "
                    f"{m(b, 'auc'):.3f} | {two:.1f} | {m(a, 'cpu'):.0f} / {m(b, 'cpu'):.0f} |")
    return "\n".join(rows)


def _metric(r: dict[str, Any], f: str) -> float:
    if f == "cpu":
        return r["cpu_s"]
    s = r["score"]
    for k in (f, f"{f}_mean", f"tstr_{f}"):
        if k in s:
            v = s[k]
            return float(v["mean"] if isinstance(v, dict) else v)
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", default="", help="comma-separated corpus tables (default: all, smallest first)")
    ap.add_argument("--eps", default="1,0.3")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--structures", default=",".join(STRUCTURES),
                    help=f"comma-separated: tree, bn2, or either with {TASK} (--target = the manifest's target)")
    ap.add_argument("--pair", default=",".join(STRUCTURES), help="the two structures --report compares")
    ap.add_argument("--work", default="/tmp/structure-bench")
    ap.add_argument("--scorer-python", default="/work/main/.venv/bin/python")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--tvd-only", action="store_true", help="no TSTR (cheap, for many seeds): WORK/tvd.jsonl")
    a = ap.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    name = "tvd.jsonl" if a.tvd_only else "records.jsonl"
    if a.report:
        print(report(work, name, tuple(a.pair.split(",")[:2])))  # type: ignore[arg-type]
        return 0
    manifest = sorted(json.loads((TABLES / "manifest.json").read_text()), key=lambda t: t["rows"] * t["cols"])
    wanted = [t for t in a.tables.split(",") if t]
    done = {(r["table"], r["eps"], r["seed"], r["structure"]) for r in records(work, name)}
    for t in manifest:
        table = t["file"].removesuffix(".csv.gz")
        if wanted and table not in wanted:
            continue
        for eps in (float(e) for e in a.eps.split(",")):
            for seed in (int(s) for s in a.seeds.split(",")):
                for st in a.structures.split(","):
                    if (table, eps, seed, st) in done:
                        continue
                    rec = run_one(table, t["target"], eps, seed, st, work, a.scorer_python, a.tvd_only)
                    with open(work / name, "a") as f:
                        f.write(json.dumps(rec) + "\n")
                    s = rec["score"]
                    print(table, eps, seed, st, rec["two_parent_columns"], rec["cpu_s"],
                          {k: s.get(k) for k in ("tvd2", "tvd3", "tstr_auc")}, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
