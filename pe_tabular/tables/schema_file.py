"""The schema file's declared shape, checked before anything is built from it.

A schema file is written by hand as often as by ``schema infer``; a wrong field must give a message
that names the column and the field and says what is expected — never a traceback from deep inside
(``lower: "one"`` used to say "Unknown datetime string format", ``categories: "cauc"`` "duplicate
categories", ``nullable: "maybe"`` was accepted). The declaration below is the one place that says
what each field may hold; ``Schema.from_dict`` calls :func:`check_schema_dict` first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from pe_tabular.tables.errors import SchemaError

Check = Callable[[Any, dict[str, Any]], str | None]  # value, the column -> None if fine, else what is expected


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))


def _number(v: Any, col: dict[str, Any]) -> str | None:
    return None if _is_number(v) else "a finite number"


def _bound(v: Any, col: dict[str, Any]) -> str | None:
    if _is_number(v):
        return None
    if isinstance(v, str) and col.get("type") == "datetime":
        try:
            pd.Timestamp(v)
            return None
        except (ValueError, TypeError):
            return "an ISO 8601 date/time (e.g. '2016-04-11T00:00:00') or epoch seconds"
    return "a finite number" + (" or an ISO 8601 date/time" if col.get("type") == "datetime" else "")


def _positive(v: Any, col: dict[str, Any]) -> str | None:
    return None if _is_number(v) and v > 0 else "a number > 0"


def _non_negative(v: Any, col: dict[str, Any]) -> str | None:
    return None if _is_number(v) and v >= 0 else "a number >= 0"


def _bool(v: Any, col: dict[str, Any]) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def _text(v: Any, col: dict[str, Any]) -> str | None:
    return None if isinstance(v, str) else "a string"


def _name(v: Any, col: dict[str, Any]) -> str | None:
    return None if isinstance(v, str) and v != "" else "a non-empty string"


def _categories(v: Any, col: dict[str, Any]) -> str | None:
    if not isinstance(v, list) or not v:
        return "a non-empty list of values, e.g. [\"red\", \"green\"]"
    if any(isinstance(x, dict | list) or x is None for x in v):
        return "a list of plain values (strings, numbers or booleans)"
    return None


def _numbers(v: Any, col: dict[str, Any]) -> str | None:
    return None if isinstance(v, list) and all(_is_number(x) for x in v) else "a list of finite numbers"


def _one_of(*choices: str) -> Check:
    def check(v: Any, col: dict[str, Any]) -> str | None:
        return None if v in choices else "one of " + ", ".join(repr(c) for c in choices)
    return check


#: what every column field may hold (None is allowed for the optional ones: the field is then absent)
COLUMN_FIELDS: dict[str, Check] = {
    "name": _name, "type": _text, "categories": _categories, "lower": _bound, "upper": _bound,
    "rounding": _positive, "special_values": _numbers, "scale": _one_of("linear", "log"), "nullable": _bool,
    "weight": _non_negative, "description": _text,
}
REQUIRED = ("name", "type")


def check_schema_dict(d: Any) -> None:
    """Raise :class:`SchemaError` naming the column and field of the first value that does not fit."""
    if not isinstance(d, dict):
        raise SchemaError(f"a schema must be a mapping with a 'columns' list, got {type(d).__name__}")
    cols = d.get("columns")
    if not isinstance(cols, list) or not cols:
        raise SchemaError("the schema's 'columns' must be a non-empty list of column mappings, e.g. "
                          "[{\"name\": \"age\", \"type\": \"integer\", \"lower\": 0, \"upper\": 120}]")
    for i, col in enumerate(cols):
        if not isinstance(col, dict):
            raise SchemaError(f"schema column #{i}: must be a mapping with 'name' and 'type', got {type(col).__name__}")
        label = repr(col["name"]) if isinstance(col.get("name"), str) else f"#{i}"
        for key in REQUIRED:
            if key not in col:
                raise SchemaError(f"schema column {label}: every column needs {key!r}")
        for key, value in col.items():
            check = COLUMN_FIELDS.get(key)
            if check is None or (value is None and key not in REQUIRED):
                continue  # unknown keys are reported by Column.from_dict with the allowed list
            expected = check(value, col)
            if expected is not None:
                raise SchemaError(f"schema column {label}: field {key!r} must be {expected}, got {value!r}")
    for key, check in (("label", _name), ("description", _text)):
        if d.get(key) is not None and (expected := check(d[key], {})) is not None:
            raise SchemaError(f"schema field {key!r} must be {expected}, got {d[key]!r}")
    shares = d.get("label_shares")
    if shares is not None and not (isinstance(shares, dict) and all(_is_number(v) and v >= 0 for v in shares.values())):
        raise SchemaError("schema field 'label_shares' must map each class to a number >= 0")
