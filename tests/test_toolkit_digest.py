"""Behaviour pinned across the move of the DP estimation tools into ``pe_tabular.measure`` (issue 25).

Under the test-only noise switch a small tables run (2,000 Adult rows) and a small traces run (the UGR'16
1k-flow sample) must write byte-identical synthetic files and the same releases (names and sigmas) as the
code before the move. The digests were recorded on the base commit 91a7fbf; a change that alters any
measurement, spanning forest, raking step, degree schedule or label share changes them.
"""

from __future__ import annotations

import hashlib
import json

from pe_tabular.cli import main
from pe_tabular.privacy.noise import TEST_NOISE_ENV
from pe_tabular.tables.datasets import adult_schema, load_adult

TABLES_DIGEST = "969e0a414e320ebc73d220aa039881fabf5afcb9d058fcd62eb1fc9897d417d1"
TRACES_DIGEST = "d3b23fde5d796b1554a1e84aeb8754967829a183de2612b14623c8f421f73efa"


def _digest(out, ledger) -> str:
    """sha256 over the output file's bytes and every release's (what, size, sigma), in order."""
    rel = json.loads(ledger.read_text())["releases"]
    h = hashlib.sha256(out.read_bytes())
    h.update(json.dumps([(r["what"], r["size"], r["sigma"]) for r in rel]).encode())
    return h.hexdigest()


def test_tables_run_is_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv(TEST_NOISE_ENV, "25")
    data, schema, out = tmp_path / "adult.csv", tmp_path / "schema.json", tmp_path / "synth.csv"
    load_adult("train").sample(2000, random_state=0).to_csv(data, index=False)
    adult_schema().save(schema)
    assert main(["synth", str(data), "--schema", str(schema), "--out", str(out), "--epsilon", "1",
                 "--iterations", "2", "--population", "400", "--k", "4", "--seed", "0", "--voter", "numpy",
                 "-q"]) == 0
    got = _digest(out, tmp_path / "synth.privacy.json")
    assert got == TABLES_DIGEST


def test_traces_run_is_unchanged(tmp_path, monkeypatch):
    from conftest import shared_path

    monkeypatch.setenv(TEST_NOISE_ENV, "25")
    src, out = shared_path("data", "net", "ugr16", "ugr16_flows_1k.csv"), tmp_path / "synth.csv"
    # ε = 30: on 1k flows only a large budget makes the fitted generator measure its structure (mutual
    # information → spanning tree → pair tables fitted to their margins); raking runs at any ε
    assert main(["traces", "synth", str(src), "--epsilon", "30", "--time-window", "1458298000", "1458298300",
                 "--iterations", "3", "--population", "200", "--seed", "0", "--voter", "numpy", "--out", str(out),
                 "-q"]) == 0
    got = _digest(out, tmp_path / "synth.privacy.json")
    assert got == TRACES_DIGEST
