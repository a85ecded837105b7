"""Evaluation helpers: Fréchet distance properties, sample grid layout, classifier contract."""

from __future__ import annotations

import numpy as np

from renderers.digits.evaluation import frechet_distance, sample_grid, save_grid


def test_frechet_distance_zero_for_same_set_and_grows_with_shift():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2000, 8))
    assert abs(frechet_distance(a, a)) < 1e-6
    d1 = frechet_distance(a, a + 0.5)
    d2 = frechet_distance(a, a + 1.0)
    assert 0 < d1 < d2
    np.testing.assert_allclose(d1, 8 * 0.25, rtol=1e-6)  # pure mean shift: ||delta mu||^2


def test_sample_grid_puts_each_class_on_its_row(tmp_path):
    x = np.zeros((30, 28, 28), np.uint8)
    y = np.repeat(np.arange(3), 10)
    for c in range(3):
        x[y == c] = 80 * (c + 1)
    g = sample_grid(x, y, per_class=4, classes=range(3))
    assert g.shape == (3 * 28, 4 * 28) and g.dtype == np.uint8
    for c in range(3):
        assert np.all(g[c * 28:(c + 1) * 28] == 80 * (c + 1))
    p = save_grid(tmp_path / "g.png", x, y, per_class=4)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
