"""Privacy units across chunks, and Poisson subsampling of them.

**Why a per-unit table.** Unit-level DP (a user, a host, a flow — rule 6) needs the contribution of ALL
of one unit's rows to move a released histogram by at most Δ in L2 norm. In one in-memory frame the
engine normalises each unit's vote vector (``voting.histogram.vote_histogram``). A streamed source
cannot: a unit's rows may sit in any chunk of any file. Two designs were possible:

* require every unit to sit in one partition (what the retired sharded voter checked with salted digests). Fine
  for Dask partitions written by unit, useless for a file scanned in 64k-row batches;
* **count first** (chosen): one pass over the unit columns only builds a table unit → number of rows
  n_u, kept where the data is (this process, or one Dask worker); every later pass weights each row of
  unit u by 1/n_u. If each row's contribution vector has L2 norm ≤ Δ (one histogram bin: 1; k-NN
  votes with weight 1/√k: 1), unit u moves the sum by ≤ Σ_rows Δ/n_u = Δ, whatever the order of the
  rows, the chunking or the partitioning. It works for every measurement (marginals, quantile
  histograms, votes), not only votes. Its price: a unit whose rows vote for many different candidates
  contributes less than with exact L2 normalisation (‖mean‖ ≤ 1 instead of = 1).

**Memory cost.** The table holds a 128-bit digest and an int64 count per unit: 24 bytes × units
(240 MB for 10⁷ units), independent of the rows per unit. Record-level runs (no unit column) need no
table at all.

**Digests.** A single integer unit column is used as it is (an exact, collision-free key). Any other
unit (strings, several columns) is keyed by two independent 64-bit SipHash digests of its values' text
(fixed public keys, so every process and every Dask worker computes the same 128-bit digest). Two units
with one digest would be counted as one; adding a unit that collides with a present one could then move
a sum by up to 2Δ instead of Δ. For the added unit that happens with probability at most U·2⁻¹²⁸ (U
units present; below 10⁻²⁸ for any real data set), a failure probability far inside δ. The other way
to break the bound — one unit split into two digests — happens only if its column has different types
in different chunks (e.g. integers in one CSV file, text in another); every digest records its type and
a pass refuses mixed types (:class:`UnitTypeError`).

**Poisson subsampling** (:class:`~pe_tabular.privacy.sampling.PoissonSample`): every unit is in the sample
independently with probability q (Balle, Barthe & Gaboardi, "Privacy Amplification by Subsampling: Tight Analyses via
Couplings and Divergences", NeurIPS 2018, Poisson sampling under add/remove-one neighbours). The draws
come from a seed that the caller takes from the privacy noise source (CSPRNG; rule 3), so ``--seed``
never reproduces which units voted. A unit's decision is made once per release from the table (one draw
per unit in digest order), and a row-level run draws one uniform per row at its (part, position) with a
counter-based generator, so the sample does not depend on how the data is chunked or partitioned — the
in-memory, streamed and Dask runs of the same data take the same sample for the same seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from pe_tabular.errors import UnitTypeError
from pe_tabular.privacy.sampling import PoissonSample

_KEYS = ("pe-tabular/unit0", "pe-tabular/unit1")  # public SipHash keys: 16 bytes each


_MIXED = ("the unit column has different types in different chunks or files, so one unit could be counted as "
          "two; declare the column's type (column_types=...)")


def unit_digests(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, str]:
    """((n, 2) uint64 digests, one row per frame row; type tag). See the module docstring for the tag."""
    if len(columns) == 1 and pd.api.types.is_integer_dtype(frame[columns[0]].dtype) \
            and not frame[columns[0]].isna().any():
        v = frame[columns[0]].to_numpy().astype(np.int64, copy=False).view(np.uint64)
        return np.stack([v, np.zeros_like(v)], axis=1), "int"
    text = frame[list(columns)[0]].astype(str).to_numpy(dtype=object)
    for c in list(columns)[1:]:  # a separator no str() of a value starts with keeps the columns apart
        text = text + "\x1f" + frame[c].astype(str).to_numpy(dtype=object)
    h = [pd.util.hash_array(text, hash_key=k, categorize=False) for k in _KEYS]
    tag = ",".join(str(frame[c].dtype.kind) for c in columns)
    return np.stack(h, axis=1), "text:" + tag


def _unique(d: np.ndarray, counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Unique digest rows sorted by (hi, lo), with summed counts. The fast path sorts the 64-bit hi words
    only; the lo words are then checked, and a genuine 64-bit collision takes the exact (lexsort) path."""
    c = np.ones(len(d), np.int64) if counts is None else np.asarray(counts, np.int64)
    hi, lo = d[:, 0], d[:, 1]
    u, inv = np.unique(hi, return_inverse=True)
    inv = inv.ravel()
    first = np.zeros(u.size, np.int64)
    first[inv[::-1]] = np.arange(len(d))[::-1]  # a row of each hi value
    if np.array_equal(lo[first][inv], lo):
        return np.stack([u, lo[first]], axis=1), np.bincount(inv, weights=c, minlength=u.size).astype(np.int64)
    order = np.lexsort((lo, hi))
    hs, ls = hi[order], lo[order]
    new = np.r_[True, (hs[1:] != hs[:-1]) | (ls[1:] != ls[:-1])]
    grp = np.cumsum(new) - 1
    return np.stack([hs[new], ls[new]], axis=1), np.bincount(grp, weights=c[order]).astype(np.int64)


