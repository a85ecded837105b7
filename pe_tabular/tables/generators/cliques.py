"""A degree-2 Bayesian network generator fitted only on DP marginals (post-processing), used as a PE backend.

PrivBayes (Zhang et al., TODS 2017) samples a Bayesian network whose columns each condition on at most k
earlier ones; here k = 2 and the families come from ``pe_tabular.tables.families`` (chosen from DP scores,
measured as three-way marginals, fitted to the one-way margins). A column without a second parent keeps its
tree edge (a measured pair, as :class:`~pe_tabular.tables.generators.tree.TreeBackend`), a root its one-way
marginal. Same contract as the tree generator: ``random(n)`` draws columns in the network's order, each from its
conditional given its parents' (coarse) bins, refined to a fine public bin by its one-way marginal; ``vary``
resamples a degree-sized subset of columns, each with every column below it, given the row's other values.
With a task column (``--target``) the network starts at it and every column whose family does not hold the task
is weighed by its released pair with it, as in the tree (one draw step for both: ``TreeBackend._sample_columns``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from pe_tabular.tables.generators.tree import Family, TreeBackend, saved_marginals
from pe_tabular.tables.marginals import Binning, Key, Resolutions, pair_binning
from pe_tabular.tables.schema import Schema


class BayesNetBackend(TreeBackend):
    """``families``: a child's three-way table keyed (parent, parent, child), a distribution over
    ``res[key]``'s bins; ``pairs``: the tree edges (either orientation) — a column's family when it has no
    three-way table, else its finer dependence on its first parent (see ``_draw_refined``); ``order``: every
    column, each after its parents (checked)."""

    name = "bn2"

    def __init__(self, schema: Schema, one_way: dict[str, np.ndarray], pairs: dict[Key, np.ndarray],
                 families: dict[Key, np.ndarray], order: list[str], decoders: dict[str, Any] | None = None,
                 res: Resolutions | None = None, task: str | None = None,
                 task_pairs: dict[Key, np.ndarray] | None = None):
        self.schema = schema
        self.decoders = dict(decoders or {})
        self.res = {tuple(k): tuple(v) for k, v in (res or {}).items()}  # type: ignore[misc]
        self.fine = {c.name: Binning.of(c) for c in schema.columns}
        self.p1 = {n: np.asarray(one_way[n], float) for n in schema.names}
        self._f2c: dict[tuple[str, int], np.ndarray] = {}
        if sorted(order) != sorted(schema.names):
            raise ValueError("the network's order must list every column once")
        pos = {n: i for i, n in enumerate(order)}
        self.fam: dict[str, Family] = {}
        self.pairs: dict[Key, np.ndarray] = {}  # the released tables, as given (save() writes them)
        self.triples = {tuple(k): np.asarray(v, float) for k, v in families.items()}
        for key, joint in self.triples.items():
            ks = self._ks(key)
            t = joint.reshape([pair_binning(schema[n], k).n_bins for n, k in zip(key, ks)])
            self.fam[key[-1]] = (tuple(key[:-1]), _conditional(t), ks[:-1], ks[-1])
        self.refine: dict[str, Family] = {}  # a two-parent child's finer pair with its first parent
        for (a, b), joint in pairs.items():
            child, par = (b, a) if pos[a] < pos[b] else (a, b)
            ka, kb = self._ks((a, b))
            t = np.asarray(joint, float).reshape(pair_binning(schema[a], ka).n_bins, pair_binning(schema[b], kb).n_bins)
            if child == a:
                t, ka, kb = t.T, kb, ka
            self.pairs[(a, b)] = np.asarray(joint, float)
            if child not in self.fam:
                self.fam[child] = ((par,), _conditional(t), (ka,), kb)
            elif self.fam[child][0][0] == par and child not in self.refine:
                self.refine[child] = ((par,), _conditional(t), (ka,), kb)
            else:
                raise ValueError(f"column {child!r} has two families")
        for child, (ps, *_rest) in self.fam.items():
            if any(pos[p] >= pos[child] for p in ps):
                raise ValueError(f"column {child!r} comes before a parent: the network must be a DAG in its order")
        self.order = [(n, None, None) for n in order]  # random() reads the names
        if task is not None and order[0] != task:
            raise ValueError("with a task column the network's order must start at it")
        self._weigh_by_task(task, task_pairs)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The tree's arrays (:meth:`TreeBackend.to_arrays`, three-way tables included) and the network's
        ``order``, which marks a saved network."""
        return {**super().to_arrays(), "order": np.array(json.dumps([o[0] for o in self.order]))}

    @classmethod
    def from_arrays(cls, schema: Schema, z: Mapping[str, np.ndarray]) -> BayesNetBackend:
        """The network :meth:`to_arrays` wrote, under the (resolved) schema it was fitted with."""
        m = saved_marginals(schema, z)
        return cls(schema, m.one_way, m.pairs, m.triples, json.loads(str(z["order"])), decoders=m.decoders, res=m.res,
                   task=next(iter(m.task_pairs))[0] if m.task_pairs else None, task_pairs=m.task_pairs)


def _conditional(t: np.ndarray) -> np.ndarray:
    """P(last axis | the others) of a joint table; a parent cell with no mass gets the child's margin."""
    t = np.clip(np.asarray(t, float), 0, None)
    s = t.sum(axis=-1, keepdims=True)
    margin = t.sum(axis=tuple(range(t.ndim - 1)))
    margin = margin / margin.sum() if margin.sum() > 0 else np.full(margin.size, 1.0 / margin.size)
    return np.where(s > 0, t / np.where(s > 0, s, 1.0), margin)
