"""pcap/pcapng captures are streamed (issue 28): a capture read in tiny chunks gives the packets, the flows,
the releases and the output of the same capture parsed whole, at packet and at flow level, and the memory a
pass holds does not grow with the capture."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulators.network import capture
from simulators.network.capture import FlowPart, PacketPart, packets_to_flows, read_pcap, sort_flows
from simulators.network.pipeline import TraceSynthConfig, synthesize_flows, synthesize_packets
from simulators.network.records import TraceRecords
from tests.streaming_util import capture_releases

pytestmark = pytest.mark.extra("traces")
ROOT = Path(__file__).resolve().parents[1]
T0 = 1.6e9
WINDOW = (T0, T0 + 4000)


def write_capture(path: Path, n_flows: int, seed: int, span_s: float = 3600.0, ng: bool = False) -> Path:
    """A capture written with dpkt, in time order: ``n_flows`` conversations over a few hosts and ports
    (5-tuples recur, so idle timeouts split them), TCP, UDP and ICMP, a few long flows that cross the
    30-minute active timeout, and an ARP frame that the reader skips."""
    import dpkt

    rng = np.random.default_rng(seed)
    pk = []
    for f in range(n_flows):
        proto = rng.choice([6, 17, 1], p=[0.6, 0.3, 0.1])
        src, dst = int(0x0A000000 + rng.integers(0, 40)), int(0xC0A80000 + rng.integers(0, 8))
        sp, dp = int(rng.integers(40000, 40030)), int(rng.choice([80, 443, 53]))
        long = f % 197 == 0  # ≈ 2,200 s without an idle gap: cut by the active timeout
        m = 400 if long else int(rng.integers(1, 12))
        gaps = rng.uniform(1, 10, m) if long else rng.exponential(4.0, m)  # some pass the 15 s idle timeout
        ts = T0 + rng.uniform(0, span_s - (2500 if long else 100)) + np.cumsum(gaps)
        for t in ts:
            pk.append((round(float(t), 6), src, dst, sp, dp, int(proto), int(rng.integers(40, 1400))))
    pk.sort()
    with open(path, "wb") as fh:
        w = dpkt.pcapng.Writer(fh) if ng else dpkt.pcap.Writer(fh)
        for i, (t, src, dst, sp, dp, proto, ln) in enumerate(pk):
            if proto == 6:
                l4 = dpkt.tcp.TCP(sport=sp, dport=dp, flags=int(rng.choice([0x02, 0x10, 0x18, 0x11])))
            elif proto == 17:
                l4 = dpkt.udp.UDP(sport=sp, dport=dp)
            else:
                l4 = dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo())
            ip = dpkt.ip.IP(src=src.to_bytes(4, "big"), dst=dst.to_bytes(4, "big"), p=proto, ttl=64, id=i & 0xFFFF,
                            data=l4)
            ip.len = ln  # the header's total length (the payload itself is not captured: snap length)
            w.writepkt(bytes(dpkt.ethernet.Ethernet(data=ip)), ts=t)
            if i == len(pk) // 2:
                w.writepkt(bytes(dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_ARP, data=dpkt.arp.ARP())), ts=t)
    return path


def _streamed(part: PacketPart) -> pd.DataFrame:
    return pd.concat([b.data for b in part.batches(None)], ignore_index=True)


@pytest.mark.parametrize("ng", [False, True])
def test_tiny_chunks_give_the_packets_and_flows_of_the_whole_capture(tmp_path, ng):
    """Packets and flows streamed 7 at a time equal the whole capture's (read_pcap, packets_to_flows), split
    by the idle and the active timeouts alike; the streamed flows come in closing order, the same set."""
    cap = write_capture(tmp_path / ("c.pcapng" if ng else "c.pcap"), 400, 1, ng=ng)
    whole = read_pcap(cap)
    assert len(whole) > 2000
    packets = _streamed(PacketPart(str(cap), 7))
    pd.testing.assert_frame_equal(packets.sort_values("ts", kind="stable").reset_index(drop=True), whole)
    flows = packets_to_flows(whole)
    assert 1000 < flows["td"].max() < 1800 and (flows["pkt"] > 1).any()
    assert len(flows) > flows[["srcip", "dstip", "srcport", "dstport", "proto"]].drop_duplicates().shape[0]
    pd.testing.assert_frame_equal(sort_flows(_streamed(FlowPart(str(cap), 7))), flows)


@pytest.mark.parametrize("level, unit", [("flow", "flow"), ("flow", "host"), ("packet", "record")])
def test_a_streamed_capture_gives_the_releases_and_output_of_the_whole(tmp_path, monkeypatch, level, unit):
    """Test-only noise switch: the capture streamed in chunks of 64 and its records in one frame give the
    same releases (every key, every value) and the same synthetic records; the capture is parsed once (its
    records spooled to a private folder for the other passes), and the spool is deleted at close."""
    monkeypatch.setenv("PE_TABULAR_TEST_ONLY_NOISE_SEED", "5")
    cap = write_capture(tmp_path / "c.pcap", 300, 2)
    seen = capture_releases(monkeypatch)
    cfg = TraceSynthConfig(epsilon=4.0, unit=unit, time_window=WINDOW, iterations=2, population=100, seed=0,
                           voter="numpy")
    run = synthesize_packets if level == "packet" else synthesize_flows
    whole = read_pcap(cap) if level == "packet" else packets_to_flows(read_pcap(cap))
    ref = run(TraceRecords.from_frame(whole, unit), cfg)
    parsed = []
    real_iter = capture.iter_packets
    monkeypatch.setattr(capture, "iter_packets", lambda path, *a: parsed.append(str(path)) or real_iter(path, *a))
    streamed = TraceRecords.from_capture(cap, level, unit, chunk_rows=64)
    try:
        got = run(streamed, cfg)
        spool = streamed.source.parts[0].inner.spool.folder
        assert (Path(spool).stat().st_mode & 0o777) == 0o700
    finally:
        streamed.close()
    pd.testing.assert_frame_equal(got.records, ref.records)
    assert parsed == [str(cap)] and not Path(spool).exists()  # parsed once (the spool served the rest), deleted
    assert [r.what for r in got.ledger.releases] == [r.what for r in ref.ledger.releases]
    assert any(k.startswith("vote_") for k in seen)
    for key, values in seen.items():
        assert len(values) == 2, key
        np.testing.assert_array_equal(values[1], values[0], err_msg=key)


def _peak(fn, *args) -> int:
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_pass_holds_one_chunk_not_the_capture(tmp_path):
    """A pass over a capture 4× larger holds about the same memory (one chunk of packets and the flows open
    at once), far below what parsing the capture whole holds."""
    small = write_capture(tmp_path / "small.pcap", 600, 3, span_s=3600)
    large = write_capture(tmp_path / "large.pcap", 2400, 3, span_s=4 * 3600)

    def drain(path: Path, level: str) -> None:
        part = (PacketPart if level == "packet" else FlowPart)(str(path), 256)
        for _ in part.batches(None):
            pass

    for level in ("packet", "flow"):
        peak_small, peak_large = _peak(drain, small, level), _peak(drain, large, level)
        assert peak_large < 1.6 * peak_small, (level, peak_small, peak_large)
    whole = _peak(lambda: packets_to_flows(read_pcap(large)))
    assert peak_large < whole / 5, (peak_large, whole)


@pytest.mark.extra("dask")
def test_a_capture_on_a_dask_cluster_gives_the_releases_of_one_process(client, tmp_path, monkeypatch):
    """`traces synth capture.pcap --dask-...`: the workers parse the capture at every pass (no spool left in a
    worker's temporary folder) and give every release and the output of the one-process run."""
    monkeypatch.setenv("PE_TABULAR_TEST_ONLY_NOISE_SEED", "6")
    cap = write_capture(tmp_path / "c.pcap", 200, 4)
    seen = capture_releases(monkeypatch)
    cfg = TraceSynthConfig(epsilon=4.0, unit="flow", time_window=WINDOW, iterations=2, population=80, seed=0,
                           voter="numpy")
    one = TraceRecords.from_capture(cap, "flow", "flow", chunk_rows=64)
    try:
        ref = synthesize_flows(one, cfg)
    finally:
        one.close()
    spools = set(Path(tempfile.gettempdir()).glob("pe-capture-*"))
    dist = TraceRecords.from_capture(cap, "flow", "flow", chunk_rows=64).on_dask(scheduler=client.scheduler.address)
    try:
        assert dist.on_cluster
        got = synthesize_flows(dist, cfg)
        assert set(Path(tempfile.gettempdir()).glob("pe-capture-*")) == spools
    finally:
        dist.close()
    pd.testing.assert_frame_equal(got.records, ref.records)
    for key, values in seen.items():
        assert len(values) == 2, key
        np.testing.assert_array_equal(values[1], values[0], err_msg=key)


@pytest.mark.parametrize("stop", [None, signal.SIGTERM])
def test_the_spool_is_gone_when_a_run_ends_or_is_terminated(tmp_path, stop):
    """The parsed copy of a capture (a private temporary Parquet file) is deleted when ``traces synth`` ends,
    and when it is stopped by SIGTERM mid-run (the CLI unwinds as for Ctrl-C): nothing private stays in TMPDIR."""
    cap = write_capture(tmp_path / "c.pcap", 3000, 5)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp)}
    cmd = [sys.executable, "-m", "pe_tabular.cli", "traces", "synth", str(cap), "--out", str(tmp_path / "o.csv"),
           "--epsilon", "2", "--time-window", str(WINDOW[0]), str(WINDOW[1]), "--iterations", "6",
           "--population", "3000", "--voter", "numpy", "-q"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    seen, deadline = False, time.time() + 120
    while time.time() < deadline and proc.poll() is None and not seen:
        seen = any(tmp.glob("pe-capture-*/records.parquet"))
        time.sleep(0.02)
    assert seen  # the run spooled the capture
    if stop is not None:
        proc.send_signal(stop)
    err = proc.communicate(timeout=300)[1]
    assert proc.returncode == (0 if stop is None else 130), err
    assert not list(tmp.glob("pe-capture-*"))
