"""A missing label is a class of its own in class-conditional runs (issue 22, "no row dropped").

Before, a nullable label turned class-conditional runs off, and a DP schema kept the label non-nullable unless
its missing count cleared 3σ, so rows with an empty label did not fit and ``--on-invalid clip`` dropped them
(67 of 23k rows on gssvocab). Now the label's classes are its categories plus ``(missing)``: counted, drawn,
voted and raked like the others, and written out as an empty cell.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from pe_tabular.cli import main
from pe_tabular.evolution import ConfigError
from pe_tabular.measure.shares import MISSING_CLASS, class_counts, class_strings
from pe_tabular.privacy.noise import NoiseSource
from pe_tabular.tables.generators.statistical import StatisticalBackend
from pe_tabular.tables.generators.tree import TreeBackend
from pe_tabular.tables.marginals import Binning
from pe_tabular.tables.schema import Column, Schema, validate
from pe_tabular.tables.schema_dp import infer_dp
from pe_tabular.tables.scoring import MISSING
from pe_tabular.tables.synthesizer import PESynthesizer

LABEL = Column("y", "categorical", categories=("a", "b"), nullable=True)
SCHEMA = Schema((Column("x", "categorical", categories=("p", "q", "r")), Column("z", "float", lower=0, upper=10),
                 LABEL), label="y")


def _frame(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    """x drives both the class and whether it is missing (2.5 % when x is p or q, 15 % when r: ~5 % in all)."""
    rng = np.random.default_rng(seed)
    x = rng.choice(["p", "q", "r"], n, p=[0.5, 0.3, 0.2])
    y = np.where(x == "p", np.where(rng.random(n) < 0.8, "a", "b"), np.where(rng.random(n) < 0.3, "a", "b"))
    y = y.astype(object)
    y[rng.random(n) < np.where(x == "r", 0.15, 0.025)] = None
    return pd.DataFrame({"x": x, "z": rng.normal(5, 1, n).round(2), "y": y})


def test_one_name_for_a_missing_cell():
    assert MISSING_CLASS == MISSING == "(missing)"  # the label's class and the evaluation's bucket


@pytest.mark.parametrize("values", [
    pd.Series(["a", None, "b", np.nan], dtype=object),
    pd.Series(pd.Categorical(["a", None, "b", None], categories=["a", "b"])),
    pd.Series(["a", None, "b", None], dtype="string"),
    np.array(["a", None, "b", np.nan], dtype=object),
], ids=["object", "categorical", "string", "array"])
def test_label_cells_become_class_strings_whatever_the_dtype(values):
    """``astype(str)`` spells a missing cell 'nan' under pandas 2 and something else (or keeps it missing)
    under pandas 3: one function maps it to the missing class, for the counts and the votes alike."""
    assert list(class_strings(values)) == ["a", MISSING_CLASS, "b", MISSING_CLASS]
    assert list(class_counts(values, ["a", "b", MISSING_CLASS])) == [1.0, 1.0, 2.0]
    assert list(class_counts(values, ["a", "b"])) == [1.0, 1.0]  # no missing class: not counted


def test_number_coded_classes_keep_their_spelling():
    s = pd.Series(pd.Categorical([1, None, 2], categories=[1, 2]))
    assert list(class_strings(s)) == ["1", MISSING_CLASS, "2"]


def _coded(df: pd.DataFrame) -> tuple[pd.DataFrame, Schema]:
    """The same table with the label number-coded as pandas reads it from a CSV with blanks (0.0, 1.0, NaN)
    and declared with integer categories, as ``schema infer`` writes them (anes' ``unemployed``)."""
    y = df["y"].map({"a": 0.0, "b": 1.0})
    col = Column("y", "categorical", categories=(0, 1), nullable=True)
    return df.assign(y=y), Schema((SCHEMA["x"], SCHEMA["z"], col), label="y")


@pytest.mark.parametrize("coded", [False, True], ids=["text", "number-coded"])
def test_a_class_conditional_fit_keeps_a_missing_label_as_a_class(tmp_path, coded):
    """5 % missing labels: the run stays class-conditional (it was not, with a warning), the missing class
    gets its share of the rows and of the candidates, and the output writes it as an empty cell, in its
    relation to x (15 % missing where x = r, 2.5 % elsewhere)."""
    df, schema = _coded(_frame()) if coded else (_frame(), SCHEMA)
    syn = PESynthesizer(schema, epsilon=50, seed=0, population=2000, iterations=1).fit(df)
    classes = ["0", "1"] if coded else ["a", "b"]
    assert syn.label_ == "y" and syn.classes_ == [*classes, MISSING_CLASS]
    real = float(df["y"].isna().mean())
    assert syn.shares_[MISSING_CLASS] == pytest.approx(real, abs=0.01)
    assert syn.shares_[classes[0]] == pytest.approx(float(df["y"].isin(["a", 0.0]).mean()), abs=0.01)
    assert abs(syn.n_hat_ - len(df)) <= 10  # every row counted (ε = 50: the count's noise is a few rows)
    assert MISSING_CLASS in set(syn.result_.population.label)
    out = syn.sample(20000)
    assert out["y"].isna().mean() == pytest.approx(real, abs=0.01)
    assert (out["y"].dropna() != MISSING_CLASS).all()
    by_x = out.assign(m=out["y"].isna()).groupby("x")["m"].mean()
    assert by_x["r"] == pytest.approx(0.15, abs=0.03) and by_x["p"] == pytest.approx(0.025, abs=0.015)
    path = tmp_path / "o.csv"
    out.to_csv(path, index=False)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)["y"]
    assert (raw == "").sum() == out["y"].isna().sum() and MISSING_CLASS not in set(raw)


