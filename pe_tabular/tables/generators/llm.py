"""An LLM as a PE generator, through any OpenAI-compatible chat endpoint (extra ``llm``).

``random(n)`` asks the model for rows of the public schema (column names, types, categories,
ranges, public descriptions); ``vary`` sends *synthetic* rows only and asks for one variation each,
sized by the degree (how many fields change, how far numbers move). The private data never reaches
this module: the evolution loop hands backends synthetic populations only (DESIGN.md, privacy rule 1;
``tests/test_llm_canary.py`` checks every request body).

Robustness, because a real endpoint misbehaves:

* structured output (``response_format`` JSON schema) where the server supports it, downgraded to
  JSON mode and then plain text on a 400 that names ``response_format`` — the downgrade is cached;
* forgiving parsing (``llm_format.parse_rows``) and schema repair/drop of every returned row
  (``llm_format.RowChecker``), with counts;
* rows that are still missing are asked for again (``max_rounds``), then filled from the
  statistical backend — counted and logged — so ``random(n)`` and ``vary`` always return n rows;
* ``openai.AsyncOpenAI`` with bounded concurrency; exponential backoff with full jitter (honouring
  ``Retry-After``) on 429, 5xx, timeouts and connection errors; after the retry budget a clear
  :class:`LLMError`, raised only once every other in-flight request has finished and been cached;
* an on-disk cache keyed by (endpoint, model, messages, parameters incl. the per-request seed drawn
  from the run's RNG), so rerunning with the same ``--seed`` replays every reply without a request;
* a token budget per run (``token_budget``, ``$PE_TABULAR_LLM_TOKEN_BUDGET``): once the server's own usage
  figures reach it, no request is sent any more, one warning says so, and the statistical backend fills
  what is missing (requests already in flight finish, so a run can exceed it by at most ``concurrency``
  replies);
* on a local endpoint (127.0.0.1: llama.cpp, vLLM, Ollama) the structured-output schema also fixes the
  number of rows (``minItems``/``maxItems``) and ``max_tokens`` is sized from the schema, so a small model
  can neither stop early nor ramble until its context is full (remote APIs get neither: OpenAI's strict
  mode rejects array bounds, and reasoning models reject ``max_tokens``);
* counters (:class:`Usage`, :meth:`LLMBackend.counters`): requests, tokens, seconds, rows parsed, rows
  rejected by reason, repeats; the evolution writes them into every iteration of the run's history.

The API key comes from ``OPENAI_API_KEY`` and is handed to the client only: it is never logged,
cached, or part of a cache key. Loopback endpoints (127.0.0.1, localhost) get a dummy key.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import json
import logging
import os
import random as _random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from pe_tabular.io_utils import atomic_write_json
from pe_tabular.population import Population
from pe_tabular.tables.generators.llm_format import (
    Prompt,
    PromptBuilder,
    RepairStats,
    RowChecker,
    frame,
    parse_rows,
    response_json_schema,
    row_token_estimate,
    rows_exactly,
    rows_to_json,
)
from pe_tabular.tables.labels import is_missing_class
from pe_tabular.tables.schema import Schema

log = logging.getLogger(__name__)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
DUMMY_KEY = "loopback-dummy-key"
MODES = ("json_schema", "json_object", "text")
CACHE_ENV = "PE_TABULAR_LLM_CACHE"
REMOTE_TIMEOUT_S, LOCAL_TIMEOUT_S = 120.0, 900.0
_SKIPPED = object()  # a request not sent because the token budget is spent (not a malformed reply)


class LLMError(ValueError):
    """The endpoint failed for good (after the retry budget, or a non-retryable error).

    A ``ValueError`` so the CLI reports it as a one-line message (exit 2) instead of a traceback;
    the message names the endpoint, the model, what failed and what to try."""


def default_cache_dir() -> str | None:
    """``$PE_TABULAR_LLM_CACHE`` ('off' disables), else ``$XDG_CACHE_HOME/pe-tabular/llm``."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in ("", "off", "none", "0") else env
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "pe-tabular" / "llm")


