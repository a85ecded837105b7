"""Privacy hardening of the tables wing: what a run publishes derives from releases, never from the data.

Each test fails on the behaviour it replaced: the output size was len(private); DP schema inference read
nullability nowhere and set bounds from the outer cells clearing 3σ (absurd in about half of the runs).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import pe_tabular.tables.plan as planmod
import pe_tabular.tables.synthesizer as synmod
from pe_tabular.cli import main
from pe_tabular.privacy.noise import NoiseSource
from pe_tabular.tables import dp_quantiles as dq
from pe_tabular.tables.datasets import adult_schema, load_adult
from pe_tabular.tables.schema import Schema
from pe_tabular.tables.schema_dp import infer_dp

FAST = dict(iterations=1, population=300, k=2, voter="numpy")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("priv")
    load_adult("train").head(1200).to_csv(d / "private.csv", index=False)
    adult_schema().save(d / "schema.json")
    return d


def test_default_output_size_is_the_released_noisy_count(files, monkeypatch):
    """Rule 6: without --samples the CLI writes as many rows as a noisy count released through the engine
    (charged in the ledger), not len(private)."""
    seen: dict[str, float] = {}
    real = planmod.release_count

    def spy(path, spec, count):
        seen["exact"] = count()
        seen["noisy"] = real(path, spec, count)
        return seen["noisy"] + 5000.0  # a released value the exact count cannot explain

    monkeypatch.setattr(planmod, "release_count", spy)
    out = files / "synth.csv"
    rc = main(["synth", str(files / "private.csv"), "--schema", str(files / "schema.json"), "--epsilon", "2",
               "--iterations", "1", "--population", "300", "--k", "2", "--voter", "numpy", "--out", str(out),
               "--quiet"])
    assert rc == 0
    n_out = len(pd.read_csv(out))
    assert seen["exact"] == 1200 and n_out == round(seen["noisy"] + 5000.0) != 1200
    ledger = json.loads((files / "synth.privacy.json").read_text())
    assert any(r["what"] == "number of private rows" and r["sensitivity"] == 1.0 for r in ledger["releases"])
    assert "noisy row count" in ledger["public_inputs"]["output_size"]
    assert all(r["size"] != 1200 for r in ledger["releases"])


def test_samples_is_public_and_used_as_given(files):
    out = files / "s.csv"
    rc = main(["synth", str(files / "private.csv"), "--schema", str(files / "schema.json"), "--epsilon", "2",
               "--iterations", "1", "--population", "300", "--k", "2", "--voter", "numpy", "--samples", "321",
               "--out", str(out), "--quiet"])
    assert rc == 0 and len(pd.read_csv(out)) == 321


def test_python_api_default_sample_size_is_noisy(monkeypatch):
    df = load_adult("train").head(800)
    monkeypatch.setattr(planmod, "release_count", lambda path, spec, count: count() + 11.0)
    syn = synmod.PESynthesizer(adult_schema(), 2.0, 1e-5, seed=0, **FAST).fit(df)
    assert syn.n_hat_ == 811 and len(syn.sample()) == 811


def _frame(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({"price": rng.lognormal(4.0, 0.6, n).round(2),
                         "kind": rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1])})


def test_dp_schema_bounds_are_never_absurd_and_record_no_private_size():
    """Over many noise draws, DP bounds hold the bulk of the data and stay within a decade of it (the old
    'outer cells clearing 3σ' rule gave a lower bound of −56,234,132 for a price in about half the runs)."""
    rng = np.random.default_rng(0)
    df = _frame(3000, rng)
    lows, highs = [], []
    for _ in range(25):
        sch = infer_dp(df, {"price": "float", "kind": "categorical"}, 0.3, 1e-5, NoiseSource())
        c = sch["price"]
        lows.append(c.lower)
        highs.append(c.upper)
        sizes = {r["what"]: r["size"] for r in sch.dp_cost["releases"]}
        assert sizes["thresholded category histogram of 'kind'"] == 0  # no private keys (and no public cell)
        assert sizes[next(k for k in sizes if "price" in k)] == dq.n_cells() + 2  # public grid + missing + unparseable
    q = np.quantile(df["price"], [0.05, 0.95])  # at ε = 0.3 and 3,000 rows the bounds may cut thin tails
    assert min(lows) >= 0 and max(lows) <= q[0]
    assert min(highs) >= q[1] and max(highs) <= 10 * df["price"].max()


def test_dp_schema_keeps_rare_categories_in_an_other_bucket_and_makes_every_column_nullable():
    rng = np.random.default_rng(1)
    df = _frame(3000, rng)
    df.loc[:4, "kind"] = "rare-private-value"  # 5 rows: never clears the threshold
    df.loc[:999, "price"] = np.nan  # a third missing
    df["lab"] = np.where(rng.random(len(df)) < 0.5, "x", "y")
    df.loc[:2, "lab"] = None  # 3 missing labels: below the noise (the label was non-nullable then)
    sch = infer_dp(df, {"price": "float", "kind": "categorical", "lab": "categorical"}, 1.0, 1e-5, NoiseSource(),
                   label="lab")
    kind = sch["kind"]
    assert "rare-private-value" not in kind.categories and kind.other in kind.categories
    # every column is nullable, the label too (public: a few missing cells never make the schema refuse its
    # own file); a missing label is a class of its own in class-conditional runs (tables.labels)
    assert sch["price"].nullable and kind.nullable and sch["lab"].nullable
    df = df.drop(columns="lab")
    sch = Schema(tuple(c for c in sch.columns if c.name != "lab"))
    from pe_tabular.tables.schema import validate

    out = validate(df, sch, "clip")
    assert len(out) == len(df) and (out["kind"] == kind.other).sum() >= 5  # rows kept, not dropped
