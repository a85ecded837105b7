"""LOOPBACK OpenAI-compatible server — a TEST AND DEMO TOOL, not a language model.

It lets the LLM backend run end to end without a provider: a real HTTP server on 127.0.0.1 (stdlib
``http.server`` in a daemon thread) answering ``GET /v1/models`` and ``POST /v1/chat/completions``
the way OpenAI does, so the real ``openai`` client talks to it over real HTTP. Behind it sits a
deterministic *stand-in*: it reads the public schema from the prompt's ``<pe_tabular_spec>`` block
(``llm_format``) and writes schema-valid rows from a public prior shaped by a *personality* —
uniform, mode-seeking ("typical"), or biased toward the first categories with coarse numbers — so two
endpoints can behave differently in one evolution. The reply is a function of (personality, model,
prompt, ``seed``): the same request always gets the same reply.

Switchable faults (``inject``) exercise the client's recovery: HTTP 429 and 500/503, slow replies,
dropped connections, malformed and truncated JSON. Every request body received is recorded
(``requests``) so tests can prove that no private value was ever sent; the ``Authorization`` header
is checked for presence but never recorded.

    with LoopbackServer("typical") as srv:
        backend = LLMBackend(schema, LLMConfig(srv.base_url, srv.model))

From a shell (demo):  python -m pe_tabular.tables.testing.loopback --port 8000 --personality typical
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from pe_tabular.io_utils import epoch_seconds
from pe_tabular.tables.generators.llm_format import parse_spec, to_json_value
from pe_tabular.tables.schema import Column
from pe_tabular.tables.values import anchors, from_unit, snap, to_unit

FAULTS = ("429", "500", "503", "slow", "drop", "malformed", "truncated")


@dataclass(frozen=True)
class Personality:
    """How the stand-in behaves. ``prior`` maps a column to {category: weight} (public knowledge)."""

    name: str
    category_skew: float = 0.0  # Zipf exponent over the listed category order (0 = uniform)
    numeric_center: float | None = None  # bell centre on the public unit scale; None = uniform
    numeric_spread: float = 0.2
    point_mass: float = 0.2  # share of numbers placed on public anchors (special values, 0, round numbers)
    coarse: float = 0.0  # round numbers to this share of the range (0 = the column's own grid)
    sloppiness: float = 0.0  # share of rows with a deliberate defect (tests the client's repair)
    structured: bool = True  # accepts response_format json_schema / json_object
    chatter: bool = True  # without response_format: wrap the JSON in prose and a code fence
    prior: dict[str, dict[str, float]] = field(default_factory=dict)
    # PUBLIC example rows (a pandas DataFrame of external values): a stand-in for a model that knows the
    # domain — random rows are example rows, variations copy the changed fields from other example rows
    examples: Any = None


PERSONALITIES: dict[str, Personality] = {
    "plain": Personality("plain"),
    "typical": Personality("typical", category_skew=1.0, numeric_center=0.3, numeric_spread=0.15, point_mass=0.5),
    "coarse": Personality("coarse", category_skew=2.5, numeric_center=0.5, numeric_spread=0.3, point_mass=0.1,
                          coarse=0.05),
    "sloppy": Personality("sloppy", sloppiness=0.3, structured=False),
}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    body: str


# ------------------------------------------------------------------------------------------------
# the stand-in


class StandIn:
    """Writes rows for a parsed spec, deterministically from (personality, seed, prompt)."""

    def __init__(self, personality: Personality):
        self.p = personality
        self._anchors: dict[tuple, np.ndarray] = {}

    def _cat_weights(self, col: Column) -> np.ndarray:
        k = len(col.categories)
        if col.name in self.p.prior:
            pr = self.p.prior[col.name]
            w = np.array([float(pr.get(str(v), 0.0)) for v in col.categories]) + 1e-6
        else:
            w = 1.0 / np.arange(1, k + 1) ** self.p.category_skew
        return w / w.sum()

    def _numbers(self, col: Column, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = from_unit(col, u)
        on_anchor = rng.random(u.size) < self.p.point_mass
        if on_anchor.any():
            key = (col.name, col.lower, col.upper, col.rounding, col.special_values)
            if key not in self._anchors:
                self._anchors[key] = anchors(col)
            a = self._anchors[key]
            sv = np.array([v for v in col.special_values if col.lower <= v <= col.upper], dtype=float)
            pick = a[rng.integers(0, a.size, on_anchor.sum())]
            if sv.size:  # public special values are the likeliest anchors
                use_sv = rng.random(pick.size) < 0.5
                pick[use_sv] = sv[rng.integers(0, sv.size, use_sv.sum())]
            x[on_anchor] = pick
        if self.p.coarse > 0:
            step = _nice(self.p.coarse * (col.upper - col.lower))
            x = np.round(x / step) * step
        return snap(col, x)

    def column(self, col: Column, m: int, rng: np.random.Generator) -> list[Any]:
        if col.is_categorical:
            idx = rng.choice(len(col.categories), size=m, p=self._cat_weights(col))
            return [to_json_value(col, col.categories[i]) for i in idx]
        if self.p.numeric_center is None:
            u = rng.random(m)
        else:
            u = np.clip(rng.normal(self.p.numeric_center, self.p.numeric_spread, m), 0, 1)
        return [to_json_value(col, v) for v in self._numbers(col, u, rng)]

    def random_rows(self, cols: list[Column], n: int, fixed: dict[str, Any], rng: np.random.Generator) -> list[dict]:
        if self.p.examples is not None:
            return self._example_rows(cols, n, fixed, rng)
        data = {c.name: ([fixed[c.name]] * n if c.name in fixed else self.column(c, n, rng)) for c in cols}
        return [{c.name: data[c.name][i] for c in cols} for i in range(n)]

    def _example_rows(self, cols: list[Column], n: int, fixed: dict[str, Any], rng: np.random.Generator) -> list[dict]:
        """n public example rows (those matching the fixed fields when any do), as JSON values."""
        ex = self.p.examples
        ok = np.ones(len(ex), dtype=bool)
        for k, v in fixed.items():
            if k in ex.columns:
                ok &= ex[k].astype(str).to_numpy() == str(v)
        pool = np.flatnonzero(ok) if ok.any() else np.arange(len(ex))
        take = ex.iloc[pool[rng.integers(0, pool.size, n)]]
        rows = []
        for i in range(n):
            r = {c.name: fixed[c.name] if c.name in fixed else to_json_value(c, take[c.name].iat[i]) for c in cols}
            rows.append(r)
        return rows

    def vary_rows(self, cols: list[Column], rows: list[dict], n_change: int, step: float, fixed: list[str],
                  rng: np.random.Generator) -> list[dict]:
        """Each row changes ``n_change`` random free fields: categories redrawn from the prior, numbers
        moved by N(0, step) on the public unit scale and then placed by the personality."""
        free = [c for c in cols if c.name not in fixed]
        out = [dict(r) for r in rows]
        m = len(rows)
        if m == 0 or not free:
            return out
        order = np.argsort(rng.random((m, len(free))), axis=1)[:, : min(n_change, len(free))]
        chosen = np.zeros((m, len(free)), dtype=bool)
        chosen[np.arange(m)[:, None], order] = True
        for j, c in enumerate(free):
            idx = np.flatnonzero(chosen[:, j])
            if idx.size == 0:
                continue
            if self.p.examples is not None:  # fields copied from other public example rows
                new = [to_json_value(c, v) for v in self.p.examples[c.name].to_numpy()[
                    rng.integers(0, len(self.p.examples), idx.size)]]
            elif c.is_categorical:
                new = self.column(c, idx.size, rng)
            else:
                x = np.array([_from_json_or(c, rows[i].get(c.name)) for i in idx])
                u = np.clip(to_unit(c, x) + rng.normal(0.0, step, idx.size), 0, 1)
                new = [to_json_value(c, v) for v in self._numbers(c, u, rng)]
            for i, v in zip(idx, new):
                out[i][c.name] = v
        return out

    def spoil(self, cols: list[Column], rows: list[dict], rng: np.random.Generator) -> list[dict]:
        """Deliberate defects in a share of rows: out of range, wrong case, unknown category, missing key."""
        for r in rows:
            if rng.random() >= self.p.sloppiness:
                continue
            c = cols[int(rng.integers(0, len(cols)))]
            kind = int(rng.integers(0, 3))
            if kind == 0 and not c.is_categorical and c.type not in ("datetime", "ipv4"):
                r[c.name] = c.upper + (c.upper - c.lower)  # repairable: clipped into bounds
            elif kind == 0 and c.is_categorical and isinstance(r.get(c.name), str):
                r[c.name] = r[c.name].upper() if r[c.name].upper() != r[c.name] else r[c.name].lower()
            elif kind == 1 and c.is_categorical:
                r[c.name] = "NOT-A-CATEGORY"  # dropped
            else:
                r.pop(c.name, None)  # dropped unless nullable
        return rows

    def reply(self, prompt: str, seed: Any, model: str) -> str:
        """The JSON text of ``{"rows": [...]}`` answering one prompt."""
        spec, rows_in = parse_spec(prompt)
        cols = [Column.from_dict(d) for d in spec["columns"]]
        h = hashlib.sha256(f"{self.p.name}|{model}|{seed}|{prompt}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(h[:8], "little"))
        if spec["task"] == "vary":
            rows = self.vary_rows(cols, rows_in or [], int(spec["n_change"]), float(spec["step"]),
                                  list(spec.get("fixed_columns", [])), rng)
        else:
            rows = self.random_rows(cols, int(spec["n"]), spec.get("fixed") or {}, rng)
        return json.dumps({"rows": self.spoil(cols, rows, rng)})


def _nice(x: float) -> float:
    """A round step (1, 2 or 5 times a power of ten) near x."""
    if x <= 0:
        return 1.0
    e = 10.0 ** np.floor(np.log10(x))
    return float(min((1, 2, 5, 10), key=lambda m: abs(m * e - x)) * e)


def _from_json_or(col: Column, v: Any) -> float:
    """A JSON value back to a number (the lower bound when unreadable)."""
    try:
        return float(_from_json(col, v))
    except (TypeError, ValueError):
        return float(col.lower)


def _from_json(col: Column, v: Any) -> float:
    if col.type == "datetime" and isinstance(v, str):
        return epoch_seconds(v)
    if col.type == "ipv4" and isinstance(v, str):
        import ipaddress

        return float(int(ipaddress.IPv4Address(v)))
    return float(v)


# ------------------------------------------------------------------------------------------------
# the HTTP server


@dataclass
class _Fault:
    kind: str
    delay_s: float = 0.0


class LoopbackServer:
    """An OpenAI-compatible HTTP endpoint on 127.0.0.1 backed by :class:`StandIn` (test/demo tool)."""

    def __init__(self, personality: str | Personality = "plain", *, port: int = 0, model: str | None = None,
                 host: str = "127.0.0.1"):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the loopback server only listens on the loopback interface (127.0.0.1)")
        if isinstance(personality, str):
            if personality not in PERSONALITIES:
                raise ValueError(f"unknown personality {personality!r}; choose one of {sorted(PERSONALITIES)}")
            personality = PERSONALITIES[personality]
        self.personality = personality
        self.model = model or f"loopback-{personality.name}"
        self.standin = StandIn(personality)
        self._lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self.completions = 0
        self._httpd = ThreadingHTTPServer((host, port), _handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LoopbackServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"loopback-{self.port}",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- faults and records -------------------------------------------------------------------
    def inject(self, kind: str, times: int = 1, delay_s: float = 2.0) -> None:
        """The next ``times`` chat completions get this fault (FIFO after earlier injections)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; choose one of {FAULTS}")
        with self._lock:
            self._faults.extend(_Fault(kind, delay_s) for _ in range(times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _next_fault(self) -> _Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _record(self, r: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(r)

    # -- the API ------------------------------------------------------------------------------
    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.model, "object": "model", "created": 0,
                                            "owned_by": "pe-tabular-loopback"}]}

    def chat(self, body: dict[str, Any], fault: _Fault | None) -> tuple[int, dict[str, Any]]:
        msgs = body.get("messages") or []
        prompt = next((m.get("content", "") for m in reversed(msgs) if m.get("role") == "user"), "")
        if not isinstance(prompt, str):
            return 400, _error("loopback stand-in: message content must be a string")
        if body.get("model") != self.model:
            return 404, _error(f"The model {body.get('model')!r} does not exist (this server serves {self.model!r})",
                               "not_found_error", param="model")
        fmt = body.get("response_format")
        if fmt and not self.personality.structured:
            return 400, _error(f"response_format {fmt.get('type')!r} is not supported by this server",
                               param="response_format")
        try:
            text = self.standin.reply(prompt, body.get("seed"), str(body.get("model")))
        except (ValueError, KeyError, TypeError) as e:
            return 400, _error(f"loopback stand-in could not read the task: {e}")
        if not fmt and self.personality.chatter:
            text = f"Sure! Here are the rows you asked for:\n```json\n{text}\n```\nLet me know if you need more."
        finish = "stop"
        if fault is not None and fault.kind == "malformed":
            text = "I am sorry, I cannot produce that table right now. {rows: [oops"
        elif fault is not None and fault.kind == "truncated":
            text, finish = text[: int(len(text) * 0.6)], "length"
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if max_tokens and len(text) // 4 > int(max_tokens):
            text, finish = text[: int(max_tokens) * 4], "length"
        with self._lock:
            self.completions += 1
            n = self.completions
        p_tok = sum(len(str(m.get("content", ""))) for m in msgs) // 4
        c_tok = len(text) // 4
        return 200, {"id": f"chatcmpl-loopback-{n}", "object": "chat.completion", "created": int(time.time()),
                     "model": str(body.get("model")), "system_fingerprint": f"loopback-{self.personality.name}",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": finish, "logprobs": None}],
                     "usage": {"prompt_tokens": p_tok, "completion_tokens": c_tok, "total_tokens": p_tok + c_tok}}