@dataclass(frozen=True)
class LLMConfig:
    """Where the model is and how to talk to it. Every field but the two first has a default."""

    base_url: str
    model: str
    rows_per_request: int = 25
    vary_rows_per_request: int = 20
    concurrency: int = 8
    max_retries: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    timeout_s: float | None = None  # per request; None: 120 s, or 900 s on a local endpoint (a model on a CPU)
    temperature: float = 1.0
    # "auto": sized from the schema on local endpoints, the server's default elsewhere (OpenAI reasoning models
    # reject max_tokens); None: always the server's default
    max_tokens: int | str | None = "auto"
    token_budget: int | None = None  # prompt + completion tokens per run (the backend's life); None: no limit
    response_format: str = "auto"  # auto | json_schema | json_object | text
    cache_dir: str | None = field(default_factory=default_cache_dir)
    max_rounds: int = 3  # request rounds before the statistical fallback fills what is missing
    dataset_description: str = ""  # public; defaults to the schema's description
    progress: bool = True
    name: str | None = None  # source tag; default "llm:<model>"

    def __post_init__(self) -> None:
        u = urlparse(self.base_url or "")
        if u.scheme not in ("http", "https") or not u.netloc:
            raise ValueError(f"--llm-base-url must be an http(s) URL such as http://127.0.0.1:8000/v1, "
                             f"got {self.base_url!r}")
        if not self.model:
            raise ValueError("--llm-model is required (the model name the endpoint serves; see GET /v1/models)")
        if self.response_format not in ("auto", *MODES):
            raise ValueError(f"response_format must be auto or one of {MODES}, got {self.response_format!r}")
        for k in ("rows_per_request", "vary_rows_per_request", "concurrency", "max_rounds"):
            if getattr(self, k) < 1:
                raise ValueError(f"LLM setting {k} must be >= 1, got {getattr(self, k)}")
        if self.max_retries < 0:
            raise ValueError("LLM setting max_retries must be >= 0")
        if isinstance(self.max_tokens, str) and self.max_tokens != "auto":
            raise ValueError(f"LLM setting max_tokens must be a number, 'auto' or None, got {self.max_tokens!r}")
        if self.token_budget is not None and self.token_budget < 1:
            raise ValueError(f"the LLM token budget must be >= 1 token, got {self.token_budget} "
                             "(unset $PE_TABULAR_LLM_TOKEN_BUDGET for no limit)")

    @classmethod
    def from_env(cls, base_url: str | None, model: str | None, **kw: Any) -> LLMConfig:
        """Settings from flags, with ``OPENAI_BASE_URL`` and ``PE_TABULAR_LLM_*`` as fallbacks."""
        env = {"concurrency": ("PE_TABULAR_LLM_CONCURRENCY", int), "max_retries": ("PE_TABULAR_LLM_MAX_RETRIES", int),
               "timeout_s": ("PE_TABULAR_LLM_TIMEOUT", float), "rows_per_request": ("PE_TABULAR_LLM_ROWS", int),
               "token_budget": ("PE_TABULAR_LLM_TOKEN_BUDGET", int)}
        for k, (var, cast) in env.items():
            if k not in kw and os.environ.get(var):
                try:
                    kw[k] = cast(os.environ[var])
                except ValueError:
                    raise ValueError(f"${var} must be a number, got {os.environ[var]!r}") from None
        return cls(base_url or os.environ.get("OPENAI_BASE_URL", ""), model or os.environ.get("PE_TABULAR_LLM_MODEL",
                                                                                             ""), **kw)

    @property
    def is_loopback(self) -> bool:
        return (urlparse(self.base_url).hostname or "") in LOOPBACK_HOSTS

    @property
    def request_timeout(self) -> float:
        """Seconds per request. A local model on a CPU writes tens of tokens per second, so one request of 25
        wide rows takes minutes; a timed-out request is retried while the server still computes the first."""
        if self.timeout_s is not None:
            return float(self.timeout_s)
        return LOCAL_TIMEOUT_S if self.is_loopback else REMOTE_TIMEOUT_S


