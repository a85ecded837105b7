"""Federated voting: client-level sensitivity 1, noise added once by the server, a full PE run."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pe_tabular.distance import CAT, L2Metric, MixedMetric
from pe_tabular.evolution import Evolution, EvolutionConfig
from pe_tabular.privacy import Ledger, NoiseSource, schedules
from pe_tabular.voting.federated import FederatedClient, FederatedVoting, clip_l2
from tests.toy import PointBackend, PointEncoder


def clients_of(rng: np.random.Generator, n_clients: int = 12) -> list[FederatedClient]:
    """Clients of very different sizes (1 to 300 rows), each near one of two clusters."""
    out = []
    for i in range(n_clients):
        n = int(rng.choice([1, 2, 30, 300]))
        centre = 20.0 if i % 2 else 75.0
        out.append(FederatedClient(rng.normal(centre, 3, (n, 2)).astype(np.float32), voter="numba"))
    return out


@pytest.mark.slow
def test_removing_any_client_moves_the_clean_histogram_by_at_most_one():
    rng = np.random.default_rng(0)
    clients = clients_of(rng, 14)
    cand = rng.uniform(0, 100, (50, 2)).astype(np.float32)
    for k in (1, 4):
        full = FederatedVoting(clients)(None, cand, L2Metric(), k, None, None, None)
        for i in range(len(clients)):
            without = FederatedVoting(clients[:i] + clients[i + 1:])(None, cand, L2Metric(), k, None, None, None)
            assert np.linalg.norm(full - without) <= 1.0 + 1e-12
        # honest clients are already at norm exactly 1: the bound is tight, nothing was clipped
        votes = FederatedVoting(clients).client_votes(cand, L2Metric(), k)
        np.testing.assert_allclose([np.linalg.norm(v) for v in votes], 1.0)


def test_a_client_cannot_raise_the_sensitivity():
    class Greedy:
        def vote(self, candidates, metric, k, candidate_labels=None):
            return np.full(candidates.shape[0], 50.0)  # claims every vote everywhere

    rng = np.random.default_rng(1)
    honest = clients_of(rng, 10)
    cand = rng.uniform(0, 100, (30, 2)).astype(np.float32)
    server = FederatedVoting([*honest, Greedy()])
    with_greedy = server(None, cand, L2Metric(), 1, None, None, None)
    without = FederatedVoting(honest)(None, cand, L2Metric(), 1, None, None, None)
    assert np.linalg.norm(with_greedy - without) == pytest.approx(1.0)
    assert server.clipped == 1
    np.testing.assert_array_equal(clip_l2(np.array([0.6, 0.8])), [0.6, 0.8])


def test_server_sees_only_vote_vectors_and_labels_stay_with_clients():
    rng = np.random.default_rng(2)
    metric = MixedMetric(np.array([CAT, CAT], np.int8), np.array([1, 1], np.int64))
    seen: list[object] = []

    class Watched(FederatedClient):
        def vote(self, *a, **kw):
            v = super().vote(*a, **kw)
            seen.append(v)
            return v

    clients = [Watched(rng.integers(0, 3, (n, 2)), labels=rng.integers(0, 2, n), voter="numba")
               for n in (5, 0, 9, 1, 4, 7, 3, 2, 6, 8)]
    cand = rng.integers(0, 3, (12, 2))
    cand_labels = np.arange(12) % 2
    out = FederatedVoting(clients)(None, cand, metric, 1, None, cand_labels, None)
    assert len(seen) == 10 and all(isinstance(v, np.ndarray) and v.shape == (12,) for v in seen)
    assert np.linalg.norm(seen[1]) == 0  # a client without rows abstains
    assert out.sum() > 0
    with pytest.raises(ValueError, match="labels stay with the clients"):
        FederatedVoting(clients)(None, cand, metric, 1, np.zeros(3), None, None)


def test_server_release_charges_sensitivity_one_and_adds_gaussian_noise():
    rng = np.random.default_rng(3)
    server = FederatedVoting(clients_of(rng, 10))
    cand = rng.uniform(0, 100, (400, 2)).astype(np.float32)
    clean = server(None, cand, L2Metric(), 1, None, None, None)
    ledger = Ledger(1e-5)
    noisy = server.release(cand, L2Metric(), 1, 2.5, ledger, NoiseSource(test_seed=7), iteration=1)
    rel = ledger.releases[-1]
    assert (rel.sigma, rel.sensitivity, rel.size) == (2.5, 1.0, 400)
    # the noise is N(0, 2.5²) per candidate: a Kolmogorov–Smirnov test on the 400 residuals
    assert stats.kstest((noisy - clean) / 2.5, "norm").pvalue > 1e-3


def test_federated_private_evolution_end_to_end():
    """12 clients run PE through the Evolution hook: one release per iteration at Δ = 1, and with
    little noise the synthetic points find the clients' two clusters."""
    rng = np.random.default_rng(4)
    server = FederatedVoting(clients_of(rng, 12))
    T = 4
    cfg = EvolutionConfig.build(T, 60, [0.5, 0.3, 0.15], voter="numba")
    ledger = Ledger(1e-5)
    evo = Evolution(PointBackend(), PointEncoder(), cfg, schedules.fixed((0.05,) * T), ledger,
                    NoiseSource(test_seed=1), np.random.default_rng(5), vote_fn=server)
    res = evo.run(server.private)
    assert [r.sensitivity for r in ledger.releases] == [1.0] * T
    out = res.population.samples[res.draw(2000, np.random.default_rng(6))]
    near = np.minimum(np.linalg.norm(out - 20, axis=1), np.linalg.norm(out - 75, axis=1))
    assert np.median(near) < 10  # uniform points on [0, 100]² have a median of about 30
