"""The private rows of a tables run as the votes see them: encoded codes, and the voter that sums over them.

The votes are chunk sums over the encoder's codes in the private cache
(:class:`~pe_tabular.voting.streaming.SourceVoter`); a ``vote_fn`` of the caller's own is a factory with the
same call shape, ``(codes, voter) -> voter over them`` (e.g. :class:`~pe_tabular.dask_source.DaskVoting`,
which spreads the codes over Dask workers chunk by chunk): either way memory stays O(chunk) here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.tables.private import PrivateRows
from pe_tabular.voting.streaming import SourceVoter


def vote_inputs(rows: PrivateRows, encode: Callable[[pd.DataFrame], np.ndarray], label: str | None, voter: str,
                vote_fn: Any = None) -> tuple[np.ndarray, Any]:
    """(private stand-in, vote function) for ``Evolution(vote_fn=...).run``: one pass encodes the rows (with
    their classes when ``label`` is set: they travel with the codes inside the voter, so votes stay within
    classes)."""
    codes = rows.encoded(encode, label)
    streamed = (vote_fn or SourceVoter)(codes, voter)
    return streamed.private, streamed
