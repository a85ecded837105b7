"""Schema in/out and validation of private input: every error names the column and the rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pe_tabular.tables.generators.statistical import StatisticalBackend
from pe_tabular.tables.schema import Column, Schema, SchemaError, ValidationError, infer_public, validate
from pe_tabular.tables.values import anchors


@pytest.fixture
def schema():
    return Schema((
        Column("age", "integer", lower=17, upper=90),
        Column("job", "categorical", categories=("a", "b", "c")),
        Column("pay", "float", lower=0, upper=1e5, scale="log", nullable=True),
        Column("when", "datetime", lower=pd.Timestamp("2020-01-01").value / 1e9,
               upper=pd.Timestamp("2021-01-01").value / 1e9),
    ), label="job")


def frame(**over):
    d = {"age": [20, 30, 40], "job": ["a", "b", "c"], "pay": [1.0, None, 5e4],
         "when": ["2020-02-01", "2020-05-01", "2020-12-01"]}
    d.update(over)
    return pd.DataFrame(d)


def test_valid_frame_passes(schema):
    out = validate(frame(), schema)
    assert list(out.columns) == schema.names and len(out) == 3


@pytest.mark.parametrize("over, match", [
    (dict(job=["a", "zz", "c"]), r"column 'job': unknown categories \['zz'\] in rows 1 "),
    (dict(age=[20, 300, 40]), r"column 'age': values outside the public bounds \[17, 90\] in rows 1 "),
    (dict(age=[20, "x", 40]), r"column 'age': non-numeric values \['x'\] in rows 1 "),
    (dict(age=[20, None, 40]), r"column 'age': missing values in non-nullable column in rows 1 "),
    (dict(when=["2020-02-01", "not a date", "2020-12-01"]), r"column 'when': non-numeric values"),
])
def test_each_validation_error_names_column_and_rows(schema, over, match):
    with pytest.raises(ValidationError, match=match):
        validate(frame(**over), schema)


def test_structural_errors(schema):
    with pytest.raises(ValidationError, match=r"columns \['pay'\] are in the schema but not in the private data"):
        validate(frame().drop(columns="pay"), schema)
    dup = pd.concat([frame(), frame()[["age"]]], axis=1)
    with pytest.raises(ValidationError, match=r"duplicate columns .*\['age'\]"):
        validate(dup, schema)
    with pytest.raises(ValidationError, match="no rows"):
        validate(frame().iloc[:0], schema)


def test_on_invalid_drop_and_clip(schema):
    bad = frame(age=[20, 300, 40], job=["a", "zz", "c"])
    assert len(validate(bad, schema, "drop")) == 2
    clipped = validate(frame(age=[20, 300, 40]), schema, "clip")
    assert clipped["age"].tolist() == [20, 90, 40]


def test_schema_errors():
    with pytest.raises(SchemaError, match="'x': a categorical column needs its public 'categories'"):
        Column("x", "categorical")
    with pytest.raises(SchemaError, match="'y': a float column needs public 'lower' and 'upper'"):
        Column("y", "float")
    with pytest.raises(SchemaError, match="unknown type"):
        Column("z", "text")
    with pytest.raises(SchemaError, match="duplicate column names"):
        Schema((Column("a", "boolean"), Column("a", "boolean")))
    with pytest.raises(SchemaError, match="label column 'q' is not in the schema"):
        Schema((Column("a", "boolean"),), label="q")


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_round_trip_json_yaml(schema, tmp_path, suffix):
    path = schema.save(tmp_path / f"s{suffix}")
    assert Schema.load(path) == schema


def test_bad_schema_file(tmp_path):
    p = tmp_path / "s.json"
    p.write_text("{not json")
    with pytest.raises(SchemaError, match="not valid JSON"):
        Schema.load(p)


def test_sdv_metadata_round_trip(schema):
    pytest.importorskip("sdv")
    meta = schema.to_sdv_metadata()
    public = validate(frame(), schema)
    public["when"] = pd.to_datetime(public["when"], unit="s")
    back = Schema.from_sdv_metadata(meta, public)
    assert [c.type for c in back.columns] == ["integer", "categorical", "float", "datetime"]
    # SDV 2.x itself accepts the metadata: a copula fits on the user-facing frame and stays in the bounds
    from sdv.single_table import GaussianCopulaSynthesizer

    syn = GaussianCopulaSynthesizer(meta, enforce_min_max_values=True)
    syn.fit({"table": public})
    out = syn.sample(50)
    out = out["table"] if isinstance(out, dict) else out
    col = schema.columns[0]
    assert out[col.name].between(col.lower, col.upper).all() and (out[col.name] % 1 == 0).all()
    internal = schema.to_sdv_metadata(internal=True).to_dict()["tables"]["table"]["columns"]
    assert internal["when"]["sdtype"] == "numerical" and "computer_representation" not in str(internal)


def test_infer_public_reads_domains():
    df = pd.DataFrame({"n": np.arange(100), "c": ["x", "y"] * 50})
    s = infer_public(df)
    assert s["n"].type == "integer" and s["n"].lower == 0 and s["n"].upper == 99
    assert s["c"].categories == ("x", "y")


def test_variation_lands_on_and_keeps_point_masses():
    col = Column("hours", "integer", lower=1, upper=99)
    assert {1.0, 40.0, 99.0} <= set(anchors(col).tolist())
    schema = Schema((col,))
    be = StatisticalBackend(schema)
    rng = np.random.default_rng(0)
    pop = be.random(5000, rng=rng)
    pop = pop.take(np.zeros(5000, dtype=np.int64))  # selection picked one parent...
    pop.samples["hours"] = 40.0  # ...with the point mass value
    varied = be.vary(pop, 0.1, rng).samples["hours"]
    # every row mutates its only field, yet crossover/anchors keep a large share exactly on 40
    assert (varied == 40).mean() > 0.4
    assert np.all(np.mod(varied, 1) == 0) and varied.between(1, 99).all()


# -- the schema file's declared shape ---------------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=6),
                     lambda inner: (st.lists(inner, max_size=3)
                                    | st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                     max_leaves=8)
_FIELDS = ["name", "type", "categories", "lower", "upper", "rounding", "special_values", "scale", "nullable", "weight",
           "description"]
_COLUMN = st.dictionaries(st.sampled_from(_FIELDS), _JSON | st.sampled_from(["integer", "float", "categorical",
                                                                               "datetime", "boolean", "log"]),
                          max_size=8)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_JSON, st.dictionaries(st.sampled_from(["columns", "label", "label_shares", "description"]),
                                         st.one_of(_JSON, st.lists(_COLUMN, min_size=1, max_size=3)), max_size=4)))
def test_any_schema_file_loads_or_fails_with_a_schema_error(d):
    """Fuzz: whatever the file holds, the loader builds a schema or raises SchemaError — never a traceback."""
    try:
        Schema.from_dict(d)
    except SchemaError:
        pass


@pytest.mark.parametrize("columns, where", [
    ({"a": 1}, "'columns' must be a non-empty list"),
    ([1, 2], "column #0: must be a mapping"),
    ([{"name": "x", "type": "float", "lower": 0, "upper": 1, "rounding": "x"}], "column 'x': field 'rounding' must be"),
    ([{"name": "x", "type": "float", "lower": "one", "upper": 1}], "column 'x': field 'lower' must be a finite number"),
    ([{"name": "c", "type": "categorical", "categories": "cauc"}],
     "column 'c': field 'categories' must be a non-empty"),
    ([{"name": "c", "type": "categorical", "categories": ["a"], "nullable": "maybe"}],
     "column 'c': field 'nullable' must be true or false"),
    ([{"name": "d", "type": "datetime", "lower": "2016-13-45", "upper": "2017-01-01"}], "field 'lower' must be an ISO"),
])
def test_malformed_schema_fields_are_named(columns, where):
    with pytest.raises(SchemaError, match=where.replace("(", r"\(")):
        Schema.from_dict({"columns": columns})


def test_iso_date_bounds_still_load():
    s = Schema.from_dict({"columns": [{"name": "d", "type": "datetime", "lower": "2016-04-11", "upper": "2016-04-12"}]})
    assert s["d"].upper - s["d"].lower == 86400
