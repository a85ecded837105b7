"""Fault injection: kill -9 a synth at a random moment, resume it, and check nothing was lost or paid twice.

    nice -n 10 python benchmarks/fault_injection.py --trials 20 --write

For each wing (tables, traces, digits) one uninterrupted run gives the reference: its duration and its
ledger (every release, its σ). Each trial then starts the same command with ``--checkpoint``, sends
SIGKILL at a uniformly random moment of that duration (nothing can run on SIGKILL: no handler, no
clean-up), and reruns it with ``--resume``. Counted per wing:

* crashes      — the resumed run did not exit 0;
* re-spent     — a release paid twice: a repeated ledger entry, more entries than saved releases, or an
                 ε above the uninterrupted run's;
* half-written — an output file at its final name that cannot be read whole, right after the kill or
                 after the resume (temporaries of our own naming, ``.NAME.*.pe-tmp``, are not outputs;
                 the next write removes them, which is counted too: ``stale temporaries`` after resume).

``--write`` replaces the '## Fault injection' section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks.common import machine, write_section  # noqa: E402
from pe_tabular.io_utils import TMP_SUFFIX  # noqa: E402

HEADING = "Fault injection"


@dataclass
class Wing:
    """How to run one wing's synth on small inputs, and how to check its outputs."""

    name: str
    argv: Callable[[Path, Path], list[str]]  # (work dir, output path) -> argv after `pe-tabular`
    output: str  # the output path relative to the work dir
    ledger: str  # the ledger path relative to the work dir
    readable: Callable[[Path], bool]  # is this output whole?


def _prepare(work: Path) -> None:
    """Small private inputs for the three wings, written once per trial folder."""
    from pe_tabular.tables.datasets import adult_schema, load_adult

    load_adult("train").head(3000).to_csv(work / "adult.csv", index=False)
    adult_schema().save(work / "adult.json")
    rng = np.random.default_rng(0)
    n = 3000
    flows = pd.DataFrame({
        "srcip": rng.integers(167772160, 167772160 + 4000, n), "dstip": rng.integers(3232235520, 3232235520 + 500, n),
        "srcport": rng.integers(1024, 65535, n), "dstport": rng.choice([53, 80, 443], n),
        "proto": rng.choice(["TCP", "UDP"], n), "ts": np.sort(rng.integers(0, 3_600_000_000, n)),
        "td": rng.exponential(1.0, n).round(3), "pkt": rng.integers(1, 20, n), "byt": rng.integers(40, 20000, n)})
    flows.assign(byt=np.maximum(flows.byt, 40 * flows.pkt)).to_csv(work / "flows.csv", index=False)
    np.savez(work / "digits.npz", images=rng.integers(0, 255, (2000, 28, 28)).astype(np.uint8),
             labels=np.arange(2000) % 10)


def _csv_whole(p: Path) -> bool:
    try:
        return len(pd.read_csv(p)) > 0
    except Exception:  # noqa: BLE001 - any failure to read it whole is what we count
        return False


def _npz_whole(p: Path) -> bool:
    try:
        with np.load(p, allow_pickle=False) as z:
            return len(z["images"]) == len(z["labels"]) > 0
    except Exception:  # noqa: BLE001
        return False


WINGS = {
    "tables": Wing("tables", lambda w, o: ["synth", str(w / "adult.csv"), "--schema", str(w / "adult.json"), "--out",
                                           str(o), "--iterations", "3", "--population", "4000", "--samples", "3000",
                                           "--seed", "0"],
                   "synth.csv", "synth.privacy.json", _csv_whole),
    "traces": Wing("traces", lambda w, o: ["traces", "synth", str(w / "flows.csv"), "--epsilon", "2", "--time-window",
                                           "0", "3600", "--out", str(o), "--iterations", "4", "--population", "2000",
                                           "--n", "3000", "--seed", "0"],
                   "synth.csv", "synth.privacy.json", _csv_whole),
    "digits": Wing("digits", lambda w, o: ["digits", "synth", "--private", str(w / "digits.npz"), "--epsilon", "2",
                                           "--out", str(o), "--iterations", "4", "--population", "400", "--n-out",
                                           "1000", "--seed", "0"],
                   "run/synthetic.npz", "run/synthetic.privacy.json", _npz_whole),
}


