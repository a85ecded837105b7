"""One code path from private trace records to DP synthetic records (used by the CLI and the benchmark).

The private records are encoded once (public encoder settings), then only vote inside
``Evolution``; the simulator only ever sees synthetic populations. With ``unit`` ``flow`` or ``host``
the records are grouped so that everything one flow (bidirectional 5-tuple) or one host (the client
endpoint of each connection) contributed votes with total L2 norm 1: the (ε, δ) guarantee then covers
the whole flow or host, not one record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.checkpoint import Checkpointer, open_checkpoint
from pe_tabular.evolution import Evolution, EvolutionConfig
from pe_tabular.population import Population
from pe_tabular.privacy import schedules
from pe_tabular.privacy.accountant import gdp_mu
from pe_tabular.privacy.ledger import Ledger
from pe_tabular.privacy.noise import noise_source
from pe_tabular.voting.histogram import select
from simulators.network import priors as P
from simulators.network.dp_priors import FittedPriors, PriorShares, fit_priors
from simulators.network.encoder import FlowEncoder, PacketEncoder, ip_to_uint32, port_class, proto_to_number
from simulators.network.flows import FlowSimulator
from simulators.network.marginals import (
    MarginalSpec,
    Released,
    flow_marginal_specs,
    host_specs,
    marginal_sigma,
    packet_marginal_specs,
    rake,
    release_marginals,
)
from simulators.network.packets import PacketSimulator

log = logging.getLogger(__name__)
UNITS = ("record", "flow", "host")


def privacy_groups(records: pd.DataFrame, unit: str) -> np.ndarray | None:
    """Group ids for the privacy unit (None = each record is its own unit).

    flow: the bidirectional 5-tuple, so both directions of a connection and every record an exporter
    split it into form one unit. host: the connection's client endpoint — the address on the side with
    the higher port class (ephemeral > registered > well-known), ties going to the higher port, and
    the source for port-less protocols — so one client's connections, both directions, form one unit."""
    if unit == "record":
        return None
    if unit not in UNITS:
        raise ValueError(f"--unit must be one of {', '.join(UNITS)}, got {unit!r}")
    s, d = ip_to_uint32(records["srcip"], "srcip"), ip_to_uint32(records["dstip"], "dstip")
    sp, dp = records["srcport"].to_numpy(np.int64), records["dstport"].to_numpy(np.int64)
    proto = proto_to_number(records["proto"])
    if unit == "flow":
        a, b = (s << 16) | sp, (d << 16) | dp
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        key = pd.DataFrame({"lo": lo, "hi": hi, "p": proto})
    else:
        cs, cd = port_class(sp), port_class(dp)
        src_is_client = (cs > cd) | ((cs == cd) & (sp >= dp))
        key = pd.DataFrame({"h": np.where(src_is_client, s, d)})
    return key.groupby(list(key.columns), sort=False).ngroup().to_numpy(np.int64)


def auto_population(n_records: int) -> int:
    """Default candidates per iteration: 0.4 per private record, between 200 and 16,000. Measured on
    UGR'16 (benchmarks/traces.py): coverage, not vote noise, limits quality, so populations of the order
    of the data beat small ones even at a few votes per candidate (k = 4 keeps those votes above the
    noise). The record count is treated as public, as the output size is."""
    return int(min(16000, max(200, round(0.4 * n_records))))


def degree_schedule(iterations: int, start: float, end: float) -> tuple[float, ...]:
    """Geometric decay from ``start`` to ``end`` over the T−1 variation steps (coarse moves first)."""
    steps = max(iterations - 1, 0)
    if steps == 0:
        return ()
    if steps == 1:
        return (float(start),)
    return tuple(float(x) for x in np.geomspace(start, end, steps))


