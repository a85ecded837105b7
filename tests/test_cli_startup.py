"""A CLI that starts fast: flags are parsed before any heavy import, and only the wing that owns the
command is imported (behavioural: which modules get imported, not how long it takes; the timing is
benchmarks/startup.py's)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from conftest import ROOT

from pe_tabular import cli
from pe_tabular.wings import WINGS

HEAVY = ("pandas", "scipy", "numpy", "numba", "pe_tabular.evolution", "pe_tabular.tables", "simulators", "renderers")


def _modules_after(code: str) -> dict[str, bool]:
    """Run ``code`` in a fresh interpreter; which of HEAVY (and their submodules) it imported."""
    probe = (f"import sys\n{code}\nimport json\n"
             f"print(json.dumps({{h: any(m == h or m.startswith(h + '.') for m in sys.modules) for h in {HEAVY!r}}}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_and_privacy_sigma_import_nothing_heavy():
    for argv in (["--help"], ["privacy", "sigma", "--epsilon", "1", "--iterations", "10"],
                 ["privacy", "epsilon", "--sigma", "11.8", "--iterations", "10"]):
        got = _modules_after(f"from pe_tabular.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass")
        allowed = {"numpy"} if argv[:2] == ["privacy", "epsilon"] else set()  # composing σ's: numpy, no scipy
        assert not [m for m, v in got.items() if v and m not in allowed], (argv, got)


def test_a_wing_command_imports_only_its_own_wing():
    got = _modules_after("from pe_tabular.cli import main\ntry:\n    main(['traces', 'synth', '--help'])\n"
                         "except SystemExit:\n    pass")
    assert got["simulators"] and got["pandas"]
    assert not got["pe_tabular.tables"] and not got["renderers"]


def test_the_registry_lists_each_wing_command_with_the_wings_own_help_line():
    def lines(parser: argparse.ArgumentParser) -> dict[str, str]:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return {a.dest: a.help for a in sub._choices_actions}

    real, listed = lines(cli.build_parser()), lines(cli.build_parser(wings=[]))
    assert real == listed  # same commands, same order, same one-line help
    assert set(real) == {"privacy"} | {c for w in WINGS for c in w.commands}


def test_the_owner_of_a_command_is_found_past_options():
    assert cli.wing_of(["synth", "x.csv"]) == "tables"
    assert cli.wing_of(["-h", "traces", "synth"]) == "traces"
    assert cli.wing_of(["privacy", "sigma"]) is None and cli.wing_of(["--help"]) is None
