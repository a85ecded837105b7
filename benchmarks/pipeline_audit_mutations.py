"""Re-introduced privacy bugs: does the neighbour battery bite?

Each mutation re-creates one finding of issue 23 (1-7) in-process, by patching the code a run goes
through, for the duration of a ``with`` block; nothing in the product reads a switch. ``MUTATIONS`` maps
each to the battery case that must flag it (``benchmarks/pipeline_audit.py --mutations`` and
``tests/test_pipeline_audit_battery.py`` check that it does). A mutation patches the place the bug lived;
where a fix may have moved or renamed that place, it patches the nearest stable boundary instead (the
one release path, the CSV reader, the checkpoint's JSON writer) and re-creates the same observable
behaviour. A mutation whose hook is gone fails loudly (AttributeError), never silently.

1. a missing value in a number-coded categorical column blanks that column in the whole chunk;
2. ``schema infer --dp-epsilon`` labels a number-coded column's categories ``"2.0"`` when a value is missing;
3. a thresholded release's checkpoint saves the positions of the released cells in the vector over every
   distinct private value;
4. ``run.json`` records the exact size of the input files;
5. ``--time-window``: a warning exactly when some record lies outside, an error when none lies inside;
6. tables: a "rows dropped" warning exactly when some row is invalid; an error when no valid row remains;
7. traces: a column's values are checked only in a later pass, after releases were made and saved.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@contextlib.contextmanager
def patched(obj: Any, name: str, make: Callable[[Any], Any]) -> Iterator[None]:
    """Replace ``obj.name`` by ``make(original)`` for the block (AttributeError if the hook is gone)."""
    real = getattr(obj, name)
    setattr(obj, name, make(real))
    try:
        yield
    finally:
        setattr(obj, name, real)


def _staged_input(work: Path) -> list[Path]:
    """The files of the input the battery staged for the current run (``pipeline_audit._stage``)."""
    runs = work / "runs"
    paths = sorted(runs.glob("input*")) + sorted(runs.glob("probe-input*")) if runs.is_dir() else []
    return [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*.csv")))]


def _number_coded(col: Any) -> bool:
    cats = [str(v) for v in (col.categories or ())]
    return bool(cats) and all(c.lstrip("-").isdigit() for c in cats if c != str(col.other))


@contextlib.contextmanager
def m1_missing_blanks_chunk(work: Path) -> Iterator[None]:
    """Finding 1: one missing value turns the column's parsed values of its whole chunk into floats,
    which then match no category ("2" becomes "2.0"): the chunk's column goes missing."""
    from pe_tabular.tables import private

    def make(real: Callable[..., pd.DataFrame]) -> Callable[..., pd.DataFrame]:
        def validate(df: pd.DataFrame, schema: Any, *a: Any, **kw: Any) -> pd.DataFrame:
            ok = real(df, schema, *a, **kw)
            for c in schema.columns:
                if c.is_categorical and _number_coded(c) and c.name in ok and ok[c.name].isna().any():
                    ok = ok.assign(**{c.name: pd.Series([None] * len(ok), index=ok.index, dtype=object)})
            return ok
        return validate

    with patched(private, "validate", make):
        yield


@contextlib.contextmanager
def m2_dp_schema_float_labels(work: Path) -> Iterator[None]:
    """Finding 2: a DP schema's number-coded categories read as floats when the column holds a missing value."""
    from pe_tabular.tables import schema_dp

    def make(real: Callable[..., Any]) -> Callable[..., Any]:
        def infer_dp(df: pd.DataFrame, *a: Any, **kw: Any) -> Any:
            schema = real(df, *a, **kw)
            cols = []
            for c in schema.columns:
                if c.is_categorical and _number_coded(c) and c.name in df and df[c.name].isna().any():
                    cats = tuple(f"{float(v)}" if str(v) != str(c.other) else v for v in c.categories)
                    c = dataclasses.replace(c, categories=cats)
                cols.append(c)
            return dataclasses.replace(schema, columns=tuple(cols))
        return infer_dp

    with patched(schema_dp, "infer_dp", make):
        yield


