"""LLM backend over real HTTP (openai client -> loopback server): prompts, parsing, repair, labels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pe_tabular.population import Population
from pe_tabular.tables.generators.factory import make_backend as factory_backend
from pe_tabular.tables.generators.factory import parse_llm, spec_from_flags
from pe_tabular.tables.generators.llm_format import RowChecker, parse_rows, vary_plan
from pe_tabular.tables.schema import Column, Schema, validate
from pe_tabular.tables.testing.loopback import LoopbackServer
from tests.llm_toy import SCHEMA, cache_files, make_backend


@pytest.fixture
def server():
    with LoopbackServer("plain") as srv:
        yield srv


def _assert_schema_valid(df: pd.DataFrame) -> None:
    validate(df, SCHEMA, "error")  # raises on any unknown category / out-of-bounds / missing value
    for c in SCHEMA.columns:
        if c.rounding:
            x = df[c.name].to_numpy(float)
            assert np.allclose((x - c.lower) / c.rounding, np.round((x - c.lower) / c.rounding)), c.name


@pytest.mark.extra("llm")
def test_random_returns_exactly_n_schema_valid_rows_of_the_class(server, tmp_path):
    b = make_backend(server, tmp_path)
    pop = b.random(23, label="yes", rng=np.random.default_rng(0))
    assert len(pop) == 23 and set(pop.samples["y"]) == {"yes"} and set(pop.label) == {"yes"}
    assert set(pop.source) == {b.name} and (pop.parent == -1).all()
    _assert_schema_valid(pop.samples)
    assert b.usage.http_requests == 3  # 10 + 10 + 3 rows
    body = json.loads(server.chat_requests()[0].body)
    assert body["response_format"]["type"] == "json_schema"
    prompt = body["messages"][-1]["content"]
    for must in ("age in years", "a toy payroll table", '"clerk", "nurse", "farmer"', "y = \"yes\"", "40"):
        assert must in prompt


@pytest.mark.extra("llm")
def test_vary_sends_only_the_given_rows_keeps_labels_and_scales_with_degree(server, tmp_path):
    b = make_backend(server, tmp_path)
    rng = np.random.default_rng(1)
    parents = b.random(40, label="no", rng=rng)
    parents = Population(parents.samples, parents.source, np.arange(40), None, parents.label)
    changed = {}
    for degree in (0.1, 1.0):
        out = b.vary(parents, degree, rng)
        assert len(out) == 40 and set(out.samples["y"]) == {"no"} and (out.parent == np.arange(40)).all()
        _assert_schema_valid(out.samples)
        diff = out.samples[["age", "hours", "amount", "job"]].ne(parents.samples[["age", "hours", "amount", "job"]])
        changed[degree] = diff.sum(axis=1).mean()
    assert changed[0.1] <= 1.0 < changed[1.0]  # 1 of 4 fields vs (nearly) all of them
    assert vary_plan(SCHEMA, 0.1, ["y"]) == (1, 0.05) and vary_plan(SCHEMA, 1.0, ["y"]) == (4, 0.5)


@pytest.mark.extra("llm")
def test_sloppy_endpoint_is_downgraded_to_text_and_its_rows_repaired_or_dropped(tmp_path):
    with LoopbackServer("sloppy") as srv:
        b = make_backend(srv, tmp_path)
        pop = b.random(60, rng=np.random.default_rng(2))
        u = b.usage
        assert len(pop) == 60
        _assert_schema_valid(pop.samples)
        assert u.downgrades == 2  # json_schema -> json_object -> text (prose + code fence replies)
        assert u.rows.repaired > 0 and u.rows.dropped > 0
        assert u.rows.valid + u.rows.repaired >= 60
        assert u.rows.received == u.rows.valid + u.rows.repaired + u.rows.dropped
        assert u.fallback_rows == 0  # the top-up rounds replaced the dropped rows
        # the downgrade is remembered: a new backend on the same cache starts in text mode
        b2 = make_backend(srv, tmp_path)
        n_before = len(srv.chat_requests())
        b2.random(5, rng=np.random.default_rng(99))
        bodies = [json.loads(r.body) for r in srv.chat_requests()[n_before:]]
        assert bodies and all("response_format" not in x for x in bodies)


def test_parse_rows_tolerates_fences_prose_and_truncation():
    rows = [{"age": 30, "job": "clerk"}, {"age": 40, "job": "nurse"}, {"age": 50, "job": "farmer"}]
    full = json.dumps({"rows": rows})
    assert parse_rows(full).records == rows
    assert parse_rows(f"Sure!\n```json\n{full}\n```\nbye").records == rows
    assert parse_rows("Here: " + json.dumps(rows) + " -- done").records == rows
    cut = parse_rows(full[: full.index('"nurse"') + 3])
    assert cut.records == rows[:1] and cut.truncated and not cut.malformed
    bad = parse_rows("I cannot do that. {rows: [oops")
    assert bad.records == [] and bad.malformed


def test_row_checker_repairs_near_misses_and_drops_the_rest():
    schema = Schema(SCHEMA.columns + (Column("note", "categorical", categories=("a", "b"), nullable=True),),
                    label="y")
    ck = RowChecker(schema)
    ok = {"age": 30, "hours": 40, "amount": 10.5, "job": "clerk", "y": "no", "note": None}
    recs = [ok, {**ok, "age": 300}, {**ok, "job": " Nurse"}, {**ok, "amount": "1,234.2"},
            {**ok, "job": "pilot"}, {k: v for k, v in ok.items() if k != "hours"}, {**ok, "age": "old"}, "junk",
            {**ok, "y": "yes"}]
    rows, st = ck.check(recs, fixed={"y": "no"})
    assert [r is not None for r in rows] == [True, True, True, True, False, False, False, False, True]
    assert rows[1]["age"] == 90 and rows[2]["job"] == "nurse" and rows[3]["amount"] == 1234.0
    assert rows[8]["y"] == "no"  # the fixed label is restored
    assert (st.received, st.valid, st.repaired, st.dropped) == (9, 1, 4, 4)
    assert st.reasons["job: unknown category"] == 1 and st.reasons["hours: missing"] == 1


@pytest.mark.extra("llm")
def test_api_key_goes_only_into_the_auth_header(server, tmp_path, monkeypatch):
    secret = "sk-test-SECRET-canary-4471"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    b = make_backend(server, tmp_path)
    b.random(12, rng=np.random.default_rng(3))
    assert all(secret not in r.body for r in server.requests)
    assert cache_files(tmp_path) and all(secret not in p.read_text() for p in cache_files(tmp_path))
    assert secret not in json.dumps(b.report())


def test_spec_parsing_and_flags():
    assert parse_llm("http://127.0.0.1:8000/v1:llama3:8b") == ("http://127.0.0.1:8000/v1", "llama3:8b")
    assert parse_llm("https://api.example.com/v1") == ("https://api.example.com/v1", None)
    assert parse_llm("", "http://h/v1", "m") == ("http://h/v1", "m")
    assert spec_from_flags("llm", llm_base_url="http://h:1/v1", llm_model="m") == "llm:http://h:1/v1:m"
    assert spec_from_flags("mix", "statistical,llm,sdv", "http://h/v1", "m", "pub.csv") == \
        "mix:statistical,llm:http://h/v1:m,sdv:pub.csv"
    with pytest.raises(ValueError, match="--llm-model"):
        spec_from_flags("llm", llm_base_url="http://h/v1")
    with pytest.raises(ValueError, match="--public-data"):
        spec_from_flags("sdv")
    with pytest.raises(ValueError, match="--mix"):
        spec_from_flags("mix")
    with pytest.raises(ValueError, match="unknown backend"):
        spec_from_flags("mix", "statistical,gpt")


@pytest.mark.extra("llm")
def test_factory_builds_a_mixture_over_two_endpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("PE_TABULAR_LLM_CACHE", str(tmp_path / "c"))
    with LoopbackServer("typical") as a, LoopbackServer("coarse", model=None) as b:
        mix = factory_backend(f"mix:statistical,llm:{a.base_url}:{a.model},llm:{b.base_url}:{b.model}", SCHEMA,
                              progress=False)
        assert mix.tags == ["statistical", f"llm:{a.model}", f"llm:{b.model}"]
        pop = mix.random(30, label="no", rng=np.random.default_rng(0))
        assert sorted(pd.Series(pop.source).value_counts().tolist()) == [10, 10, 10]
        assert a.chat_requests() and b.chat_requests()


@pytest.mark.extra("llm")
def test_a_personality_with_public_examples_writes_and_varies_rows_from_them(tmp_path):
    from pe_tabular.tables.testing.loopback import Personality

    ex = pd.DataFrame({"age": [25, 61, 33, 47], "hours": [40, 20, 40, 60], "amount": [10.5, 2000.0, 350.0, 99.5],
                       "job": ["nurse", "farmer", "clerk", "nurse"], "y": ["no", "yes", "no", "yes"]})
    with LoopbackServer(Personality("knows", examples=ex)) as srv:
        b = make_backend(srv, tmp_path)
        rng = np.random.default_rng(0)
        pop = b.random(30, label="yes", rng=rng)
        def rows(df):
            return {(float(r.age), float(r.hours), float(r.amount), r.job, r.y) for r in df.itertuples()}

        assert rows(pop.samples) <= rows(ex[ex["y"] == "yes"])  # whole example rows of the class
        out = b.vary(Population(pop.samples, pop.source, np.arange(30), None, pop.label), 1.0, rng)
        for c in ("age", "hours", "amount"):  # changed fields come from some example row
            assert set(out.samples[c].astype(float)) <= set(ex[c].astype(float))
        assert set(out.samples["job"]) <= set(ex["job"])
        assert set(out.samples["y"]) == {"yes"}
