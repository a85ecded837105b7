"""The neighbour battery of the whole-pipeline audit: which D vs D' pairs, run how.

A *pair* is two neighbouring inputs of one wing at one privacy unit, D = D' plus one unit, where the
added unit is of one *kind*: an ordinary record, one with missing values, one with an invalid value
(with ``--on-invalid drop`` or ``clip`` where the wing has it), a category never seen, an extreme
outlier, a record outside the public time window, a unit split across chunks and files, and
n = 0 vs n = 1 valid units. A *config* says how the pipeline runs: the public schema or a DP schema
(``schema infer --dp-epsilon`` then ``synth``; tables), with or without ``--checkpoint``, at ``-q``,
the default verbosity or ``-v``, with or without ``--json``. A *case* is a pair under a config;
:func:`run_case` audits it with :func:`pe_tabular.pipeline_audit.audit_cli` and, on request, probes every
release's sensitivity (:func:`pe_tabular.pipeline_audit.probe_sensitivity`).

Every input is tiny (a few hundred rows) and every run short (one PE iteration, small populations), so
one case costs a few seconds. Used by ``benchmarks/pipeline_audit.py`` (the full battery) and
``tests/test_pipeline_audit_battery.py`` (a representative subset).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pe_tabular.pipeline_audit import Argv, PipelineAudit, ProbeResult, audit_cli, probe_sensitivity

ROOT = Path(__file__).resolve().parents[1]
WINDOW = ("2016-04-11T00:00:00Z", "2016-04-11T09:00:00Z")
WINDOW_START_US = 1460332800 * 10**6
CHUNK_ROWS = "64"

Build = Callable[[Path], tuple[Path, Path]]  # work folder -> (D, D')


@dataclass(frozen=True)
class Pair:
    """D = D' plus one privacy unit of a given kind."""

    wing: str
    unit: str
    kind: str
    build: Build
    flags: tuple[str, ...] = ()
    # an input error may stop the run, before any release (a documented exception: the exit status and the
    # error line then differ; nothing else may, and the aborting run must have released nothing)
    abort_ok: bool = False

    @property
    def name(self) -> str:
        return f"{self.wing} / {self.unit} / {self.kind}"


@dataclass(frozen=True)
class Config:
    schema: str = "public"  # or "dp" (tables: schema infer --dp-epsilon, then synth)
    checkpoint: bool = False
    verbosity: str = ""  # "-q", "" or "-v"
    json: bool = True

    @property
    def label(self) -> str:
        parts = [f"{self.schema} schema"] if self.schema != "public" else []
        parts.append("--checkpoint" if self.checkpoint else "no checkpoint")
        parts.append({"-q": "-q", "": "default", "-v": "-v"}[self.verbosity])
        if self.json:
            parts.append("--json")
        return ", ".join(parts)


# -- tables -------------------------------------------------------------------------------------------
TABLE_COLUMNS = ("age", "code", "inc", "job", "y")
TABLE_TYPES = "age=integer,code=categorical,inc=float,job=categorical,y=categorical"
TABLE_SCHEMA = {"columns": [
    {"name": "age", "type": "integer", "lower": 0, "upper": 100},
    {"name": "code", "type": "categorical", "categories": list(range(6)), "nullable": True},  # number-coded
    {"name": "inc", "type": "float", "lower": 0, "upper": 20000, "nullable": True},
    {"name": "job", "type": "categorical", "categories": ["a", "b", "c"], "nullable": True},
    {"name": "y", "type": "categorical", "categories": ["no", "yes"]}], "label": "y"}
TABLE_ROWS = {  # the added row of each kind (a dict: column -> text written to the CSV)
    "ordinary record": {"age": "41", "code": "2", "inc": "123.45", "job": "a", "y": "no"},
    "missing values": {"age": "37", "code": "", "inc": "", "job": "", "y": "no"},
    "invalid value (drop)": {"age": "250", "code": "2", "inc": "0", "job": "a", "y": "no"},
    "invalid value (clip)": {"age": "250", "code": "2", "inc": "0", "job": "a", "y": "no"},
    "category never seen": {"age": "41", "code": "2", "inc": "0", "job": "zzz", "y": "no"},
    "extreme outlier": {"age": "100", "code": "5", "inc": "19999.99", "job": "c", "y": "yes"},
    # an empty label: a class of its own, "(missing)", where the label is nullable (a DP schema's is); the
    # public schema's label is not, so clip drops the row there
    "missing label": {"age": "41", "code": "2", "inc": "0", "job": "a", "y": ""},
}