@dataclass
class Usage:
    """Counts for the end-of-run report (tokens are the server's own ``usage`` figures)."""

    http_requests: int = 0  # attempts sent, retries included
    completions: int = 0  # replies received
    cache_hits: int = 0
    retries: int = 0
    downgrades: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # tokens of replies served from the cache (not spent again)
    truncated_replies: int = 0  # JSON cut off (complete rows before the cut are kept)
    length_stops: int = 0  # replies the server ended at max_tokens (finish_reason "length")
    malformed_replies: int = 0
    rows_requested: int = 0
    fallback_rows: int = 0  # rows filled by the statistical backend after max_rounds (or once the budget is spent)
    seconds: float = 0.0  # wall time spent waiting for the endpoint (cache replays included)
    repeated_rows: int = 0  # random(): rows identical to a row the model already returned in the same call
    unchanged_variations: int = 0  # vary(): variations identical to their parent
    budget_skipped: int = 0  # requests not sent because the token budget was spent
    rows: RepairStats = field(default_factory=RepairStats)

    @property
    def tokens(self) -> int:
        """Tokens spent on this endpoint (prompt + completion; replies replayed from the cache cost none)."""
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows"] = {k: v for k, v in asdict(self.rows).items() if k != "reasons"}
        d["rows"]["drop_reasons"] = dict(self.rows.reasons.most_common(10))
        d["tokens"] = self.tokens
        d["seconds"] = round(self.seconds, 3)
        return d

    def summary(self, name: str) -> str:
        r = self.rows
        return (f"{name}: {self.http_requests} HTTP requests ({self.retries} retries), {self.cache_hits} cache hits; "
                f"tokens {self.prompt_tokens} prompt + {self.completion_tokens} completion "
                f"({self.cached_tokens} more replayed from cache); rows received {r.received}: {r.valid} valid, "
                f"{r.repaired} repaired, {r.dropped} dropped, {self.repeated_rows} repeats; {self.fallback_rows} rows "
                f"from the statistical fallback; {self.seconds:.1f} s"
                + (f"; {self.truncated_replies} truncated / {self.malformed_replies} malformed replies"
                   if self.truncated_replies or self.malformed_replies else ""))


