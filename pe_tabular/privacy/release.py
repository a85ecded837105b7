"""The one path from exact counts on private data to a charged, noised release.

Every stage of every wing — DP schema inference, label shares, marginals, structure tables, address
tries, votes — releases through :meth:`ReleasePath.release`, which does, in this order:

1. if the checkpoint already holds this release (an interrupted run made it), restore it into the
   ledger and return it *without* touching private data (resuming never spends twice, rule 4);
2. refuse, before any private data is read, a release the ledger's privacy filter cannot afford;
3. compute the exact counts (the only step that reads private data);
4. charge the ledger (the entry carries the histogram size, a public domain size);
5. draw Gaussian noise from the CSPRNG-seeded source (rule 3), add it, and snap the sum to a grid of
   2^(⌊log2 σ⌋ − 12) (:func:`snap`): float64 Gaussian samples do not cover the reals evenly, and
   Mironov (CCS 2012) showed that the low-order bits of ``x + noise`` can reveal x; rounding to a
   public grid far coarser than a float's resolution (and finer than σ/4096, so no quality cost) removes
   that channel;
6. save the noisy values to the checkpoint at once — they are a release, so a checkpoint holding them
   is as private as the output and no more.

A release is described by a small value object, :class:`Spec`; σ comes from one formula,
:func:`pe_tabular.privacy.accountant.sigma_for_share`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pe_tabular.privacy.ledger import BudgetExceeded, Ledger, Release
from pe_tabular.privacy.noise import NoiseSource
from pe_tabular.privacy.sampling import PoissonSample

Counts = np.ndarray | Callable[[], np.ndarray]


SNAP_BITS = 12  # the grid lies in (σ/2^13, σ/2^12] (a power of two, so its multiples are exact floats)


def snap(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """Round released values to the power-of-two grid 2^(⌊log2 σ⌋ − SNAP_BITS) (a function of σ only,
    so public); σ = 0 (no privacy) is left alone."""
    if not sigma > 0 or not np.isfinite(sigma):
        return noisy
    grid = 2.0 ** (np.floor(np.log2(sigma)) - SNAP_BITS)
    return np.round(noisy / grid) * grid


@dataclass(frozen=True)
class Spec:
    """One Gaussian release.

    ``key``        unique within a run: names the checkpoint file (and so what a resume may reuse);
    ``what``       the readable ledger entry, e.g. "marginal age×sex";
    ``sigma``      the noise standard deviation (0 only for a run without privacy, ε = ∞);
    ``sensitivity`` the L2 sensitivity Δ of the counts to adding/removing one privacy unit;
    ``iteration``  the PE iteration (0 for releases before the votes, −1 for a DP schema);
    ``stream``     names the noise stream; used only by the test-only deterministic noise switch;
    ``extra_delta`` δ paid outside the GDP curve (thresholding a data-dependent domain);
    ``size``       the size recorded in the ledger; None records the histogram's length, which is right
                   only when the domain is public. A histogram over the values found in the data (a
                   thresholded release) must pass 0: its length counts distinct private values.
    ``threshold``  makes it a sparse (thresholded) release — the Gaussian sparse-histogram mechanism: the
                   first ``public_cells`` cells (public keys) are always released; any later cell (a key
                   found in the private data) only if its noisy count clears ``threshold``. Suppressed cells
                   come back as −inf, and neither they nor the number of cells reach the ledger or the
                   checkpoint. The spec carries the private cells' ``keys``: the checkpoint saves the public
                   cells' values and, for the released private cells, their *keys* and values sorted by key —
                   never a cell's position in the full vector, which would count the suppressed keys below it.
    ``keys``       a thresholded release's private-cell keys (cells ``public_cells:``, in the vector's order);
                   required when the path checkpoints.
    ``sampling_rate`` q < 1: the counts are computed on a Poisson subsample of the units at rate q (use
                   :meth:`ReleasePath.release_subsampled`, which draws the sample); accounted by PLD.
    """

    key: str
    what: str
    sigma: float
    sensitivity: float = 1.0
    iteration: int = 0
    stream: tuple[int, ...] = (0, 0)
    extra_delta: float = 0.0
    size: int | None = None
    threshold: float | None = None
    public_cells: int = 0
    sampling_rate: float = 1.0
    keys: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def thresholded(self) -> bool:
        return self.threshold is not None


class ReleaseStore(Protocol):
    """Where releases are kept the moment they are made and found again on resume (rule 4).

    The engine's :class:`pe_tabular.checkpoint.Checkpointer` is one; the protocol keeps the privacy package a
    leaf (it names what the release path needs of a store, and imports no store)."""

    def load_release(self, key: str) -> tuple[Any, Release] | None:
        """(values, ledger entry) of release ``key``, or None if it was never saved; a thresholded release's
        values come as (released values, released private-cell keys)."""
        ...

    def save_release(self, key: str, values: np.ndarray, release: Release, ledger: Ledger,
                     keys: np.ndarray | None = None) -> None:
        """Keep release ``key`` (for a thresholded one, ``keys`` are its released private cells' keys)."""
        ...


@dataclass
class ReleasePath:
    """The ledger, the noise source and (optionally) the release store — the checkpoint — of one run."""

    ledger: Ledger
    noise: NoiseSource
    checkpoint: ReleaseStore | None = None

    def release(self, spec: Spec, counts: Counts) -> np.ndarray:
        """The noisy counts of ``spec`` (see the module docstring for the order of steps)."""
        return self.release_recorded(spec, counts)[0]

    def release_recorded(self, spec: Spec, counts: Counts) -> tuple[np.ndarray, Release]:
        """Like :meth:`release`, also returning the ledger entry (a restored one keeps its recorded σ)."""
        if spec.thresholded and spec.keys is None and self.checkpoint is not None:
            raise TypeError(f"release '{spec.what}' is thresholded: checkpointing it needs its private cells' keys")
        keys = np.asarray(spec.keys)
        if self.checkpoint is not None and (saved := self.checkpoint.load_release(spec.key)) is not None:
            values, rel = saved
            self.ledger.releases.append(rel)
            if spec.thresholded:  # rebuild the vector from the data's keys: nothing new is released
                values = _unpack_sparse(spec, values, keys)
            return values, rel
        if not self.ledger.can_afford(spec.sigma, spec.sensitivity, spec.sampling_rate):
            raise BudgetExceeded(
                f"release '{spec.what}' (sigma={spec.sigma:g}, sensitivity={spec.sensitivity:g}) exceeds the "
                f"remaining budget (mu^2 left {self.ledger.remaining_rho():.4g}); raise --epsilon or lower "
                "--iterations")
        exact = np.asarray(counts() if callable(counts) else counts, dtype=np.float64)
        size = spec.public_cells if spec.thresholded else (exact.size if spec.size is None else spec.size)
        rel = self.ledger.record(spec.iteration, spec.sigma, spec.sensitivity, spec.what, size, spec.extra_delta,
                                 spec.sampling_rate)
        noisy = snap(exact + self._noise(spec, exact.shape), spec.sigma)
        if spec.thresholded:
            private = np.arange(noisy.size) >= spec.public_cells
            noisy = np.where(private & ~(noisy > spec.threshold), -np.inf, noisy)
        if self.checkpoint is not None:
            saved, saved_keys = _pack_sparse(spec, noisy, keys) if spec.thresholded else (noisy, None)
            self.checkpoint.save_release(spec.key, saved, rel, self.ledger, saved_keys)
        return noisy, rel

    def _noise(self, spec: Spec, shape: tuple[int, ...]) -> np.ndarray:
        """Gaussian noise for ``spec``; a thresholded release's private cells get noise keyed by their keys
        (the same i.i.d. draws in a real run; under the test-only switch a key keeps its noise when other
        keys come or go, so a D-vs-D′ audit compares like with like)."""
        if not spec.thresholded or spec.keys is None or len(shape) != 1:
            return self.noise.gaussian(shape, spec.sigma, spec.stream)
        keys = np.asarray(spec.keys)
        if keys.shape != (shape[0] - spec.public_cells,):
            raise ValueError(f"release '{spec.what}': keys do not match its private cells")
        return np.concatenate([self.noise.gaussian(spec.public_cells, spec.sigma, spec.stream),
                               self.noise.keyed_gaussian(keys, spec.sigma, spec.stream)])

    def release_subsampled(self, spec: Spec, counts: Callable[[PoissonSample | None], np.ndarray]) -> np.ndarray:
        """A release whose counts are computed on a Poisson subsample at ``spec.sampling_rate``:
        ``counts(sample)`` gets the sample (None when q = 1), e.g. ``lambda s: source.sum(fn, sample=s)``.
        The sample's seed comes from the privacy noise source for ``spec.stream`` (rule 3), so the rate
        charged and the rate used are one value."""
        q = spec.sampling_rate
        sample = PoissonSample.secret(q, self.noise, spec.stream) if q < 1.0 else None
        return self.release(spec, lambda: counts(sample))


def _pack_sparse(spec: Spec, noisy: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a checkpoint keeps of a thresholded release: the public cells' values, then the released private
    cells' values, and those cells' keys, sorted by key (their order in the vector may follow exact counts)."""
    pub, private = noisy[:spec.public_cells], noisy[spec.public_cells:]
    if keys.shape != private.shape:
        raise ValueError(f"release '{spec.what}': keys do not match its private cells")
    kept = np.flatnonzero(np.isfinite(private))
    order = kept[np.argsort(keys[kept], kind="stable")]
    saved = keys[order]
    return np.concatenate([pub, private[order]]), saved.astype(str) if saved.dtype == object else saved


def _unpack_sparse(spec: Spec, saved: tuple[np.ndarray, np.ndarray], keys: np.ndarray) -> np.ndarray:
    """The full vector of a restored thresholded release, laid out on this run's ``keys`` (the same input, so
    the same keys); a released key the input no longer holds means the input changed, which is refused."""
    values, saved_keys = saved
    npub = spec.public_cells
    full = np.full(npub + keys.size, -np.inf)
    full[:npub] = values[:npub]
    lookup = {k: i for i, k in enumerate(keys.tolist())}
    where = [lookup.get(k) for k in saved_keys.tolist()]
    if any(i is None for i in where):
        raise ValueError(f"--resume: the checkpoint's release '{spec.what}' does not match the input; resume with "
                         "the same input, or start a new --checkpoint")
    full[npub + np.asarray(where, dtype=np.int64)] = values[npub:]
    return full


def release_count(path: ReleasePath, spec: Spec, count: Callable[[], int]) -> float:
    """A noisy count of privacy units (Δ = 1 when one unit adds or removes one to the count).

    The exact number of private units is private (neighbouring data sets differ by one unit), so every
    size a run publishes or derives something from — the default output size, population sizes —
    comes from this release (or from a public setting), never from ``len(private)``."""
    return float(path.release(spec, lambda: np.array([float(count())]))[0])


def size_from_count(noisy: float, minimum: int = 1) -> int:
    """A size from a noisy count (post-processing): rounded, never below ``minimum``."""
    return max(int(minimum), int(round(noisy)) if np.isfinite(noisy) else int(minimum))
