"""Several generators in one evolution: one population whose samples carry their source.

``random`` splits the draw equally over the sources. ``vary`` routes every parent to the backend
that made it. Parents reach ``vary`` already resampled in proportion to their noisy votes, so each
source's share of the parents *is* the vote share it won in the last iteration: candidates are
allocated across sources by noisy vote share as pure post-processing of the released histogram —
no extra privacy budget and no extra bookkeeping.

A source that loses every vote would vanish for good, and with it the chance to recover when the
population moves into a region it models well. So ``vary`` enforces a floor: every source keeps at
least ``floor·n`` of the n new candidates, by replacing randomly chosen variations of the sources
above their floor (never pushing one below it) with fresh ``random`` draws of the starving source,
of the same class as the rows they replace. This is the "exploration floor" of bandit-style
allocations; it costs those sources ``(k−1)·floor`` of the population at most.

Two refinements, both post-processing of the released histogram the evolution hands to
:meth:`Mixture.observe` after every vote:

* **Sharpness** (``sharpness`` η, default 1). Allocating ∝ vote share is a multiplicative-weights
  step with rate 1: a source's candidate share is multiplied by its votes per candidate relative to
  the average. With η the step is taken η times, i.e. the next candidate share of source s is
  ∝ cand_s · (share_s / cand_s)^η, computed per class. Measured on Adult (benchmarks/RESULTS.md
  "Mixture of generators"): with a source that knows the domain beside the DP tree, η = 1 lets the
  mixture beat the best single source and η = 4 loses that gain; with two schema-only sources, which
  are strictly worse than the tree, η = 4 cuts the cost of carrying them to a third. Votes reward being *near*
  private rows, so vote share cannot tell a complementary source from a mode-seeking one; η is the
  user's prior on which case they are in.
* **No exploration in the last generation** (``final_floor``). The floor exists so that a source can
  win back votes *later*; the population made by the last variation is voted on once more and then
  becomes the output, so there is no later. Its floor is ``final_floor`` (0 by default): forcing weak
  rows into the final population only dilutes the output.

* **Every source explored at full size** (:func:`explore_every_source`). Splitting the first
  population n ways gives the best source only n/k candidates, so its first selection is coarser
  than alone and its later generations descend from fewer distinct parents; on Adult that alone cost
  more 2-way TVD than the weak sources' rows did. The synthesizer therefore draws the first
  population at k·n (n per source); later populations keep their size. Candidates cost compute,
  not privacy: a private row's vote has norm ≤ 1 whatever the number of candidates.

Per-iteration vote shares per source are in the evolution's ``history[t]["source_share"]``;
:func:`plot_source_shares` draws them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.backends.base import Backend
from pe_tabular.population import Population

DEFAULT_SHARPNESS = 1.0  # the vote-share rule; see the module docstring and RESULTS.md "Mixture of generators"


def _unique_tags(names: Sequence[str]) -> list[str]:
    out: list[str] = []
    for nm in names:
        tag, i = nm, 2
        while tag in out:
            tag, i = f"{nm}#{i}", i + 1
        out.append(tag)
    return out


class Mixture:
    """``Mixture([backend, ...], floor=0.05)``: a Backend over several backends (see the module docstring)."""

    def __init__(self, backends: Sequence[Backend], floor: float = 0.05, names: Sequence[str] | None = None, *,
                 sharpness: float = DEFAULT_SHARPNESS, final_floor: float = 0.0):
        if len(backends) < 1:
            raise ValueError("a mixture needs at least one backend (--mix statistical,llm:URL:MODEL,...)")
        self.backends = list(backends)
        self.tags = _unique_tags(list(names) if names is not None else [b.name for b in self.backends])
        if len(self.tags) != len(self.backends):
            raise ValueError("give one name per backend")
        if not 0.0 <= floor * len(self.backends) <= 1.0:
            raise ValueError(f"the mixture floor {floor} times {len(self.backends)} sources exceeds 1; "
                             f"use floor <= {1 / len(self.backends):.3g}")
        if sharpness < 1.0:
            raise ValueError(f"the mixture sharpness must be >= 1 (1 = allocate by vote share), got {sharpness}")
        if not 0.0 <= final_floor <= floor:
            raise ValueError(f"final_floor {final_floor} must lie in [0, floor={floor}]")
        self.floor, self.sharpness, self.final_floor = float(floor), float(sharpness), float(final_floor)
        self._plan: dict[Any, dict[str, float]] | None = None  # per class: target candidate share per source
        self._final = False
        self.name = "mix(" + "+".join(self.tags) + ")"
        self._by_tag = dict(zip(self.tags, self.backends))
        self.floor_log: list[dict[str, Any]] = []  # per vary call: counts per source before/after the floor

    # -- Backend protocol --------------------------------------------------------------------------
    def random(self, n: int, *, label: Any = None, rng: np.random.Generator) -> Population:
        k = len(self.backends)
        sizes = np.full(k, n // k)
        sizes[rng.permutation(k)[: n - sizes.sum()]] += 1  # the remainder goes to random sources
        return _concat([self._draw(t, int(m), label, rng) for t, m in zip(self.tags, sizes) if m > 0]
                       or [self._draw(self.tags[0], 0, label, rng)])

    def observe(self, pop: Population, noisy: np.ndarray, step: int, steps: int) -> None:
        """Feedback after vote ``step`` of ``steps`` (post-processing of the released histogram): plan the
        next allocation and remember whether the next variation makes the last population."""
        self._final = step >= steps - 1
        if self.sharpness == 1.0:  # the parents already follow the vote shares: nothing to plan
            self._plan = None
            return
        w = np.maximum(np.asarray(noisy, dtype=np.float64), 0.0)
        src = np.asarray(pop.source).astype(str)
        labels = np.zeros(len(src), dtype=np.int8) if pop.label is None else np.asarray(pop.label)
        plan: dict[Any, dict[str, float]] = {}
        for lab in pd.unique(labels):
            m = labels == lab
            tot = w[m].sum()
            if tot <= 0:
                continue
            score = {}
            for t in self.tags:
                cand = np.mean(src[m] == t)
                share = w[m & (src == t)].sum() / tot
                score[t] = cand * (share / cand) ** self.sharpness if cand > 0 else 0.0
            z = sum(score.values())
            plan[None if pop.label is None else lab] = {t: v / z for t, v in score.items()}
        self._plan = plan

    def vary(self, pop: Population, degree: float, rng: np.random.Generator) -> Population:
        src = np.asarray(pop.source).astype(str)
        unknown = sorted(set(src.tolist()) - set(self.tags))
        if unknown:
            raise ValueError(f"samples from sources {unknown} are not in this mixture ({self.tags}); "
                             "a resumed run must use the same --mix")
        if self._plan is not None and self.sharpness != 1.0:
            pop = self._reallocate(pop, rng)
            src = np.asarray(pop.source).astype(str)
        parts, order = [], []
        for t in self.tags:
            idx = np.flatnonzero(src == t)
            if idx.size == 0:
                continue
            out = self._by_tag[t].vary(pop.take(idx), degree, rng)
            if len(out) != idx.size:
                raise RuntimeError(f"mixture source {t} returned {len(out)} variations for {idx.size}")
            parts.append(_retag(out, t, pop.take(idx)))
            order.append(idx)
        if not parts:
            return pop
        merged = _concat(parts)
        res = merged.take(np.argsort(np.concatenate(order), kind="stable"))
        return self._enforce_floor(res, rng)

    def counters(self) -> dict[str, dict[str, Any]]:
        """Each source's counters (see ``LLMBackend.counters``) under its tag in this mixture; sources without
        any (the statistical backend) are left out. The evolution records them in the run's history."""
        out: dict[str, dict[str, Any]] = {}
        for tag, b in zip(self.tags, self.backends):
            fn = getattr(b, "counters", None)
            for c in (fn() if callable(fn) else {}).values():
                out[tag] = c
        return out

    # -- helpers ---------------------------------------------------------------------------------
    def _draw(self, tag: str, m: int, label: Any, rng: np.random.Generator) -> Population:
        out = self._by_tag[tag].random(m, label=label, rng=rng)
        if len(out) != m:
            raise RuntimeError(f"mixture source {tag} returned {len(out)} rows for random({m})")
        return Population(out.samples, np.full(m, tag, dtype=object), out.parent, out.genome, out.label)

    def floor_count(self, n: int) -> int:
        floor = self.final_floor if self._final else self.floor
        return min(int(math.ceil(floor * n)), n // len(self.tags))

    def _reallocate(self, pop: Population, rng: np.random.Generator) -> Population:
        """Resample parents so each class's source composition follows the sharpened plan. Parents of a
        source already come ∝ their noisy votes, so extra slots are filled by resampling that source's
        parents uniformly; a source with no parent in a class gets none there (the floor tops it up)."""
        src = np.asarray(pop.source).astype(str)
        labels = np.zeros(len(src), dtype=np.int8) if pop.label is None else np.asarray(pop.label)
        pick = np.arange(len(pop))
        for lab in pd.unique(labels):
            slots = np.flatnonzero(labels == lab)
            plan = self._plan.get(None if pop.label is None else lab) if self._plan else None
            if plan is None:
                continue
            have = {t: slots[src[slots] == t] for t in self.tags}
            weights = np.array([plan[t] if have[t].size else 0.0 for t in self.tags])
            if weights.sum() <= 0:
                continue
            want = _largest_remainder(slots.size, weights, cap=False)
            chosen = [rng.choice(have[t], size=int(n), replace=int(n) > have[t].size)
                      for t, n in zip(self.tags, want) if n > 0]
            pick[slots] = rng.permutation(np.concatenate(chosen))
        out = pop.take(pick)
        return Population(out.samples, out.source, pop.parent[pick], out.genome, pop.label)

    def _enforce_floor(self, pop: Population, rng: np.random.Generator) -> Population:
        n = len(pop)
        m = self.floor_count(n)
        src = np.asarray(pop.source).astype(str)
        before = {t: int(np.sum(src == t)) for t in self.tags}
        deficit = {t: m - c for t, c in before.items() if c < m}
        log = {"n": n, "floor": m, "before": before, "replaced": {}}
        if not deficit:
            self.floor_log.append(log)
            return pop
        surplus = np.array([max(before[t] - m, 0) for t in self.tags], dtype=float)
        need = sum(deficit.values())
        take = _largest_remainder(need, surplus)  # donors give ∝ their surplus, never below the floor
        victims = np.concatenate([rng.choice(np.flatnonzero(src == t), size=int(c), replace=False)
                                  for t, c in zip(self.tags, take) if c > 0])
        victims = victims[rng.permutation(victims.size)]
        new_parts, slots, pos = [], [], 0
        for t, d in deficit.items():
            rows = victims[pos:pos + d]
            pos += d
            labels = None if pop.label is None else pop.label[rows]
            if labels is None:
                new_parts.append(self._draw(t, d, None, rng))
                slots.append(rows)
            else:  # keep each replaced row's class, so class shares stay as allocated
                for lab in pd.unique(labels):
                    r = rows[labels == lab]
                    new_parts.append(self._draw(t, r.size, lab, rng))
                    slots.append(r)
            log["replaced"][t] = d
        self.floor_log.append(log)
        fresh = _concat(new_parts)
        slot = np.concatenate(slots)
        keep = np.setdiff1d(np.arange(n), slot)
        merged = _concat([pop.take(keep), Population(fresh.samples, fresh.source, pop.parent[slot],
                                                               fresh.genome, None if pop.label is None
                                                               else pop.label[slot])])
        return merged.take(np.argsort(np.concatenate([keep, slot]), kind="stable"))


def explore_every_source(config: Any, backend: Any) -> Any:
    """``config`` with the first population multiplied by the mixture's number of sources (n per source;
    see the module docstring); unchanged for any other backend."""
    k = len(backend.backends) if isinstance(backend, Mixture) else 1
    if k <= 1:
        return config
    return replace(config, population=(config.population[0] * k, *config.population[1:]))


def _concat(parts: list[Population]) -> Population:
    """Concatenate sources' populations. Genomes survive only when every part carries a compatible
    one; otherwise they are dropped and each backend varies from the samples themselves (every
    table backend can: a genome is a cache of what the samples already say)."""
    genomes = [p.genome for p in parts]
    if any(g is not None for g in genomes):
        shapes = {np.shape(g)[1:] if g is not None else None for g in genomes}
        if None in shapes or len(shapes) > 1:
            parts = [replace(p, genome=None) for p in parts]
    return Population.concat(parts)


def _retag(out: Population, tag: str, parents: Population) -> Population:
    return Population(out.samples, np.full(len(out), tag, dtype=object), parents.parent, out.genome, parents.label)


def _largest_remainder(total: int, weights: np.ndarray, cap: bool = True) -> np.ndarray:
    """Integers ∝ weights summing to ``total`` (capped at the weights themselves when ``cap``)."""
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(weights.size, dtype=np.int64)
    raw = weights / weights.sum() * total
    base = np.floor(raw).astype(np.int64)
    for i in np.argsort(-(raw - base), kind="stable")[: total - base.sum()]:
        base[i] += 1
    return np.minimum(base, weights.astype(np.int64)) if cap else base


def source_shares(history: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Noisy vote share per source (columns) and iteration (rows) from an evolution's history."""
    rows = {int(h["iteration"]): h.get("source_share", {}) for h in history if h.get("type", "iteration") ==
            "iteration"}
    return pd.DataFrame.from_dict(rows, orient="index").fillna(0.0).sort_index()


def plot_source_shares(history: Sequence[dict[str, Any]], path: str | Path | None = None,
                       title: str = "Noisy vote share per source") -> Any:
    """Stacked area of each source's noisy vote share by iteration; saved to ``path`` when given."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    df = source_shares(history)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.stackplot(df.index, df.T.to_numpy(), labels=list(df.columns))
    ax.set(xlabel="iteration", ylabel="share of noisy votes", ylim=(0, 1), title=title)
    ax.set_xticks(list(df.index))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    if path is not None:
        from pe_tabular.io_utils import atomic_write

        atomic_write(path, lambda t: fig.savefig(t, format=Path(path).suffix.lstrip(".") or "png", dpi=120))
        plt.close(fig)
    return fig
