"""Follow a private row's data through ``PESynthesizer.fit`` and count returns to modules already left (issue 25).

A small fit (600 Adult rows, one iteration) runs under ``sys.setprofile``. The private frame given to ``fit`` is
*tainted*; so is every object whose class lives in a module that carries private rows (``CARRIERS``: the
validated row cache, chunked sources, one-pass histograms, the streaming voter), and whatever a call on the
data path returns from a carrier module or from library code called by ours (a chunk, a column of a chunk,
exact counts). A
call is *on the data path* when one of its arguments (``self`` of a bound method, a closure's cells, one level
into tuples, lists and dicts included) is tainted. Noisy values returned by the release path are not tainted:
releasing is where private data stops.

Each call site on the data path that enters another project module is recorded once (a loop over chunks or
iterations is one site), in the order first seen. The modules entered, in that order and with consecutive
repeats collapsed, are the walk; a *return* is entering a module that the walk already entered before and
left. Two views:

- ``fit``: the call sites in the facade's own code (``pe_tabular/tables/synthesizer.py``: ``fit``, its
  helpers and the lambdas it hands to the row cache) — how often ``fit`` itself goes back to a module it has
  left, i.e. whether it reads as its steps;
- ``plan``: the call sites in the measurement plan's code (``pe_tabular/tables/plan.py``), the stages of
  releases ``fit`` hands the rows to;
- ``deep``: every call site at every depth (the facade, the measurement plan and the engine alike).

    PYTHONPATH=. python benchmarks/fit_walk.py          # prints each view and its walk
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import types
from collections.abc import Iterable
from typing import Any

PROJECT = ("pe_tabular", "simulators", "renderers")
CARRIERS = ("pe_tabular.tables.private", "pe_tabular.source", "pe_tabular.dask_source",
            "pe_tabular.measure.histograms", "pe_tabular.voting.streaming")
FACADE = "pe_tabular.tables.synthesizer"
PLAN = "pe_tabular.tables.plan"  # the measurement plan fit hands the rows to (issue 25; absent before it)
RELEASE = "pe_tabular.privacy"  # its results are noisy: the data path ends there
SCALARS = (type(None), bool, int, float, complex, str, bytes)


class Walk:
    """The profiler hook: taint bookkeeping and the call sites seen on the data path."""

    def __init__(self, seed: Any):
        self.keep: list[Any] = [seed]  # references held, so an id is never reused by another object
        self.ids = {id(seed)}
        self.on_path: dict[int, bool] = {}  # frame id -> whether what that call returns is tainted
        self.sites: dict[tuple[str, int, str], int] = {}  # (caller module, line, callee module) -> first seen

    def tainted(self, v: Any, depth: int = 0) -> bool:
        if isinstance(v, SCALARS):
            return False
        if id(v) in self.ids or type(v).__module__.startswith(CARRIERS):
            return True
        if depth:
            return False
        if isinstance(v, (tuple, list)):
            return any(self.tainted(x, 1) for x in v[:64])
        if isinstance(v, dict):
            return any(self.tainted(x, 1) for x in list(v.values())[:64])
        if isinstance(v, types.MethodType):
            return self.tainted(v.__self__, 1)
        if isinstance(v, functools.partial):
            return any(self.tainted(x, 1) for x in (v.func, *v.args, *v.keywords.values()))
        if isinstance(v, types.FunctionType):
            return any(self.tainted(_cell(c), 1) for c in v.__closure__ or ())
        return False

    def taint(self, v: Any) -> None:
        if not isinstance(v, SCALARS) and id(v) not in self.ids:
            self.keep.append(v)
            self.ids.add(id(v))

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            n = code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & 4) + bool(code.co_flags & 8)
            loc = frame.f_locals
            hit = any(self.tainted(loc.get(name)) for name in code.co_varnames[:n])
            callee = frame.f_globals.get("__name__", "")
            back = frame.f_back.f_globals.get("__name__", "") if frame.f_back is not None else ""
            # what carries rows, and library code called from ours on private values (a chunk's column)
            self.on_path[id(frame)] = hit and (callee.startswith(CARRIERS) or (
                not callee.startswith(PROJECT) and back.startswith(PROJECT)))
            if hit and callee.startswith(PROJECT):
                caller = _project_caller(frame.f_back)
                if caller is not None and caller[0] != callee:
                    self.sites.setdefault((caller[0], caller[1], callee), len(self.sites))
        elif event == "return":
            if self.on_path.pop(id(frame), False):
                self.taint(arg)

    def walk(self, only_from: str | None = None) -> list[str]:
        seq = [callee for (caller, _line, callee), _ in sorted(self.sites.items(), key=lambda kv: kv[1])
               if only_from is None or caller == only_from]
        return [m for i, m in enumerate(seq) if i == 0 or seq[i - 1] != m]


def _cell(c: Any) -> Any:
    try:
        return c.cell_contents
    except ValueError:  # an empty cell
        return None


def _project_caller(frame: Any) -> tuple[str, int] | None:
    while frame is not None:
        mod = frame.f_globals.get("__name__", "")
        if mod.startswith(PROJECT):
            return mod, frame.f_lineno
        frame = frame.f_back
    return None


def returns(walk: Iterable[str]) -> int:
    """Entries into a module the walk had already entered and left."""
    seen: set[str] = set()
    back = 0
    for m in walk:
        back += m in seen
        seen.add(m)
    return back


def measure(rows: int = 600) -> dict[str, Any]:
    from pe_tabular.tables.datasets import adult_schema, load_adult
    from pe_tabular.tables.synthesizer import PESynthesizer

    data = load_adult("train").sample(rows, random_state=0).reset_index(drop=True)
    syn = PESynthesizer(adult_schema(), 1.0, 1e-5, seed=0, iterations=1, population=200, k=4, voter="numpy",
                        min_vote_snr=0.0)
    hook = Walk(data)
    sys.setprofile(hook)
    try:
        syn.fit(data)
    finally:
        sys.setprofile(None)
    out = {}
    for view, only in (("fit", FACADE), ("plan", PLAN), ("deep", None)):
        w = hook.walk(only)
        out[view] = {"modules": len(set(w)), "returns": returns(w), "walk": w}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=600)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    got = measure(args.rows)
    if args.json:
        print(json.dumps(got, indent=1))
        return 0
    for view, r in got.items():
        print(f"{view}: {r['modules']} modules, {r['returns']} returns to a module already left")
        print("  " + " -> ".join(m.removeprefix("pe_tabular.") for m in r["walk"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
