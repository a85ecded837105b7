"""Digit renderers: output contract, class-conditionality, genome round trip, variation degree."""

from __future__ import annotations

import numpy as np
import pytest

from renderers.digits.fonts import FontRenderer
from renderers.digits.mixture import DigitMixture
from renderers.digits.stroke import StrokeRenderer
from renderers.digits.templates import TEMPLATES

RENDERERS = {
    "stroke-mnist": lambda: StrokeRenderer("mnist"),
    "stroke-free": lambda: StrokeRenderer("free"),
    "font-free": lambda: FontRenderer("free"),
    "font-mnist": lambda: FontRenderer("mnist"),
    "mix": lambda: DigitMixture([StrokeRenderer(), FontRenderer()]),
}


@pytest.fixture(scope="module", params=list(RENDERERS))
def backend(request):
    return RENDERERS[request.param]()


def test_random_shapes_ranges_and_labels(backend):
    rng = np.random.default_rng(0)
    for d in (0, 7):
        pop = backend.random(40, label=d, rng=rng)
        x = pop.samples
        assert x.shape == (40, 28, 28) and x.dtype == np.uint8
        assert np.all(pop.label == d) and np.all(pop.parent == -1)
        assert np.all(x.max(axis=(1, 2)) >= 200), "every image has saturated ink"
        assert x.mean() < 70 and np.all(x.reshape(40, -1).mean(1) < 190), "white digit on black, not a filled frame"
        border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)
        assert border.mean() < 8, "digits stay inside the frame"
        assert np.all(backend.digit_of(pop.genome) == d)
        assert pop.genome.shape[0] == 40 and pop.source.shape == (40,)


def test_unconditional_random_covers_all_digits():
    pop = StrokeRenderer().random(300, rng=np.random.default_rng(1))
    assert pop.label is None
    assert set(StrokeRenderer().digit_of(pop.genome)) == set(range(10))


@pytest.mark.parametrize("bad", [10, -1, 2.5, "x"])
def test_bad_label_is_refused(bad):
    with pytest.raises(ValueError, match="label"):
        StrokeRenderer().random(3, label=bad, rng=np.random.default_rng(0))


def test_genome_round_trip(backend):
    rng = np.random.default_rng(2)
    pop = backend.random(64, label=3, rng=rng)
    assert np.array_equal(backend.render(pop.genome), pop.samples)
    var = backend.vary(pop, 0.5, rng)
    assert np.array_equal(backend.render(var.genome), var.samples)
    assert np.array_equal(backend.render(var.genome.copy()[::-1]), var.samples[::-1]), "rows render independently"


def test_vary_degree_monotone(backend):
    """A bigger degree moves images further on average; degree 0 changes nothing."""
    rng = np.random.default_rng(3)
    pop = backend.random(400, label=5, rng=rng)
    ref = pop.samples.astype(np.float32)
    assert np.array_equal(backend.vary(pop, 0.0, rng).samples, pop.samples)
    change = []
    for d in (0.05, 0.2, 0.5, 1.0):
        v = backend.vary(pop, d, np.random.default_rng(4))
        change.append(np.abs(v.samples.astype(np.float32) - ref).mean())
        assert np.all(v.label == 5) and np.all(backend.digit_of(v.genome) == 5), "variation keeps the class"
    assert all(a < b for a, b in zip(change, change[1:])), change


def test_vary_at_degree_one_matches_fresh_draws():
    """Degree 1 = as far as random(): gene means/spreads match the prior."""
    r = StrokeRenderer()
    rng = np.random.default_rng(5)
    pop = r.random(3000, label=1, rng=rng)
    pop = pop.take(np.zeros(3000, dtype=np.int64))  # all copies of one sample
    v = r.vary(pop, 1.0, rng)
    fresh = r.random(3000, label=1, rng=rng)
    for j in range(1, 10):
        assert abs(v.genome[:, j].mean() - fresh.genome[:, j].mean()) < 0.1 * fresh.genome[:, j].std() + 1e-9
        assert 0.85 < v.genome[:, j].std() / fresh.genome[:, j].std() < 1.15


def test_vary_rejects_bad_input():
    r = StrokeRenderer()
    pop = r.random(4, label=2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="degree"):
        r.vary(pop, 1.5, np.random.default_rng(0))
    bad = pop.genome.copy()
    bad[0, 0] = len(TEMPLATES) + 3
    with pytest.raises(ValueError, match="template id"):
        r.render(bad)
    with pytest.raises(ValueError, match="shape"):
        r.render(pop.genome[:, :5])


def test_mixture_keeps_each_sample_with_its_renderer():
    mix = DigitMixture([StrokeRenderer(), FontRenderer()], weights=[0.5, 0.5])
    rng = np.random.default_rng(6)
    pop = mix.random(200, label=4, rng=rng)
    assert set(pop.source) == {"stroke", "font"}
    v = mix.vary(pop, 0.3, rng)
    assert np.array_equal(v.source, pop.source)
    assert np.array_equal(v.genome[:, 0], pop.genome[:, 0])


def centre_of_mass(images: np.ndarray) -> np.ndarray:
    """(n, 2) intensity-weighted centre (x, y) in pixel coordinates (pixel centres at +0.5)."""
    x = images.astype(np.float32)
    h, w = x.shape[1:]
    tot = x.sum(axis=(1, 2))
    safe = np.where(tot > 0, tot, 1.0)
    cx = (x.sum(axis=1) @ (np.arange(w, dtype=np.float32) + 0.5)) / safe
    cy = (x.sum(axis=2) @ (np.arange(h, dtype=np.float32) + 0.5)) / safe
    return np.stack([np.where(tot > 0, cx, w / 2), np.where(tot > 0, cy, h / 2)], axis=1)


def test_placements_differ_as_documented():
    """'mnist' puts the ink's centre of mass at the centre and fits a 20 px box; 'free' does not."""
    rng = np.random.default_rng(7)
    g = StrokeRenderer().random(300, label=2, rng=rng).genome
    for placement, tol in (("mnist", 0.75), ("free", None)):
        x = StrokeRenderer(placement).render(g)
        off = np.abs(centre_of_mass(x) - 14).max(axis=1)
        ink = x > 40
        rows, cols = ink.any(2), ink.any(1)
        extent = np.maximum(rows.sum(1), cols.sum(1))
        if tol is not None:
            assert np.percentile(off, 90) < tol
            assert np.all((extent >= 18) & (extent <= 23))
        else:
            assert np.percentile(off, 90) > 1.0
            assert extent.std() > 0.8


def test_real_mnist_nearest_class_mean():
    """Class-conditionality in meaning: the mean rendered '3' is nearest to real 3s, etc."""
    from conftest import shared_path

    from renderers.digits.io import load_mnist

    x, y = load_mnist(shared_path("data", "mnist"), "test")
    x, y = x[:2000].reshape(2000, -1) / 255.0, y[:2000]
    rng = np.random.default_rng(8)
    r = StrokeRenderer("mnist")
    means = np.stack([r.random(300, label=d, rng=rng).samples.reshape(300, -1).mean(0) / 255.0 for d in range(10)])
    pred = np.argmin(((x[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == y).mean() > 0.4  # chance is 0.1; real class means give ~0.8
