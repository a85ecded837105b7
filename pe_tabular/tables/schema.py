"""Public column types and domains, and validation of private input against them.

A schema is *public knowledge*: categories, bounds, rounding and special values come from the data
owner's documentation or a public table, never silently from the private data. The only way to
derive them from private data is ``pe_tabular.tables.schema_dp.infer_dp``, which charges the ledger.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pe_tabular.io_utils import atomic_write_text, epoch_seconds
from pe_tabular.tables.cells import UNKNOWN, CategoryLookup, natural
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
    special_values: tuple[float, ...] = ()  # point masses: own bins and exact output values (e.g. 0)
    bin_edges: tuple[float, ...] = ()  # interior edges of a number's interval bins (else a public grid)
    other: Any = None  # the category that takes values outside ``categories`` (instead of dropping rows)
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
            if self.other is not None and str(self.other) not in set(map(str, self.categories)):
                raise SchemaError(f"column {self.name!r}: 'other' ({self.other!r}) must be one of its categories")
        else:
            if self.lower is None or self.upper is None:
                raise SchemaError(f"column {self.name!r}: a {self.type} column needs public 'lower' and 'upper' "
                                  "bounds (from documentation, a public table, or `schema infer --dp-epsilon`)")
            if not (math.isfinite(self.lower) and math.isfinite(self.upper)) or self.lower >= self.upper:
                raise SchemaError(f"column {self.name!r}: need finite lower < upper, got {self.lower}, {self.upper}")
            if self.type in INTEGER_TYPES and self.rounding is None:
                object.__setattr__(self, "rounding", 1.0)
            if list(self.bin_edges) != sorted(set(self.bin_edges)) or any(
                    not math.isfinite(e) for e in self.bin_edges):
                raise SchemaError(f"column {self.name!r}: 'bin_edges' must be finite and strictly increasing")
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
        for k in ("categories", "special_values", "bin_edges"):
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
        for k in ("categories", "special_values", "bin_edges"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        for k in ("lower", "upper"):
            if isinstance(d.get(k), str):
                d[k] = epoch_seconds(d[k])  # datetimes: ISO strings to epoch seconds
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
                places = decimal_places(c.rounding)
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


def decimal_places(rounding: float | None) -> int | None:
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

OTHER = "(other)"  # the other-bucket category `schema infer` adds for values it does not list
MAX_CATEGORIES = 200
DISCRETE_MAX = 20  # a number column with at most this many distinct values is a category (numeric order)
SPECIAL_SHARE = 0.05  # `schema infer` proposes values holding at least this share of rows as special values
MAX_SPECIAL = 10
_ISO_DATE = r"^\s*\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?\s*$"


def category_order(values: list[Any]) -> list[Any]:
    """Categories in numeric order when they are numbers ('2' before '10'), else in text order."""
    def key(v: Any) -> tuple[int, float, str]:
        try:
            return (0, float(v), str(v)) if not isinstance(v, bool) else (1, 0.0, str(v))
        except (TypeError, ValueError):
            return (1, 0.0, str(v))

    return sorted(values, key=key)


def looks_like_dates(v: pd.Series) -> bool:
    """Text that is ISO 8601 dates/times in every non-empty cell (so numbers are never taken for dates)."""
    if v.empty or not (pd.api.types.is_object_dtype(v) or pd.api.types.is_string_dtype(v)):
        return False
    return bool(v.astype(str).str.match(_ISO_DATE).all())


def parse_dates(s: pd.Series) -> pd.Series:
    """Epoch seconds (float, NaN where empty or unparseable) of dates given as text or datetimes."""
    if pd.api.types.is_datetime64_any_dtype(s):
        d = s
    else:
        d = pd.to_datetime(s, errors="coerce", utc=True, format="ISO8601") if s.dtype == object else \
            pd.to_datetime(s, errors="coerce", utc=True)
    return epoch_seconds(d)


def outward(lo: float, hi: float) -> tuple[float, float]:
    """Bounds rounded outward to the leading digit of the span (so new data a little beyond the seen range
    still fits); a non-negative column keeps a non-negative lower bound."""
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    step = 10.0 ** math.floor(math.log10(span))
    a, b = math.floor(lo / step) * step, math.ceil(hi / step) * step
    if a == lo and lo != 0:
        a -= step
    if b == hi:
        b += step
    if lo >= 0 > a:
        a = 0.0
    return float(a), float(b)


def decimal_rounding(x: np.ndarray, max_places: int = 4) -> float | None:
    """The coarsest power-of-ten grid every value sits on (1, 0.1, ..., 1e-4), or None."""
    for k in range(0, max_places + 1):
        scaled = x * 10.0**k
        if np.allclose(scaled, np.round(scaled), rtol=0, atol=1e-6):
            return 10.0**-k
    return None


DATE_GRIDS = (86400.0, 3600.0, 60.0, 1.0)  # a day, an hour, a minute, a second (epoch seconds, UTC)


def on_grid(x: np.ndarray, grid: float) -> np.ndarray:
    """Which values sit on multiples of ``grid`` (up to float error)."""
    scaled = np.asarray(x, float) / grid
    return np.abs(scaled - np.round(scaled)) <= 1e-6


def date_grid(x: np.ndarray) -> float | None:
    """The coarsest of a day, an hour, a minute or a second that every epoch-second value sits on, or None
    (sub-second times). Dates written without a time sit on the day grid; the synthetic ones then do too."""
    return next((g for g in DATE_GRIDS if on_grid(x, g).all()), None)


def snap_outward(lower: float, upper: float, grid: float) -> tuple[float, float]:
    """Bounds moved outward onto multiples of ``grid`` (a grid counts from the lower bound), without the float
    error of 0.3 / 0.1 turning 0.3 into 0.30000000000000004."""
    lo, hi = math.floor(lower / grid + 1e-9) * grid, math.ceil(upper / grid - 1e-9) * grid
    places = decimal_places(grid)
    return (round(lo, places), round(hi, places)) if places is not None else (lo, hi)


def _all_bool(v: pd.Series) -> bool:
    """Booleans only: a bool dtype, or an object column of True/False (what pandas makes of a boolean column
    with a missing value), so one missing value does not change the column's type."""
    if pd.api.types.is_bool_dtype(v):
        return True
    return bool(len(v)) and pd.api.types.is_object_dtype(v) and all(isinstance(x, bool | np.bool_) for x in v)


