"""The LLM backend's run-level controls against the loopback server (fast, no model): the token budget, the
counters it keeps (and the evolution writes into the run's history), repeats, and the request shape that
keeps a small local model on task (exactly n rows, a bounded reply)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from pe_tabular.tables.generators.llm import LLMBackend, LLMConfig
from pe_tabular.tables.testing.loopback import LoopbackServer, Personality
from tests.llm_toy import SCHEMA, make_backend, private_frame

pytestmark = pytest.mark.extra("llm")


def test_a_spent_token_budget_stops_requests_says_so_once_and_still_returns_n_rows(tmp_path, caplog):
    with LoopbackServer("plain") as srv:
        b = make_backend(srv, tmp_path, concurrency=1, cache_dir=None, token_budget=1)
        with caplog.at_level(logging.WARNING):
            first = b.random(40, rng=np.random.default_rng(0))  # 4 requests of 10 rows; the first spends it
            second = b.vary(first, 0.5, np.random.default_rng(1))
        sent = len(srv.chat_requests())
    assert len(first) == 40 and len(second) == 40
    assert sent == 1 and b.usage.http_requests == 1  # nothing was sent after the budget was reached
    assert b.usage.budget_skipped >= 3 and b.usage.fallback_rows == 30 + 40
    budget_lines = [r.getMessage() for r in caplog.records if "token budget" in r.getMessage()]
    assert len(budget_lines) == 1 and "PE_TABULAR_LLM_TOKEN_BUDGET" in budget_lines[0]
    assert not [r for r in caplog.records if "still missing" in r.getMessage()]  # no misleading second story
    assert b.counters()[b.name]["budget_skipped_requests"] == b.usage.budget_skipped


def test_the_token_budget_comes_from_the_environment_and_must_be_positive(monkeypatch):
    monkeypatch.setenv("PE_TABULAR_LLM_TOKEN_BUDGET", "5000")
    assert LLMConfig.from_env("http://127.0.0.1:1/v1", "m").token_budget == 5000
    monkeypatch.setenv("PE_TABULAR_LLM_TOKEN_BUDGET", "0")
    with pytest.raises(ValueError, match="token budget"):
        LLMConfig.from_env("http://127.0.0.1:1/v1", "m")


def test_counters_tell_requests_tokens_seconds_rows_and_rejections_by_reason(tmp_path):
    with LoopbackServer("sloppy") as srv:  # rejects response_format, spoils 30 % of its rows
        b = make_backend(srv, tmp_path, cache_dir=None)
        b.random(30, rng=np.random.default_rng(0))
        c = b.counters()[b.name]
        replies = srv.completions
    assert c["replies"] == replies and c["requests"] >= replies  # downgrade attempts are requests too
    assert c["tokens"] == c["prompt_tokens"] + c["completion_tokens"] > 0 and c["seconds"] > 0
    assert c["rows_parsed"] == c["rows_valid"] + c["rows_repaired"] + c["rows_rejected"] >= 30
    assert c["rows_rejected"] == sum(c["rejected_by_reason"].values()) > 0
    assert all(":" in reason for reason in c["rejected_by_reason"])  # "column: why", never a value
    json.dumps(c)  # it goes into checkpoints and the history


def test_repeated_rows_of_a_model_are_counted(tmp_path):
    one = pd.DataFrame({"age": [30], "hours": [40], "amount": [10.5], "job": ["nurse"], "y": ["no"]})
    with LoopbackServer(Personality("parrot", examples=one)) as srv:  # writes the same row every time
        b = make_backend(srv, tmp_path, cache_dir=None)
        pop = b.random(25, rng=np.random.default_rng(0))
        assert b.usage.repeated_rows == 24  # all but the first
        b.vary(pop, 0.0, np.random.default_rng(1))  # its variations copy fields from that same row
    assert b.usage.unchanged_variations == 25


def test_a_local_endpoint_is_asked_for_exactly_n_rows_in_a_bounded_reply(tmp_path, monkeypatch):
    with LoopbackServer("plain") as srv:
        b = make_backend(srv, tmp_path, cache_dir=None, rows_per_request=7)
        b.random(7, rng=np.random.default_rng(0))
        body = json.loads(srv.chat_requests()[0].body)
    rows = body["response_format"]["json_schema"]["schema"]["properties"]["rows"]
    assert rows["minItems"] == rows["maxItems"] == 7
    assert 7 * 20 < body["max_tokens"] < 7 * 200  # sized from the schema: room for every row, not the context
    # a remote API gets neither (OpenAI's strict mode rejects array bounds; reasoning models reject max_tokens)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    remote = LLMBackend(SCHEMA, LLMConfig("https://api.example.com/v1", "m", cache_dir=None))
    _, kw = remote._params(1, False, 7)
    assert "max_tokens" not in kw and "minItems" not in json.dumps(kw["response_format"])


def test_the_run_history_carries_each_sources_counters_every_iteration(tmp_path, monkeypatch):
    from pe_tabular.tables.synthesizer import PESynthesizer

    monkeypatch.setenv("PE_TABULAR_LLM_CACHE", "off")
    df, _ = private_frame(300, seed=3, canaries=False)
    with LoopbackServer("typical") as srv:
        syn = PESynthesizer(SCHEMA, epsilon=1.0, backend=f"mix:statistical,llm:{srv.base_url}:{srv.model}",
                            iterations=2, population=40, seed=0).fit(df)
        sent = srv.completions
    hist = [h for h in syn.result_.history if h.get("type", "iteration") == "iteration"]
    assert len(hist) == 2
    name = f"llm:{srv.model}"
    for h in hist:
        assert set(h["generators"]) == {name} and name in h["source_share"]
    first, last = hist[0]["generators"][name], hist[-1]["generators"][name]
    assert 0 < first["requests"] <= last["requests"] == sent  # cumulative, up to the end of the run
    assert last["rows_parsed"] >= last["rows_valid"] > 0 and last["tokens"] > 0


def test_a_backend_without_counters_adds_nothing_to_the_history():
    from pe_tabular.tables.synthesizer import PESynthesizer

    df, _ = private_frame(200, seed=4, canaries=False)
    syn = PESynthesizer(SCHEMA, epsilon=1.0, iterations=2, population=40, seed=0).fit(df)
    assert all("generators" not in h for h in syn.result_.history)


def test_requests_overlap_up_to_the_concurrency_and_never_beyond(tmp_path):
    """Against a server with several slots (llama.cpp's n_parallel) the backend keeps exactly `concurrency`
    requests in flight: fewer would leave slots idle, more would queue in the server and time out."""
    import threading
    import time

    with LoopbackServer("plain") as srv:
        lock, state = threading.Lock(), {"now": 0, "max": 0}
        chat = srv.chat

        def slow_chat(body, fault):
            with lock:
                state["now"] += 1
                state["max"] = max(state["max"], state["now"])
            time.sleep(0.2)
            try:
                return chat(body, fault)
            finally:
                with lock:
                    state["now"] -= 1

        srv.chat = slow_chat
        b = make_backend(srv, tmp_path, cache_dir=None, concurrency=3, rows_per_request=5)
        b.random(40, rng=np.random.default_rng(0))  # 8 requests
    assert state["max"] == 3 and b.usage.http_requests == 8


def test_a_local_endpoint_gets_minutes_per_request_a_remote_one_two_and_the_setting_wins():
    assert LLMConfig("http://127.0.0.1:8080/v1", "m").request_timeout == 900.0  # a CPU model: minutes a request
    assert LLMConfig("https://api.example.com/v1", "m").request_timeout == 120.0
    assert LLMConfig("http://127.0.0.1:8080/v1", "m", timeout_s=5).request_timeout == 5.0
