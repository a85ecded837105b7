"""Privacy units for traces: a whole flow / host moves every released histogram by L2 ≤ 1, and the run's
ledger accounts for every release (priors, marginals, votes) within the requested budget."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pe_tabular.privacy.accountant import gdp_mu
from pe_tabular.privacy.ledger import Ledger
from pe_tabular.privacy.noise import NoiseSource
from pe_tabular.voting.histogram import vote_histogram
from pe_tabular.voting.reference import nearest
from simulators.network.dp_priors import PriorShares, fit_addresses
from simulators.network.encoder import FlowEncoder
from simulators.network.flows import FlowSimulator
from simulators.network.marginals import flow_marginal_specs
from simulators.network.pipeline import TraceSynthConfig, privacy_groups, synthesize_flows

WINDOW = (1.6e9, 1.6e9 + 3600)


def _private(n: int, seed: int) -> pd.DataFrame:
    """A 'private' trace with many records per flow and per host: both directions of each
    connection, some connections split into several records."""
    rng = np.random.default_rng(seed)
    one = FlowSimulator(WINDOW, ts_resolution_s=1.0).random(n, rng=rng).samples
    rev = one.rename(columns={"srcip": "dstip", "dstip": "srcip", "srcport": "dstport", "dstport": "srcport"})
    again = one.iloc[rng.choice(n, n // 3)]
    return pd.concat([one, rev[one.columns], again], ignore_index=True)


def test_groups_cover_both_directions_and_client_hosts():
    df = pd.DataFrame({"srcip": [1, 2, 1, 3], "dstip": [2, 1, 2, 2], "srcport": [51000, 80, 51000, 52000],
                       "dstport": [80, 51000, 80, 80], "proto": ["TCP"] * 4})
    flow = privacy_groups(df, "flow")
    assert flow[0] == flow[1] == flow[2] and flow[3] != flow[0]
    host = privacy_groups(df, "host")  # client = the ephemeral-port side
    assert host[0] == host[1] == host[2] and host[3] != host[0]
    assert privacy_groups(df, "record") is None
    with pytest.raises(ValueError, match="--unit"):
        privacy_groups(df, "packet")


@pytest.mark.parametrize("unit", ["flow", "host"])
def test_removing_a_whole_group_moves_the_vote_histogram_by_at_most_one(unit):
    priv = _private(300, seed=1)
    groups = privacy_groups(priv, unit)
    enc = FlowEncoder(WINDOW)
    cand = FlowSimulator(WINDOW).random(150, rng=np.random.default_rng(2)).samples
    for k in (1, 3):
        nn = nearest(enc.encode(priv), enc.encode(cand), enc.metric, k=k)
        full = vote_histogram(nn, len(cand), groups)
        sizes = np.bincount(np.unique(groups, return_inverse=True)[1])
        assert sizes.max() >= 3, "the test needs groups with several records"
        for g in np.unique(groups)[:40]:
            keep = groups != g
            without = vote_histogram(nn[keep], len(cand), groups[keep])
            assert np.linalg.norm(full - without) <= 1 + 1e-9
        # without grouping the same removal can move it by more than 1 (what the unit protects against)
        big = np.unique(groups)[np.argmax(sizes)]
        plain_move = np.linalg.norm(vote_histogram(nn, len(cand)) - vote_histogram(nn[groups != big], len(cand)))
        assert plain_move > 1


@pytest.mark.parametrize("unit", ["record", "flow"])
def test_prior_and_marginal_histograms_have_unit_sensitivity(unit):
    """Every non-vote release: the clean histogram moves by L2 ≤ 1 when one unit is removed."""
    priv = _private(200, seed=3)
    groups = privacy_groups(priv, unit)
    gid = np.arange(len(priv)) if groups is None else groups
    specs = flow_marginal_specs(WINDOW)
    for g in np.unique(gid)[:25]:
        keep = gid != g
        for spec in specs:
            b = spec.bins(priv)[:, None]
            full = vote_histogram(b, spec.size, groups)
            rest = vote_histogram(b[keep], spec.size, None if groups is None else groups[keep])
            assert np.linalg.norm(full - rest) <= 1 + 1e-9, spec.name
        # the address trie: both addresses of a record form one contribution
        items = np.stack([priv["srcip"].to_numpy(), priv["dstip"].to_numpy()], 1) >> 24
        full = vote_histogram(items, 256, gid)
        rest = vote_histogram(items[keep], 256, gid[keep])
        assert np.linalg.norm(full - rest) <= 1 + 1e-9


def test_address_trie_finds_heavy_hosts_and_is_charged():
    rng = np.random.default_rng(4)
    heavy = np.array([0x2ADB9EAA, 0x8F0A0001], dtype=np.int64)
    src = np.r_[np.full(3000, heavy[0]), np.full(2000, heavy[1]), rng.integers(1 << 24, 1 << 32, 3000)]
    dst = rng.integers(1 << 24, 1 << 32, len(src))
    led = Ledger(1e-5, mu_budget=10.0)
    plan = fit_addresses(src, dst, None, sigma=5.0, ledger=led, noise=NoiseSource())
    hosts = plan.prefixes[plan.prefix_len == 32]
    assert set(heavy.tolist()) <= set(hosts.tolist())
    assert len(led.releases) == 7 and all(r.sensitivity == 1.0 for r in led.releases)


@pytest.mark.parametrize("unit", ["record", "flow"])
def test_run_spends_exactly_the_requested_budget(unit):
    priv = _private(200, seed=5)
    cfg = TraceSynthConfig(epsilon=2.0, unit=unit, time_window=WINDOW, iterations=3, population=60, seed=0,
                           voter="numpy", prior_shares=PriorShares(0.1, 0.05, 0.0), marginal_share=0.2)
    res = synthesize_flows(priv, cfg)
    led = res.ledger
    assert math.isclose(led.mu, gdp_mu(2.0, 1e-5), rel_tol=1e-6)
    assert led.epsilon <= 2.0 + 1e-6
    whats = [r.what for r in led.releases]
    assert sum("vote histogram" in w for w in whats) == 3
    assert any("address prefix" in w for w in whats) and any("marginal" in w for w in whats)
    assert led.public_inputs["unit"] == unit
    assert len(res.records) == len(priv)


def test_private_rows_never_reach_the_backend(monkeypatch):
    """The simulator only ever receives synthetic populations (privacy rule 1)."""
    priv = _private(100, seed=6)
    secret = set(map(tuple, priv[["srcip", "dstip", "srcport", "dstport"]].to_numpy().tolist()))
    seen: list[pd.DataFrame] = []
    orig = FlowSimulator.vary

    def spy(self, pop, degree, rng):
        seen.append(pop.samples)
        return orig(self, pop, degree, rng)

    monkeypatch.setattr(FlowSimulator, "vary", spy)
    cfg = TraceSynthConfig(epsilon=1.0, time_window=WINDOW, iterations=3, population=50, seed=1, voter="numpy",
                           prior_shares=PriorShares(0.0, 0.0, 0.0), marginal_share=0.0)
    synthesize_flows(priv, cfg)
    assert len(seen) == 2
    for s in seen:
        rows = set(map(tuple, s[["srcip", "dstip", "srcport", "dstport"]].to_numpy().tolist()))
        assert len(rows & secret) == 0
