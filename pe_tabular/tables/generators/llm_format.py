"""The wire format between the LLM backend and a chat model: prompts, JSON parsing, row repair.

Shared by the LLM backend (``llm.py``) and the loopback stand-in server (``loopback.py``), so both
agree on one machine-readable block. A prompt carries

* a human-readable task and column list (what a real model reads), and
* ``<pe_tabular_spec>{json}</pe_tabular_spec>``: the same task and public schema as JSON, and for
  ``vary`` the synthetic parent rows in ``<rows>[...]</rows>``.

Only *public* schema fields (types, categories, bounds, rounding, special values, descriptions) and
*synthetic* rows are ever written into a prompt; the functions here never take private data.

Models misbehave, so parsing is forgiving (code fences, prose around the JSON, a truncated tail:
every complete row object before the cut is kept) and every value is checked against the public
schema: near misses are repaired (case/whitespace of categories, numbers clipped into bounds and
snapped to the public rounding grid, a wrong label restored) and the rest dropped, with counts.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.io_utils import epoch_seconds
from pe_tabular.tables.schema import Column, Schema
from pe_tabular.tables.values import snap

SPEC_TAG = "pe_tabular_spec"
ROWS_TAG = "rows"
SYSTEM_PROMPT = ("You are a careful generator of realistic synthetic tabular data. You never invent columns or "
                 "values outside the allowed ones, and you answer with JSON only.")


# ------------------------------------------------------------------------------------------------
# values <-> JSON


def _py(v: Any) -> Any:
    """numpy scalars -> plain Python (JSON-serialisable)."""
    if isinstance(v, np.generic):
        return v.item()
    return v


def to_json_value(col: Column, v: Any) -> Any:
    """An internal value as a model should see it (integers as ints, datetimes ISO, IPv4 dotted)."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    if col.is_categorical:
        return _py(v)
    x = float(v)
    if col.type == "datetime":
        return pd.Timestamp(x, unit="s").isoformat()
    if col.type == "ipv4":
        return str(ipaddress.IPv4Address(int(round(x)) % 2**32))
    if col.rounding is not None and float(col.rounding).is_integer() and float(col.lower).is_integer():
        return int(round(x))
    return float(f"{x:.6g}")


def rows_to_json(df: pd.DataFrame, schema: Schema, ids: bool = True) -> list[dict[str, Any]]:
    """Synthetic rows as JSON objects (with an ``id`` per row for matching variations back)."""
    cols = {c.name: df[c.name].to_numpy(dtype=object) for c in schema.columns}
    out = []
    for i in range(len(df)):
        row: dict[str, Any] = {"id": i} if ids else {}
        for c in schema.columns:
            row[c.name] = to_json_value(c, cols[c.name][i])
        out.append(row)
    return out


# ------------------------------------------------------------------------------------------------
# prompts


def column_line(col: Column) -> str:
    """One human-readable line per column: type, allowed values or range, public hints."""
    if col.is_categorical:
        vals = ", ".join(json.dumps(_py(v)) for v in col.categories)
        s = f"{col.name} — one of: {vals}"
    else:
        lo, hi = to_json_value(col, col.lower), to_json_value(col, col.upper)
        kind = {"datetime": "ISO 8601 timestamp", "ipv4": "IPv4 address (dotted quad)"}.get(
            col.type, "integer" if isinstance(lo, int) else "number")
        s = f"{col.name} — {kind} in [{lo}, {hi}]"
        if col.rounding and col.type not in ("datetime", "ipv4") and col.rounding != 1:
            s += f", a multiple of {col.rounding:g} from {col.lower:g}"
        if col.special_values:
            s += "; common exact values: " + ", ".join(str(to_json_value(col, v)) for v in col.special_values)
        if col.scale == "log":
            s += " (heavy-tailed: most values small, a few very large)"
    if col.nullable:
        s += "; may be null"
    if col.description:
        s += f". {col.description}"
    return s


