"""Broad public priors for the flow simulator: services, address plan, sizes, ToS, TTL, time of day.

Everything here is general knowledge about Internet traffic (IANA port assignments, typical
request/response sizes, the usual OS ephemeral-port ranges and initial TTLs, a diurnal load curve);
nothing is estimated from any private trace. The priors only need to put *some* mass near real
traffic: Private Evolution's votes and variations do the fitting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.network.encoder import ICMP, TCP, UDP


@dataclass(frozen=True)
class Service:
    """One application service: where its server listens and how big its flows tend to be."""

    name: str
    proto: int
    port: int  # server port; -1 = a random registered port; for ICMP: type*256 + code
    weight: float  # relative popularity (a Zipf-like law over IANA services)
    pkt_median: float  # packets per flow direction
    payload_median: float  # payload bytes per packet
    td_median: float  # seconds, for flows of more than one packet


SERVICES: tuple[Service, ...] = (
    Service("http", TCP, 80, 20.0, 8, 300, 0.5),
    Service("https", TCP, 443, 20.0, 12, 400, 1.0),
    Service("dns", UDP, 53, 14.0, 1, 60, 0.01),
    Service("smtp", TCP, 25, 4.0, 15, 200, 1.0),
    Service("pop3", TCP, 110, 2.5, 10, 60, 0.3),
    Service("imap", TCP, 143, 2.0, 12, 100, 1.0),
    Service("ssh", TCP, 22, 2.0, 20, 80, 5.0),
    Service("ntp", UDP, 123, 2.0, 1, 48, 0.01),
    Service("smb", TCP, 445, 1.5, 6, 100, 0.5),
    Service("imaps", TCP, 993, 1.2, 12, 200, 2.0),
    Service("pop3s", TCP, 995, 0.8, 10, 150, 0.5),
    Service("telnet", TCP, 23, 1.0, 3, 20, 1.0),
    Service("ftp", TCP, 21, 0.8, 8, 40, 2.0),
    Service("http-alt", TCP, 8080, 0.8, 8, 300, 0.5),
    Service("rdp", TCP, 3389, 0.6, 20, 200, 10.0),
    Service("mysql", TCP, 3306, 0.5, 10, 200, 0.5),
    Service("sip", UDP, 5060, 0.7, 2, 400, 0.5),
    Service("netbios-ns", UDP, 137, 0.6, 2, 50, 1.0),
    Service("snmp", UDP, 161, 0.4, 1, 80, 0.01),
    Service("syslog", UDP, 514, 0.3, 1, 150, 0.01),
    Service("ldap", TCP, 389, 0.4, 8, 150, 0.5),
    Service("icmp-echo", ICMP, 8 * 256, 1.0, 1, 56, 0.01),
    Service("icmp-echo-reply", ICMP, 0, 0.6, 1, 56, 0.01),
    Service("icmp-unreachable", ICMP, 3 * 256 + 3, 0.6, 1, 48, 0.01),
    Service("icmp-time-exceeded", ICMP, 11 * 256, 0.2, 1, 48, 0.01),
    Service("tcp-registered", TCP, -1, 3.0, 6, 200, 1.0),
    Service("udp-registered", UDP, -1, 2.0, 2, 150, 0.5),
)
SERVICE_PROTO = np.array([s.proto for s in SERVICES], dtype=np.int64)
SERVICE_PORT = np.array([s.port for s in SERVICES], dtype=np.int64)
SERVICE_WEIGHT = np.array([s.weight for s in SERVICES], dtype=np.float64)
SERVICE_PKT = np.array([s.pkt_median for s in SERVICES], dtype=np.float64)
SERVICE_PAYLOAD = np.array([s.payload_median for s in SERVICES], dtype=np.float64)
SERVICE_TD = np.array([s.td_median for s in SERVICES], dtype=np.float64)

# Client (ephemeral) port ranges of common stacks: Linux, Windows/IANA, old BSD/Windows XP.
EPHEMERAL_RANGES = ((32768, 60999, 0.5), (49152, 65535, 0.35), (1024, 5000, 0.15))

# Header bytes per packet (IPv4 + transport, no options): the floor of bytes/packet.
HEADER_BYTES = {TCP: 40, UDP: 28, ICMP: 28}
DEFAULT_HEADER = 20
MTU = 1500

# ToS byte values seen in practice (DSCP << 2 | ECN): best effort dominates.
TOS_VALUES = np.array([0, 2, 8, 16, 24, 32, 40, 72, 104, 184, 192], dtype=np.int64)
TOS_WEIGHTS = np.array([80, 2, 2, 1, 1, 1, 3, 4, 1, 1, 1], dtype=np.float64)

# Initial TTLs of common OSes and a small hop count.
INITIAL_TTLS = np.array([64, 128, 255], dtype=np.int64)
INITIAL_TTL_WEIGHTS = np.array([0.55, 0.4, 0.05])

# TCP flow-state flag patterns (nfdump OR of all packets' flags) and prior shares.
# (mask, share, needs_payload, min_packets)
TCP_PATTERNS = (
    (0x1B, 30.0, True, 3),   # .AP.SF  complete exchange with data
    (0x13, 20.0, False, 2),  # .A..SF  complete, no pushed data
    (0x10, 12.0, False, 1),  # .A....  mid-connection (started before / ends after the export)
    (0x02, 5.0, False, 1),   # ....S.  SYN only (unanswered / scan)
    (0x1A, 4.0, True, 2),    # .AP.S.  opened, still running
    (0x11, 4.0, False, 1),   # .A...F  closing side of a long flow
    (0x1F, 3.0, True, 3),    # .APRSF  closed with a reset
    (0x1E, 2.0, True, 2),    # .APRS.  reset after data
    (0x18, 3.0, True, 1),    # .AP...  mid-connection with data
    (0x19, 2.0, True, 1),    # .AP..F  closing with data
    (0x12, 1.5, False, 2),   # .A..S.  SYN-ACK side, nothing more
    (0x14, 1.0, False, 1),   # .A.R..  reset
    (0x04, 1.0, False, 1),   # ...R..  bare reset (rejected)
    (0x06, 1.0, False, 2),   # ...RS.  SYN then reset
)
TCP_PATTERN_MASK = np.array([p[0] for p in TCP_PATTERNS], dtype=np.int64)
TCP_PATTERN_SHARE = np.array([p[1] for p in TCP_PATTERNS], dtype=np.float64)


def diurnal_rate(t_seconds: np.ndarray, amplitude: float = 0.5, peak_hour: float = 15.0) -> np.ndarray:
    """Relative traffic rate by UTC hour of day: 1 ± amplitude, peaking mid-afternoon (a broad prior)."""
    hour = (np.asarray(t_seconds, dtype=np.float64) % 86400.0) / 3600.0
    return 1.0 + amplitude * np.cos(2 * np.pi * (hour - peak_hour) / 24.0)


def sample_times(n: int, window: tuple[float, float], rng: np.random.Generator, amplitude: float = 0.5) -> np.ndarray:
    """Start times of a Poisson process on the window with a diurnal rate (thinning), sorted order not kept."""
    t0, t1 = window
    out = np.empty(0)
    while out.size < n:
        t = rng.uniform(t0, t1, size=2 * (n - out.size) + 16)
        keep = rng.uniform(0, 1 + amplitude, size=t.size) < diurnal_rate(t, amplitude)
        out = np.concatenate([out, t[keep]])
    return out[:n]


def ephemeral_ports(n: int, rng: np.random.Generator) -> np.ndarray:
    w = np.array([r[2] for r in EPHEMERAL_RANGES])
    which = rng.choice(len(EPHEMERAL_RANGES), size=n, p=w / w.sum())
    lo = np.array([r[0] for r in EPHEMERAL_RANGES])[which]
    hi = np.array([r[1] for r in EPHEMERAL_RANGES])[which]
    return rng.integers(lo, hi + 1)


# -- service table ---------------------------------------------------------------------------
RANDOM_REGISTERED, RANDOM_EPHEMERAL = -1, -2


@dataclass(frozen=True)
class ServiceTable:
    """Services as arrays (what the simulator samples from): protocol, server port (or RANDOM_*),
    popularity and size medians. ``default()`` is the public IANA-based prior; a DP-fitted table
    (``dp_priors.fit_services``) reweights it and adds the (protocol, port) pairs the noisy
    histogram revealed."""

    proto: np.ndarray
    port: np.ndarray
    weight: np.ndarray
    pkt: np.ndarray
    payload: np.ndarray
    td: np.ndarray

    @classmethod
    def default(cls) -> ServiceTable:
        return cls(SERVICE_PROTO.copy(), SERVICE_PORT.copy(), SERVICE_WEIGHT.copy(), SERVICE_PKT.copy(),
                   SERVICE_PAYLOAD.copy(), SERVICE_TD.copy())

    def __len__(self) -> int:
        return len(self.proto)

    @property
    def p(self) -> np.ndarray:
        return self.weight / self.weight.sum()

    def port_class_of(self) -> np.ndarray:
        """Service class of each entry's server port (random ports by their range)."""
        cls = np.where(self.port < 1024, 0, np.where(self.port < 49152, 1, 2))
        return np.where(self.port == RANDOM_REGISTERED, 1, np.where(self.port == RANDOM_EPHEMERAL, 2, cls))

    def groups(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """Entries grouped by (protocol, port class): moves inside a group keep the service class."""
        keys = self.proto * 4 + self.port_class_of()
        uniq, gid = np.unique(keys, return_inverse=True)
        return gid, [np.flatnonzero(gid == i) for i in range(len(uniq))]

    def draw_ports(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        port = self.port[idx].copy()
        reg, eph = port == RANDOM_REGISTERED, port == RANDOM_EPHEMERAL
        port[reg] = rng.integers(1024, 49152, size=int(reg.sum()))
        port[eph] = rng.integers(49152, 65536, size=int(eph.sum()))
        return port


# -- time of day ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimePrior:
    """Flow start times on the public window: a diurnal Poisson rate, or a (DP) histogram of rates."""

    window: tuple[float, float]
    hist: np.ndarray | None = None
    amplitude: float = 0.5

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.hist is None:
            return sample_times(n, self.window, rng, self.amplitude)
        t0, t1 = self.window
        w = np.clip(np.asarray(self.hist, dtype=np.float64), 0, None) + 1e-9
        b = rng.choice(len(w), size=n, p=w / w.sum())
        return t0 + (b + rng.uniform(size=n)) * (t1 - t0) / len(w)


# -- address plan -----------------------------------------------------------------------------
_RESERVED_FIRST_OCTETS = {0, 10, 100, 127, 169, 172, 192, 198, 203}


def public_first_octets() -> np.ndarray:
    """Unicast first octets outside the big reserved/private blocks (1..223)."""
    return np.array([o for o in range(1, 224) if o not in _RESERVED_FIRST_OCTETS], dtype=np.int64)


@dataclass(frozen=True)
class AddressPlan:
    """A random address plan drawn from a public prior: a few busy subnets with Zipf popularity
    (the monitored network and its frequent peers) plus a long tail of peers anywhere in the public
    unicast space. Hosts inside a subnet also follow a Zipf law (a few servers, many clients)."""

    prefixes: np.ndarray  # int64 (m,) network addresses
    prefix_len: np.ndarray  # int64 (m,)
    popularity: np.ndarray  # float (m,) sums to 1
    tail_share: float = 0.3

    @classmethod
    def draw(cls, rng: np.random.Generator, n_subnets: int = 64, zipf_s: float = 1.1,
             tail_share: float = 0.3) -> AddressPlan:
        first = rng.choice(public_first_octets(), size=n_subnets)
        plen = rng.choice(np.array([16, 20, 24]), size=n_subnets, p=[0.4, 0.3, 0.3])
        rest = rng.integers(0, 1 << 24, size=n_subnets)
        net = ((first << 24) | rest) & ~((1 << (32 - plen)) - 1) & 0xFFFFFFFF
        pop = 1.0 / np.arange(1, n_subnets + 1) ** zipf_s
        return cls(net.astype(np.int64), plen.astype(np.int64), pop / pop.sum(), tail_share)

    def sample(self, n: int, rng: np.random.Generator, host_zipf: float = 1.2) -> np.ndarray:
        """n addresses: from a busy subnet (Zipf host index) or, with ``tail_share``, anywhere public."""
        sub = rng.choice(len(self.prefixes), size=n, p=self.popularity)
        host_bits = 32 - self.prefix_len[sub]
        # Zipf host rank scrambled by an odd multiplier so popular hosts are not all at .1, .2, ...
        rank = np.minimum(rng.zipf(host_zipf, size=n), 1 << 20).astype(np.int64)
        host = ((rank * 2654435761) & 0xFFFFFFFF) & ((np.int64(1) << host_bits) - 1)
        ip = self.prefixes[sub] | host
        tail = rng.uniform(size=n) < self.tail_share
        ip[tail] = (rng.choice(public_first_octets(), size=int(tail.sum())) << 24) | rng.integers(
            0, 1 << 24, size=int(tail.sum()))
        return ip.astype(np.int64)


@dataclass(frozen=True)
class FittedAddressPlan:
    """Addresses from released (noisy) prefix counts: entry i is the prefix ``prefixes[i]/prefix_len[i]``
    with weight ``weights[i]`` (a /32 is one host); hosts below a shorter prefix are drawn uniformly.
    ``tail_share`` of draws stay anywhere in public unicast space so the search can still explore."""

    prefixes: np.ndarray
    prefix_len: np.ndarray
    weights: np.ndarray
    tail_share: float = 0.05

    def sample(self, n: int, rng: np.random.Generator, host_zipf: float = 1.2) -> np.ndarray:  # noqa: ARG002
        if len(self.prefixes) == 0 or self.weights.sum() <= 0:
            return (rng.choice(public_first_octets(), size=n) << 24) | rng.integers(0, 1 << 24, size=n)
        e = rng.choice(len(self.prefixes), size=n, p=self.weights / self.weights.sum())
        host_bits = 32 - self.prefix_len[e]
        low = rng.integers(0, 1 << 32, size=n, dtype=np.int64) & ((np.int64(1) << host_bits) - 1)
        ip = self.prefixes[e] | low
        tail = rng.uniform(size=n) < self.tail_share
        ip[tail] = (rng.choice(public_first_octets(), size=int(tail.sum())) << 24) | rng.integers(
            0, 1 << 24, size=int(tail.sum()))
        return ip.astype(np.int64)