class ResponseCache:
    """One JSON file per reply, keyed by a hash of (endpoint, model, messages, parameters); atomic writes."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)

    @staticmethod
    def key(endpoint: str, model: str, messages: Any, params: dict[str, Any]) -> str:
        blob = json.dumps({"v": 1, "endpoint": endpoint.rstrip("/"), "model": model, "messages": messages,
                           "params": params}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        p = self._path(key)
        try:
            return json.loads(p.read_text())
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, OSError) as e:  # a damaged entry is a miss, not a crash
            log.warning("ignoring unreadable LLM cache entry %s (%s)", p, e)
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(p, value)


def _chunks(n: int, size: int) -> list[int]:
    return [size] * (n // size) + ([n % size] if n % size else [])


class LLMBackend:
    """PE backend over an OpenAI-compatible chat endpoint (see the module docstring)."""

    def __init__(self, schema: Schema, config: LLMConfig, fallback: Any = None):
        self.schema, self.cfg = schema, config
        self.name = config.name or f"llm:{config.model}"
        if fallback is None:
            from pe_tabular.tables.generators.statistical import StatisticalBackend

            fallback = StatisticalBackend(schema)
        self.fallback = fallback
        self.checker = RowChecker(schema)
        self.prompts = PromptBuilder(schema, config.dataset_description)
        self._json_schema = {w: response_json_schema(schema, w) for w in (False, True)}
        self._row_tokens = row_token_estimate(schema)
        self._budget_warned = False
        self.cache = ResponseCache(config.cache_dir) if config.cache_dir else None
        self.usage = Usage()
        self._mode: str | None = None if config.response_format == "auto" else config.response_format
        if self._mode is None and self.cache is not None and (caps := self.cache.get(self._caps_key())):
            self._mode = caps.get("mode") if caps.get("mode") in MODES else None
        self._jitter = _random.Random(int.from_bytes(os.urandom(8), "little"))  # timing only, never data
        self._api_key = os.environ.get("OPENAI_API_KEY") or (DUMMY_KEY if config.is_loopback else None)
        if self._api_key is None:
            raise LLMError(f"no API key for {config.base_url}: set OPENAI_API_KEY in the environment "
                           "(it is read from there only, and never written to logs or the cache)")
        self._reported = False
        atexit.register(self._report_at_exit)
        for lib in ("httpx", "httpx2", "openai"):  # one INFO line per HTTP request would drown the CLI's output
            if logging.getLogger(lib).level == logging.NOTSET:
                logging.getLogger(lib).setLevel(logging.WARNING)

    # -- reporting ------------------------------------------------------------------------------
    def _report_at_exit(self) -> None:
        if not self._reported and (self.usage.http_requests or self.usage.cache_hits):
            log.info("%s", self.usage.summary(self.name))
            self._reported = True

    def report(self) -> dict[str, Any]:
        return {"name": self.name, "endpoint": self.cfg.base_url, "model": self.cfg.model, **self.usage.to_dict()}

    def counters(self) -> dict[str, dict[str, Any]]:
        """{source name: counters so far} for the run's history (the evolution records them every iteration):
        requests, tokens, seconds, rows parsed/valid/repaired/dropped and why, repeats, fallback rows."""
        u = self.usage
        return {self.name: {
            "requests": u.http_requests, "replies": u.completions, "cache_hits": u.cache_hits, "retries": u.retries,
            "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "tokens": u.tokens,
            "seconds": round(u.seconds, 3), "rows_requested": u.rows_requested, "rows_parsed": u.rows.received,
            "rows_valid": u.rows.valid, "rows_repaired": u.rows.repaired, "rows_rejected": u.rows.dropped,
            "rejected_by_reason": dict(u.rows.reasons.most_common(10)), "repeated_rows": u.repeated_rows,
            "unchanged_variations": u.unchanged_variations, "fallback_rows": u.fallback_rows,
            "truncated_replies": u.truncated_replies, "malformed_replies": u.malformed_replies,
            "budget_skipped_requests": u.budget_skipped,
        }}

    def budget_spent(self) -> bool:
        """Whether the run's token budget (if any) is used up: no further request will be sent."""
        return self.cfg.token_budget is not None and self.usage.tokens >= self.cfg.token_budget

    # -- the Backend protocol -------------------------------------------------------------------
    def random(self, n: int, *, label: Any = None, rng: np.random.Generator) -> Population:
        fixed = {}
        if label is not None:
            if self.schema.label is None:
                raise ValueError("a class-conditional draw needs schema.label")
            fixed = {self.schema.label: self._label_value(label)}
            if fixed[self.schema.label] is None and not is_missing_class(label):
                raise ValueError(f"label {label!r} is not a category of {self.schema.label!r}")
        self.usage.rows_requested += n
        got: list[dict[str, Any]] = []
        seen: set[tuple] = set()
        for _ in range(self.cfg.max_rounds):
            need = n - len(got)
            if need <= 0 or self.budget_spent():
                break
            sizes = _chunks(need, self.cfg.rows_per_request)
            seeds = rng.integers(0, 2**31 - 1, size=len(sizes))
            prompts = [self.prompts.random(k, fixed) for k in sizes]
            for content in self._run(prompts, seeds, with_id=False, desc="random"):
                if content is _SKIPPED:
                    continue
                rows, _ = self._check(content, fixed)
                for r in rows:
                    if r is None:
                        continue
                    key = _row_key(r)
                    self.usage.repeated_rows += key in seen
                    seen.add(key)
                    got.append(r)
        got = got[:n]
        df = frame(got, self.schema) if got else None
        if len(got) < n:
            extra = self._fallback_random(n - len(got), label, rng)
            df = extra if df is None else _concat_frames(df, extra)
        return Population.fresh(df.reset_index(drop=True), self.name, label=label)

    def vary(self, pop: Population, degree: float, rng: np.random.Generator) -> Population:
        df, n = pop.samples, len(pop)
        if n == 0:
            return Population(df.copy(), np.full(0, self.name, object), pop.parent, None, pop.label)
        lab_col = self.schema.label if pop.label is not None else None
        parents = rows_to_json(df, self.schema, ids=False)
        parents_internal = df[self.schema.names].to_dict("records")
        result: list[dict[str, Any] | None] = [None] * n
        pending = np.arange(n)
        groups = pop.label.astype(str) if lab_col else np.zeros(n, dtype=object).astype(str)
        for _ in range(self.cfg.max_rounds):
            if pending.size == 0 or self.budget_spent():
                break
            jobs: list[tuple[np.ndarray, dict[str, Any]]] = []
            for g in np.unique(groups[pending]):  # one label per request: the label stays fixed
                idx = pending[groups[pending] == g]
                fixed = {lab_col: self._label_value(g)} if lab_col else {}
                for s in range(0, idx.size, self.cfg.vary_rows_per_request):
                    jobs.append((idx[s:s + self.cfg.vary_rows_per_request], fixed))
            seeds = rng.integers(0, 2**31 - 1, size=len(jobs))
            prompts = [self.prompts.vary([{"id": j, **parents[i]} for j, i in enumerate(idx)], degree,
                                         [lab_col] if lab_col else []) for idx, _ in jobs]
            for (idx, fixed), content in zip(jobs, self._run(prompts, seeds, with_id=True, desc="vary")):
                if content is _SKIPPED:
                    continue
                rows, _ = self._check(content, fixed)
                for slot, row in _match(rows, idx.size):
                    if result[idx[slot]] is None:
                        result[idx[slot]] = row
                        self.usage.unchanged_variations += _row_key(row) == _row_key(parents_internal[idx[slot]])
            pending = np.array([i for i in range(n) if result[i] is None], dtype=np.int64)
        ok = np.array([r is not None for r in result])
        out = frame([r for r in result if r is not None], self.schema) if ok.any() else None
        if not ok.all():
            miss = np.flatnonzero(~ok)
            self.usage.fallback_rows += miss.size
            if not self.budget_spent():  # a spent budget has said so once
                log.warning("%s: %d of %d variations still missing after %d rounds; the statistical backend varies "
                            "them instead", self.name, miss.size, n, self.cfg.max_rounds)
            filled = self.fallback.vary(pop.take(miss), degree, rng).samples
            order = np.concatenate([np.flatnonzero(ok), miss])
            merged = filled if out is None else _concat_frames(out, filled)
            out = merged.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)
        return Population(out.reset_index(drop=True), np.full(n, self.name, dtype=object), pop.parent, None,
                          pop.label)

    # -- helpers ---------------------------------------------------------------------------------
    def _label_value(self, label: Any) -> Any:
        """The label cell of class ``label`` (a class string): its category, None (missing) for the missing
        class, None too for a string that is no category (the caller refuses it)."""
        if is_missing_class(label):
            return None
        return self.checker.value(self.schema[self.schema.label], label)[0]

    def _fallback_random(self, m: int, label: Any, rng: np.random.Generator) -> Any:
        self.usage.fallback_rows += m
        if not self.budget_spent():  # a spent budget has said so once
            log.warning("%s: %d rows still missing after %d rounds; drawing them from the statistical backend",
                        self.name, m, self.cfg.max_rounds)
        return self.fallback.random(m, label=label, rng=rng).samples

    def _check(self, content: str | None, fixed: dict[str, Any]) -> tuple[list[dict[str, Any] | None], RepairStats]:
        parsed = parse_rows(content)
        self.usage.truncated_replies += int(parsed.truncated)
        self.usage.malformed_replies += int(parsed.malformed)
        rows, st = self.checker.check(parsed.records, fixed)
        self.usage.rows.add(st)
        return rows, st

    def _params(self, seed: int, with_id: bool, n_rows: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """(cache-key params, keyword arguments for the client) for the current output mode."""
        mode = self._mode or "json_schema"
        local = self.cfg.is_loopback
        kw: dict[str, Any] = {"temperature": self.cfg.temperature, "seed": int(seed)}
        if self.cfg.max_tokens == "auto":
            if local:  # room for every row asked for, pretty-printed, and the wrapper; a truncated tail is kept
                kw["max_tokens"] = 64 + n_rows * (self._row_tokens + (4 if with_id else 0))
        elif self.cfg.max_tokens:
            kw["max_tokens"] = int(self.cfg.max_tokens)
        if mode == "json_schema":
            js = self._json_schema[with_id]
            if local:  # the grammar of a local server then writes exactly n rows (no early stop, no rambling)
                js = rows_exactly(js, n_rows)
            kw["response_format"] = {"type": "json_schema", "json_schema": js}
        elif mode == "json_object":
            kw["response_format"] = {"type": "json_object"}
        return {**kw, "mode": mode}, kw

    def _run(self, prompts: list[Prompt], seeds: np.ndarray, with_id: bool, desc: str) -> list[Any]:
        """Every prompt's reply text (None: no content; ``_SKIPPED``: not sent, the budget is spent)."""
        coro = self._run_async(prompts, seeds, with_id, desc)
        t0 = time.perf_counter()
        try:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(coro)
            with ThreadPoolExecutor(1) as ex:  # called from inside an event loop (e.g. Jupyter)
                return ex.submit(asyncio.run, coro).result()
        finally:
            self.usage.seconds += time.perf_counter() - t0

    def _warn_budget(self) -> None:
        if not self._budget_warned:
            self._budget_warned = True
            log.warning("%s: token budget of %d tokens reached (%d spent in %d requests); no further request is "
                        "sent in this run and the statistical backend writes the remaining rows. Raise "
                        "$PE_TABULAR_LLM_TOKEN_BUDGET (LLMConfig.token_budget) to let the model write more",
                        self.name, self.cfg.token_budget, self.usage.tokens, self.usage.http_requests)

    async def _run_async(self, prompts: list[Prompt], seeds: np.ndarray, with_id: bool,
                         desc: str) -> list[Any]:
        import openai
        from tqdm.auto import tqdm

        client = openai.AsyncOpenAI(base_url=self.cfg.base_url, api_key=self._api_key, max_retries=0,
                                    timeout=self.cfg.request_timeout)
        sem = asyncio.Semaphore(self.cfg.concurrency)
        state = {"failed": None}
        bar = tqdm(total=len(prompts), desc=f"{self.name} {desc}", unit="req", leave=False, file=sys.stderr,
                   disable=not self.cfg.progress or None)

        async def one(p: Prompt, seed: int) -> str | None:
            try:
                return await self._request(client, sem, p, seed, with_id, state)
            finally:
                bar.update(1)

        try:
            res = await asyncio.gather(*(one(p, s) for p, s in zip(prompts, seeds)), return_exceptions=True)
        finally:
            bar.close()
            await client.close()
        for r in res:  # every other request has finished (and been cached) by now
            if isinstance(r, BaseException):
                raise r
        return list(res)

    async def _request(self, client: Any, sem: asyncio.Semaphore, p: Prompt, seed: int, with_id: bool,
                       state: dict[str, Any]) -> Any:
        import openai

        messages = list(p.messages)
        attempt = 0
        async with sem:
            while True:
                key_params, kw = self._params(seed, with_id, p.n_rows)
                key = ResponseCache.key(self.cfg.base_url, self.cfg.model, messages, key_params)
                if self.cache is not None and (hit := self.cache.get(key)) is not None:
                    self.usage.cache_hits += 1
                    self.usage.cached_tokens += int(hit.get("usage", {}).get("total_tokens", 0))
                    return hit.get("content")
                if state["failed"] is not None:
                    raise LLMError(f"{self.name}: request skipped because another request failed: {state['failed']}")
                if self.budget_spent():
                    self._warn_budget()
                    self.usage.budget_skipped += 1
                    return _SKIPPED
                try:
                    self.usage.http_requests += 1
                    resp = await client.chat.completions.create(model=self.cfg.model, messages=messages, **kw)
                except openai.BadRequestError as e:
                    if self._downgrade(key_params["mode"], e):
                        continue
                    raise self._fail(state, f"the endpoint rejected the request (400): {_msg(e)}") from None
                except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
                    raise self._fail(state, f"authentication failed ({e.status_code}): check OPENAI_API_KEY "
                                     "for this endpoint") from None
                except openai.NotFoundError as e:
                    raise self._fail(state, f"not found (404): {_msg(e)}; check --llm-base-url (it usually ends "
                                     "in /v1) and --llm-model (see GET /v1/models)") from None
                except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError,
                        openai.APIStatusError) as e:
                    status = getattr(e, "status_code", None)
                    if isinstance(e, openai.APIStatusError) and not isinstance(
                            e, openai.RateLimitError | openai.InternalServerError) and status not in (408, 409):
                        raise self._fail(state, f"HTTP {status}: {_msg(e)}") from None
                    what = f"HTTP {status}" if status else type(e).__name__
                    if attempt >= self.cfg.max_retries:
                        raise self._fail(state, f"{what} after {attempt + 1} attempts (retry budget "
                                         f"{self.cfg.max_retries}); the endpoint is overloaded or down: wait and "
                                         "rerun (completed replies are cached), or lower PE_TABULAR_LLM_CONCURRENCY"
                                         ) from None
                    delay = self._backoff(attempt, e)
                    log.debug("%s: %s, retrying in %.2f s", self.name, what, delay)
                    attempt += 1
                    self.usage.retries += 1
                    await asyncio.sleep(delay)
                    continue
                return self._store(key, resp)

    def _store(self, key: str, resp: Any) -> str | None:
        self.usage.completions += 1
        choice = resp.choices[0] if resp.choices else None
        content = choice.message.content if choice is not None else None
        u = getattr(resp, "usage", None)
        usage = {"prompt_tokens": int(getattr(u, "prompt_tokens", 0) or 0),
                 "completion_tokens": int(getattr(u, "completion_tokens", 0) or 0)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self.usage.prompt_tokens += usage["prompt_tokens"]
        self.usage.completion_tokens += usage["completion_tokens"]
        if choice is not None and choice.finish_reason == "length":
            self.usage.length_stops += 1
        if self.cache is not None:
            self.cache.put(key, {"content": content, "usage": usage,
                                 "finish_reason": getattr(choice, "finish_reason", None),
                                 "endpoint": self.cfg.base_url, "model": self.cfg.model})
        return content

    def _caps_key(self) -> str:
        return ResponseCache.key(self.cfg.base_url, self.cfg.model, "capabilities", {})

    def _downgrade(self, used: str, e: Exception) -> bool:
        """Step down json_schema -> json_object -> text when the server rejects ``response_format``;
        the choice is cached per (endpoint, model) so a rerun does not pay for the failed attempts."""
        m = _msg(e)
        if self.cfg.response_format != "auto" or used == "text" or (
                "response_format" not in m and "json" not in m.lower()):
            return False
        cur = self._mode or "json_schema"
        if MODES.index(cur) <= MODES.index(used):  # no concurrent request has stepped down further yet
            self._mode = MODES[MODES.index(used) + 1]
            self.usage.downgrades += 1
            log.info("%s: the endpoint rejected response_format=%s (%s); using %s", self.name, used, m, self._mode)
            if self.cache is not None:
                self.cache.put(self._caps_key(), {"mode": self._mode, "endpoint": self.cfg.base_url})
        return True

    def _backoff(self, attempt: int, e: Exception) -> float:
        """Full jitter (AWS Architecture Blog, 2015) on an exponential cap; a Retry-After header wins."""
        cap = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2**attempt)
        resp = getattr(e, "response", None)
        ra = resp.headers.get("retry-after") if resp is not None else None
        try:
            if ra is not None:
                return min(self.cfg.backoff_max_s, max(0.0, float(ra)))
        except ValueError:
            pass
        return self._jitter.uniform(0.0, cap)

    def _fail(self, state: dict[str, Any], what: str) -> LLMError:
        msg = f"LLM endpoint {self.cfg.base_url} (model {self.cfg.model!r}): {what}"
        if state["failed"] is None:
            state["failed"] = what
        return LLMError(msg)


