"""Run ONE method on one corpus table in this process: synthetic rows + a metadata JSON.

    python -m benchmarks.corpus_one METHOD --train TRAIN.csv --target COL --eps 1 --seed 0 \
        --out synth.csv --meta meta.json [--work DIR]

Started once per (table, method, ε, seed) by ``benchmarks/corpus.py`` so that CPU time and peak memory
belong to that run alone. Methods:

* ``pe``      the user's path: ``pe-tabular schema infer TRAIN --label TARGET`` (a PUBLIC schema read off
              the table, as a codebook would give it), then ``pe-tabular synth --epsilon ε`` with defaults;
* ``pe_dp``   the private path: ``schema infer --dp-epsilon`` (types from the codebook, i.e. the column
              dtypes; categories, bounds and nullability DP) inside the same total ε, then ``synth``;
* ``pe_gen``  ablation: the same public-schema run, but the output is drawn from the generator the PE
              votes start from (fitted on the DP measurements), with the votes' budget given back to the
              measurements — same total ε, no votes;
* ``pe_task`` the user's path naming the task: ``pe`` with ``synth --target TARGET`` (issue 26);
* ``mst``     MST (McKenna et al. 2021; ``benchmarks/peers/mst.py``) on the scorer's own discretisation
              of the real train rows (deciles, ≥ 5 % spikes, ≤ 20-value columns, top-30 text values) —
              a domain read off the private data for free, as the reference algorithm is usually run;
              decoded uniformly inside a decile, a spike or value as itself, "other" text as ``__other__``;
* ``indep``   exact (non-DP) independent columns; ``bootstrap``: the real rows resampled (non-DP).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SCORER = ROOT.parent / "shared" / "bench" / "score_table.py"
DELTA = 1e-5
DP_SCHEMA_SHARE = 0.3  # the DP-schema path spends ε·0.3 on the schema (≈ 9 % of μ²), the rest on synth
OTHER = "__other__"


def scorer() -> Any:
    """The reference scorer module, imported from ../shared (never copied into the project)."""
    spec = importlib.util.spec_from_file_location("score_table", SCORER)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1]) / 1024.0
    return float("nan")


# -- MST on the scorer's discretisation ---------------------------------------------------------------------
def mst_codes(train: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, int], Any]:
    sc = scorer()
    binner = sc.Binner(train)
    codes = binner(train)
    sizes = {}
    for c, rule in binner.rules.items():
        sizes[c] = len(rule[1]) + 2 if rule[0] == "values" else len(rule[1]) + 3 + len(rule[2])
    return {c: codes[c].to_numpy(np.int64) for c in codes.columns}, sizes, binner


def mst_decode(codes: dict[str, np.ndarray], binner: Any, train: pd.DataFrame, rng: np.random.Generator
               ) -> pd.DataFrame:
    """Bin codes → values: a value bin as its value, a decile uniformly between its real edges (rounded for
    integer columns), a spike as itself, 'other' text as ``__other__``, missing as empty."""
    sc = scorer()
    out = {}
    for c, rule in binner.rules.items():
        b = np.asarray(codes[c], np.int64)
        if rule[0] == "values":
            vals = np.array(list(rule[1]) + [OTHER, None], dtype=object)
            out[c] = vals[np.minimum(b, len(vals) - 1)]
            continue
        edges, spikes = np.asarray(rule[1], float), np.asarray(rule[2], float)
        x = sc._numeric(train[c]).dropna().to_numpy(float)
        lo, hi = float(x.min()), float(x.max())
        full = np.concatenate([[lo], edges, [hi]])
        v = np.full(b.size, np.nan)
        k = len(edges) + 1
        iv = b < k
        j = b[iv]
        v[iv] = full[j] + rng.random(j.size) * (full[j + 1] - full[j])
        if np.all(np.mod(x, 1) == 0):
            v[iv] = np.round(v[iv])
        sp = (b >= k) & (b < k + len(spikes))
        v[sp] = spikes[b[sp] - k]
        col = pd.Series(v)
        if train[c].dtype == object:  # dates: back to ISO text
            col = pd.to_datetime(col, unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ").where(col.notna())
        out[c] = col.to_numpy()
    return pd.DataFrame(out)


# -- PE through the command line -------------------------------------------------------------------------------
def cli(argv: list[str]) -> None:
    from pe_tabular.cli import main

    rc = main(argv)
    if rc != 0:
        raise SystemExit(f"pe-tabular {' '.join(argv)} exited {rc}")


def codebook_types(train_csv: Path, work: Path, target: str) -> str:
    """Column types as a codebook gives them (the public-mode inference's choice of type only)."""
    cli(["schema", "infer", str(train_csv), "--label", target, "--out", str(work / "types_schema.json"), "--quiet"])
    d = json.loads((work / "types_schema.json").read_text())
    return ",".join(f"{c['name']}={c['type']}" for c in d["columns"])


def run_pe(method: str, a: argparse.Namespace) -> dict[str, Any]:
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    schema = work / "schema.json"
    synth_eps = a.eps
    if method == "pe_dp":
        types = codebook_types(Path(a.train), work, a.target)
        cli(["schema", "infer", a.train, "--label", a.target, "--dp-epsilon", f"{a.eps * DP_SCHEMA_SHARE:g}",
             "--types", types, "--out", str(schema), "--quiet", "--seed", str(a.seed)])
    else:
        cli(["schema", "infer", a.train, "--label", a.target, "--out", str(schema), "--quiet"])
    if method == "pe_gen":  # the same run without votes (no CLI flag: an ablation, not a user setting)
        from pe_tabular.tables.cli import synth_defaults
        from pe_tabular.tables.io import read_table, write_table
        from pe_tabular.tables.schema import Schema
        from pe_tabular.tables.synthesizer import PESynthesizer

        syn = PESynthesizer(Schema.load(schema), synth_eps, DELTA, seed=a.seed, on_invalid="clip", votes=False,
                            **synth_defaults()).fit(read_table(a.train))
        write_table(syn.sample(), Path(a.out))
        from pe_tabular.io_utils import atomic_write_json

        atomic_write_json(Path(a.out).with_suffix(".privacy.json"), syn.privacy_report())
    else:
        task = ["--target", a.target] if method == "pe_task" else []
        cli(["synth", a.train, "--schema", str(schema), "--epsilon", f"{synth_eps:g}", "--out", a.out,
             "--seed", str(a.seed), "--quiet", "--on-invalid", "clip", *task])
    ledger = json.loads(Path(a.out).with_suffix(".privacy.json").read_text())
    return {"epsilon": ledger["epsilon"], "delta": ledger["delta"], "mu": ledger["mu"],
            "n_releases": ledger["n_releases"], "schema_path": str(schema)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("method", choices=["pe", "pe_task", "pe_dp", "pe_gen", "mst", "indep", "bootstrap"])
    ap.add_argument("--train", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--eps", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--work", default=None)
    ap.add_argument("--mst-iters", type=int, default=1000)
    a = ap.parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore")
    t0 = time.time()
    rng = np.random.default_rng(a.seed)
    meta: dict[str, Any]
    if a.method.startswith("pe"):
        meta = run_pe(a.method, a)
    else:
        train = pd.read_csv(a.train, low_memory=False)
        n = len(train)
        if a.method == "mst":
            from benchmarks.peers.mst import mst

            codes, sizes, binner = mst_codes(train)
            r = mst(codes, sizes, a.eps, DELTA, rng, iters=a.mst_iters, rows=n, sample_seed=a.seed)
            out = mst_decode(r.codes, binner, train, rng)
            meta = {"epsilon": a.eps, "delta": DELTA, "tree": r.tree, "merged_values": r.compressed,
                    "mirror_descent_iters": a.mst_iters, "reads": "scorer's bins of the real train rows (free)"}
        elif a.method == "indep":
            out = pd.DataFrame({c: train[c].to_numpy()[rng.integers(0, n, n)] for c in train.columns})
            meta = {"epsilon": float("inf"), "reads": "exact 1-way marginals"}
        else:
            out = train.iloc[rng.integers(0, n, n)].reset_index(drop=True)
            meta = {"epsilon": float("inf"), "reads": "the real rows"}
        out.to_csv(a.out, index=False)
    meta["fit_sample_s"] = time.time() - t0
    meta["peak_mb"] = peak_rss_mb()
    Path(a.meta).write_text(json.dumps(meta, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
