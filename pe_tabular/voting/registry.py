"""Choosing a nearest-neighbour kernel by name: numpy (reference), numba, jax, or auto."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from pe_tabular.voting.reference import nearest as numpy_nearest

log = logging.getLogger(__name__)
NearestFn = Callable[..., np.ndarray]


class VoteFn(Protocol):
    """Computes one iteration's *clean* vote histogram somewhere else (Dask workers, federated
    clients) for ``Evolution(vote_fn=...)``. The evolution adds the noise, once, with L2 sensitivity
    1, so an implementation must guarantee that one private unit (row, group or client) moves the
    returned vector by at most 1 in L2 norm. ``private`` is whatever was passed to ``Evolution.run``
    (for remote data, a handle with ``__len__``)."""

    def __call__(self, private: Any, candidates: np.ndarray, metric: Any, k: int,
                 private_labels: np.ndarray | None, candidate_labels: np.ndarray | None,
                 groups: np.ndarray | None, progress: Callable[[int], None] | None) -> np.ndarray: ...
VOTER_NAMES = ("numpy", "numba", "jax", "auto")


def _load(name: str) -> NearestFn:
    if name == "numpy":
        return numpy_nearest
    if name == "numba":
        from pe_tabular.voting.numba_kernel import nearest as f  # noqa: PLC0415 - optional, compiled on first use
        return f
    if name == "jax":
        from pe_tabular.voting.jax_kernel import nearest as f  # noqa: PLC0415
        return f
    raise ValueError(f"unknown --voter {name!r}; choose one of {', '.join(VOTER_NAMES)}")


_JAX_ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm7_plugin", "jax_rocm60_plugin",
                            "libtpu")


def _jax_accelerator() -> str | None:
    """The JAX backend name when an accelerator plugin is installed *and* JAX sees its device.

    JAX is imported only when such a plugin is installed: importing it costs about a second."""
    if not any(importlib.util.find_spec(m) is not None for m in _JAX_ACCELERATOR_PLUGINS):
        return None
    try:
        import jax  # noqa: PLC0415

        backend = jax.default_backend()
    except Exception as e:  # noqa: BLE001 - a broken plugin must not break voting
        log.info("JAX accelerator plugin present but unusable (%s)", e)
        return None
    return None if backend == "cpu" else backend


def get_voter(name: str = "auto") -> NearestFn:
    """The kernel for ``--voter``; ``auto`` picks the fastest available and logs its pick.

    The rule (from benchmarks/RESULTS.md, "Voting kernels"): JAX when it has an accelerator (GPU/TPU),
    else numba (fastest on CPU for both metrics), else JAX on CPU, else the numpy reference."""
    if name != "auto":
        return _load(name)
    accel = _jax_accelerator()
    order = ("jax", "numba") if accel else ("numba", "jax")
    for cand in order:
        try:
            f = _load(cand)
        except ImportError as e:
            log.info("voter %s unavailable (%s)", cand, e)
            continue
        why = f"JAX sees a {accel} device" if (cand == "jax" and accel) else "fastest available on CPU"
        log.info("voter auto -> %s (%s)", cand, why)
        return f
    log.info("voter auto -> numpy (neither numba nor jax could be imported)")
    return numpy_nearest


def class_conditional_nearest(
    nearest_fn: NearestFn, private: np.ndarray, candidates: np.ndarray, metric: Any, k: int,
    private_labels: np.ndarray | None, candidate_labels: np.ndarray | None, **kw: Any,
) -> np.ndarray:
    """Global candidate indices of each private row's k nearest candidates *of its own class*.

    Private labels partition the rows, so one vote vector per row still has L2 norm 1 over the
    concatenated per-class histograms (parallel composition)."""
    if private_labels is None:
        return nearest_fn(private, candidates, metric, k=k, **kw)
    # checked on the CANDIDATES' classes (public), before looking at the private labels: whether the run
    # fails must not depend on which classes private rows hold (privacy rule 6/7)
    classes, sizes = np.unique(candidate_labels, return_counts=True)
    if sizes.size and sizes.min() < k:
        raise ValueError(f"a class has fewer than k={k} candidates; every class needs at least k (raise "
                         "--population, or lower --k)")
    out = np.empty((private.shape[0], k), dtype=np.int64)
    for lab in classes:
        prow = np.flatnonzero(private_labels == lab)
        if prow.size == 0:
            continue
        cidx = np.flatnonzero(candidate_labels == lab)
        out[prow] = cidx[nearest_fn(private[prow], candidates[cidx], metric, k=k, **kw)]
    if not np.isin(private_labels, classes).all():
        raise ValueError("a private label is not among the declared classes; declare every class in the schema")
    return out
