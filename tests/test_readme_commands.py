"""Every command line of the README's "Use it" block runs, as written, on stand-in files of the names it
uses (Adult slices for the tables, simulated flows for traces, a small rendered set for digits): a flag
renamed in the CLI or forgotten in the README fails here, not in a new user's first hour."""

from __future__ import annotations

import contextlib
import io
import re
import shlex

import numpy as np
import pytest
from conftest import ROOT

from pe_tabular.cli import main
from pe_tabular.tables.datasets import adult_schema, load_adult


def readme_commands() -> list[str]:
    """The `pe-tabular ...` lines of the first bash block after "## Use it", comments dropped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Use it.*?```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no bash block under '## Use it'"
    lines = [ln.split("  #", 1)[0].strip() for ln in block.group(1).splitlines()]
    return [ln for ln in lines if ln.startswith("pe-tabular ")]


def _types_for_adult() -> str:
    """The README elides the --types list (`age=integer,...`); the stand-in data gets the whole list."""
    return ",".join(f"{c.name}={c.type}" for c in adult_schema().columns)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("readme")
    load_adult("train").head(1200).to_csv(d / "private.csv", index=False)
    load_adult("train").iloc[1200:].to_csv(d / "public.csv", index=False)  # disjoint, holds every category
    load_adult("test").head(400).to_csv(d / "test.csv", index=False)
    assert main(["traces", "simulate", "--n", "400", "--time-window", "2016-04-11T00:00Z", "2016-04-11T09:00Z",
                 "--out", str(d / "flows.csv"), "-q"]) == 0
    from renderers.digits.io import write_npz
    from renderers.digits.synth import DigitsConfig, render_baseline

    x, y = render_baseline(DigitsConfig(renderer="font"), np.random.default_rng(0), 300)
    write_npz(d / "mnist.npz", x, y)
    return d


@pytest.mark.slow
@pytest.mark.parametrize("line", readme_commands())
def test_readme_command_runs(line, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    argv = shlex.split(line)[1:]
    out_file = None
    if ">" in argv:  # `... > schema.json`: the shell's redirection
        i = argv.index(">")
        argv, out_file = argv[:i], argv[i + 1]
    argv = [_types_for_adult() if a == "age=integer,..." else a for a in argv]
    argv = [str(workdir / "mnist.npz") if a == "../shared/data/mnist" else a for a in argv]  # a small stand-in
    if argv[:2] == ["digits", "synth"]:
        argv += ["--population", "60", "--iterations", "1", "--n-out", "60"]  # seconds, not minutes
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    assert rc == 0, line
    if out_file:
        (workdir / out_file).write_text(buf.getvalue())
