"""The PUBLIC discretisation of UCI Adult (config.yml of the AIM/MST benchmarks) and its inverse.

Why: MST, AIM and the DP-SGD generator work on codes, and every method must see the same public
bins as the reference scorer (../shared/bench/score_adult.py), which bins numbers with
``np.linspace(lo, hi, bins + 1)`` and maps categories with ``value_map``. Nothing here depends on
the private data. Decoding puts a number uniformly on the integers of its bin (the public domain),
which is what a code-based synthesizer can say about a value and no more.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT.parent / "shared" / "data" / "adult" / "config.yml"
LABEL_CFG = "income>50K"  # the config's (and scorer's) name of the label; pe_tabular calls it "income"
COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
           "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
           "income"]


@dataclass(frozen=True)
class Column:
    name: str
    bins: int
    lo: float = 0.0
    hi: float = 0.0
    categories: tuple[str, ...] | None = None  # index = code

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.lo, self.hi, self.bins + 1)

    def encode(self, values: pd.Series) -> np.ndarray:
        if self.categories is not None:
            lut = {c: i for i, c in enumerate(self.categories)}
            codes = values.astype(str).str.strip().str.rstrip(".").map(lut)
            if codes.isna().any():
                bad = values[codes.isna()].iloc[0]
                raise ValueError(f"column {self.name!r}: value {bad!r} is not in the public config.yml categories")
            return codes.to_numpy(np.int64)
        x = pd.to_numeric(values, errors="raise").to_numpy(float)
        return np.clip(np.searchsorted(self.edges, np.clip(x, self.lo, self.hi), side="right") - 1,
                       0, self.bins - 1).astype(np.int64)

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        codes = np.asarray(codes, np.int64)
        if self.categories is not None:
            return np.asarray(self.categories, dtype=object)[codes]
        ints = np.arange(int(np.ceil(self.lo)), int(np.floor(self.hi)) + 1)
        ib = np.clip(np.searchsorted(self.edges, ints, side="right") - 1, 0, self.bins - 1)
        start = np.searchsorted(ib, np.arange(self.bins), side="left")  # ib is sorted
        count = np.bincount(ib, minlength=self.bins)
        out = np.empty(len(codes), np.int64)
        has = count[codes] > 0
        pick = start[codes] + np.floor(rng.random(len(codes)) * np.maximum(count[codes], 1)).astype(np.int64)
        out[has] = ints[pick[has]]
        mids = np.round((self.edges[:-1] + self.edges[1:]) / 2).astype(np.int64)
        out[~has] = mids[codes[~has]]  # a bin holding no integer (not the case for Adult): its midpoint
        return out


def load_config(path: Path = CONFIG) -> dict[str, Column]:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the public Adult discretisation lives in ../shared/data/adult")
    raw = yaml.safe_load(path.read_text())
    cols = {}
    for name in COLUMNS:
        spec = raw[LABEL_CFG if name == "income" else name]
        if "value_map" in spec:
            vm = {str(k).strip(): int(v) for k, v in spec["value_map"].items()}
            cats = tuple(sorted(vm, key=vm.__getitem__))
            cols[name] = Column(name, int(spec["bins"]), categories=cats)
        else:
            lo, hi = spec["domain"]
            cols[name] = Column(name, int(spec["bins"]), float(lo), float(hi))
    return cols


def domain_sizes(cols: dict[str, Column]) -> dict[str, int]:
    return {n: c.bins for n, c in cols.items()}


def encode(df: pd.DataFrame, cols: dict[str, Column]) -> pd.DataFrame:
    """Raw Adult rows (pe_tabular column names) -> public bin codes."""
    return pd.DataFrame({n: c.encode(df[n]) for n, c in cols.items()})


def decode(codes: pd.DataFrame, cols: dict[str, Column], rng: np.random.Generator) -> pd.DataFrame:
    """Public bin codes -> raw-valued rows (numbers uniform on the integers of their bin)."""
    return pd.DataFrame({n: c.decode(codes[n].to_numpy(), rng) for n, c in cols.items()})
