"""The wings, registered in one place (a wing's domain lives outside the engine; DESIGN "Layout").

Adding a wing is one entry here. What reads this table: the entry point (:mod:`pe_tabular.cli`: which module
builds a command's parser, and the ``--help`` line of each command, so ``pe-tabular --help`` lists every wing
without importing one), and the layout tests (``tests/test_layout.py``: the engine imports no wing, no wing
imports another). ``pyproject.toml`` cannot read Python, so its import-linter contracts and package list name
the wings again; a layout test fails when they differ from this table.

This module imports nothing: it holds module *names*, and :mod:`importlib` loads a wing only when one of its
commands is run.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Wing:
    """One wing: its ``package`` (everything of its domain lives under it), the ``cli`` module exposing
    ``add_parser(subparsers)``, and its top-level ``commands`` with the one-line help ``--help`` shows."""

    name: str
    package: str
    cli: str
    commands: dict[str, str] = field(default_factory=dict)


WINGS: tuple[Wing, ...] = (
    Wing("tables", "pe_tabular.tables", "pe_tabular.tables.cli", {
        "synth": "synthesize a private table",
        "schema": "schema tools",
        "evaluate": "fidelity/utility of a synthetic table",
        "demo": "synthesize the built-in UCI Adult at epsilon=1",
        "report": "self-contained HTML report: real vs synthetic, ledger, curves",
        "llm": "a local LLM server for the LLM backend (llm serve)",
    }),
    Wing("traces", "simulators.network", "simulators.network.cli", {"traces": "DP synthetic network traces"}),
    Wing("digits", "renderers.digits", "renderers.digits.cli",
         {"digits": "MNIST-like digits from procedural renderers (PE)"}),
)


def wing_of_module(module: str) -> Wing | None:
    """The wing a module (dotted name) belongs to, or None for the engine."""
    return next((w for w in WINGS if module == w.package or module.startswith(w.package + ".")), None)
