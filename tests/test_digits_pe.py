"""Class-conditional PE on a small MNIST subset: it must beat the renderer alone; CLI smoke test."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pe_tabular.cli import main
from pe_tabular.privacy.ledger import Ledger
from pe_tabular.privacy.noise import TEST_NOISE_ENV, NoiseSource
from renderers.digits.io import load_mnist, read_npz, write_mnist, write_npz
from renderers.digits.synth import DigitsConfig, render_baseline, synthesize


@pytest.fixture(scope="module")
def mnist():
    from conftest import shared_path

    d = shared_path("data", "mnist")
    return load_mnist(d, "train"), load_mnist(d, "test")


def _one_nn_accuracy(syn_x, syn_y, real_x, real_y):
    """Accuracy on real images of a 1-nearest-neighbour classifier whose references are synthetic."""
    a = real_x.reshape(len(real_x), -1).astype(np.float32) / 255
    b = syn_x.reshape(len(syn_x), -1).astype(np.float32) / 255
    d2 = (b**2).sum(1)[None] - 2 * a @ b.T
    return float((syn_y[d2.argmin(1)] == real_y).mean())


def test_pe_improves_over_the_renderer_alone(mnist):
    (x, y), (xt, yt) = mnist
    cfg = DigitsConfig(iterations=4, population=600, n_out=600, degree_start=0.5, degree_end=0.2,
                       final_degree=0.05, label_budget=0.0)
    res = synthesize(x[:3000], y[:3000], 20.0, 1e-5, cfg, np.random.default_rng(0), noise=NoiseSource(test_seed=0))
    assert res.images.shape == (600, 28, 28) and set(res.labels) == set(range(10))
    assert res.ledger.epsilon <= 20.0 + 1e-6 and len(res.ledger.releases) == 4
    base_x, base_y = render_baseline(cfg, np.random.default_rng(0), 600)
    held = slice(0, 2000)  # real *test* images: never seen by the run
    acc_pe = _one_nn_accuracy(res.images, res.labels, xt[held], yt[held])
    acc_base = _one_nn_accuracy(base_x, base_y, xt[held], yt[held])
    assert acc_pe > acc_base + 0.03, (acc_pe, acc_base)  # measured: +5 to +8 points over seeds 0-2
    ess = [h["ess"] for h in res.history]
    assert ess[-1] < 600, "votes concentrate on part of the population"


@pytest.mark.slow
@pytest.mark.extra("digits")
def test_cli_synth_evaluate_and_resume(mnist, tmp_path, monkeypatch):
    (x, y), (xt, yt) = mnist
    write_npz(tmp_path / "priv.npz", x[:1500], y[:1500])
    write_mnist(tmp_path / "real", xt[:300], yt[:300], "test")
    monkeypatch.setenv(TEST_NOISE_ENV, "3")
    out, ck = tmp_path / "out", tmp_path / "ck"
    argv = ["digits", "synth", "--private", str(tmp_path / "priv.npz"), "--epsilon", "5", "--delta", "1e-5",
            "--out", str(out), "--population", "200", "--iterations", "3", "--n-out", "400", "--renderer", "mix",
            "--checkpoint", str(ck), "--format", "both", "-q"]
    assert main(argv) == 0
    led = Ledger.load(out / "synthetic.privacy.json")
    assert led.epsilon <= 5 + 1e-6 and len(led.releases) == 4  # label histogram + 3 votes
    imgs, labs = read_npz(out / "synthetic.npz")
    assert imgs.shape == (400, 28, 28) and labs.shape == (400,)
    assert (out / "train-images-idx3-ubyte.gz").exists() and (out / "grids" / "iteration_03.png").exists()
    run = json.loads((out / "run.json").read_text())
    assert "n_private" not in run and run["n_private_cap"] is None and len(run["history"]) == 3  # n is private
    assert "1500" not in json.dumps({k: v for k, v in run.items() if k != "history"})
    # resume: every release is reused, nothing is charged twice
    assert main(argv + ["--resume"]) == 0
    led2 = Ledger.load(out / "synthetic.privacy.json")
    assert [r.sigma for r in led2.releases] == [r.sigma for r in led.releases]
    # resume without --checkpoint is a usage error naming the flag
    assert main([a for a in argv if a not in (str(ck), "--checkpoint")] + ["--resume"]) == 2
    assert main(["digits", "evaluate", str(out), "--real", str(tmp_path / "real"), "--no-fd", "-q"]) == 0
    ev = json.loads((out / "evaluation.json").read_text())
    assert 0.0 <= ev["acc"] <= 1.0 and ev["n_images"] == 400


def test_cli_refuses_bad_flags(tmp_path, capsys):
    assert main(["digits", "synth", "--private", str(tmp_path / "none"), "--epsilon", "1", "--out",
                 str(tmp_path / "o")]) == 2
    assert "--private" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["digits", "synth", "--private", "x", "--epsilon", "-1", "--out", "o"])


def test_budget_schedules_reach_the_digits_votes(mnist):
    (x, y), _ = mnist
    cfg = DigitsConfig(iterations=4, population=300, n_out=100, label_budget=0.0, budget="geometric")
    res = synthesize(x[:1000], y[:1000], 2.0, 1e-5, cfg, np.random.default_rng(0), noise=NoiseSource(test_seed=0))
    sig = [h["sigma"] for h in res.history]
    assert len(sig) == 4 and all(a > b for a, b in zip(sig, sig[1:]))  # later votes get more precision
    assert res.ledger.epsilon == pytest.approx(2.0, rel=1e-6)
    flat = synthesize(x[:1000], y[:1000], 2.0, 1e-5, DigitsConfig(iterations=4, population=300, n_out=100,
                      label_budget=0.0), np.random.default_rng(0), noise=NoiseSource(test_seed=0))
    assert len({round(h["sigma"], 9) for h in flat.history}) == 1  # uniform: one σ