def _spec_columns(schema: Schema) -> list[dict[str, Any]]:
    """Every public column field that is set (defaults included, so the stand-in needs no schema code)."""
    out = []
    for c in schema.columns:
        d = {k: (list(map(_py, v)) if isinstance(v, tuple) else _py(v)) for k, v in asdict(c).items()
             if v is not None and not (isinstance(v, tuple | str) and len(v) == 0)}
        out.append(d)
    return out


@dataclass(frozen=True)
class Prompt:
    """Chat messages plus the number of rows asked for (and, for vary, the parents' order)."""

    messages: tuple[dict[str, str], ...]
    n_rows: int
    task: str


def vary_plan(schema: Schema, degree: float, fixed_cols: list[str]) -> tuple[int, float]:
    """How big a variation of this degree is: fields to change and the largest numeric step (share of range)."""
    free = len([c for c in schema.columns if c.name not in fixed_cols])
    n_change = max(1, min(free, int(round(degree * free))))
    step = float(np.clip(0.5 * degree, 0.01, 0.5))
    return n_change, step


class PromptBuilder:
    """Prompts for one schema; the column text and the spec's column list are built once."""

    def __init__(self, schema: Schema, dataset_description: str = ""):
        self.schema = schema
        self.desc = dataset_description or schema.description
        self.columns = ["Columns:"] + [f"{i + 1}. {column_line(c)}" for i, c in enumerate(schema.columns)]
        self.keys = ", ".join(json.dumps(c.name) for c in schema.columns)
        self._cols_json = json.dumps(_spec_columns(schema), sort_keys=True, default=_py)

    def _spec(self, obj: dict[str, Any]) -> str:
        body = json.dumps({**obj, "columns": "\x00"}, sort_keys=True, default=_py)
        return f"<{SPEC_TAG}>\n{body.replace(json.dumps(chr(0)), self._cols_json)}\n</{SPEC_TAG}>"

    @staticmethod
    def _prompt(lines: list[str], n: int, task: str) -> Prompt:
        return Prompt(({"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}),
                      n, task)

    def random(self, n: int, fixed: dict[str, Any] | None = None) -> Prompt:
        """Ask for n fresh rows; ``fixed`` pins columns (the class label of a class-conditional draw)."""
        fixed = {k: _py(v) for k, v in (fixed or {}).items()}
        lines = [f"Generate {n} rows of realistic, diverse synthetic data for the table described below. Each row "
                 "must look like a plausible record of this dataset (realistic combinations of values across "
                 "columns), rows must differ from each other, and every value must be one of the allowed values or "
                 "in range."]
        if self.desc:
            lines += ["", f"Dataset: {self.desc}"]
        lines += ["", *self.columns]
        if fixed:
            lines += ["", "In every row: " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in fixed.items()) + "."]
        lines += ["", f'Return a JSON object {{"rows": [...]}} holding exactly {n} objects with the keys {self.keys}.'
                  " No prose, no comments.", "", "A machine-readable copy of this task follows.",
                  self._spec({"task": "random", "n": n, "fixed": fixed})]
        return self._prompt(lines, n, "random")

    def vary(self, rows: list[dict[str, Any]], degree: float, fixed_cols: list[str]) -> Prompt:
        """Ask for one variation of each SYNTHETIC row; its size follows ``degree`` in [0, 1]."""
        n_change, step = vary_plan(self.schema, degree, fixed_cols)
        free = len(self.schema.columns) - len(fixed_cols)
        lines = [f"Below are {len(rows)} synthetic rows (machine-generated, not real records). For EACH row write "
                 f"ONE variation: change about {n_change} of its {free} changeable fields, chosen at random; move "
                 f"numbers by at most about {100 * step:.0f}% of the column's range; choose new categories that stay "
                 "plausible with the rest of the row."]
        if fixed_cols:
            lines.append("Never change " + ", ".join(json.dumps(c) for c in fixed_cols) + ".")
        lines.append('Copy the "id" of the row you varied into its variation.')
        if self.desc:
            lines += ["", f"Dataset: {self.desc}"]
        lines += ["", *self.columns]
        lines += ["", f"<{ROWS_TAG}>", json.dumps(rows, default=_py), f"</{ROWS_TAG}>", "",
                  f'Return a JSON object {{"rows": [...]}} holding exactly {len(rows)} objects with the keys "id", '
                  f"{self.keys}. No prose, no comments.", "",
                  "A machine-readable copy of this task follows (the rows are the ones above).",
                  self._spec({"task": "vary", "n": len(rows), "degree": round(float(degree), 4), "n_change": n_change,
                              "step": round(step, 4), "fixed_columns": list(fixed_cols)})]
        return self._prompt(lines, len(rows), "vary")


def response_json_schema(schema: Schema, with_id: bool) -> dict[str, Any]:
    """OpenAI structured-output schema (strict mode: every key required, no extra keys)."""
    props: dict[str, Any] = {"id": {"type": "integer"}} if with_id else {}
    for c in schema.columns:
        if c.is_categorical:
            p: dict[str, Any] = {"enum": [_py(v) for v in c.categories] + ([None] if c.nullable else [])}
        else:
            t = "string" if c.type in ("datetime", "ipv4") else (
                "integer" if isinstance(to_json_value(c, c.lower), int) else "number")
            p = {"type": [t, "null"] if c.nullable else t}
        props[c.name] = p
    row = {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}
    return {"name": "synthetic_rows", "strict": True,
            "schema": {"type": "object", "properties": {"rows": {"type": "array", "items": row}},
                       "required": ["rows"], "additionalProperties": False}}


def rows_exactly(json_schema: dict[str, Any], n: int) -> dict[str, Any]:
    """A copy of a :func:`response_json_schema` whose array holds exactly ``n`` rows (for servers whose grammar
    enforces array bounds, such as llama.cpp's; OpenAI's strict mode rejects them)."""
    inner = json_schema["schema"]
    rows = {**inner["properties"]["rows"], "minItems": int(n), "maxItems": int(n)}
    return {**json_schema, "schema": {**inner, "properties": {**inner["properties"], "rows": rows}}}


def row_token_estimate(schema: Schema) -> int:
    """Generous tokens for one row as a model writes it (pretty-printed JSON, the longest allowed values): about
    2 characters per token plus the indentation, which local models emit as separate tokens."""
    chars = 4
    for c in schema.columns:
        if c.is_categorical:
            v = max((len(json.dumps(_py(x))) for x in c.categories), default=4)
        elif c.type in ("datetime", "ipv4"):
            v = 28
        else:
            v = 14
        chars += len(json.dumps(c.name)) + v + 4
    return chars // 2 + 2 * len(schema.columns) + 8


def parse_spec(text: str) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """The machine-readable block (and vary rows) of a prompt; used by the loopback stand-in."""
    m = re.search(rf"<{SPEC_TAG}>\s*(.*?)\s*</{SPEC_TAG}>", text, re.S)
    if not m:
        raise ValueError(f"the prompt has no <{SPEC_TAG}> block")
    spec = json.loads(m.group(1))
    r = re.search(rf"<{ROWS_TAG}>\s*(.*?)\s*</{ROWS_TAG}>", text, re.S)
    return spec, (json.loads(r.group(1)) if r else None)


# ------------------------------------------------------------------------------------------------
# parsing model output


@dataclass
class Parsed:
    records: list[Any]
    truncated: bool = False  # the JSON was cut off; the complete records before the cut are kept
    malformed: bool = False  # no JSON array of rows could be found at all


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.S)


