"""Evaluation of synthetic digit images: train-on-synthetic / test-on-real accuracy, a Fréchet
distance on a fixed network's features, and PNG sample grids.

Classifier (torch, CPU): one fixed small CNN — conv5×5(1→16, pad 2)-ReLU-maxpool2,
conv5×5(16→32, pad 2)-ReLU-maxpool2, dense(1568→128)-ReLU, dense(128→10); Adam lr 1e-3 with cosine
decay to 0, batch 128, 4 epochs, no augmentation, no validation split, final weights scored. The
recipe was fixed before any synthetic set was scored and never tuned on the real test set. torch
rather than JAX because torch's CPU convolutions are faster here and the reference scorer
(../shared/bench/score_mnist.py) uses torch too.

Fréchet distance (``fd``): between 128-d penultimate features of synthetic images and of the real
test images, from the same architecture trained once (seed 0, 2 epochs) on the real MNIST training
set and cached. It is NOT comparable with Inception FID values in papers; compare it only with
other runs of this module.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pe_tabular.io_utils import atomic_write, atomic_write_npz

log = logging.getLogger(__name__)
MEAN, STD = 0.1307, 0.3081  # public MNIST normalisation constants
RECIPE = {"arch": "conv5x5(16)-pool-conv5x5(32)-pool-fc128-fc10", "optimizer": "adam", "lr": 1e-3,
          "schedule": "cosine", "batch": 128, "epochs": 4, "augmentation": None, "framework": "torch-cpu"}
FD_RECIPE = {"features": "penultimate 128-d of the same arch", "trained_on": "real MNIST train 60k",
             "epochs": 2, "seed": 0}


def _torch(threads: int | None):
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch


def make_net(torch):
    nn = torch.nn

    class DigitNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
            self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
            self.fc1 = nn.Linear(32 * 7 * 7, 128)
            self.fc2 = nn.Linear(128, 10)

        def features(self, x):
            f = torch.nn.functional
            x = f.max_pool2d(f.relu(self.conv1(x)), 2)
            x = f.max_pool2d(f.relu(self.conv2(x)), 2)
            return self.fc1(x.flatten(1))

        def forward(self, x):
            return self.fc2(torch.relu(self.features(x)))

    return DigitNet()


def _tensor(torch, images: np.ndarray):
    from renderers.digits.encoder import as_float_images

    x = as_float_images(images)
    return torch.from_numpy(((x - MEAN) / STD).astype(np.float32)[:, None])


def train_classifier(images: np.ndarray, labels: np.ndarray, *, epochs: int = RECIPE["epochs"], seed: int = 0,
                     threads: int | None = 2, log_fn: Callable[[str], None] | None = None):
    """Train the fixed CNN; returns the torch module (eval mode)."""
    torch = _torch(threads)
    torch.manual_seed(seed)
    net = make_net(torch)
    X, Y = _tensor(torch, images), torch.from_numpy(np.asarray(labels, dtype=np.int64))
    n = len(Y)
    if n == 0:
        raise ValueError("no training images")
    bs = RECIPE["batch"]
    steps = max(1, math.ceil(n / bs))
    total = epochs * steps
    opt = torch.optim.Adam(net.parameters(), lr=RECIPE["lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    rng = np.random.default_rng(seed)
    net.train()
    for ep in range(epochs):
        perm = torch.from_numpy(rng.permutation(n))
        correct = 0
        for i in range(steps):
            idx = perm[i * bs:(i + 1) * bs]
            opt.zero_grad(set_to_none=True)
            out = net(X[idx])
            loss = torch.nn.functional.cross_entropy(out, Y[idx])
            loss.backward()
            opt.step()
            sched.step()
            correct += int((out.argmax(1) == Y[idx]).sum())
        if log_fn:
            log_fn(f"epoch {ep + 1}/{epochs}: train acc {correct / n:.4f}")
    net.eval()
    return net


def predict(net, images: np.ndarray, *, features: bool = False, batch: int = 2000) -> np.ndarray:
    import torch

    outs = []
    with torch.no_grad():
        for s in range(0, len(images), batch):
            xb = _tensor(torch, images[s:s + batch])
            outs.append((net.features(xb) if features else net(xb)).numpy())
    return np.concatenate(outs).astype(np.float64)


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017)."""
    from scipy import linalg

    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        off = np.eye(len(s1)) * 1e-6
        covmean = linalg.sqrtm((s1 + off) @ (s2 + off))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(np.real(covmean)))


