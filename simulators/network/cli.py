"""``pe-tabular traces``: DP synthetic network traces (NetFlow CSV or pcap) and their fidelity report."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger("pe_tabular.traces")

EPILOG = """examples:
  pe-tabular traces synth flows.csv --epsilon 2 --unit flow --time-window 2016-04-11T00:00Z 2016-04-11T09:00Z \\
      --out synth.csv
  pe-tabular traces synth flows-parquet/ --epsilon 2 --unit record --time-window 2016-04-11T00:00Z \\
      2016-04-11T09:00Z --max-memory 4G --chunk-rows 65536 --out synth.csv
  pe-tabular traces synth capture.pcap --epsilon 4 --unit flow --time-window 1431969600 1431969900 --out synth.pcap
  pe-tabular traces synth capture.pcap --level packet --epsilon 4 --time-window 1431969600 1431969900 --out pk.pcap
  pe-tabular traces synth flows.csv --epsilon 2 --time-window 2016-04-11T00:00Z 2016-04-11T09:00Z \\
      --out synth.csv --report synth-report.html
  pe-tabular traces evaluate flows.csv synth.csv --json
  pe-tabular traces evaluate flows.csv synth.csv --report report.html
  pe-tabular traces simulate --n 10000 --time-window 2016-04-11T00:00Z 2016-04-11T09:00Z --out sim.csv

