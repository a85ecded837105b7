"""A capture of ≥ 2 GB through ``traces synth`` at flow level: wall, CPU and peak RSS (issue 28).

    nice -n 10 python benchmarks/pcap_scale.py generate --gb 2      # once: /tmp/traces-scale/ugr16_2GB.pcap
    nice -n 10 python benchmarks/pcap_scale.py run --gb 2 [--eps 2] [--unit flow]
    python benchmarks/pcap_scale.py table                            # markdown rows of every cached run

Data: the UGR'16 NetFlow records of ``../shared/data/net/ugr16/ugr16_flows_40k.csv``, resampled and jittered as
in ``traces_scale.py`` until their packets fill the file, each record expanded into its ``pkt`` packets spread
evenly over its duration (each ``byt / pkt`` bytes long, carrying the record's TCP flags, ToS and a TTL of 64),
all packets sorted by time and written as a classic little-endian pcap of Ethernet/IPv4 frames cut at a
54-byte snap length (headers only, as an operator's ``tcpdump -s`` capture: the most packets per gigabyte,
so the hardest case for a streamed reader). About 31·10⁶ packets per 2 GB. The generator holds the packet
arrays in memory (a few GB for 2 GB of capture); the run is what is measured.

The run is ``pe-tabular traces synth CAPTURE --epsilon 2 --unit flow --level flow --time-window <UGR'16
window>`` (library defaults otherwise) in a child process under ``/usr/bin/time -v``; the result (with the
command, versions and machine) is cached as JSON under ``--cache``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.traces_scale import DATA, T1, UGR, jittered, timed_synth  # noqa: E402

SNAP = 54  # Ethernet 14 + IPv4 20 + TCP 20 (UDP and ICMP frames carry 12 zero bytes of payload)
FRAME = np.dtype([
    ("ts_sec", "<u4"), ("ts_usec", "<u4"), ("incl_len", "<u4"), ("orig_len", "<u4"),
    ("eth_dst", "V6"), ("eth_src", "V6"), ("eth_type", ">u2"),
    ("ver_ihl", "u1"), ("tos", "u1"), ("ip_len", ">u2"), ("ip_id", ">u2"), ("frag", ">u2"), ("ttl", "u1"),
    ("proto", "u1"), ("ip_sum", ">u2"), ("src", ">u4"), ("dst", ">u4"),
    ("l4_a", ">u2"), ("l4_b", ">u2"), ("l4_c", ">u4"), ("l4_d", ">u4"), ("l4_e", "u1"), ("l4_f", "u1"),
    ("l4_g", ">u2"), ("l4_h", ">u2"), ("l4_i", ">u2")])
assert FRAME.itemsize == 16 + SNAP
FLAG_BITS = {"U": 0x20, "A": 0x10, "P": 0x08, "R": 0x04, "S": 0x02, "F": 0x01}
PROTO = {"TCP": 6, "UDP": 17, "ICMP": 1}
WRITE_ROWS = 1 << 20


def capture_path(gb: float) -> Path:
    return DATA / f"ugr16_{gb:g}GB.pcap"


def _flag_mask(flags: pd.Series) -> np.ndarray:
    s = flags.astype(str).to_numpy()
    out = np.zeros(len(s), np.uint8)
    for ch, bit in FLAG_BITS.items():
        out |= np.where(np.char.find(s.astype("U6"), ch) >= 0, bit, 0).astype(np.uint8)
    return out


def packets(flows: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each flow record expanded into its packets (see the module docstring), not yet sorted."""
    pkt = flows["pkt"].to_numpy(np.int64)
    idx = np.repeat(np.arange(len(flows)), pkt)
    first = np.repeat(np.cumsum(pkt) - pkt, pkt)
    j = np.arange(len(idx)) - first  # packet number inside its flow
    td = flows["td"].to_numpy(np.float64)[idx] * 1e6
    step = np.where(pkt[idx] > 1, td / np.maximum(pkt[idx] - 1, 1), 0.0)
    ts = np.minimum(flows["ts"].to_numpy(np.float64)[idx] + j * step, T1 * 1e6 - 1).astype(np.int64)
    proto = np.array([PROTO[p] for p in flows["proto"].astype(str)], np.uint8)[idx]
    size = flows["byt"].to_numpy(np.float64)[idx] / pkt[idx]
    size = np.clip(np.round(size), np.where(proto == 6, 40, 28), 1500).astype(np.uint16)
    return {"ts": ts, "proto": proto, "size": size, "flags": _flag_mask(flows["flags"])[idx],
            "tos": flows["tos"].to_numpy(np.int64).astype(np.uint8)[idx],
            "src": flows["srcip"].to_numpy(np.int64).astype(np.uint32)[idx],
            "dst": flows["dstip"].to_numpy(np.int64).astype(np.uint32)[idx],
            "sp": flows["srcport"].to_numpy(np.int64).astype(np.uint16)[idx],
            "dp": flows["dstport"].to_numpy(np.int64).astype(np.uint16)[idx]}