@dataclass(frozen=True)
class UnitTable:
    """Unique unit digests sorted by (hi, lo), and each unit's number of rows over the WHOLE data set."""

    digests: np.ndarray  # (U, 2) uint64
    counts: np.ndarray
    tag: str | None = None

    @staticmethod
    def from_digests(digests: np.ndarray, tag: str | None) -> UnitTable:
        u, c = _unique(digests)
        return UnitTable(u, c, tag)

    @staticmethod
    def merge(tables: Sequence[UnitTable]) -> UnitTable:
        """Counts of the same unit in several tables (chunks, partitions) add up."""
        tables = [t for t in tables if t.digests.size]
        tags = {t.tag for t in tables}
        if len(tags) > 1:
            raise UnitTypeError(_MIXED)
        if not tables:
            return UnitTable(np.zeros((0, 2), np.uint64), np.zeros(0, np.int64))
        u, c = _unique(np.concatenate([t.digests for t in tables]), np.concatenate([t.counts for t in tables]))
        return UnitTable(u, c, tags.pop())

    @property
    def nbytes(self) -> int:
        return int(self.digests.nbytes + self.counts.nbytes)

    def weights(self, sample: PoissonSample | None = None) -> UnitWeights:
        """Per-unit row weight 1/n_u, times the unit's inclusion in ``sample`` (one draw per unit)."""
        w = 1.0 / np.maximum(self.counts, 1).astype(np.float64)
        if sample is not None and sample.rate < 1.0:
            w = w * (sample.unit_uniforms(len(self.digests)) < sample.rate)
        return UnitWeights(self.digests, w, self.tag)


@dataclass(frozen=True)
class UnitWeights:
    """What a pass needs of the table: digests and the weight of each unit's rows for this release."""

    digests: np.ndarray
    weights: np.ndarray
    tag: str | None

    @cached_property
    def _index(self) -> PairIndex:
        return PairIndex(self.digests)

    def lookup(self, digests: np.ndarray, tag: str) -> np.ndarray:
        """Row weights for a chunk's digests. A digest missing from the table means the data changed
        since the counting pass: refuse, since its unit's count (and so its weight) is unknown."""
        if self.tag is not None and tag != self.tag:
            raise UnitTypeError(_MIXED)
        idx, ok = self._index.find(digests)
        if not ok.all():
            raise RuntimeError("a privacy unit appeared that the counting pass did not see: the private data "
                               "changed between passes; rerun on data that is not being written to")
        return self.weights[idx]


class PairIndex:
    """Exact, vectorised search of 128-bit keys in a table of unique (hi, lo) rows sorted by (hi, lo).

    Why not a search on the hi word alone: derived units share it (every flow of one server endpoint has
    the same low word), and resolving each shared word row by row in Python cost a flow-level run more
    than all its votes. Instead both words are replaced by their ranks among the table's distinct hi and
    lo values; rank_hi · L + rank_lo (L distinct lo values) is then one int64 key, sorted like the table,
    exact while the table has fewer than 3·10⁹ distinct words per column."""

    def __init__(self, digests: np.ndarray):
        self.hi, lo = digests[:, 0], digests[:, 1]
        new = np.r_[True, self.hi[1:] != self.hi[:-1]] if self.hi.size else np.zeros(0, bool)
        self.unique_hi = not self.hi.size or bool(new.all())  # then the hi word alone finds a row
        self.lo = lo
        if not self.unique_hi:
            self.his, self.los = self.hi[new], np.unique(lo)
            self.keys = (np.cumsum(new) - 1) * self.los.size + np.searchsorted(self.los, lo)

    @staticmethod
    def _rank(values: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = np.minimum(np.searchsorted(values, q), values.size - 1)
        return pos, values[pos] == q

    def find(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row of each query in the table, whether it is there) for (n, 2) uint64 queries."""
        if self.hi.size == 0:
            return np.zeros(len(q), np.int64), np.zeros(len(q), bool)
        if self.unique_hi:
            idx, ok = self._rank(self.hi, q[:, 0])
            return idx, ok & (self.lo[idx] == q[:, 1])
        rh, ok_h = self._rank(self.his, q[:, 0])
        rl, ok_l = self._rank(self.los, q[:, 1])
        idx, ok = self._rank(self.keys, rh * self.los.size + rl)
        return idx, ok & ok_h & ok_l
