"""Budget-schedule ablation at equal (ε, δ): uniform vs geometric vs adaptive (--budget).

    nice -n 10 python benchmarks/ablation_budget.py --dataset adult --epsilons 1 --seeds 0 1 2 --write
    nice -n 10 python benchmarks/ablation_budget.py --dataset toy --write

adult: ``PESynthesizer(schema, ε, δ, budget=NAME, ...)`` fitted on UCI Adult train (32,561 rows),
as many rows sampled, scored with the reference scorer ../shared/bench/score_adult.py (2-way
marginal TVD against train; TSTR accuracy/AUC on adult.test). Needs ../shared (skips otherwise).
toy: 2-D mixture of 5 Gaussians (3,000 private rows), the audit module's box backend, L2 votes,
population 300, 10 iterations, TVD of a 10×10 histogram; no data needed, runs in a few minutes.
Results are cached in WORK/results.json (one entry per run) so a long run can be resumed or
extended; --write replaces the '## Budget schedule ablation' section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
SCORER = SHARED / "bench" / "score_adult.py"

import numpy as np  # noqa: E402

from benchmarks.audit import machine, write_section  # noqa: E402
from pe_tabular.io_utils import atomic_write_json  # noqa: E402
from pe_tabular.privacy.schedules import BUDGET_NAMES  # noqa: E402

DELTA = 1e-5


def log(msg: str) -> None:
    print(f"[ablation {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Store:
    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Merge with what is on disk now (another process may share the file), then write atomically."""
        on_disk = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.data = {**on_disk, **self.data, key: value}
        atomic_write_json(self.path, self.data)


