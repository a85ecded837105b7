"""Privacy noise: the claimed sigma is the sigma added; secure noise is not reproducible by --seed."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pe_tabular.checkpoint import Checkpointer
from pe_tabular.privacy import Ledger, NoiseSource, noise_source
from pe_tabular.privacy.noise import TEST_NOISE_ENV
from pe_tabular.privacy.release import ReleasePath, Spec


@pytest.mark.parametrize("sigma", [0.5, 3.7, 20.0])
def test_added_noise_has_claimed_sigma(sigma):
    counts = np.arange(200_000, dtype=float) % 7  # the mechanism must not depend on the counts
    led = Ledger(1e-5)
    noisy = ReleasePath(led, NoiseSource()).release(Spec("k", "test", sigma, iteration=1, stream=(1, 0)), counts)
    z = noisy - counts
    n = z.size
    # chi-square 99.9% interval for the sample variance, and normality (KS) of z / sigma
    lo, hi = stats.chi2.ppf([0.0005, 0.9995], n - 1) / (n - 1)
    assert lo <= z.var(ddof=1) / sigma**2 <= hi
    assert abs(z.mean()) < 4 * sigma / np.sqrt(n)
    assert stats.kstest(z / sigma, "norm").pvalue > 1e-3
    assert led.releases[0].sigma == sigma and led.releases[0].sensitivity == 1.0


def test_secure_noise_differs_every_time_and_ignores_seeds():
    src = NoiseSource()
    a = src.gaussian(1000, 1.0, (1, 0))
    b = src.gaussian(1000, 1.0, (1, 0))
    assert not np.allclose(a, b)
    np.random.seed(0)  # noqa: NPY002 - global seeding must not fix privacy noise either
    c = src.gaussian(1000, 1.0, (1, 0))
    np.random.seed(0)  # noqa: NPY002
    d = src.gaussian(1000, 1.0, (1, 0))
    assert not np.allclose(c, d)


def test_deterministic_switch_is_test_only_and_recorded(monkeypatch):
    monkeypatch.delenv(TEST_NOISE_ENV, raising=False)
    assert noise_source().mode == "secure"
    monkeypatch.setenv(TEST_NOISE_ENV, "7")
    src = noise_source()
    assert src.mode == "deterministic-test-only"
    assert np.array_equal(src.gaussian(10, 1.0, (3, 0)), src.gaussian(10, 1.0, (3, 0)))
    assert not np.array_equal(src.gaussian(10, 1.0, (3, 0)), src.gaussian(10, 1.0, (4, 0)))


class _SpyNoise(NoiseSource):
    """Records the order of events: the charge must come before the draw."""

    def __init__(self, events: list[str]):
        object.__setattr__(self, "events", events)

    def gaussian(self, shape, sigma, release_key):
        self.events.append("draw")
        return super().gaussian(shape, sigma, release_key)


def test_release_is_charged_before_noise_is_drawn():
    events: list[str] = []
    led = Ledger(1e-5, mu_budget=10.0)
    record = led.record

    def spy_record(*a, **kw):
        events.append("charge")
        return record(*a, **kw)

    led.record = spy_record
    ReleasePath(led, _SpyNoise(events)).release(Spec("k", "ok", 1.0, iteration=1), lambda: np.ones(5))
    assert events == ["charge", "draw"]


def test_unaffordable_release_reads_no_private_data_and_draws_nothing():
    led = Ledger(1e-5, mu_budget=0.1)
    touched: list[int] = []
    events: list[str] = []

    def counts():
        touched.append(1)
        return np.ones(5)

    with pytest.raises(ValueError, match="exceeds the remaining budget"):
        ReleasePath(led, _SpyNoise(events)).release(Spec("k", "too expensive", 1.0, iteration=1), counts)
    assert led.releases == [] and touched == [] and events == []


def test_resumed_release_is_restored_not_redrawn(tmp_path):
    from pe_tabular.checkpoint import Checkpointer

    led = Ledger(1e-5, mu_budget=10.0)
    first = ReleasePath(led, NoiseSource(), Checkpointer(tmp_path)).release(Spec("k", "m", 1.0), np.zeros(4))
    again_led = Ledger(1e-5, mu_budget=10.0)
    events: list[str] = []
    again = ReleasePath(again_led, _SpyNoise(events), Checkpointer(tmp_path, resume=True)).release(
        Spec("k", "m", 1.0), lambda: pytest.fail("a resumed release must not read private data"))
    assert np.array_equal(first, again) and events == []
    assert [r.what for r in again_led.releases] == ["m"]


def test_release_count_is_a_charged_noisy_count():
    from pe_tabular.privacy.release import release_count, size_from_count

    led = Ledger(1e-5, mu_budget=10.0)
    path = ReleasePath(led, NoiseSource())
    draws = [release_count(path, Spec(f"n{i}", "record count", 50.0), lambda: 1000) for i in range(400)]
    assert len(led.releases) == 400 and all(r.sensitivity == 1.0 and r.size == 1 for r in led.releases)
    assert abs(np.mean(draws) - 1000) < 4 * 50 / np.sqrt(400) and 40 < np.std(draws) < 60
    assert len({size_from_count(d) for d in draws}) > 50  # the size moves with the noise, not with n alone
    assert size_from_count(-30.0, minimum=10) == 10 and size_from_count(float("nan"), 5) == 5


def test_released_values_are_snapped_to_a_public_grid():
    """Mironov (2012): float noise leaks through its low-order bits; releases are rounded to a public grid
    in (σ/2^13, σ/2^12]."""
    from pe_tabular.privacy.release import snap

    for sigma in (0.37, 3.7, 20.0):
        led = Ledger(1e-5)
        counts = np.full(50_000, 1 / np.sqrt(16)) * (np.arange(50_000) % 5)  # k-NN weights: not on any grid
        noisy = ReleasePath(led, NoiseSource()).release(Spec("k", "t", sigma), counts)
        grid = 2.0 ** (np.floor(np.log2(sigma)) - 12)
        assert np.all(noisy / grid == np.round(noisy / grid))
        assert sigma / 8192 < grid <= sigma / 4096
        z = noisy - counts
        assert abs(z.std() / sigma - 1) < 0.02  # rounding costs nothing measurable
    assert np.array_equal(snap(np.array([0.123456]), 0.0), np.array([0.123456]))  # no privacy: untouched


def test_a_thresholded_release_keeps_suppressed_cells_out_of_checkpoint_and_ledger(tmp_path):
    """The sparse-histogram mechanism is DP only if sub-threshold cells (keys found in the private data)
    are never published: not their noisy counts, not how many there are."""
    from pe_tabular.checkpoint import Checkpointer

    counts = np.array([5.0, 1000.0, 1.0, 1.0, 1.0, 2.0])  # cell 0 public; cells 1..5 private keys
    spec = Spec("cats", "thresholded category histogram", 1.0, threshold=50.0, public_cells=1, extra_delta=1e-7,
                keys=np.array(["a", "b", "c", "d", "e"], dtype=object))
    led = Ledger(1e-5)
    noisy = ReleasePath(led, NoiseSource(), Checkpointer(tmp_path)).release(spec, counts)
    assert np.isfinite(noisy[:2]).all() and np.isneginf(noisy[2:]).all()
    assert led.releases[0].size == 1  # the public part only: the number of private keys is not recorded
    with np.load(tmp_path / "release_cats.npz") as z:
        assert z["values"].size == 2 and z["keys"].tolist() == ["a"] and "index" not in z.files
    again = ReleasePath(Ledger(1e-5), NoiseSource(), Checkpointer(tmp_path, resume=True)).release(spec, counts)
    assert np.array_equal(again, noisy)


class _Silent(NoiseSource):
    """No noise at all, so two runs differ only where their inputs do."""

    def gaussian(self, shape, sigma, release_key):
        return np.zeros(shape)


def _sparse_checkpoint(directory, keys: np.ndarray, counts: np.ndarray, resume: bool = False) -> dict:
    spec = Spec("vals", "frequent exact values (thresholded)", 1.0, threshold=50.0, public_cells=1,
                extra_delta=1e-7, keys=keys)
    noisy = ReleasePath(Ledger(1e-5), _Silent(), Checkpointer(directory, resume=resume)).release(spec, counts)
    with np.load(directory / "release_vals.npz") as z:
        return {"noisy": noisy, **{k: z[k].copy() for k in z.files if k != "release"}}


def test_a_thresholded_checkpoint_does_not_count_the_suppressed_keys(tmp_path):
    """D holds one more unique value (0.5, suppressed) below the released ones than D′: the saved release
    must be the same file content, not positions that shift by one (issue 23, finding 3)."""
    keys = np.array([0.5, 1.5, 10.0, 20.0, 30.0])  # private keys, ascending, as resolution lays them out
    counts = np.array([7.0, 1.0, 2.0, 100.0, 300.0, 200.0])  # public cell, then one count per key
    d = _sparse_checkpoint(tmp_path / "d", keys, counts)
    d_minus = _sparse_checkpoint(tmp_path / "d1", keys[1:], np.delete(counts, 1))
    assert d.keys() == d_minus.keys()
    for name in d:
        if name != "noisy":
            np.testing.assert_array_equal(d[name], d_minus[name])
    assert d["keys"].tolist() == [10.0, 20.0, 30.0]
    # a resume lays the released cells back on the input's keys, and refuses an input that lost one
    again = _sparse_checkpoint(tmp_path / "d", keys, counts, resume=True)
    np.testing.assert_array_equal(again["noisy"], d["noisy"])
    with pytest.raises(ValueError, match="does not match the input"):
        _sparse_checkpoint(tmp_path / "d", np.array([0.5, 1.5, 10.0, 30.0]), np.delete(counts, 4), resume=True)


def test_the_test_switch_takes_negative_stream_keys(monkeypatch):
    """The schema stage releases on stream (-1, j); under the test switch that must give a reproducible draw of
    its own (it crashed in SeedSequence before), not the draw of another stream."""
    monkeypatch.setenv(TEST_NOISE_ENV, "3")
    a, b = noise_source().gaussian(50, 1.0, (-1, 2)), noise_source().gaussian(50, 1.0, (-1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, noise_source().gaussian(50, 1.0, (1, 2)))
    assert not np.array_equal(a, noise_source().gaussian(50, 1.0, (0, 2)))


def test_under_the_test_switch_a_kept_key_keeps_its_noise_when_another_key_goes():
    """A thresholded release drew noise by position, so under the test-only switch D (one more suppressed
    key below) and D′ gave every later key other noise: an audit saw a difference real noise would not
    make. Private cells' noise is keyed by the cell's key; it is still N(0, σ²)."""
    spec = dict(key="v", what="values (thresholded)", sigma=2.0, threshold=5.0, public_cells=1, extra_delta=1e-7)
    keys = np.array([0.5, 10.0, 20.0])
    d = ReleasePath(Ledger(1e-5), NoiseSource(test_seed=4)).release(Spec(**spec, keys=keys),
                                                                     np.array([9.0, 1.0, 50.0, 60.0]))
    d1 = ReleasePath(Ledger(1e-5), NoiseSource(test_seed=4)).release(Spec(**spec, keys=keys[1:]),
                                                                      np.array([9.0, 50.0, 60.0]))
    np.testing.assert_array_equal(d[2:], d1[1:])
    assert d[0] == d1[0]
    z = NoiseSource(test_seed=4).keyed_gaussian(np.arange(20_000) * 0.25, 3.0, (0, 1)) / 3.0
    assert stats.kstest(z, "norm").pvalue > 1e-3
    words = NoiseSource(test_seed=4).keyed_gaussian(np.array(["a", "b"], dtype=object), 1.0, (0, 1))
    assert words[0] != words[1] and np.isfinite(words).all()
