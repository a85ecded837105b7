"""Run ONE method on UCI Adult in this process and write its synthetic rows + a metadata JSON.

    python -m benchmarks.peers.run_one METHOD --eps 1 --seed 0 --out synth.csv --meta meta.json

The benchmark (benchmarks/tabular.py) starts one of these per (method, ε, seed) so that wall time,
CPU time and peak memory (``os.wait4``) belong to that method alone. Private = adult.data (32,561
rows); the output has as many rows, raw values, pe_tabular column names (label ``income``).
The metadata holds the ε actually spent, the accounting and what was read from the private data.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
SNSYNTH_PY = Path(os.environ.get("SNSYNTH_PYTHON", "/tmp/snsynth/bin/python"))
DELTA = 1e-5
N_PUBLIC = 1000  # last rows of adult.test used as PUBLIC pre-training data by the DP-SGD peer

# AIM is not run here (quoted from peers_adult.jsonl): on this shared 2-core machine a capped run would
# stop after a few of its 16·d rounds.
DP_METHODS = ["pe", "mst", "dpsgd", "dpctgan", "patectgan"]
REF_METHODS = ["public_pretrain", "indep", "bootstrap", "gaussian_copula"]
METHODS = DP_METHODS + REF_METHODS


def _codes_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    from .adult_bins import encode, load_config

    cols = load_config()
    return encode(df, cols), cols


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: Linux carries the forking parent's high-water
    mark across exec into ru_maxrss, so a child of a big benchmark process would inherit its size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1]) / 1024.0
    return float("nan")


def run(method: str, eps: float, seed: int, args: argparse.Namespace) -> tuple[pd.DataFrame, dict[str, Any]]:
    from pe_tabular.tables.datasets import adult_schema, load_adult

    df = load_adult("train")
    n = len(df)
    rng = np.random.default_rng(seed)
    public_bins = "public bins/categories of config.yml"
    if method == "pe":
        from pe_tabular.tables.cli import synth_defaults
        from pe_tabular.tables.synthesizer import PESynthesizer

        syn = PESynthesizer(adult_schema(), eps, DELTA, seed=seed, **synth_defaults()).fit(df)
        rep = syn.privacy_report()
        out = syn.sample(n)
        return out, {"epsilon": rep["epsilon"], "delta": rep["delta"], "accounting": f"GDP, mu={rep['mu']:.4f}",
                     "reads": "noisy 1-way marginals, noisy label shares, all-pairs structure tables, PE votes, "
                              "tree 2-way marginals (all charged); schema public (config.yml bounds/categories)",
                     "n_releases": rep["n_releases"], "settings": synth_defaults()}
    if method == "mst":
        from .adult_bins import decode, domain_sizes
        from .mst import mst

        codes, cols = _codes_frame(df)
        sizes = domain_sizes(cols)
        r = mst({a: codes[a].to_numpy() for a in sizes}, sizes, eps, DELTA, rng, iters=args.mst_iters, rows=n,
                sample_seed=seed)
        out = decode(pd.DataFrame(r.codes), cols, rng)
        return out, {"epsilon": eps, "delta": DELTA, "accounting": f"zCDP rho={r.rho:.5f} (CKS 2020 conversion)",
                     "reads": f"noisy marginals only; {public_bins}", "tree": r.tree, "merged_values": r.compressed,
                     "sigmas": r.sigmas, "mirror_descent_iters": args.mst_iters}
    if method in ("dpsgd", "public_pretrain"):
        import torch

        from .adult_bins import decode, encode
        from .dpsgd import DPSGDConfig, fit_sample

        torch.set_num_threads(1)
        codes, cols = _codes_frame(df)
        public = encode(load_adult("test").iloc[-N_PUBLIC:], cols).to_numpy()
        cfg = DPSGDConfig(epochs=args.dpsgd_epochs)
        r = fit_sample(codes.to_numpy() if method == "dpsgd" else None, public, [c.bins for c in cols.values()],
                       eps, DELTA, n, seed, cfg)
        out = decode(pd.DataFrame(r.codes, columns=list(cols)), cols, rng)
        meta = {"epsilon": r.epsilon if method == "dpsgd" else 0.0, "delta": DELTA if method == "dpsgd" else 0.0,
                "accounting": (f"{r.accountant.upper()} (opacus), noise multiplier {r.noise_multiplier:.3f}, "
                               f"{r.steps} steps" if method == "dpsgd" else "reads no private row"),
                "reads": (f"clipped noisy gradients; pre-trained on {N_PUBLIC} PUBLIC rows (tail of adult.test); "
                          f"{public_bins}" if method == "dpsgd" else
                          f"nothing private: {N_PUBLIC} public rows (tail of adult.test) only"),
                "history": r.history, "config": cfg.__dict__}
        return out, meta
    if method in ("dpctgan", "patectgan"):
        from .adult_bins import decode

        if not SNSYNTH_PY.exists():
            raise SystemExit(f"{SNSYNTH_PY} missing: create it with `python3.11 -m venv /tmp/snsynth && "
                             "/tmp/snsynth/bin/pip install torch==2.13.0 smartnoise-synth`")
        codes, cols = _codes_frame(df)
        with tempfile.TemporaryDirectory() as tmp:
            inp, outp, meta = Path(tmp) / "in.csv", Path(tmp) / "out.csv", Path(tmp) / "meta.json"
            codes.to_csv(inp, index=False)
            subprocess.run([str(SNSYNTH_PY), str(ROOT / "benchmarks" / "peers" / "snsynth_run.py"), method, str(inp),
                            str(outp), str(meta), "--eps", str(eps), "--delta", str(DELTA), "--seed", str(seed),
                            "--epochs", str(args.ctgan_epochs if method == "dpctgan" else args.pate_epochs)],
                           check=True)
            syn_codes = pd.read_csv(outp).astype(np.int64)
            m = json.loads(meta.read_text())
        out = decode(syn_codes[list(cols)], cols, rng)
        return out, {"epsilon": eps, "delta": DELTA, "accounting": m.pop("accounting"),
                     "reads": "noisy gradients/votes; category frequencies for the conditional sampler "
                              f"(uncharged, as shipped); {public_bins}", **m}
    from .baselines import bootstrap, gaussian_copula, independent_marginals

    if method == "indep":
        return independent_marginals(df, n, rng), {"epsilon": float("inf"), "delta": None, "accounting": "none",
                                                   "reads": "exact 1-way marginals"}
    if method == "bootstrap":
        return bootstrap(df, n, rng), {"epsilon": float("inf"), "delta": None, "accounting": "none",
                                       "reads": "the private rows themselves"}
    if method == "gaussian_copula":
        return gaussian_copula(df, n, adult_schema(), seed), {"epsilon": float("inf"), "delta": None,
                                                             "accounting": "none",
                                                             "reads": "exact marginals + correlations"}
    raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("method", choices=METHODS)
    ap.add_argument("--eps", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--mst-iters", type=int, default=1000)
    ap.add_argument("--aim-cap", type=float, help=argparse.SUPPRESS)  # accepted and ignored (AIM is quoted)
    ap.add_argument("--dpsgd-epochs", type=int, default=5)
    ap.add_argument("--ctgan-epochs", type=int, default=8)
    ap.add_argument("--pate-epochs", type=int, default=100)
    a = ap.parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    t0 = time.time()
    out, meta = run(a.method, a.eps, a.seed, a)
    meta["fit_sample_s"] = time.time() - t0
    meta["peak_mb"] = max(peak_rss_mb(), float(meta.get("peak_mb", 0.0)))  # a grandchild may report its own
    out.to_csv(a.out, index=False)
    Path(a.meta).write_text(json.dumps(meta, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
