"""Whole-pipeline privacy audit: the neighbour battery through each wing's real command line.

    nice -n 10 python benchmarks/pipeline_audit.py --only tables --merge     # one slice (minutes)
    nice -n 10 python benchmarks/pipeline_audit.py --only traces --merge
    nice -n 10 python benchmarks/pipeline_audit.py --only digits --merge
    nice -n 10 python benchmarks/pipeline_audit.py --mutations --merge       # does the battery bite?
    python benchmarks/pipeline_audit.py --report --write                     # the table, from the JSON

Every case of ``benchmarks/pipeline_audit_battery.py`` (pair D vs D' x config: schema, --checkpoint,
verbosity, --json) runs its pipeline on D and on D', several times each with the same --seed and fresh
privacy noise, and compares everything the runs ship (pe_tabular/pipeline_audit.py): exit statuses,
stdout (--json events) and stderr line templates, output, sidecars, a DP schema, every checkpoint file.
A field constant on D, constant on D' and different between them is a deterministic leak. Each case
also runs the sensitivity probe: D' continues from D's noisy releases (test-only noise switch) and every
release's exact counts must move by at most its stated sensitivity.

``--mutations`` re-introduces findings 1-7 of issue 23 one at a time
(``benchmarks/pipeline_audit_mutations.py``) and checks that the case named for each flags it; the
older BROKEN variants (record count without noise; 2 candidates per class) are kept here.

Results accumulate in benchmarks/pipeline_audit.json (``--merge`` keeps other slices' results);
``--write`` replaces the '## Whole-pipeline audit' section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.common import machine, write_section  # noqa: E402
from benchmarks.pipeline_audit_battery import PAIRS, CaseResult, Config, Pair, cases, run_case  # noqa: E402
from benchmarks.pipeline_audit_mutations import MUTATIONS, SIGNATURES, attribute  # noqa: E402

HEADING = "Whole-pipeline audit"
JSON_OUT = ROOT / "benchmarks" / "pipeline_audit.json"


@contextlib.contextmanager
def count_without_noise() -> Iterator[None]:
    """BROKEN: every release that measures how many records there are (its ledger name says 'count' or
    'number of') is made without noise, as the output sizes were before the fix."""
    from pe_tabular.privacy.noise import NoiseSource
    from pe_tabular.privacy.release import ReleasePath

    class Silent(NoiseSource):
        def gaussian(self, shape, sigma, release_key):
            return np.zeros(shape)

    real = ReleasePath.release_recorded

    def release_recorded(self, spec, counts):
        if any(w in spec.what.lower() for w in ("count", "number of")):
            return real(ReleasePath(self.ledger, Silent(), self.checkpoint), spec, counts)
        return real(self, spec, counts)

    ReleasePath.release_recorded = release_recorded
    try:
        yield
    finally:
        ReleasePath.release_recorded = real


@contextlib.contextmanager
def two_candidates_per_class() -> Iterator[None]:
    """BROKEN: the old allocation (2 per class) and the old check on the private labels."""
    from pe_tabular import evolution
    from pe_tabular.voting import streaming

    real_allocate, real_nearest = evolution.allocate, evolution.class_conditional_nearest

    def old_nearest(nearest_fn, private, candidates, metric, k, private_labels, candidate_labels, **kw):
        if private_labels is None:
            return real_nearest(nearest_fn, private, candidates, metric, k, None, None, **kw)
        out = np.empty((private.shape[0], k), dtype=np.int64)
        for lab in np.unique(private_labels):  # the old loop: over the classes the PRIVATE rows hold
            prow, cidx = np.flatnonzero(private_labels == lab), np.flatnonzero(candidate_labels == lab)
            if cidx.size < k:
                raise ValueError(f"class {lab!r} has {cidx.size} candidates, fewer than k={k}")
            out[prow] = cidx[nearest_fn(private[prow], candidates[cidx], metric, k=k, **kw)]
        return out

    evolution.allocate = lambda n, shares, minimum=2: real_allocate(n, shares, 2)
    evolution.class_conditional_nearest = old_nearest
    streaming.class_conditional_nearest = old_nearest  # the tables votes run chunk by chunk (SourceVoter)
    try:
        yield
    finally:
        evolution.allocate, evolution.class_conditional_nearest = real_allocate, real_nearest
        streaming.class_conditional_nearest = real_nearest


def _extra_mutations() -> dict[str, tuple[str, object, str, str]]:
    """The older BROKEN variants, as mutations over battery cases."""
    return {"A": ("record count without noise", lambda work: count_without_noise(),
                  "tables / row / ordinary record", "no checkpoint, default, --json"),
            "B": ("record count without noise", lambda work: count_without_noise(),
                  "traces / flow / ordinary record", "no checkpoint, default, --json")}


def _find(pair_name: str, label: str) -> tuple[Pair, Config]:
    for pair, cfg in cases(PAIRS):
        if pair.name == pair_name and cfg.label == label:
            return pair, cfg
    raise KeyError(f"no battery case {pair_name!r} / {label!r}")


def run_mutation(key: str | int, work: Path, repeats: int = 2) -> tuple[str, CaseResult, list[str]]:
    """The case named for mutation ``key``, run with the mutation in place; the findings that match the
    mutation's signature (empty: not caught)."""
    name, mutation, pair_name, label = {**MUTATIONS, **_extra_mutations()}[key]
    pair, cfg = _find(pair_name, label)
    with mutation(work / "case"):
        res = run_case(pair, cfg, work / "case", repeats=repeats, probe=True)
    return name, res, [f for f in res.findings() if SIGNATURES[key](f)]