@contextlib.contextmanager
def m3_sparse_positions(work: Path) -> Iterator[None]:
    """Finding 3: a thresholded release is checkpointed with the positions of its released cells in the
    vector [public keys, every distinct private value ascending]."""
    from pe_tabular.io_utils import atomic_write_npz
    from pe_tabular.privacy.release import ReleasePath

    def make(real: Callable[..., Any]) -> Callable[..., Any]:
        def release_recorded(path: Any, spec: Any, counts: Any) -> Any:
            values, rel = real(path, spec, counts)
            if spec.thresholded and path.checkpoint is not None:
                kept = np.flatnonzero(np.isfinite(values))
                atomic_write_npz(path.checkpoint.dir / f"release_{spec.key}.npz",
                                 {"values": np.asarray(values, np.float64)[kept], "index": kept.astype(np.int64),
                                  "release": np.array(json.dumps(rel.__dict__))})
            return values, rel
        return release_recorded

    with patched(ReleasePath, "release_recorded", make):
        yield


@contextlib.contextmanager
def m4_input_size(work: Path) -> Iterator[None]:
    """Finding 4: ``run.json`` holds the exact size of the input files."""
    from pe_tabular import checkpoint

    def make(real: Callable[..., Any]) -> Callable[..., Any]:
        def atomic_write_json(path: Any, obj: Any, *a: Any, **kw: Any) -> Any:
            if Path(path).name == "run.json" and isinstance(obj, dict):
                obj = {**obj, "input_bytes": sum(f.stat().st_size for f in _staged_input(work))}
            return real(path, obj, *a, **kw)
        return atomic_write_json

    with patched(checkpoint, "atomic_write_json", make):
        yield


class _Releases:
    """Counts the releases of the current run (a run starts with the mutation's ``with`` block or after
    :meth:`reset`); ``before_first`` runs a check just before a run's first release."""

    def __init__(self, before_first: Callable[[], None] | None = None):
        self.n, self.before_first = 0, before_first

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        from pe_tabular.privacy.release import ReleasePath

        def make(real: Callable[..., Any]) -> Callable[..., Any]:
            def release_recorded(path: Any, spec: Any, counts: Any) -> Any:
                if self.n == 0 and self.before_first is not None:
                    self.n = 1
                    self.before_first()
                self.n += 1
                return real(path, spec, counts)
            return release_recorded

        with patched(ReleasePath, "release_recorded", make):
            yield


def _run_starts(counter: _Releases) -> contextlib.AbstractContextManager[None]:
    """Reset the counter at every CLI run (the battery runs ``pe_tabular.cli.main`` in-process)."""
    from pe_tabular import cli

    def make(real: Callable[..., int]) -> Callable[..., int]:
        def main(argv: Any = None) -> int:
            counter.n = 0
            return real(argv)
        return main

    return patched(cli, "main", make)


TIME_WINDOW_WARNING = ("column 'ts': some records lie outside --time-window and are clipped into it; widen the "
                       "window to the trace's documented period (and check that ts is in microseconds)")


@contextlib.contextmanager
def m5_time_window_exact(work: Path) -> Iterator[None]:
    """Finding 5: the time-window warning and error follow the exact data (read here from the staged input)."""
    window: list[tuple[float, float]] = []

    def check() -> None:
        if not window:
            return
        lo, hi = window[0]
        ts = np.concatenate([pd.read_csv(f, usecols=["ts"])["ts"].to_numpy(float) / 1e6
                             for f in _staged_input(work)] or [np.empty(0)])
        inside = (ts >= lo) & (ts <= hi)
        if ts.size and not inside.any():
            raise ValueError("column 'ts': no record lies inside --time-window")
        if (~inside).any():
            warnings.warn(TIME_WINDOW_WARNING, UserWarning, stacklevel=2)

    counter = _Releases(check)
    from simulators.network import pipeline

    def make(real: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any, **kw: Any) -> Any:  # whatever the entry takes, its config holds the public window
            cfg = next((x for x in [*a, *kw.values()] if hasattr(x, "time_window")), None)
            window[:] = [tuple(cfg.time_window)] if cfg is not None and cfg.time_window else []
            return real(*a, **kw)
        return run

    with counter.counting(), _run_starts(counter), patched(pipeline, "synthesize_flows", make):
        yield


