"""Public column types and domains, and validation of private input against them.

A schema is *public knowledge*: categories, bounds, rounding and special values come from the data
owner's documentation or a public table, never silently from the private data. The only way to
derive them from private data is ``pe_tabular.tables.schema_dp.infer_dp``, which charges the ledger.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.io_utils import atomic_write_text
from pe_tabular.tables.errors import SchemaError
from pe_tabular.tables.schema_file import check_schema_dict

CATEGORICAL_TYPES = {"categorical", "boolean", "protocol", "tcp_flags"}
NUMERIC_TYPES = {"integer", "float", "datetime", "port", "timestamp", "duration", "count", "ipv4"}
TYPES = CATEGORICAL_TYPES | NUMERIC_TYPES
INTEGER_TYPES = {"integer", "port", "count", "ipv4", "timestamp"}




class ValidationError(ValueError):
    """Private input that does not fit the public schema; names column(s) and first offending rows."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    categories: tuple[Any, ...] | None = None
    lower: float | None = None
    upper: float | None = None
    rounding: float | None = None  # public precision grid (1 for integers)
    special_values: tuple[float, ...] = ()  # public point masses worth landing on exactly (e.g. 0)
    scale: str = "linear"  # or "log" for heavy-tailed sizes
    nullable: bool = False
    weight: float = 1.0  # relative weight in the distance
    description: str = ""

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise SchemaError(f"column {self.name!r}: unknown type {self.type!r}; use one of {sorted(TYPES)}")
        if self.type in CATEGORICAL_TYPES:
            if self.type == "boolean" and self.categories is None:
                object.__setattr__(self, "categories", (False, True))
            if not self.categories:
                raise SchemaError(f"column {self.name!r}: a {self.type} column needs its public 'categories'")
            if len(set(map(str, self.categories))) != len(self.categories):
                raise SchemaError(f"column {self.name!r}: duplicate categories")
        else:
            if self.lower is None or self.upper is None:
                raise SchemaError(f"column {self.name!r}: a {self.type} column needs public 'lower' and 'upper' "
                                  "bounds (from documentation, a public table, or `schema infer --dp-epsilon`)")
            if not (math.isfinite(self.lower) and math.isfinite(self.upper)) or self.lower >= self.upper:
                raise SchemaError(f"column {self.name!r}: need finite lower < upper, got {self.lower}, {self.upper}")
            if self.type in INTEGER_TYPES and self.rounding is None:
                object.__setattr__(self, "rounding", 1.0)
        if self.scale not in ("linear", "log"):
            raise SchemaError(f"column {self.name!r}: scale must be 'linear' or 'log', got {self.scale!r}")
        if self.weight < 0:
            raise SchemaError(f"column {self.name!r}: weight must be >= 0")

    @property
    def is_categorical(self) -> bool:
        return self.type in CATEGORICAL_TYPES

    def to_dict(self) -> dict[str, Any]:
        # identity tests, not `in (None, (), "", False)`: 0.0 == False would drop a lower bound of 0
        d = {k: v for k, v in asdict(self).items()
             if k == "name" or not (v is None or v is False or (isinstance(v, (str, tuple)) and not v))}
        if self.weight == 1.0:
            d.pop("weight", None)
        if self.scale == "linear":
            d.pop("scale", None)
        for k in ("categories", "special_values"):
            if k in d:
                d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Column:
        known = set(cls.__dataclass_fields__)
        extra = set(d) - known
        name = d.get("name", "?")
        if extra:
            raise SchemaError(f"column {name!r}: unknown schema keys {sorted(extra)}; allowed: {sorted(known)}")
        if "type" not in d or "name" not in d:
            raise SchemaError(f"column {name!r}: every column needs 'name' and 'type'")
        d = dict(d)
        for k in ("categories", "special_values"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        for k in ("lower", "upper"):
            if isinstance(d.get(k), str):
                d[k] = pd.Timestamp(d[k]).value / 1e9  # datetimes: ISO strings to epoch seconds
        return cls(**d)


@dataclass(frozen=True)
class Schema:
    columns: tuple[Column, ...]
    label: str | None = None  # class column for class-conditional runs / TSTR target
    label_shares: dict[str, float] | None = None  # public label shares, if known
    description: str = ""
    dp_cost: dict[str, Any] | None = None  # ledger of a DP schema estimation (charged to the run)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SchemaError(f"duplicate column names in schema: {dup}")
        if not names:
            raise SchemaError("schema has no columns")
        if self.label is not None and self.label not in names:
            raise SchemaError(f"label column {self.label!r} is not in the schema; columns are {names}")
        if self.label is not None and not self[self.label].is_categorical:
            raise SchemaError(f"label column {self.label!r} must be categorical")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __getitem__(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"column {name!r} is not in the schema; columns are {self.names}")

    def with_label(self, label: str | None) -> Schema:
        return replace(self, label=label)

    # -- (de)serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"columns": [c.to_dict() for c in self.columns]}
        for k in ("label", "label_shares", "description", "dp_cost"):
            if getattr(self, k):
                d[k] = getattr(self, k)
        if self.meta:
            d["meta"] = self.meta
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schema:
        check_schema_dict(d)  # the declared shape first: errors name the column and field
        extra = set(d) - {"columns", "label", "label_shares", "description", "dp_cost", "meta"}
        if extra:
            raise SchemaError(f"unknown top-level schema keys {sorted(extra)}")
        return cls(tuple(Column.from_dict(c) for c in d["columns"]), d.get("label"), d.get("label_shares"),
                   d.get("description", ""), d.get("dp_cost"), d.get("meta", {}))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_jsonable) + "\n"

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix in (".yml", ".yaml"):
            import yaml

            return atomic_write_text(path, yaml.safe_dump(json.loads(self.to_json()), sort_keys=False))
        return atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"--schema {path} does not exist; write one with `pe-tabular schema infer`")
        text = path.read_text()
        try:
            if path.suffix in (".yml", ".yaml"):
                import yaml

                d = yaml.safe_load(text)
            else:
                d = json.loads(text)
        except (json.JSONDecodeError, ValueError) as e:
            kind = "YAML" if path.suffix in (".yml", ".yaml") else "JSON"
            raise SchemaError(f"--schema {path} is not valid {kind}: {e}") from None
        return cls.from_dict(d)

    # -- SDV ----------------------------------------------------------------------------------
    def to_sdv_metadata(self, table_name: str = "table", *, internal: bool = False) -> Any:
        """SDV 2.x ``Metadata``. Numbers carry their public bounds (``range_min``/``range_max``) and, where
        the rounding grid is a power of ten, ``decimal_places``, so SDV never samples outside the public
        domain. ``internal=True`` describes the frames backends see (datetimes and addresses as numbers,
        booleans as categories) — what a backend fitting SDV on public data needs."""
        from sdv.metadata import Metadata

        cols: dict[str, dict[str, Any]] = {}
        for c in self.columns:
            if c.type == "boolean" and not internal:
                cols[c.name] = {"sdtype": "boolean"}
            elif c.is_categorical:
                cols[c.name] = {"sdtype": "categorical"}
            elif c.type == "datetime" and not internal:
                cols[c.name] = {"sdtype": "datetime"}
            else:
                cols[c.name] = {"sdtype": "numerical", "range_min": float(c.lower), "range_max": float(c.upper)}
                places = _decimal_places(c.rounding)
                if places is not None:
                    cols[c.name]["decimal_places"] = places
        return Metadata.load_from_dict({"tables": {table_name: {"columns": cols}}})

    @classmethod
    def from_sdv_metadata(cls, metadata: Any, public: pd.DataFrame, table_name: str | None = None) -> Schema:
        """Schema from SDV metadata + a PUBLIC table (SDV metadata holds types, not domains)."""
        d = metadata.to_dict()["tables"]
        table = d[table_name or next(iter(d))]
        types = {"categorical": "categorical", "boolean": "boolean", "datetime": "datetime"}
        cols = []
        for name, spec in table["columns"].items():
            t = types.get(spec["sdtype"])
            if t is None:  # numerical: integers by decimal_places = 0 (or SDV 1.x's computer_representation)
                rep = str(spec.get("computer_representation", "Float")).lower()
                t = "integer" if spec.get("decimal_places") == 0 or rep.startswith(("int", "uint")) else "float"
            cols.append(infer_column(public[name], name, t))
        return cls(tuple(cols))


