"""The fast selection (``-m "not slow and not faults"``: ``make test-fast`` and the core pass of ``make test``)
still tests every privacy rule of DESIGN.md, and the full pass of ``make test`` deselects nothing but the
fault injection. Marking one of these tests slow, or narrowing the full pass, fails here."""

from __future__ import annotations

import ast
import re

from conftest import ROOT

# one fast test per privacy rule (DESIGN.md, "Privacy rules"); each asserts the rule and can fail
RULE_TESTS = {
    1: "tests/test_evolution.py::test_backend_never_receives_private_rows",
    2: "tests/test_noise.py::test_unaffordable_release_reads_no_private_data_and_draws_nothing",
    3: "tests/test_noise.py::test_secure_noise_differs_every_time_and_ignores_seeds",
    4: "tests/test_noise.py::test_resumed_release_is_restored_not_redrawn",
    5: "tests/test_cli_tables.py::test_synth_prints_and_saves_the_accountants_epsilon",
    6: "tests/test_tables_privacy.py::test_default_output_size_is_the_released_noisy_count",
    7: "tests/test_schema.py::test_each_validation_error_names_column_and_kind_but_no_private_value",
}


def _marks(decorators: list[ast.expr]) -> set[str]:
    """Names of the ``pytest.mark.X`` marks among decorators (or a module's ``pytestmark``)."""
    return {m.group(1) for d in decorators for m in re.finditer(r"pytest\.mark\.(\w+)", ast.unparse(d))}


def test_the_fast_selection_tests_every_privacy_rule():
    missing = {}
    for rule, node in RULE_TESTS.items():
        path, name = node.split("::")
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        module = _marks([n.value for n in tree.body if isinstance(n, ast.Assign)
                         and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in n.targets)])
        fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
        if fn is None or {"slow", "faults"} & (module | _marks(fn.decorator_list)):
            missing[rule] = node
    assert not missing, f"no fast test left for these privacy rules: {missing}"


def test_the_full_pass_runs_the_slow_tests():
    make = (ROOT / "Makefile").read_text()
    full = re.search(r"^test-all:.*\n\t(.*)$", make, re.M)
    assert full is not None and "pytest" in full.group(1), "make test-all no longer runs pytest"
    assert "-m" not in full.group(1).split("pytest", 1)[1].split(), f"the full pass selects by marker: {full.group(1)}"
    addopts = re.search(r"^addopts = (.*)$", (ROOT / "pyproject.toml").read_text(), re.M)
    assert addopts is not None and "slow" not in addopts.group(1)  # the default run keeps the slow tests
