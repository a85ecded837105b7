"""Cost of ``pe-tabular synth`` against the number of private rows (issue 19, tables wing).

Two steps, both run from the repository root::

    # 1. data: UCI Adult resampled with replacement, numbers jittered, one Parquet file per size
    python benchmarks/tables_scale.py generate --sizes 10000 100000 1000000 10000000 --dir /tmp/tables-scale
    # 2. cost: one `pe-tabular synth FILE.parquet --epsilon 1` child process per size under /usr/bin/time
    python benchmarks/tables_scale.py run --sizes 10000 100000 1000000 10000000 --dir /tmp/tables-scale \
        --json benchmarks/tables_scale.json --plot benchmarks/tables_scale.png

Each run is a fresh child process, so its peak RSS (``/usr/bin/time``'s maximum resident set size) is the
whole run's, from reading the Parquet file to writing the synthetic CSV. Wall and CPU (user + system)
seconds come from the same measurement. The jitter makes the data look like a larger population than
Adult's 32,561 rows (fnlwgt takes ~10⁶ distinct values at 10⁷ rows, which is what the thresholded
exact-value histogram has to hold) while keeping Adult's point masses (capital-gain = 0, hours = 40).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
ROW_GROUP = 262_144
GEN_CHUNK = 1_000_000


def jittered(base: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """n rows drawn with replacement from ``base`` with integer jitter on the number columns (kept in the
    public bounds of the built-in Adult schema)."""
    df = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
    df["age"] = np.clip(df["age"].to_numpy() + rng.integers(-2, 3, n), 17, 90)
    df["fnlwgt"] = np.clip(np.rint(df["fnlwgt"].to_numpy() * rng.lognormal(0.0, 0.05, n)), 10_000, 1_500_000)
    for c, hi in (("capital-gain", 99_999), ("capital-loss", 4_356)):
        x = df[c].to_numpy().astype(float)
        nz = x > 0
        x[nz] = np.clip(np.rint(x[nz] * (1 + rng.normal(0.0, 0.02, nz.sum()))), 1, hi)
        df[c] = x.astype(np.int64)
    h = df["hours-per-week"].to_numpy()
    move = rng.random(n) < 0.2
    df["hours-per-week"] = np.clip(np.where(move, h + rng.integers(-3, 4, n), h), 1, 99)
    return df


def generate(sizes: list[int], out_dir: Path, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pe_tabular.tables.datasets import load_adult

    base = load_adult("train")
    out_dir.mkdir(parents=True, exist_ok=True)
    for n in sizes:
        path = out_dir / f"adult_{n}.parquet"
        if path.exists():
            print(f"{path} exists", file=sys.stderr)
            continue
        rng = np.random.default_rng([seed, n])
        tmp = path.with_suffix(".tmp")
        writer = None
        for s in range(0, n, GEN_CHUNK):  # written in chunks: generating 10⁷ rows never holds them all
            t = pa.Table.from_pandas(jittered(base, min(GEN_CHUNK, n - s), rng), preserve_index=False)
            writer = writer or pq.ParquetWriter(tmp, t.schema)
            writer.write_table(t, row_group_size=ROW_GROUP)
        writer.close()
        os.replace(tmp, path)
        print(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB)", file=sys.stderr)


def versions() -> dict[str, str]:
    import numba
    import pyarrow

    return {"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
            "pyarrow": pyarrow.__version__, "numba": numba.__version__}


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    mem = next((int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("MemTotal")), 0)
    return f"{os.cpu_count()} cores ({cpu}), {mem / 2**20:.0f} GiB RAM, load {os.getloadavg()[0]:.1f} at start"


def run_one(data: Path, out: Path, extra: list[str]) -> dict[str, float]:
    """One synth child under /usr/bin/time: wall, CPU (user + sys) seconds and peak RSS in MiB."""
    cmd = [sys.executable, "-m", "pe_tabular.cli", "synth", str(data), "--schema",
           str(ROOT / "pe_tabular/tables/data/adult_schema.json"), "--epsilon", "1", "--out", str(out), "--quiet",
           "--seed", "0", *extra]
    timing = out.with_suffix(".time")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(timing), *cmd], check=True, env=env)
    wall, user, sys_, rss_kb = timing.read_text().split()[-4:]
    return {"wall_s": float(wall), "cpu_s": float(user) + float(sys_), "peak_rss_mib": int(rss_kb) / 1024,
            "seconds_measured_outside": time.time() - t0, "command": " ".join(cmd[1:])}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["rows"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].loglog(n, [r["wall_s"] for r in rows], "o-", label="wall")
    ax[0].loglog(n, [r["cpu_s"] for r in rows], "s--", label="CPU (user+sys)")
    ax[0].set_xlabel("private rows")
    ax[0].set_ylabel("seconds")
    ax[0].legend()
    ax[1].semilogx(n, [r["peak_rss_mib"] / 1024 for r in rows], "o-")
    ax[1].axhline(4, color="r", ls=":", label="goal: 4 GB")
    ax[1].set_ylim(0, 4.5)
    ax[1].set_xlabel("private rows")
    ax[1].set_ylabel("peak RSS (GiB)")
    ax[1].legend()
    fig.suptitle("pe-tabular synth, Adult resampled with jitter, Parquet, eps = 1")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(rows: list[dict]) -> str:
    """The cost-vs-size table (markdown)."""
    out = ["| rows | wall s | CPU s | peak RSS MiB | rows/s (wall) |", "|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['rows']:,} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_mib']:.0f} | "
                   f"{r['rows'] / max(r['wall_s'], 1e-9):,.0f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["generate", "run"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000, 10_000_000])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/tables-scale"))
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks/tables_scale.json")
    ap.add_argument("--plot", type=Path, default=ROOT / "benchmarks/tables_scale.png")
    ap.add_argument("--extra", default="", help="more synth flags, e.g. '--max-memory 4G'")
    a = ap.parse_args(argv)
    if a.step == "generate":
        generate(a.sizes, a.dir)
        return 0
    rows = json.loads(a.json.read_text())["rows"] if a.json.exists() else []
    for n in a.sizes:
        r = run_one(a.dir / f"adult_{n}.parquet", a.dir / f"synth_{n}.csv", a.extra.split())
        rows = [x for x in rows if x["rows"] != n] + [{"rows": n, **r}]
        rows.sort(key=lambda x: x["rows"])
        print(json.dumps({"rows": n, **r}), file=sys.stderr)
        a.json.write_text(json.dumps({"versions": versions(), "machine": machine(), "rows": rows}, indent=1))
    plot(rows, a.plot)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