def _decimal_places(rounding: float | None) -> int | None:
    """Digits after the point of a power-of-ten rounding grid (1 → 0, 0.01 → 2); None for other grids."""
    if rounding is None or rounding <= 0:
        return None
    places = -math.log10(rounding)
    return max(0, round(places)) if abs(places - round(places)) < 1e-9 else None


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ------------------------------------------------------------------------------------------------
# inference from a PUBLIC table


def infer_column(s: pd.Series, name: str, type_: str | None = None, max_categories: int = 200) -> Column:
    """Column spec from a *public* column (bounds = observed min/max, categories = observed values)."""
    nullable = bool(s.isna().any())
    v = s.dropna()
    if type_ is None:
        if pd.api.types.is_bool_dtype(v):
            type_ = "boolean"
        elif pd.api.types.is_datetime64_any_dtype(v):
            type_ = "datetime"
        elif pd.api.types.is_integer_dtype(v):
            type_ = "integer" if v.nunique() > 20 else "categorical"
        elif pd.api.types.is_float_dtype(v):
            type_ = "integer" if np.all(np.mod(v, 1) == 0) and v.nunique() > 20 else (
                "float" if v.nunique() > 20 else "categorical")
        else:
            parsed = pd.to_numeric(v, errors="coerce")
            type_ = "float" if parsed.notna().all() and v.nunique() > 20 else "categorical"
    if type_ in CATEGORICAL_TYPES:
        cats = sorted(v.unique().tolist(), key=str)
        if len(cats) > max_categories:
            raise SchemaError(f"column {name!r} has {len(cats)} distinct values; declare it numeric or give categories")
        return Column(name, type_, categories=tuple(cats), nullable=nullable)
    if type_ == "datetime":
        t = pd.to_datetime(v).astype("int64") / 1e9
        return Column(name, "datetime", lower=float(t.min()), upper=float(t.max()) + 1, nullable=nullable)
    x = pd.to_numeric(v).astype(float)
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        hi = lo + 1
    return Column(name, type_, lower=lo, upper=hi, rounding=1.0 if type_ == "integer" else None,
                  scale="log" if lo >= 0 and hi > 1000 * max(np.median(x), 1) else "linear", nullable=nullable)


