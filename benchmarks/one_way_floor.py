"""How low can a DP method's 2-way TVD go on a small wide table? A generous floor: independent columns whose
one-way margins get the WHOLE budget, on the reference scorer's own bins (read off the real rows, which no DP
method gets for free).

    python -m benchmarks.one_way_floor TRAIN.csv [--eps 1,0.3] [--seeds 2]

Each of the d one-way histograms has sensitivity 1 (one row sits in one cell of each), so together they have
L2 sensitivity √d and Gaussian noise σ = √d / μ, μ = gdp_mu(ε, δ = 1e-5). Rows are drawn independently per
column from the clipped noisy histograms (as many as the real rows) and scored with
``../shared/bench/score_table.py``'s binning and TVD. Against exact independent columns (the non-DP reference of
the corpus benchmark) the gap is the price of the one-way noise alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.corpus import SCORER  # noqa: E402
from pe_tabular.privacy.accountant import gdp_mu  # noqa: E402


def _scorer():
    spec = importlib.util.spec_from_file_location("score_table", SCORER)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train")
    ap.add_argument("--eps", default="1,0.3")
    ap.add_argument("--seeds", type=int, default=2)
    a = ap.parse_args(argv)
    st = _scorer()
    train = pd.read_csv(a.train, low_memory=False)
    rb = st.Binner(train)(train)
    cols = list(train.columns)
    for eps in (float(e) for e in a.eps.split(",")):
        sigma = np.sqrt(len(cols)) / gdp_mu(eps, 1e-5)
        for seed in range(a.seeds):
            rng = np.random.default_rng(seed)
            syn = {}
            for c in cols:
                k = int(rb[c].max()) + 1
                p = np.clip(np.bincount(rb[c], minlength=k) + rng.normal(0, sigma, k), 0, None)
                syn[c] = rng.choice(k, size=len(train), p=p / p.sum())
            sb = pd.DataFrame(syn)
            t1 = np.mean([st._tvd(rb, sb, [c]) for c in cols])
            t2 = np.mean([st._tvd(rb, sb, p) for p in itertools.combinations(cols, 2)])
            print(f"eps={eps:g} seed={seed} sigma={sigma:.1f} 1-way {t1:.4f} 2-way {t2:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
