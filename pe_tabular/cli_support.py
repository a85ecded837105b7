"""What every command of every wing shares: exit codes, the usage error, flag parsers, the common
flags (-q/-v/--json), output checks made *before* any work, and reading JSON sidecars.

Wings import these public names; the entry point (:mod:`pe_tabular.cli`) maps exceptions to exit
codes. Keeping one copy matters because each of these is a promise to the user (a flag error names
the flag; an unwritable output is refused before a single private row is read).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

from pe_tabular.errors import UsageError
from pe_tabular.io_utils import TMP_SUFFIX

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_PRIVACY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

# optional dependencies (top-level module) -> the extra of pyproject.toml that installs them
EXTRAS: dict[str, str] = {
    "dpkt": "traces", "torch": "digits", "jax": "jax", "jaxlib": "jax", "openai": "llm", "sdv": "sdv",
    "dask": "dask", "distributed": "dask", "dp_accounting": "subsample", "mbi": "bench", "opacus": "bench",
    "faiss": "bench", "xllamacpp": "local-llm",
}


def missing_extra(error: ImportError) -> str | None:
    """``needs 'dpkt', which is not installed: pip install 'pe-tabular[traces]'`` when ``error`` is a missing
    optional dependency, else None (a core module that fails to import is a broken installation)."""
    module = (error.name or "").split(".")[0]
    extra = EXTRAS.get(module)
    if extra is None or not isinstance(error, ModuleNotFoundError):
        return None
    return f"needs {module!r}, which is not installed: pip install 'pe-tabular[{extra}]'"


class Parser(argparse.ArgumentParser):
    """A flag error is one line a user reads — the flag, the problem, where the help is — not a usage dump
    with the message at its end. Subparsers inherit the class (argparse's default parser_class)."""

    def error(self, message: str) -> NoReturn:
        head, sep, rest = message.partition(": ")
        if head.startswith("argument ") and sep and any(f in rest for f in head[len("argument "):].split("/")):
            message = rest  # our flag parsers' messages name the flag already ("--epsilon must be > 0 ...")
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Epilogs (examples) kept verbatim; a default is shown only where it says something."""

    def _get_help_string(self, action: argparse.Action) -> str:
        h = action.help or ""
        if action.default is None or action.default is False or "default" in h:
            return h
        return super()._get_help_string(action)


def _number(flag: str, cast: Callable[[str], float], kind: str, minimum: float, strict: bool,
            allow_inf: bool = False) -> Callable[[str], Any]:
    """An argparse ``type`` that parses ``cast(s)`` and checks it against ``minimum`` (``strict``: >)."""
    def parse(s: str) -> Any:
        if allow_inf and s.strip().lower() in ("inf", "infinity"):
            return math.inf
        try:
            v = cast(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be {kind}, got {s!r}") from None
        ok = (v > minimum if strict else v >= minimum) and not (isinstance(v, float) and math.isnan(v))
        if not ok:
            hint = " (use 'inf' for no privacy)" if allow_inf else ""
            raise argparse.ArgumentTypeError(f"{flag} must be {'>' if strict else '>='} {minimum:g}{hint}, got {s!r}")
        return v
    return parse


def positive_float(flag: str) -> Callable[[str], float]:
    """A float > 0 (NaN refused)."""
    return _number(flag, float, "a number", 0.0, strict=True)


def positive_int(flag: str) -> Callable[[str], int]:
    """An int >= 1 (0 would otherwise silently mean 'use the default')."""
    return _number(flag, int, "a whole number", 1, strict=False)


def epsilon_arg(flag: str = "--epsilon") -> Callable[[str], float]:
    """ε > 0, or 'inf' for a run without noise (not private; said so in the ledger)."""
    return _number(flag, float, "a number", 0.0, strict=True, allow_inf=True)


def delta_arg(s: str) -> float:
    """δ in (0, 1)."""
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--delta must be a number, got {s!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"--delta must be in (0, 1), e.g. 1e-5, got {s!r}")
    return v


def add_common(p: argparse.ArgumentParser) -> None:
    """-q/--quiet, -v/--verbose, --json: on every command."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true",
                   help="only errors (and the answer of a command whose output is its answer: evaluate, privacy)")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--json", action="store_true", help="print a machine-readable JSON summary on stdout")


def memory_arg(s: str) -> int:
    """A size for --max-memory (4G, 512M, 1.5GiB) in bytes."""
    from pe_tabular.memory import parse_memory  # noqa: PLC0415 - keeps this module's imports light

    try:
        return parse_memory(s)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_scale_flags(p: argparse.ArgumentParser, chunk_rows: int = 65_536) -> None:
    """--max-memory and --chunk-rows, for commands that stream the private data (pe_tabular.source)."""
    p.add_argument("--max-memory", type=memory_arg, default=None, metavar="SIZE",
                   help="fail with a clear error when this process's memory passes SIZE (e.g. 4G) instead of "
                        "swapping; checked between chunks of the private data (default: no limit)")
    p.add_argument("--chunk-rows", type=positive_int("--chunk-rows"), default=chunk_rows, metavar="N",
                   help="rows per chunk when streaming the private data (smaller: less memory, more overhead)")


def quiet(args: argparse.Namespace) -> bool:
    """True when nothing but errors (and --json's summary) may reach the terminal."""
    return bool(getattr(args, "quiet", False) or getattr(args, "json", False))