# -- Adult ---------------------------------------------------------------------------------------------
def run_adult(eps: float, budget: str, seed: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from pe_tabular.tables.datasets import adult_schema, load_adult
    from pe_tabular.tables.synthesizer import PESynthesizer

    df = load_adult("train")
    t0 = time.time()
    syn = PESynthesizer(adult_schema(), eps, DELTA, iterations=args.iterations, population=args.population,
                        k=args.k, budget=budget, seed=seed)
    syn.fit(df)
    out = syn.sample(len(df), seed=seed)
    wall = time.time() - t0
    csv = work / f"adult_eps{eps:g}_{budget}_s{seed}.csv"
    # the scorer maps 'income' onto its label name but then fails to match it; the exact UCI name works
    out.rename(columns={"income": "income>50K"}).to_csv(csv, index=False)
    proc = subprocess.run([sys.executable, str(SCORER), str(csv), "--method", f"pe-{budget}", "--eps", f"{eps:g}",
                           "--wall-s", f"{wall:.1f}"], capture_output=True, text=True, check=True)
    score = json.loads(proc.stdout.strip().splitlines()[-1])
    hist = syn.result_.history
    return {"tvd2_mean": score["tvd2_mean"], "tvd1_mean": score["tvd1_mean"], "tstr_acc": score["tstr_acc"],
            "tstr_auc": score["tstr_auc"], "votes": len(hist), "sigmas": [round(h["sigma"], 2) for h in hist],
            "epsilon_ledger": syn.ledger_.epsilon, "wall_s": wall}


# -- mnist ---------------------------------------------------------------------------------------------
def run_mnist(eps: float, budget: str, seed: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The digits pipeline at its benchmark settings (stroke renderer, T = 10, 40k candidates), private = the
    60k MNIST training images, scored by our own fixed CNN on the real 10k test images."""
    from renderers.digits.evaluation import evaluate
    from renderers.digits.io import load_mnist
    from renderers.digits.synth import DigitsConfig, synthesize

    mnist = ROOT.parent / "shared" / "data" / "mnist"
    x, y = load_mnist(mnist, "train")
    t0 = time.time()
    res = synthesize(x, y, eps, DELTA, DigitsConfig(iterations=10, population=40000, budget=budget),
                     np.random.default_rng(seed))
    wall = time.time() - t0
    ev = evaluate(res.images, res.labels, load_mnist(mnist, "test"), threads=2)
    hist = res.history
    return {"acc": ev["acc"], "votes": len(hist), "sigmas": [round(h["sigma"], 2) for h in hist],
            "epsilon_ledger": res.ledger.epsilon, "wall_s": wall}


# -- toy -----------------------------------------------------------------------------------------------
def _toy_data(n: int, rng: np.random.Generator) -> np.ndarray:
    centers = np.array([[0.2, 0.2], [0.8, 0.3], [0.5, 0.8], [0.3, 0.6], [0.75, 0.75]])
    return np.clip(centers[rng.integers(0, 5, n)] + rng.normal(0, 0.05, (n, 2)), 0, 1).astype(np.float32)


def _tvd2d(a: np.ndarray, b: np.ndarray, bins: int = 10) -> float:
    ha = np.histogram2d(a[:, 0], a[:, 1], bins=bins, range=[[0, 1], [0, 1]])[0].ravel()
    hb = np.histogram2d(b[:, 0], b[:, 1], bins=bins, range=[[0, 1], [0, 1]])[0].ravel()
    return float(0.5 * np.abs(ha / ha.sum() - hb / hb.sum()).sum())


def run_toy(eps: float, budget: str, seed: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from pe_tabular.audit import BoxBackend, IdentityEncoder
    from pe_tabular.evolution import Evolution, EvolutionConfig
    from pe_tabular.privacy.accountant import gdp_mu
    from pe_tabular.privacy.ledger import Ledger
    from pe_tabular.privacy.noise import NoiseSource
    from pe_tabular.privacy.schedules import make_policy

    rng = np.random.default_rng(seed)
    private = _toy_data(3000, rng)
    mu = gdp_mu(eps, DELTA)
    cfg = EvolutionConfig.build(10, 300, degree=0.5, voter="numpy")
    ledger = Ledger(DELTA, mu_budget=mu)
    t0 = time.time()
    res = Evolution(BoxBackend(dim=2), IdentityEncoder(), cfg, make_policy(budget, mu, 10), ledger, NoiseSource(),
                    rng).run(private)
    syn = np.asarray(res.population.samples)[res.draw(len(private), rng)]
    return {"tvd2d": _tvd2d(syn, private), "votes": len(res.history),
            "sigmas": [round(h["sigma"], 2) for h in res.history], "epsilon_ledger": ledger.epsilon,
            "wall_s": time.time() - t0}


# -- report --------------------------------------------------------------------------------------------
def _ms(v: list[float], nd: int = 4) -> str:
    return f"{np.mean(v):.{nd}f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.{nd}f}"


def report(store: Store, dataset: str, epsilons: list[float], budgets: list[str], seeds: list[int]) -> list[str]:
    metrics = {"adult": ["tvd2_mean", "tstr_acc", "tstr_auc"], "mnist": ["acc"]}.get(dataset, ["tvd2d"])
    lines = [f"| ε | budget | {' | '.join(metrics)} | votes used | σ_t (seed {seeds[0]}) | ledger ε | seeds |",
             "|---|---|" + "---|" * (len(metrics) + 4)]
    for eps in epsilons:
        for b in budgets:
            rs = [store.data[k] for s in seeds if (k := f"{dataset}|{eps:g}|{b}|{s}") in store.data]
            if not rs:
                continue
            cells = [_ms([r[m] for r in rs]) for m in metrics]
            lines.append(f"| {eps:g} | {b} | {' | '.join(cells)} | {sorted({r['votes'] for r in rs})} "
                         f"| {rs[0]['sigmas']} | {max(r['epsilon_ledger'] for r in rs):.4f} | {len(rs)} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["adult", "toy", "mnist"], default="adult")
    ap.add_argument("--epsilons", type=float, nargs="+", default=[1.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budgets", nargs="+", choices=BUDGET_NAMES, default=list(BUDGET_NAMES))
    ap.add_argument("--iterations", type=int, default=4, help="adult: PE iterations (the tables default)")
    ap.add_argument("--population", type=int, nargs="+", default=[2000, 4000, 8000, 16000],
                    help="adult: population per iteration (the tables default)")
    ap.add_argument("--k", type=int, default=16, help="adult: k-NN votes (the tables default)")
    ap.add_argument("--work", default=None, help="cache directory (default /tmp/pe-ablation-budget[-toy])")
    ap.add_argument("--write", action="store_true", help="write the section of benchmarks/RESULTS.md")
    ap.add_argument("--report-only", action="store_true", help="only report the runs already in WORK/results.json")
    args = ap.parse_args()
    if args.dataset == "adult" and not SCORER.exists():
        log(f"skipping: the reference scorer {SCORER} is absent (needs ../shared next to the repository)")
        return 0
    logging.basicConfig(level=logging.WARNING)
    work = Path(args.work or ("/tmp/pe-ablation-budget" + ("" if args.dataset == "adult" else f"-{args.dataset}")))
    work.mkdir(parents=True, exist_ok=True)
    store = Store(work / "results.json")
    population = args.population if len(args.population) > 1 else args.population[0]
    args.population = population
    run = {"adult": run_adult, "toy": run_toy, "mnist": run_mnist}[args.dataset]
    for eps in args.epsilons:
        for seed in args.seeds:
            for b in args.budgets:
                key = f"{args.dataset}|{eps:g}|{b}|{seed}"
                if key in store.data or args.report_only:
                    continue
                log(f"{key} ...")
                store.put(key, run(eps, b, seed, args, work))
                log(f"{key}: {store.data[key]}")
    lines = report(store, args.dataset, args.epsilons, args.budgets, args.seeds)
    print("\n".join(lines))
    if args.write:
        heading = "Budget schedule ablation"
        path = ROOT / "benchmarks" / "RESULTS.md"
        old = path.read_text() if path.exists() else ""
        prev = {}
        # keep the other dataset's table when rewriting the section
        for ds in ("adult", "toy", "mnist"):
            marker = f"<!-- ablation:{ds} -->"
            if marker in old:
                seg = old.split(marker, 2)
                if len(seg) == 3:
                    prev[ds] = seg[1]
        cmd = "nice -n 10 python benchmarks/ablation_budget.py " + " ".join(sys.argv[1:])
        if args.dataset == "adult":
            desc = (f"Adult: PESynthesizer (statistical backend, {args.iterations} iterations, population "
                    f"{args.population}, k = {args.k}, δ = {DELTA:g}), seeds per row in the last column, "
                    "32,561 rows sampled, "
                    "scored by ../shared/bench/score_adult.py (2-way TVD vs train, lower is better; TSTR on "
                    "adult.test, higher is better); mean ± sd over seeds.")
        elif args.dataset == "mnist":
            desc = ("MNIST: the digits pipeline at its benchmark settings (stroke renderer, 10 iterations, 40,000 "
                    "candidates, δ = 1e-5), private = the 60,000 training images; accuracy of our fixed CNN "
                    "(renderers.digits.evaluation) trained on 60,000 synthetic images, on the real 10,000 test "
                    "images (higher is better); mean ± sd over seeds.")
        else:
            desc = ("Toy: 3,000 private rows from a 2-D mixture of 5 Gaussians, box backend, population 300, 10 "
                    "iterations, TVD of a 10×10 histogram of 3,000 drawn rows (lower is better); mean ± sd over seeds.")
        prev[args.dataset] = "\n" + "\n".join([desc, "", *lines, "", f"Command: `{cmd}`. Machine: {machine()}.", ""])
        body = ["", "uniform = equal σ per vote; geometric = precision ×1.5 per vote; adaptive = AIM-style annealing "
                "under the GDP filter (pe_tabular/privacy/schedules.py). All at the same (ε, δ), charged by the "
                "same ledger.", ""]
        for ds in ("adult", "toy", "mnist"):
            if ds in prev:
                body += [f"<!-- ablation:{ds} -->" + prev[ds].rstrip("\n"), f"<!-- ablation:{ds} -->", ""]
        write_section(heading, body)
        log(f"wrote the {heading} section of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