def parse_rows(text: str | None) -> Parsed:
    """Row objects from a model reply: plain JSON, ``{"rows": [...]}``, fenced or wrapped in prose, or
    truncated (every complete object before the cut is kept)."""
    if not text:
        return Parsed([], malformed=True)
    fence = _FENCE.search(text)
    body = fence.group(1) if fence else text
    body = body.strip()
    try:
        obj = json.loads(body)
        if isinstance(obj, dict):
            obj = obj.get("rows", obj.get("data", [obj] if obj else []))
        if isinstance(obj, list):
            return Parsed(obj)
    except json.JSONDecodeError:
        pass
    return _salvage(body)


def _salvage(body: str) -> Parsed:
    """Walk the first array of objects element by element with a raw JSON decoder."""
    m = re.search(r'"rows"\s*:\s*\[', body)
    start = m.end() if m else body.find("[") + 1
    if start <= 0:
        return Parsed([], malformed=True)
    dec = json.JSONDecoder()
    out: list[Any] = []
    i, n = start, len(body)
    while i < n:
        while i < n and body[i] in " \t\r\n,":
            i += 1
        if i >= n:
            return Parsed(out, truncated=True, malformed=not out)
        if body[i] == "]":
            return Parsed(out)
        try:
            obj, i = dec.raw_decode(body, i)
        except json.JSONDecodeError:
            return Parsed(out, truncated=True, malformed=not out)
        out.append(obj)
    return Parsed(out, truncated=True, malformed=not out)