def test_public_label_shares_of_a_nullable_label_must_give_the_missing_class():
    with pytest.raises(ConfigError, match=r"lack classes \['\(missing\)'\].*add '\(missing\)'"):
        PESynthesizer(SCHEMA, label_shares={"a": 0.5, "b": 0.5})
    syn = PESynthesizer(SCHEMA, label_shares={"a": 0.5, "b": 0.45, MISSING_CLASS: 0.05}, epsilon=50, seed=0,
                        population=500, iterations=1).fit(_frame())
    assert syn.classes_ == ["a", "b", MISSING_CLASS]


def test_a_nullable_label_with_a_category_spelled_like_the_missing_class_is_refused():
    col = Column("y", "categorical", categories=("a", "(missing)"), nullable=True)
    with pytest.raises(ConfigError, match=r"label column 'y'.*'\(missing\)'"):
        PESynthesizer(Schema((SCHEMA["x"], col), label="y"))
    # not nullable: no missing class, so no clash
    PESynthesizer(Schema((SCHEMA["x"], Column("y", "categorical", categories=("a", "(missing)"))), label="y"))


def _tree() -> TreeBackend:
    one = {c.name: np.ones(Binning.of(c).n_bins) / Binning.of(c).n_bins for c in SCHEMA.columns}
    return TreeBackend(SCHEMA, one, {})


@pytest.mark.parametrize("make", [lambda: StatisticalBackend(SCHEMA), _tree], ids=["statistical", "tree"])
def test_a_draw_of_the_missing_class_has_missing_labels(make):
    b, rng = make(), np.random.default_rng(0)
    pop = b.random(50, label=MISSING_CLASS, rng=rng)
    assert pop.samples["y"].isna().all() and set(pop.label) == {MISSING_CLASS}
    varied = b.vary(pop, 1.0, rng)  # the label stays fixed under variation
    assert varied.samples["y"].isna().all() and set(varied.label) == {MISSING_CLASS}
    assert set(b.random(20, label="b", rng=rng).samples["y"]) == {"b"}


def test_a_mixture_passes_the_missing_class_to_its_sources():
    from pe_tabular.backends.mixture import Mixture

    mix = Mixture([StatisticalBackend(SCHEMA), _tree()], names=["s", "t"])
    pop = mix.random(40, label=MISSING_CLASS, rng=np.random.default_rng(0))
    assert set(pop.source) == {"s", "t"} and pop.samples["y"].isna().all() and set(pop.label) == {MISSING_CLASS}


@pytest.mark.extra("sdv")
def test_sdv_draws_the_missing_class_unconditionally_with_the_label_missing():
    from pe_tabular.tables.generators.sdv import SDVBackend

    public = _frame(600, seed=1)
    b = SDVBackend(SCHEMA, public, seed=0, pool=200)
    rng = np.random.default_rng(0)
    pop = b.random(30, label=MISSING_CLASS, rng=rng)
    assert len(pop) == 30 and pop.samples["y"].isna().all() and set(pop.label) == {MISSING_CLASS}
    mixed = pop.__class__.concat([pop, b.random(30, label="a", rng=rng)])
    varied = b.vary(mixed, 0.5, rng)
    assert varied.samples["y"].iloc[:30].isna().all() and (varied.samples["y"].iloc[30:] == "a").all()


@pytest.mark.extra("llm")
def test_llm_pins_a_missing_label_for_the_missing_class(tmp_path):
    from pe_tabular.tables.generators.llm import LLMBackend, LLMConfig
    from pe_tabular.tables.testing.loopback import LoopbackServer

    with LoopbackServer("plain") as srv:
        b = LLMBackend(SCHEMA, LLMConfig(srv.base_url, srv.model, cache_dir=str(tmp_path / "c"), progress=False,
                                         backoff_base_s=0.01, backoff_max_s=0.05, timeout_s=10.0,
                                         rows_per_request=10, vary_rows_per_request=10))
        rng = np.random.default_rng(0)
        pop = b.random(12, label=MISSING_CLASS, rng=rng)
        assert pop.samples["y"].isna().all() and set(pop.label) == {MISSING_CLASS}
        assert "y = null" in srv.chat_requests()[0].body.replace('\\"', '"')
        varied = b.vary(pop, 0.5, rng)
        assert varied.samples["y"].isna().all()
        with pytest.raises(ValueError, match="not a category"):
            b.random(2, label="zz", rng=rng)


