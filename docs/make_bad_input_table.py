"""Regenerate the "Bad input: what you see" table of docs/cli.md from real runs of the command line.

    python docs/make_bad_input_table.py            # prints the table
    python docs/make_bad_input_table.py --write    # replaces the section in docs/cli.md

Every row runs `pe-tabular` in-process on a small file in a temporary folder and records the exit code
and the first line of stderr (paths shortened), so the documentation shows what a user really sees.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pe_tabular.cli import main  # noqa: E402

SECTION = "## Bad input: what you see"
SCHEMA = {"columns": [{"name": "age", "type": "integer", "lower": 0, "upper": 100},
                      {"name": "color", "type": "categorical", "categories": ["red", "green", "blue"]}]}
TINY = ["--population", "60", "--iterations", "1", "--k", "2", "--samples", "30", "--voter", "numpy"]


def _files(d: Path) -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"age": rng.integers(18, 90, 200), "color": rng.choice(["red", "green", "blue"], 200)})
    df.to_csv(d / "data.csv", index=False)
    df.assign(notes="x").to_csv(d / "extra.csv", index=False)
    df.assign(color=np.where(np.arange(200) == 7, "purple", df.color)).to_csv(d / "purple.csv", index=False)
    (d / "latin1.csv").write_bytes("age,color\n30,r\u00e9d\n".encode("latin-1"))
    df.to_parquet(d / "data.parquet")
    (d / "cut.parquet").write_bytes((d / "data.parquet").read_bytes()[:300])
    (d / "schema.json").write_text(json.dumps(SCHEMA))
    bad = {"obj": {"columns": {"age": 1}}, "ints": {"columns": [1, 2]},
           "rounding": {"columns": [{"name": "age", "type": "float", "lower": 0, "upper": 1, "rounding": "x"}]},
           "lower": {"columns": [{"name": "age", "type": "float", "lower": "one", "upper": 1}]},
           "cats": {"columns": [{"name": "color", "type": "categorical", "categories": "cauc"}]},
           "nullable": {"columns": [{"name": "color", "type": "categorical", "categories": ["a"],
                                     "nullable": "maybe"}]}}
    for k, v in bad.items():
        (d / f"s_{k}.json").write_text(json.dumps(v))
    (d / "flows.csv").write_text("srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt\n"
                                 "167772161,167772162,40000,80,TCP,0,0.1,3,300\n")
    os.mkdir(d / "mnist")
    np.savez(d / "mnist" / "synthetic.npz", images=np.zeros((20, 28, 28), np.uint8), labels=np.arange(20) % 10)
    (d / "ck").mkdir()
    (d / "ck" / "release_vote_001.npz").write_bytes(b"another run")


def _synth(*a: str, data: str = "data.csv", schema: str = "schema.json", out: str = "o.csv") -> list[str]:
    return ["synth", data, "--schema", schema, "--out", out, *a]


CASES: list[tuple[str, list[str]]] = [
    ("`--out` is the input file", _synth(out="data.csv")),
    ("`--out` is a symlink to the input", ["@symlink", *_synth(out="link.csv")]),
    ("`schema infer --out` is the input", ["schema", "infer", "data.csv", "--out", "data.csv"]),
    ("`traces synth --out` is the input", ["traces", "synth", "flows.csv", "--epsilon", "1", "--time-window", "0", "9",
                                           "--out", "flows.csv"]),
    ("`traces synth --time-window` that misses the trace (its records are clipped into the window silently: "
     "whether any lies outside is private; `--show-invalid` says so on the terminal)",
     ["traces", "synth", "flows.csv", "--epsilon", "1", "--time-window", "100", "200", "--out", "t.csv"]),
    ("`digits synth --out` into the `--private` folder", ["digits", "synth", "--private", "mnist", "--epsilon", "1",
                                                         "--out", "mnist", "--format", "both"]),
    ("schema: `columns` is an object", _synth(schema="s_obj.json")),
    ("schema: `columns` is `[1, 2]`", _synth(schema="s_ints.json")),
    ("schema: `rounding: \"x\"`", _synth(schema="s_rounding.json")),
    ("schema: `lower: \"one\"` on a float column", _synth(schema="s_lower.json")),
    ("schema: `categories: \"cauc\"`", _synth(schema="s_cats.json")),
    ("schema: `nullable: \"maybe\"`", _synth(schema="s_nullable.json")),
    ("a category the schema does not list", _synth(*TINY, data="purple.csv")),
    ("… with `--on-invalid clip` (no 'other' bucket)", _synth(*TINY, "--on-invalid", "clip", data="purple.csv")),
    ("a data column the schema does not name", _synth(*TINY, data="extra.csv")),
    ("`--epsilon inf`", _synth(*TINY, "--epsilon", "inf")),
    ("a latin-1 file without `--encoding`", _synth(*TINY, data="latin1.csv")),
    ("a truncated Parquet file", _synth(*TINY, data="cut.parquet")),
    ("`--checkpoint` holding another run, no `--resume`", _synth(*TINY, "--checkpoint", "ck")),
    ("`--delta 2`", _synth("--delta", "2")),
    ("`--population 0`", _synth("--population", "0")),
]


def _progress_line(line: str) -> bool:
    """The plain progress lines a non-terminal stderr gets (a pass starting, a PE iteration done): not a
    message about the input."""
    return line.endswith(" ...") or re.search(r" iteration \d+/\d+ done: ", line) is not None


def run_case(argv: list[str], d: Path) -> tuple[int, str]:
    if argv[0] == "@symlink":
        argv = argv[1:]
        if not (d / "link.csv").exists():
            os.symlink(d / "data.csv", d / "link.csv")
    err = io.StringIO()
    cwd = os.getcwd()
    os.chdir(d)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = main(argv)
            except SystemExit as e:
                rc = int(e.code) if isinstance(e.code, int) else 1
    finally:
        os.chdir(cwd)
    lines = [ln for ln in err.getvalue().replace("\r", "\n").splitlines()
             if ln.strip() and "%|" not in ln and "it/s" not in ln and not re.search(r": \d\d:\d\d$", ln)
             and not ln.startswith("usage:") and not ln.startswith(" ") and not _progress_line(ln)]
    text = " / ".join(lines[:2]).replace(str(d) + os.sep, "").replace(str(d), ".")
    return rc, re.sub(r"\s+", " ", text)


def table(cases: list[tuple[str, list[str]]] = CASES, run: Callable = run_case) -> str:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _files(d)
        for what, argv in cases:
            rc, msg = run(argv, d)
            shown = " ".join(a for a in argv if a != "@symlink").replace(" " + " ".join(TINY), "")
            cell = msg.replace("|", "\\|")
            rows.append(f"| {what} | `pe-tabular {shown}` | {rc} | {cell} |")
    intro = ("Generated by `python docs/make_bad_input_table.py --write` from real runs (a small table in a temporary "
             "folder). Messages name the flag, file or column and the fix; they never show a private value, a row "
             "number or a count (privacy rule 7; `synth --show-invalid` prints offending values and rows to the "
             "terminal, never to a file). Warnings start `pe-tabular: warning:` and the run goes on. The runs that "
             "get as far as synthesis also pass small settings (`" + " ".join(TINY) + "`), left out of the commands "
             "shown.")
    return (f"{SECTION}\n\n{intro}\n\n"
            "| input | command | exit | what the user sees (stderr) |\n|---|---|---|---|\n" + "\n".join(rows) + "\n")


def write(text: str) -> None:
    from pe_tabular.io_utils import atomic_write_text

    path = ROOT / "docs" / "cli.md"
    doc = path.read_text()
    if SECTION in doc:
        a = doc.index(SECTION)
        b = doc.find("\n## ", a + len(SECTION))
        doc = doc[:a] + text + (doc[b + 1:] if b >= 0 else "")
    else:
        doc = doc.rstrip() + "\n\n" + text
    atomic_write_text(path, doc)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true")
    text = table()
    print(text)
    if ap.parse_args().write:
        write(text)