def infer_public(df: pd.DataFrame, label: str | None = None) -> Schema:
    """Schema from a PUBLIC table. Never call this on private data: it reads categories and bounds."""
    return Schema(tuple(infer_column(df[c], str(c)) for c in df.columns), label=label)


# ------------------------------------------------------------------------------------------------
# validation of private input


def _rows(mask: np.ndarray, limit: int = 5) -> str:
    idx = np.flatnonzero(mask)
    s = ", ".join(str(i) for i in idx[:limit])
    return f"rows {s}{' ...' if idx.size > limit else ''} ({idx.size} in all)"


def validate(df: pd.DataFrame, schema: Schema, on_invalid: str = "error") -> pd.DataFrame:
    """Check private input against the public schema *before* any budget is spent.

    on_invalid: ``error`` (default) raises naming the column and first rows; ``drop`` removes
    offending rows; ``clip`` clips numbers into bounds and drops the rest. Row numbers are 0-based
    data rows (the header is not counted)."""
    if on_invalid not in ("error", "drop", "clip"):
        raise ValidationError(f"--on-invalid must be error, drop or clip, got {on_invalid!r}")
    if len(df) == 0:
        raise ValidationError("the private data has no rows (empty file?)")
    cols = [str(c) for c in df.columns]
    dups = sorted({c for c in cols if cols.count(c) > 1})
    if dups:
        raise ValidationError(f"duplicate columns in the private data: {dups}; rename or drop them")
    missing = [c for c in schema.names if c not in cols]
    if missing:
        raise ValidationError(f"columns {missing} are in the schema but not in the private data "
                              f"(which has {cols[:20]}); fix the header or the schema")
    df = df[schema.names].reset_index(drop=True)
    bad_any = np.zeros(len(df), dtype=bool)
    out = {}
    problems = []
    for c in schema.columns:
        s = df[c.name]
        null = s.isna().to_numpy()
        if c.is_categorical:
            allowed = {str(v) for v in c.categories}
            as_str = s.astype(str).str.strip()
            unknown = ~as_str.isin(allowed).to_numpy() & ~null
            if unknown.any():
                vals = sorted(set(as_str[unknown].tolist()))[:5]
                problems.append((c.name, unknown, f"unknown categories {vals} in {_rows(unknown)}; add them to "
                                 "the schema's public categories or use --on-invalid drop"))
            bad = unknown
            lookup = {str(v): v for v in c.categories}
            val = as_str.map(lookup).where(~null, None)
        else:
            if c.type == "datetime":
                num = pd.to_datetime(s, errors="coerce")
                wrong = num.isna().to_numpy() & ~null
                num = num.astype("int64").astype(float) / 1e9
                num[num.isna() | wrong | null] = np.nan
            else:
                num = pd.to_numeric(s, errors="coerce").astype(float)
                wrong = num.isna().to_numpy() & ~null
            if wrong.any():
                problems.append((c.name, wrong, f"non-numeric values {sorted(set(s[wrong].astype(str)))[:5]} "
                                 f"in {_rows(wrong)}; fix them or use --on-invalid drop"))
            x = num.to_numpy()
            oob = ~np.isnan(x) & ((x < c.lower) | (x > c.upper))
            if oob.any() and on_invalid == "clip":
                x = np.clip(x, c.lower, c.upper)
                oob = np.zeros_like(oob)
            if oob.any():
                problems.append((c.name, oob, f"values outside the public bounds [{c.lower}, {c.upper}] in "
                                 f"{_rows(oob)}; widen the bounds or use --on-invalid clip"))
            bad = wrong | oob
            val = pd.Series(x)
        if null.any() and not c.nullable:
            problems.append((c.name, null, f"missing values in non-nullable column in {_rows(null)}; "
                             "mark the column nullable in the schema or use --on-invalid drop"))
            bad = bad | null
        bad_any |= bad
        out[c.name] = val
    if problems and on_invalid == "error":
        msg = "; ".join(f"column {name!r}: {m}" for name, _, m in problems[:10])
        raise ValidationError(f"private data does not fit the schema: {msg}")
    res = pd.DataFrame(out)
    if bad_any.any():
        res = res[~bad_any].reset_index(drop=True)
        if len(res) == 0:
            raise ValidationError("no valid rows remain after --on-invalid " + on_invalid)
    return res