def _error(message: str, code: str = "invalid_request_error", param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": code, "param": param, "code": None}}


def _handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet: tests and demos read ``requests`` instead
            pass

        def _send(self, status: int, obj: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(obj).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                self.close_connection = True

        def _authorised(self) -> bool:
            if not (self.headers.get("Authorization") or "").startswith("Bearer "):
                self._send(401, _error("missing bearer token", "authentication_error"))
                return False
            return True

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            server._record(RecordedRequest("GET", self.path, ""))
            if not self._authorised():
                return
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, server.models())
            else:
                self._send(404, _error(f"no route GET {self.path}", "not_found"))

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            text = raw.decode("utf-8", errors="replace")
            server._record(RecordedRequest("POST", self.path, text))
            if not self._authorised():
                return
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, _error(f"no route POST {self.path}", "not_found"))
                return
            try:
                body = json.loads(text)
            except json.JSONDecodeError as e:
                self._send(400, _error(f"request body is not JSON: {e}"))
                return
            fault = server._next_fault()
            if fault is not None and fault.kind in ("429", "500", "503"):
                code = int(fault.kind)
                msg = "rate limit reached (loopback fault)" if code == 429 else "server error (loopback fault)"
                self._send(code, _error(msg, "rate_limit_error" if code == 429 else "server_error"))
                return
            if fault is not None and fault.kind == "drop":
                self.close_connection = True
                return
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay_s)
            status, obj = server.chat(body, fault)
            self._send(status, obj)

    return Handler


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pe_tabular.tables.testing.loopback",
                                 description="Loopback OpenAI-compatible stand-in server (test/demo tool).")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--personality", choices=sorted(PERSONALITIES), default="plain")
    ap.add_argument("--model", default=None)
    args = ap.parse_args(argv)
    srv = LoopbackServer(args.personality, port=args.port, model=args.model).start()
    print(f"loopback stand-in (test/demo tool) serving model {srv.model!r} at {srv.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
