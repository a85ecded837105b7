"""The whole-pipeline audit's neighbour battery, fast form: the audit's own checks, a representative
subset of D vs D' cases through the real command lines, and the proof that it bites (findings 1-7 of
issue 23 re-introduced one at a time). The full battery: ``benchmarks/pipeline_audit.py``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.pipeline_audit_battery import PAIRS, Config, Pair, _abort_check, run_case
from pe_tabular.pipeline_audit import PipelineAudit, align_dropped, compare, observe


def _pair(name: str) -> Pair:
    return next(p for p in PAIRS if p.name == name)




# -- the audit's own comparisons -----------------------------------------------------------------------
def _ck_run(tmp: Path, index: list[int], noisy: float, events: str, err: str) -> dict:
    out = tmp / f"run{noisy}"
    (out / "ck").mkdir(parents=True)
    rec = json.dumps({"what": "frequent values", "size": 3})
    np.savez(out / "ck" / "release_v.npz", values=np.array([noisy]), index=np.array(index), release=np.array(rec))
    (out / "report.html").write_text(f"<p>{len(index)} real rows</p>")
    return observe(out, 0, err, events)


def test_checkpoint_positions_are_compared_value_by_value_and_noisy_values_are_not(tmp_path):
    # D and D' differ only in the saved positions (finding 3's signature): a noisy extra cell in one run
    # of D must not hide that position 4 is held by every run on D and by none on D'
    d = [_ck_run(tmp_path / "d", [0, 4], v, "", "") for v in (1.5, 2.5)]
    d += [_ck_run(tmp_path / "d2", [0, 4, 9], 3.5, "", "")]
    d1 = [_ck_run(tmp_path / "d1", [0, 3], v, "", "") for v in (4.5, 5.5, 6.5)]
    res = compare("x", "y", d, d1)
    assert "npz:ck/release_v.npz:index=4" in res.leaks and "npz:ck/release_v.npz:index=3" in res.leaks
    assert not any(":values" in k and "#shape" not in k for k in [*res.leaks, *res.noisy])
    assert "json:ck/release_v.npz:release.size" in {k for k in [*res.leaks, *res.noisy]} or res.public
    assert not any("report.html" in k for k in res.leaks)  # real-data statistics by design: existence only
    assert res.leak_kinds() == ["checkpoint"]


def test_json_events_and_stderr_templates_are_fields(tmp_path):
    runs = {side: [_ck_run(tmp_path / f"{side}{i}", [0], float(i),
                           json.dumps({"rows": 100 + i, "unit": "flow", "n": n}) + "\n",
                           "pe-tabular: warning: some rows dropped\n" * (side == "d"))
                   for i in range(2)] for side, n in (("d", 7), ("d1", 6))}
    res = compare("x", "y", runs["d"], runs["d1"])
    assert set(res.leaks) == {"cmd0:event[0]:.n", "cmd0:stderr:pe-tabular: warning: some rows dropped#0",
                              "cmd0:stderr#templates"}
    assert "cmd0:event[0]:.rows" in res.noisy and set(res.leak_kinds()) == {"json-events", "stderr"}


def test_align_dropped_finds_the_cell_of_a_value_only_d_holds():
    b = np.array([5.0, 40, 2, 1, 30, 1])
    for j in range(b.size + 1):
        a = np.insert(b, j, 1.0)
        assert np.array_equal(np.delete(a, align_dropped(a, b)), b)
    assert align_dropped(b, b) is None


def test_an_abort_is_allowed_only_before_any_release():
    pair = _pair("traces / flow / invalid value")
    leaks = {"cmd0:exit": (2, 0), "file:synth.csv": (None, True)}
    early = PipelineAudit("p", "c", 4, leaks=dict(leaks))
    _abort_check(pair, early, {"D": {"cmd0:exit": 2}, "D'": {"cmd0:exit": 0, "file:synth.csv": True}})
    assert not early.violation and "cmd0:exit" in early.allowed
    late = PipelineAudit("p", "c", 4, leaks=dict(leaks))
    _abort_check(pair, late, {"D": {"cmd0:exit": 2, "file:ck/release_count.npz": True}, "D'": {"cmd0:exit": 0}})
    assert late.violation and "after releasing" in late.notes[0]


# -- the battery, a representative subset --------------------------------------------------------------
DEFAULT = Config(checkpoint=False, verbosity="", json=True)
CK_QUIET = Config(checkpoint=True, verbosity="-q", json=False)
VERBOSE = Config(checkpoint=False, verbosity="-v", json=True)

CASES = [  # (pair, config, probe, xfail mark or None)
    ("tables / row / ordinary record", DEFAULT, True, None),
    ("tables / row / invalid value (clip)", Config(checkpoint=False, verbosity="-q", json=False), False, None),
    ("tables / row / extreme outlier", Config("dp", False, "-v", True), False, None),
    ("traces / record / ordinary record", DEFAULT, True, None),
    ("traces / host / unit split across chunks and files", DEFAULT, True, None),
    ("traces / flow / category never seen", VERBOSE, False, None),
    ("traces / flow / extreme outlier", DEFAULT, True, None),
    ("digits / image / ordinary record", DEFAULT, False, None),
    ("tables / row / ordinary record", CK_QUIET, False, None),
    ("tables / row / missing values", DEFAULT, True, None),
    ("tables / row / missing values", Config("dp", False, "", True), False, None),
    ("tables / row / missing label", Config("dp", False, "", True), False, None),  # the label's missing class
    ("tables / row / ordinary record, --target inc", DEFAULT, True, None),  # the task's pairs
    ("tables / row / missing values, --structure bn2", DEFAULT, True, None),  # family scores, three-way tables
    ("tables / row / invalid value (drop)", DEFAULT, False, None),
    ("tables / row / category never seen", DEFAULT, False, None),
    ("tables / row / n = 0 vs n = 1 valid rows", DEFAULT, False, None),
    ("traces / flow / invalid value", CK_QUIET, False, None),
    ("traces / flow / record outside the time window", DEFAULT, False, None),
    ("traces / flow / n = 0 vs n = 1 inside the window", DEFAULT, False, None),
    ("digits / image / extreme outlier", CK_QUIET, False, None),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,cfg,probe", [
    pytest.param(n, c, p, marks=m or (), id=f"{n} | {c.label}") for n, c, p, m in CASES])
def test_no_deterministic_difference_between_neighbours(name: str, cfg: Config, probe: bool, tmp_path):
    res = run_case(_pair(name), cfg, tmp_path, repeats=2, probe=probe)  # up to MAX_REPEATS a side on doubt
    assert res.audit.public > 0 and res.audit.noisy, "the runs compared nothing, or no noise reached them"
    assert not res.flagged, res.findings()


# -- it bites: each finding re-introduced must be flagged by its case ------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("finding", [1, 2, 3, 4, 5, 6, 7])
def test_the_battery_flags_each_reintroduced_finding(finding: int, tmp_path):
    from benchmarks.pipeline_audit import run_mutation

    name, res, caught = run_mutation(finding, tmp_path)
    assert caught, f"mutation {finding} ({name}) not caught; findings: {res.findings()}"


def test_mutation_1_bites_where_todays_code_is_right(tmp_path, monkeypatch):
    """With text category labels today's code keeps a missing value to its own row (the probe is clean);
    the re-introduced finding 1 is flagged there too, so the catch is the mutation's, not today's bug's."""
    import benchmarks.pipeline_audit_battery as battery
    from benchmarks.pipeline_audit_mutations import m1_missing_blanks_chunk

    monkeypatch.setitem(battery.TABLE_SCHEMA["columns"][1], "categories", [str(i) for i in range(6)])
    pair = _pair("tables / row / missing values")
    clean = run_case(pair, DEFAULT, tmp_path / "clean", probe=True)
    assert not clean.flagged, clean.findings()
    with m1_missing_blanks_chunk(tmp_path / "mutant"):
        mutant = run_case(pair, DEFAULT, tmp_path / "mutant", probe=True)
    assert any(f.startswith("sensitivity: marginal code") for f in mutant.findings()), mutant.findings()
