"""Trace I/O: NetFlow CSV and pcap round trips, and synthetic pcaps with valid checksums."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path

from simulators.network.flows import FlowSimulator
from simulators.network.io import (
    ones_complement_sum,
    packets_to_flows,
    read_netflow_csv,
    read_pcap,
    write_netflow_csv,
    write_pcap,
)
from simulators.network.packets import expand_flows, packet_validity

HEADER = ["srcip", "dstip", "srcport", "dstport", "proto", "length", "ttl", "flags", "tos"]
NDPI = ("skype.pcap", "alexa-app.pcapng", "1kxun.pcap", "pps.pcap", "anyconnect-vpn.pcap")


def _synthetic_packets(n_flows: int = 150, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    flows = FlowSimulator((1.6e9, 1.6e9 + 600)).random(n_flows, rng=rng).samples
    return expand_flows(flows, rng, max_packets_per_flow=40)


def _checksums_ok(frame: bytes) -> bool:
    """Recompute IPv4 header and TCP/UDP/ICMP checksums from the raw frame (ones'-complement sum = 0)."""
    import dpkt

    eth = dpkt.ethernet.Ethernet(frame)
    ip = eth.data
    raw = bytes(ip)
    ihl = (raw[0] & 0x0F) * 4
    if ones_complement_sum(raw[:ihl]) != 0:
        return False
    l4 = raw[ihl:ip.len]
    if ip.p in (6, 17):
        pseudo = raw[12:20] + struct.pack("!BBH", 0, ip.p, len(l4))
        if ip.p == 17 and struct.unpack("!H", l4[6:8])[0] == 0:
            return True  # UDP checksum optional
        return ones_complement_sum(pseudo + l4) == 0
    if ip.p == 1:
        return ones_complement_sum(l4) == 0
    return True


def test_netflow_csv_round_trip_with_dotted_ips(tmp_path):
    src = FlowSimulator((1.6e9, 1.6e9 + 600), ts_resolution_s=1.0).random(200, rng=np.random.default_rng(1)).samples
    write_netflow_csv(src, tmp_path / "f.csv", dotted_ips=True)
    assert "." in pd.read_csv(tmp_path / "f.csv")["srcip"].iloc[0]
    back = read_netflow_csv(tmp_path / "f.csv")
    for c in ("srcip", "dstip", "srcport", "dstport", "pkt", "byt", "tos"):
        assert (back[c].to_numpy() == src[c].to_numpy()).all(), c
    assert (back["proto"].to_numpy() == src["proto"].to_numpy()).all()
    assert (back["flags"].to_numpy() == src["flags"].to_numpy()).all()
    assert np.allclose(back["ts"], src["ts"]) and np.allclose(back["td"], src["td"])


def test_netflow_csv_errors_name_the_column(tmp_path):
    (tmp_path / "bad.csv").write_text("srcip,dstip,srcport\n1,2,3\n")
    with pytest.raises(ValueError, match="missing columns"):
        read_netflow_csv(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt\n1,2,x,4,TCP,0,0,1,40\n")
    with pytest.raises(ValueError, match="column 'srcport': some values"):
        read_netflow_csv(tmp_path / "bad2.csv")


@pytest.mark.extra("traces")
def test_synthetic_pcap_rereads_with_valid_checksums(tmp_path):
    import dpkt

    pk = _synthetic_packets()
    assert packet_validity(pk).all()
    path = write_pcap(pk, tmp_path / "s.pcap")
    with open(path, "rb") as f:
        frames = [buf for _, buf in dpkt.pcap.Reader(f)]
    assert len(frames) == len(pk)
    assert all(_checksums_ok(fr) for fr in frames)
    back = read_pcap(path)
    exp = pk.sort_values("ts", kind="stable").reset_index(drop=True)
    assert (back[HEADER].to_numpy() == exp[HEADER].to_numpy()).all()
    assert (np.abs(back["ts"].to_numpy() - exp["ts"].to_numpy()) <= 1).all()


@pytest.mark.extra("traces")
def test_synthetic_pcap_readable_by_scapy(tmp_path):
    scapy_all = pytest.importorskip("scapy.all")
    pk = _synthetic_packets(60, seed=2)
    path = write_pcap(pk, tmp_path / "s.pcap")
    pkts = scapy_all.rdpcap(str(path))
    assert len(pkts) == len(pk)
    for p in pkts[:200]:
        ip = p[scapy_all.IP]
        l4 = ip.payload
        fresh = scapy_all.IP(bytes(ip))
        del fresh.chksum
        if hasattr(fresh.payload, "chksum"):
            del fresh.payload.chksum
        rebuilt = scapy_all.IP(bytes(fresh))
        assert rebuilt.chksum == ip.chksum
        if hasattr(l4, "chksum"):
            assert rebuilt.payload.chksum == l4.chksum


@pytest.mark.extra("traces")
def test_synthetic_pcap_readable_by_tshark(tmp_path):
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    path = write_pcap(_synthetic_packets(30, seed=3), tmp_path / "s.pcap")
    out = subprocess.run([tshark, "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
                          "-o", "ip.check_checksum:TRUE", "-Y", "_ws.expert.severity >= error"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == ""


@pytest.mark.extra("traces")
@pytest.mark.parametrize("name", NDPI)
def test_ndpi_capture_round_trip(name, tmp_path):
    path = shared_path("data", "net", "ndpi", name)
    pk = read_pcap(path)
    assert len(pk) > 1000 and packet_validity(pk[pk["proto"].isin([6, 17, 1])]).mean() > 0.99
    flows = packets_to_flows(pk, idle_timeout_s=1e9)
    assert flows["pkt"].sum() == len(pk) and flows["byt"].sum() == pk["length"].sum()
    # flows -> packets -> pcap -> packets -> flows keeps every flow's packets, bytes and flags
    rng = np.random.default_rng(0)
    ex = expand_flows(flows, rng)
    write_pcap(ex[ex["proto"].isin([6, 17, 1])], tmp_path / "rt.pcap")
    back = packets_to_flows(read_pcap(tmp_path / "rt.pcap"), idle_timeout_s=1e9)
    key = ["srcip", "dstip", "srcport", "dstport", "proto"]
    a = flows[flows["proto"].isin(["TCP", "UDP", "ICMP"])].sort_values(key).reset_index(drop=True)
    b = back.sort_values(key).reset_index(drop=True)
    assert len(a) == len(b)
    for c in key + ["pkt", "byt", "flags", "tos"]:
        assert (a[c].to_numpy() == b[c].to_numpy()).all(), c


@pytest.mark.extra("traces")
def test_an_odd_frame_is_skipped_silently_unless_asked(tmp_path, caplog):
    """Issue 23 (findings 6/8, traces side): "skipped some non-IPv4 or malformed frames" was logged exactly
    when one frame was odd. Now only the local --show-invalid says so, labelled not private."""
    import logging

    import dpkt

    path = write_pcap(_synthetic_packets(), tmp_path / "s.pcap")
    with open(path, "rb") as f:
        frames = list(dpkt.pcap.Reader(f))
    odd = tmp_path / "odd.pcap"
    with open(odd, "wb") as f:
        w = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, buf in frames:
            w.writepkt(buf, ts)
        w.writepkt(bytes(dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_ARP, data=b"\x00" * 28)), frames[-1][0])
    shown: list[str] = []
    with caplog.at_level(logging.DEBUG):
        a, b = read_pcap(path), read_pcap(odd)
        read_pcap(path, shown.append)
        assert shown == []
        read_pcap(odd, shown.append)
    assert a.equals(b) and not any("skipped" in r.getMessage() for r in caplog.records)
    assert len(shown) == 1 and "NOT PRIVATE" in shown[0]


@pytest.mark.extra("traces")
def test_read_pcap_rejects_other_files(tmp_path):
    p = Path(tmp_path / "x.pcap")
    p.write_bytes(b"not a capture at all")
    with pytest.raises(ValueError, match="neither pcap nor pcapng"):
        read_pcap(p)


@pytest.mark.parametrize("fmt", ["parquet", "csv.gz", "gz-without-suffix"])
def test_flow_files_in_parquet_and_gzip(fmt, tmp_path):
    """Reliability: traces read Parquet and gzip'd CSV (by name or content), with the same result."""
    df = FlowSimulator((1.6e9, 1.6e9 + 60), ts_resolution_s=1.0).random(50, rng=np.random.default_rng(3)).samples
    ref = write_netflow_csv(df, tmp_path / "ref.csv")
    if fmt == "parquet":
        path = tmp_path / "flows.parquet"
        pd.read_csv(ref).to_parquet(path)
    else:
        path = tmp_path / ("flows.csv.gz" if fmt == "csv.gz" else "flows.dat")
        pd.read_csv(ref).to_csv(path, index=False, compression="gzip")
    pd.testing.assert_frame_equal(read_netflow_csv(path), read_netflow_csv(ref))


def test_a_truncated_parquet_names_the_file(tmp_path):
    path = tmp_path / "cut.parquet"
    path.write_bytes(b"PAR1" + b"\0" * 20)
    with pytest.raises(ValueError, match="cut.parquet: could not read it as a Parquet"):
        read_netflow_csv(path)