def frames(p: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """The pcap records (header + 54 captured bytes) of packets ``p``, in the given order."""
    n = len(p["ts"])
    a = np.zeros(n, FRAME)
    a["ts_sec"], a["ts_usec"] = p["ts"] // 1_000_000, p["ts"] % 1_000_000
    a["incl_len"], a["orig_len"] = SNAP, 14 + p["size"].astype(np.uint32)
    a["eth_dst"], a["eth_src"] = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"
    a["eth_type"], a["ver_ihl"], a["ttl"] = 0x0800, 0x45, 64
    a["tos"], a["ip_len"], a["proto"], a["src"], a["dst"] = p["tos"], p["size"], p["proto"], p["src"], p["dst"]
    a["ip_id"] = rng.integers(0, 1 << 16, n)
    tcp, udp, icmp = p["proto"] == 6, p["proto"] == 17, p["proto"] == 1
    l4 = tcp | udp
    a["l4_a"] = np.where(l4, p["sp"], np.where(icmp, p["dp"], 0))  # ICMP: type/code as nfdump's dstport
    a["l4_b"] = np.where(l4, p["dp"], 0)
    a["l4_c"] = np.where(udp, (p["size"].astype(np.uint32) - 20) << 16, np.where(tcp, rng.integers(0, 1 << 32, n), 0))
    a["l4_e"] = np.where(tcp, 0x50, 0)  # TCP data offset: 5 words
    a["l4_f"] = np.where(tcp, p["flags"], 0)
    a["l4_g"] = np.where(tcp, 65535, 0)
    return a


def generate(gb: float, seed: int = 0) -> Path:
    out = capture_path(gb)
    if out.exists():
        return out
    DATA.mkdir(parents=True, exist_ok=True)
    base = pd.read_csv(UGR)
    rng = np.random.default_rng(seed)
    target = int(gb * 2**30 / FRAME.itemsize) + 1
    blocks, total = [], 0
    while total < target:
        f = jittered(base, 100_000, rng)
        blocks.append(f)
        total += int(f["pkt"].sum())
    flows = pd.concat(blocks, ignore_index=True)
    keep = np.searchsorted(np.cumsum(flows["pkt"].to_numpy(np.int64)), target) + 1
    p = packets(flows.iloc[:keep])
    order = np.argsort(p["ts"], kind="stable")
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # pcap, µs, Ethernet
        for s in range(0, len(order), WRITE_ROWS):
            sel = order[s:s + WRITE_ROWS]
            fh.write(frames({k: v[sel] for k, v in p.items()}, rng).tobytes())
    tmp.rename(out)
    print(f"{out}: {len(order):,} packets from {keep:,} UGR'16 records, {out.stat().st_size / 2**30:.2f} GiB",
          flush=True)
    return out


def run(gb: float, eps: float, unit: str, cache: Path) -> dict[str, Any]:
    key = f"pcap_{gb:g}GB_eps{eps:g}_{unit}"
    out_json = cache / f"{key}.json"
    if out_json.exists():
        return json.loads(out_json.read_text())
    src = generate(gb)
    res = {"capture_gib": round(src.stat().st_size / 2**30, 2), "epsilon": eps, "unit": unit,
           **timed_synth(key, src, ["--epsilon", str(eps), "--unit", unit, "--level", "flow"]),
           "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"}
    cache.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(res, indent=1))
    return res


def table(cache: Path) -> str:
    lines = ["| capture (GiB) | unit | wall (s) | CPU (s) | peak RSS (MB) |", "|---:|---|---:|---:|---:|"]
    for f in sorted(cache.glob("pcap_*.json")):
        r = json.loads(f.read_text())
        lines.append(f"| {r['capture_gib']:.2f} | {r['unit']} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | "
                     f"{r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["generate", "run", "table"])
    ap.add_argument("--gb", type=float, default=2.0, help="capture size in GiB")
    ap.add_argument("--eps", type=float, default=2.0)
    ap.add_argument("--unit", default="flow", choices=["record", "flow", "host"])
    ap.add_argument("--cache", type=Path, default=DATA / "results")
    args = ap.parse_args()
    if args.what == "generate":
        generate(args.gb)
    elif args.what == "run":
        print(json.dumps(run(args.gb, args.eps, args.unit, args.cache), indent=1), flush=True)
    else:
        print(table(args.cache))


if __name__ == "__main__":
    main()
