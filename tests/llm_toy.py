"""Shared bits of the LLM/mixture tests: a tiny public schema, a private frame with canaries, and a
backend factory pointed at a loopback server with fast retries and a per-test cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pe_tabular.tables.generators.llm import LLMBackend, LLMConfig
from pe_tabular.tables.schema import Column, Schema

SCHEMA = Schema((
    Column("age", "integer", lower=16, upper=90, description="age in years"),
    Column("hours", "integer", lower=1, upper=99, special_values=(40,)),
    Column("amount", "float", lower=0, upper=10000, rounding=0.5),
    Column("job", "categorical", categories=("clerk", "nurse", "farmer")),
    Column("y", "categorical", categories=("no", "yes")),
), label="y", description="a toy payroll table")


def private_frame(n: int = 120, seed: int = 0, canaries: bool = True) -> tuple[pd.DataFrame, list[str]]:
    """Private rows; every row carries a unique canary name and a unique high-precision amount."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": rng.integers(20, 70, n), "hours": np.where(rng.random(n) < 0.5, 40, rng.integers(1, 99, n)),
        "amount": np.round(rng.uniform(100, 9000, n), 2), "job": rng.choice(["clerk", "nurse", "farmer"], n),
        "y": rng.choice(["no", "yes"], n, p=[0.7, 0.3]),
    })
    if not canaries:
        return df, []
    names = [f"CANARY-{seed}-{i:04d}-zq" for i in range(n)]
    df.insert(0, "name", names)  # a column the public schema does not have
    # amounts OFF the public 0.5 grid and off its midpoints (x.31; prompts write six significant digits):
    # every synthetic amount is snapped onto the grid and every DP bin edge lies on the grid or half-way
    # between two of its points (x.25, x.75), so such a number in a prompt can only come from a private row
    df["amount"] = 1000.31 + np.arange(n) * 7.0
    return df, names + [f"{v:.6g}" for v in df["amount"]]


def make_backend(server, tmp_path: Path, **kw) -> LLMBackend:
    opts = dict(cache_dir=str(tmp_path / "cache"), progress=False, backoff_base_s=0.01, backoff_max_s=0.05,
                timeout_s=10.0, rows_per_request=10, vary_rows_per_request=10)
    opts.update(kw)
    return LLMBackend(SCHEMA, LLMConfig(server.base_url, server.model, **opts))


def cache_files(tmp_path: Path) -> list[Path]:
    d = tmp_path / "cache"
    return sorted(p for p in d.rglob("*.json")) if d.exists() else []