def infer_type(v: pd.Series) -> str:
    """A column type from a PUBLIC column's values (non-null)."""
    if _all_bool(v):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(v) or looks_like_dates(v):
        return "datetime"
    x = pd.to_numeric(v, errors="coerce")
    if v.empty or x.notna().sum() < len(v):
        return "categorical"
    if x.nunique() <= DISCRETE_MAX:
        return "categorical"
    return "integer" if np.all(np.mod(x.to_numpy(float), 1) == 0) else "float"


def infer_column(s: pd.Series, name: str, type_: str | None = None, max_categories: int = MAX_CATEGORIES) -> Column:
    """Column spec from a *public* column: categories = observed values in numeric or text order (values
    beyond ``max_categories``, or seen once in a long tail, go to an explicit other bucket); numbers get
    bounds rounded outward from the observed range, the file's decimal grid, and the values holding ≥ 5 % of
    the rows as special values (point masses); ISO dates become datetimes."""
    nullable = bool(s.isna().any())
    v = s.dropna()
    type_ = type_ or infer_type(v)
    if type_ not in TYPES:
        raise SchemaError(f"column {name!r}: unknown type {type_!r}; use one of {sorted(TYPES)}")
    if type_ in CATEGORICAL_TYPES:
        if type_ == "boolean" and _all_bool(v):
            return Column(name, type_, nullable=nullable)
        vc = v.value_counts()  # labels as the values are written: 12, not the 12.0 of a float column with NaN
        vc.index = pd.Index([natural(u) for u in vc.index], dtype=object)
        vc = vc.groupby(level=0, sort=False).sum().sort_values(ascending=False, kind="stable")
        if len(vc) <= max_categories:
            cats, other = category_order(vc.index.tolist()), None
        else:  # long tail: the most frequent repeated values, the rest in one named bucket
            keep = vc[vc >= 2].index[: max_categories - 1].tolist()
            other = OTHER if OTHER not in set(map(str, keep)) else OTHER + "_"
            cats = category_order(keep) + [other]
        if not cats:
            cats, other = [OTHER], OTHER
        return Column(name, type_, categories=tuple(cats), nullable=nullable, other=other)
    if v.empty:
        raise SchemaError(f"column {name!r} is entirely missing: no {type_} values to infer bounds from; give its "
                          "bounds in the schema (and nullable: true), or type it categorical")
    x = parse_dates(v).dropna() if type_ == "datetime" else pd.to_numeric(v, errors="coerce").dropna().astype(float)
    if x.empty:
        raise SchemaError(f"column {name!r}: no {type_} values to infer bounds from; give its bounds in the schema")
    xv = x.to_numpy(float)
    lo, hi = outward(float(xv.min()), float(xv.max()))
    rounding = 1.0 if type_ in INTEGER_TYPES else (date_grid(xv) if type_ == "datetime" else decimal_rounding(xv))
    if type_ == "datetime" and rounding:
        lo, hi = snap_outward(lo, hi, rounding)
    vc = x.value_counts(normalize=True)
    special = tuple(float(u) for u in sorted(vc[vc >= SPECIAL_SHARE].index[:MAX_SPECIAL]))
    med = float(np.median(xv))
    scale = "log" if type_ != "datetime" and lo >= 0 and hi > 1000 * max(med, 1) else "linear"
    return Column(name, type_, lower=lo, upper=hi, rounding=rounding, special_values=special, scale=scale,
                  nullable=nullable)


