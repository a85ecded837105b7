"""Private data never leaves: a full `pe-tabular synth --backend llm` run over real HTTP, every
request body recorded by the loopback server, and no canary from the private table in any of them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pe_tabular.cli import main
from pe_tabular.population import Population
from pe_tabular.tables.testing.loopback import LoopbackServer
from tests.llm_toy import SCHEMA, make_backend, private_frame

pytestmark = pytest.mark.extra("llm")  # every test here talks to an endpoint through the openai client


def _leaks(bodies: list[str], canaries: list[str]) -> list[str]:
    return [c for c in canaries if any(c in b for b in bodies)]


def test_no_canary_reaches_the_endpoint_in_a_full_synth_run(tmp_path, monkeypatch):
    # 400 rows: the vote step's SNR from the noisy row count is far above ``min_vote_snr`` whatever the draw
    # (at 120 rows about 1 run in 30 skipped the votes, and with them the variation prompts)
    df, canaries = private_frame(400, seed=7)
    data, schema, out = tmp_path / "private.csv", tmp_path / "schema.json", tmp_path / "synth.csv"
    df.to_csv(data, index=False)
    SCHEMA.save(schema)
    monkeypatch.setenv("PE_TABULAR_LLM_CACHE", str(tmp_path / "cache"))
    with LoopbackServer("typical") as srv:
        rc = main(["synth", str(data), "--schema", str(schema), "--out", str(out), "--backend", "llm",
                   "--llm-base-url", srv.base_url, "--llm-model", srv.model, "--epsilon", "1", "--iterations", "3",
                   "--population", "40", "--k", "2", "--voter", "numpy", "--seed", "0", "--samples", "50", "-q"])
        bodies = [r.body for r in srv.requests]
        prompts = [json.loads(r.body)["messages"][-1]["content"] for r in srv.chat_requests()]
    assert rc == 0 and len(pd.read_csv(out)) == 50
    assert sum("<rows>" in p for p in prompts) >= 2  # both variation steps went through the endpoint
    assert sum("<rows>" not in p for p in prompts) >= 1  # and so did the initial random draw
    assert _leaks(bodies, canaries) == []


def test_the_canary_check_catches_a_leak(tmp_path):
    """Positive control: if private rows were handed to ``vary``, the same check fails."""
    df, canaries = private_frame(30, seed=8)
    priv = df[SCHEMA.names].astype({"amount": float})
    with LoopbackServer("plain") as srv:
        b = make_backend(srv, tmp_path)
        b.vary(Population.fresh(priv, "leak", label=priv["y"].to_numpy(object)), 0.5, np.random.default_rng(0))
        bodies = [r.body for r in srv.requests]
    leaked = _leaks(bodies, canaries)
    assert len(leaked) == 30  # every private amount (x.31, off the public grid) was visible
