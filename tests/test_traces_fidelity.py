"""The trace fidelity suite: per-field metrics, the joint metric they miss, validity and heavy hitters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulators.network.fidelity import (
    CountMinSketch,
    flow_fidelity,
    flow_validity,
    heavy_hitter_error,
    js_distance,
    packet_fidelity,
    tvd,
)
from simulators.network.flows import FlowSimulator
from simulators.network.packets import expand_flows

WINDOW = (1.6e9, 1.6e9 + 3600)


@pytest.fixture(scope="module")
def flows() -> pd.DataFrame:
    """A trace with strong cross-column structure (services tie ports, protocol, sizes and flags)."""
    rng = np.random.default_rng(0)
    return FlowSimulator(WINDOW, ts_resolution_s=1.0).random(6000, rng=rng).samples


def test_identical_trace_scores_perfectly(flows):
    r = flow_fidelity(flows, flows.copy())
    h = r["headline"]
    assert h["pairwise_tvd"] == 0 and h["jsd_mean"] == 0 and h["emd_mean"] == 0
    assert h["hh_error"] < 0.01  # only the sketch's own collision overcount remains
    assert h["valid_rate"] == 1.0


def test_column_shuffle_fools_per_field_metrics_but_not_pairwise_tvd(flows):
    rng = np.random.default_rng(1)
    shuffled = flows.copy()
    for c in shuffled.columns:
        shuffled[c] = shuffled[c].to_numpy()[rng.permutation(len(shuffled))]
    r = flow_fidelity(flows, shuffled)
    for k in ("jsd_srcport", "jsd_dstport", "jsd_proto", "jsd_srcip_rank", "jsd_dstip_rank"):
        assert r[k] < 1e-9, k
    for k in ("emd_ts", "emd_td", "emd_pkt", "emd_byt"):
        assert r[k] < 1e-9, k
    assert r["hh_error"] < 0.01
    # ...but the joint structure is gone, and so is validity (bytes/packets, flags/protocol decoupled)
    assert r["pairwise_tvd"] > 0.15
    assert r["valid_rate"] < 0.9
    # a resample of the same trace keeps its joints: far lower pairwise TVD than the shuffle
    boot = flows.iloc[rng.integers(0, len(flows), len(flows))].reset_index(drop=True)
    assert flow_fidelity(flows, boot)["pairwise_tvd"] < r["pairwise_tvd"] / 2


def test_validity_rules():
    df = pd.DataFrame({"srcport": [80, 80, 70000, 80, 80, 53], "dstport": [1, 1, 1, 1, 1, 1],
                       "proto": ["TCP", "TCP", "TCP", "TCP", "UDP", "UDP"], "pkt": [2, 2, 2, 0, 1, 1],
                       "byt": [80, 30, 80, 80, 40, 40], "td": [0.1, 0.1, 0.1, 0.1, 0.0, 0.0],
                       "flags": [".A..SF", ".A..SF", ".A..SF", ".A..SF", ".A..S.", ".A...."]})
    v = flow_validity(df)
    assert v["valid_byt"] == pytest.approx(5 / 6)  # 30 bytes < 2 packets x 20
    assert v["valid_ports"] == pytest.approx(5 / 6)
    assert v["valid_pkt"] == pytest.approx(5 / 6)
    assert v["valid_flags"] == pytest.approx(5 / 6)  # SYN on UDP; the ACK mark alone is tolerated
    assert v["valid_rate"] == pytest.approx(2 / 6)


def test_count_min_never_undercounts_and_stays_within_its_bound():
    rng = np.random.default_rng(2)
    keys = rng.zipf(1.3, size=50_000).astype(np.int64) % 100_000
    cms = CountMinSketch(width=272, depth=5, seed=0)  # eps = e/272 = 0.01, delta = e^-5
    cms.add(keys)
    uniq, true = np.unique(keys, return_counts=True)
    est = cms.query(uniq)
    assert (est >= true).all()
    assert np.mean(est - true <= 0.01 * len(keys)) > 0.99
    assert cms.total == len(keys)


def test_heavy_hitter_error_sees_a_missing_heavy_host():
    real = np.r_[np.full(500, 7), np.full(300, 8), np.arange(100, 300)]
    same = heavy_hitter_error(real, real.copy(), top=2)
    assert same["hh_error"] < 1e-9 and same["hh_recall"] == 1
    gone = heavy_hitter_error(real, np.r_[np.full(800, 7), np.arange(100, 300)], top=2)
    assert gone["hh_error"] > 0.4 and gone["hh_recall"] == 0.5


def test_distances_basic_properties():
    a = pd.Series({1: 10, 2: 0}).astype(float)
    b = pd.Series({2: 5}).astype(float)
    assert js_distance(a, b) == pytest.approx(1.0)
    assert js_distance(a, a) == 0
    assert tvd(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 0])) == pytest.approx(0.5)
    assert tvd(np.array([[0, 1], [1, 0]]), np.array([[1, 0], [0, 1]])) == 0


def test_packet_fidelity_on_expanded_flows(flows):
    rng = np.random.default_rng(3)
    pk = expand_flows(flows.iloc[:800], rng, max_packets_per_flow=20)
    r = packet_fidelity(pk, pk.copy())
    assert r["headline"]["pairwise_tvd"] == 0 and r["valid_rate"] == 1 and r["hh_error"] < 0.01
    other = expand_flows(flows.iloc[800:1600], rng, max_packets_per_flow=20)
    r2 = packet_fidelity(pk, other)
    assert 0 < r2["headline"]["pairwise_tvd"] < 1 and {"emd_iat", "emd_flow_size", "emd_ttl"} <= set(r2)
