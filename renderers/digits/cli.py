"""``pe-tabular digits``: class-conditional PE with the procedural digit renderers.

  synth     run PE against private MNIST-format data, write IDX/NPZ + the privacy ledger
  render    the renderer alone (no private data, no voting): the baseline
  evaluate  train-on-synthetic / test-on-real accuracy, Fréchet distance, sample grid
  report    one self-contained HTML page: sample grids per digit beside real ones, accuracy, ledger, curves
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from pe_tabular.checkpoint import input_fingerprint
from pe_tabular.cli_support import (
    EXIT_OK,
    Formatter,
    UsageError,
    add_common,
    emit,
    ledger_path,
    positive_float,
    refuse_overwriting_inputs,
    timing_record,
)
from pe_tabular.privacy.schedules import BUDGET_NAMES
from renderers.digits.geometry import PLACEMENTS
from renderers.digits.io import load_images, write_mnist, write_npz
from renderers.digits.synth import RENDERERS, DigitsConfig, GridCheckpointer, render_baseline, synthesize

log = logging.getLogger("pe_tabular.digits")
OUTPUT_FILES = ("synthetic.npz", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "synthetic.privacy.json",
                "run.json")
_D = DigitsConfig()


def _write_output(out: Path, images: np.ndarray, labels: np.ndarray, fmt: str, **extra: np.ndarray) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    files = []
    if fmt in ("npz", "both"):
        files.append(str(write_npz(out / "synthetic.npz", images, labels, **extra)))
    if fmt in ("idx", "both"):
        files += [str(p) for p in write_mnist(out, images, labels, "train")]
    return files


def _config(args: argparse.Namespace) -> DigitsConfig:
    if args.iterations < 1:
        raise UsageError(f"--iterations must be >= 1, got {args.iterations}")
    if args.population < 20:
        raise UsageError(f"--population must be >= 20 (two candidates per class), got {args.population}")
    if args.n_out < 10:
        raise UsageError(f"--n-out must be >= 10, got {args.n_out}")
    return DigitsConfig(renderer=args.renderer, placement=args.placement, iterations=args.iterations,
                        population=args.population, degree_start=args.degree_start, degree_end=args.degree_end,
                        k=args.k, threshold=args.threshold, lookahead=args.lookahead, encoder=args.encoder,
                        n_out=args.n_out, final_degree=args.final_degree, label_budget=args.label_budget,
                        budget=args.budget,
                        voter=args.voter)


def _synth(args: argparse.Namespace) -> int:
    cfg = _config(args)
    out = Path(args.out)
    # never write into the private data's folder, nor over a private file in the output folder
    refuse_overwriting_inputs([out, *(out / f for f in OUTPUT_FILES)], [args.private])
    x, y = load_images(args.private)
    if args.n_private:
        x, y = x[:args.n_private], y[:args.n_private]
    out.mkdir(parents=True, exist_ok=True)
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint DIR (the folder of the interrupted run)")
    ck = GridCheckpointer(args.checkpoint, out / "grids", resume=args.resume,
                          run={"settings": asdict(cfg), "epsilon": args.epsilon, "delta": args.delta,
                               "input": input_fingerprint(args.private)})
    rng = np.random.default_rng(args.seed)
    events: list[dict] = []

    def on_event(e: dict) -> None:
        if e.get("type") == "iteration":
            events.append(e)
            log.info("iteration %d: sigma %.3g, ess %.0f, eps so far %.3g", e["iteration"], e["sigma"], e["ess"],
                     e["epsilon_so_far"])

    t0 = time.time()
    res = synthesize(x, y, args.epsilon, args.delta, cfg, rng, checkpoint=ck, resume=args.resume, on_event=on_event)
    wall = time.time() - t0
    files = _write_output(out, res.images, res.labels, args.format, genome=res.genome,
                          source=res.source.astype(str))
    res.ledger.save(ledger_path(out / "synthetic.npz"))
    from renderers.digits.evaluation import save_grid, save_json

    save_grid(out / "grids" / "final.png", res.images, res.labels, 16, rng=np.random.default_rng(0))
    # never the number of private images (privacy rule 6): --n-private is recorded as the public cap it is
    summary = {"epsilon": res.ledger.epsilon, "delta": args.delta, "mu": res.ledger.mu, "n_images": len(res.labels),
               "n_private_cap": args.n_private or None, "timing": timing_record(wall), "files": files,
               "ledger": str(ledger_path(out / "synthetic.npz")),
               "label_shares": res.label_shares, "config": asdict(cfg), "seed": args.seed, "history": res.history}
    save_json(out / "run.json", summary)
    emit(args, {k: v for k, v in summary.items() if k != "history"},
         f"wrote {len(res.labels)} images to {out} in {wall:.0f}s; privacy: epsilon={res.ledger.epsilon:.4g}, "
         f"delta={args.delta:g} (ledger: {ledger_path(out / 'synthetic.npz')})")
    return EXIT_OK


def _render(args: argparse.Namespace) -> int:
    cfg = DigitsConfig(renderer=args.renderer, placement=args.placement)
    t0 = time.time()
    images, labels = render_baseline(cfg, np.random.default_rng(args.seed), args.n)
    wall = time.time() - t0
    out = Path(args.out)
    files = _write_output(out, images, labels, args.format)
    from renderers.digits.evaluation import save_grid, save_json

    (out / "grids").mkdir(exist_ok=True)  # _write_output made `out`; the grid gets its own folder, as in synth
    save_grid(out / "grids" / "final.png", images, labels, 16, rng=np.random.default_rng(0))
    summary = {"n_images": len(labels), "renderer": args.renderer, "placement": args.placement, "wall_s": wall,
               "files": files, "epsilon": 0.0, "note": "renderer alone: no private data touched"}
    save_json(out / "run.json", summary)
    emit(args, summary, f"wrote {len(labels)} rendered images to {out} in {wall:.1f}s (no private data used)")
    return EXIT_OK


def _html_out(path: str, flag: str) -> Path:
    """The report's .html path, checked before any work (report_cli's check, naming this command's flag)."""
    from pe_tabular.cli_support import check_html_out

    return check_html_out(path, flag)


