"""The engine / wings layering, checked on the source with ``ast`` (no import runs, lazy imports count).

Why a test: the rules (wings import the engine, the engine imports no wing, wings never import each
other, no import circles) break silently — a lazy ``from renderers.digits.cli import ...`` inside a
function works until someone imports the modules in the other order.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pe_tabular", "simulators", "renderers")
WINGS = {"pe_tabular.tables": "tables", "simulators": "traces", "renderers": "digits"}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = p
    return out


def _import_graph() -> dict[str, set[str]]:
    """Module -> project modules it imports (``from pkg import mod`` counts as importing ``pkg.mod``)."""
    mods = _modules()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for m, path in mods.items():
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(owner(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.update(owner(f"{node.module}.{a.name}") if f"{node.module}.{a.name}" in mods
                               else owner(node.module) for a in node.names)
        graph[m] = {t for t in targets if t and t != m}
    return graph


def _layer(module: str) -> str:
    return next((w for prefix, w in WINGS.items() if module == prefix or module.startswith(prefix + ".")), "engine")


def test_the_engine_imports_no_wing_and_wings_never_import_each_other():
    bad = [f"{m} -> {t}" for m, ts in _import_graph().items() for t in ts
           if _layer(m) != _layer(t) and _layer(t) != "engine"]
    assert not bad, "layering broken:\n" + "\n".join(sorted(bad))


def test_no_import_circles_outside_the_tables_wing():
    """Strongly connected components of the import graph; the tables wing's own are left to its cleanup."""
    graph = _import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                comp.append(w)
            comp.append(v)
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    outside = [c for c in circles if any(_layer(m) != "tables" for m in c)]
    assert not outside, f"import circles: {outside}"
