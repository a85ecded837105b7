"""`traces synth` writes its output in the input's conventions (address form, integer ts, optional
columns), decided from the input's format alone (issue 24)."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from pe_tabular.cli import main
from simulators.network.encoder import uint32_to_ip
from simulators.network.flows import FlowSimulator
from simulators.network.io import FlowFormat, input_flow_format, normalize_flows, write_netflow_csv

WINDOW = ["2016-04-11T00:00Z", "2016-04-11T01:00Z"]
T0 = 1460332800.0
SMALL = ["--iterations", "2", "--population", "60", "--seed", "0", "--voter", "numpy", "-q"]


def _flows(n: int = 300) -> pd.DataFrame:
    return FlowSimulator((T0, T0 + 3600), ts_resolution_s=1.0).random(n, rng=np.random.default_rng(0)).samples


def _synth(src, out) -> list[dict[str, str]]:
    assert main(["traces", "synth", str(src), "--epsilon", "2", "--unit", "record", "--time-window", *WINDOW,
                 "--out", str(out), *SMALL]) == 0
    with open(out, newline="") as f:
        return list(csv.DictReader(f))


def test_dotted_quads_integer_ts_and_no_optional_columns_come_back_as_given(tmp_path):
    df = _flows().drop(columns=["flags", "tos", "type"], errors="ignore")
    df["srcip"], df["dstip"] = uint32_to_ip(df["srcip"]), uint32_to_ip(df["dstip"])
    df["ts"] = df["ts"].round().astype(np.int64)
    df.to_csv(tmp_path / "in.csv", index=False)
    rows = _synth(tmp_path / "in.csv", tmp_path / "out.csv")
    assert list(rows[0]) == ["srcip", "dstip", "srcport", "dstport", "proto", "ts", "td", "pkt", "byt"]
    assert all(r["srcip"].count(".") == 3 and r["dstip"].count(".") == 3 for r in rows)
    assert all(r["ts"].isdigit() for r in rows)  # whole microseconds, no "1.46e15" / ".0"


def test_integer_addresses_and_optional_columns_kept(tmp_path):
    write_netflow_csv(_flows(), tmp_path / "in.csv")  # uint32 addresses, flags and tos, float ts
    rows = _synth(tmp_path / "in.csv", tmp_path / "out.csv")
    assert list(rows[0])[-2:] == ["flags", "tos"]
    assert all(r["srcip"].isdigit() and r["dstip"].isdigit() for r in rows)
    assert all(r["ts"].isdigit() for r in rows)  # a CSV declares no type: ts on the µs grid are integers


def test_parquet_declared_types_decide(tmp_path):
    df = _flows(50)
    df["srcip"] = uint32_to_ip(df["srcip"])
    df.to_parquet(tmp_path / "f.parquet", index=False)  # ts declared float64, srcip text, dstip integer
    fmt = input_flow_format(tmp_path / "f.parquet", 1e-6)
    assert fmt == FlowFormat(("type", "flags", "tos"), ("srcip",), False)
    df.assign(ts=df["ts"].round().astype(np.int64)).to_parquet(tmp_path / "g.parquet", index=False)
    assert input_flow_format(tmp_path / "g.parquet", 1e-6).integer_ts
    assert not input_flow_format(tmp_path / "g.parquet", 1.5e-6).integer_ts  # public grid not whole µs


def test_form_is_the_files_not_a_records(tmp_path):
    """One record more or less never changes the chosen form: a text address that is not a dotted
    quad is refused (a numeric one in a dotted file would otherwise be read as text and pass)."""
    df = _flows(4)
    df["srcip"] = uint32_to_ip(df["srcip"])
    df.loc[3, "srcip"] = "3232235777"  # a number stored as text among dotted quads
    with pytest.raises(ValueError, match="column 'srcip' holds text but not only dotted quads") as e:
        normalize_flows(df, "f.csv")
    assert "3232235777" not in str(e.value)
    # the header alone decides the optional columns
    _flows(20).drop(columns="tos").to_csv(tmp_path / "t.csv", index=False)
    assert input_flow_format(tmp_path / "t.csv", 1e-6).optional == ("type", "flags")


def test_a_folder_whose_files_write_addresses_differently_is_refused(tmp_path):
    d = tmp_path / "flows"
    d.mkdir()
    df = _flows(30)
    write_netflow_csv(df, d / "a.csv")
    write_netflow_csv(df, d / "b.csv", dotted_ips=True)
    with pytest.raises(ValueError, match="write column 'srcip' differently"):
        input_flow_format(d, 1e-6)
