"""Missing values end to end (issue 22): blank 30 % of some columns of corpus tables, then the README's workflow.

    python -m benchmarks.missing_values                                   # three corpus tables
    python -m benchmarks.missing_values --tables openintro_nycflights --share 0.3

For each table: 30 % of the cells of up to four columns (a text category, a number-coded category, an integer
and a float column, where the table has them) made blank at random, the table written to CSV by pandas (blank
cells), then ``pe-tabular schema infer`` and ``pe-tabular synth --epsilon 1`` with default flags, run with the
python that runs this script (so under pandas 2 or 3 as installed). Prints per column the real and the synthetic
missing share (percent) and the synthetic row count; exits 1 if a step fails or a share is off by more than
2 points.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = next((p for p in (ROOT.parent / "shared", Path("/work/shared")) if p.exists()), ROOT.parent / "shared")
TABLES = SHARED / "data" / "tables"
DEFAULT = ("openintro_nycflights", "cardata_gssvocab", "modeldata_mlc_churn")
TOLERANCE = 2.0  # percentage points


def blank_columns(df: pd.DataFrame) -> list[str]:
    """Up to one column of each kind: text, number-coded category (<= 20 integer codes), integer, float."""
    picks: dict[str, str] = {}
    for c in df.columns:
        s = df[c].dropna()
        kind = ("text" if not pd.api.types.is_numeric_dtype(s) else
                "codes" if pd.api.types.is_integer_dtype(s) and s.nunique() <= 20 else
                "integer" if pd.api.types.is_integer_dtype(s) else "float")
        picks.setdefault(kind, c)
    return list(picks.values())


def run_table(name: str, share: float, work: Path, seed: int = 0) -> tuple[pd.DataFrame, int, bool]:
    real = pd.read_csv(TABLES / f"{name}.csv.gz")
    rng = np.random.default_rng(seed)
    for c in blank_columns(real):
        real.loc[rng.random(len(real)) < share, c] = None
    data, schema, out = work / f"{name}.csv", work / f"{name}.schema.json", work / f"{name}.synth.csv"
    real.to_csv(data, index=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "pe_tabular.cli"]
    for cmd in (["schema", "infer", str(data), "--out", str(schema), "-q"],
                ["synth", str(data), "--schema", str(schema), "--epsilon", "1", "--out", str(out), "-q"]):
        r = subprocess.run(cli + cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{name}: {cmd[0]} failed (exit {r.returncode}): {r.stderr.strip()[-300:]}")
            return pd.DataFrame(), 0, False
    real = pd.read_csv(data)
    syn = pd.read_csv(out)
    shares = pd.DataFrame({"real %": real.isna().mean() * 100, "synthetic %": syn.isna().mean() * 100})
    shares = shares[shares["real %"] > 0].round(2)
    shares["diff (points)"] = (shares["synthetic %"] - shares["real %"]).round(2)
    return shares, len(syn), bool((shares["diff (points)"].abs() <= TOLERANCE).all())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", default=",".join(DEFAULT))
    ap.add_argument("--share", type=float, default=0.3)
    args = ap.parse_args(argv)
    ok = True
    print(f"pandas {pd.__version__}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tables.split(","):
            shares, rows, good = run_table(name, args.share, Path(tmp))
            ok &= good
            if rows:
                print(f"\n{name}: {rows} synthetic rows (a noisy count; no row dropped: --on-invalid error)")
                print(shares.to_string())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