# ------------------------------------------------------------------------------------------------
# validation and repair


@dataclass
class RepairStats:
    """What happened to the rows a model returned."""

    received: int = 0
    valid: int = 0  # accepted as returned
    repaired: int = 0  # accepted after a fix (clip/snap/case/label)
    dropped: int = 0
    reasons: Counter = field(default_factory=Counter)  # "column: reason" -> rows

    def add(self, other: RepairStats) -> None:
        self.received += other.received
        self.valid += other.valid
        self.repaired += other.repaired
        self.dropped += other.dropped
        self.reasons.update(other.reasons)


_NULLS = {"", "null", "none", "nan", "na", "n/a"}


class RowChecker:
    """Checks model rows against the public schema: repair what is near, drop what is not."""

    def __init__(self, schema: Schema):
        self.schema = schema
        self._exact = {c.name: {str(v): v for v in c.categories} for c in schema.columns if c.is_categorical}
        self._fold = {c.name: {str(v).strip().casefold(): v for v in c.categories}
                      for c in schema.columns if c.is_categorical}

    def value(self, col: Column, v: Any) -> tuple[Any, str]:
        """(internal value, 'ok' | 'repaired' | reason for dropping)."""
        if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and v.strip().lower()
                                                                      in _NULLS):
            return (None, "ok") if col.nullable else (None, "missing")
        if col.is_categorical:
            key = str(v)
            if key in self._exact[col.name]:
                return self._exact[col.name][key], "ok"
            folded = key.strip().casefold()
            if folded in self._fold[col.name]:
                return self._fold[col.name][folded], "repaired"
            return None, "unknown category"
        x = self._number(col, v)
        if x is None:
            return None, "not a number"
        y = float(snap(col, np.array([x]))[0])
        tol = 1e-9 * max(1.0, abs(col.upper - col.lower))
        return y, ("ok" if abs(y - x) <= tol else "repaired")

    @staticmethod
    def _number(col: Column, v: Any) -> float | None:
        if isinstance(v, bool):
            return None
        if isinstance(v, int | float):
            x = float(v)
        elif isinstance(v, str):
            s = v.strip()
            try:
                if col.type == "datetime":
                    x = epoch_seconds(s)
                elif col.type == "ipv4":
                    x = float(int(ipaddress.IPv4Address(s)))
                else:
                    x = float(s.replace(",", "").replace("$", "").replace("%", ""))
            except (ValueError, ipaddress.AddressValueError):
                return None
        else:
            return None
        return x if math.isfinite(x) else None

    def check(self, records: list[Any], fixed: dict[str, Any] | None = None
              ) -> tuple[list[dict[str, Any] | None], RepairStats]:
        """One entry per record: the repaired row (internal values) or None if dropped.

        Column by column (numbers snapped in one vectorised call): replies hold thousands of rows."""
        st = RepairStats(received=len(records))
        fixed = fixed or {}
        n = len(records)
        is_obj = [isinstance(r, dict) for r in records]
        repaired = np.zeros(n, dtype=bool)
        reason: list[str | None] = [None if ok else "row: not a JSON object" for ok in is_obj]
        values: dict[str, list[Any]] = {}
        for c in self.schema.columns:
            raw = [r.get(c.name) if ok else None for r, ok in zip(records, is_obj)]
            if c.name in fixed:
                want = fixed[c.name]
                repaired |= np.array([str(v).strip() != str(want) for v in raw], dtype=bool)
                values[c.name] = [want] * n
            elif c.is_categorical:
                values[c.name] = self._categorical(c, raw, repaired, reason)
            else:
                values[c.name] = self._numeric(c, raw, repaired, reason)
        out: list[dict[str, Any] | None] = []
        for i in range(n):
            if reason[i] is not None:
                st.dropped += 1
                st.reasons[reason[i]] += 1
                out.append(None)
                continue
            row = {name: vals[i] for name, vals in values.items()}
            if "id" in records[i]:
                row["__id__"] = records[i]["id"]
            st.repaired += int(repaired[i])
            st.valid += int(not repaired[i])
            out.append(row)
        return out, st

    @staticmethod
    def _is_null(v: Any) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and
                                                                         v.strip().lower() in _NULLS)

    def _categorical(self, c: Column, raw: list[Any], repaired: np.ndarray, reason: list[str | None]) -> list[Any]:
        exact, fold = self._exact[c.name], self._fold[c.name]
        out: list[Any] = []
        for i, v in enumerate(raw):
            key = str(v)
            if key in exact and v is not None:
                out.append(exact[key])
            elif self._is_null(v):
                out.append(None)
                if not c.nullable and reason[i] is None:
                    reason[i] = f"{c.name}: missing"
            elif key.strip().casefold() in fold:
                out.append(fold[key.strip().casefold()])
                repaired[i] = True
            else:
                out.append(None)
                if reason[i] is None:
                    reason[i] = f"{c.name}: unknown category"
        return out

    def _numeric(self, c: Column, raw: list[Any], repaired: np.ndarray, reason: list[str | None]) -> list[Any]:
        x = np.full(len(raw), np.nan)
        null = np.zeros(len(raw), dtype=bool)
        for i, v in enumerate(raw):
            t = type(v)
            if t is int or t is float:
                x[i] = v
            elif self._is_null(v):
                null[i] = True
            else:
                y = self._number(c, v)
                x[i] = np.nan if y is None else y
        bad = ~np.isfinite(x) & ~null
        for i in np.flatnonzero(bad | (null & (not c.nullable))):
            if reason[i] is None:
                reason[i] = f"{c.name}: {'missing' if null[i] else 'not a number'}"
        good = ~bad & ~null
        y = np.where(good, x, np.nan)
        if good.any():
            y[good] = snap(c, x[good])
            repaired[good] |= np.abs(y[good] - x[good]) > 1e-9 * max(1.0, abs(c.upper - c.lower))
        return [None if not g else float(v) for g, v in zip(good, y)]


def frame(rows: list[dict[str, Any]], schema: Schema) -> pd.DataFrame:
    """Internal frame: categorical columns hold the schema's category objects, numbers are floats."""
    data = {c.name: [r[c.name] for r in rows] for c in schema.columns}
    df = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in data.items()}, columns=schema.names)
    for c in schema.columns:
        if not c.is_categorical:
            df[c.name] = pd.to_numeric(df[c.name], errors="coerce").astype(float)
    return df
