"""Federated voting with client-level differential privacy.

Clients keep their private rows and answer each round with a single vote vector over the broadcast
candidates: all of a client's votes summed and scaled to L2 norm 1 (``vote_histogram`` with the
whole client as one group). Adding or removing a client therefore moves the sum by at most 1 in
L2 norm, so the server's Gaussian release of the sum is client-level DP with sensitivity 1 — the
same σ, ledger and accountant as a single-process run, with "client" in place of "row". This is
the per-user clipping of DP-FedAvg (McMahan et al., "Learning Differentially Private Recurrent
Language Models", ICLR 2018) applied to PE's vote histograms (Lin et al., ICLR 2024).

The server never trusts a client to have normalised: it clips every received vector to L2 norm 1
(a no-op for honest clients), so a faulty or malicious client cannot raise the sensitivity. The
server does see the clean sum before adding noise (central DP with a trusted aggregator); secure
aggregation would remove that trust and is out of scope here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from pe_tabular.checkpoint import Checkpointer
from pe_tabular.privacy.ledger import Ledger
from pe_tabular.privacy.noise import NoiseSource
from pe_tabular.voting.histogram import vote_histogram
from pe_tabular.voting.registry import class_conditional_nearest, get_voter

log = logging.getLogger(__name__)


class VoteClient(Protocol):
    """What the server may ask of a client: one vote vector per round, nothing else."""

    def vote(self, candidates: np.ndarray, metric: Any, k: int,
             candidate_labels: np.ndarray | None = None) -> np.ndarray: ...


class FederatedClient:
    """A client holding its own private codes (and labels, for class-conditional runs)."""

    def __init__(self, codes: np.ndarray, labels: np.ndarray | None = None, voter: str = "auto"):
        self._codes = np.asarray(codes)
        self._labels = None if labels is None else np.asarray(labels)
        self._nearest = get_voter(voter)

    def vote(self, candidates: np.ndarray, metric: Any, k: int,
             candidate_labels: np.ndarray | None = None) -> np.ndarray:
        """This client's votes, summed and scaled to L2 norm 1 (all zeros if it holds no rows)."""
        m = candidates.shape[0]
        n = self._codes.shape[0]
        if n == 0:
            return np.zeros(m)
        labels = self._labels if candidate_labels is not None else None
        nn = class_conditional_nearest(self._nearest, self._codes, candidates, metric, k, labels, candidate_labels)
        return vote_histogram(nn, m, groups=np.zeros(n, dtype=np.int64))


def clip_l2(v: np.ndarray, bound: float = 1.0) -> np.ndarray:
    """v scaled down to L2 norm ≤ bound (unchanged if already within)."""
    norm = float(np.linalg.norm(v))
    return v if norm <= bound else v * (bound / norm)


@dataclass(frozen=True)
class FederatedPrivate:
    """Stands for the clients' data in ``Evolution.run``: its length is the number of clients."""

    n_clients: int

    def __len__(self) -> int:
        return self.n_clients


class FederatedVoting:
    """The server's ``VoteFn`` (see ``registry.VoteFn``): asks every client for its vote vector,
    clips each to L2 norm 1 and returns the clean sum; ``Evolution`` then adds the noise once."""

    def __init__(self, clients: Sequence[VoteClient]):
        if not clients:
            raise ValueError("federated voting needs at least one client")
        self.clients = list(clients)
        self.private = FederatedPrivate(len(self.clients))
        self.clipped = 0  # vectors that arrived with norm > 1 (faulty clients), over all rounds

    def client_votes(self, candidates: np.ndarray, metric: Any, k: int,
                     candidate_labels: np.ndarray | None = None,
                     progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
        """Each client's vector after validation and clipping (what enters the sum)."""
        m = candidates.shape[0]
        out = []
        for i, client in enumerate(self.clients):
            v = np.asarray(client.vote(candidates, metric, k, candidate_labels), dtype=np.float64)
            if v.shape != (m,) or not np.isfinite(v).all():
                raise ValueError(f"client {i} returned a vote vector of shape {v.shape} (finite values of "
                                 f"shape ({m},) expected)")
            if np.linalg.norm(v) > 1.0 + 1e-9:
                self.clipped += 1
                log.warning("client %d sent a vote vector of L2 norm %.3g > 1: clipped", i, np.linalg.norm(v))
            out.append(clip_l2(v))
            if progress:
                progress(1)
        return out

    def __call__(self, private: Any, candidates: np.ndarray, metric: Any, k: int,
                 private_labels: np.ndarray | None, candidate_labels: np.ndarray | None,
                 groups: np.ndarray | None, progress: Callable[[int], None] | None = None) -> np.ndarray:
        if private_labels is not None or groups is not None:
            raise ValueError("in federated voting the labels stay with the clients (FederatedClient(labels=...)) "
                             "and each client is one group; pass neither to Evolution.run")
        votes = self.client_votes(candidates, metric, k, candidate_labels, progress)
        return np.sum(votes, axis=0)

    def release(self, candidates: np.ndarray, metric: Any, k: int, sigma: float, ledger: Ledger,
                noise: NoiseSource, iteration: int, candidate_labels: np.ndarray | None = None,
                checkpoint: Checkpointer | None = None) -> np.ndarray:
        """One noisy round outside ``Evolution``: charge the ledger (Δ = 1 per client), then add noise."""
        from pe_tabular.privacy.release import ReleasePath, Spec  # noqa: PLC0415 - the engine's one release path

        spec = Spec(f"federated_vote_{iteration:03d}", f"federated vote histogram, round {iteration}", sigma,
                    iteration=iteration, stream=(iteration, 0))
        return ReleasePath(ledger, noise, checkpoint).release(
            spec, lambda: self(self.private, candidates, metric, k, None, candidate_labels, None))