def emit(args: argparse.Namespace, summary: dict[str, Any], text: str, answer: bool = False) -> None:
    """Print either the JSON summary or the human text. --quiet drops the text of a command that wrote
    its output elsewhere (a summary line), but not an ``answer``: what evaluate or privacy computed IS
    their output, and `--quiet` that printed nothing would leave the user with nothing."""
    if getattr(args, "json", False):
        print(json.dumps(summary, default=str))
    elif answer or not getattr(args, "quiet", False):
        print(text)


def sidecar_path(output: str | os.PathLike, kind: str) -> Path:
    """``NAME.KIND.json`` beside ``NAME.csv`` / ``NAME.parquet`` / ``NAME.npz`` / ``NAME.pcap`` (compression
    suffixes such as ``.gz`` are dropped too): one naming of sidecars in every wing."""
    p = Path(output)
    stem = p.name
    for sfx in (".gz", ".bz2", ".xz"):
        stem = stem.removesuffix(sfx)
    return p.with_name(f"{Path(stem).stem}.{kind}.json")


def ledger_path(output: str | os.PathLike) -> Path:
    """The privacy ledger of an output: ``NAME.privacy.json``."""
    return sidecar_path(output, "privacy")


def history_path(output: str | os.PathLike) -> Path:
    """The per-iteration statistics of the run that made an output: ``NAME.history.json``."""
    return sidecar_path(output, "history")


def timing_record(wall_seconds: float, cpu_seconds: float | None = None) -> dict[str, Any]:
    """Run time for a sidecar, labelled as what it is: it grows with the number of private records, and
    no DP guarantee covers it (drop it before sharing outputs if that matters)."""
    rec: dict[str, Any] = {"wall_seconds": round(float(wall_seconds), 1)}
    if cpu_seconds is not None:
        rec["cpu_seconds"] = round(float(cpu_seconds), 1)
    rec["note"] = ("timing is not covered by the DP guarantee and grows with the number of private records; "
                   "remove it before sharing if that matters")
    return rec


def check_writable_dir(directory: Path, flag: str, what: str) -> None:
    """Before any work: create ``directory`` (the parent of an output) if it is missing, as --checkpoint
    directories are, and fail clearly when it cannot be created or written."""
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{flag} {what}: {directory} is a file, not a directory; choose another {flag}")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{flag} {what}: directory {directory} cannot be created ({e.strerror}); choose another "
                         f"{flag}") from None
    if not os.access(directory, os.W_OK):
        raise UsageError(f"{flag} {what}: directory {directory} is not writable; choose another {flag}")
    # os.access answers yes for root everywhere, also where no file can be made (/proc, a read-only mount):
    # make (and remove) a temporary as the final write will, so the run fails now, not after all its work
    try:
        fd, probe = tempfile.mkstemp(prefix=".pe-tabular-probe.", suffix=TMP_SUFFIX, dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError(f"{flag} {what}: no file can be written in {directory} ({e.strerror}); choose another "
                         f"{flag}") from None


def check_out_file(path: str | os.PathLike, flag: str, suffixes: Iterable[str], kind: str) -> Path:
    """An output file whose directory exists and is writable and whose name ends in one of ``suffixes``
    (``kind`` names the format in the error, e.g. 'a .csv or .parquet file')."""
    p = Path(path)
    sfx = tuple(suffixes)
    if p.suffix.lower() not in sfx:
        raise UsageError(f"{flag} {p}: use {kind} (a name ending in {' or '.join(sfx)})")
    check_writable_dir(p.parent if str(p.parent) else Path("."), flag, str(p))
    return p


def check_html_out(path: str | os.PathLike, flag: str = "--out") -> Path:
    """A report path: .html in a writable directory."""
    return check_out_file(path, flag, (".html", ".htm"), "an HTML file")


def refuse_overwriting_inputs(outputs: Iterable[str | os.PathLike | None], inputs: Iterable[str | os.PathLike | None],
                              flag: str = "--out") -> None:
    """Refuse, before any work, an output that IS an input — the same path after resolving symlinks and
    relative parts, or the same file through a hard link — or that lies inside an input folder: writing
    it would destroy the (private) input with nothing to recover it from."""
    ins = [Path(i) for i in inputs if i is not None and Path(i).exists()]
    for out in outputs:
        if out is None:
            continue
        o = Path(out)
        o_res = o.resolve()
        for i in ins:
            i_res = i.resolve()
            if i.is_dir():
                if o_res == i_res or i_res in o_res.parents:
                    raise UsageError(f"{flag} {o} lies in the input folder {i}; write outputs somewhere else so the "
                                     f"input is never touched")
            elif o_res == i_res or (o.exists() and os.path.samefile(o, i)):
                raise UsageError(f"{flag} {o} is the input file {i}; writing it would destroy the input: choose "
                                 f"another {flag}")


def read_json(path: str | os.PathLike, flag: str) -> Any:
    """A JSON sidecar (ledger, history, run settings); errors name the flag and the file."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{flag} {p} does not exist")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"{flag} {p} is not valid JSON: {e}") from None


def read_history(path: str | os.PathLike | None, flag: str = "--history") -> list[dict[str, Any]] | None:
    """Per-iteration records: a JSON list, or a settings/history file holding a 'history' list."""
    if not path:
        return None
    h = read_json(path, flag)
    if isinstance(h, dict):
        h = h.get("history")
    if not isinstance(h, list) or not all(isinstance(r, dict) and "iteration" in r for r in h):
        raise UsageError(f"{flag} must be a JSON list of per-iteration records (or a settings.json with a "
                         "'history' list), each with an 'iteration'")
    return h
