"""Fault injection (not in the default run: ``pytest -m faults``; ``PE_FAULT_TRIALS`` trials per wing, 20 by
default). kill -9 at random moments of a synth with --checkpoint, then --resume: no crash, no release paid
twice, no half-written output. benchmarks/fault_injection.py is the same, writing the RESULTS.md section."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("wing", ["tables", "traces", "digits"])
def test_kill_9_then_resume_loses_nothing_and_spends_nothing_twice(wing):
    from benchmarks.fault_injection import run

    (tally,) = run([wing], int(os.environ.get("PE_FAULT_TRIALS", "20")), seed=1)
    assert tally.trials > 0 and tally.crashes == 0, tally.notes
    assert tally.respent == 0 and tally.half_written == 0 and tally.stale_temporaries == 0, tally.notes
