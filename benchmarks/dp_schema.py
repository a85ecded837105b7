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
#: the same measurement on the code before this benchmark existed (commit 73af10f: bounds at the quantile set by
#: 4σ of mass, no warnings), 2 runs per column, kept for comparison
BEFORE = ("Before (`infer_dp` of commit 73af10f on the same text-read tables, 2 runs): no warning on any "
          "column, and 22 of the 55 columns held < 99 % of their rows in at least one run (worst 66.1 %: churn "
          "`account_length` bounded [30, 120] for 1–243; lending `total_il_high_credit_limit` 84 %; "
          "`open_il_6m` [0, 6] for 0–32).")


NOTES = [
    "What the warning means: at `--dp-epsilon 0.1` each number column of these tables gets noise σ ≈ 300–500 "
    "per histogram cell (the budget is split over all columns), so a tail holding ≤ 1 % of the rows can hide "
    "in one cell. Bounds come from the cells that stand out (4σ, or 3σ right beside one that does; on the finer "
    "levels a node's excess over its standing cells goes to the others in proportion to their counts once it "
    "clears 2σ·√(k+1)) and a margin (30 % of the span; for a positive column whose median is within two "
    "decades, up to 3× the 99.5 % quantile by ¾ of its log-distance from the median). A column is warned about "
    "when its noisy mass is under 60σ (the two small tables, lending 9.9k rows and churn 5k, and the two at "
    "22–26k rows with 13–15 columns) or when both bounds fall in one coarse node the noise could not split "
    "(nassCDS `yearVeh` 'somewhere in [1778, 4467]'); the warning names the `--dp-epsilon` that would bound "
    "99 % of the column (a 1 % tail clearing the bar on its own).",
    "Misses: CPS `experience` (1.5 % of the rows at −4…−1, no warning): a negative tail that thin is below the "
    "noise, and a column whose lower quantile is 0 keeps the lower bound 0. The last column shows the other "
    "failure, bounds far wider than the data in a rare run (Minneapolis `lat` [0, 200] or `date` from 1970): a "
    "noise excess that clears 2σ·√(k+1) by chance (about 1–2 % of column-runs); raising that bar trades it for "
    "missed heavy tails (CPS `wage` at 3σ: 13 % of runs below 99 %).",
    "The tables are read as text, so pandas 3.1.2 gives the same figures (2 runs: the same 32 columns always "
    "warned, the one miss `experience`).",
]


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
                                         "cov": [], "quiet_cov": [], "warned": 0, "bounds": []})
            r["cov"].append(coverage(df[c.name], c.type, c.lower, c.upper))
            warned = any(f"'{c.name}'" in t for t in text)
            r["warned"] += warned
            if not warned:
                r["quiet_cov"].append(r["cov"][-1])
            r["bounds"].append((c.lower, c.upper))
    out = []
    for r in rows.values():
        s = df[r["column"]]
        x = (parse_dates(s) if r["type"] == "datetime" else pd.to_numeric(s, errors="coerce")).dropna()
        span = float(x.max() - x.min()) if len(x) else float("nan")
        r.update(min_cov=min(r["cov"]), mean_cov=float(np.mean(r["cov"])), repeats=repeats,
                 widest=max(hi - lo for lo, hi in r["bounds"]) / span if span > 0 else float("nan"),
                 quiet_min=min(r["quiet_cov"], default=float("nan")),
                 real=(float(x.min()), float(x.max())) if len(x) else None)
        out.append(r)
    return out


def fmt(v: float, type_: str) -> str:
    return str(pd.Timestamp(v, unit="s").date()) if type_ == "datetime" else f"{v:.4g}"


def table_lines(res: list[dict[str, Any]]) -> list[str]:
    lines = ["| table | column | type | real range | released bounds (first run) | rows inside: worst / mean | "
             "warned (runs) | worst in a run without warning | widest bounds / real range |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in res:
        lo, hi = r["bounds"][0]
        real = f"[{fmt(r['real'][0], r['type'])}, {fmt(r['real'][1], r['type'])}]" if r["real"] else "(empty)"
        q = r["quiet_min"]
        quiet = "—" if q != q else f"{q:.2%}" + ("" if q >= GOAL else " **✗**")
        lines.append(f"| {r['table']} | {r['column']} | {r['type']} | {real} | [{fmt(lo, r['type'])}, "
                     f"{fmt(hi, r['type'])}] | {r['min_cov']:.2%} / {r['mean_cov']:.2%} | "
                     f"{r['warned']}/{r['repeats']} | {quiet} | {r['widest']:.3g} |")
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
    runs = [(c, r["column"]) for r in res for c in r["quiet_cov"]]
    miss = sorted({name for c, name in runs if c < GOAL})
    summary = (f"{len(res)} number columns on {len(manifest)} tables × {a.repeats} runs at --dp-epsilon {a.eps:g}: "
               f"a warning in {sum(r['warned'] for r in res)} of {len(res) * a.repeats} column-runs (columns warned "
               f"in every run: {sum(r['warned'] == a.repeats for r in res)}, never: "
               f"{sum(r['warned'] == 0 for r in res)}); of the {len(runs)} column-runs without a warning, "
               f"{sum(c >= GOAL for c, _ in runs)} hold ≥ {GOAL:.0%} of the rows (misses: {', '.join(miss) or 'none'}; "
               f"worst {min((c for c, _ in runs), default=1):.2%}); {wall:.0f} s")
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
            f"(worst and mean over the runs), in how many runs `schema infer` warned that the column's bounds are "
            f"noise-limited at this budget, the worst share in a run without a warning (goal ≥ {GOAL:.0%}; "
            "✗ marks a miss), and how wide the widest released bounds are against the real range (absurd bounds "
            "show here).",
            "", summary, "", BEFORE, "", *NOTES, "", *lines])


if __name__ == "__main__":
    main()
