"""Table commands of ``pe-tabular``: synth, schema infer, evaluate, demo."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from pe_tabular.checkpoint import input_fingerprint
from pe_tabular.cli_support import (
    EXIT_OK,
    Formatter,
    UsageError,
    add_common,
    add_scale_flags,
    check_html_out,
    delta_arg,
    emit,
    epsilon_arg,
    ledger_path,
    positive_float,
    positive_int,
    refuse_overwriting_inputs,
    timing_record,
)
from pe_tabular.io_utils import atomic_write_json
from pe_tabular.privacy.accountant import gdp_mu
from pe_tabular.source import DEFAULT_CHUNK_ROWS
from pe_tabular.tables.cells import add_na_values_flag, blank_missing, na_strings
from pe_tabular.tables.io import check_out, read_table, scan_table, write_chunks, write_table
from pe_tabular.tables.schema import Schema

BACKENDS = ("statistical", "llm", "sdv", "mix")


def _int_list(s: str) -> int | list[int]:
    try:
        vals = [int(v) for v in s.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--population takes an integer or a comma list, got {s!r}") from None
    if min(vals) < 1:
        raise argparse.ArgumentTypeError(f"--population sizes must be >= 1, got {s!r}")
    return vals[0] if len(vals) == 1 else vals


def add_encoding_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoding", default="utf-8", help="text encoding of CSV inputs (e.g. latin-1, cp1252)")


def add_privacy_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epsilon", type=epsilon_arg(), default=1.0, help="total privacy budget ('inf' = no noise)")
    p.add_argument("--delta", type=delta_arg, default=1e-5)


def add_run_flags(p: argparse.ArgumentParser) -> None:
    d = synth_defaults()  # the flags default to None (= these measured defaults); --help says the numbers
    p.add_argument("--iterations", type=positive_int("--iterations"), default=None,
                   help=f"PE iterations (votes) (default: {d['iterations']})")
    p.add_argument("--population", type=_int_list, default=None,
                   help=f"candidates per iteration (int or list) (default: {d['population']})")
    p.add_argument("--k", type=positive_int("--k"), default=None,
                   help=f"nearest candidates each private row votes for (default: {d['k']})")
    p.add_argument("--seed", type=int, default=None,
                   help="fixes every random choice except the privacy noise (default: a fresh seed per run)")
    p.add_argument("--checkpoint", help="directory for per-iteration checkpoints")
    p.add_argument("--resume", action="store_true", help="continue the run in --checkpoint")
    p.add_argument("--voter", choices=["numpy", "numba", "jax", "auto"], default="auto")
    p.add_argument("--budget", choices=["uniform", "geometric", "adaptive"], default="uniform")


# ------------------------------------------------------------------------------------------------
def synth_defaults() -> dict[str, Any]:
    """Defaults chosen by measurement (benchmarks/RESULTS.md). Public settings: they never depend on the
    number of private rows, which is private (privacy rule 6)."""
    return {"iterations": 2, "population": 16000, "k": 16}


def run_synth(data: pd.DataFrame | str | Path, schema: Schema, args: argparse.Namespace, quiet: bool
              ) -> tuple[Any, pd.DataFrame]:
    """Fit, then sample the whole output as one frame (demo, --report)."""
    syn = fit_synth(data, schema, args, quiet)
    from pe_tabular.progress import stage

    with stage("sampling the synthetic rows", not quiet):
        return syn, syn.sample(args.samples)  # default: the released noisy row count, never len(df)


def fit_synth(data: pd.DataFrame | str | Path, schema: Schema, args: argparse.Namespace, quiet: bool) -> Any:
    """The fitted synthesizer. ``data``: a frame (demo), or the path of the private table / folder, streamed in
    chunks of ``args.chunk_rows`` under ``args.max_memory`` (it is never read as one frame)."""
    from pe_tabular.memory import MemoryGuard
    from pe_tabular.progress import ProgressBars
    from pe_tabular.tables.synthesizer import PESynthesizer

    d = synth_defaults()
    iterations = args.iterations or d["iterations"]
    population = args.population or d["population"]
    bars = ProgressBars(enabled=not quiet)
    label: Any = True
    if getattr(args, "label", None):
        label = args.label
        schema = schema.with_label(label)  # backends condition on schema.label; names a bad --label
    if getattr(args, "no_label", False):
        label = None
    backend: Any = args.backend
    if args.backend != "statistical":
        from pe_tabular.tables.generators.factory import spec_from_flags

        backend = spec_from_flags(args.backend, getattr(args, "mix", None), getattr(args, "llm_base_url", None),
                                  getattr(args, "llm_model", None), getattr(args, "public_data", None))
    syn = PESynthesizer(schema, args.epsilon, args.delta, backend=backend, iterations=iterations,
                        population=population, k=args.k or d["k"], budget=args.budget, label=label,
                        voter=args.voter, on_invalid=args.on_invalid, seed=args.seed, on_event=bars,
                        vote_fn=_vote_fn(args), target=getattr(args, "target", None),
                        structure=getattr(args, "structure", "tree"))
    chunk_rows = getattr(args, "chunk_rows", None) or DEFAULT_CHUNK_ROWS
    max_memory = getattr(args, "max_memory", None)
    try:
        if not isinstance(data, pd.DataFrame):
            data = scan_table(data, schema, encoding=getattr(args, "encoding", "utf-8"), chunk_rows=chunk_rows,
                              guard=MemoryGuard(max_memory), on_event=bars)
        show = (lambda m: print(m, file=sys.stderr)) if getattr(args, "show_invalid", False) else None
        syn.fit(data, checkpoint=args.checkpoint, resume=args.resume,
                input_fingerprint=input_fingerprint(getattr(args, "data", None)), show_invalid=show,
                chunk_rows=chunk_rows, max_memory=max_memory, na_values=getattr(args, "na_values", None) or ())
    finally:
        bars.close()
        if syn.vote_fn is not None and hasattr(syn.vote_fn, "close"):
            syn.vote_fn.close()  # shut a local Dask cluster down
    return syn


def _vote_fn(args: argparse.Namespace) -> Any:
    """Where the votes run: None (this process) or a Dask cluster (``--dask-scheduler`` / ``--dask-local``)
    over which the encoded private rows are spread chunk by chunk (``dask_source.DaskVoting``)."""
    if getattr(args, "dask_scheduler", None) or getattr(args, "dask_local", None):
        from pe_tabular.dask_source import DaskVoting

        return DaskVoting.connect(scheduler=args.dask_scheduler or None, local=args.dask_local)
    return None


def default_on_invalid(schema: Schema) -> str:
    """``clip`` for a DP-estimated schema (``dp_cost`` set): its bounds are DP quantiles that leave about 1 % of
    the rows outside by design and its rare categories sit in an other bucket, so the README's workflow would
    otherwise stop on the very file the schema was estimated from; clipping into DP bounds is how such runs
    bound every row's contribution. ``error`` for a public schema, where a value outside it is a mistake the
    user wants to hear about before any budget is spent."""
    return "clip" if schema.dp_cost else "error"


def _synth(args: argparse.Namespace) -> int:
    out = check_out(args.out)
    report_html = check_html_out(args.report, "--report") if args.report else None
    refuse_overwriting_inputs([out, ledger_path(out), report_html], [args.data, args.schema])
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint DIR (the directory of the interrupted run)")
    schema = Schema.load(args.schema)
    args.on_invalid = args.on_invalid or default_on_invalid(schema)
    t0 = time.time()
    quiet = args.quiet or args.json
    synth: pd.DataFrame | None = None
    if report_html is not None:  # the report compares the whole output with the real data: both in memory
        syn, synth = run_synth(args.data, schema, args, quiet)
        write_table(synth, out, progress=not quiet)
        rows = len(synth)
    else:  # input streamed in chunks (never one frame), output sampled and written in chunks
        syn = fit_synth(args.data, schema, args, quiet)
        total = args.samples or syn.n_hat_  # public: --samples or the released noisy count
        rows = write_chunks(syn.sample_chunks(args.samples), out, total, progress=not quiet)
    privacy_path = ledger_path(out)
    report = syn.privacy_report()
    report["timing"] = timing_record(time.time() - t0)
    atomic_write_json(privacy_path, report)
    note = ""
    if report_html is not None:  # from the two files, as `pe-tabular report` does: the same figures
        from pe_tabular.tables.report_cli import report_files

        report_files(args.data, out, schema, report_html, encoding=args.encoding, ledger=report,
                     history=syn.result_.history, na_values=args.na_values or ())
        note = (f"\nwrote {report_html}: it shows the REAL data's exact distributions (not differentially "
                "private): keep it with the private data, never beside the synthetic table you share")
    eps = report["epsilon"]
    emit(args, {"out": str(out), "privacy": str(privacy_path), "rows": rows, "epsilon": eps,
                "delta": report["delta"], "mu": report["mu"], "timing": report["timing"],
                "report": str(report_html) if report_html else None},
         f"wrote {rows} rows to {out}\n(epsilon, delta) = ({eps if isinstance(eps, str) else f'{eps:.4g}'}, "
         f"{report['delta']:g}) for the whole run; ledger in {privacy_path}" + note)
    return EXIT_OK


# ------------------------------------------------------------------------------------------------
def _parse_types(s: str | None, columns: list[str], required: bool) -> dict[str, str]:
    if not s:
        if required:
            raise UsageError("schema infer --dp-epsilon needs --types NAME=TYPE,...: column types are public "
                             "input and are never read from private data")
        return {}
    out = {}
    for item in s.split(","):
        if "=" not in item:
            raise UsageError(f"--types entry {item!r} must look like NAME=TYPE")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    unknown = set(out) - set(columns)
    if unknown:
        raise UsageError(f"--types names columns {sorted(unknown)} that the file does not have")
    from pe_tabular.tables.schema import TYPES

    bad = sorted({v for v in out.values() if v not in TYPES})
    if bad:
        raise UsageError(f"--types: unknown types {bad}; use one of {sorted(TYPES)}")
    return out


def _schema_infer(args: argparse.Namespace) -> int:
    """Describe a table as a schema. DP mode reads the private file as text (a cell's value never depends on
    the other rows: no pandas type guessing) and takes types from --types; public mode reads the public table
    with pandas' types. Both refuse a table they cannot describe; nothing is written unless it succeeds."""
    from pe_tabular.tables.infer_checks import check_delimiter, check_rows, warn_public_columns
    from pe_tabular.tables.schema import describe

    refuse_overwriting_inputs([args.out], [args.data])
    check_delimiter(args.data, "DATA", args.encoding)
    quiet = args.quiet or args.json
    if args.dp_epsilon is not None:
        from pe_tabular.privacy.noise import noise_source
        from pe_tabular.tables.schema_dp import infer_dp
        from pe_tabular.tables.text_table import read_text_table

        df = blank_missing(read_text_table(args.data, encoding=args.encoding), na_strings(args.na_values or ()))
        check_rows(df, "DATA", args.data)
        types = _parse_types(args.types, list(df.columns), required=True)
        gdp_mu(args.dp_epsilon, args.delta)
        schema = infer_dp(df, types, args.dp_epsilon, args.delta, noise_source(), label=args.label)
        head = (f"pe-tabular: schema estimated with ({args.dp_epsilon:g}, {args.delta:g})-DP; the cost is recorded "
                "in 'dp_cost' and charged again to any synth run that uses this schema. Bounds are DP quantiles "
                "rounded outward (synth clips values beyond them: its default with a DP schema); categories that did "
                "not clear the DP threshold go to each column's '(other)' bucket. Per column:")
    else:
        from pe_tabular.tables.schema import infer_public

        df = blank_missing(read_table(args.data, encoding=args.encoding), na_strings(args.na_values or (), csv=False))
        check_rows(df, "DATA", args.data)
        types = _parse_types(args.types, list(df.columns), required=False)
        print("pe-tabular: warning: `schema infer` without --dp-epsilon reads categories and bounds straight from "
              "the file. Run it on PUBLIC data only; on private data the schema itself leaks. Use --dp-epsilon for "
              "private data.", file=sys.stderr)
        warn_public_columns(df[[c for c in df.columns if c not in types]])
        schema = infer_public(df, label=args.label, types=types)
        head = ("pe-tabular: read from the file: categories (numeric order where they are numbers; long tails in an "
                "'(other)' bucket), bounds (the range seen, rounded outward), decimal grids (for dates the day, hour, "
                "minute or second they are written at) and special values (values holding >= 5% of the rows); "
                "--types overrides a column's type. Per column:")
    if not quiet:
        print("\n".join([head, *describe(schema)]), file=sys.stderr)
    if args.out:
        schema.save(args.out)  # atomic: a failed run leaves no file, an interrupted one no half schema
    else:
        sys.stdout.write(schema.to_json())
    return EXIT_OK


