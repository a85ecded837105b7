"""SDV backend fitted on a small PUBLIC split (the first rows of adult.test, never adult.data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sdv", reason="the sdv extra is not installed")

from pe_tabular.population import Population  # noqa: E402
from pe_tabular.tables.datasets import adult_schema, load_adult  # noqa: E402
from pe_tabular.tables.generators.factory import make_backend  # noqa: E402
from pe_tabular.tables.generators.sdv import SDVBackend  # noqa: E402
from pe_tabular.tables.schema import validate  # noqa: E402

COLS = ["age", "education", "education-num", "sex", "relationship", "hours-per-week", "capital-gain", "income"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    full = adult_schema()
    from pe_tabular.tables.schema import Schema

    schema = Schema(tuple(full[c] for c in COLS), label="income")
    public = load_adult("test").iloc[:1500][COLS]
    path = tmp_path_factory.mktemp("pub") / "public.csv"
    public.to_csv(path, index=False)
    return schema, public, SDVBackend(schema, path, seed=0, pool=600)


def test_random_is_schema_valid_and_class_conditional(setup):
    schema, public, b = setup
    pop = b.random(300, label=">50K", rng=np.random.default_rng(0))
    df = pop.samples
    assert len(pop) == 300 and set(df["income"]) == {">50K"} and set(pop.source) == {"sdv"}
    validate(df, schema, "error")
    assert np.all(df["age"] == np.round(df["age"]))  # snapped to the public integer grid
    # it learned the public table's association: education-num tracks education
    edu = df.groupby("education")["education-num"].median()
    assert edu.get("Bachelors", 13) > edu.get("HS-grad", 9)
    # and a >50K draw is older than a <=50K draw, as in the public table
    low = b.random(300, label="<=50K", rng=np.random.default_rng(1)).samples
    assert df["age"].mean() > low["age"].mean() + 2


def test_vary_changes_a_degree_sized_subset_and_keeps_the_label(setup):
    schema, _, b = setup
    rng = np.random.default_rng(2)
    parents = b.random(200, label="<=50K", rng=rng)
    free = [c for c in COLS if c != "income"]
    moved = {}
    for degree in (0.15, 0.9):
        out = b.vary(parents, degree, rng)
        assert len(out) == 200 and set(out.samples["income"]) == {"<=50K"}
        validate(out.samples, schema, "error")
        moved[degree] = out.samples[free].ne(parents.samples[free]).sum(axis=1).mean()
    assert 0.5 <= moved[0.15] <= 2.0 and moved[0.9] > 3.0


def test_factory_spec_and_unlabelled_population(setup, tmp_path):
    schema, public, _ = setup
    path = tmp_path / "pub.csv"
    public.to_csv(path, index=False)
    b = make_backend(f"sdv:{path}", schema.with_label(None))
    pop = b.random(50, rng=np.random.default_rng(0))
    out = b.vary(Population(pop.samples, pop.source, np.arange(50), None, None), 0.5, np.random.default_rng(1))
    assert len(out) == 50 and (out.parent == np.arange(50)).all()
    with pytest.raises(ValueError, match="--public-data lacks schema columns"):
        SDVBackend(schema, public.drop(columns=["sex"]))
    assert isinstance(out.samples, pd.DataFrame)
