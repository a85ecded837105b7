"""Data-adaptive resolution through DP releases: point masses, DP quantile bins, decoding, pair resolution.

Each test pins a behaviour the fixed 64-bin grid did not have (issue 16): an exact value holding most of
the mass comes out exactly; one outlier does not squeeze the bulk into a few bins; a small public grid is
enumerated; decoding inside a bin follows the released shape; a pair of a large table keeps fine bins.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pe_tabular.privacy.ledger import Ledger
from pe_tabular.privacy.noise import NoiseSource
from pe_tabular.privacy.release import ReleasePath
from pe_tabular.tables import dp_quantiles as dq
from pe_tabular.tables.marginals import Binning, noisy_chow_liu, pair_binning, pair_resolutions, structure_counts
from pe_tabular.tables.resolution import plan, resolve
from pe_tabular.tables.schema import Column, Schema
from pe_tabular.tables.synthesizer import PESynthesizer


def _resolve(df: pd.DataFrame, schema: Schema, rho: float = 0.05):
    led = Ledger(1e-5, mu_budget=np.sqrt(rho))
    p = plan(schema, rho, 1e-6)
    out = resolve(df, schema, ReleasePath(led, NoiseSource()), p, float(len(df)), len(df) / 32)
    return out, led


def test_point_masses_become_bins_and_exact_output_values():
    rng = np.random.default_rng(0)
    n = 20000
    x = np.where(rng.random(n) < 0.68, 0.0, rng.gamma(2.0, 400.0, n).round(2))  # 68 % exactly zero
    df = pd.DataFrame({"gain": x})
    schema = Schema((Column("gain", "float", lower=0, upper=20000, rounding=0.01),))
    (res, dec), led = _resolve(df, schema)
    c = res["gain"]
    assert c.special_values[0] == 0.0 and len(c.bin_edges) >= 8
    b = Binning.of(c)
    assert b.kind == "mixed" and b.index(pd.Series([0.0]))[0] == 0
    vals = b.values(np.random.default_rng(1), np.zeros(1000, np.int64), dec.get("gain"))
    assert (vals == 0.0).all()  # the point-mass bin decodes to the exact value, never a smear
    # the thresholded release records no private size (only its public keys), and pays its extra δ
    assert all(r.size <= 1 for r in led.releases if "values" in r.what)  # the public keys (here 0) only
    assert led.extra_delta > 0


def test_quantile_bins_follow_the_bulk_despite_an_outlier():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(100, 10, 19999), [600.0]])  # one outlier at 6x the typical range
    df = pd.DataFrame({"v": x})
    schema = Schema((Column("v", "float", lower=0, upper=700),))
    (res, _), _ = _resolve(df, schema)
    edges = np.asarray(res["v"].bin_edges)
    inside = ((edges > 75) & (edges < 125)).mean()
    assert inside > 0.8  # a 64-bin equal-width grid puts ~4 bins there; quantile bins put most edges there
    counts = np.bincount(Binning.of(res["v"]).index(df["v"]))
    assert counts.max() < 0.2 * len(x)


def test_small_public_grid_is_enumerated_heaviest_first():
    rng = np.random.default_rng(3)
    k = rng.choice([0, 1, 2, 3, 4, 5], 10000, p=[0.05, 0.5, 0.2, 0.15, 0.05, 0.05]).astype(float)
    schema = Schema((Column("kids", "integer", lower=0, upper=9),))
    (res, dec), led = _resolve(pd.DataFrame({"kids": k}), schema)
    c = res["kids"]
    assert sorted(c.special_values) == list(range(10)) and c.special_values[0] == 1.0
    assert "kids" not in dec and led.extra_delta == 0  # public keys: no threshold, no δ


def test_decoding_inside_a_bin_follows_the_released_shape():
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.uniform(0, 10, 18000), rng.uniform(90, 100, 2000)])  # empty middle
    schema = Schema((Column("v", "float", lower=0, upper=100),))
    (res, dec), _ = _resolve(pd.DataFrame({"v": x}), schema, rho=0.5)
    b = Binning.of(res["v"])
    mid = int(b.index(pd.Series([50.0]))[0])  # the interval that spans the empty middle
    lo, hi = b.interval(mid - len(res["v"].special_values))
    vals = b.values(np.random.default_rng(0), np.full(4000, mid), dec["v"]).astype(float)
    # uniform decoding would put most there (> 0.6); the released shape puts ~0.1 (0.097 over 30 noise seeds,
    # once 0.12 with fresh noise: the bound is set well away from both)
    assert hi - lo > 60 and ((vals > 20) & (vals < 80)).mean() < 0.3


def test_hierarchical_quantiles_are_close_at_moderate_noise():
    rng = np.random.default_rng(5)
    u = rng.beta(2, 5, 50000)
    noisy = dq.tree_counts(u) + rng.normal(0, 20, dq.n_cells())
    leaves = dq.leaf_masses(noisy, 20.0)
    q = dq.quantiles(leaves, np.array([0.1, 0.5, 0.9]))
    assert np.allclose(q, np.quantile(u, [0.1, 0.5, 0.9]), atol=0.02)


def test_pair_resolution_is_fine_for_large_tables_and_coarse_for_noisy_ones():
    cat = Column("group", "categorical", categories=tuple("abcde"))
    num = Column("age", "integer", lower=0, upper=100, bin_edges=tuple(np.arange(5.5, 95, 3.0)))
    schema = Schema((cat, num))
    fine = pair_resolutions(schema, [("group", "age")], n_rows=30000, sigma=10.0)[("group", "age")]
    assert fine == (5, Binning.of(num).n_bins - 1)  # every one-way bin of age kept
    coarse = pair_resolutions(schema, [("group", "age")], n_rows=3000, sigma=100.0)[("group", "age")]
    assert coarse[1] < 10 and pair_binning(num, coarse[1]).n_bins <= 11


def test_noise_only_dependence_leaves_columns_independent():
    rng = np.random.default_rng(6)
    n = 5000
    df = pd.DataFrame({c: rng.integers(0, 5, n).astype(str) for c in "abcd"})
    df["e"] = df["a"]  # one real dependence
    schema = Schema(tuple(Column(c, "categorical", categories=tuple("01234")) for c in "abcde"))
    import itertools

    pairs = list(itertools.combinations(schema.names, 2))
    groups = {c: np.arange(6) for c in schema.names}
    sigma = 40.0
    noisy = structure_counts(df, schema, groups, pairs) + rng.normal(0, sigma, 36 * len(pairs))
    edges = {frozenset(e) for e in noisy_chow_liu(noisy, groups, pairs, schema.names, sigma, float(n))}
    assert edges == {frozenset(("a", "e"))}  # a spanning tree would invent three more dependences


@pytest.mark.parametrize("votes", [True, False])
def test_synthesizer_outputs_exact_point_masses(votes):
    rng = np.random.default_rng(7)
    n = 6000
    zero = rng.random(n) < 0.68
    df = pd.DataFrame({"hours": np.where(zero, 0.0, rng.normal(38, 8, n).round(1).clip(1, 99)),
                       "kind": np.where(zero, "a", rng.choice(["b", "c"], n))})
    schema = Schema((Column("hours", "float", lower=0, upper=100, rounding=0.1),
                     Column("kind", "categorical", categories=("a", "b", "c"))))
    syn = PESynthesizer(schema, 2.0, 1e-5, seed=0, iterations=1, population=1000, k=4, voter="numpy",
                        votes=votes).fit(df)
    out = syn.sample(4000)
    share0 = (out["hours"] == 0.0).mean()
    assert abs(share0 - 0.68) < 0.08  # the old 64-bin grid gave 0 % exact zeros
    assert ((out["hours"] == 0.0) == (out["kind"] == "a")).mean() > 0.9  # and kept its dependence


def test_votes_are_skipped_where_they_would_be_noise_and_the_budget_is_still_spent():
    rng = np.random.default_rng(8)
    df = pd.DataFrame({"x": rng.normal(50, 10, 400).round(1), "k": rng.choice(["a", "b"], 400)})
    schema = Schema((Column("x", "float", lower=0, upper=100, rounding=0.1),
                     Column("k", "categorical", categories=("a", "b"))))
    small = PESynthesizer(schema, 0.3, 1e-5, seed=0, population=2000, k=4, voter="numpy").fit(df)
    assert small.vote_snr(400) < small.min_vote_snr and not small.votes_
    rep = small.privacy_report()
    assert not any("vote" in r["what"] for r in rep["releases"])
    assert rep["epsilon"] == pytest.approx(0.3, rel=1e-3)  # the votes' share went to the measurements
    big = PESynthesizer(schema, 0.3, 1e-5, seed=0, population=2000, k=4, voter="numpy", min_vote_snr=0.0).fit(df)
    assert big.votes_ and any("vote" in r["what"] for r in big.privacy_report()["releases"])


def test_public_bin_edges_are_kept():
    rng = np.random.default_rng(9)
    x = rng.normal(50, 10, 5000).round(1)
    edges = tuple(float(e) for e in np.arange(10, 100, 10))
    schema = Schema((Column("v", "float", lower=0, upper=100, rounding=0.1, bin_edges=edges),))
    (res, dec), _ = _resolve(pd.DataFrame({"v": x}), schema)
    assert res["v"].bin_edges == edges and dec["v"].sub.shape[0] == len(edges) + 1


def test_a_resolution_checkpoint_is_the_same_without_one_suppressed_value(tmp_path):
    """Issue 23, finding 3: the checkpoint of the thresholded exact-value release once held the positions of
    the released values among [public keys, every distinct private value ascending], so D (one extra unique
    value below the released ones) and D′ saved different positions. Without noise, the files must match."""
    from pe_tabular.checkpoint import Checkpointer

    class Silent(NoiseSource):
        def gaussian(self, shape, sigma, release_key):
            return np.zeros(shape)

    bulk = np.repeat([10.0, 20.0, 30.0], 3000)
    schema = Schema((Column("v", "float", lower=0, upper=100, rounding=0.01),))
    saved = []
    for name, x in (("d", np.concatenate([[0.5], bulk])), ("d1", bulk)):
        df = pd.DataFrame({"v": x})
        path = ReleasePath(Ledger(1e-5, mu_budget=np.sqrt(0.05)), Silent(), Checkpointer(tmp_path / name))
        resolve(df, schema, path, plan(schema, 0.05, 1e-6), 9000.0, 9000 / 32)
        with np.load(tmp_path / name / "release_resolution_values_000.npz") as z:
            saved.append({k: z[k].copy() for k in z.files if k != "release"})
    assert saved[0].keys() == saved[1].keys()
    for k in saved[0]:
        np.testing.assert_array_equal(saved[0][k], saved[1][k])