def _record(res: CaseResult, mutation: str | None = None) -> dict:
    return {**res.as_json(), "wing": res.pair.wing, "unit": res.pair.unit, "kind": res.pair.kind,
            "mutation": mutation, "explained_by": attribute(res.findings())}


def run_battery(only: str | None, repeats: int, probe: bool) -> list[dict]:
    out = []
    todo = [(p, c) for p, c in cases(PAIRS) if not only or only in f"{p.name} | {c.label}"]
    with tempfile.TemporaryDirectory(prefix="pe-pipeline-audit-") as tmp:
        for i, (pair, cfg) in enumerate(todo):
            res = run_case(pair, cfg, Path(tmp) / f"case{i}", repeats=repeats, probe=probe)
            print(f"[{i + 1}/{len(todo)}] {pair.name} | {cfg.label} | {res.seconds:.0f} s | "
                  f"{'FLAGGED ' + '; '.join(res.findings()[:3]) if res.flagged else 'clean'}", flush=True)
            out.append(_record(res))
    return out


def run_mutations(repeats: int) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory(prefix="pe-pipeline-mutations-") as tmp:
        for key in [*MUTATIONS, *_extra_mutations()]:
            name, res, caught = run_mutation(key, Path(tmp) / f"m{key}", repeats)
            print(f"mutation {key} ({name}) | {res.pair.name} | {res.config.label} | "
                  f"{'caught: ' + '; '.join(caught[:3]) if caught else 'NOT CAUGHT'}", flush=True)
            out.append({**_record(res, f"{key}: {name}"), "caught_by": caught})
    return out


def _compact(r: dict, most: int = 12) -> dict:
    """An older, fuller record in today's compact form."""
    if "probe" in r:
        r = {k: v for k, v in r.items() if k != "probe"}
    if isinstance(r.get("allowed"), list):
        r["allowed"] = len(r["allowed"])
    if len(r["leaks"]) > most:
        r["n_leaks"] = len(r["leaks"])
        r["leaks"] = dict(sorted(r["leaks"].items())[:most])
    r.setdefault("n_leaks", len(r["leaks"]))
    r["leaks"] = {k: [a[:60], b[:60]] for k, (a, b) in r["leaks"].items()}
    return r


def _key(r: dict) -> tuple:
    return (r["pair"], r["config"], r.get("mutation"))


def _short(fields: list[str], n: int = 2) -> str:
    return ", ".join(f"`{f[:70]}`" for f in fields[:n]) + (f" (+{len(fields) - n})" if len(fields) > n else "")


