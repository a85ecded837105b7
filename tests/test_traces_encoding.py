"""Trace encoders: the distances they induce mean what a network operator expects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pe_tabular.distance import ABS, CAT, IPV4, MixedMetric
from pe_tabular.voting.reference import mixed_distances
from simulators.network.encoder import (
    PORT_CLASS_WEIGHT,
    FlowEncoder,
    PacketEncoder,
    encode_duration,
    encode_ipv4,
    encode_log_size,
    encode_port,
    encode_protocol,
    encode_tcp_flags,
    encode_timestamp,
    flags_to_mask,
    ip_to_uint32,
    mask_to_flags,
    number_to_proto,
    port_class,
    uint32_to_ip,
)


def _dist(codes_a: np.ndarray, codes_b: np.ndarray, kind: int, w: int = 1) -> np.ndarray:
    m = MixedMetric(np.array([kind], np.int8), np.array([w], np.int64))
    return mixed_distances(codes_a.reshape(-1, 1), codes_b.reshape(-1, 1), m)


def test_ipv4_distance_is_32_minus_longest_common_prefix():
    a, kind = encode_ipv4(["10.1.2.3"])
    b, _ = encode_ipv4(["10.1.2.3", "10.1.2.200", "10.1.9.3", "10.200.2.3", "138.1.2.3"])
    assert kind == IPV4
    d = _dist(a, b, kind)[0]
    assert d.tolist() == [0, 8, 12, 24, 32]  # common prefix /32, /24, /20 (9 = 0b1001 vs 2), /8, /0
    # the hierarchy: same /24 closer than same /16 closer than another network
    assert d[1] < d[2] < d[3] < d[4]


def test_ip_parsing_accepts_ints_and_dotted_quads_and_names_the_column():
    assert ip_to_uint32(["192.168.0.1", "0.0.0.0"]).tolist() == [3232235521, 0]
    assert ip_to_uint32(np.array([3232235521, 1])).tolist() == [3232235521, 1]
    assert uint32_to_ip(np.array([3232235521])).tolist() == ["192.168.0.1"]
    with pytest.raises(ValueError, match="column 'srcip': some values are not IPv4"):
        ip_to_uint32(["1.2.3.4", "1.2.3.400"], "srcip")


def _port_dist(a: np.ndarray, b: np.ndarray, w: int) -> np.ndarray:
    """Distances of ports through their two CAT columns (port weight w, class PORT_CLASS_WEIGHT·w)."""
    (ca, kinds), (cb, _) = encode_port(a), encode_port(b)
    m = MixedMetric(kinds, np.array([w, PORT_CLASS_WEIGHT * w], np.int64))
    return mixed_distances(ca, cb, m)


def test_port_distance_orders_equal_same_class_other_class():
    codes, kinds = encode_port([80, 51000])
    assert kinds.tolist() == [CAT, CAT] and codes.tolist() == [[80, 0], [51000, 2]]
    d = _port_dist([80], [80, 443, 51000, 53000, 8080], 2)[0]
    assert d[0] == 0 and d[1] == 2  # another well-known service: same class
    assert d[2] == 6 and d[4] == 6  # ephemeral or registered: another class
    e = _port_dist([51000], [53000, 80], 1)[0]
    assert e[0] < e[1]  # two client ports are closer than a client port and a service
    with pytest.raises(ValueError, match="column 'dstport': some values are not ports"):
        encode_port([70000], "dstport")


def _old_port_distance(a: np.ndarray, b: np.ndarray, w: int) -> np.ndarray:
    """The engine's former PORT kind, written out: 0 if equal, w if same service class, 3w otherwise."""
    a, b = np.asarray(a)[:, None], np.asarray(b)[None, :]
    return np.where(a == b, 0, np.where(port_class(a) == port_class(b), w, 3 * w))


@pytest.mark.parametrize("w", [0, 1, 2, 7])
def test_port_columns_reproduce_the_old_port_distance_exactly(w):
    """Port and class as two CAT columns give exactly the distance of the retired PORT kind, at the
    class boundaries and on random ports, so trace votes (neighbours and ties) are unchanged."""
    edges = [0, 1, 80, 1023, 1024, 1025, 8080, 49151, 49152, 49153, 60000, 65535]
    rng = np.random.default_rng(w)
    ports = np.r_[edges, rng.integers(0, 65536, 200), rng.choice(edges, 50)]
    d = _port_dist(ports, ports, w)
    np.testing.assert_array_equal(d, _old_port_distance(ports, ports, w))
    assert set(np.unique(d).tolist()) == ({0, w, 3 * w} if w else {0})


