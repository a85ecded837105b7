"""The "DP fine-tuning" peer: a small autoregressive generator over public-bin codes, pre-trained on a
PUBLIC split and fine-tuned on the private split with DP-SGD (Abadi et al. 2016) through Opacus.

Model: p(x) = Π_j p(x_j | x_<j) over the columns in a fixed order (the public config order). One
network serves every column: the input is the one-hot of the columns before j (the rest masked to
zero) plus a learned embedding of j, two ReLU layers, and logits restricted to column j's values.
Only ``nn.Linear`` and ``nn.Embedding`` layers, so Opacus computes exact per-sample gradients.

Public split (stated in RESULTS.md): the last ``n_public`` rows of adult.test. Those rows are taken
out of the test set our own evaluation uses for every method; the reference scorer uses all of
adult.test, so for this method its TSTR sees ~6% rows the generator was pre-trained on.

Privacy: only the fine-tuning reads private rows; per-sample clipping (``max_grad_norm``), Gaussian
noise, Poisson sampling; the noise multiplier is chosen by Opacus so that its accountant (PRV,
Gopi et al. 2021; RDP as a fallback) gives ``epsilon`` at ``delta`` after ``epochs`` epochs.
Nothing else is read from the private data (the domain is public; the pre-training data is public).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class DPSGDConfig:
    hidden: int = 128
    pretrain_epochs: int = 30
    pretrain_lr: float = 3e-3
    epochs: int = 5
    batch_size: int = 512
    lr: float = 2e-3
    max_grad_norm: float = 1.0
    accountant: str = "prv"


@dataclass
class DPSGDResult:
    codes: np.ndarray  # (n, d) sampled public-bin codes, columns in the order of ``sizes``
    epsilon: float  # the accountant's ε after fine-tuning (0 if not fine-tuned)
    noise_multiplier: float
    steps: int
    accountant: str
    history: list[dict[str, float]] = field(default_factory=list)


def _model(sizes: list[int], hidden: int) -> Any:
    import torch
    from torch import nn

    class ARGenerator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.sizes = sizes
            total, d = int(sum(sizes)), len(sizes)
            off = np.concatenate([[0], np.cumsum(sizes)])
            prefix = torch.zeros(d, total)
            outside = torch.full((d, total), -1e9)
            for j in range(d):
                prefix[j, : off[j]] = 1.0
                outside[j, off[j]: off[j + 1]] = 0.0
            self.register_buffer("offsets", torch.as_tensor(off[:-1], dtype=torch.long))
            self.register_buffer("prefix", prefix)
            self.register_buffer("outside", outside)
            self.inp = nn.Linear(total, hidden)
            self.pos = nn.Embedding(d, hidden)
            self.hid = nn.Linear(hidden, hidden)
            self.out = nn.Linear(hidden, total)

        def onehot(self, codes: Any) -> Any:
            x = torch.zeros(codes.shape[0], int(self.prefix.shape[1]), device=codes.device)
            return x.scatter_(1, codes + self.offsets[None, :], 1.0)

        def forward(self, codes: Any) -> Any:
            """Per-row negative log-likelihood (nats)."""
            b, d = codes.shape
            x = self.onehot(codes)[:, None, :] * self.prefix[None]  # (b, d, total)
            pos = self.pos(torch.arange(d, device=codes.device).expand(b, d))
            h = torch.relu(self.hid(torch.relu(self.inp(x) + pos)))
            logp = torch.log_softmax(self.out(h) + self.outside[None], dim=-1)
            return -logp.gather(2, (codes + self.offsets[None, :])[:, :, None]).sum(dim=(1, 2))

        @torch.no_grad()
        def sample(self, n: int, gen: Any, chunk: int = 4096) -> np.ndarray:
            d = len(self.sizes)
            out = np.empty((n, d), dtype=np.int64)
            for s in range(0, n, chunk):
                m = min(chunk, n - s)
                codes = torch.zeros(m, d, dtype=torch.long)
                x = torch.zeros(m, int(self.prefix.shape[1]))
                for j in range(d):
                    h = torch.relu(self.inp(x * self.prefix[j]) + self.pos.weight[j])
                    logits = self.out(torch.relu(self.hid(h))) + self.outside[j]
                    lo = int(self.offsets[j])
                    probs = torch.softmax(logits[:, lo: lo + self.sizes[j]], dim=-1)
                    codes[:, j] = torch.multinomial(probs, 1, generator=gen)[:, 0]
                    x[torch.arange(m), lo + codes[:, j]] = 1.0
                out[s: s + m] = codes.numpy()
            return out

    return ARGenerator()


def _epochs(model: Any, codes: Any, epochs: int, batch: int, lr: float, gen: Any) -> list[float]:
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-5)
    losses = []
    for _ in range(epochs):
        perm = torch.randperm(codes.shape[0], generator=gen)
        tot = 0.0
        for s in range(0, codes.shape[0], batch):
            loss = model(codes[perm[s: s + batch]]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * min(batch, codes.shape[0] - s)
        losses.append(tot / codes.shape[0])
    return losses


def fit_sample(private: np.ndarray | None, public: np.ndarray, sizes: list[int], epsilon: float, delta: float,
               n: int, seed: int, cfg: DPSGDConfig | None = None) -> DPSGDResult:
    """Pre-train on ``public`` codes; DP-fine-tune on ``private`` codes (None: public only); sample n rows."""
    import torch

    cfg = cfg or DPSGDConfig()
    torch.manual_seed(seed)  # Opacus draws its noise and Poisson batches from torch's default generator
    gen = torch.Generator().manual_seed(seed)
    model = _model(sizes, cfg.hidden)
    pub = torch.as_tensor(public, dtype=torch.long)
    hist = [{"stage": 0.0, "epoch": float(i), "nll": v}
            for i, v in enumerate(_epochs(model, pub, cfg.pretrain_epochs, 128, cfg.pretrain_lr, gen))]
    eps_spent, sigma, steps, acct = 0.0, 0.0, 0, "none (public only)"
    if private is not None:
        from opacus import PrivacyEngine
        from torch.utils.data import DataLoader, TensorDataset

        warnings.filterwarnings("ignore", module="opacus")
        priv = torch.as_tensor(private, dtype=torch.long)
        loader = DataLoader(TensorDataset(priv), batch_size=cfg.batch_size, shuffle=True, generator=gen)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        acct = cfg.accountant
        try:
            engine = PrivacyEngine(accountant=acct)
            dp_model, dp_opt, dp_loader = engine.make_private_with_epsilon(
                module=model, optimizer=opt, data_loader=loader, target_epsilon=epsilon, target_delta=delta,
                epochs=cfg.epochs, max_grad_norm=cfg.max_grad_norm)
        except Exception as exc:  # noqa: BLE001 - PRV can fail numerically at tiny q·steps; RDP is always defined
            warnings.warn(f"{acct} accountant failed ({exc}); using rdp", stacklevel=1)
            acct = "rdp"
            engine = PrivacyEngine(accountant=acct)
            dp_model, dp_opt, dp_loader = engine.make_private_with_epsilon(
                module=model, optimizer=opt, data_loader=loader, target_epsilon=epsilon, target_delta=delta,
                epochs=cfg.epochs, max_grad_norm=cfg.max_grad_norm)
        sigma = float(dp_opt.noise_multiplier)
        for ep in range(cfg.epochs):
            tot, cnt = 0.0, 0
            for (batch,) in dp_loader:
                if batch.shape[0] == 0:
                    continue
                loss = dp_model(batch).mean()
                dp_opt.zero_grad()
                loss.backward()
                dp_opt.step()
                steps += 1
                tot, cnt = tot + float(loss.detach()) * batch.shape[0], cnt + batch.shape[0]
            hist.append({"stage": 1.0, "epoch": float(ep), "nll": tot / max(cnt, 1)})
        eps_spent = float(engine.get_epsilon(delta))
        model = dp_model._module
    model.eval()
    rows = model.sample(n, gen)
    if not math.isfinite(eps_spent):
        raise RuntimeError("the accountant returned a non-finite epsilon")
    return DPSGDResult(rows, eps_spent, sigma, steps, acct, hist)
