"""Mixture of generators on UCI Adult at ε = 1: statistical + two loopback LLM endpoints vs each alone.

    nice -n 10 python benchmarks/mixture.py --seeds 0,1,2 [--iterations 3 --population 1000,2000,4000]
        [--personalities typical,coarse] [--floor 0.05] [--results benchmarks/RESULTS.md]

Arms (same ε, δ, PESynthesizer settings and seeds): ``statistical`` alone, each loopback endpoint
alone (``llm:A``, ``llm:B``), and the ``mix`` of all three. The LLM endpoints are the loopback
stand-in server (pe_tabular/tables/testing/loopback.py) with two personalities, reached over real HTTP by
the real openai client; the reply cache is off so request counts are real. Every statistical
component — the statistical arm, the mixture's statistical source and the LLM fallback — is the
calibrated backend PESynthesizer builds for ``backend="statistical"``.

Metrics: 1-/2-way TVD from pe_tabular.tables.evaluation (32 public bins) and the reference scorer
``/work/shared/bench/score_adult.py`` (public AIM/MST bins; 2-way TVD and TSTR AUC). Per-iteration
noisy vote share per source of the mixture is reported too. With ``--results`` a section
"## Mixture of generators (Adult, ε=1)" is appended to that file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pe_tabular.backends.mixture import DEFAULT_SHARPNESS  # noqa: E402
from pe_tabular.tables.cli import synth_defaults  # noqa: E402
from pe_tabular.tables.datasets import adult_schema, load_adult  # noqa: E402
from pe_tabular.tables.evaluation import marginal_tvd  # noqa: E402
from pe_tabular.tables.generators.factory import make_backend  # noqa: E402
from pe_tabular.tables.synthesizer import PESynthesizer  # noqa: E402
from pe_tabular.tables.testing.loopback import LoopbackServer  # noqa: E402

SCORER = ROOT.parent / "shared" / "bench" / "score_adult.py"
HEADING = "## Mixture of generators (Adult, ε=1)"


class MixSynthesizer(PESynthesizer):
    """PESynthesizer run exactly as for ``backend="statistical"`` (calibration, structure release, DP pair
    marginals, tree generator) — only the generator the evolution uses is swapped for this arm's
    backend, built with that very statistical generator as its statistical source / fallback.

    The synthesizer builds that generator inside ``fit`` and hands it to ``make_backend`` for a spec
    string, but without LLM client options; this wrapper takes the generator ``fit`` chose
    (``PESynthesizer._generator``) so that the benchmark's options (no reply cache, rows per request,
    concurrency) reach the LLM backends."""

    def __init__(self, *args: Any, arm_spec: str, llm_options: dict[str, Any], **kw: Any):
        super().__init__(*args, backend="statistical", **kw)
        self.arm_spec, self.llm_options = arm_spec, llm_options
        self.built_: Any = None

    def _wrap(self, stat: Any) -> Any:
        self.built_ = make_backend(self.arm_spec, self.schema, statistical=lambda: stat, **self.llm_options)
        return self.built_

    def _generator(self, schema: Any, marginals: Any, tree: Any) -> Any:
        stat = super()._generator(schema, marginals, tree)  # the tree generator (or the statistical one)
        return stat if self.arm_spec == "statistical" else self._wrap(stat)


def reference_score(df, path: Path) -> dict[str, Any]:
    if not SCORER.exists():
        return {}
    df.rename(columns={"income": "income>50K"}).to_csv(path, index=False)
    out = subprocess.run([sys.executable, str(SCORER), str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_arm(arm: str, spec: str, seed: int, args, train, schema, tmp: Path) -> dict[str, Any]:
    d = synth_defaults()
    iterations = args.iterations or d["iterations"]
    population = args.population or d["population"]
    opts = {"cache_dir": None, "progress": False, "concurrency": args.concurrency,
            "rows_per_request": args.rows_per_request, "vary_rows_per_request": args.rows_per_request}
    t0 = time.time()
    syn = MixSynthesizer(schema, args.epsilon, 1e-5, arm_spec=spec, llm_options=opts, iterations=iterations,
                         population=population, k=args.k or d["k"], seed=seed)
    syn.fit(train)
    out = syn.sample(len(train), seed=seed)
    wall = time.time() - t0
    tv = marginal_tvd(train, out, schema, ways=(1, 2))
    ref = reference_score(out, tmp / f"{arm}_{seed}.csv")
    rec = {"arm": arm, "seed": seed, "spec": spec.split("://")[0] if "llm" not in spec else arm,
           "tvd1": tv["tvd1_mean"], "tvd2": tv["tvd2_mean"], "ref_tvd2": ref.get("tvd2_mean"),
           "ref_tstr_auc": ref.get("tstr_auc"), "wall_s": wall, "epsilon": syn.ledger_.epsilon,
           "iterations": iterations, "population": population,
           "source_share": [{k: round(v, 4) for k, v in h["source_share"].items()} for h in syn.result_.history]}
    built = getattr(syn, "built_", None)
    parts = getattr(built, "backends", [built])
    rec["llm"] = [{k: v for k, v in b.report().items() if k in ("name", "http_requests", "prompt_tokens",
                                                                  "completion_tokens", "fallback_rows", "rows")}
                  for b in parts if hasattr(b, "report")]
    print(json.dumps(rec), flush=True)
    return rec


def summarise(recs: list[dict[str, Any]], arms: list[str]) -> list[str]:
    lines = ["| arm | 2-way TVD (ours), mean ± sd | 2-way TVD (reference) | 1-way TVD | TSTR AUC (ref) | wall s |",
             "|---|---|---|---|---|---|"]
    for a in arms:
        rs = [r for r in recs if r["arm"] == a]
        if not rs:
            continue

        def ms(key: str, rs=rs) -> str:
            v = np.array([r[key] for r in rs if r.get(key) is not None], dtype=float)
            return "n/a" if v.size == 0 else f"{v.mean():.4f} ± {v.std(ddof=1) if v.size > 1 else 0:.4f}"

        lines.append(f"| {a} | {ms('tvd2')} | {ms('ref_tvd2')} | {ms('tvd1')} | {ms('ref_tstr_auc')} | "
                     f"{np.mean([r['wall_s'] for r in rs]):.0f} |")
    return lines


def paired_difference(recs: list[dict[str, Any]], arms: list[str], key: str = "tvd2") -> dict[str, Any] | None:
    """mix minus the best single source (lowest mean ``key``), paired by seed: mean, standard error, n."""
    singles = [a for a in arms if a != "mix" and any(r["arm"] == a for r in recs)]
    if "mix" not in arms or not singles:
        return None
    best = min(singles, key=lambda a: np.mean([r[key] for r in recs if r["arm"] == a]))
    by = {a: {r["seed"]: r[key] for r in recs if r["arm"] == a} for a in ("mix", best)}
    seeds = sorted(set(by["mix"]) & set(by[best]))
    if not seeds:
        return None
    d = np.array([by["mix"][s] - by[best][s] for s in seeds])
    se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
    return {"best": best, "mean": float(d.mean()), "se": se, "n": int(d.size), "wins": int((d <= 0).sum())}


def personality(name: str) -> Any:
    """A loopback personality by name; ``public`` = the stand-in for an LLM that knows the domain: it
    writes rows of the PUBLIC slice of adult.test (its last 1,000 rows, the public split the DP-SGD peer
    pre-trains on; never adult.data, the private table)."""
    if name != "public":
        return name
    from benchmarks.peers.run_one import N_PUBLIC
    from pe_tabular.tables.testing.loopback import Personality

    return Personality("public", examples=load_adult("test").iloc[-N_PUBLIC:].reset_index(drop=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--population", type=lambda s: [int(x) for x in s.split(",")], default=None)
    ap.add_argument("--k", type=int, default=None)
    ap.add_argument("--personalities", default="typical,coarse")
    ap.add_argument("--floor", type=float, default=0.05)
    ap.add_argument("--sharpness", type=float, default=None, help="mixture allocation sharpness (default: library's)")
    ap.add_argument("--arms", default="statistical,llm:A,llm:B,mix")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rows-per-request", type=int, default=40, help="rows per LLM request (random and vary)")
    ap.add_argument("--jsonl", default=None, help="append every run's record here")
    ap.add_argument("--results", default=None, help="append the summary section to this RESULTS.md")
    ap.add_argument("--from-jsonl", default=None, help="summarise the records in this file instead of running")
    args = ap.parse_args()
    pa, pb = args.personalities.split(",")
    arms = args.arms.split(",")
    if args.from_jsonl:
        recs = [json.loads(line) for line in Path(args.from_jsonl).read_text().splitlines() if line.strip()]
        table = summarise(recs, arms)
        print("\n".join(table))
        if args.results:
            write_results(Path(args.results), recs, table, args, pa, pb)
        return 0
    os.environ["PE_TABULAR_MIX_FLOOR"] = str(args.floor)
    if args.sharpness is not None:
        os.environ["PE_TABULAR_MIX_SHARPNESS"] = str(args.sharpness)
    schema, train = adult_schema(), load_adult("train")
    seeds = [int(s) for s in args.seeds.split(",")]
    recs = []
    with LoopbackServer(personality(pa)) as a, LoopbackServer(personality(pb)) as b, \
            tempfile.TemporaryDirectory() as tmp:
        la, lb = f"llm:{a.base_url}:{a.model}", f"llm:{b.base_url}:{b.model}"
        specs = {"statistical": "statistical", "llm:A": la, "llm:B": lb, "mix": f"mix:statistical,{la},{lb}"}
        for seed in seeds:
            for arm in arms:
                n0 = len(a.chat_requests()) + len(b.chat_requests())
                rec = run_arm(arm, specs[arm], seed, args, train, schema, Path(tmp))
                rec["http_requests"] = len(a.chat_requests()) + len(b.chat_requests()) - n0
                recs.append(rec)
                if args.jsonl:
                    with open(args.jsonl, "a") as f:
                        f.write(json.dumps(rec) + "\n")
    table = summarise(recs, arms)
    print("\n".join(table))
    if args.results:
        write_results(Path(args.results), recs, table, args, pa, pb)
    return 0


def write_results(path: Path, recs, table, args, pa: str, pb: str) -> None:
    import openai
    import pandas

    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout
    cpu = cpu.split(":", 1)[-1].strip() or platform.processor()
    mix = [r for r in recs if r["arm"] == "mix"]
    shares = {}
    for r in mix:
        for t, s in enumerate(r["source_share"], 1):
            for k, v in s.items():
                shares.setdefault(t, {}).setdefault(k, []).append(v)
    share_lines = ["| iteration | " + " | ".join(sorted({k for s in shares.values() for k in s})) + " |"]
    share_lines.append("|---" * (1 + len(sorted({k for s in shares.values() for k in s}))) + "|")
    for t, s in sorted(shares.items()):
        share_lines.append(f"| {t} | " + " | ".join(f"{np.mean(s.get(k, [0])):.3f}" for k in
                                                   sorted({k for s in shares.values() for k in s})) + " |")
    cmd = " ".join(["nice -n 10 python benchmarks/mixture.py", *sys.argv[1:]])
    diff = paired_difference(recs, sorted({r["arm"] for r in recs}))
    verdict = []
    if diff is not None:
        ok = diff["mean"] <= 0
        verdict = ["", f"Paired by seed, mix − {diff['best']} (the best single source) on 2-way TVD: "
                   f"{diff['mean']:+.4f} ± {diff['se']:.4f} (standard error, n = {diff['n']} seeds); the mixture is "
                   f"at least as good on {diff['wins']} of {diff['n']} seeds. Verdict: "
                   + ("**met** (mean difference ≤ 0)." if ok else "**not met** (mean difference > 0)."), ""]
    text = "\n".join([
        "", HEADING, "",
        f"Command: `{cmd}`  ",
        f"Machine: {cpu}, {os.cpu_count()} CPUs; Python {platform.python_version()}, numpy {np.__version__}, "
        f"pandas {pandas.__version__}, openai {openai.__version__}.  ",
        f"Private = adult.data (32,561 rows), ε = {args.epsilon}, δ = 1e-5, seeds {args.seeds}; PESynthesizer "
        f"settings {mix[0]['iterations'] if mix else recs[0]['iterations']} iterations, population "
        f"{recs[0]['population']}; mixture floor {args.floor}. LLM endpoints: loopback stand-in personalities "
        f"A = `{pa}`, B = `{pb}` (test/demo tool, pe_tabular/tables/testing/loopback.py) over real HTTP. Mixture "
        f"allocation: sharpness η = {os.environ.get('PE_TABULAR_MIX_SHARPNESS', DEFAULT_SHARPNESS)}, no floor in "
        "the last generation, first population n per source (pe_tabular/backends/mixture.py). Privacy noise is "
        "fresh OS entropy in every run (seeds fix candidates, not noise), so arms differ by noise too.", "",
        *table, *verdict, "", "Noisy vote share per source in the mixture (mean over seeds):", "", *share_lines, ""])
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    start = old.find("\n" + HEADING)
    if start >= 0:  # replace this study's previous section, keep every other study
        end = old.find("\n## ", start + 1)
        old = old[:start] + (old[end:] if end >= 0 else "\n")
    from pe_tabular.io_utils import atomic_write_text

    atomic_write_text(path, old.rstrip("\n") + "\n" + text)


if __name__ == "__main__":
    raise SystemExit(main())
