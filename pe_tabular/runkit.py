"""The set-up of one DP run, shared by every wing: noise, checkpoint, ledger, release path, and the evolution.

Each wing's run does the same things around :meth:`Evolution.run`: it takes the privacy noise source
(cryptographically seeded, rule 3, unless the test-only switch is set), opens its checkpoint (a directory is
checked against the run's public settings, so a resume on other settings or data is refused), opens the
ledger that accounts for every release under the run's μ budget (charging first what was released before
the run, e.g. a DP schema), releases through the one release path (``privacy/release.py``) with those three,
and finally runs Private Evolution on the same ledger, noise and checkpoint — on ``resume`` continuing from
the checkpoint's last population and reusing its releases, never spending twice (rule 4).
:class:`RunKit` is that set-up, once; wings keep what differs (their measurements, budget policy and
generator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pe_tabular.backends.base import Backend
from pe_tabular.checkpoint import Checkpointer, open_checkpoint
from pe_tabular.evolution import Evolution, EvolutionConfig, EvolutionResult
from pe_tabular.privacy.ledger import Ledger
from pe_tabular.privacy.noise import NoiseSource, noise_source
from pe_tabular.privacy.release import ReleasePath
from pe_tabular.privacy.schedules import BudgetPolicy


@dataclass
class RunKit:
    """One run's ledger, noise source and checkpoint, and the release path made of them."""

    ledger: Ledger
    noise: NoiseSource
    checkpoint: Checkpointer | None = None
    resume: bool = False
    path: ReleasePath = field(init=False)

    def __post_init__(self) -> None:
        self.path = ReleasePath(self.ledger, self.noise, self.checkpoint)

    @classmethod
    def open(cls, delta: float, mu: float, *, checkpoint: str | Path | Checkpointer | None = None,
             resume: bool = False, run: Mapping[str, Any] | None = None, noise: NoiseSource | None = None,
             public_inputs: Mapping[str, Any] | None = None, charged: Iterable[Mapping[str, Any]] = ()) -> RunKit:
        """Open a run, in this order: the noise source (``noise``, else this process's: secure unless the
        test-only switch is set), the checkpoint (a directory is opened and checked against ``run``, the
        run's public settings and input fingerprint; an open ``Checkpointer`` is used as it is; None: no
        checkpoint), and the ledger (δ, budget ``mu``, ``public_inputs`` listed, the ``charged`` releases made
        before the run recorded first: each a ``Ledger.record`` keyword set)."""
        noise = noise if noise is not None else noise_source()
        ckpt = open_checkpoint(checkpoint, resume, None if run is None else dict(run))
        ledger = Ledger(delta, mu_budget=mu, noise_mode=noise.mode)
        ledger.public_inputs.update(public_inputs or {})
        for release in charged:
            ledger.record(**release)
        return cls(ledger, noise, ckpt, resume)

    def evolve(self, backend: Backend, encoder: Any, config: EvolutionConfig, policy: BudgetPolicy, private: Any,
               rng: np.random.Generator, *, on_event: Callable[[dict[str, Any]], None] | None = None,
               vote_fn: Any = None, private_labels: np.ndarray | None = None,
               label_shares: dict[Any, float] | None = None) -> EvolutionResult:
        """Private Evolution over ``private`` (codes, or what ``vote_fn`` reads) on this run's ledger, noise and
        checkpoint; on ``resume`` it continues the checkpointed run."""
        evo = Evolution(backend, encoder, config, policy, self.ledger, self.noise, rng, on_event, vote_fn=vote_fn)
        return evo.run(private, private_labels=private_labels, label_shares=label_shares,
                       checkpoint=self.checkpoint, resume=self.resume)