def _table_rows(n: int = 240, seed: int = 0) -> list[dict[str, str]]:
    """A small table with what real tables have: a number-coded category, a zero-inflated float with
    round point masses (frequent exact values are released by a thresholded histogram), a label."""
    rng = np.random.default_rng(seed)
    inc = rng.choice([0.0, 1000.0, 2000.0, -1.0], n, p=[0.3, 0.3, 0.2, 0.2])
    inc = np.where(inc < 0, np.round(rng.uniform(10, 15000, n), 2), inc)
    return [{"age": str(int(rng.integers(18, 90))), "code": str(int(rng.integers(0, 6))), "inc": f"{v:g}",
             "job": str(rng.choice(["a", "b", "c"])), "y": str(rng.choice(["no", "yes"], p=[0.7, 0.3]))}
            for v in inc]


def _write_csv(path: Path, rows: Sequence[dict[str, str]], columns: Sequence[str]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path.write_text(buf.getvalue())
    return path


def _tables_build(kind: str) -> Build:
    def build(work: Path) -> tuple[Path, Path]:
        base = _table_rows()
        if kind == "n = 0 vs n = 1 valid rows":
            base = [TABLE_ROWS["invalid value (drop)"]]  # D' holds no valid row
            extra = TABLE_ROWS["ordinary record"]
        else:
            extra = TABLE_ROWS[kind]
        return (_write_csv(work / "d.csv", [*base, extra], TABLE_COLUMNS),
                _write_csv(work / "d1.csv", base, TABLE_COLUMNS))
    return build


def _tables_flags(kind: str) -> tuple[str, ...]:
    if "drop" in kind or kind.startswith("n = 0"):
        return ("--on-invalid", "drop")
    if "clip" in kind or kind in ("category never seen", "missing label"):
        return ("--on-invalid", "clip")
    return ()


TABLE_KINDS = ("ordinary record", "missing values", "invalid value (drop)", "invalid value (clip)",
               "category never seen", "extreme outlier", "n = 0 vs n = 1 valid rows", "missing label")
TABLE_PAIRS = [Pair("tables", "row", k, _tables_build(k), _tables_flags(k)) for k in TABLE_KINDS] + [
    Pair("tables", "row", "missing values, small chunks", _tables_build("missing values"),
         ("--chunk-rows", CHUNK_ROWS)),
    # the releases a named task and the two-parent structure add (task pairs, family scores, three-way tables)
    Pair("tables", "row", "ordinary record, --target inc", _tables_build("ordinary record"), ("--target", "inc")),
    Pair("tables", "row", "missing values, --structure bn2", _tables_build("missing values"),
         ("--structure", "bn2", "--epsilon", "50"))]  # at ε = 4 no pair of 240 rows beats the noise: no families


def _tables_steps(pair: Pair, cfg: Config, work: Path) -> list[Argv]:
    schema_file = work / "schema.json"
    schema_file.write_text(json.dumps(TABLE_SCHEMA))
    common = [*([cfg.verbosity] if cfg.verbosity else []), *(["--json"] if cfg.json else [])]
    steps: list[Argv] = []
    if cfg.schema == "dp":
        steps.append(lambda data, out: ["schema", "infer", str(data), "--dp-epsilon", "3", "--types", TABLE_TYPES,
                                        "--label", "y", "--out", str(out / "schema.json"), *common])
    flags = list(pair.flags)
    if cfg.schema == "dp" and "--on-invalid" not in flags:
        flags += ["--on-invalid", "clip"]  # a DP schema's bounds need not hold every row

    def synth(data: Path, out: Path) -> list[str]:
        schema = out / "schema.json" if cfg.schema == "dp" else schema_file
        return ["synth", str(data), "--schema", str(schema), "--out", str(out / "synth.csv"), "--epsilon", "4",
                "--population", "100", "--iterations", "1", "--voter", "numpy", "--seed", "0", *flags,
                *(["--checkpoint", str(out / "ck")] if cfg.checkpoint else []), *common]
    steps.append(synth)
    return steps


# -- traces -------------------------------------------------------------------------------------------
TRACE_COLUMNS = ["srcip", "dstip", "srcport", "dstport", "proto", "ts", "td", "pkt", "byt", "type", "flags", "tos"]


def _trace_base(n: int = 300) -> tuple[list[str], list[dict[str, str]]]:
    """n NetFlow records in the UGR'16 columns, drawn from a fixed seed (no data file needed): 40 client
    hosts talking to 25 servers on a few services, over the window's first 10 minutes."""
    rng = np.random.default_rng(0)
    hosts, servers = rng.integers(2**24, 2**31, 40), rng.integers(2**31, 2**32 - 1, 25)
    service = rng.choice([(80, "TCP"), (443, "TCP"), (53, "UDP"), (22, "TCP")], n, p=[0.3, 0.4, 0.2, 0.1])
    pkt = rng.geometric(0.2, n)
    rows = [{"srcip": str(rng.choice(hosts)), "dstip": str(rng.choice(servers)),
             "srcport": str(int(rng.integers(1024, 65535))), "dstport": str(port), "proto": str(proto),
             "ts": f"{WINDOW_START_US + rng.uniform(0, 600) * 1e6:.1f}", "td": f"{rng.exponential(2.0):.3f}",
             "pkt": str(int(p)), "byt": str(int(p * rng.integers(40, 1500))), "type": "background",
             "flags": ".AP.SF" if proto == "TCP" else "......", "tos": "0"}
            for (port, proto), p in zip(service, pkt)]
    for r in rows:
        if r["pkt"] == "1":
            r["td"] = "0.000"  # a one-packet record lasts 0 s
    return TRACE_COLUMNS, sorted(rows, key=lambda r: float(r["ts"]))


def _trace_unit(kind: str, proto: dict[str, str], ip: str = "3232235777") -> list[dict[str, str]]:
    """The records of the added unit: a new flow from a new host (so it is one unit at every level;
    3232235777 is 192.168.1.1, an address the base never holds)."""
    new = {**proto, "srcip": ip, "srcport": "40001"}
    if kind == "missing values":
        return [{**new, "byt": "", "tos": ""}]
    if kind == "invalid value":
        return [{**new, "byt": "abc"}]
    if kind == "category never seen":
        return [{**new, "proto": "SCTP", "flags": "UAPRSF"}]
    if kind == "extreme outlier":
        return [{**new, "byt": "100000000000", "pkt": "10000000", "td": "3000"}]
    if kind == "record outside the time window":
        return [{**new, "ts": f"{WINDOW_START_US - 3600 * 10**6:.1f}"}]
    if kind == "unit split across chunks and files":
        return [{**new, "ts": f"{float(proto['ts']) + 10**6 * i:.1f}"} for i in range(4)]
    return [new]


def _traces_build(kind: str) -> Build:
    def build(work: Path) -> tuple[Path, Path]:
        cols, base = _trace_base()
        extra = _trace_unit(kind, base[0])
        if kind == "unit split across chunks and files":  # two files; the unit's records in both, and in
            d, d1 = work / "d", work / "d1"                   # several chunks of each
            for side in (d, d1):
                side.mkdir()
            halves = (base[:150], base[150:])
            for j, half in enumerate(halves):
                _write_csv(d1 / f"part{j}.csv", half, cols)
                mixed = list(half)
                for i, r in enumerate(extra[2 * j:2 * j + 2]):
                    mixed.insert(i * 100, r)
                _write_csv(d / f"part{j}.csv", mixed, cols)
            return d, d1
        if kind == "n = 0 vs n = 1 inside the window":  # D' holds one record, outside the window
            base = _trace_unit("record outside the time window", base[1], ip="3232235778")
        return _write_csv(work / "d.csv", [*base, *extra], cols), _write_csv(work / "d1.csv", base, cols)
    return build


TRACE_KINDS = ("ordinary record", "missing values", "invalid value", "category never seen", "extreme outlier",
               "record outside the time window", "unit split across chunks and files",
               "n = 0 vs n = 1 inside the window")
TRACE_PAIRS = [Pair("traces", unit, k, _traces_build(k),
                    ("--chunk-rows", CHUNK_ROWS) if "split" in k else (),
                    abort_ok=k in ("missing values", "invalid value"))
               for unit in ("record", "flow", "host") for k in TRACE_KINDS
               if not ("split" in k and unit == "record")]


def _traces_steps(pair: Pair, cfg: Config, work: Path) -> list[Argv]:
    common = [*([cfg.verbosity] if cfg.verbosity else []), *(["--json"] if cfg.json else [])]

    def synth(data: Path, out: Path) -> list[str]:
        return ["traces", "synth", str(data), "--epsilon", "2", "--unit", pair.unit, "--time-window", *WINDOW,
                "--out", str(out / "synth.csv"), "--iterations", "1", "--population", "200", "--voter", "numpy",
                "--seed", "0", *pair.flags, *(["--checkpoint", str(out / "ck")] if cfg.checkpoint else []), *common]
    return [synth]


# -- digits -------------------------------------------------------------------------------------------
def _digits_build(kind: str) -> Build:
    def build(work: Path) -> tuple[Path, Path]:
        rng = np.random.default_rng(0)
        imgs, labs = rng.integers(0, 255, (120, 28, 28)).astype(np.uint8), np.arange(120) % 10
        one = np.full((1, 28, 28), 255, np.uint8) if kind == "extreme outlier" else imgs[:1]
        np.savez(work / "d.npz", images=np.concatenate([imgs, one]), labels=np.append(labs, 3))
        np.savez(work / "d1.npz", images=imgs, labels=labs)
        return work / "d.npz", work / "d1.npz"
    return build


DIGIT_PAIRS = [Pair("digits", "image", k, _digits_build(k)) for k in ("ordinary record", "extreme outlier")]


def _digits_steps(pair: Pair, cfg: Config, work: Path) -> list[Argv]:
    common = [*([cfg.verbosity] if cfg.verbosity else []), *(["--json"] if cfg.json else [])]

    def synth(data: Path, out: Path) -> list[str]:
        return ["digits", "synth", "--private", str(data), "--epsilon", "2", "--out", str(out / "run"),
                "--population", "100", "--iterations", "1", "--n-out", "100", "--seed", "0", "--voter", "numpy",
                *(["--checkpoint", str(out / "ck")] if cfg.checkpoint else []), *common]
    return [synth]


STEPS = {"tables": _tables_steps, "traces": _traces_steps, "digits": _digits_steps}
PAIRS = [*TABLE_PAIRS, *TRACE_PAIRS, *DIGIT_PAIRS]
# every pair runs under three configs that together cover each setting (checkpoint or not; each
# verbosity; --json or not); tables pairs run them with the public schema and with a DP schema
BASE_CONFIGS = (Config(checkpoint=False, verbosity="", json=True), Config(checkpoint=True, verbosity="-q", json=False),
                Config(checkpoint=True, verbosity="-v", json=True))


def configs_for(pair: Pair) -> list[Config]:
    schemas = ("public", "dp") if pair.wing == "tables" else ("public",)
    return [Config(s, c.checkpoint, c.verbosity, c.json) for s in schemas for c in BASE_CONFIGS]


def cases(pairs: Sequence[Pair] = PAIRS) -> list[tuple[Pair, Config]]:
    return [(p, c) for p in pairs for c in configs_for(p)]


# -- running ------------------------------------------------------------------------------------------
TIMING = ("wall_s", "cpu_s", "wall_seconds", "cpu_seconds", "timing", "mtime_ns")


def _timing(key: str) -> bool:
    """Run times are labelled in the sidecars as not covered by the guarantee; file modification times
    change with every staging of the input."""
    return any(t in key for t in TIMING)


@dataclass
class CaseResult:
    pair: Pair
    config: Config
    audit: PipelineAudit
    probe: list[ProbeResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def probe_violations(self) -> list[ProbeResult]:
        return [p for p in self.probe if not p.ok]

    @property
    def flagged(self) -> bool:
        return self.audit.violation or bool(self.probe_violations)

    def findings(self) -> list[str]:
        """What flagged this case, as 'artefact: field' lines (for the report and the mutation table)."""
        out = [f"{k}" for k in sorted(self.audit.leaks)]
        out += [f"sensitivity: {p.what} moved {p.l2:.3g} > {p.sensitivity:g}" for p in self.probe_violations]
        return out + [f"note: {n}" for n in self.audit.notes]

    def as_json(self, most: int = 12) -> dict[str, Any]:
        """A compact record: counts, and the first ``most`` differing fields with short values."""
        leaks = sorted(self.audit.leaks.items())
        worst = max(self.probe, key=lambda p: (p.l2 or 0.0) / p.sensitivity, default=None)
        return {"pair": self.pair.name, "config": self.config.label, "runs": self.audit.runs,
                "public": self.audit.public, "noisy": len(self.audit.noisy), "kinds": sorted(self.audit.kinds),
                "n_leaks": len(leaks), "leaks": {k: [repr(a)[:60], repr(b)[:60]] for k, (a, b) in leaks[:most]},
                "allowed": len(self.audit.allowed), "notes": self.audit.notes,
                "probe_releases": len(self.probe),
                "probe_worst": None if worst is None else {"what": worst.what, "l2": worst.l2,
                                                            "sensitivity": worst.sensitivity},
                "probe_violations": [p.what for p in self.probe_violations], "seconds": round(self.seconds, 1)}


def _abort_check(pair: Pair, res: PipelineAudit, sides: dict[str, Any]) -> None:
    """A pair whose added unit may stop the run (``abort_ok``): an abort is an allowed exception only if
    the aborting side released nothing — no checkpointed release, no output — before the error."""
    if not pair.abort_ok or not any(k.endswith(":exit") for k in res.leaks):
        return
    for side, obs in sides.items():
        failed = any(k.endswith(":exit") and v != 0 for k, v in obs.items())
        made = sorted(k for k in obs if k.startswith("file:") and ("ck/release_" in k or "synth" in k))
        if failed and made:
            res.notes.append(f"{side} stopped on an input error after releasing: {', '.join(made[:3])}")
            return
    res.allowed.update(res.leaks)
    res.leaks.clear()
    res.notes.append("stopped on an input error before any release (allowed: the exit status and the error line)")


#: Runs per side a case may grow to while a field still looks like a leak. A noise-governed decision (votes taken
#: or skipped on a noisy count near its threshold) can come out one way in every run on D and the other way in
#: every run on D' by chance: with 4 runs a side about 1 case in 100 at even odds (seen in CI, n = 0 vs n = 1),
#: with 10 about 2 in a million. Runs are only added on doubt, so a clean case costs its first 2 runs a side.
MAX_REPEATS = 10


def keyed_fingerprint(key: str) -> bool:
    """run.json's input fingerprints: an HMAC-SHA256 of each input's size and mtime under a key kept in a 0600
    file outside the checkpoint (``pe_tabular.checkpoint``). It is deterministic per input, so the audit sees
    it differ between D and D', but without the key it is a pseudo-random value: no one the checkpoint is
    shared with can tell D's from D''s (a documented exception, kept in ``allowed``)."""
    return key.startswith("json:ck/run.json:") and key.endswith(".hmac")


def run_case(pair: Pair, cfg: Config, work: Path, main: Callable[[list[str]], int] | None = None,
             repeats: int = 2, max_repeats: int = MAX_REPEATS, probe: bool = False) -> CaseResult:
    import time

    if main is None:
        from pe_tabular.cli import main
    t0 = time.time()
    work.mkdir(parents=True, exist_ok=True)
    d, d1 = pair.build(work)
    steps = STEPS[pair.wing](pair, cfg, work)
    res = audit_cli(pair.name, cfg.label, main, steps, d, d1, work / "runs", repeats=repeats,
                    max_repeats=max_repeats, ignore=_timing, allow=keyed_fingerprint)
    _abort_check(pair, res, res.examples)
    out = CaseResult(pair, cfg, res)
    if probe:
        out.probe = probe_sensitivity(main, steps, d, d1, work / "probe")
    out.seconds = time.time() - t0
    return out
