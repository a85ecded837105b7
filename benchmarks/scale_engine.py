"""Cost vs size of the engine's streaming pieces (issue 19): records 10⁴ … 10⁷ through ``source.sum`` of a
2-way histogram (record-level, and unit-level with the per-unit table), chunked votes on encoded codes,
and the same histogram on a 2-worker Dask LocalCluster. Wall, CPU and peak RSS per run; every run is a
fresh process, so peak RSS is that run's own.

    PYTHONPATH=. nice -n 10 python benchmarks/scale_engine.py            # ~5 min on 2 cores; writes RESULTS.md
    PYTHONPATH=. python benchmarks/scale_engine.py --sizes 1e4 1e5 --no-write

The synthetic data (generated once, cached under /tmp/scale-bench/): columns a ∈ [0, 64), b ∈ [0, 32),
x, y ~ two Gaussian clusters (float32), user ∈ [0, 50 000) (a fixed number of privacy units, so the unit
table's 1.2 MB does not grow with n), written as Parquet (row groups of 2¹⁷ rows); the 10⁶-row set also as
gzip'd CSV.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pe_tabular.distance import L2Metric  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path("/tmp/scale-bench")
HEADING = "Scale: engine streaming cost vs size"
N_UNITS = 50_000
N_CAND = 1_000


def data_file(n: int, fmt: str) -> Path:
    """The cached synthetic file of n rows (written in 10⁶-row pieces: generation memory stays flat too)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = CACHE / f"synth-{n}.{'parquet' if fmt == 'parquet' else 'csv.gz'}"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    tmp = path.with_suffix(path.suffix + ".tmp")
    writer = None
    step = 1_000_000
    for s in range(0, n, step):
        m = min(step, n - s)
        c = rng.integers(0, 2, m)
        df = pd.DataFrame({"a": rng.integers(0, 64, m), "b": rng.integers(0, 32, m),
                           "x": (rng.normal(25 + 50 * c, 6)).astype(np.float32),
                           "y": (rng.normal(30 + 40 * c, 6)).astype(np.float32),
                           "user": rng.integers(0, N_UNITS, m)})
        if fmt == "parquet":
            t = pa.Table.from_pandas(df, preserve_index=False)
            writer = writer or pq.ParquetWriter(tmp, t.schema)
            writer.write_table(t, row_group_size=1 << 17)
        else:
            _append_csv_gz(df, tmp, header=s == 0)
    if writer is not None:
        writer.close()
    tmp.rename(path)
    return path


def _append_csv_gz(df, path: Path, header: bool) -> None:
    import gzip

    with gzip.open(path, "at", compresslevel=1) as f:  # concatenated gzip members are one valid gzip file
        df.to_csv(f, header=header, index=False)


def hist_fn(chunk):
    from pe_tabular.source import weighted_histogram

    f = chunk.frame
    return weighted_histogram(f["a"].to_numpy() * 32 + f["b"].to_numpy(), chunk, 64 * 32)


class XY:
    """Encoder of the vote task: the (x, y) columns as float32 points (L2)."""

    metric = L2Metric()

    def encode(self, f):
        return f[["x", "y"]].to_numpy(np.float32)


def run_one(task: str, n: int, fmt: str) -> dict:
    """One measurement in this process (called in a fresh subprocess by main)."""
    from pe_tabular.source import ChunkedSource
    from pe_tabular.voting.streaming import SourceVoter

    path = data_file(n, fmt)
    t0, c0 = time.perf_counter(), time.process_time()
    if task == "hist":
        ChunkedSource.scan(path).sum(hist_fn, columns=["a", "b"])
    elif task == "hist-unit":
        ChunkedSource.scan(path, unit="user").sum(hist_fn, columns=["a", "b"])
    elif task == "votes":  # encode once (codes cached on disk), then one vote over 1000 candidates
        cand = np.random.default_rng(0).uniform(0, 100, (N_CAND, 2)).astype(np.float32)
        with ChunkedSource.scan(path).map_codes(XY().encode, columns=["x", "y"]) as coded:
            t_enc = time.perf_counter()
            SourceVoter(coded, voter="numba")(None, cand, XY.metric, 1, None, None, None, None)
            vote_wall = time.perf_counter() - t_enc
    elif task == "dask-hist":
        from pe_tabular.dask_source import DaskSource

        with DaskSource.local(2, ChunkedSource.scan(path)) as src:
            t_up = time.perf_counter()
            src.sum(hist_fn, columns=["a", "b"])
            pass_wall = time.perf_counter() - t_up
    else:
        raise ValueError(task)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"task": task, "n": n, "format": fmt, "wall": wall, "cpu": cpu, "peak_rss_mb": ru}
    if task == "votes":
        out["vote_wall"] = vote_wall
    if task == "dask-hist":
        out["pass_wall"] = pass_wall
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        out["cpu"] = cpu + kids.ru_utime + kids.ru_stime
        out["note"] = "RSS of the coordinator; workers are separate processes"
    return out