def _write_report(args: argparse.Namespace, out: Path, real_test: tuple[np.ndarray, np.ndarray] | None,
                  evaluation: dict | None) -> dict:
    from renderers.digits.report import write_digits_report

    t0 = time.time()
    write_digits_report(args.dir, out, real_test=real_test, evaluation=evaluation, seed=args.seed)
    return {"out": str(out), "bytes": out.stat().st_size, "wall_s": round(time.time() - t0, 1)}


def _evaluate(args: argparse.Namespace) -> int:
    from renderers.digits.evaluation import evaluate, save_json

    report = _html_out(args.report, "--report") if args.report else None
    images, labels = load_images(args.dir, flag="DIR")
    test = load_images(args.real, "test", flag="--real")
    real_train = None if args.no_fd else load_images(args.real, "train", flag="--real")
    rec = evaluate(images, labels, test, real_train=real_train, seed=args.seed, threads=args.threads,
                   log_fn=None if args.quiet else (lambda m: log.info(m)))
    rec["synthetic"] = str(args.dir)
    rec["reads_real_data"] = ("computed from the REAL images of --real (the test set, and the training set for the "
                              "FD): keep this file with the private data, not with the synthetic set you share")
    d = Path(args.dir)
    if d.is_dir():
        save_json(d / "evaluation.json", rec)
        if not (args.quiet or args.json):
            print(f"pe-tabular: wrote {d / 'evaluation.json'}; it is computed from the REAL data of --real: remove "
                  "it before sharing the synthetic folder", file=sys.stderr)
    fd = f", FD {rec['fd']:.2f} (own feature net; not Inception FID)" if "fd" in rec else ""
    text = f"accuracy on the real test set: {rec['acc']:.4f}{fd}"
    if report is not None:
        rec["report"] = _write_report(args, report, test, rec)
        text += f"\nwrote the report {report} ({rec['report']['bytes'] / 1e6:.1f} MB; open it in any browser)"
    emit(args, rec, text, answer=True)  # evaluate: the figures are the output
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    out = _html_out(args.out, "--out")
    if not Path(args.dir).exists():
        raise FileNotFoundError(f"DIR {args.dir} does not exist; give the --out folder of `pe-tabular digits synth`")
    real = load_images(args.real, "test", flag="--real") if args.real else None
    summary = _write_report(args, out, real, None)
    emit(args, summary, f"wrote {out} ({summary['bytes'] / 1e6:.1f} MB) in {summary['wall_s']:.0f} s; open it in "
                        "any browser (self-contained)")
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "digits", formatter_class=Formatter, help="MNIST-like digits from procedural renderers (PE)",
        description=__doc__,
        epilog="examples:\n"
               "  pe-tabular digits synth --private ../shared/data/mnist --epsilon 1 --delta 1e-5 --out dig-eps1\n"
               "  pe-tabular digits evaluate dig-eps1 --real ../shared/data/mnist --report dig-eps1/report.html\n"
               "  pe-tabular digits report dig-eps1 --real ../shared/data/mnist --out dig-eps1/report.html\n"
               "  pe-tabular digits render --renderer stroke --n 60000 --out stroke-alone")
    sub = p.add_subparsers(dest="digits_command", required=True)

    s = sub.add_parser("synth", formatter_class=Formatter, help="class-conditional PE on private MNIST data",
                       epilog="examples:\n"
                              "  pe-tabular digits synth --private ../shared/data/mnist --epsilon 1 --out out1\n"
                              "  pe-tabular digits synth --private ../shared/data/mnist --epsilon 10 --renderer mix "
                              "--checkpoint ck --out out10   # then add --resume after an interruption")
    s.add_argument("--private", required=True, help="folder with MNIST IDX files (train split) or an .npz")
    s.add_argument("--epsilon", type=positive_float("--epsilon"), required=True)
    s.add_argument("--delta", type=float, default=1e-5)
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--renderer", choices=RENDERERS, default=_D.renderer)
    s.add_argument("--placement", choices=PLACEMENTS, default=None,
                   help="default: free for both renderers (chosen by measurement, docs/digits.md)")
    s.add_argument("--seed", type=int, default=0, help="renderer/selection randomness (never the privacy noise)")
    s.add_argument("--checkpoint", help="folder for per-iteration checkpoints")
    s.add_argument("--resume", action="store_true", help="continue the run in --checkpoint")
    s.add_argument("--iterations", type=int, default=_D.iterations)
    s.add_argument("--population", type=int, default=_D.population, help="candidates per iteration (all classes)")
    s.add_argument("--degree-start", type=float, default=_D.degree_start)
    s.add_argument("--degree-end", type=float, default=_D.degree_end)
    s.add_argument("--k", type=int, default=_D.k)
    s.add_argument("--threshold", type=float, default=_D.threshold)
    s.add_argument("--lookahead", type=int, default=_D.lookahead)
    s.add_argument("--encoder", default=_D.encoder, help="pixels, pixels:2, hog, rp or a '+' combination")
    s.add_argument("--n-out", type=int, default=_D.n_out, help="number of synthetic images")
    s.add_argument("--final-degree", type=float, default=_D.final_degree)
    s.add_argument("--budget", choices=BUDGET_NAMES, default=_D.budget,
                   help="how the vote budget is spread over the iterations (pe_tabular/privacy/schedules.py)")
    s.add_argument("--label-budget", type=float, default=_D.label_budget,
                   help="share of the budget for DP label shares; 0 = public uniform shares")
    s.add_argument("--n-private", type=int, default=0, help="use only the first N private rows (quick runs)")
    s.add_argument("--format", choices=["npz", "idx", "both"], default="npz")
    s.add_argument("--voter", default=_D.voter)
    add_common(s)
    s.set_defaults(func=_synth)

    r = sub.add_parser("render", formatter_class=Formatter, help="the renderer alone (baseline, no private data)",
                       epilog="examples:\n  pe-tabular digits render --renderer font --n 60000 --out font-alone")
    r.add_argument("--renderer", choices=RENDERERS, default=_D.renderer)
    r.add_argument("--placement", choices=PLACEMENTS, default=None)
    r.add_argument("--n", type=int, default=60000)
    r.add_argument("--out", required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--format", choices=["npz", "idx", "both"], default="npz")
    add_common(r)
    r.set_defaults(func=_render)

    e = sub.add_parser("evaluate", formatter_class=Formatter, help="accuracy on real MNIST test + Fréchet distance",
                       epilog="examples:\n  pe-tabular digits evaluate out1 --real ../shared/data/mnist --json\n"
                              "  pe-tabular digits evaluate out1 --real ../shared/data/mnist --report out1/report.html")
    e.add_argument("dir", help="output folder of synth/render (synthetic.npz or IDX files), or an .npz")
    e.add_argument("--real", default="../shared/data/mnist", help="folder with the real MNIST IDX files")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--no-fd", action="store_true", help="skip the Fréchet distance (needs real train)")
    e.add_argument("--report", metavar="FILE.html", help="also write the HTML report (as `digits report`) after "
                                                         "evaluating; checked before the evaluation starts")
    add_common(e)
    e.set_defaults(func=_evaluate)

    h = sub.add_parser("report", formatter_class=Formatter,
                       help="self-contained HTML report: sample grids per digit vs real, accuracy, ledger, curves",
                       description="One HTML file (figures embedded, no network or scripts needed to view it): mean "
                                   "image per digit, a 10x16 sample grid per digit beside real test images (with "
                                   "--real), the per-iteration grids, per-class accuracy and class balance (when "
                                   "DIR/evaluation.json exists), renderer shares of a mixture, the privacy ledger "
                                   "and the evolution curves. Missing files only leave their sections out.",
                       epilog="examples:\n"
                              "  pe-tabular digits report out1 --out out1/report.html\n"
                              "  pe-tabular digits report out1 --real ../shared/data/mnist --out out1/report.html\n\n"
                              "`pe-tabular digits evaluate DIR --report FILE.html` evaluates and writes it in one go.")
    h.add_argument("dir", help="output folder of synth/render (synthetic.npz, synthetic.privacy.json, run.json, "
                   "grids/)")
    h.add_argument("--out", required=True, help="the .html file to write")
    h.add_argument("--real", help="folder with the real MNIST IDX files: its TEST split is shown beside the "
                                  "synthetic images (never the private training data)")
    h.add_argument("--seed", type=int, default=0, help="which images the sample grids show")
    add_common(h)
    h.set_defaults(func=_report)
    return p