@dataclass
class TraceSynthConfig:
    """Settings of one trace synthesis run; every field is public (no value is read from the data)."""

    epsilon: float
    delta: float = 1e-5
    unit: str = "record"
    time_window: tuple[float, float] | None = None
    ts_resolution_s: float = 1e-6
    iterations: int = 10
    population: int | Sequence[int] | None = None  # None: auto_population(n)
    k: int = 4
    degree_start: float = 0.6
    degree_end: float = 0.1
    keep_selected: float = 0.0
    final_degree: float = 0.0
    time_coupling: float = 0.0
    threshold: float = 0.0
    seed: int | None = None
    n_out: int | None = None
    weights: Mapping[str, int] = field(default_factory=dict)
    ts_bins: int = 128
    voter: str = "auto"
    prior_shares: PriorShares = field(default_factory=lambda: PriorShares(addresses=0.12, services=0.03, times=0.0))
    marginal_share: float = 0.2

    def encoder_weights(self) -> dict[str, int]:
        """With time_coupling 0 the output's start times come from the DP time histogram, so votes
        ignore time (weight 0) and spend the candidates on the other fields."""
        return {"ts": 0, **self.weights} if self.time_coupling == 0 else dict(self.weights)

    def validate(self) -> None:
        if self.time_window is None:
            raise ValueError("--time-window START END is required: the time range of the trace is a public "
                             "input (e.g. the capture's documented period), never read from the private file")
        if self.unit not in UNITS:
            raise ValueError(f"--unit must be one of {', '.join(UNITS)}, got {self.unit!r}")


@dataclass
class TraceSynthResult:
    records: pd.DataFrame
    ledger: Ledger
    history: list[dict[str, Any]]
    population: Population
    weights: np.ndarray
    wall_s: float
    cpu_s: float


def _public_inputs(cfg: TraceSynthConfig, level: str) -> dict[str, Any]:
    return {"level": level, "unit": cfg.unit, "time_window_s": list(cfg.time_window or ()),
            "ts_resolution_s": cfg.ts_resolution_s, "encoder_weights": dict(cfg.weights), "ts_bins": cfg.ts_bins,
            "priors": "simulators.network.priors (public: IANA services, OS port ranges, TTLs, diurnal curve)",
            "prior_budget_shares": {"addresses": cfg.prior_shares.addresses, "services": cfg.prior_shares.services,
                                    "times": cfg.prior_shares.times, "marginals": cfg.marginal_share}}


def _run(private: pd.DataFrame, cfg: TraceSynthConfig, level: str,
         make_backend: Callable[[FittedPriors | None], Any], encoder: Any, specs: list[MarginalSpec],
         finish: Callable[[Any, Population, np.random.Generator], pd.DataFrame], checkpoint: str | Checkpointer | None,
         resume: bool, on_event: Callable[[dict[str, Any]], None] | None) -> TraceSynthResult:
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    cfg.validate()
    if len(private) == 0:
        raise ValueError("the private trace has no records")
    codes = encoder.encode(private)
    groups = privacy_groups(private, cfg.unit)
    mu = gdp_mu(cfg.epsilon, cfg.delta)
    ck = open_checkpoint(checkpoint, resume, {"settings": asdict(cfg), "level": level})
    # on --resume every release already made is restored into this ledger from the checkpoint
    ledger = Ledger(cfg.delta, mu_budget=mu)
    ledger.public_inputs.update(_public_inputs(cfg, level))
    noise = noise_source()
    ledger.noise_mode = noise.mode
    rng = np.random.default_rng(cfg.seed)
    shares = cfg.prior_shares
    spent = shares.total + cfg.marginal_share
    if not 0 <= spent < 1:
        raise ValueError(f"prior and marginal budget shares add up to {spent:g}; they must stay below 1")
    priors = fit_priors(private, groups, cfg.time_window, mu, shares, ledger, noise, ck) if shares.total > 0 \
        else None
    released: list[Released] = []
    if cfg.marginal_share > 0:
        hosts = priors.addresses.prefixes[priors.addresses.prefix_len == 32] if priors is not None else []
        all_specs = specs + (host_specs(hosts) if len(hosts) else [])
        released = release_marginals(private, groups, all_specs, marginal_sigma(mu, cfg.marginal_share,
                                                                                  len(all_specs)),
                                     ledger, noise, ck)
        t = [r for r in released if r.spec.name == "time"]
        if t and priors is not None and shares.times == 0:
            priors = FittedPriors(priors.services, priors.addresses,
                                  P.TimePrior(cfg.time_window, np.clip(t[0].noisy, 0, None) + 1e-3))
    backend = make_backend(priors)
    # PE's votes get whatever the prior and marginal releases (iteration 0) left: a trie that stops
    # early leaves budget for the votes instead of wasting it
    rho_pre = sum(r.rho for r in ledger.releases if r.iteration == 0)
    mu_pe = float(np.sqrt(max(mu * mu - rho_pre, 0.0))) if np.isfinite(mu) else mu
    population = cfg.population if cfg.population is not None else auto_population(len(private))
    econf = EvolutionConfig.build(cfg.iterations, population,
                                  degree_schedule(cfg.iterations, cfg.degree_start, cfg.degree_end), k=cfg.k,
                                  threshold=cfg.threshold, keep_selected=cfg.keep_selected, voter=cfg.voter)
    evo = Evolution(backend, encoder, econf, schedules.uniform(float(mu_pe), cfg.iterations), ledger, noise, rng,
                    on_event)
    res = evo.run(codes, groups=groups, checkpoint=ck, resume=resume)
    n_out = cfg.n_out or len(private)
    weights = rake(res.population.samples, res.weights, released) if released else res.weights
    idx = select(weights, n_out, rng).index
    out = finish(backend, res.population.take(idx), rng)
    return TraceSynthResult(out, res.ledger, res.history, res.population, res.weights,
                            time.perf_counter() - t_wall, time.process_time() - t_cpu)


