"""The ``pe-tabular`` command.

Exit codes: 0 success; 1 unexpected internal error; 2 bad usage or bad input (the message names the
flag, column or row and the fix); 3 privacy budget/accounting error; 130 interrupted (the run can be
continued with --resume when --checkpoint was given; SIGTERM is handled the same way).

Every command group (tables, traces, digits) belongs to a wing and is imported lazily: each
module named in ``_PLUGINS`` exposes ``add_parser(subparsers)``, and only the wing that owns the command
on the command line is imported. ``pe-tabular --help`` and ``pe-tabular privacy ...`` import no wing,
no pandas and no scipy: the registry names each wing's commands with the line ``--help`` shows
(tests/test_cli_startup.py checks it against the wings), and the flags are parsed before any heavy import.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pe_tabular.cli_support import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PRIVACY,
    EXIT_USAGE,
    Formatter,
    Parser,
    UsageError,
    add_common,
    delta_arg,
    emit,
    missing_extra,
    positive_float,
    positive_int,
)
from pe_tabular.memory import MemoryLimitExceeded
from pe_tabular.privacy.accountant import AccountingError, epsilon_for_sigmas, gdp_mu, sigma_for_epsilon

# The wing registry: wing -> (module exposing add_parser(subparsers), {top-level command: its --help line}).
_PLUGINS: dict[str, tuple[str, dict[str, str]]] = {
    "tables": ("pe_tabular.tables.cli", {
        "synth": "synthesize a private table",
        "schema": "schema tools",
        "evaluate": "fidelity/utility of a synthetic table",
        "demo": "synthesize the built-in UCI Adult at epsilon=1",
        "report": "self-contained HTML report: real vs synthetic, ledger, curves",
        "llm": "a local LLM server for the LLM backend (llm serve)",
    }),
    "traces": ("simulators.network.cli", {"traces": "DP synthetic network traces"}),
    "digits": ("renderers.digits.cli", {"digits": "MNIST-like digits from procedural renderers (PE)"}),
}
log = logging.getLogger("pe_tabular")


def _privacy(args: argparse.Namespace) -> int:
    q = args.sampling_rate
    if not 0 < q <= 1:
        raise UsageError(f"--sampling-rate must be in (0, 1], got {q}")
    if q < 1:  # Poisson-subsampled releases are accounted by PLD (scipy, dp-accounting): imported only here
        from pe_tabular.privacy.subsampling import (  # noqa: PLC0415
            mechanisms,
            pld_epsilon,
            sigma_for_epsilon_subsampled,
        )
    if args.what == "epsilon":
        if args.sigma is None:
            raise UsageError("privacy epsilon needs --sigma")
        if q < 1:  # Poisson-subsampled releases: PLD (privacy.subsampling)
            eps = pld_epsilon(mechanisms([args.sigma] * args.iterations, args.sensitivity, q), args.delta)
        else:
            eps = epsilon_for_sigmas([args.sigma] * args.iterations, args.delta, args.sensitivity)
        emit(args, {"epsilon": eps, "sigma": args.sigma, "iterations": args.iterations, "delta": args.delta,
                    "sampling_rate": q}, f"epsilon = {eps:.6g} at delta = {args.delta:g}{_setting(args)}", answer=True)
    else:
        if args.epsilon is None:
            raise UsageError("privacy sigma needs --epsilon")
        if q < 1:
            sig = sigma_for_epsilon_subsampled(args.epsilon, args.delta, args.iterations, q, args.sensitivity)
            extra: dict[str, Any] = {"sampling_rate": q, "accounting": "PLD"}
        else:
            sig = sigma_for_epsilon(args.epsilon, args.delta, args.iterations, sensitivity=args.sensitivity)[0]
            extra = {"mu": gdp_mu(args.epsilon, args.delta)}
        emit(args, {"sigma": sig, "epsilon": args.epsilon, "iterations": args.iterations, "delta": args.delta,
                    **extra}, f"sigma = {sig:.6g} per release for (epsilon = {args.epsilon:g}, delta = "
                              f"{args.delta:g}){_setting(args)}", answer=True)
    return EXIT_OK


def _setting(args: argparse.Namespace) -> str:
    """What the calculator's answer is for: releases, sensitivity, subsampling (``--json`` has them as fields)."""
    n = args.iterations
    text = f" over {n} Gaussian release{'s' if n > 1 else ''} of sensitivity {args.sensitivity:g}"
    return text + (f" on Poisson subsamples at rate {args.sampling_rate:g} (PLD accounting)"
                   if args.sampling_rate < 1 else "")