# ------------------------------------------------------------------------------------------------
def _evaluate(args: argparse.Namespace) -> int:
    from math import comb

    from pe_tabular.progress import bar
    from pe_tabular.tables.evaluation import evaluate
    from pe_tabular.tables.report import report_ways
    from pe_tabular.tables.report_cli import read_scored, resolve_target

    schema = Schema.load(args.schema)
    na = args.na_values or ()
    real = read_scored(args.real, "REAL", schema, args.encoding, na)
    synth = read_scored(args.synth, "SYNTH", schema, args.encoding, na)
    test = read_scored(args.test, "--test", schema, args.encoding, na) if args.test else None
    target = resolve_target(schema, test, args.target)
    total = sum(comb(len(schema.columns), k) for k in report_ways(schema))
    with bar(total, "evaluating marginals", not (args.quiet or args.json)) as b:
        res = evaluate(real, synth, schema, test, target, ways=report_ways(schema), progress=b.update)
    emit(args, res, format_evaluation(res), answer=True)
    return EXIT_OK


def _fit_line(name: str, fit: dict[str, Any]) -> str | None:
    if not fit.get("rows_outside_schema"):
        return None
    cols = ", ".join(f"{c} {k}" for c, k in fit["outside_schema"].items())
    return (f"{name} rows with a value outside the schema: {fit['rows_outside_schema']} "
            f"({fit['rows_outside_schema'] / max(fit['rows'], 1):.1%}; scored in each column's '(outside schema)' "
            f"cell; values per column: {cols})")


