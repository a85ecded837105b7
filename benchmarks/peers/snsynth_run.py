"""DP-CTGAN / PATE-CTGAN of smartnoise-synth 1.0.8, run by the interpreter of a SEPARATE venv
(``/tmp/snsynth``: smartnoise-synth pins mbi<2 and opacus 0.14, which conflict with ours).

    /tmp/snsynth/bin/python benchmarks/peers/snsynth_run.py dpctgan IN_CODES.csv OUT_CODES.csv META.json \
        --eps 1 --delta 1e-5 --seed 0 [--epochs 8]

Input and output are public-bin codes (all columns categorical), so the transformer reads nothing
numeric from the private data (``preprocessor_eps=0``). Stand-alone on purpose: it imports nothing
from this repository, only numpy, pandas, torch and snsynth.

DP-CTGAN: snsynth checks its RDP accountant only before each epoch, so a run can end above the
target. We pick the noise multiplier σ so that exactly ``--epochs`` epochs spend ``--eps`` (the
same RDP computation, Mironov et al. 2019, as Opacus 0.14, counting its two discriminator steps per
batch), so the check never fires and the reported ε is the spent one. PATE-CTGAN (Jordon et al.
2019): snsynth's own moments accountant and stopping rule (it stops after the iteration that crosses
the target; its ε is reported as given; snsynth ignores ``epochs`` for PATE-CTGAN).
Both use snsynth's conditional sampler, which reads the category frequencies of the private data
without charging them (as shipped).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import pandas as pd


def dpctgan_sigma(eps: float, delta: float, n: int, batch: int, epochs: int) -> float:
    from opacus import privacy_analysis

    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
    steps = 2 * epochs * max(n // batch, 1)  # snsynth steps the discriminator twice per batch (fake, real)
    q = batch / n

    def spent(sigma: float) -> float:
        rdp = privacy_analysis.compute_rdp(q, sigma, steps, orders)
        return float(privacy_analysis.get_privacy_spent(orders, rdp, delta)[0])

    lo, hi = 0.3, 50.0
    if spent(hi) > eps:
        raise SystemExit(f"--eps {eps}: even sigma={hi} spends more in {epochs} epochs; lower --epochs")
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if spent(mid) > eps else (lo, mid)
    return hi


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("method", choices=["dpctgan", "patectgan"])
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("meta")
    ap.add_argument("--eps", type=float, required=True)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=8)
    a = ap.parse_args()

    import torch
    from snsynth import Synthesizer

    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)  # noqa: NPY002 - snsynth uses the global generators
    df = pd.read_csv(a.inp).astype(str)
    t0 = time.time()
    meta: dict = {"epochs_cap": a.epochs}
    if a.method == "dpctgan":
        sigma = dpctgan_sigma(a.eps, a.delta, len(df), 500, a.epochs)
        syn = Synthesizer.create("dpctgan", epsilon=a.eps, delta=a.delta, sigma=sigma, epochs=a.epochs,
                                 batch_size=500, verbose=False, cuda=False)
        meta.update(sigma=sigma, accountant="RDP (opacus 0.14), sigma set so the epochs cap spends eps")
    else:
        syn = Synthesizer.create("patectgan", epsilon=a.eps, delta=a.delta, epochs=a.epochs, verbose=False,
                                 cuda=False)
        meta.update(accountant="PATE moments accountant (snsynth), stops after crossing eps")
    syn.fit(df, categorical_columns=list(df.columns), preprocessor_eps=0.0)
    out = syn.sample(len(df))
    model = getattr(syn, "_model", syn)
    eps_list = [float(e) for e in getattr(model, "epsilon_list", [])]
    meta.update(fit_sample_s=time.time() - t0, eps_checks=eps_list[-3:], epochs_run=len(eps_list) or None)
    with open("/proc/self/status") as f:  # own peak RSS (VmHWM); ru_maxrss would include the parent's
        meta["peak_mb"] = next(float(x.split()[1]) / 1024 for x in f if x.startswith("VmHWM:"))
    pd.DataFrame(out, columns=df.columns).to_csv(a.out, index=False)
    with open(a.meta, "w") as f:
        json.dump(meta, f)


if __name__ == "__main__":
    main()
