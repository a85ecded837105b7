"""How a tables run splits its μ-GDP budget between the DP measurements and the votes: one frozen value.

Every share is a fraction of the run's μ² (after a DP schema's charge): the noisy row count, the label
shares, the resolution of number columns, the one-way marginals, the structure table and the tree's pair
marginals; the votes get what is left. :class:`BudgetShares` is built from ``PESynthesizer``'s arguments
(whose names the command line and saved models keep), validates them with messages that name those
arguments, and holds the one rule that rescales the measurements when a run takes no votes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pe_tabular.errors import ConfigError


@dataclass(frozen=True)
class BudgetShares:
    """Fractions of μ² for each measurement of a tables run (the votes get ``1 - measured``)."""

    count: float = 0.01       # the noisy row count every size derives from
    labels: float = 0.02      # the label histogram (unused when label shares are public)
    resolution: float = 0.10  # exact values and DP quantile bins of number columns
    one_way: float = 0.20     # one-way marginals (``calibrate``)
    structure: float = 0.05   # every pair's table on coarse groups, for the dependence tree
    pairs: float = 0.47       # the tree's two-way marginals

    #: the ``PESynthesizer`` argument of each share (the names the CLI, tests and saved models use)
    ARGUMENTS: ClassVar[dict[str, str]] = {
        "count": "count_share", "labels": "label_budget_share", "resolution": "resolution_share",
        "one_way": "calibrate", "structure": "structure_share", "pairs": "pair_share"}

    @classmethod
    def from_arguments(cls, params: Mapping[str, Any]) -> BudgetShares:
        """The shares named by ``PESynthesizer`` arguments (``calibrate``, ``pair_share``, ...), validated."""
        shares = cls(**{field: float(params[arg]) for field, arg in cls.ARGUMENTS.items()})
        shares.check()
        return shares

    def check(self) -> None:
        """Refuse shares that leave nothing for a stage that needs budget; messages name the arguments."""
        if not 0 < self.labels < 1:
            raise ConfigError("`label_budget_share` must be in (0, 1)", "label_budget_share")
        if not 0 <= self.one_way < 1:
            raise ConfigError("`calibrate` (budget share of the one-way marginals) must be in [0, 1)", "calibrate")
        if not 0 <= self.structure < 1:
            raise ConfigError("`structure_share` must be in [0, 1)", "structure_share")
        if not 0 < self.count < 1:
            raise ConfigError("`count_share` (budget share of the noisy row count) must be in (0, 1)", "count_share")
        if not 0 <= self.resolution < 1:
            raise ConfigError("`resolution_share` must be in [0, 1)", "resolution_share")
        if not 0 <= self.pairs < 1 or self.measured >= 1:
            raise ConfigError("`pair_share` must be in [0, 1) and, with label_budget_share, calibrate, "
                              "structure_share, count_share and resolution_share, leave budget for the votes",
                              "pair_share")

    @property
    def measured(self) -> float:
        """The measurements' total share (what the votes do not get)."""
        return self.labels + self.one_way + self.pairs + self.structure + self.count + self.resolution

    @property
    def votes(self) -> float:
        return 1 - self.measured

    def of(self, stage: str, *, votes: bool) -> float:
        """``stage``'s share of μ². Without votes the measurements after the row count share the whole budget
        (same ratios); the row count's share is fixed, since it is released before votes are decided."""
        v = float(getattr(self, stage))
        if stage == "count" or votes:
            return v
        return v * (1 - self.count) / (self.measured - self.count)
