"""Shared fixtures: paths to ../shared data and a table printer for figures tests should show."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
_TABLES: list[tuple[str, list[str]]] = []


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
