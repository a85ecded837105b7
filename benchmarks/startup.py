"""CLI start-up: CPU seconds of `pe-tabular --help` and `pe-tabular privacy sigma` beside `import pandas`.

Each command runs in a fresh interpreter; its CPU time (user + system) is read from
``resource.getrusage(RUSAGE_CHILDREN)`` before and after, so the figure covers the child alone, on a
shared machine as on an idle one (wall time would count the neighbours). The goal (issue 24): each
command costs at most half of ``python -c "import pandas"``. The three are interleaved, round by round,
so a change in the machine's load hits them alike; the median of ``--repeat`` rounds is reported.

    python benchmarks/startup.py             # prints the table, rewrites RESULTS.md's "CLI start-up"
    python benchmarks/startup.py --no-write  # prints only
    git archive COMMIT | tar -x -C /tmp/before && python benchmarks/startup.py --before /tmp/before   # + old code
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ROOT, machine, write_section  # noqa: E402

GOAL = 0.5  # at most this fraction of `import pandas`


def entry_point() -> list[str]:
    """The installed `pe-tabular` script beside this interpreter (what users run), else `python -m`."""
    script = Path(sys.executable).with_name("pe-tabular")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pe_tabular.cli"]


CLI_ARGS = {"pe-tabular --help": ["--help"],
            "pe-tabular privacy sigma --epsilon 1 --iterations 10": ["privacy", "sigma", "--epsilon", "1",
                                                                     "--iterations", "10"]}


def commands(before: Path | None) -> dict[str, tuple[list[str], Path]]:
    """name -> (argv, the checkout on PYTHONPATH)."""
    cmds = {'python -c "import pandas"': ([sys.executable, "-c", "import pandas"], ROOT)}
    for name, args in CLI_ARGS.items():
        cmds[name] = ([*entry_point(), *args], ROOT)
        if before is not None:
            cmds[f"{name} (before)"] = ([*entry_point(), *args], before)
    return cmds


def cpu_seconds(argv: list[str], root: Path) -> float:
    """User + system CPU seconds of one run of ``argv`` (a child process, waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(repeat: int, before: Path | None) -> dict[str, float]:
    cmds = commands(before)
    for argv, root in cmds.values():  # warm the file cache and the .pyc files: every round measures the same
        cpu_seconds(argv, root)
    runs: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(repeat):
        for name, (argv, root) in cmds.items():
            runs[name].append(cpu_seconds(argv, root))
    return {name: statistics.median(v) for name, v in runs.items()}


def report(medians: dict[str, float], repeat: int, before_flag: str = "") -> list[str]:
    base = medians['python -c "import pandas"']
    cli = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(entry_point()))
    lines = ["", f"Median CPU seconds (user + system, `getrusage(RUSAGE_CHILDREN)`) of {repeat} interleaved runs "
             f"each, in fresh interpreters; goal: each command ≤ {GOAL:g}× `import pandas` (issue 24).", "",
             "| command | CPU s | × import pandas | goal met |", "|---|---|---|---|"]
    for name, v in medians.items():
        ratio = v / base
        met = "—" if name.startswith("python") or name.endswith("(before)") else ("yes" if ratio <= GOAL else "NO")
        lines.append(f"| `{name}` | {v:.3f} | {ratio:.2f} | {met} |")
    lines += ["", "\"(before)\": the code before issue 24's start-up work, which imported the evolution loop, "
              "scipy.optimize, scipy.stats and every wing before parsing flags. Now flags are parsed first, only "
              "the wing that owns the command is imported, and the accountant behind `privacy` needs neither "
              "scipy nor numpy (tests/test_cli_startup.py checks the imports).", "",
              "```", f"python benchmarks/startup.py {before_flag}  # entry point: {cli}".replace("  #", " #"), "```",
              f"Machine: {machine('pandas', 'scipy')}."]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--before", type=Path, help="also time the CLI of this checkout (e.g. an older commit)")
    ap.add_argument("--before-label", default="", help="how RESULTS.md names --before (e.g. its commit)")
    args = ap.parse_args()
    medians = measure(args.repeat, args.before)
    flag = f"--before <checkout of {args.before_label or args.before}>" if args.before else ""
    lines = report(medians, args.repeat, flag)
    print("\n".join(lines))
    if not args.no_write:
        write_section("CLI start-up", lines)


if __name__ == "__main__":
    main()
