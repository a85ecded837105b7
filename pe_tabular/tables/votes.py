"""The private rows of a tables run as the votes see them: encoded codes, and the voter that sums over them.

By default the votes are chunk sums over the encoder's codes in the private cache
(:class:`~pe_tabular.voting.streaming.SourceVoter`); a ``vote_fn`` of the caller's own (e.g. Dask-sharded
voting) takes the codes and class labels as one array instead (memory O(rows)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.tables.private import PrivateRows
from pe_tabular.voting.streaming import SourceVoter


def vote_inputs(rows: PrivateRows, encode: Callable[[pd.DataFrame], np.ndarray], label: str | None, voter: str,
                vote_fn: Any = None) -> tuple[Any, Any, np.ndarray | None]:
    """(private codes, vote function, private class labels) for ``Evolution(vote_fn=...).run``: one pass
    encodes the rows (with their classes when ``label`` is set, so votes stay within classes)."""
    codes = rows.encoded(encode, label)
    if vote_fn is None:  # votes chunk by chunk on the cached codes
        streamed = SourceVoter(codes, voter)
        return streamed.private, streamed, None
    # a vote_fn of its own (e.g. Dask-sharded) takes the codes as one array (memory O(rows))
    batches = [b.data for p in codes.parts for b in p.batches(None)]
    private = np.concatenate([b.codes for b in batches]) if batches else np.zeros((0, 0), np.int64)
    labels = np.concatenate([b.labels for b in batches]) if label is not None and batches else None
    return private, vote_fn, labels