def wing_of(argv: Sequence[str]) -> str | None:
    """The wing that owns the command on this command line (the first word that is not an option; the
    top-level parser has no options but -h), or None for the engine's own commands, --help and typos."""
    command = next((a for a in argv if not a.startswith("-")), None)
    return next((w for w, (_, cmds) in _PLUGINS.items() if command in cmds), None)


def build_parser(wings: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser. ``wings``: the wings whose modules are imported (default: all); every other wing's
    commands are listed (name and help line) but not built, so nothing of theirs is imported."""
    load = set(_PLUGINS if wings is None else wings)
    ap = Parser(
        prog="pe-tabular", formatter_class=Formatter,
        description="Differentially private synthetic data without training (Private Evolution).",
        epilog="examples:\n  pe-tabular demo --out demo-out\n"
               "  pe-tabular synth adult.csv --schema schema.json --epsilon 1 --out synth.csv\n"
               "  pe-tabular privacy sigma --epsilon 1 --iterations 5 --delta 1e-5\n\n" + __doc__.split("\n\n")[1],
    )
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("privacy", formatter_class=Formatter, help="privacy calculator (sigma <-> epsilon)",
                       epilog="examples:\n  pe-tabular privacy epsilon --sigma 11.8 --iterations 10 --delta 1e-5\n"
                              "  pe-tabular privacy sigma --epsilon 1 --iterations 10 --delta 1e-5 --json\n"
                              "  pe-tabular privacy sigma --epsilon 1 --iterations 10 --sampling-rate 0.1")
    p.add_argument("what", choices=["epsilon", "sigma"])
    p.add_argument("--sigma", type=positive_float("--sigma"))
    p.add_argument("--epsilon", type=positive_float("--epsilon"))
    p.add_argument("--iterations", type=positive_int("--iterations"), default=1)
    p.add_argument("--delta", type=delta_arg, default=1e-5)
    p.add_argument("--sensitivity", type=positive_float("--sensitivity"), default=1.0)
    p.add_argument("--sampling-rate", type=positive_float("--sampling-rate"), default=1.0,
                   help="each release on a Poisson subsample of the units at this rate (accounted by PLD)")
    add_common(p)
    p.set_defaults(func=_privacy)
    for name, (module, commands) in _PLUGINS.items():
        failed: ImportError | None = None
        if name in load:
            try:
                importlib.import_module(module).add_parser(sub)
                continue
            except ImportError as e:  # reported when one of its commands is run (main: the extra to install)
                log.debug("command group %s unavailable: %s", name, e)
                failed = e
        for command, line in commands.items():
            if command not in sub.choices:
                _placeholder(sub, command, line, failed)
    _show_defaults(ap)
    return ap


def _placeholder(sub: Any, command: str, line: str, error: ImportError | None) -> None:
    """A command listed in --help whose wing was not imported; run, it raises the wing's import error."""
    p = sub.add_parser(command, help=line, add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def unavailable(args: argparse.Namespace) -> int:
        raise error if error is not None else RuntimeError(f"internal: the wing of {command!r} was not loaded")

    p.set_defaults(func=unavailable)


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option with a default says it in --help, in every wing: argparse prints nothing (not even the
    default) for an option without help text, so such options get one."""
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sp in a.choices.values():
                _show_defaults(sp)
        elif a.option_strings and not a.help and a.default not in (None, False, argparse.SUPPRESS):
            a.help = "(default: %(default)s)"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so it unwinds like Ctrl-C (atomic writes clean up)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


class _LineFormatter(logging.Formatter):
    """Log records in the CLI's one style, ``pe-tabular: warning: ...`` (as warnings and errors print), not
    ``WARNING pe_tabular.x.y: ...``; the module name is kept for DEBUG lines only (-v), where it helps."""

    def format(self, record: logging.LogRecord) -> str:
        where = f" [{record.name}]" if record.levelno < logging.INFO else ""
        return f"pe-tabular: {record.levelname.lower()}{where}: {record.getMessage()}"


class _WarningPrinter:
    """``warnings.showwarning`` for the CLI: one line a user reads, not a source location, and each text once
    per command (a warning raised per chunk or per column pass would otherwise repeat)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any = None, line: str | None = None) -> None:
        text = str(message)
        if logging.getLogger().level <= logging.WARNING and text not in self.seen:
            self.seen.add(text)
            print(f"pe-tabular: warning: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(wings=[w for w in [wing_of(argv)] if w]).parse_args(argv)
    # default: warnings and errors only (progress bars and the summary say the rest); -v adds INFO and DEBUG
    level = logging.ERROR if getattr(args, "quiet", False) else (
        logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING)
    root = logging.getLogger()
    saved_logging = (root.level, list(root.handlers))  # restored on return: main() leaves no global state behind
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    if getattr(args, "epsilon", None) == math.inf:
        print("pe-tabular: warning: --epsilon inf adds no noise: the output is NOT differentially private (use it "
              "only to measure what noise costs)", file=sys.stderr)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    saved_showwarning = warnings.showwarning
    warnings.showwarning = _WarningPrinter()
    try:
        return int(args.func(args) or 0)
    except AccountingError as e:
        print(f"pe-tabular: privacy error: {e}", file=sys.stderr)
        return EXIT_PRIVACY
    except ImportError as e:
        return _import_error(e, _command_name(args))
    except (UsageError, ValueError, FileNotFoundError, FileExistsError, PermissionError, KeyError) as e:
        # evolution.ConfigError speaks of library arguments; for_cli() names the flags (duck-typed, so the
        # entry point need not import the evolution loop to catch it)
        for_cli: Callable[[], str] | None = getattr(e, "for_cli", None)
        print(f"pe-tabular: error: {for_cli() if callable(for_cli) else e}", file=sys.stderr)
        if getattr(args, "verbose", False):
            raise
        return EXIT_USAGE
    except MemoryLimitExceeded as e:  # --max-memory: a setting to change, not a crash
        print(f"pe-tabular: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # full disk, I/O error: nothing partial is left (atomic writes)
        print(f"pe-tabular: error: {e.strerror or e} ({e.filename or 'output'}); free space or choose another "
              "--out; nothing was left half-written", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as e:
        what = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        ck = getattr(args, "checkpoint", None)
        hint = (f"; rerun with --resume --checkpoint {ck} to continue from the last release"
                if ck and Path(ck).is_dir() and any(Path(ck).iterdir()) else "; nothing was left half-written")
        print(f"pe-tabular: {what}{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        warnings.showwarning = saved_showwarning
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        for h in list(root.handlers):
            root.removeHandler(h)
        root.setLevel(saved_logging[0])
        for h in saved_logging[1]:
            root.addHandler(h)


def _command_name(args: argparse.Namespace) -> str:
    """``traces synth``, ``synth``, ``digits evaluate``: the command as the user typed it."""
    command = getattr(args, "command", None) or "pe-tabular"
    sub = getattr(args, f"{command}_command", None)
    return f"{command} {sub}" if sub else command


def _import_error(e: ImportError, command: str) -> int:
    """A missing optional dependency: exit 2 and one line naming the extra to install; any other import
    error is a broken installation or a bug, and keeps its traceback (exit 1)."""
    line = missing_extra(e)
    if line is None:
        raise e
    print(f"pe-tabular: error: {command} {line}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