def _msg(e: Exception) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(e, "message", e))


def _match(rows: list[dict[str, Any] | None], m: int) -> list[tuple[int, dict[str, Any]]]:
    """Assign returned variations to the m parents of a request: by ``id``; by position when no row
    carries a usable id and the count matches. Unmatched and duplicate ids are ignored."""
    def as_id(r: dict[str, Any]) -> int | None:
        v = r.get("__id__")
        try:
            i = int(v)
        except (TypeError, ValueError):
            return None
        return i if 0 <= i < m and float(v) == i else None

    ids = [as_id(r) if r is not None else None for r in rows]
    if all(i is None for i in ids) and len(rows) == m:
        return [(j, _strip(r)) for j, r in enumerate(rows) if r is not None]
    out, seen = [], set()
    for i, r in zip(ids, rows):
        if i is not None and r is not None and i not in seen:
            seen.add(i)
            out.append((i, _strip(r)))
    return out


def _row_key(r: dict[str, Any]) -> tuple:
    """A hashable identity of a row's values (NaN-safe: missing values compare equal)."""
    return tuple((k, None if v is None or (isinstance(v, float) and v != v) else str(v))
                 for k, v in sorted(r.items()) if k != "__id__")


def _strip(r: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if k != "__id__"}


def _concat_frames(a: Any, b: Any) -> Any:
    import pandas as pd

    return pd.concat([a, b[a.columns]], ignore_index=True)
