"""Class-conditional Private Evolution for MNIST-like digits with the procedural renderers.

The private labels partition the votes: a private image votes only among candidates of its own
class, so each row still contributes one unit-norm vote vector per iteration (parallel composition
over classes, Δ = 1). Label shares are a public input (``label_budget=0``: uniform over the ten
digits) or estimated from a noisy label histogram paid with a declared slice of the budget.

After the last vote the output set is drawn per class ∝ the final noisy counts and varied with a
small ``final_degree`` (post-processing of released counts: free), which turns a few hundred
surviving candidates per class into thousands of distinct images.

PE: Lin et al., "Differentially Private Synthetic Data via Foundation Model APIs 1: Images", ICLR
2024; simulators as the API: Lin et al. 2025, "DP synthetic data via APIs 3: using simulators".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pe_tabular.checkpoint import Checkpointer
from pe_tabular.errors import ConfigError
from pe_tabular.evolution import EvolutionConfig, allocate
from pe_tabular.measure.schedule import degree_schedule
from pe_tabular.measure.shares import estimate_label_shares
from pe_tabular.population import Population
from pe_tabular.privacy import schedules
from pe_tabular.privacy.accountant import gdp_mu
from pe_tabular.privacy.ledger import Ledger
from pe_tabular.privacy.noise import NoiseSource
from pe_tabular.privacy.schedules import make_policy
from pe_tabular.runkit import RunKit
from pe_tabular.voting.histogram import select
from renderers.digits.encoder import ImageEncoder
from renderers.digits.fonts import FontRenderer
from renderers.digits.mixture import DigitMixture
from renderers.digits.stroke import StrokeRenderer

log = logging.getLogger(__name__)
CLASSES = tuple(range(10))
RENDERERS = ("stroke", "font", "mix")
# chosen by measurement (docs/digits.md): Sim-PE-style free placement beats MNIST normalisation for both
DEFAULT_PLACEMENT = {"stroke": "free", "font": "free"}


def make_backend(renderer: str, placement: str | None = None):
    """'stroke', 'font' or 'mix' (both renderers, equal prior weight) with the chosen placement."""
    if renderer == "stroke":
        return StrokeRenderer(placement or DEFAULT_PLACEMENT["stroke"])
    if renderer == "font":
        return FontRenderer(placement or DEFAULT_PLACEMENT["font"])
    if renderer == "mix":
        return DigitMixture([StrokeRenderer(placement or DEFAULT_PLACEMENT["stroke"]),
                             FontRenderer(placement or DEFAULT_PLACEMENT["font"])])
    raise ConfigError(f"--renderer must be one of {RENDERERS}, got {renderer!r}")


@dataclass(frozen=True)
class DigitsConfig:
    """Settings of a digits PE run (every field is a public choice, recorded in the output)."""

    renderer: str = "stroke"
    placement: str | None = None
    iterations: int = 10
    population: int = 40000         # candidates per iteration, all classes together
    degree_start: float = 0.6
    degree_end: float = 0.15
    k: int = 1
    threshold: float = 0.0
    lookahead: int = 0
    selection: str = "sample"
    encoder: str = "pixels"
    n_out: int = 60000
    final_degree: float = 0.15
    label_budget: float = 0.01      # share of mu^2 for the DP label histogram; 0 = public uniform shares
    budget: str = "uniform"         # vote schedule: uniform | geometric | adaptive (pe_tabular.privacy.schedules)
    voter: str = "auto"

    def evolution_config(self) -> EvolutionConfig:
        if self.iterations >= 2 and not (0 < self.degree_end <= 1 and 0 < self.degree_start <= 1):
            raise ConfigError("degrees must lie in (0, 1]")
        return EvolutionConfig.build(self.iterations, self.population,
                                     degree_schedule(self.iterations, self.degree_start, self.degree_end) or 0.5,
                                     k=self.k, threshold=self.threshold, lookahead=self.lookahead,
                                     selection=self.selection, voter=self.voter)


@dataclass
class DigitsResult:
    images: np.ndarray          # uint8 (n_out, 28, 28)
    labels: np.ndarray          # int64 (n_out,)
    genome: np.ndarray          # float (n_out, g): re-render with backend.render
    source: np.ndarray          # renderer name per image
    ledger: Ledger
    history: list[dict[str, Any]]
    label_shares: dict[int, float]
    final: Population           # last voted population
    weights: np.ndarray         # its clipped noisy counts


class GridCheckpointer(Checkpointer):
    """A Checkpointer that also writes a PNG grid of every population it is handed.

    With ``directory=None`` it persists nothing (no resume), it only draws the grids."""

    def __init__(self, directory: str | Path | None, grid_dir: str | Path | None, per_class: int = 10, *,
                 resume: bool = False, run: dict[str, Any] | None = None):
        self.persist = directory is not None
        if self.persist:
            super().__init__(directory, resume=resume, run=run)
        else:
            self.dir = Path(".")
        self.grid_dir = None if grid_dir is None else Path(grid_dir)
        self.per_class = per_class

    def check_config(self, config: dict[str, Any], resume: bool) -> None:
        if self.persist:
            super().check_config(config, resume)

    def save_population(self, t: int, pop: Population, rng: np.random.Generator,
                        history: list[dict[str, Any]] | None = None) -> None:
        if self.grid_dir is not None and pop.label is not None:
            from renderers.digits.evaluation import save_grid

            self.grid_dir.mkdir(parents=True, exist_ok=True)
            save_grid(self.grid_dir / f"iteration_{t:02d}.png", pop.samples, pop.label, self.per_class,
                      rng=np.random.default_rng(t))
        if self.persist:
            super().save_population(t, pop, rng, history)

    def latest_population(self):
        return super().latest_population() if self.persist else None

    def save_release(self, key, values, release, ledger, index=None) -> None:
        if self.persist:
            super().save_release(key, values, release, ledger, index)

    def load_release(self, key: str):
        return super().load_release(key) if self.persist else None


def synthesize(private_images: np.ndarray, private_labels: np.ndarray, epsilon: float, delta: float,
               cfg: DigitsConfig, rng: np.random.Generator, *, noise: NoiseSource | None = None,
               checkpoint: Checkpointer | None = None, resume: bool = False,
               label_shares: dict[int, float] | None = None,
               on_event: Callable[[dict[str, Any]], None] | None = None) -> DigitsResult:
    """Run class-conditional PE and draw ``cfg.n_out`` images. Private data only ever votes."""
    if not 0 <= cfg.label_budget < 1:
        raise ConfigError(f"label_budget must be in [0, 1), got {cfg.label_budget}")
    if not 0 <= cfg.final_degree <= 1:
        raise ConfigError(f"final_degree must be in [0, 1], got {cfg.final_degree}")
    y = np.asarray(private_labels, dtype=np.int64)
    if len(y) != len(private_images):
        raise ConfigError("the private images and labels differ in number; give one label per image")
    if np.any((y < 0) | (y > 9)):
        raise ConfigError("private labels must be digits 0-9")
    backend = make_backend(cfg.renderer, cfg.placement)
    encoder = ImageEncoder.parse(cfg.encoder)
    evo_cfg = cfg.evolution_config()
    mu = gdp_mu(epsilon, delta)
    kit = RunKit.open(delta, mu, checkpoint=checkpoint, resume=resume, noise=noise,
                      public_inputs={"classes": list(CLASSES), "renderer": cfg.renderer, "encoder": cfg.encoder,
                                     "image_shape": [28, 28], "config": asdict(cfg)})
    ledger = kit.ledger
    rho_votes = mu**2
    if label_shares is not None:
        shares = {int(c): float(v) for c, v in label_shares.items()}
        ledger.public_inputs["label_shares"] = "public input"
    elif cfg.label_budget == 0:
        shares = {c: 1 / len(CLASSES) for c in CLASSES}
        ledger.public_inputs["label_shares"] = "public: uniform over the ten digits"
    else:
        rho_lab = cfg.label_budget * mu**2 if math.isfinite(mu) else math.inf
        sigma_lab = 0.0 if not math.isfinite(mu) else 1.0 / math.sqrt(rho_lab)
        shares = estimate_label_shares(y, CLASSES, sigma_lab, ledger, kit.noise, kit.checkpoint)
        rho_votes = mu**2 - rho_lab if math.isfinite(mu) else math.inf
        ledger.public_inputs["label_shares"] = f"DP-estimated, {cfg.label_budget:.1%} of mu^2"
    policy = (schedules.uniform(math.sqrt(rho_votes), cfg.iterations) if cfg.budget == "uniform"
              else make_policy(cfg.budget, math.sqrt(rho_votes), cfg.iterations))
    codes = encoder.encode(private_images)
    res = kit.evolve(backend, encoder, evo_cfg, policy, codes, rng, on_event=on_event, private_labels=y,
                     label_shares=shares)
    pop, w = res.population, res.weights
    parts = []
    for c, m in allocate(cfg.n_out, shares).items():
        rows = np.flatnonzero(pop.label == c)
        parts.append(rows[select(w[rows], m, rng).index])
    idx = np.concatenate(parts)
    parents = pop.take(idx).with_parents(idx)
    out = backend.vary(parents, cfg.final_degree, rng) if cfg.final_degree > 0 else parents
    labels = np.asarray(out.label, dtype=np.int64)
    order = rng.permutation(len(out))
    return DigitsResult(np.asarray(out.samples)[order], labels[order], np.asarray(out.genome)[order],
                        np.asarray(out.source)[order], ledger, res.history, shares, pop, w)


def render_baseline(cfg: DigitsConfig, rng: np.random.Generator, n: int | None = None,
                    shares: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The renderer alone (no voting): n images with labels ∝ shares (uniform by default)."""
    backend = make_backend(cfg.renderer, cfg.placement)
    n = n or cfg.n_out
    sh = dict(zip(CLASSES, shares or [0.1] * 10))
    pops = [backend.random(m, label=c, rng=rng) for c, m in allocate(n, sh).items()]
    pop = Population.concat(pops)
    order = rng.permutation(len(pop))
    return np.asarray(pop.samples)[order], np.asarray(pop.label, dtype=np.int64)[order]