The time window is a public input (a capture's documented period), never read from the private file.
Privacy units: record (one NetFlow record / packet), flow (every record of a bidirectional 5-tuple),
host (every connection of a client address). The (epsilon, delta) guarantee and every release are
written to OUT.privacy.json. A --report FILE.html (self-contained: CDFs, ports, heavy hitters,
prefixes, ledger, evolution) shows REAL-data statistics: keep it with the private data."""


def parse_time(s: str) -> float:
    """Epoch seconds, or an ISO 8601 time (UTC unless it carries an offset), e.g. 2016-04-11T00:00Z."""
    try:
        return float(s)
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--time-window: {s!r} is neither epoch seconds nor an ISO 8601 time") \
            from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


def _is_pcap(path: Path) -> bool:
    from simulators.network.io import PCAP_MAGICS, PCAPNG_MAGIC

    if path.suffix.lower() in (".pcap", ".pcapng", ".cap"):
        return True
    if path.exists():
        with open(path, "rb") as f:
            head = f.read(4)
        return head in PCAP_MAGICS or head == PCAPNG_MAGIC
    return False


def _progress(quiet: bool, bars: Any = None) -> Any:
    """Progress bars with ETA (percent of each pass over the records and of each vote: never a count of
    records, rule 6) and one log line per iteration."""

    def on_event(e: dict[str, Any]) -> None:
        if bars is not None:
            bars(e)
        if e.get("type") == "iteration" and not quiet:
            log.info("iteration %d: sigma=%.3g population=%d ess=%.1f eps_so_far=%.3g", e["iteration"], e["sigma"],
                     e["population"], e["ess"], e["epsilon_so_far"])
    return on_event


def _synth(args: argparse.Namespace) -> int:
    from pe_tabular.cli_support import UsageError, emit, history_path, ledger_path, refuse_overwriting_inputs
    from pe_tabular.memory import MemoryGuard
    from pe_tabular.progress import ProgressBars
    from simulators.network.dp_priors import PriorShares
    from simulators.network.fitted import FitShares
    from simulators.network.io import (
        SortedCsvSink,
        capture_flow_format,
        input_flow_format,
        write_netflow_csv,
        write_packets_csv,
        write_pcap,
    )
    from simulators.network.packets import expand_flows
    from simulators.network.pipeline import TraceSynthConfig, synthesize_flows, synthesize_packets
    from simulators.network.records import TraceRecords

    src, out = Path(args.input), Path(args.out)
    if not src.exists():
        raise FileNotFoundError(f"input {src} does not exist")
    refuse_overwriting_inputs([out, ledger_path(out), history_path(out), args.report], [src])
    if args.time_window is None:
        raise UsageError("--time-window START END is required: give the trace's public time range (epoch seconds "
                         "or ISO 8601), e.g. the capture's documented period; it is never read from the private data")
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint DIR")
    report = _check_report(args.report)
    out_pcap = out.suffix.lower() in (".pcap", ".pcapng")
    if not out_pcap and out.suffix.lower() != ".csv":
        raise UsageError(f"--out {out}: use a .csv (records) or .pcap (packets) file name")
    pcap_in = src.is_file() and _is_pcap(src)
    if args.dask_local is not None and args.dask_scheduler:
        raise UsageError("give --dask-local N or --dask-scheduler ADDRESS, not both")
    if args.level == "packet" and not pcap_in:
        raise UsageError("--level packet needs a pcap/pcapng input (packet headers)")
    cfg = TraceSynthConfig(
        epsilon=args.epsilon, delta=args.delta, unit=args.unit, time_window=tuple(args.time_window),
        ts_resolution_s=args.ts_resolution, iterations=args.iterations, population=args.population, k=args.k,
        seed=args.seed, n_out=args.n, voter=args.voter,
        prior_shares=PriorShares(addresses=args.address_share, services=args.service_share, times=0.0),
        marginal_share=args.marginal_share, time_coupling=args.time_coupling, generator=args.generator,
        count_share=args.count_share, single_packet_zero_duration=not args.bidirectional_records,
        fit_shares=FitShares(one_way=args.one_way_share, structure=args.structure_share, pairs=args.pair_share),
    )
    from dataclasses import asdict

    from pe_tabular.checkpoint import input_fingerprint, open_checkpoint

    ck = open_checkpoint(args.checkpoint, args.resume, {"settings": asdict(cfg), "level": args.level,
                                                        "input": input_fingerprint(src)})
    bars = ProgressBars(enabled=not (args.quiet or args.json), desc="traces")
    on_event = _progress(args.quiet, bars)
    show = (lambda m: print(m, file=sys.stderr)) if args.show_invalid else None
    kw = {"checkpoint": ck, "resume": args.resume, "on_event": on_event, "show_invalid": show}
    guard = MemoryGuard(args.max_memory)
    # the output mirrors the input's conventions, read from its format only (headers, declared types)
    fmt = capture_flow_format(cfg.ts_resolution_s) if pcap_in else input_flow_format(src, cfg.ts_resolution_s)
    real: pd.DataFrame | None = None
    records: TraceRecords | None = None
    try:
        if pcap_in:  # a capture is streamed too: parsed once, a chunk at a time (capture.Spool)
            records = _on_dask(TraceRecords.from_capture(src, args.level, args.unit, chunk_rows=args.chunk_rows,
                                                         guard=guard, on_event=on_event, show_invalid=show), args)
        else:  # NetFlow CSV / CSV.gz / Parquet, a file or a folder: streamed in chunks, never one frame
            records = _on_dask(TraceRecords.scan(src, args.unit, chunk_rows=args.chunk_rows, guard=guard,
                                                 on_event=on_event), args)
        if args.level == "packet":
            res = synthesize_packets(records, cfg, **kw)
            (write_pcap if out_pcap else write_packets_csv)(res.records, out)
        else:
            # a CSV output is written chunk by chunk too (a pcap output or a report needs the records whole)
            sink = SortedCsvSink(out, cfg.time_window, fmt=fmt) if not out_pcap and report is None else None
            try:
                res = synthesize_flows(records, cfg, sink=sink, **kw)
            except BaseException:
                if sink is not None:
                    sink.discard()
                raise
            if sink is not None:
                sink.close()
            else:
                _write_flows(res.records, out, out_pcap, args.seed, write_netflow_csv, write_pcap, expand_flows,
                             cfg.time_window, fmt)
            if report is not None and not src.is_file():
                real = records.to_frame()  # a folder: the report needs its records in memory
    finally:
        bars.close()
        if records is not None:
            records.close()
    priv = ledger_path(out)
    res.ledger.save(priv)
    from pe_tabular.io_utils import atomic_write_json

    hist = atomic_write_json(history_path(out), res.history)  # for `traces evaluate --report`
    eps = res.ledger.epsilon
    summary = {"out": str(out), "records": res.n_records, "epsilon": eps if math.isfinite(eps) else "inf",
               "delta": args.delta, "unit": args.unit, "level": args.level, "privacy_report": str(priv),
               "history": str(hist), "releases": len(res.ledger.releases), "wall_s": round(res.wall_s, 2),
               "cpu_s": round(res.cpu_s, 2)}
    text = (f"wrote {res.n_records} synthetic {'packets' if args.level == 'packet' else 'flows'} to "
            f"{out} ({args.unit}-level ({eps:.4g}, {args.delta:g})-DP; report {priv})")
    if report is not None:
        from simulators.network.report import write_traces_report

        # the files as written, compared as `traces evaluate INPUT OUT` compares them (same figures)
        _, real, syn, rep = trace_fidelity(src if real is None else real, out, cfg.time_window)
        write_traces_report(real, syn, report, res.ledger, res.history, fidelity=rep, window=cfg.time_window)
        summary["report"] = str(report)
        text += f"\n{_REPORT_NOTE.format(report)}"
    emit(args, summary, text)
    return 0


_REPORT_NOTE = "wrote {} (self-contained HTML); it shows REAL-data statistics: keep it with the private data."


def _on_dask(records: Any, args: argparse.Namespace) -> Any:
    """The records on a Dask cluster when --dask-local / --dask-scheduler asks for one (releases and votes
    run on the workers; only histograms come back)."""
    if args.dask_local is None and not args.dask_scheduler:
        return records
    return records.on_dask(local=args.dask_local, scheduler=args.dask_scheduler)


def _check_report(path: str | None) -> Path | None:
    """Validate --report before any work (the shared check of `pe-tabular report`)."""
    if path is None:
        return None
    from pe_tabular.cli_support import check_html_out

    return check_html_out(path, "--report")


def _write_flows(flows: pd.DataFrame, out: Path, out_pcap: bool, seed: int | None, write_csv: Any, write_pcap: Any,
                 expand: Any, window: tuple[float, float] | None = None, fmt: Any = None) -> None:
    """Flows to a pcap (expanded into packets) or a CSV in ``fmt`` (an :class:`io.FlowFormat`)."""
    if out_pcap:  # every packet inside the public window
        write_pcap(expand(flows, np.random.default_rng(seed), max_packets_per_flow=1000, window=window), out)
    else:
        write_csv(flows, out, fmt=fmt)


def _load_any(path: Path, kind: str | None = None) -> tuple[str, pd.DataFrame]:
    """A trace file as flow or packet records; a capture asked for as ``kind="flow"`` gives its flows
    (as ``traces synth`` extracts them)."""
    from simulators.network.io import packets_to_flows, read_netflow_csv, read_pcap

    if _is_pcap(path):
        packets = read_pcap(path)
        return ("flow", packets_to_flows(packets)) if kind == "flow" else ("packet", packets)
    df = pd.read_csv(path, nrows=1)
    if "length" in df.columns and "pkt" not in df.columns:
        return "packet", pd.read_csv(path)
    return "flow", read_netflow_csv(path)


def trace_fidelity(real: Path | pd.DataFrame, synth: Path, window: tuple[float, float] | None,
                   ) -> tuple[str, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The fidelity suite on a real trace (a file, or flow records already in memory) and a synthetic
    file: the one code path of ``traces evaluate`` and of ``traces synth --report``, so the report
    states the figures evaluate prints. The synthetic side is always the file as written (its rounding
    and columns), a capture compared with flow records gives its flows, and ``window`` is the public
    time window (None: the real trace's range, the suite's default)."""
    from pe_tabular.cli_support import UsageError
    from simulators.network.fidelity import flow_fidelity, packet_fidelity

    ks, syn = _load_any(Path(synth))
    kr, rec = ("flow", real) if isinstance(real, pd.DataFrame) else _load_any(Path(real), ks)
    if kr != ks:
        raise UsageError(f"REAL is {kr} records but SYNTH is {ks} records; compare like with like")
    return kr, rec, syn, (flow_fidelity if kr == "flow" else packet_fidelity)(rec, syn, window)


def _public_window(args: argparse.Namespace) -> tuple[float, float] | None:
    """The time window to bin by: --time-window, else the public one the synthetic file's ledger
    records (so `traces evaluate INPUT OUT` bins as `traces synth --report` did), else None."""
    from pe_tabular.cli_support import ledger_path, read_json

    if args.time_window:
        return tuple(args.time_window)
    path = Path(args.ledger) if args.ledger else ledger_path(args.synth)
    if not path.is_file():
        return None
    led = read_json(path, "--ledger")
    w = led.get("public_inputs", {}).get("time_window_s") if isinstance(led, dict) else None
    return (float(w[0]), float(w[1])) if isinstance(w, list) and len(w) == 2 else None


def _evaluate(args: argparse.Namespace) -> int:
    from pe_tabular.cli_support import UsageError, emit

    report = _check_report(args.report)
    if report is None and (args.ledger or args.history):
        raise UsageError("--ledger and --history only feed the HTML report; add --report FILE.html")
    ledger, history = _evaluate_ledger(args) if report is not None else (None, None)
    window = _public_window(args)
    kr, real, synth, rep = trace_fidelity(Path(args.real), Path(args.synth), window)
    head = rep["headline"]
    lines = [f"{kr} fidelity of {args.synth} against {args.real} (lower is better unless marked ↑)",
             f"  pairwise TVD      {head['pairwise_tvd']:.4f}",
             f"  validity ↑        {head['valid_rate']:.4f}",
             f"  heavy hitters     {head['hh_error']:.4f} (top-10 dst relative error, Count-Min)",
             f"  mean JSD          {head['jsd_mean']:.4f}", f"  mean EMD          {head['emd_mean']:.4f}"]
    for k, v in rep.items():
        if k not in ("headline", "pairwise_tvd_by_pair") and isinstance(v, float):
            lines.append(f"    {k:18s}{v:.4f}")
    summary = json.loads(json.dumps(rep, default=float))
    if report is not None:
        from simulators.network.report import write_traces_report

        write_traces_report(real, synth, report, ledger, history, fidelity=rep, window=window)
        summary["report"] = str(report)
        lines.append(_REPORT_NOTE.format(report))
    emit(args, summary, "\n".join(lines), answer=True)  # evaluate: the figures are the output
    return 0


def _evaluate_ledger(args: argparse.Namespace) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """The ledger (--ledger, else SYNTH.privacy.json beside the synthetic file if present) and the history
    (--history, else SYNTH.history.json, which `traces synth` writes)."""
    from pe_tabular.cli_support import UsageError, history_path, ledger_path, read_history, read_json

    path = Path(args.ledger) if args.ledger else ledger_path(args.synth)
    ledger = read_json(path, "--ledger") if args.ledger or path.is_file() else None
    if ledger is not None and (not isinstance(ledger, dict) or "epsilon" not in ledger or "releases" not in ledger):
        raise UsageError(f"--ledger {path} must be the privacy JSON `pe-tabular traces synth` writes "
                         "(OUT.privacy.json), with 'epsilon' and 'releases'")
    beside = history_path(args.synth)
    return ledger, read_history(args.history or (str(beside) if beside.is_file() else None))


def _simulate(args: argparse.Namespace) -> int:
    from pe_tabular.cli_support import UsageError, emit
    from simulators.network.io import write_netflow_csv, write_pcap
    from simulators.network.packets import expand_flows
    from simulators.network.pipeline import simulate_flows

    if args.time_window is None:
        raise UsageError("--time-window START END is required")
    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    out = Path(args.out)
    flows = simulate_flows(args.n, tuple(args.time_window), args.seed, args.ts_resolution)
    _write_flows(flows, out, out.suffix.lower() in (".pcap", ".pcapng"), args.seed, write_netflow_csv, write_pcap,
                 expand_flows, tuple(args.time_window))
    emit(args, {"out": str(out), "records": len(flows), "epsilon": 0.0},
         f"wrote {len(flows)} simulated flows to {out} (no private data used)")
    return 0


def add_parser(subparsers: Any) -> None:
    from pe_tabular.cli_support import Formatter, add_common, add_scale_flags, positive_float, positive_int

    top = subparsers.add_parser("traces", formatter_class=Formatter, help="DP synthetic network traces",
                                description=__doc__, epilog=EPILOG)
    sub = top.add_subparsers(dest="traces_command", required=True)

    from simulators.network.pipeline import GENERATORS, TraceSynthConfig

    d = TraceSynthConfig(epsilon=1.0)  # the library defaults, shown by --help
    p = sub.add_parser("synth", formatter_class=Formatter, help="synthesize flows or packets with DP",
                       description="Private Evolution over a parametric traffic simulator; the private trace only "
                                   "votes on synthetic candidates.", epilog=EPILOG)
    p.add_argument("input", help="NetFlow table (UGR'16/NetShare columns: CSV, CSV.gz or Parquet; a file or a folder "
                                 "of them, streamed in chunks) or a pcap/pcapng capture (streamed too)")
    p.add_argument("--out", required=True, help="synthetic output: .csv (records) or .pcap (packets)")
    p.add_argument("--epsilon", type=positive_float("--epsilon"), required=True)
    p.add_argument("--delta", type=float, default=1e-5)
    p.add_argument("--unit", choices=["record", "flow", "host"], default="flow", help="what one privacy unit covers")
    p.add_argument("--level", choices=["flow", "packet"], default="flow",
                   help="PE on flow records, or directly on packet headers (pcap input)")
    p.add_argument("--time-window", nargs=2, type=parse_time, metavar=("START", "END"),
                   help="public time range of the trace (epoch seconds or ISO 8601)")
    p.add_argument("--ts-resolution", type=float, default=1e-6, help="timestamp resolution of the output (s)")
    p.add_argument("--iterations", type=int, default=d.iterations)
    p.add_argument("--population", type=int, default=None,
                   help="candidates per iteration (default: 0.4 per record of the noisy count, 200..16000)")
    p.add_argument("--k", type=int, default=d.k, help="nearest neighbours each private record votes for (1/sqrt(k) "
                                                    "each)")
    p.add_argument("--n", type=int, default=None,
                   help="synthetic records to write; a PUBLIC number, recorded in the ledger (default: a noisy count "
                        "of the input's records, released with --count-share)")
    p.add_argument("--seed", type=int, default=None, help="seed for everything except the privacy noise")
    p.add_argument("--checkpoint", default=None, help="directory for per-iteration checkpoints")
    p.add_argument("--resume", action="store_true", help="continue the run in --checkpoint")
    p.add_argument("--show-invalid", action="store_true",
                   help="LOCAL USE ONLY: print exact, NOT PRIVATE diagnostics (e.g. records outside --time-window, "
                        "which are clipped into it silently otherwise) to this terminal, never to a file")
    p.add_argument("--voter", choices=["auto", "numpy", "numba", "jax"], default="auto")
    p.add_argument("--generator", choices=GENERATORS, default=d.generator,
                   help="candidate source: the simulator and the generator fitted on DP measurements in one "
                        "evolution (mix), or either alone")
    p.add_argument("--address-share", type=float, default=d.prior_shares.addresses,
                   help="share of the budget for the address prefix trie")
    p.add_argument("--service-share", type=float, default=d.prior_shares.services,
                   help="share of the budget for the simulator's service histogram")
    p.add_argument("--count-share", type=float, default=d.count_share,
                   help="share of the budget for the noisy record count every size derives from (not spent "
                        "with --n)")
    p.add_argument("--one-way-share", type=float, default=d.fit_shares.one_way,
                   help="share for the fitted generator's one-way histograms (frequent values, coarse bins)")
    p.add_argument("--structure-share", type=float, default=d.fit_shares.structure,
                   help="share for the pair tables that choose the fitted generator's tree")
    p.add_argument("--pair-share", type=float, default=d.fit_shares.pairs,
                   help="share for the fitted generator's tree pair tables")
    p.add_argument("--marginal-share", type=float, default=d.marginal_share,
                   help="with --generator simulator: share for the public-bin marginals the output is raked to")
    p.add_argument("--bidirectional-records", action="store_true",
                   help="the input's records cover both directions (Argus): a one-packet record may carry a "
                        "duration, so the single-packet-lasts-0-s rule is not enforced")
    p.add_argument("--time-coupling", type=float, default=0.0,
                   help="chance an output record keeps its candidate's start time (else drawn from the DP time "
                        "histogram)")
    p.add_argument("--report", metavar="FILE.html", default=None,
                   help="also write a self-contained HTML report (real vs synthetic, ledger, evolution); it shows "
                        "REAL-data statistics, keep it with the private data (it reads the input into memory)")
    add_scale_flags(p)
    p.add_argument("--dask-local", type=positive_int("--dask-local"), default=None, metavar="N",
                   help="compute the releases and votes on a local Dask cluster of N worker processes")
    p.add_argument("--dask-scheduler", default=None, metavar="ADDRESS",
                   help="compute the releases and votes on the Dask cluster at ADDRESS (tcp://host:8786); the "
                        "input path must be readable by every worker")
    add_common(p)
    p.set_defaults(func=_synth)

    e = sub.add_parser("evaluate", formatter_class=Formatter, help="fidelity of a synthetic trace",
                       description="NetShare-style per-field metrics plus pairwise TVD, validity and heavy hitters.",
                       epilog="examples:\n  pe-tabular traces evaluate real.csv synth.csv\n"
                              "  pe-tabular traces evaluate capture.pcap synth.pcap --json\n"
                              "  pe-tabular traces evaluate real.csv synth.csv --report report.html\n"
                              "  pe-tabular traces evaluate real.csv synth.csv --report r.html --ledger "
                              "synth.privacy.json --history history.json\n\n"
                              "The report shows REAL-data statistics: keep it with the private data.")
    e.add_argument("real")
    e.add_argument("synth")
    e.add_argument("--time-window", nargs=2, type=parse_time, metavar=("START", "END"),
                   help="public time range for the time bins (default: the one in SYNTH's ledger, SYNTH.privacy.json "
                        "or --ledger, as `traces synth --report` uses; else the real file's range)")
    e.add_argument("--report", metavar="FILE.html", default=None,
                   help="also write a self-contained HTML report: CDFs, ports, heavy hitters, prefixes")
    e.add_argument("--ledger", default=None,
                   help="privacy JSON for the report (default: SYNTH.privacy.json when it exists)")
    e.add_argument("--history", default=None,
                   help="per-iteration records (JSON list) for the report's evolution section (default: "
                        "SYNTH.history.json when it exists)")
    add_common(e)
    e.set_defaults(func=_evaluate)

    s = sub.add_parser("simulate", formatter_class=Formatter, help="the simulator alone (no private data)",
                       epilog="examples:\n  pe-tabular traces simulate --n 1000 --time-window 0 3600 --out sim.csv")
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--time-window", nargs=2, type=parse_time, metavar=("START", "END"))
    s.add_argument("--ts-resolution", type=float, default=1e-6)
    s.add_argument("--seed", type=int, default=None)
    add_common(s)
    s.set_defaults(func=_simulate)
