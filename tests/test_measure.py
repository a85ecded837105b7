"""The DP estimation toolkit lives once, in the engine (``pe_tabular.measure``, issue 25)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WING_DIRS = ("pe_tabular/tables", "simulators/network", "renderers/digits")
# names of tools that moved into pe_tabular.measure: a wing that defines one again has made a copy
MOVED = ("degree_schedule",)


def _wing_functions() -> set[str]:
    names = set()
    for d in WING_DIRS:
        for path in (ROOT / d).rglob("*.py"):
            names |= {n.name.lstrip("_") for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                      if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    return names


def test_no_wing_defines_a_tool_of_the_engine_toolkit():
    assert sorted(set(MOVED) & _wing_functions()) == []


def test_degree_schedule_decays_geometrically_over_the_variation_steps():
    from pe_tabular.measure.schedule import degree_schedule

    assert degree_schedule(1, 0.2, 0.1) == ()
    assert degree_schedule(2, 0.2, 0.1) == (0.2,)
    assert degree_schedule(3, 0.4, 0.1) == pytest.approx((0.4, 0.1))
