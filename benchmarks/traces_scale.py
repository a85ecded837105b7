"""Cost of ``traces synth`` against input size: wall, CPU and peak RSS from 10⁴ to 2·10⁷ NetFlow records.

    nice -n 10 python benchmarks/traces_scale.py generate --sizes 1e4 1e5 1e6 5e6 2e7   # once, /tmp/traces-scale
    nice -n 10 python benchmarks/traces_scale.py run --sizes 1e4 1e5 1e6 5e6 [--units record flow host] [--eps 2]
    python benchmarks/traces_scale.py table [--plot PNG]   # markdown table + benchmarks/traces_scale.png

Data: the UGR'16 records of ``../shared/data/net/ugr16/ugr16_flows_40k.csv`` resampled with replacement and
jittered (start times ± 5 min inside the documented window; half of the client ports redrawn from the
ephemeral range, so resampled connections become new flows; byte counts of half the multi-packet records and
the durations × e^N(0, 0.1)), written as Parquet with 256k-record row groups, generated in 1M-record blocks
(memory flat). The host population stays that of the 40k records (peak memory must not grow with the
records at fixed population size).

Each run is ``pe-tabular traces synth FILE.parquet --epsilon 2 --unit UNIT --time-window <UGR'16 window>``
for every privacy unit (record, flow — the CLI's default —, host) at every size, with the library defaults
(population 16,000 once the noisy count passes 40,000, 5 iterations), in a child process under
``/usr/bin/time -v``: wall, user+system CPU and maximum resident set size of that process.
Results are cached as JSON per size and unit under ``--cache`` (a rerun only runs missing ones). The table
gives each unit's CPU per record relative to record level at the same size (goal: ≤ 1.3×, issue 28); the
sizes run one after the other, all units of a size together, so the units of one size meet similar load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("PE_TABULAR_SHARED", ROOT.parent / "shared"))  # env: a checkout elsewhere
UGR = SHARED / "data" / "net" / "ugr16" / "ugr16_flows_40k.csv"
WINDOW = ("2016-04-11T00:00Z", "2016-04-11T09:00Z")
T0, T1 = 1460332800.0, 1460332800.0 + 9 * 3600
DATA = Path("/tmp/traces-scale")
BLOCK = 1_000_000
ROW_GROUP = 1 << 18
UNITS = ("record", "flow", "host")


def _label(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k"


def data_path(n: int) -> Path:
    return DATA / f"ugr16_{_label(n)}.parquet"


def jittered(base: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """n records resampled from ``base`` with jitter (see the module docstring)."""
    df = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
    ts = df["ts"].to_numpy(np.float64) + rng.uniform(-300e6, 300e6, n)
    df["ts"] = np.round(np.clip(ts, T0 * 1e6, T1 * 1e6 - 1))
    sp, dp = df["srcport"].to_numpy(np.int64), df["dstport"].to_numpy(np.int64)
    redraw = rng.uniform(size=n) < 0.5
    new = rng.integers(1024, 65536, n)
    client_src = (sp >= 1024) & (sp >= dp)
    df["srcport"] = np.where(redraw & client_src, new, sp)
    df["dstport"] = np.where(redraw & ~client_src & (dp >= 1024), new, dp)
    pkt = df["pkt"].to_numpy(np.int64)
    byt = df["byt"].to_numpy(np.float64)
    jit = (pkt > 1) & (rng.uniform(size=n) < 0.5)
    byt = np.where(jit, np.round(byt * np.exp(rng.normal(0, 0.1, n))), byt)
    df["byt"] = np.clip(byt, pkt * 20, pkt * 1500).astype(np.int64)
    td = df["td"].to_numpy(np.float64)
    df["td"] = np.where(td > 0, np.round(td * np.exp(rng.normal(0, 0.1, n)), 3), td)
    return df


def generate(n: int, seed: int = 0) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = data_path(n)
    if out.exists():
        return out
    DATA.mkdir(parents=True, exist_ok=True)
    base = pd.read_csv(UGR)
    rng = np.random.default_rng(seed)
    tmp = out.with_suffix(".tmp")
    writer = None
    try:
        for start in range(0, n, BLOCK):
            table = pa.Table.from_pandas(jittered(base, min(BLOCK, n - start), rng), preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=ROW_GROUP)
    finally:
        if writer is not None:
            writer.close()
    tmp.rename(out)
    return out


def _time_v(stderr: str) -> dict[str, float]:
    def grab(key: str) -> str:
        m = re.search(rf"{re.escape(key)}: (.+)", stderr)
        return m.group(1).strip() if m else "nan"

    wall = grab("Elapsed (wall clock) time (h:mm:ss or m:ss)")
    parts = [float(p) for p in wall.split(":")] if wall != "nan" else [float("nan")]
    sec = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return {"wall_s": sec, "cpu_s": float(grab("User time (seconds)")) + float(grab("System time (seconds)")),
            "peak_rss_mb": float(grab("Maximum resident set size (kbytes)")) / 1024}


def run_one(n: int, eps: float, unit: str, cache: Path, extra: list[str]) -> dict[str, Any]:
    key = f"{_label(n)}_eps{eps:g}_{unit}" + ("_" + "_".join(x.strip("-") for x in extra) if extra else "")
    out_json = cache / f"{key}.json"
    if out_json.exists():
        return json.loads(out_json.read_text())
    src = generate(n)
    res = {"records": n, "epsilon": eps, "unit": unit, "extra": extra,
           **timed_synth(key, src, ["--epsilon", str(eps), "--unit", unit, *extra]),
           "input_mb": round(src.stat().st_size / 2**20, 1)}
    cache.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(res, indent=1))
    return res


def timed_synth(key: str, src: Path, flags: list[str]) -> dict[str, Any]:
    """``traces synth SRC FLAGS`` over the UGR'16 window in a child process under ``/usr/bin/time -v``: its wall,
    CPU and peak RSS, when it started, the command and its --json summary. The synthetic output is deleted
    (quality is measured elsewhere, on the real records)."""
    out = DATA / f"synth_{key}.csv"
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "pe_tabular.cli", "traces", "synth", str(src), *flags,
           "--time-window", *WINDOW, "--seed", "0", "--out", str(out), "--json"]
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    if p.returncode != 0:
        raise RuntimeError(f"{key}: exit {p.returncode}\n{p.stderr[-3000:]}")
    out.unlink(missing_ok=True)
    return {**_time_v(p.stderr), "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)),
            "command": " ".join(cmd[2:]), "summary": json.loads(p.stdout)}


def _results(cache: Path) -> list[dict[str, Any]]:
    """The cached runs of this benchmark (the cache may also hold pcap_scale.py's, which have no "records")."""
    return [r for r in (json.loads(f.read_text()) for f in cache.glob("*.json")) if "records" in r]


def table(cache: Path) -> str:
    rows = sorted(_results(cache), key=lambda r: (r["unit"], r["records"]))
    rows.sort(key=lambda r: (r["records"], UNITS.index(r["unit"]) if r["unit"] in UNITS else 9, r["extra"]))
    base = {r["records"]: r["cpu_s"] for r in rows if r["unit"] == "record" and not r["extra"]}
    lines = ["| records | unit | input (MB, Parquet) | wall (s) | CPU (s) | peak RSS (MB) | CPU per 10⁶ records (s) "
             "| CPU ÷ record level's |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = f"{r['cpu_s'] / base[r['records']]:.2f}" if r["records"] in base else "–"
        lines.append(f"| {r['records']:,} | {r['unit']}{' ' + ' '.join(r['extra']) if r['extra'] else ''} | "
                     f"{r['input_mb']:.1f} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | {r['peak_rss_mb']:.0f} | "
                     f"{r['cpu_s'] / r['records'] * 1e6:.1f} | {ratio} |")
    return "\n".join(lines)


def plot(cache: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted((r for r in _results(cache) if not r["extra"]), key=lambda r: r["records"])
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for i, unit in enumerate(u for u in UNITS if any(r["unit"] == u for r in rows)):
        rr = [r for r in rows if r["unit"] == unit]
        n = [r["records"] for r in rr]
        ax[0].loglog(n, [r["wall_s"] for r in rr], "o-", color=f"C{i}", label=f"wall ({unit})")
        ax[0].loglog(n, [r["cpu_s"] for r in rr], "s--", color=f"C{i}", label=f"CPU ({unit})")
        ax[1].semilogx(n, [r["peak_rss_mb"] for r in rr], "o-", color=f"C{i}", label=f"peak RSS ({unit})")
    ax[0].set_xlabel("records")
    ax[0].set_ylabel("seconds")
    ax[0].set_title("traces synth, ε = 2: time")
    ax[0].legend()
    ax[1].set_xlabel("records")
    ax[1].set_ylabel("MB")
    ax[1].axhline(4096, color="red", lw=0.8, ls=":", label="4 GB goal")
    ax[1].set_ylim(0, 4500)
    ax[1].set_title("peak resident memory")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["generate", "run", "table"])
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e4, 1e5, 1e6])
    ap.add_argument("--eps", type=float, default=2.0)
    ap.add_argument("--units", nargs="+", default=list(UNITS), choices=UNITS)
    ap.add_argument("--cache", type=Path, default=DATA / "results")
    ap.add_argument("--plot", type=Path, default=ROOT / "benchmarks" / "traces_scale.png")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more traces synth flags (after --extra)")
    args = ap.parse_args()
    if args.what == "generate":
        for n in args.sizes:
            print(generate(int(n)), flush=True)
    elif args.what == "run":
        print(f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}", flush=True)
        for n in args.sizes:
            for unit in args.units:
                r = run_one(int(n), args.eps, unit, args.cache, args.extra)
                print(json.dumps({k: r[k] for k in ("records", "unit", "wall_s", "cpu_s", "peak_rss_mb")}),
                      flush=True)
    else:
        print(table(args.cache))
        plot(args.cache, args.plot)


if __name__ == "__main__":
    main()