def test_the_dp_schema_leaves_the_label_nullable_and_keeps_every_row():
    """A few missing labels (below the noise) made the DP label non-nullable, and clip dropped their rows."""
    df = _frame(3000).astype({"z": str})
    df.loc[df.index[:3], "y"] = None
    df.loc[df.index[3:], "y"] = df["y"].iloc[3:].fillna("a")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sch = infer_dp(df, {"x": "categorical", "z": "float", "y": "categorical"}, 1.0, 1e-5, NoiseSource(),
                       label="y")
        kept = validate(df, sch, "clip", whole=False)
    assert sch["y"].nullable and sch.label == "y"
    assert len(kept) == len(df)
    assert not any("null" in r["what"] or "nullab" in r["what"] for r in sch.dp_cost["releases"])


def test_synth_with_a_dp_schema_writes_missing_labels_as_empty_cells(tmp_path, capsys):
    """The README's DP workflow on a file with 5 % empty labels, default flags: the run is class-conditional,
    the output's missing-label share is the real one (within noise), written as empty cells."""
    df = _frame(3000)
    src, sch, out = tmp_path / "d.csv", tmp_path / "s.json", tmp_path / "o.csv"
    df.to_csv(src, index=False)
    assert main(["schema", "infer", str(src), "--label", "y", "--dp-epsilon", "2", "--types",
                 "x=categorical,z=float,y=categorical", "--out", str(sch), "--quiet"]) == 0
    assert Schema.load(sch)["y"].nullable
    assert main(["synth", str(src), "--schema", str(sch), "--epsilon", "40", "--out", str(out), "--seed", "0",
                 "--population", "2000", "--iterations", "1", "--quiet"]) == 0
    releases = json.loads(out.with_suffix(".privacy.json").read_text())["releases"]
    assert any(r["what"] == "label histogram" for r in releases)  # class-conditional: its label shares released
    raw = pd.read_csv(out, dtype=str, keep_default_na=False)["y"]
    assert MISSING_CLASS not in set(raw)
    assert (raw == "").mean() == pytest.approx(df["y"].isna().mean(), abs=0.015)


def test_evaluation_scores_rows_with_a_missing_real_label():
    """(Pins today's behaviour, which needed no change.) TSTR on a nullable label: a test row with an empty
    label is a row of the missing class, counted in accuracy and in the AUC over the present classes, never
    dropped or called outside the schema."""
    from pe_tabular.tables.evaluation import tstr

    train, test = _frame(3000, seed=1), _frame(1000, seed=2)
    res = tstr(train, test, SCHEMA, "y")
    assert res["auc"] is not None and "note" not in res
    without = tstr(train, test.dropna(subset=["y"]), SCHEMA, "y")
    assert res["auc"] != without["auc"]  # the missing-label rows are in the AUC


def test_tstr_trains_on_a_synthetic_table_that_holds_one_row_of_a_class():
    """sklearn's early stopping (past 10,000 training rows) splits the training table stratified by class and
    stopped `evaluate` when the synthetic table held one row with a missing label (yrbss, DP schema)."""
    from pe_tabular.tables.evaluation import tstr

    train, test = _frame(12000, seed=1), _frame(1000, seed=2)
    train["y"] = train["y"].fillna("a")
    train.loc[train.index[0], "y"] = None  # one row of the missing class
    res = tstr(train, test, SCHEMA, "y")
    assert res["auc"] is not None and res["accuracy"] > 0.5


def test_a_missing_class_of_noise_only_gets_no_rows_and_a_real_one_keeps_its_share():
    """Post-processing of the released shares: under 2σ of the label histogram the missing class is noise (a
    DP schema makes every label nullable), and a few synthetic rows of it cost ML utility."""
    from pe_tabular.tables.labels import without_noise_missing_class

    noise_only = without_noise_missing_class({"a": 0.5, "b": 0.497, MISSING_CLASS: 0.003}, 4000, sigma=26.0)
    assert noise_only[MISSING_CLASS] < 1e-8 and sum(noise_only.values()) == pytest.approx(1.0)
    assert noise_only["a"] == pytest.approx(0.5 / 0.997)
    real = {"a": 0.5, "b": 0.45, MISSING_CLASS: 0.05}  # 200 rows: 7.7σ
    assert without_noise_missing_class(real, 4000, sigma=26.0) == real