@pytest.mark.parametrize("encoder", [FlowEncoder, PacketEncoder])
def test_record_encoders_weigh_ports_like_the_old_port_kind(encoder):
    """Through a record encoder (only one port field weighted): the old PORT distance with that weight."""
    enc = encoder((0.0, 1.0), weights={f: 0 for f in encoder.fields} | {"dstport": 5})
    ports = np.array([22, 80, 1023, 1024, 8080, 49151, 49152, 51000, 65535])
    df = pd.DataFrame({"srcip": 1, "dstip": 2, "srcport": 40000, "dstport": ports, "proto": "TCP", "ts": 0.0,
                       "td": 0.1, "pkt": 3, "byt": 200, "length": 60, "ttl": 64, "flags": ".A....", "tos": 0})
    codes = enc.encode(df)
    assert codes.shape == (len(ports), len(enc.columns)) and len(enc.columns) == len(enc.metric.kinds)
    np.testing.assert_array_equal(mixed_distances(codes, codes, enc.metric), _old_port_distance(ports, ports, 5))


def test_sizes_and_durations_on_log_scale():
    codes, kind = encode_log_size([1, 2, 1000, 2000], q=2)
    assert kind == ABS
    assert codes[1] - codes[0] == codes[3] - codes[2] == 2  # doubling = q steps anywhere on the scale
    d, _ = encode_duration([0.0, 0.0005, 0.001, 1.0])
    assert d[0] == 0 and d[1] <= d[2] < d[3]


def test_timestamp_grid_uses_only_the_public_window():
    codes, kind = encode_timestamp([100.0, 150.0, 199.9, 500.0, -5.0], 100.0, 200.0, bins=10)
    assert kind == ABS
    assert codes.tolist() == [0, 5, 9, 9, 0]
    with pytest.raises(ValueError, match="after its start"):
        encode_timestamp([1.0], 5.0, 5.0)


def test_protocol_and_flags_codes():
    p, kind = encode_protocol(["TCP", "udp", "1", 6])
    assert kind == CAT and p.tolist() == [6, 17, 1, 6]
    assert number_to_proto(np.array([6, 17, 1])).tolist() == ["TCP", "UDP", "ICMP"]
    with pytest.raises(ValueError, match="not IP protocols"):
        encode_protocol(["TCPX"])
    f, kind = encode_tcp_flags([".AP.SF", "......", "UAPRSF"])
    assert kind == CAT and f.tolist() == [0x1B, 0, 0x3F]
    assert (flags_to_mask(mask_to_flags(np.arange(64))) == np.arange(64)).all()
    with pytest.raises(ValueError, match="column 'flags': some values are not nfdump"):
        flags_to_mask(["SA"])


def test_flow_encoder_shape_metric_and_weights():
    df = pd.DataFrame({"srcip": [1], "dstip": [2], "srcport": [80], "dstport": [51000], "proto": ["TCP"],
                       "ts": [1.5e15], "td": [0.1], "pkt": [3], "byt": [200], "flags": [".A..SF"], "tos": [0]})
    enc = FlowEncoder((1.5e9, 1.5e9 + 3600), weights={"ts": 0})
    c = enc.encode(df)
    assert c.shape == (1, len(enc.columns)) and c.dtype == np.int64
    assert len(enc.columns) == len(enc.fields) + 2  # each port field brings its class column
    assert enc.metric.weights[enc.columns.index("ts")] == 0
    w = dict(zip(enc.columns, enc.metric.weights.tolist()))
    assert w["srcport_class"] == PORT_CLASS_WEIGHT * w["srcport"]
    assert enc.metric.kinds[enc.columns.index("srcport")] == enc.metric.kinds[enc.columns.index("srcport_class")] == CAT
    assert c[0, enc.columns.index("dstport_class")] == port_class(51000)
    with pytest.raises(ValueError, match="unknown flow fields"):
        _ = FlowEncoder((0, 1), weights={"bogus": 1}).metric
    with pytest.raises(ValueError, match="lack columns"):
        enc.encode(df.drop(columns="pkt"))


@pytest.mark.parametrize("column, secret", [("srcip", "Alice-Smith-HIV+"), ("proto", "Alice-Smith-HIV+"),
                                            ("flags", "Alice-Smith-HIV+"), ("dstport", "987654321")])
def test_parse_errors_name_the_column_but_no_value_row_or_count(column, secret):
    """Privacy hardening #5 (rule 7): a bad private value is never echoed, nor its row or how many."""
    from simulators.network.encoder import flags_to_mask, proto_to_number

    good = {"srcip": "10.0.0.1", "proto": "TCP", "flags": ".A....", "dstport": "80"}[column]
    values = [good] * 1236 + [secret] + [good] * 7
    parse = {"srcip": lambda v: ip_to_uint32(v, "srcip"), "proto": lambda v: proto_to_number(v, "proto"),
             "flags": lambda v: flags_to_mask(v, "flags"),
             "dstport": lambda v: encode_port(pd.to_numeric(pd.Series(v)).to_numpy(), "dstport")}[column]
    with pytest.raises(ValueError) as e:
        parse(values)
    msg = str(e.value)
    assert f"'{column}'" in msg
    assert secret not in msg and "1236" not in msg and "row" not in msg and " 1 " not in msg
