"""Image encoders from *public* features only: pixels, HOG, random projections (L2 metric).

Nothing here is fitted: every feature is a fixed function of one image (down-sampled pixels,
histograms of oriented gradients, a Gaussian random projection drawn from a fixed seed), so encoding
the private images reveals nothing through the encoder itself and the private and synthetic images
land in the same space. This is the DESIGN rule "images by public features — never a model trained
on the private data"; PE (Lin et al., ICLR 2024) voted in an Inception embedding instead, which needs
a network we do not have offline and which is not a good fit for 28×28 digits anyway.

HOG follows Dalal & Triggs (CVPR 2005): central-difference gradients, unsigned orientations soft-binned
into ``hog_bins`` bins, ``hog_cell``×``hog_cell`` pixel cells, 2×2-cell blocks L2-normalised with
clipping at 0.2 (L2-Hys). Our own vectorised numpy implementation (no scikit-image).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from pe_tabular.distance import L2Metric

FEATURES = ("pixels", "hog", "rp")


def as_float_images(samples: np.ndarray) -> np.ndarray:
    """float32 (n, h, w) in [0, 1] from uint8 (0..255) or float images; (n, h*w) with square h=w allowed."""
    x = np.asarray(samples)
    if x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise ValueError(f"flat images of width {x.shape[1]} are not square; pass (n, h, w)")
        x = x.reshape(len(x), side, side)
    if x.ndim == 4 and 1 in (x.shape[1], x.shape[-1]):
        x = x.reshape(x.shape[0], *[s for s in x.shape[1:] if s != 1])
    if x.ndim != 3:
        raise ValueError(f"images must have shape (n, h, w), got {x.ndim} dimensions (image shape {x.shape[1:]})")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    return x.astype(np.float32, copy=False)


def downsample(x: np.ndarray, factor: int) -> np.ndarray:
    """Block means over factor×factor pixels (the image is cropped to a multiple of factor)."""
    if factor == 1:
        return x
    n, h, w = x.shape
    h2, w2 = h // factor, w // factor
    return x[:, :h2 * factor, :w2 * factor].reshape(n, h2, factor, w2, factor).mean(axis=(2, 4))


def hog(x: np.ndarray, cell: int = 4, bins: int = 9, block: bool = True) -> np.ndarray:
    """HOG descriptors (n, d) of float images (n, h, w)."""
    n, h, w = x.shape
    gx = np.zeros_like(x)
    gy = np.zeros_like(x)
    gx[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
    gy[:, 1:-1, :] = x[:, 2:, :] - x[:, :-2, :]
    mag = np.sqrt(gx * gx + gy * gy)
    ang = np.mod(np.arctan2(gy, gx), np.pi) * (bins / np.pi) - 0.5  # bin centres at integers
    lo = np.floor(ang)
    frac = (ang - lo).astype(np.float32)
    b0 = np.mod(lo, bins).astype(np.int64)
    b1 = np.mod(lo + 1, bins).astype(np.int64)
    ch, cw = h // cell, w // cell
    hc, wc = ch * cell, cw * cell
    cid = ((np.arange(hc) // cell)[:, None] * cw + (np.arange(wc) // cell)[None, :]).ravel()
    base = ((np.arange(n) * (ch * cw))[:, None] + cid[None, :]) * bins
    m = mag[:, :hc, :wc].reshape(n, -1)
    f = frac[:, :hc, :wc].reshape(n, -1)
    size = n * ch * cw * bins
    hist = (np.bincount((base + b0[:, :hc, :wc].reshape(n, -1)).ravel(), (m * (1 - f)).ravel(), size)
            + np.bincount((base + b1[:, :hc, :wc].reshape(n, -1)).ravel(), (m * f).ravel(), size))
    hist = hist.astype(np.float32)
    hist = hist.reshape(n, ch, cw, bins)
    if not block:
        return (hist / (np.sqrt((hist**2).sum(axis=(1, 2, 3), keepdims=True)) + 1e-6)).reshape(n, -1)
    blk = np.concatenate([hist[:, :-1, :-1], hist[:, 1:, :-1], hist[:, :-1, 1:], hist[:, 1:, 1:]], axis=-1)
    blk = blk / np.sqrt((blk**2).sum(-1, keepdims=True) + 1e-4)
    blk = np.minimum(blk, 0.2)
    blk = blk / np.sqrt((blk**2).sum(-1, keepdims=True) + 1e-4)
    return blk.reshape(n, -1)


@dataclass(frozen=True)
class ImageEncoder:
    """Concatenation of fixed feature blocks, each scaled by its weight; float32, squared L2.

    ``features``: any of 'pixels' (down-sampled by ``downsample``), 'hog', 'rp' (Gaussian random
    projection of the pixels to ``rp_dim`` dims, matrix from ``seed`` — data-independent)."""

    features: tuple[str, ...] = ("pixels",)
    downsample: int = 1
    hog_cell: int = 4
    hog_bins: int = 9
    hog_block: bool = True
    rp_dim: int = 64
    seed: int = 0
    weights: tuple[float, ...] | None = None
    metric: L2Metric = field(default_factory=L2Metric)

    def __post_init__(self) -> None:
        bad = [f for f in self.features if f not in FEATURES]
        if bad or not self.features:
            raise ValueError(f"unknown image feature(s) {bad}; choose from {FEATURES}")
        if self.downsample < 1:
            raise ValueError("downsample must be >= 1")
        if self.weights is not None and len(self.weights) != len(self.features):
            raise ValueError(f"weights has {len(self.weights)} entries for {len(self.features)} features")

    @classmethod
    def parse(cls, spec: str, **kw) -> ImageEncoder:
        """From a CLI string like 'pixels', 'hog', 'pixels+hog', 'pixels:2+hog' (':2' = downsample)."""
        feats: list[str] = []
        for part in spec.split("+"):
            name, _, arg = part.strip().partition(":")
            if name == "pixels" and arg:
                kw["downsample"] = int(arg)
            feats.append(name)
        return cls(tuple(feats), **kw)

    @cached_property
    def _projection(self) -> np.ndarray:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x5EED]))
        return rng.standard_normal((784, self.rp_dim)).astype(np.float32) / np.float32(np.sqrt(self.rp_dim))

    def encode(self, samples: np.ndarray, batch: int = 8192) -> np.ndarray:
        x = as_float_images(samples)
        parts = [self._encode(x[s:s + batch]) for s in range(0, len(x), batch)] if len(x) else [self._encode(x)]
        return np.concatenate(parts).astype(np.float32)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        blocks: list[np.ndarray] = []
        ws: Sequence[float] = self.weights or (1.0,) * len(self.features)
        for f, wgt in zip(self.features, ws):
            if f == "pixels":
                b = downsample(x, self.downsample).reshape(len(x), -1)
            elif f == "hog":
                b = hog(x, self.hog_cell, self.hog_bins, self.hog_block)
            else:
                if x.shape[1:] != (28, 28):
                    raise ValueError(f"random projection expects 28x28 images, got {x.shape[1:]}")
                b = x.reshape(len(x), -1) @ self._projection
            blocks.append(b * np.float32(wgt))
        return np.concatenate(blocks, axis=1).astype(np.float32)
