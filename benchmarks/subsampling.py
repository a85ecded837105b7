"""Does privacy amplification by subsampling win at equal ε? (issue 19)

A PE run of the engine's ``Evolution`` on a 2-D toy problem (tests/toy.py's point backend: uniform prior
on [0, 100]², Gaussian variation) whose private data are n points from 8 Gaussian clusters of unequal
weight. Every vote is taken on a Poisson subsample of the private points at rate q ∈ {1, 0.5, 0.2, 0.1},
with σ solved so that the whole run is (ε = 1, δ = 1e-5)-DP by PLD (``schedules.subsampled``; q = 1 is
the plain Gaussian, the same σ as the GDP formula). Quality: total variation distance between 20 000
synthetic points and the private points on a 20×20 grid (lower is better; mean ± sd over seeds). Cost:
wall seconds per iteration of the vote (numba kernel), and of everything (the PLD accountant
recomputes ε after every release, ~0.1 s, whatever n).

    PYTHONPATH=. nice -n 10 python benchmarks/subsampling.py          # ~6 min on 2 cores; writes RESULTS.md
    PYTHONPATH=. python benchmarks/subsampling.py --sizes 1e4 --reps 1 --no-write

Why the answer is not obvious: a vote on a q-subsample has signal q·n per unit of mass, and the σ that
keeps ε fixed shrinks with q, but not as fast as q at the small T of PE (amplification pays most over
many compositions): the column σ/q is the noise per unit of *full-data* signal, the quantity that decides
selection quality; q = 1 minimises it. Subsampling can still win where the vote mass is far above the
noise anyway (large n at a fixed population), since the cost per iteration falls to about q.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pe_tabular.evolution import Evolution, EvolutionConfig  # noqa: E402
from pe_tabular.privacy import Ledger, NoiseSource, schedules  # noqa: E402
from tests.toy import PointBackend, PointEncoder  # noqa: E402

HEADING = "Scale: privacy amplification by subsampling (votes at equal ε)"
EPS, DELTA = 1.0, 1e-5
RATES = (1.0, 0.5, 0.2, 0.1)
CENTRES = np.array([[15, 20], [30, 75], [50, 50], [70, 20], [85, 80], [20, 45], [60, 85], [85, 45]], float)
WEIGHTS = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.07, 0.05, 0.03])


def private_points(n: int, rng: np.random.Generator) -> np.ndarray:
    k = rng.choice(len(CENTRES), size=n, p=WEIGHTS)
    return np.clip(CENTRES[k] + rng.normal(0, 4, (n, 2)), 0, 100).astype(np.float32)


def tvd(a: np.ndarray, b: np.ndarray, bins: int = 20) -> float:
    edges = np.linspace(0, 100, bins + 1)
    ha = np.histogram2d(a[:, 0], a[:, 1], [edges, edges])[0].ravel()
    hb = np.histogram2d(b[:, 0], b[:, 1], [edges, edges])[0].ravel()
    return float(0.5 * np.abs(ha / ha.sum() - hb / hb.sum()).sum())


class TimedEvolution(Evolution):
    """Evolution that also times its votes (the part that touches the private data and grows with q·n)."""

    vote_seconds = 0.0

    def _vote(self, *args, **kw):  # noqa: ANN002, ANN003, ANN202 - a timing wrapper
        t = time.perf_counter()
        out = super()._vote(*args, **kw)
        self.vote_seconds += time.perf_counter() - t
        return out


def run(private: np.ndarray, q: float, T: int, pop: int, seed: int, policy: schedules.Scheduled) -> dict:
    cfg = EvolutionConfig.build(T, pop, np.geomspace(0.5, 0.05, T - 1).tolist(), voter="numba", sampling_rate=q,
                                selection="systematic")
    led = Ledger(DELTA, epsilon_budget=EPS)
    evo = TimedEvolution(PointBackend(), PointEncoder(), cfg, policy, led, NoiseSource(test_seed=seed),
                         np.random.default_rng(seed))
    t0 = time.perf_counter()
    res = evo.run(private)
    wall = time.perf_counter() - t0
    out = res.population.samples[res.draw(20_000, np.random.default_rng(seed + 100))]
    return {"tvd": tvd(out, private), "s_per_it": wall / T, "vote_s_per_it": evo.vote_seconds / T,
            "epsilon": res.ledger.epsilon}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e4, 1e5, 1e6])
    ap.add_argument("--iterations", nargs="+", type=int, default=[5, 20])
    ap.add_argument("--population", type=int, default=500)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--rows", help="re-render the table from the JSON lines a run printed (no new runs)")
    a = ap.parse_args()
    from benchmarks.common import machine, write_section

    if a.rows:
        rows = [json.loads(line) for line in Path(a.rows).read_text().splitlines() if line.startswith("{")]
        a.sizes = sorted({r["n"] for r in rows})
        a.iterations = sorted({r["T"] for r in rows})
        a.reps = int(rows[0].get("reps", a.reps))
    else:
        rows = measure_all(a)
    render(a, rows, machine, write_section)


def measure_all(a: argparse.Namespace) -> list[dict]:
    policies = {(T, q): schedules.subsampled(EPS, DELTA, T, q) for T in a.iterations for q in RATES}
    # warm the numba kernel outside the timings
    run(private_points(2000, np.random.default_rng(0)), 1.0, 2, 50, 0, schedules.subsampled(EPS, DELTA, 2, 1.0))
    rows = []
    for T in a.iterations:
        for n in (int(s) for s in a.sizes):
            private = private_points(n, np.random.default_rng(n))
            for q in RATES:
                rs = [run(private, q, T, a.population, rep, policies[T, q]) for rep in range(a.reps)]
                sigma = policies[T, q].sigmas[0]
                row = {"T": T, "n": n, "q": q, "reps": a.reps, "sigma": sigma, "sigma_over_q": sigma / q,
                       "signal_per_candidate": q * n / a.population,
                       "tvd": float(np.mean([r["tvd"] for r in rs])), "tvd_sd": float(np.std([r["tvd"] for r in rs])),
                       "s_per_it": float(np.mean([r["s_per_it"] for r in rs])),
                       "vote_s_per_it": float(np.mean([r["vote_s_per_it"] for r in rs])),
                       "epsilon": max(r["epsilon"] for r in rs)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def render(a: argparse.Namespace, rows: list[dict], machine, write_section) -> None:  # noqa: ANN001
    uniform = tvd(np.random.default_rng(1).uniform(0, 100, (20_000, 2)),
                  private_points(10**6, np.random.default_rng(2)))
    lines = ["", f"`PYTHONPATH=. nice -n 10 python benchmarks/subsampling.py` (machine: "
             f"{machine('numba', 'dp_accounting')}; shared with other jobs, so times are indicative).", "",
             f"Toy 2-D PE (tests/toy.py backend), 8 unequal Gaussian clusters, population {a.population}, "
             f"ε = {EPS:g}, δ = {DELTA:g} for the whole run (PLD; reported ε ≤ 1 in every row), "
             f"{a.reps} seeds; TVD on a 20×20 grid (uniform noise scores {uniform:.3f}). σ/q: noise per unit "
             "of full-data signal; q·n/pop: expected votes per candidate if votes were spread evenly.", "",
             "| T | n | q | σ | σ/q | q·n/pop | TVD (mean ± sd) | vote s / it | all s / it |",
             "|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['T']} | {r['n']:,} | {r['q']:g} | {r['sigma']:.2f} | {r['sigma_over_q']:.1f} | "
                     f"{r['signal_per_candidate']:,.0f} | {r['tvd']:.3f} ± {r['tvd_sd']:.3f} | "
                     f"{r['vote_s_per_it']:.3f} | {r['s_per_it']:.3f} |")
    lines += ["", "Per (T, n), against q = 1 (ΔTVD > 0: worse; its sd over seeds in the table):", ""]
    for T in a.iterations:
        for n in (int(x) for x in a.sizes):
            base = next(r for r in rows if (r["T"], r["n"], r["q"]) == (T, n, 1.0))
            parts = [f"q={r['q']:g}: ΔTVD {r['tvd'] - base['tvd']:+.3f}, "
                     f"vote cost ×{r['vote_s_per_it'] / base['vote_s_per_it']:.2f}"
                     for r in rows if (r["T"], r["n"]) == (T, n) and r["q"] < 1]
            lines.append(f"- T = {T}, n = {n:,}: " + "; ".join(parts))
    lines.append("")
    if not a.no_write:
        write_section(HEADING, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