def _flow_backend(cfg: TraceSynthConfig, priors: FittedPriors | None) -> FlowSimulator:
    if priors is None:
        return FlowSimulator(cfg.time_window, ts_resolution_s=cfg.ts_resolution_s)
    return FlowSimulator(cfg.time_window, ts_resolution_s=cfg.ts_resolution_s, services=priors.services,
                         addresses=priors.addresses if len(priors.addresses.prefixes) else None, times=priors.times)


def synthesize_flows(private: pd.DataFrame, cfg: TraceSynthConfig, *, checkpoint: str | Checkpointer | None = None,
                     resume: bool = False, on_event: Callable[[dict[str, Any]], None] | None = None
                     ) -> TraceSynthResult:
    """DP synthetic NetFlow records (same schema) from private flows."""
    cfg.validate()
    enc = FlowEncoder(cfg.time_window, ts_bins=cfg.ts_bins, weights=cfg.encoder_weights())

    def finish(sim: FlowSimulator, pop: Population, rng: np.random.Generator) -> pd.DataFrame:
        cell = (cfg.time_window[1] - cfg.time_window[0]) / cfg.ts_bins
        out = sim.spread(pop, rng, degree=cfg.final_degree, ts_jitter_s=cell, time_coupling=cfg.time_coupling).samples
        # the output keeps the input's schema: optional columns it lacked are dropped
        out = out.drop(columns=[c for c in ("type", "flags", "tos") if c not in private.columns])
        return out.sort_values("ts", kind="stable").reset_index(drop=True)

    return _run(private, cfg, "flow", lambda pr: _flow_backend(cfg, pr), enc, flow_marginal_specs(cfg.time_window),
                finish, checkpoint, resume, on_event)


def synthesize_packets(private: pd.DataFrame, cfg: TraceSynthConfig, *, checkpoint: str | Checkpointer | None = None,
                       resume: bool = False, on_event: Callable[[dict[str, Any]], None] | None = None
                       ) -> TraceSynthResult:
    """DP synthetic packet-header records from private packet headers (PE on packets directly)."""
    cfg.validate()
    enc = PacketEncoder(cfg.time_window, ts_bins=cfg.ts_bins, weights=dict(cfg.weights))

    def finish(sim: PacketSimulator, pop: Population, rng: np.random.Generator) -> pd.DataFrame:
        return pop.samples.sort_values("ts", kind="stable").reset_index(drop=True)

    def backend(pr: FittedPriors | None) -> PacketSimulator:
        return PacketSimulator(cfg.time_window, flows=_flow_backend(
            TraceSynthConfig(**{**cfg.__dict__, "ts_resolution_s": 1e-6}), pr))

    return _run(private, cfg, "packet", backend, enc, packet_marginal_specs(cfg.time_window), finish, checkpoint,
                resume, on_event)


def simulate_flows(n: int, time_window: tuple[float, float], seed: int | None = None,
                   ts_resolution_s: float = 1e-6) -> pd.DataFrame:
    """The simulator alone (no private data, no voting): the ε = 0 baseline."""
    rng = np.random.default_rng(seed)
    sim = FlowSimulator(time_window, ts_resolution_s=ts_resolution_s)
    return sim.spread(sim.random(n, rng=rng), rng).samples.sort_values("ts", kind="stable").reset_index(drop=True)