def _cmd(wing: Wing, work: Path, extra: list[str]) -> list[str]:
    out = work / (wing.output if wing.name != "digits" else "run")
    return [sys.executable, "-m", "pe_tabular.cli", *wing.argv(work, out), *extra, "-q"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _ledger_of(wing: Wing, work: Path) -> dict | None:
    p = work / wing.ledger
    if not p.exists() and wing.name == "traces":  # the naming before `ledger_path`
        p = work / "synth.privacy.json"
    return json.loads(p.read_text()) if p.exists() else None


@dataclass
class Tally:
    wing: str
    trials: int = 0
    killed_mid_run: int = 0
    crashes: int = 0
    respent: int = 0
    half_written: int = 0
    stale_temporaries: int = 0
    notes: list[str] = field(default_factory=list)


def reference(wing: Wing, base: Path) -> tuple[float, float]:
    work = base / f"{wing.name}-reference"
    work.mkdir()
    _prepare(work)
    t0 = time.perf_counter()
    r = subprocess.run(_cmd(wing, work, ["--checkpoint", str(work / "ck")]), env=_env(), cwd=work,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{wing.name} reference run failed: {r.stderr[-2000:]}")
    return time.perf_counter() - t0, float(_ledger_of(wing, work)["epsilon"])


def trial(wing: Wing, base: Path, i: int, duration: float, epsilon: float, rng: random.Random,
          tally: Tally) -> None:
    work = base / f"{wing.name}-{i:03d}"
    work.mkdir()
    _prepare(work)
    ck = work / "ck"
    proc = subprocess.Popen(_cmd(wing, work, ["--checkpoint", str(ck)]), env=_env(), cwd=work,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(rng.uniform(0.0, duration))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        tally.killed_mid_run += 1
    proc.wait()
    out = work / wing.output
    if out.exists() and not wing.readable(out):
        tally.half_written += 1
        tally.notes.append(f"{wing.name} trial {i}: half-written output after the kill")
    r = subprocess.run(_cmd(wing, work, ["--checkpoint", str(ck), "--resume"]), env=_env(), cwd=work,
                       capture_output=True, text=True)
    tally.trials += 1
    if r.returncode != 0:
        tally.crashes += 1
        tally.notes.append(f"{wing.name} trial {i}: resume exited {r.returncode}: {r.stderr.strip()[-300:]}")
        return
    if not wing.readable(out):
        tally.half_written += 1
        tally.notes.append(f"{wing.name} trial {i}: output not whole after the resume")
    led = _ledger_of(wing, work) or {"releases": [], "epsilon": float("inf")}
    whats = [rel["what"] for rel in led["releases"]]
    saved = len(list(ck.glob("release_*.npz")))
    # a release paid twice shows as a repeated entry, as more entries than the checkpoint saved releases, or as
    # an epsilon above the run's (the number of releases may differ from the reference: some pipelines choose
    # how many measurements to make from earlier noisy releases, under the privacy filter)
    if len(whats) != len(set(whats)) or len(whats) != saved or led["epsilon"] > epsilon * (1 + 1e-9):
        tally.respent += 1
        tally.notes.append(f"{wing.name} trial {i}: {len(whats)} ledger entries ({len(set(whats))} distinct), "
                           f"{saved} saved releases, epsilon {led['epsilon']}")
    tally.stale_temporaries += len(list(work.rglob(f".*{TMP_SUFFIX}")))


def run(wings: list[str], trials: int, seed: int, keep: bool = False) -> list[Tally]:
    rng = random.Random(seed)
    base = Path(tempfile.mkdtemp(prefix="pe-faults-"))
    out = []
    try:
        for name in wings:
            wing = WINGS[name]
            duration, epsilon = reference(wing, base)
            tally = Tally(name)
            for i in range(trials):
                trial(wing, base, i, duration, epsilon, rng, tally)
            out.append(tally)
            print(f"{name}: {tally}", flush=True)
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
    return out


def section(tallies: list[Tally], command: str, seconds: float) -> str:
    rows = "\n".join(f"| {t.wing} | {t.trials} | {t.killed_mid_run} | {t.crashes} | {t.respent} | "
                     f"{t.half_written} | {t.stale_temporaries} |" for t in tallies)
    notes = "".join(f"\n- {n}" for t in tallies for n in t.notes)
    return ("Each trial starts a small `synth` of the wing with `--checkpoint`, sends SIGKILL at a "
            "uniformly random moment of the uninterrupted run's duration, then reruns it with `--resume` "
            "(benchmarks/fault_injection.py). *re-spent*: a final ledger with a repeated entry, more entries than "
            "saved releases, or an ε above the uninterrupted run's; *half-written*: an output at its final name "
            "that does not read whole (after the kill or after the resume); *stale temporaries*: our own "
            "`.NAME.*.pe-tmp` files left after the resume.\n\n"
            "| wing | trials | killed mid-run | crashes | releases re-spent | outputs half-written | "
            "stale temporaries |\n"
            f"|---|---|---|---|---|---|---|\n{rows}\n{notes}\n\nCommand: `{command}` ({seconds:.0f} s). Machine: "
            f"{machine('pandas')}.\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wings", nargs="+", default=list(WINGS), choices=list(WINGS))
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the trial folders (printed path)")
    ap.add_argument("--write", action="store_true", help="replace the section in benchmarks/RESULTS.md")
    args = ap.parse_args()
    t0 = time.time()
    tallies = run(args.wings, args.trials, args.seed, args.keep)
    text = section(tallies, "python benchmarks/fault_injection.py " + " ".join(sys.argv[1:]), time.time() - t0)
    print(f"## {HEADING}\n\n{text}")
    if args.write:
        write_section(HEADING, ["", text])


if __name__ == "__main__":
    main()