def section(records: list[dict], command: str) -> str:
    battery = [r for r in records if not r.get("mutation")]
    mutations = [r for r in records if r.get("mutation")]
    artefacts = sorted({k for r in battery for k in r["kinds"]})
    lines = ["The neighbour battery (benchmarks/pipeline_audit_battery.py) runs each wing's command line on D and on "
             "D' = D minus one privacy unit of a given kind, under configs that cover the public and a DP schema "
             "(tables), with and without `--checkpoint`, `-q` / default / `-v`, with and without `--json`, with the "
             "same `--seed` and fresh privacy noise (pe_tabular/pipeline_audit.py). Compared: " + ", ".join(artefacts)
             + " (every checkpoint file: JSON fields, npz arrays but the noisy values, npy/Parquet digests; an HTML "
             "report only by existence: it shows real-data statistics by design). A *difference* is a field "
             "constant on D and on D' but different between them; *probe*: a release whose exact counts moved by "
             "more than its sensitivity when D' continues from D's noisy releases (test-only noise switch). Timing "
             "fields are labelled not covered and left out.", "",
             "| wing | unit | differing unit | cases | runs | artefacts compared | fields (public / noise-governed) | "
             "cases flagged | by finding (issue 23) | unexplained |", "|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in battery:
        groups.setdefault((r["wing"], r["unit"], r["kind"]), []).append(r)
    for (wing, unit, kind), rs in groups.items():
        bad = [r for r in rs if r["leaks"] or r["probe_violations"]]
        by = sorted({f for r in bad for f in r.get("explained_by", [])})
        odd = [r for r in bad if not r.get("explained_by")]
        lines.append(f"| {wing} | {unit} | {kind} | {len(rs)} | {sum(r['runs'] for r in rs)} | "
                     f"{', '.join(sorted({k for r in rs for k in r['kinds']}))} | "
                     f"{sum(r['public'] for r in rs)} / {sum(r['noisy'] for r in rs)} | {len(bad)} | "
                     f"{', '.join(map(str, by)) or '-'} | "
                     f"{_short(sorted({k for r in odd for k in r['leaks']})) if odd else 'none'} |")
    total_bad = sum(bool(r["leaks"] or r["probe_violations"]) for r in battery)
    unexplained = sum(bool((r["leaks"] or r["probe_violations"]) and not r.get("explained_by")) for r in battery)
    lines += ["", f"{len(battery)} cases, {total_bad} flagged, {unexplained} by a difference no finding of issue 23 "
              "explains. Findings: 1 missing value changes its chunk (probe), 2 DP schema labels, 3 sparse release "
              "positions, 4 input size in run.json, 5 time-window warning/error, 6 invalid-row warning / "
              "no-valid-row error, 7 traces validate late (releases checkpointed before the input error)."
              + " Allowed (a documented exception, not a leak): run.json's keyed input fingerprints (HMAC-SHA256"
              " under a key kept outside the checkpoint: pseudo-random to anyone the checkpoint is shared with)."
              " A noise-governed decision can repeat by chance in the few runs per side a case starts with, so a"
              " case that looks like a leak gets more runs, up to 10 a side, before it is called one."
              + (" A flagged case is a privacy bug to fix (the goal is 0)." if total_bad else
                 " All seven were fixed in issue 23; the battery flagged every one on the code before the fixes "
                 "(95 of 123 cases) and flags each again when it is re-introduced (below).")]
    if mutations:
        lines += ["", "Re-introduced bugs (benchmarks/pipeline_audit_mutations.py): each runs the case named for it.",
                  "", "| mutation | case | caught | by |", "|---|---|---|---|"]
        for r in mutations:
            by = r.get("caught_by", [])
            lines.append(f"| {r['mutation']} | {r['pair']} ({r['config']}) | "
                         f"{'**yes**' if by else 'NO'} | {_short(by) if by else '-'} |")
    lines += ["", "What it cannot see: a field that depends on the data *and* on the noise (e.g. noisy n + n) looks "
              "noise-governed (the probe covers the releases themselves, not what is derived from them); run times "
              "and progress bars (left out: they vary anyway, so a count hidden in them escapes — finding 8's side "
              "channels need their own tests); the content of HTML reports (real-data statistics by design); what a "
              "Dask coordinator or the memory guard sees; differences that show only at sizes larger than these "
              "tiny inputs (e.g. MB figures that round to the same value at 300 rows); anything about a privacy "
              "unit or input kind not in the battery (pcaps, Parquet, polars frames, the Python API).",
              "", f"Command: `{command}`. Machine: {machine('pandas')}."]
    return "\n".join(lines) + "\n"


def cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=2, help="runs per side to start with (more are added on doubt)")
    ap.add_argument("--only", help="run only the cases whose 'pair | config' contains this text")
    ap.add_argument("--no-probe", action="store_true", help="skip the sensitivity probe")
    ap.add_argument("--mutations", action="store_true", help="run the re-introduced bugs instead of the battery")
    ap.add_argument("--report", action="store_true", help="run nothing: print the table from the JSON")
    ap.add_argument("--merge", action="store_true", help="keep the JSON's results of cases not run now")
    ap.add_argument("--write", action="store_true", help="replace the RESULTS.md section")
    args = ap.parse_args()
    old = json.loads(JSON_OUT.read_text())["cases"] if JSON_OUT.exists() and (args.merge or args.report) else []
    t0 = time.time()
    new = [] if args.report else (run_mutations(args.repeats) if args.mutations
                                  else run_battery(args.only, args.repeats, not args.no_probe))
    done = {_key(r) for r in new}
    old = [_compact(r) for r in old]
    records = [r for r in old if _key(r) not in done] + new
    if not args.report:
        JSON_OUT.write_text(json.dumps({"machine": machine("pandas"), "cases": records}, indent=1) + "\n")
        print(f"{len(new)} cases in {time.time() - t0:.0f} s -> {JSON_OUT}")
    text = section(records, "python benchmarks/pipeline_audit.py (slices: --only tables|traces|digits, --mutations; "
                            "--merge), then --report --write")
    print(f"## {HEADING}\n\n{text}")
    if args.write:
        write_section(HEADING, ["", text])


if __name__ == "__main__":
    cli()