@contextlib.contextmanager
def m6_invalid_rows_exact(work: Path) -> Iterator[None]:
    """Finding 6: a warning exactly when some row was dropped, an error exactly when no valid row remains."""
    from pe_tabular.tables import private
    from pe_tabular.tables.schema import ValidationError

    valid = [0]

    def check() -> None:
        if valid[0] == 0:
            raise ValidationError("no valid rows remain after --on-invalid")

    counter = _Releases(check)

    def make(real: Callable[..., pd.DataFrame]) -> Callable[..., pd.DataFrame]:
        def validate(df: pd.DataFrame, schema: Any, *a: Any, **kw: Any) -> pd.DataFrame:
            ok = real(df, schema, *a, **kw)
            if counter.n == 0:  # the validating pass, before any release
                valid[0] += len(ok)
                if len(ok) < len(df):
                    warnings.warn("rows dropped in column: invalid values", UserWarning, stacklevel=2)
            return ok
        return validate

    def reset(real: Callable[..., int]) -> Callable[..., int]:
        def main(argv: Any = None) -> int:
            valid[0] = 0
            return real(argv)
        return main

    from pe_tabular import cli

    with counter.counting(), _run_starts(counter), patched(private, "validate", make), patched(cli, "main", reset):
        yield


LATE_AFTER = 3  # releases made (and checkpointed) before the late check


@contextlib.contextmanager
def m7_late_validation(work: Path) -> Iterator[None]:
    """Finding 7: a non-numeric ``byt`` passes the first passes (read as a number) and stops the run only
    in a pass after ``LATE_AFTER`` releases were made and saved."""
    from pe_tabular import source

    counter = _Releases()

    def make(real: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        def batches(part: Any, columns: Any = None) -> Iterator[Any]:
            for b in real(part, columns):
                frame = b.data
                text = isinstance(frame, pd.DataFrame) and "byt" in frame and \
                    not pd.api.types.is_numeric_dtype(frame["byt"])  # object (pandas 2) or str (pandas 3)
                if text:
                    bad = pd.to_numeric(frame["byt"], errors="coerce").isna() & frame["byt"].notna()
                    if bad.any():
                        if counter.n > LATE_AFTER:
                            raise ValueError("column 'byt': some values are missing or not numbers")
                        frame = frame.assign(byt=frame["byt"].where(~bad, "0"))
                        b = dataclasses.replace(b, data=frame)
                yield b
        return batches

    with counter.counting(), _run_starts(counter), patched(source.CsvPart, "batches", make):
        yield


Mutation = Callable[[Path], contextlib.AbstractContextManager[None]]
# what a catch of each finding looks like (over CaseResult.findings(): leak keys, "sensitivity: ...", "note: ...")
SIGNATURES: dict[int | str, Callable[[str], bool]] = {
    1: lambda f: f.startswith("sensitivity: marginal code"),
    2: lambda f: "schema" in f and "categories" in f,
    3: lambda f: "ck/release_" in f and ":index" in f,
    4: lambda f: "ck/run.json" in f and "bytes" in f,
    5: lambda f: "time-window" in f,
    6: lambda f: "rows dropped" in f or "no valid rows" in f,  # findings 5 and 6 also cover the n = 0 exit
    7: lambda f: f.startswith("note: ") and "after releasing" in f,
    "A": lambda f: f.startswith("rows:synth.csv"),
    "B": lambda f: f.startswith("rows:synth.csv"),
}
# finding -> (mutation, the battery case that must flag it: pair name, config label)
MUTATIONS: dict[int, tuple[str, Mutation, str, str]] = {
    1: ("missing value blanks its chunk", m1_missing_blanks_chunk, "tables / row / missing values",
        "no checkpoint, default, --json"),
    2: ("DP schema float labels", m2_dp_schema_float_labels, "tables / row / missing values",
        "dp schema, no checkpoint, default, --json"),
    3: ("sparse release positions", m3_sparse_positions, "tables / row / ordinary record", "--checkpoint, -q"),
    4: ("run.json input size", m4_input_size, "traces / flow / ordinary record", "--checkpoint, -q"),
    5: ("time-window warning from exact data", m5_time_window_exact, "traces / flow / record outside the time window",
        "no checkpoint, default, --json"),
    6: ("invalid-row warning and empty-data error", m6_invalid_rows_exact, "tables / row / invalid value (drop)",
        "no checkpoint, default, --json"),
    7: ("traces late validation", m7_late_validation, "traces / flow / invalid value", "--checkpoint, -q"),
}


def attribute(findings: list[str]) -> list[int]:
    """The findings (1-7) whose signature some of ``findings`` matches: what explains a flagged case. When
    a run stopped on one side, every file differs as a consequence: only its streams, notes and the probe
    are read then."""
    if any(f.startswith("cmd") and f.endswith(":exit") for f in findings):
        findings = [f for f in findings if f.startswith(("cmd", "note: ", "sensitivity: "))]
    return [k for k, sig in SIGNATURES.items() if isinstance(k, int) and any(sig(f) for f in findings)]
