"""Image encoders: deterministic, per-image (never fitted on the input), shape/metric contract."""

from __future__ import annotations

import numpy as np
import pytest

from pe_tabular.distance import L2Metric
from renderers.digits.encoder import ImageEncoder, hog
from renderers.digits.stroke import StrokeRenderer

SPECS = ["pixels", "pixels:2", "hog", "rp", "pixels+hog"]


@pytest.fixture(scope="module")
def images():
    r = StrokeRenderer()
    rng = np.random.default_rng(0)
    return np.concatenate([r.random(30, label=d, rng=rng).samples for d in range(10)])


@pytest.mark.parametrize("spec", SPECS)
def test_deterministic_and_independent_of_the_batch(images, spec):
    enc = ImageEncoder.parse(spec)
    assert isinstance(enc.metric, L2Metric)
    a = enc.encode(images)
    assert a.dtype == np.float32 and a.shape[0] == len(images) and np.all(np.isfinite(a))
    assert np.array_equal(a, ImageEncoder.parse(spec).encode(images)), "a fresh encoder gives the same codes"
    perm = np.random.default_rng(1).permutation(len(images))
    np.testing.assert_allclose(enc.encode(images[perm]), a[perm], rtol=1e-5, atol=1e-5)
    # never fitted: encoding other images first, or alone, does not change an image's code
    enc.encode(255 - images)
    np.testing.assert_allclose(enc.encode(images[7:8])[0], a[7], rtol=1e-5, atol=1e-5)
    assert not hasattr(enc, "fit")


def test_uint8_and_float_inputs_agree(images):
    enc = ImageEncoder.parse("pixels+hog")
    np.testing.assert_allclose(enc.encode(images), enc.encode(images.astype(np.float32) / 255), atol=1e-6)


def test_downsample_is_block_mean():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4) / 16
    code = ImageEncoder(("pixels",), downsample=2).encode(x)
    np.testing.assert_allclose(code[0], [x[0, :2, :2].mean(), x[0, :2, 2:].mean(), x[0, 2:, :2].mean(),
                                         x[0, 2:, 2:].mean()])


def test_hog_sees_orientation_not_brightness():
    """A vertical bar and a horizontal bar differ in HOG; a dimmer copy of either does not (L2-Hys)."""
    v = np.zeros((1, 28, 28), np.float32)
    v[0, 4:24, 12:16] = 1.0
    h = np.transpose(v, (0, 2, 1)).copy()
    fv, fh, fdim = hog(v), hog(h), hog(0.5 * v)
    assert np.linalg.norm(fv - fh) > 1.0
    np.testing.assert_allclose(fv, fdim, atol=1e-2)


def test_bad_feature_names_are_refused():
    with pytest.raises(ValueError, match="unknown image feature"):
        ImageEncoder.parse("inception")
