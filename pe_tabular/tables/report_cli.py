"""``pe-tabular report``: the HTML report of a synthetic table, from files.

The privacy ledger is picked up from ``SYNTH.privacy.json`` (what ``synth`` writes beside its output)
unless ``--ledger`` names another file; per-iteration curves need ``--history`` (a JSON list, or a
``settings.json`` saved by ``PESynthesizer.save``), since CSV output alone does not carry them.

:func:`read_scored` and :func:`report_files` are the one path from files to figures that ``report``,
``synth --report`` and ``evaluate`` share, so the same two files always give the same figures: every row
of each file is read and scored (none is dropped for not fitting the schema).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

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
from pe_tabular.tables.cells import add_na_values_flag

if TYPE_CHECKING:
    from pe_tabular.tables.schema import Schema

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


def read_scored(path: str | Path, flag: str, schema: Schema, encoding: str = "utf-8",
                na_values: Sequence[str] = ()) -> pd.DataFrame:
    """Every row of a table file (or folder of files) with the schema's columns, raw, for scoring: a value
    outside the schema stays, to be counted in its column's '(outside schema)' cell; ``na_values`` (synth's
    ``--na-values``) are missing here too."""
    from pe_tabular.tables.cells import blank_missing, na_strings
    from pe_tabular.tables.io import read_all
    from pe_tabular.tables.schema import check_header

    df = blank_missing(read_all(path, flag, encoding), na_strings(na_values, csv=False))
    if len(df) == 0:
        raise UsageError(f"{flag} {path} has a header but no data rows")
    extra = check_header([str(c) for c in df.columns], schema, where=f"{flag} {path}")
    if extra:
        log.warning("%s %s: columns %s are not in the schema and are not evaluated", flag, path, extra)
    return df[schema.names]


def resolve_target(schema: Schema, test: pd.DataFrame | None, target: str | None) -> str | None:
    """The TSTR class column: ``--target``, else the schema's label; checked when there is a test table."""
    from pe_tabular.tables.io import check_target

    target = target or schema.label
    if test is not None and target is None:
        raise UsageError("--test needs --target COLUMN (or a schema with a label)")
    if test is not None:
        check_target(schema, target)
    return target


def report_files(real: str | Path, synth: str | Path, schema: Schema, out: Path, *, encoding: str = "utf-8",
                 test: str | Path | None = None, target: str | None = None,
                 ledger: Mapping[str, Any] | None = None, history: Sequence[Mapping[str, Any]] | None = None,
                 progress: Callable[[int], None] | None = None, na_values: Sequence[str] = ()) -> Path:
    """The HTML report of two files (``report`` and ``synth --report`` both come here)."""
    from pe_tabular.tables.report import write_report

    real_df = read_scored(real, "REAL", schema, encoding, na_values)
    synth_df = read_scored(synth, "SYNTH", schema, encoding, na_values)
    test_df = read_scored(test, "--test", schema, encoding, na_values) if test else None
    target = resolve_target(schema, test_df, target)
    return write_report(real_df, synth_df, schema, out, ledger=ledger, history=history, test=test_df,
                        target=target, progress=progress)


def _report(args: argparse.Namespace) -> int:
    from pe_tabular.tables.schema import Schema

    out = check_html_out(args.out)
    refuse_overwriting_inputs([out], [args.real, args.synth, args.schema, args.test, args.ledger, args.history])
    schema = Schema.load(args.schema)
    ledger = load_ledger(args)
    history = read_history(args.history)
    from math import comb

    from pe_tabular.progress import bar
    from pe_tabular.tables.report import report_ways

    t0 = time.time()
    total = sum(comb(len(schema.columns), k) for k in report_ways(schema))
    with bar(total, "evaluating marginals", not (args.quiet or args.json)) as b:
        report_files(args.real, args.synth, schema, out, encoding=args.encoding, test=args.test, target=args.target,
                     ledger=ledger, history=history, progress=b.update, na_values=args.na_values or ())
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
    p.add_argument("real", help="the real (private) training table, .csv or .parquet (or a folder of them); every "
                   "row is shown, a value outside the schema in its column's '(outside schema)' cell")
    p.add_argument("synth", help="the synthetic table, .csv or .parquet")
    p.add_argument("--encoding", default="utf-8", help="text encoding of CSV inputs (e.g. latin-1)")
    p.add_argument("--schema", required=True, help="the public schema the synthetic data was made with")
    p.add_argument("--test", help="a real holdout table: enables TSTR and the distance-to-closest-record check")
    p.add_argument("--target", help="class column for TSTR (default: the schema's label)")
    p.add_argument("--ledger", help="privacy JSON written by synth (default: SYNTH.privacy.json if present)")
    p.add_argument("--history", help="per-iteration JSON (list, or a PESynthesizer settings.json) for the curves")
    p.add_argument("--out", required=True, help="the .html file to write")
    add_na_values_flag(p)
    add_common(p)
    p.set_defaults(func=_report)
