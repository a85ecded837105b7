"""The flow and packet simulators: every record valid, variation local and growing with its degree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pe_tabular.backends.base import Backend
from simulators.network.encoder import ACK, TCP, flags_to_mask, port_class, proto_to_number
from simulators.network.flows import FlowSimulator, elite_mask, flow_validity
from simulators.network.packets import PacketSimulator, expand_flows, packet_validity

WINDOW = (1460332800.0, 1460365200.0)


@pytest.fixture(scope="module")
def sim() -> FlowSimulator:
    return FlowSimulator(WINDOW, ts_resolution_s=1.0)


def test_backend_protocol(sim):
    assert isinstance(sim, Backend) and isinstance(PacketSimulator(WINDOW), Backend)


def test_random_records_are_valid_and_varied(sim):
    pop = sim.random(3000, rng=np.random.default_rng(0))
    df = pop.samples
    assert flow_validity(df).all()
    assert (pop.parent == -1).all() and pop.genome is not None and len(pop.genome) == 3000
    # bytes consistent with packets and the protocol's header size
    proto = proto_to_number(df["proto"])
    assert (df["byt"] >= 40 * df["pkt"])[proto == TCP].all() and (df["byt"] >= 20 * df["pkt"]).all()
    # TCP-only flags only on TCP; non-TCP carries at most nfdump's ACK mark
    fl = flags_to_mask(df["flags"])
    assert ((fl[proto != TCP] & ~ACK) == 0).all()
    assert set(np.unique(proto)) >= {1, 6, 17}
    t = df["ts"].to_numpy() / 1e6
    assert (t >= WINDOW[0]).all() and (t <= WINDOW[1]).all()
    assert df["pkt"].max() > 100  # heavy tail


def test_every_record_stays_valid_after_many_variations(sim):
    rng = np.random.default_rng(1)
    pop = sim.random(800, rng=rng)
    for step in range(25):
        degree = [1.0, 0.5, 0.1, 0.0, 0.9][step % 5]
        pop = sim.vary(pop.with_parents(np.arange(len(pop))[::-1].copy()), degree, rng)
        assert flow_validity(pop.samples).all(), f"invalid record after step {step} (degree {degree})"
        assert len(pop) == 800


def _changes(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, float]:
    la = np.log1p(a["pkt"].to_numpy(float))
    lb = np.log1p(b["pkt"].to_numpy(float))
    xor = (a["srcip"].to_numpy() ^ b["srcip"].to_numpy()).astype(np.int64)
    prefix_kept = 32 - np.where(xor == 0, 0, np.floor(np.log2(np.maximum(xor, 1))) + 1)
    return {"pkt": float(np.mean(np.abs(la - lb))), "ts": float(np.mean(np.abs(a["ts"] - b["ts"]))),
            "prefix": float(np.mean(prefix_kept)),
            "fields": float(np.mean([(a[c].to_numpy() != b[c].to_numpy()).mean()
                                     for c in ("srcport", "dstport", "proto", "flags", "tos")]))}


def test_variation_size_follows_degree(sim):
    rng = np.random.default_rng(2)
    base = sim.random(3000, rng=rng)
    sim_noel = FlowSimulator(WINDOW, ts_resolution_s=1.0, elitism=False, crossover=0.0)
    small = _changes(base.samples, sim_noel.vary(base, 0.05, rng).samples)
    large = _changes(base.samples, sim_noel.vary(base, 0.9, rng).samples)
    assert small["pkt"] < large["pkt"]
    assert small["ts"] < large["ts"]
    assert small["fields"] < large["fields"]
    assert small["prefix"] > large["prefix"]  # small moves keep longer address prefixes


def test_low_degree_keeps_service_and_port_classes(sim):
    rng = np.random.default_rng(3)
    base = sim.random(3000, rng=rng)
    sim_noel = FlowSimulator(WINDOW, ts_resolution_s=1.0, elitism=False, crossover=0.0)
    child = sim_noel.vary(base, 0.0, rng)
    g0, g1 = base.genome, child.genome
    # server and client ports keep their class (a direction flip swaps src/dst, not roles)
    for c in ("srvport", "cport"):
        assert (port_class(g0[c].to_numpy()) == port_class(g1[c].to_numpy())).all()
    assert (g0[["srvport", "cport"]].to_numpy() != g1[["srvport", "cport"]].to_numpy()).any()
    # at degree 0 a service change stays in its (protocol, port class) group
    changed = g0["service"].to_numpy() != g1["service"].to_numpy()
    assert changed.any()
    assert (g0["proto"].to_numpy()[changed] == g1["proto"].to_numpy()[changed]).all()


def test_elitism_keeps_first_copy_of_each_parent(sim):
    assert elite_mask(np.array([3, 3, 1, -1, 1, 0])).tolist() == [True, False, True, False, False, True]
    rng = np.random.default_rng(4)
    base = sim.random(50, rng=rng)
    parents = base.take(np.array([7, 7, 7, 9])).with_parents(np.array([7, 7, 7, 9]))
    kids = sim.vary(parents, 0.5, rng)
    assert kids.samples.iloc[0].equals(base.samples.iloc[7]) and kids.samples.iloc[3].equals(base.samples.iloc[9])
    assert not kids.samples.iloc[1].equals(base.samples.iloc[7])


def test_expand_flows_preserves_counts_bytes_and_flags(sim):
    rng = np.random.default_rng(5)
    flows = sim.random(400, rng=rng).samples
    flows = flows[flows["pkt"] <= 300].reset_index(drop=True)
    pk = expand_flows(flows, rng)
    assert packet_validity(pk).all()
    agg = pk.groupby("flow").agg(n=("length", "size"), b=("length", "sum"),
                                 f=("flags", lambda s: int(np.bitwise_or.reduce(s.to_numpy()))),
                                 t0=("ts", "min"), t1=("ts", "max"))
    assert (agg["n"].to_numpy() == flows["pkt"].to_numpy()).all()
    assert (agg["b"].to_numpy() == flows["byt"].to_numpy()).all()
    fm = np.where(proto_to_number(flows["proto"]) == TCP, flags_to_mask(flows["flags"]), 0)
    assert (agg["f"].to_numpy() == fm).all()
    assert (agg["t0"].to_numpy() == flows["ts"].to_numpy()).all()
    assert np.allclose((agg["t1"] - agg["t0"]).to_numpy() / 1e6, flows["td"].to_numpy(), atol=1e-5)


def test_packet_simulator_valid_after_random_and_vary():
    rng = np.random.default_rng(6)
    ps = PacketSimulator(WINDOW)
    pop = ps.random(1500, rng=rng)
    assert packet_validity(pop.samples).all()
    for d in (1.0, 0.5, 0.1, 0.0):
        pop = ps.vary(pop, d, rng)
        assert packet_validity(pop.samples).all(), f"invalid packet after degree {d}"
        t = pop.samples["ts"].to_numpy() / 1e6
        assert (t >= WINDOW[0]).all() and (t <= WINDOW[1]).all(), "packets left the public time window"


def test_spread_keeps_validity_and_window(sim):
    rng = np.random.default_rng(7)
    pop = sim.random(1000, rng=rng)
    out = sim.spread(pop.take(np.zeros(500, dtype=np.int64)), rng, ts_jitter_s=300, time_coupling=0.0).samples
    assert flow_validity(out).all()
    assert out["ts"].nunique() > 100  # duplicates of one candidate became distinct records
    assert out["srcip"].nunique() == 1  # addresses are kept: they carry the released structure


def test_expanded_packets_stay_inside_the_public_window():
    """Issue 17: packets of flows that would outlast the window are compressed into it."""
    from simulators.network.packets import expand_flows

    window = (1.6e9, 1.6e9 + 120)
    flows = FlowSimulator(window).random(300, rng=np.random.default_rng(0)).samples
    flows["td"] = 500.0  # every flow would run far past the end
    flows.loc[flows["pkt"] == 1, "td"] = 0.0
    pk = expand_flows(flows, np.random.default_rng(1), window=window)
    t = pk["ts"].to_numpy() / 1e6
    assert ((t >= window[0]) & (t <= window[1])).all()
    assert len(pk) == flows["pkt"].sum()
