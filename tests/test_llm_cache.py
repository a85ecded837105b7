"""The on-disk reply cache: a second identical run sends zero requests and reproduces the output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pe_tabular.privacy.noise import TEST_NOISE_ENV
from pe_tabular.tables.synthesizer import PESynthesizer
from pe_tabular.tables.testing.loopback import LoopbackServer
from tests.llm_toy import SCHEMA, cache_files, make_backend, private_frame

pytestmark = pytest.mark.extra("llm")  # every test here talks to an endpoint through the openai client


def _fit(server, tmp_path, df):
    b = make_backend(server, tmp_path)
    syn = PESynthesizer(SCHEMA, 1.0, 1e-5, backend=b, iterations=3, population=40, k=2, voter="numpy", seed=3)
    return syn.fit(df).sample(60, seed=0), b


def test_second_identical_run_sends_zero_requests(tmp_path, monkeypatch):
    # the privacy noise must repeat too, or the votes (and so the vary prompts) would differ
    monkeypatch.setenv(TEST_NOISE_ENV, "11")
    df, _ = private_frame(100, seed=1, canaries=False)
    with LoopbackServer("typical") as srv:
        first, b1 = _fit(srv, tmp_path, df)
        n_first = len(srv.chat_requests())
        second, b2 = _fit(srv, tmp_path, df)
        n_second = len(srv.chat_requests()) - n_first
    assert n_first > 0 and b1.usage.http_requests == n_first and len(cache_files(tmp_path)) == n_first
    assert n_second == 0 and b2.usage.http_requests == 0 and b2.usage.cache_hits == n_first
    assert b2.usage.prompt_tokens == 0 and b2.usage.cached_tokens > 0
    pd.testing.assert_frame_equal(first, second)


def test_cache_key_covers_endpoint_model_prompt_and_params(tmp_path):
    with LoopbackServer("plain") as a, LoopbackServer("plain", model="other") as b:
        make_backend(a, tmp_path).random(10, rng=np.random.default_rng(0))
        make_backend(a, tmp_path).random(10, rng=np.random.default_rng(1))  # new seed -> new request
        make_backend(a, tmp_path, temperature=0.5).random(10, rng=np.random.default_rng(0))
        make_backend(b, tmp_path).random(10, rng=np.random.default_rng(0))  # other endpoint and model
        make_backend(a, tmp_path).random(10, label="yes", rng=np.random.default_rng(0))  # other prompt
        assert len(a.chat_requests()) == 4 and len(b.chat_requests()) == 1
        make_backend(a, tmp_path).random(10, rng=np.random.default_rng(0))  # a repeat: cache hit
        assert len(a.chat_requests()) == 4
    assert len(cache_files(tmp_path)) == 5


def test_damaged_cache_entry_is_a_miss_not_a_crash(tmp_path):
    with LoopbackServer("plain") as srv:
        make_backend(srv, tmp_path).random(10, rng=np.random.default_rng(0))
        for p in cache_files(tmp_path):
            p.write_text("{not json")
        pop = make_backend(srv, tmp_path).random(10, rng=np.random.default_rng(0))
        assert len(pop) == 10 and len(srv.chat_requests()) == 2