def _ml_line(name: str, m: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    return f"  train on {name} acc {f(m['accuracy'])}  macro-F1 {f(m['f1'])}  AUC {f(m['auc'])}" + \
        (f"  ({m['note']})" if m.get("note") else "")


def format_evaluation(res: dict[str, Any]) -> str:
    lines = [f"rows scored: real {res['n_real']} (every row of the file), synthetic {res['n_synth']}"]
    lines += [ln for ln in (_fit_line("real", res.get("real_fit", {})), _fit_line("synthetic",
                                                                                   res.get("synth_fit", {}))) if ln]
    if res.get("missing_share"):
        lines.append("missing share (real / synthetic): " + ", ".join(
            f"{c} {m['real']:.1%} / {m['synth']:.1%}" for c, m in res["missing_share"].items()))
    lines.append("TVD      mean    max")
    for k in (1, 2, 3):
        if f"tvd{k}_mean" in res:
            lines.append(f"{k}-way   {res[f'tvd{k}_mean']:.4f}  {res[f'tvd{k}_max']:.4f}")
    if "tstr" in res:
        lines.append("ML efficacy (HistGradientBoosting, tested on the real test split)")
        lines += [_ml_line("synthetic:", res["tstr"]), _ml_line("real:     ", res["trtr"])]
    if "dcr" in res:
        d = res["dcr"]
        from pe_tabular.tables.encoder import Q

        lines.append(f"distance to the closest training row, median, in columns that differ: synthetic "
                     f"{d['synth_median'] / Q:.2f} vs real holdout {d['holdout_median'] / Q:.2f}")
        lines.append(f"rows identical to a training row: synthetic {d['synth_exact_copies']:.2%} vs real holdout "
                     f"{d['holdout_exact_copies']:.2%} (real rows repeat too when columns have few values: the "
                     "holdout's share is the yardstick)")
    if res.get("scope"):
        lines.append(f"({res['scope']})")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    from pe_tabular.tables.datasets import adult_schema, load_adult
    from pe_tabular.tables.evaluation import evaluate

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    schema = adult_schema()
    train, test = load_adult("train"), load_adult("test")
    quiet = args.quiet or args.json
    if not quiet:
        print(f"demo: UCI Adult (CC BY 4.0, built in) as the private table, epsilon={args.epsilon}, delta={args.delta}",
              file=sys.stderr)
    ns = argparse.Namespace(epsilon=args.epsilon, delta=args.delta, iterations=None, population=None, k=None,
                            samples=None, seed=args.seed, checkpoint=None, resume=False, voter="auto",
                            budget="uniform", on_invalid="error", backend="statistical", label=None, no_label=False)
    t0 = time.time()
    syn, synth = run_synth(train, schema, ns, quiet)
    wall = time.time() - t0
    out = out_dir / "adult_synth.csv"
    write_table(synth, out)
    report = syn.privacy_report()
    report["timing"] = timing_record(wall)
    atomic_write_json(out_dir / "adult_synth.privacy.json", report)
    res = evaluate(train, synth, schema, test, "income")
    res["wall_seconds"] = wall
    atomic_write_json(out_dir / "evaluation.json", res)
    if not args.no_report:
        from pe_tabular.tables.report import write_report

        write_report(train, synth, schema, out_dir / "report.html", ledger=report, history=syn.result_.history,
                     evaluation=res, test=test, target="income")
    emit(args, {"out": str(out), "wall_seconds": wall, "privacy": report, "evaluation": res},
         f"wrote {out} in {wall:.0f} s; (epsilon, delta) = ({report['epsilon']:.4g}, {report['delta']:g})\n"
         + format_evaluation(res))
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """The tables wing's commands: synth, schema, evaluate, demo, report."""
    p = sub.add_parser("synth", formatter_class=Formatter, help="synthesize a private table",
                       epilog="examples:\n  pe-tabular synth adult.csv --schema s.json --epsilon 1 --out synth.csv\n"
                              "  pe-tabular synth data.parquet --schema s.json --checkpoint ck --out s.parquet\n"
                              "  pe-tabular synth data.csv --schema s.json --checkpoint ck --resume --out s.csv")
    p.add_argument("data", help="private table (.csv, .csv.gz or .parquet), or a folder of such files; read in "
                   "chunks, never whole")
    add_encoding_flag(p)
    p.add_argument("--schema", required=True, help="public schema (JSON/YAML; see `pe-tabular schema infer`)")
    p.add_argument("--out", required=True, help="synthetic table (.csv or .parquet); OUT.privacy.json beside it")
    add_privacy_flags(p)
    add_run_flags(p)
    p.add_argument("--samples", type=positive_int("--samples"), default=None,
                   help="rows to write (default: a noisy count of the input rows, released with 1%% of the budget)")
    p.add_argument("--show-invalid", action="store_true",
                   help="LOCAL USE ONLY: print offending values and row numbers of invalid input to this terminal "
                        "(never written to any file; they are private)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--label", help="class column for class-conditional PE (default: the schema's label)")
    g.add_argument("--no-label", action="store_true", help="ignore the schema's label")
    g.add_argument("--target", metavar="COL",
                   help="the column your analysis predicts: every pair with it is measured (and raked onto), and a "
                        "class column becomes the class-conditional label (a number column turns that off); "
                        "default: none (the schema's label, if any, is the class column)")
    p.add_argument("--structure", choices=("tree", "bn2"), default="tree",
                   help="dependence structure the generator starts from: a Chow-Liu tree, or bn2, a Bayesian network "
                        "whose columns may have two parents where a DP score says a three-way interaction pays "
                        "(PrivBayes/AIM-style; benchmarks/RESULTS.md, 'structure') (default: tree)")
    p.add_argument("--backend", choices=BACKENDS, default="statistical")
    p.add_argument("--mix", help="for --backend mix: statistical,llm:URL:MODEL,sdv:PUBLIC.csv")
    p.add_argument("--llm-base-url", help="OpenAI-compatible endpoint for llm (default $OPENAI_BASE_URL); "
                   "key from $OPENAI_API_KEY (see docs/llm.md)")
    p.add_argument("--llm-model", help="model name the endpoint serves, for llm")
    p.add_argument("--public-data", help="PUBLIC table (.csv/.parquet) the sdv backend is fitted on")
    p.add_argument("--on-invalid", choices=["error", "drop", "clip"], default=None,
                   help="a row that does not fit the schema stops the run before any release (error; the default "
                        "with a public schema), or is dropped / clipped silently (clip: the default with a DP "
                        "schema, whose bounds are estimates that leave ~1%% of rows outside by design): whether any "
                        "row was is private (--show-invalid shows them here). A missing value of a nullable column "
                        "is data, never invalid")
    add_na_values_flag(p)
    p.add_argument("--report", metavar="FILE.html",
                   help="also write a self-contained HTML report comparing the REAL and the synthetic data; it shows "
                        "the real data's exact distributions, so give it a place beside the private data, not "
                        "beside the output you share")
    p.add_argument("--dask-scheduler", help="vote on a Dask cluster at this address")
    p.add_argument("--dask-local", type=int, help="vote on a local Dask cluster of N worker processes")
    add_scale_flags(p, DEFAULT_CHUNK_ROWS)
    add_common(p)
    p.set_defaults(func=_synth)

    s = sub.add_parser("schema", formatter_class=Formatter, help="schema tools",
                       epilog="examples:\n  pe-tabular schema infer public.csv > schema.json\n"
                              "  pe-tabular schema infer private.csv --dp-epsilon 0.1 \\\n"
                              "      --types age=integer,sex=categorical,..."
                       )
    ss = s.add_subparsers(dest="schema_command", required=True)
    i = ss.add_parser("infer", formatter_class=Formatter, help="write a schema from a PUBLIC table (or DP)",
                      epilog="examples:\n  pe-tabular schema infer public.csv --label income --out schema.json\n"
                             "  pe-tabular schema infer private.csv --dp-epsilon 0.1 --types a=integer,b=categorical")
    i.add_argument("data")
    add_encoding_flag(i)
    i.add_argument("--out", help="write the schema here (atomically: a failed run leaves no file) instead of stdout")
    i.add_argument("--label")
    i.add_argument("--dp-epsilon", type=positive_float("--dp-epsilon"), help="estimate from PRIVATE data with DP")
    i.add_argument("--delta", type=delta_arg, default=1e-5)
    i.add_argument("--types", help="NAME=TYPE,...: column types (required with --dp-epsilon; overrides otherwise)")
    add_na_values_flag(i)
    i.add_argument("--seed", type=int, default=None, help="accepted for symmetry with synth; the DP noise is "
                   "never seeded")
    add_common(i)
    i.set_defaults(func=_schema_infer)

    e = sub.add_parser("evaluate", formatter_class=Formatter, help="fidelity/utility of a synthetic table",
                       description="Compare a synthetic table with the real one: 1/2/3-way marginal TVD, and with "
                                   "--test, TSTR and distance to closest record. Every real row is scored: a value "
                                   "outside the schema counts in its column's '(outside schema)' cell, a missing "
                                   "value in '(missing)'. An operator-side tool: its figures are exact statistics "
                                   "of the real data (not differentially private); keep them with it.",
                       epilog="examples:\n  pe-tabular evaluate real.csv synth.csv --schema s.json\n"
                              "  pe-tabular evaluate real.csv synth.csv --schema s.json --test t.csv --target y --json")
    e.add_argument("real", help="the real (private) table the synthetic one was made from (.csv/.parquet)")
    e.add_argument("synth", help="the synthetic table (.csv/.parquet)")
    add_encoding_flag(e)
    e.add_argument("--schema", required=True, help="the public schema both tables follow (JSON/YAML)")
    e.add_argument("--test", help="a real held-out table: adds ML efficacy (train on synthetic, test on real) and "
                                  "distance to closest record against it")
    e.add_argument("--target", help="class column for the ML efficacy (default: the schema's label)")
    add_na_values_flag(e)
    add_common(e)
    e.set_defaults(func=_evaluate)

    d = sub.add_parser("demo", formatter_class=Formatter, help="synthesize the built-in UCI Adult at epsilon=1",
                       epilog="examples:\n  pe-tabular demo --out demo-out\n  pe-tabular demo --epsilon 3 --json")
    d.add_argument("--out", default="demo-out")
    add_privacy_flags(d)
    d.add_argument("--seed", type=int, default=0, help="fixes every random choice except the privacy noise")
    d.add_argument("--no-report", action="store_true", help="skip the HTML report (OUT/report.html)")
    add_common(d)
    d.set_defaults(func=_demo)

    from pe_tabular.tables import llm_cli, report_cli

    report_cli.add_parser(sub)
    llm_cli.add_parser(sub)


__all__ = ["add_parser", "json"]
