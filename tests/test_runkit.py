"""The engine's run kit (``pe_tabular.runkit``): the set-up every wing's run shares around ``Evolution.run``."""

from __future__ import annotations

import numpy as np
import pytest
from toy import PointBackend, PointEncoder, two_clusters

from pe_tabular.evolution import Evolution, EvolutionConfig
from pe_tabular.privacy import schedules
from pe_tabular.privacy.noise import TEST_NOISE_ENV
from pe_tabular.runkit import RunKit

CFG = EvolutionConfig.build(3, 100, 0.3, voter="numpy")
RUN = {"settings": {"epsilon": 1.0}, "input": "toy"}


def test_open_lists_public_inputs_and_charges_earlier_releases_first():
    earlier = {"iteration": -1, "sigma": 4.0, "sensitivity": 1.0, "what": "DP schema bounds", "size": 8}
    kit = RunKit.open(1e-5, 0.5, public_inputs={"schema": "DP-estimated"}, charged=[earlier])
    assert [r.what for r in kit.ledger.releases] == ["DP schema bounds"]
    assert kit.ledger.public_inputs == {"schema": "DP-estimated"} and kit.ledger.noise_mode == kit.noise.mode
    assert kit.path.ledger is kit.ledger and kit.path.checkpoint is None
    assert kit.ledger.remaining_rho() == pytest.approx(0.25 - 1 / 16)


def _run(kit: RunKit, private: np.ndarray, stop_after: int | None = None):
    """Three voted iterations through the kit; ``stop_after`` votes, then an interruption."""
    real = Evolution._vote
    calls = [0]

    def vote(self, *a, **kw):
        calls[0] += 1
        if stop_after is not None and calls[0] > stop_after:
            raise KeyboardInterrupt
        return real(self, *a, **kw)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(Evolution, "_vote", vote)
        return kit.evolve(PointBackend(), PointEncoder(), CFG, schedules.uniform(0.5, 3), private,
                          np.random.default_rng(1)), calls[0]


def test_a_resumed_run_reuses_its_releases_and_ends_like_the_whole_run(tmp_path, monkeypatch):
    """Rule 4 through the kit: the resumed run re-votes no released iteration and ends where the whole run does."""
    monkeypatch.setenv(TEST_NOISE_ENV, "3")
    private = two_clusters(np.random.default_rng(0), 400)
    whole, _ = _run(RunKit.open(1e-5, 0.5), private)
    with pytest.raises(KeyboardInterrupt):
        _run(RunKit.open(1e-5, 0.5, checkpoint=tmp_path / "ck", run=RUN), private, stop_after=2)
    with pytest.raises(ValueError, match="another run"):
        RunKit.open(1e-5, 0.5, checkpoint=tmp_path / "ck", resume=True, run={**RUN, "input": "other"})
    resumed, votes = _run(RunKit.open(1e-5, 0.5, checkpoint=tmp_path / "ck", resume=True, run=RUN), private)
    assert votes == 1  # two of three iterations were released before the interruption
    assert [r.sigma for r in resumed.ledger.releases] == [r.sigma for r in whole.ledger.releases]
    np.testing.assert_array_equal(resumed.population.samples, whole.population.samples)
    np.testing.assert_array_equal(resumed.weights, whole.weights)