def infer_public(df: pd.DataFrame, label: str | None = None, types: dict[str, str] | None = None) -> Schema:
    """Schema from a PUBLIC table. Never call this on private data: it reads categories and bounds.
    ``types`` overrides the inferred type of the columns it names."""
    types = types or {}
    unknown = set(types) - {str(c) for c in df.columns}
    if unknown:
        raise SchemaError(f"types given for columns {sorted(unknown)} that the table does not have")
    return Schema(tuple(infer_column(df[c], str(c), types.get(str(c))) for c in df.columns), label=label)


def bounds_text(type_: str, lower: float, upper: float) -> str:
    """"[lower, upper]" as a person reads it: dates for a datetime column (stored as epoch seconds)."""
    lo, hi = (pd.Timestamp(lower, unit="s"), pd.Timestamp(upper, unit="s")) if type_ == "datetime" \
        else (f"{lower:g}", f"{upper:g}")
    return f"[{lo}, {hi}]"


def describe(schema: Schema) -> list[str]:
    """One line per column saying what the schema decided (for the `schema infer` summary on stderr)."""
    out = []
    for c in schema.columns:
        if c.is_categorical:
            k = len(c.categories)
            what = f"{c.type}, {k} categories" + (f" (values not listed go to {c.other!r})" if c.other is not None
                                                   else "")
        else:
            what = f"{c.type} in {bounds_text(c.type, c.lower, c.upper)}"
            if c.rounding:
                step = f"{c.rounding:g}"
                if c.type == "datetime":
                    step = {86400.0: "1 day", 3600.0: "1 hour", 60.0: "1 minute"}.get(c.rounding, f"{step} s")
                what += f", grid {step}"
            if c.scale == "log":
                what += ", log scale"
            if c.special_values:
                what += ", special values " + ", ".join(f"{v:g}" for v in c.special_values)
        out.append(f"  {c.name}: {what}{', nullable' if c.nullable else ''}")
    return out


# ------------------------------------------------------------------------------------------------
# validation of private input


class DroppedColumnsWarning(UserWarning):
    """Columns of the data that the schema does not name (they are left out; the message names them)."""


class InvalidRowsWarning(UserWarning):
    """Rows that do not fit the schema were dropped (by --on-invalid drop/clip); names the column only."""


def check_header(cols: list[str], schema: Schema, where: str = "") -> list[str]:
    """The header checks of private data (a frame's columns, or a file's header before any row is read):
    duplicate or missing schema columns raise, naming ``where`` (a file name) when given; returns the columns
    the schema does not have, in header order."""
    pre = f"{where}: " if where else ""
    dups = sorted({c for c in cols if cols.count(c) > 1})
    if dups:
        raise ValidationError(f"{pre}duplicate columns in the private data: {dups}; rename or drop them")
    missing = [c for c in schema.names if c not in cols]
    if missing:
        raise ValidationError(f"{pre}columns {missing} are in the schema but not in the private data; fix the "
                              "header or the schema")
    return [c for c in cols if c not in schema.names]


def warn_dropped_columns(extra: list[str], stacklevel: int) -> None:
    """The named warning for data columns the schema leaves out (public: column names, never values)."""
    warnings.warn(DroppedColumnsWarning(f"columns {extra} of the data are not in the schema and are left out "
                                        "of the synthetic data; add them to the schema to synthesize them"),
                  stacklevel=stacklevel)