def measure(task: str, n: int, fmt: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # generate in its own process too: on Linux a child's ru_maxrss starts from its parent's RSS at fork, so the
    # parent must stay small for the measured peak to be the run's own
    subprocess.run([sys.executable, __file__, "--gen", "--n", str(n), "--format", fmt], env=env, check=True)
    out = subprocess.run([sys.executable, __file__, "--one", task, "--n", str(n), "--format", fmt], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def plot(rows: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for key in sorted({(r["task"], r["format"]) for r in rows}):
        rs = sorted((r for r in rows if (r["task"], r["format"]) == key), key=lambda r: r["n"])
        lab = f"{key[0]} ({key[1]})"
        ax[0].loglog([r["n"] for r in rs], [r["wall"] for r in rs], "o-", label=lab)
        ax[1].semilogx([r["n"] for r in rs], [r["peak_rss_mb"] for r in rs], "o-", label=lab)
    ax[0].set(xlabel="private records", ylabel="wall seconds", title="cost grows linearly")
    ax[1].set(xlabel="private records", ylabel="peak RSS (MB)", title="memory flat in n", ylim=(0, None))
    ax[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e4, 1e5, 1e6, 1e7])
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--gen", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--format", default="parquet", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(run_one(a.one, int(a.n), a.format)))
        return
    if a.gen:
        data_file(int(a.n), a.format)
        return
    sys.path.insert(0, str(ROOT))
    from benchmarks.common import machine, write_section

    rows = []
    sizes = [int(s) for s in a.sizes]
    plan = [(t, n, "parquet") for n in sizes for t in ("hist", "hist-unit", "votes")]
    plan += [("hist", n, "csv.gz") for n in sizes if n <= 1_000_000]
    plan += [("dask-hist", n, "parquet") for n in sizes if n >= 1_000_000]
    for task, n, fmt in plan:
        r = measure(task, n, fmt)
        rows.append(r)
        print(json.dumps(r), flush=True)
    png = ROOT / "benchmarks" / "scale_engine.png"
    plot(rows, png)
    lines = ["", "`PYTHONPATH=. nice -n 10 python benchmarks/scale_engine.py` "
             f"(machine: {machine('pyarrow', 'pandas', 'numba', 'dask')}; the machine was shared with other jobs).",
             "", "Synthetic rows (a∈[0,64), b∈[0,32), x, y float32, user∈[0,50 000)); every run a fresh process; "
             "default chunking (65 536-row Parquet batches, 4 MiB CSV blocks). `hist`: `ChunkedSource.scan(path)"
             ".sum(a×b histogram, columns=[a, b])` (2 048 cells); `hist-unit`: the same with `unit=\"user\"` (a "
             "counting pass builds the per-unit table, then weights 1/n_u); `votes`: `map_codes` (encode x, y "
             "once, codes cached on disk) + one `SourceVoter` vote against 1 000 candidates (numba, k = 1; "
             "\"vote s\" is that vote alone); `dask-hist`: `hist` on a 2-worker LocalCluster (wall includes "
             "starting the cluster; \"pass s\" the pass alone; RSS is the coordinator's).", "",
             "| task | format | records | wall s | CPU s | peak RSS MB | records/s | vote / pass s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        extra = r.get("vote_wall", r.get("pass_wall"))
        inner = r.get("vote_wall", r.get("pass_wall", r["wall"]))
        lines.append(f"| {r['task']} | {r['format']} | {r['n']:,} | {r['wall']:.2f} | {r['cpu']:.2f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['n'] / inner:,.0f} | "
                     f"{'' if extra is None else f'{extra:.2f}'} |")
    lines += ["", f"![cost and memory vs records]({png.name})", ""]
    if not a.no_write:
        write_section(HEADING, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
