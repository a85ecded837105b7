"""The ``pe-tabular`` command.

Exit codes: 0 success; 1 unexpected internal error; 2 bad usage or bad input (the message names the
flag, column or row and the fix); 3 privacy budget/accounting error; 130 interrupted (the run can be
continued with --resume when --checkpoint was given).

Every command group (tables, traces, digits) belongs to a wing and is imported lazily: each
module named in ``_PLUGINS`` exposes ``add_parser(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from pe_tabular.cli_support import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PRIVACY,
    EXIT_USAGE,
    Formatter,
    UsageError,
    add_common,
    delta_arg,
    emit,
    positive_float,
    positive_int,
)
from pe_tabular.evolution import ConfigError
from pe_tabular.privacy.accountant import AccountingError, epsilon_for_sigmas, gdp_mu, sigma_for_epsilon

_PLUGINS: dict[str, str] = {  # the wing registry: each module exposes add_parser(subparsers)
    "tables": "pe_tabular.tables.cli",
    "traces": "simulators.network.cli",
    "digits": "renderers.digits.cli",
}
log = logging.getLogger("pe_tabular")


def _privacy(args: argparse.Namespace) -> int:
    if args.what == "epsilon":
        if args.sigma is None:
            raise UsageError("privacy epsilon needs --sigma")
        eps = epsilon_for_sigmas([args.sigma] * args.iterations, args.delta, args.sensitivity)
        emit(args, {"epsilon": eps, "sigma": args.sigma, "iterations": args.iterations, "delta": args.delta},
             f"{eps:.6g}")
    else:
        if args.epsilon is None:
            raise UsageError("privacy sigma needs --epsilon")
        sig = sigma_for_epsilon(args.epsilon, args.delta, args.iterations, sensitivity=args.sensitivity)[0]
        emit(args, {"sigma": sig, "epsilon": args.epsilon, "iterations": args.iterations, "delta": args.delta,
                    "mu": gdp_mu(args.epsilon, args.delta)}, f"{sig:.6g}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="pe-tabular", formatter_class=Formatter,
        description="Differentially private synthetic data without training (Private Evolution).",
        epilog="examples:\n  pe-tabular demo --out demo-out\n"
               "  pe-tabular synth adult.csv --schema schema.json --epsilon 1 --out synth.csv\n"
               "  pe-tabular privacy sigma --epsilon 1 --iterations 5 --delta 1e-5\n\n" + __doc__.split("\n\n")[1],
    )
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("privacy", formatter_class=Formatter, help="privacy calculator (sigma <-> epsilon)",
                       epilog="examples:\n  pe-tabular privacy epsilon --sigma 11.8 --iterations 10 --delta 1e-5\n"
                              "  pe-tabular privacy sigma --epsilon 1 --iterations 10 --delta 1e-5 --json")
    p.add_argument("what", choices=["epsilon", "sigma"])
    p.add_argument("--sigma", type=positive_float("--sigma"))
    p.add_argument("--epsilon", type=positive_float("--epsilon"))
    p.add_argument("--iterations", type=positive_int("--iterations"), default=1)
    p.add_argument("--delta", type=delta_arg, default=1e-5)
    p.add_argument("--sensitivity", type=positive_float("--sensitivity"), default=1.0)
    add_common(p)
    p.set_defaults(func=_privacy)
    for name, module in _PLUGINS.items():
        try:
            importlib.import_module(module).add_parser(sub)
        except ImportError as e:  # an optional domain whose extra is not installed
            log.debug("command group %s unavailable: %s", name, e)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    level = logging.ERROR if getattr(args, "quiet", False) else (
        logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except AccountingError as e:
        print(f"pe-tabular: privacy error: {e}", file=sys.stderr)
        return EXIT_PRIVACY
    except ConfigError as e:
        print(f"pe-tabular: error: {e.for_cli()}", file=sys.stderr)
        if getattr(args, "verbose", False):
            raise
        return EXIT_USAGE
    except (UsageError, ValueError, FileNotFoundError, FileExistsError, PermissionError, KeyError) as e:
        print(f"pe-tabular: error: {e}", file=sys.stderr)
        if getattr(args, "verbose", False):
            raise
        return EXIT_USAGE
    except OSError as e:  # full disk, I/O error: nothing partial is left (atomic writes)
        print(f"pe-tabular: error: {e.strerror or e} ({e.filename or 'output'}); free space or choose another "
              "--out; nothing was left half-written", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("pe-tabular: interrupted; rerun with --resume to continue from the last checkpoint", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
