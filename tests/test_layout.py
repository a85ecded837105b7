"""The layout promised in the README ("a small engine, three wings"), checked on the import graph.

The graph is read with ``ast`` from every module of the three packages, lazy imports inside functions
included (an import circle hidden in a function is still a circle). ``pyproject.toml`` holds the same
rules as import-linter contracts (``lint-imports``), a second, independent tool.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pe_tabular.wings import WINGS as REGISTRY
from pe_tabular.wings import wing_of_module

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pe_tabular", "simulators", "renderers")
WINGS = {w.name: w.package for w in REGISTRY}  # the one registry of wings (pe_tabular/wings.py)
# the entry point finds the wings through a registry of module *names* (importlib), and the package root
# re-exports the tables facade lazily (PEP 562); neither is a static import of a wing
ENGINE_EXEMPT = {"pe_tabular", "pe_tabular.cli"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The project module an import names (``a.b.c`` may be module a.b with attribute c)."""
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def _imports(modules: dict[str, Path]) -> dict[str, set[tuple[str, str | None]]]:
    """module -> {(imported module, imported name or None)} for every project import."""
    graph: dict[str, set[tuple[str, str | None]]] = {m: set() for m in modules}
    for mod, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if (t := _resolve(a.name, modules)) is not None:
                        graph[mod].add((t, None))
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    if full in modules:
                        graph[mod].add((full, None))
                    elif (t := _resolve(node.module, modules)) is not None:
                        graph[mod].add((t, a.name))
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                pytest.fail(f"{mod}: relative import; the project uses absolute imports only")
    return graph


@pytest.fixture(scope="module")
def graph() -> dict[str, set[tuple[str, str | None]]]:
    return _imports(_modules())


def _wing_of(mod: str) -> str | None:
    return w.name if (w := wing_of_module(mod)) is not None else None


def test_no_import_circles(graph):
    edges = {m: {t for t, _ in deps if t != m} for m, deps in graph.items()}
    # a package's __init__ importing its own submodules is not a circle of *modules*; drop those edges
    edges = {m: {t for t in ts if not (t.startswith(m + ".") and (ROOT / Path(*m.split("."))).is_dir())}
             for m, ts in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def strongconnect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in edges:
        if v not in index:
            strongconnect(v)
    assert cycles == [], f"import circles: {cycles}"


def test_engine_imports_no_wing(graph):
    bad = sorted((m, t) for m, deps in graph.items() if _wing_of(m) is None and m not in ENGINE_EXEMPT
                 for t, _ in deps if _wing_of(t) is not None)
    assert bad == [], f"engine modules importing a wing: {bad}"


def test_no_wing_imports_another(graph):
    bad = sorted((m, t) for m, deps in graph.items() if (w := _wing_of(m)) is not None
                 for t, _ in deps if (v := _wing_of(t)) is not None and v != w)
    assert bad == [], f"wing-to-wing imports: {bad}"


def test_privacy_is_a_leaf(graph):
    """The release path, ledger and accountant import nothing of the project outside ``pe_tabular.privacy``:
    every other module may build on them, and a change elsewhere can never reach the privacy core."""
    inside = "pe_tabular.privacy"
    bad = sorted((m, t) for m, deps in graph.items() if m == inside or m.startswith(inside + ".")
                 for t, _ in deps if not (t == inside or t.startswith(inside + ".")))
    assert bad == [], f"pe_tabular.privacy importing outside itself: {bad}"


def test_checkpointer_is_a_release_store():
    """The release path names its store by a protocol; the engine's checkpoint must keep fitting it."""
    import inspect

    from pe_tabular.checkpoint import Checkpointer
    from pe_tabular.privacy.release import ReleaseStore

    for name in ("load_release", "save_release"):
        want = inspect.signature(getattr(ReleaseStore, name))
        got = inspect.signature(getattr(Checkpointer, name))
        assert list(got.parameters) == list(want.parameters), name


def test_no_private_name_crosses_a_module(graph):
    bad = sorted((m, t, n) for m, deps in graph.items() for t, n in deps
                 if n is not None and n.startswith("_") and not n.startswith("__") and t != m)
    assert bad == [], f"modules importing another module's private names: {bad}"


def test_domain_modules_left_the_engine():
    for gone in ("pe_tabular/distance/network.py", "pe_tabular/evaluation/traces.py", "pe_tabular/distance/images.py",
                 "pe_tabular/evaluation/images.py", "pe_tabular/backends/loopback.py"):
        assert not (ROOT / gone).exists(), gone
    assert "def release_histogram" not in (ROOT / "pe_tabular/evolution.py").read_text()


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_pyproject_names_the_registered_wings():
    """pyproject.toml cannot read the registry, so this test is the link: its import-linter contracts and its
    package list name exactly the wings of ``pe_tabular.wings.WINGS``."""
    from fnmatch import fnmatch

    conf = _pyproject()
    contracts = {c["name"]: c for c in conf["tool"]["importlinter"]["contracts"]}
    packages = sorted(WINGS.values())
    assert sorted(contracts["The engine imports no wing"]["forbidden_modules"]) == packages
    assert sorted(contracts["No wing imports another"]["modules"]) == packages
    include = conf["tool"]["setuptools"]["packages"]["find"]["include"]
    assert all(any(fnmatch(p, pat) for pat in include) for p in packages), include


def test_each_registered_wing_has_its_package_and_cli(graph):
    modules = set(graph)
    for w in REGISTRY:
        assert w.package in modules and w.cli in modules, w
        assert w.cli.startswith(w.package + "."), f"{w.name}: its CLI module lies outside its package"
        tree = ast.parse((ROOT / Path(*w.cli.split("."))).with_suffix(".py").read_text(encoding="utf-8"))
        assert any(isinstance(n, ast.FunctionDef) and n.name == "add_parser" for n in tree.body), w.cli
    assert len({c for w in REGISTRY for c in w.commands}) == sum(len(w.commands) for w in REGISTRY), \
        "two wings claim one command"


_LINT_IMPORTS = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")


@pytest.mark.skipif(not Path(_LINT_IMPORTS).exists(), reason="import-linter is not installed (pip install -e '.[dev]')")
def test_import_linter_contracts_hold():
    r = subprocess.run([_LINT_IMPORTS], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
