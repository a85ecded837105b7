"""The benchmark's own peer code: public Adult bins, zCDP bookkeeping, MST pieces, the DP-SGD generator."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
needs_shared = pytest.mark.skipif(not (SHARED / "data" / "adult" / "config.yml").exists(),
                                  reason="../shared/data/adult (public Adult config) is absent")


# -- public bins -------------------------------------------------------------------------------------------
@needs_shared
def test_decode_then_encode_gives_back_every_code() -> None:
    from benchmarks.peers.adult_bins import decode, encode, load_config

    cols = load_config()
    rng = np.random.default_rng(1)
    codes = pd.DataFrame({n: rng.integers(0, c.bins, 3000) for n, c in cols.items()})
    back = encode(decode(codes, cols, rng), cols)
    assert (back.to_numpy() == codes.to_numpy()).all()


@needs_shared
def test_encoding_matches_the_reference_scorer() -> None:
    from benchmarks.peers.adult_bins import encode, load_config
    from pe_tabular.tables.datasets import load_adult

    spec = importlib.util.spec_from_file_location("score_adult", SHARED / "bench" / "score_adult.py")
    scorer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scorer)  # type: ignore[union-attr]
    raw = load_adult("test").iloc[:2000]
    ours = encode(raw, load_config()).to_numpy()
    ref = scorer.discretise(scorer.normalise_columns(raw.rename(columns={"income": "income>50K"})), scorer.config())
    assert (ours == ref.to_numpy()).all()


@needs_shared
def test_unknown_category_names_the_column() -> None:
    from benchmarks.peers.adult_bins import encode, load_config

    cols = load_config()
    df = pd.DataFrame({n: ["Nowhere"] if c.categories else [30] for n, c in cols.items()})
    with pytest.raises(ValueError, match="workclass"):
        encode(df, cols)


# -- zCDP ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("eps", [0.3, 1.0, 10.0])
def test_cdp_rho_is_the_inverse_of_cdp_delta(eps: float) -> None:
    from benchmarks.peers.zcdp import cdp_delta, cdp_rho

    rho = cdp_rho(eps, 1e-5)
    assert cdp_delta(rho, eps) == pytest.approx(1e-5, rel=1e-6)
    # tighter than the classic ρ + 2·sqrt(ρ·log(1/δ)) bound, but not by more than that bound allows
    assert eps <= rho + 2 * math.sqrt(rho * math.log(1e5)) + 1e-9
    assert cdp_delta(rho * 1.01, eps) > 1e-5


# -- MST pieces ------------------------------------------------------------------------------------------------
def test_exponential_mechanism_odds_follow_exp_eps_score_over_2() -> None:
    from benchmarks.peers.mst import exponential_mechanism

    rng = np.random.default_rng(0)
    eps0, gap, n = 1.0, 2.0, 20000
    picks = np.array([exponential_mechanism(np.array([0.0, gap]), eps0, 1.0, rng) for _ in range(n)])
    p = 1 / (1 + math.exp(-eps0 * gap / 2))
    assert abs(picks.mean() - p) < 4 * math.sqrt(p * (1 - p) / n)


@pytest.mark.extra("bench")
def test_compression_merges_only_low_noisy_counts_and_decompress_inverts_it() -> None:
    from mbi import LinearMeasurement

    from benchmarks.peers.mst import compression_map, decompress

    m = [LinearMeasurement(np.array([50.0, 1.0, 40.0, -2.0, 0.5]), ("a",), 1.0),
         LinearMeasurement(np.array([10.0, 20.0]), ("b",), 1.0)]
    maps = compression_map(m, threshold=3.0)
    assert set(maps) == {"a"}
    assert maps["a"].tolist() == [0, 2, 1, 2, 2]
    rng = np.random.default_rng(0)
    out = decompress({"a": np.array([0, 1, 2] * 300), "b": np.zeros(900, int)}, maps, rng)
    assert set(out["a"][0::3]) == {0} and set(out["a"][1::3]) == {2} and set(out["a"][2::3]) == {1, 3, 4}
    assert (out["b"] == 0).all()


@pytest.mark.slow
@pytest.mark.extra("bench")
def test_mst_tree_spans_all_columns_and_keeps_the_planted_dependence() -> None:
    from benchmarks.peers.mst import mst

    rng = np.random.default_rng(3)
    n = 4000
    a = rng.integers(0, 3, n)
    codes = {"a": a, "b": (a + (rng.random(n) < 0.1)) % 3, "c": rng.integers(0, 2, n)}
    r = mst(codes, {"a": 3, "b": 3, "c": 2}, 5.0, 1e-5, rng, iters=200, rows=n)
    assert len(r.tree) == 2 and {x for e in r.tree for x in e} == {"a", "b", "c"}
    assert ("a", "b") in r.tree
    assert np.mean(r.codes["a"] == r.codes["b"]) > 0.8  # the real agreement is 0.9; independence gives 1/3


# -- DP-SGD generator ------------------------------------------------------------------------------------------
@pytest.mark.extra("bench")
def test_autoregressive_model_is_a_normalised_distribution() -> None:
    import itertools

    import torch

    from benchmarks.peers.dpsgd import _model

    torch.manual_seed(0)
    model = _model([2, 3, 2], hidden=16)
    grid = torch.tensor(list(itertools.product(range(2), range(3), range(2))))
    with torch.no_grad():
        total = torch.exp(-model(grid)).sum()
    assert float(total) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
@pytest.mark.extra("bench")
def test_dp_finetuning_spends_at_most_its_budget_and_samples_the_domain() -> None:
    from benchmarks.peers.dpsgd import DPSGDConfig, fit_sample

    rng = np.random.default_rng(0)
    sizes = [2, 4, 3]
    private = np.stack([rng.integers(0, s, 600) for s in sizes], axis=1)
    public = np.stack([rng.integers(0, s, 100) for s in sizes], axis=1)
    cfg = DPSGDConfig(hidden=16, pretrain_epochs=1, epochs=2, batch_size=64)
    r = fit_sample(private, public, sizes, 1.0, 1e-5, 500, seed=0, cfg=cfg)
    assert 0.5 < r.epsilon <= 1.0 + 1e-6
    assert r.steps > 0 and r.noise_multiplier > 0
    assert r.codes.shape == (500, 3) and all((r.codes[:, j] < s).all() for j, s in enumerate(sizes))
    assert fit_sample(None, public, sizes, 1.0, 1e-5, 10, seed=0, cfg=cfg).epsilon == 0.0


# -- the benchmark's bookkeeping ---------------------------------------------------------------------------
def _fake(method: str, eps: float, seed: int, tvd2: float, cpu: float, peak: float | None) -> dict:
    meta = {"epsilon": eps, "delta": 1e-5, "accounting": "x", "reads": "noisy things"}
    if peak is not None:
        meta["peak_mb"] = peak
    tstr = {"accuracy": 0.8, "f1": 0.7, "auc": 0.85}
    ours = {**{f"tvd{k}_{s}": tvd2 for k in (1, 2, 3) for s in ("mean", "max")}, "tstr": tstr, "dcr": {}}
    ref = {**{f"tvd{k}_{s}": tvd2 for k in (1, 2, 3) for s in ("mean", "max")},
           "tstr_acc": 0.8, "tstr_f1": 0.7, "tstr_auc": 0.85}
    return {"method": method, "eps_target": eps, "seed": seed, "rc": 0, "wall_s": 10.0, "cpu_s": cpu,
            "ru_maxrss_mb": 999.0, "load_avg": [1.0, 1.0], "meta": meta, "ours": ours, "ref": ref}


def test_plan_is_seed_major_and_runs_references_once_per_seed() -> None:
    from benchmarks.tabular import plan

    jobs = plan(["pe", "indep"], [0.3, 1.0], seeds=2, first=1)
    assert jobs == [("pe", 0.3, 1), ("pe", 1.0, 1), ("indep", math.inf, 1),
                    ("pe", 0.3, 2), ("pe", 1.0, 2), ("indep", math.inf, 2)]


def test_report_aggregates_seeds_and_flags_inherited_peak_memory(tmp_path: Path) -> None:
    from benchmarks.tabular import Store, aggregate, report

    store = Store(tmp_path / "results.json")
    store.put("pe|1|0", _fake("pe", 1.0, 0, 0.06, 4.0, 300.0))
    store.put("pe|1|1", _fake("pe", 1.0, 1, 0.08, 6.0, 310.0))
    store.put("mst|1|0", _fake("mst", 1.0, 0, 0.04, 150.0, None))
    store.put("mst|1|1", {"method": "mst", "eps_target": 1.0, "seed": 1, "rc": 1, "error": "boom"})
    agg = aggregate(store)
    assert agg[("pe", 1.0)]["n"] == 2 and agg[("mst", 1.0)]["n"] == 1  # a failed run is not averaged
    assert agg[("pe", 1.0)]["stats"]["ref_tvd2_mean"][0] == pytest.approx(0.07)
    text = "\n".join(report(store, "cmd", "now"))
    assert "0.070 ± 0.014" in text  # mean ± sd over the two PE seeds
    assert "≤ 999" in text and "| 305 ± 7 |" in text  # MST's peak is an inherited bound, PE's its own
    assert "falls short of our MST on 2-way TVD (0.070 vs 0.040)" in text
