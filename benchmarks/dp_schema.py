"""DP schema: how much of each real column lies inside the bounds ``schema infer --dp-epsilon`` releases.

    python -m benchmarks.dp_schema [--eps 0.1] [--repeats 3] [--write]

For every table of ``../shared/data/tables`` at the README's ``--dp-epsilon 0.1`` (δ = 1e-5), column types
as a codebook gives them (the public-mode type of each column, ``--types``), the DP schema is inferred
``--repeats`` times with real (CSPRNG) noise. Per number column: the share of the table's non-missing rows
inside the released [lower, upper] (worst and mean over repeats), whether ``schema infer`` warned about
the column, and the released bounds next to the real range. Goal: ≥ 99 % in every run wherever no warning
was printed. ``--write`` replaces the section "DP schema: bound coverage" of benchmarks/RESULTS.md.
Runs in a minute or two on 2 shared cores.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import machine, write_section
from pe_tabular.privacy.noise import NoiseSource
from pe_tabular.tables.schema import infer_type, parse_dates
from pe_tabular.tables.schema_dp import infer_dp
from pe_tabular.tables.text_table import read_text_table

ROOT = Path(__file__).resolve().parents[1]
TABLES = next((d / "shared" / "data" / "tables" for d in ROOT.parents if (d / "shared" / "data").is_dir()),
              ROOT.parent / "shared" / "data" / "tables")  # ../shared, or further up from a worktree
GOAL = 0.99


def codebook_types(df: pd.DataFrame) -> dict[str, str]:
    """The type a codebook would give each column: public-mode inference on the column's parsed values."""
    out = {}
    for c in df.columns:
        v = df[c].dropna()
        num = pd.to_numeric(v, errors="coerce")
        out[c] = infer_type(num if num.notna().all() else v)
    return out


def coverage(s: pd.Series, type_: str, lo: float, hi: float) -> float:
    x = (parse_dates(s) if type_ == "datetime" else pd.to_numeric(s, errors="coerce")).dropna().to_numpy(float)
    return float(np.mean((x >= lo) & (x <= hi))) if x.size else float("nan")


def run_table(path: Path, eps: float, repeats: int) -> list[dict[str, Any]]:
    df = read_text_table(path)
    types = codebook_types(df)
    rows: dict[str, dict[str, Any]] = {}
    for _ in range(repeats):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sch = infer_dp(df, types, eps, 1e-5, NoiseSource())
        text = [str(w.message) for w in caught]
        for c in sch.columns:
            if c.is_categorical:
                continue
            r = rows.setdefault(c.name, {"table": path.name.split(".")[0], "column": c.name, "type": c.type,
                                         "cov": [], "warned": 0, "bounds": []})
            r["cov"].append(coverage(df[c.name], c.type, c.lower, c.upper))
            r["warned"] += any(f"'{c.name}'" in t for t in text)
            r["bounds"].append((c.lower, c.upper))
    out = []
    for r in rows.values():
        s = df[r["column"]]
        x = (parse_dates(s) if r["type"] == "datetime" else pd.to_numeric(s, errors="coerce")).dropna()
        r.update(min_cov=min(r["cov"]), mean_cov=float(np.mean(r["cov"])), repeats=repeats,
                 real=(float(x.min()), float(x.max())) if len(x) else None)
        out.append(r)
    return out


def fmt(v: float, type_: str) -> str:
    return str(pd.Timestamp(v, unit="s").date()) if type_ == "datetime" else f"{v:.4g}"


def table_lines(res: list[dict[str, Any]]) -> list[str]:
    lines = ["| table | column | type | real range | released bounds (first run) | rows inside: worst / mean | "
             "warned (runs) |", "|---|---|---|---|---|---|---|"]
    for r in res:
        lo, hi = r["bounds"][0]
        real = f"[{fmt(r['real'][0], r['type'])}, {fmt(r['real'][1], r['type'])}]" if r["real"] else "(empty)"
        flag = "" if r["warned"] or r["min_cov"] >= GOAL else " **✗**"
        lines.append(f"| {r['table']} | {r['column']} | {r['type']} | {real} | [{fmt(lo, r['type'])}, "
                     f"{fmt(hi, r['type'])}] | {r['min_cov']:.2%} / {r['mean_cov']:.2%}{flag} | "
                     f"{r['warned']}/{r['repeats']} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="write the section of benchmarks/RESULTS.md")
    ap.add_argument("--json", help="also write every figure to this JSON file")
    a = ap.parse_args(argv)
    t0 = time.time()
    manifest = json.loads((TABLES / "manifest.json").read_text())
    res = [r for m in manifest for r in run_table(TABLES / m["file"], a.eps, a.repeats)]
    wall = time.time() - t0
    quiet = [r for r in res if not r["warned"]]
    ok = sum(r["min_cov"] >= GOAL for r in quiet)
    summary = (f"{len(res)} number columns on {len(manifest)} tables, {a.repeats} runs each at --dp-epsilon "
               f"{a.eps:g}: warned on {len(res) - len(quiet)}; of the {len(quiet)} without a warning, {ok} hold "
               f"≥ {GOAL:.0%} of the rows in every run (worst {min((r['min_cov'] for r in quiet), default=1):.2%}); "
               f"{wall:.0f} s")
    lines = table_lines(res)
    print("\n".join(lines) + "\n\n" + summary)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1, default=str))
    if a.write:
        write_section("DP schema: bound coverage", [
            f"`python -m benchmarks.dp_schema --eps {a.eps:g} --repeats {a.repeats} --write` — "
            f"{machine('pandas', 'scipy')}.",
            "",
            "`schema infer --dp-epsilon` on every corpus table, column types from the codebook (`--types`), "
            "real noise. Per number column: the share of the table's non-missing rows inside the released bounds "
            f"(goal ≥ {GOAL:.0%} wherever no warning is printed; ✗ marks a miss), and in how many runs "
            "`schema infer` warned that the column's bounds are noise-limited at this budget.",
            "", summary, "", *lines])


if __name__ == "__main__":
    main()
