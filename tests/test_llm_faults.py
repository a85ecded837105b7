"""Fault injection: each fault recovers, or fails with a clear message; completed replies are never lost."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from pe_tabular.tables.generators.llm import LLMError
from pe_tabular.tables.generators.llm_format import parse_spec
from pe_tabular.tables.testing.loopback import LoopbackServer
from tests.llm_toy import cache_files, make_backend

pytestmark = pytest.mark.extra("llm")  # every test here talks to an endpoint through the openai client


@pytest.fixture
def server():
    with LoopbackServer("plain") as srv:
        yield srv


@pytest.mark.parametrize("fault", ["429", "500", "503", "drop", "slow"])
def test_transient_http_faults_are_retried(server, tmp_path, fault):
    server.inject(fault, times=2, delay_s=1.5)
    b = make_backend(server, tmp_path, timeout_s=0.5 if fault == "slow" else 10.0, concurrency=1)
    pop = b.random(30, rng=np.random.default_rng(0))
    assert len(pop) == 30 and b.usage.fallback_rows == 0
    assert b.usage.retries == 2 and b.usage.completions == 3
    assert len(cache_files(tmp_path)) == 3  # one cache entry per completed request


@pytest.mark.parametrize("fault", ["malformed", "truncated"])
def test_bad_json_replies_are_topped_up(server, tmp_path, fault):
    server.inject(fault, times=1)
    b = make_backend(server, tmp_path, concurrency=1)
    pop = b.random(30, rng=np.random.default_rng(0))
    u = b.usage
    assert len(pop) == 30 and u.fallback_rows == 0
    if fault == "malformed":
        assert u.malformed_replies == 1 and u.completions == 4  # 3 requests + 1 top-up
    else:
        # the complete rows before the cut are kept; only the rest is asked for again
        topup = parse_spec(json.loads(server.chat_requests()[-1].body)["messages"][-1]["content"])[0]
        assert u.truncated_replies == 1 and u.completions == 4 and 0 < topup["n"] < 10


def test_retry_budget_exhausted_gives_a_clear_error_and_keeps_completed_replies(server, tmp_path):
    b = make_backend(server, tmp_path, max_retries=2, concurrency=1)
    server.inject("500", times=3)  # the first request fails 3 times = 1 try + 2 retries
    with pytest.raises(LLMError) as err:
        b.random(40, rng=np.random.default_rng(0))
    msg = str(err.value)
    assert server.base_url in msg and "HTTP 500" in msg and "retry budget 2" in msg and "rerun" in msg
    assert len(cache_files(tmp_path)) == b.usage.completions  # nothing completed is lost
    # a rerun with the same seed replays what completed and asks only for the rest
    before = len(server.chat_requests())
    b2 = make_backend(server, tmp_path)
    pop = b2.random(40, rng=np.random.default_rng(0))
    assert len(pop) == 40
    assert b2.usage.cache_hits == b.usage.completions
    assert len(server.chat_requests()) - before == 4 - b.usage.completions


def test_concurrent_failure_lets_in_flight_requests_finish_and_be_cached(server, tmp_path):
    server.inject("500", times=50)  # more than the retry budget of any one request
    b = make_backend(server, tmp_path, max_retries=1, concurrency=4)
    with pytest.raises(LLMError, match="after 2 attempts"):
        b.random(80, rng=np.random.default_rng(0))
    server.clear_faults()
    assert len(cache_files(tmp_path)) == b.usage.completions


def test_endpoint_that_never_answers_falls_back_to_statistical_rows(server, tmp_path, caplog):
    server.inject("malformed", times=100)
    b = make_backend(server, tmp_path, max_rounds=2)
    pop = b.random(15, label="yes", rng=np.random.default_rng(0))
    assert len(pop) == 15 and set(pop.samples["y"]) == {"yes"}
    assert b.usage.fallback_rows == 15 and "statistical backend" in caplog.text


def test_wrong_model_and_bad_url_name_the_flag(server, tmp_path):
    from pe_tabular.tables.generators.llm import LLMConfig

    with pytest.raises(ValueError, match="--llm-base-url"):
        LLMConfig("127.0.0.1:8000", "m")
    b = make_backend(server, tmp_path, max_retries=0)
    b.cfg = replace(b.cfg, base_url=server.base_url.replace("/v1", "/nope"))
    with pytest.raises(LLMError, match="--llm-base-url"):
        b.random(3, rng=np.random.default_rng(0))
    b = make_backend(server, tmp_path, max_retries=0)
    b.cfg = replace(b.cfg, model="no-such-model")
    with pytest.raises(LLMError, match="(?s)no-such-model.*--llm-model"):
        b.random(3, rng=np.random.default_rng(0))