def validate(df: pd.DataFrame, schema: Schema, on_invalid: str = "error",
             show: Callable[[str], None] | None = None, *, whole: bool = True, row_offset: int = 0,
             warn_dropped: bool = True) -> pd.DataFrame:
    """Check private input against the public schema *before* any budget is spent.

    on_invalid: ``error`` (default) raises naming each column and the kind of problem; ``drop`` removes
    offending rows; ``clip`` clips numbers into bounds and maps values outside a column's categories to its
    ``other`` bucket, dropping only what cannot be repaired (a non-number, a missing value in a
    non-nullable column, a category with no other bucket). Every drop is announced by an
    ``InvalidRowsWarning`` that names the column and the problem. Messages never hold a private value, a row
    number or a count (privacy rule 7); ``show`` (the CLI's local-only ``--show-invalid``) receives the
    first offending values and row numbers for the user's terminal.

    ``whole=False`` validates one chunk of a larger input (``tables.private``): a chunk may be empty or
    lose every row, which only the caller, having seen all chunks, can judge; ``row_offset`` is the chunk's
    first row, for ``show``.

    A missing value of a nullable column is data, never invalid: ``drop`` and ``clip`` leave it as it is.

    ``warn_dropped=False`` (the private rows of ``synth``): no warning at all, since whether one appears is
    itself one bit about the private rows (issue 23, finding 6); the caller states its policy instead, the same
    way whatever the data hold, and ``show`` still gets the exact diagnostics."""
    if on_invalid not in ("error", "drop", "clip"):
        raise ValidationError(f"--on-invalid must be error, drop or clip, got {on_invalid!r}")
    if len(df) == 0 and whole:
        raise ValidationError("the private data has no rows (empty file?)")
    extra = check_header([str(c) for c in df.columns], schema)
    if extra:  # never silently: the user may have forgotten them in the schema
        warn_dropped_columns(extra, stacklevel=3)
    df = df[schema.names].reset_index(drop=True)
    bad_any = np.zeros(len(df), dtype=bool)
    out = {}
    problems: list[tuple[str, str]] = []

    def problem(name: str, mask: np.ndarray, kind: str, fix: str, values: pd.Series | None = None) -> None:
        problems.append((name, f"{kind}; {fix}"))
        if show is not None:
            idx = np.flatnonzero(mask)[:5] + row_offset
            shown = f" values {sorted(set(values[mask].astype(str)))[:5]}" if values is not None else ""
            show(f"--show-invalid: column {name!r}: {kind}: rows {idx.tolist()}{shown}")

    for c in schema.columns:
        s = df[c.name]
        null = s.isna().to_numpy()
        if c.is_categorical:  # cell by cell (tables.cells): one cell never changes how another is read
            codes = CategoryLookup(c.categories, c.type == "boolean").codes(s, null)
            unknown = codes == UNKNOWN
            if unknown.any() and c.other is not None:  # the schema's other bucket takes them
                codes = np.where(unknown, [str(v) for v in c.categories].index(str(c.other)), codes)
                unknown = np.zeros_like(unknown)
            if unknown.any():
                problem(c.name, unknown, "values outside the public categories",
                        "add them to the schema's categories, give the column an 'other' category, or use "
                        "--on-invalid drop", pd.Series(s.astype(str).to_numpy()))
            bad = unknown
            cats = np.array([*c.categories, None], dtype=object)  # index -1: missing (or dropped)
            val = pd.Series(cats[np.where(codes < 0, -1, codes)], dtype=object)
        else:
            num = parse_dates(s) if c.type == "datetime" else pd.to_numeric(s, errors="coerce").astype(float)
            wrong = num.isna().to_numpy() & ~null
            if wrong.any():
                problem(c.name, wrong, f"values that are not {'dates' if c.type == 'datetime' else 'numbers'}",
                        "fix them or use --on-invalid drop", s.astype(str))
            x = num.to_numpy(float)
            oob = ~np.isnan(x) & ((x < c.lower) | (x > c.upper))
            if oob.any() and on_invalid == "clip":
                x = np.clip(x, c.lower, c.upper)
                oob = np.zeros_like(oob)
            if oob.any():
                problem(c.name, oob, f"values outside the public bounds [{c.lower:g}, {c.upper:g}]",
                        "widen the bounds or use --on-invalid clip", pd.Series(x))
            bad = wrong | oob
            val = pd.Series(x)
        if null.any() and not c.nullable:
            problem(c.name, null, "missing values in a non-nullable column",
                    "mark the column nullable in the schema or use --on-invalid drop")
            bad = bad | null
        bad_any |= bad
        out[c.name] = val
    if problems and on_invalid == "error":
        msg = "; ".join(f"column {name!r}: {m}" for name, m in problems[:10])
        raise ValidationError(f"private data does not fit the schema: {msg}")
    res = pd.DataFrame(out)
    if bad_any.any():
        for name, m in problems if warn_dropped else ():
            warnings.warn(InvalidRowsWarning(f"--on-invalid {on_invalid}: rows dropped in column {name!r}: "
                                             f"{m.split(';')[0]}"), stacklevel=2)
        res = res[~bad_any].reset_index(drop=True)
        if len(res) == 0 and whole:
            raise ValidationError("no valid rows remain after --on-invalid " + on_invalid)
    return res
