"""Backends from spec strings: what ``--backend``/``--mix`` and ``PESynthesizer(backend="...")`` accept.

    statistical                      the built-in backend
    llm:URL:MODEL                    an OpenAI-compatible endpoint, e.g. llm:http://127.0.0.1:8000/v1:my-model
    llm:URL  /  llm                  model (and URL) from --llm-model/--llm-base-url ($OPENAI_BASE_URL)
    sdv:PUBLIC.csv                   an SDV Gaussian copula fitted on a PUBLIC table
    sdv:ctgan:PUBLIC.csv             ... or CTGAN / TVAE (sdv:tvae:...)
    mix:A,B,...                      a Mixture of the specs A, B, ... (commas separate sources)

A URL ends at the first ':' after its host[:port]/path, so model names may contain ':' (``llama3:8b``).
LLM tuning knobs come from the environment (``PE_TABULAR_LLM_CACHE``, ``_CONCURRENCY``, ``_TIMEOUT``,
``_MAX_RETRIES``, ``_ROWS``; see docs/llm.md); the API key only from ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from pe_tabular.backends.base import Backend
from pe_tabular.tables.schema import Schema

_URL = re.compile(r"^(https?://[^/:\s]+(?::\d+)?(?:/[^:\s]*)?)(?::(.+))?$")
MIX_FLOOR_ENV = "PE_TABULAR_MIX_FLOOR"
MIX_SHARPNESS_ENV = "PE_TABULAR_MIX_SHARPNESS"


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return default if raw is None else float(raw)
    except ValueError:
        raise ValueError(f"${name}={raw!r} is not a number; unset it or set e.g. {name}={default}") from None


def parse_llm(rest: str, base_url: str | None = None, model: str | None = None) -> tuple[str | None, str | None]:
    """(base_url, model) from the text after ``llm:`` (either may be empty: the flags fill it)."""
    if not rest:
        return base_url, model
    m = _URL.match(rest)
    if not m:
        raise ValueError(f"cannot read the LLM spec 'llm:{rest}': write llm:URL:MODEL with an http(s) URL, "
                         "e.g. llm:http://127.0.0.1:8000/v1:my-model")
    return m.group(1), m.group(2) or model


def split_mix(spec: str) -> list[str]:
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ValueError("--mix is empty; give sources such as statistical,llm:URL:MODEL,sdv:PUBLIC.csv")
    return parts


def spec_from_flags(backend: str, mix: str | None = None, llm_base_url: str | None = None,
                    llm_model: str | None = None, public_data: str | None = None) -> str:
    """One spec string from the CLI flags (bare ``llm``/``sdv`` entries are completed from the flags)."""
    def complete(p: str) -> str:
        if p == "statistical":
            return p
        if p == "llm" or p.startswith("llm:"):
            url, model = parse_llm(p[4:], llm_base_url or os.environ.get("OPENAI_BASE_URL"), llm_model)
            if not url:
                raise ValueError("the LLM backend needs --llm-base-url URL (or llm:URL:MODEL in --mix, or "
                                 "$OPENAI_BASE_URL)")
            if not model:
                raise ValueError("the LLM backend needs --llm-model NAME (or llm:URL:MODEL in --mix)")
            return f"llm:{url}:{model}"
        if p == "sdv" or p.startswith("sdv:"):
            rest = p[4:] or (public_data or "")
            if not rest:
                raise ValueError("the SDV backend needs --public-data PUBLIC.csv (a public table, never the "
                                 "private one), or sdv:PUBLIC.csv in --mix")
            return f"sdv:{rest}"
        raise ValueError(f"unknown backend {p!r} in --mix; use statistical, llm[:URL:MODEL] or sdv[:PUBLIC.csv]")

    if backend == "mix":
        if not mix:
            raise ValueError("--backend mix needs --mix SOURCES, e.g. --mix statistical,llm:URL:MODEL,sdv:PUB.csv")
        return "mix:" + ",".join(complete(p) for p in split_mix(mix))
    if mix:
        raise ValueError("--mix is only read with --backend mix")
    return complete(backend)


def make_backend(spec: str, schema: Schema, *, marginals: Mapping[str, np.ndarray] | None = None,
                 statistical: Callable[[], Backend] | None = None, llm_base_url: str | None = None,
                 llm_model: str | None = None, public_data: str | None = None, floor: float | None = None,
                 sharpness: float | None = None, **llm_options: Any) -> Backend:
    """The backend a spec string names (see the module docstring).

    Every statistical backend — a ``statistical`` mixture source and the LLM fallback — comes from
    ``statistical()`` when given (so a synthesizer hands over exactly the calibrated backend it
    would use alone), else from ``StatisticalBackend(schema, marginals=marginals)``."""
    from pe_tabular.tables.generators.statistical import StatisticalBackend

    def stat() -> Backend:
        return statistical() if statistical is not None else StatisticalBackend(schema, marginals=marginals)

    spec = spec.strip()
    if spec == "statistical":
        return stat()
    if spec == "mix" or spec.startswith("mix:"):
        parts = split_mix(spec[4:]) if spec.startswith("mix:") else []
        if not parts:
            raise ValueError("--backend mix needs --mix SOURCES, e.g. --mix statistical,llm:URL:MODEL")
        from pe_tabular.backends.mixture import DEFAULT_SHARPNESS, Mixture

        if floor is None:
            floor = _env_float(MIX_FLOOR_ENV, 0.05)
        if sharpness is None:
            sharpness = _env_float(MIX_SHARPNESS_ENV, DEFAULT_SHARPNESS)
        return Mixture([make_backend(p, schema, marginals=marginals, statistical=statistical, llm_base_url=llm_base_url,
                                     llm_model=llm_model, public_data=public_data, **llm_options) for p in parts],
                       floor=floor, sharpness=sharpness)
    if spec == "llm" or spec.startswith("llm:"):
        from pe_tabular.tables.generators.llm import LLMBackend, LLMConfig

        url, model = parse_llm(spec[4:], llm_base_url, llm_model)
        cfg = LLMConfig.from_env(url, model, **llm_options)
        return LLMBackend(schema, cfg, fallback=stat())
    if spec == "sdv" or spec.startswith("sdv:"):
        from pe_tabular.tables.generators.sdv import SYNTHESIZERS, SDVBackend

        rest = spec[4:] or (public_data or "")
        kind = "gaussian_copula"
        head, _, tail = rest.partition(":")
        if head in SYNTHESIZERS and tail:
            kind, rest = head, tail
        if not rest:
            raise ValueError("the SDV backend needs a PUBLIC table: sdv:PUBLIC.csv or --public-data PUBLIC.csv")
        return SDVBackend(schema, rest, synthesizer=kind, name="sdv" if kind == "gaussian_copula" else f"sdv-{kind}")
    raise ValueError(f"unknown backend {spec!r}; use statistical, llm:URL:MODEL, sdv:PUBLIC.csv or mix:A,B,...")