def cache_dir() -> Path:
    d = Path(os.environ.get("PE_TABULAR_CACHE", Path.home() / ".cache" / "pe-tabular"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def feature_net(real_train: tuple[np.ndarray, np.ndarray], threads: int | None = 2):
    """The fixed FD feature network, trained once on real MNIST train and cached as .npz (no pickle)."""
    torch = _torch(threads)
    path = cache_dir() / "digits_fd_net_v1.npz"
    net = make_net(torch)
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            net.load_state_dict({k: torch.from_numpy(z[k]) for k in net.state_dict()})
        net.eval()
        return net
    log.info("training the fixed FD feature network on real MNIST train (once; cached in %s)", path)
    net = train_classifier(*real_train, epochs=FD_RECIPE["epochs"], seed=FD_RECIPE["seed"], threads=threads)
    atomic_write_npz(path, {k: v.detach().numpy() for k, v in net.state_dict().items()})
    return net


def evaluate(images: np.ndarray, labels: np.ndarray, test: tuple[np.ndarray, np.ndarray], *,
             real_train: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0, threads: int | None = 2,
             epochs: int = RECIPE["epochs"], fd_max: int = 10000,
             log_fn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Accuracy on ``test`` of the fixed CNN trained on the synthetic set (+ FD when real_train given)."""
    labels = np.asarray(labels, dtype=np.int64)
    t0 = time.time()
    net = train_classifier(images, labels, epochs=epochs, seed=seed, threads=threads, log_fn=log_fn)
    pred = predict(net, test[0]).argmax(1)
    yt = np.asarray(test[1])
    out: dict[str, Any] = {
        "acc": float((pred == yt).mean()),
        "per_class_acc": [round(float((pred[yt == c] == c).mean()), 4) for c in range(10)],
        "confusion": np.bincount(yt * 10 + pred, minlength=100).reshape(10, 10).tolist(),  # rows: true class
        "n_images": int(len(labels)), "class_counts": np.bincount(labels, minlength=10).tolist(),
        "train_s": round(time.time() - t0, 1), "seed": seed, "recipe": RECIPE,
    }
    if real_train is not None:
        fnet = feature_net(real_train, threads)
        rng = np.random.default_rng(seed)
        sub = rng.choice(len(images), fd_max, replace=False) if len(images) > fd_max else np.arange(len(images))
        out["fd"] = frechet_distance(predict(fnet, images[sub], features=True), predict(fnet, test[0], features=True))
        out["fd_recipe"] = FD_RECIPE
    return out


def sample_grid(images: np.ndarray, labels: np.ndarray, per_class: int = 10, classes: Sequence[int] = range(10),
                rng: np.random.Generator | None = None) -> np.ndarray:
    """A (10·28, per_class·28) uint8 mosaic: one row per class (blank where a class has fewer samples)."""
    from renderers.digits.encoder import as_float_images

    x = as_float_images(images)
    h, w = x.shape[1:]
    grid = np.zeros((len(classes) * h, per_class * w), dtype=np.float32)
    for r, c in enumerate(classes):
        idx = np.flatnonzero(np.asarray(labels) == c)
        if rng is not None and len(idx) > per_class:
            idx = np.sort(rng.choice(idx, per_class, replace=False))
        for j, i in enumerate(idx[:per_class]):
            grid[r * h:(r + 1) * h, j * w:(j + 1) * w] = x[i]
    return (grid * 255 + 0.5).astype(np.uint8)


def save_grid(path: str | Path, images: np.ndarray, labels: np.ndarray, per_class: int = 10, scale: int = 2,
              rng: np.random.Generator | None = None) -> Path:
    """Write a PNG sample grid (one row per class), atomically."""
    import matplotlib.image

    g = sample_grid(images, labels, per_class, rng=rng)
    if scale > 1:
        g = np.kron(g, np.ones((scale, scale), dtype=np.uint8))
    return atomic_write(path, lambda t: matplotlib.image.imsave(t, g, cmap="gray", vmin=0, vmax=255, format="png"))


def save_json(path: str | Path, record: dict[str, Any]) -> Path:
    from pe_tabular.io_utils import atomic_write_text

    return atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")
