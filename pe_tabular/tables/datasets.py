"""Built-in demo data: UCI Adult (CC BY 4.0, see pe_tabular/tables/data/ATTRIBUTION.md)."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from pe_tabular.tables.schema import Schema

ADULT_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
                 "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
                 "income"]


def adult_schema() -> Schema:
    with resources.files("pe_tabular.tables.data").joinpath("adult_schema.json").open() as f:
        return Schema.from_dict(__import__("json").load(f))


def load_adult(split: str = "train") -> pd.DataFrame:
    """The raw UCI split ('train' = adult.data, 'test' = adult.test) with clean string categories."""
    name = {"train": "adult.data.gz", "test": "adult.test.gz"}[split]
    with resources.files("pe_tabular.tables.data").joinpath(name).open("rb") as f:
        df = pd.read_csv(f, compression="gzip", header=None, names=ADULT_COLUMNS, skipinitialspace=True,
                         skiprows=1 if split == "test" else 0, keep_default_na=False)
    df = df[df["age"].astype(str).str.strip() != ""].reset_index(drop=True)
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].astype(str).str.strip()
    df["income"] = df["income"].str.rstrip(".")
    for c in ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"):
        df[c] = pd.to_numeric(df[c])
    return df
