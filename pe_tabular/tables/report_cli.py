"""``pe-tabular report``: the HTML report of a synthetic table, from files.

The privacy ledger is picked up from ``SYNTH.privacy.json`` (what ``synth`` writes beside its output)
unless ``--ledger`` names another file; per-iteration curves need ``--history`` (a JSON list, or a
``settings.json`` saved by ``PESynthesizer.save``), since CSV output alone does not carry them.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from pe_tabular.cli_support import (
    EXIT_OK,
    Formatter,
    UsageError,
    add_common,
    check_html_out,
    emit,
    read_history,
    read_json,
    refuse_overwriting_inputs,
)

log = logging.getLogger(__name__)


def load_ledger(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.ledger:
        led = read_json(Path(args.ledger), "--ledger")
    else:
        beside = Path(args.synth).with_suffix(".privacy.json")
        led = read_json(beside, "--ledger") if beside.is_file() else None
    if led is not None and (not isinstance(led, dict) or "epsilon" not in led or "releases" not in led):
        raise UsageError("--ledger must be the privacy JSON that `pe-tabular synth` writes (OUT.privacy.json), "
                         "with 'epsilon' and 'releases'")
    return led


def _report(args: argparse.Namespace) -> int:
    from pe_tabular.tables.io import check_target, read_table
    from pe_tabular.tables.report import write_report
    from pe_tabular.tables.schema import Schema, validate

    out = check_html_out(args.out)
    refuse_overwriting_inputs([out], [args.real, args.synth, args.schema, args.test, args.ledger, args.history])
    schema = Schema.load(args.schema)
    ledger = load_ledger(args)
    history = read_history(args.history)
    def load(path: str, flag: str) -> Any:
        raw = read_table(path, flag, args.encoding)
        df = validate(raw, schema, "drop")
        if len(df) < len(raw):  # no counts in a log (privacy rule 7); the columns are named by validate's warnings
            log.warning("%s %s: some rows do not fit the schema and are left out of the report", flag, path)
        return df

    real, synth = load(args.real, "REAL"), load(args.synth, "SYNTH")
    test = load(args.test, "--test") if args.test else None
    target = args.target or schema.label
    if test is not None and target is None:
        raise UsageError("--test needs --target COLUMN (or a schema with a label)")
    if test is not None:
        check_target(schema, target)
    from math import comb

    from pe_tabular.progress import bar
    from pe_tabular.tables.report import report_ways

    t0 = time.time()
    total = sum(comb(len(schema.columns), k) for k in report_ways(schema))
    with bar(total, "evaluating marginals", not (args.quiet or args.json)) as b:
        write_report(real, synth, schema, out, ledger=ledger, history=history, test=test, target=target,
                     progress=b.update)
    wall = time.time() - t0
    emit(args, {"out": str(out), "bytes": out.stat().st_size, "wall_seconds": wall, "ledger": ledger is not None,
                "history": history is not None},
         f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in {wall:.0f} s; open it in any browser (self-contained)."
         "\nIt shows the REAL data's distributions: keep it with the private data.")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report", formatter_class=Formatter, help="self-contained HTML report: real vs synthetic, ledger, curves",
        description="Write one HTML file (figures embedded, no network needed to view it) comparing a synthetic "
                    "table with the real one: column distributions, association heat maps, 1/2/3-way TVD, TSTR, "
                    "distance to closest record, the privacy ledger and the evolution curves.",
        epilog="examples:\n"
               "  pe-tabular report adult.csv synth.csv --schema s.json --out report.html\n"
               "  pe-tabular report adult.csv synth.csv --schema s.json --test adult_test.csv --target income "
               "--out report.html\n"
               "  pe-tabular report real.csv synth.csv --schema s.json --ledger synth.privacy.json "
               "--history run/settings.json --out r.html\n\n"
               "The ledger defaults to SYNTH.privacy.json when it exists. `pe-tabular synth --report` and\n"
               "`pe-tabular demo` write the same report directly (with the evolution curves).")
    p.add_argument("real", help="the real (private) training table, .csv or .parquet")
    p.add_argument("synth", help="the synthetic table, .csv or .parquet")
    p.add_argument("--encoding", default="utf-8", help="text encoding of CSV inputs (e.g. latin-1)")
    p.add_argument("--schema", required=True, help="the public schema the synthetic data was made with")
    p.add_argument("--test", help="a real holdout table: enables TSTR and the distance-to-closest-record check")
    p.add_argument("--target", help="class column for TSTR (default: the schema's label)")
    p.add_argument("--ledger", help="privacy JSON written by synth (default: SYNTH.privacy.json if present)")
    p.add_argument("--history", help="per-iteration JSON (list, or a PESynthesizer settings.json) for the curves")
    p.add_argument("--out", required=True, help="the .html file to write")
    add_common(p)
    p.set_defaults(func=_report)
