"""A minimal LightningModule that follows the analysis protocol (tests, benchmark, example).

:class:`ToySimSiam` is SimSiam on vectors: an MLP backbone, a linear projector and any registered
prediction head, the symmetric negative-cosine loss with a stop-gradient target (the same network:
no EMA target, unlike BYOL, which keeps it tiny), and two views made by additive noise. It is *not* a
research model; it exists so that the callbacks can be exercised end to end without solo-learn.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from solo_offdiag.heads import build_head

__all__ = ["ToySimSiam", "toy_loader"]


class ToySimSiam(pl.LightningModule):
    """``feats = backbone(x)``, ``z = projector(feats)``, ``p = prediction_head(z)``.

    Args:
        in_dim, hidden_dim, feat_dim, z_dim: layer widths.
        head: a head kind of :func:`solo_offdiag.heads.build_head`, or ``None`` for a module
            without ``prediction_head`` (to test the protocol errors).
        lr: Adam learning rate.
        noise: std of the additive view noise.
        nan_steps: ``training_step`` returns NaN ``z`` for the batches after which
            ``trainer.global_step`` equals one of these (bad-input tests).
        return_embeddings: whether ``training_step``/``validation_step`` return ``z``/``feats``.
    """

    def __init__(
        self,
        in_dim: int = 16,
        hidden_dim: int = 32,
        feat_dim: int = 24,
        z_dim: int = 8,
        head: str | None = "offdiag",
        lr: float = 1e-2,
        noise: float = 0.3,
        nan_steps: Iterable[int] = (),
        return_embeddings: bool = True,
    ) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, feat_dim), nn.ReLU()
        )
        self.projector = nn.Sequential(nn.Linear(feat_dim, z_dim), nn.BatchNorm1d(z_dim))
        if head is not None:
            self.prediction_head = build_head(head, z_dim)
        self.lr = lr
        self.noise = noise
        self.nan_steps = set(nan_steps)
        self.return_embeddings = return_embeddings

    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.backbone(x)
        return feats, self.projector(feats)

    def _predict(self, z: torch.Tensor) -> torch.Tensor:
        head = getattr(self, "prediction_head", None)
        return z if head is None else head(z)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        (x,) = batch
        x1 = x + self.noise * torch.randn_like(x)
        x2 = x + self.noise * torch.randn_like(x)
        f1, z1 = self._embed(x1)
        _, z2 = self._embed(x2)
        p1, p2 = self._predict(z1), self._predict(z2)
        cos = nn.functional.cosine_similarity
        loss = 2 - cos(p1, z2.detach()).mean() - cos(p2, z1.detach()).mean()
        if not self.return_embeddings:
            return loss
        z_out = z1.detach()
        if self.global_step + 1 in self.nan_steps:
            z_out = torch.full_like(z_out, float("nan"))
        return {"loss": loss, "z": z_out, "feats": f1.detach()}

    def validation_step(self, batch: Any, batch_idx: int) -> Any:
        (x,) = batch
        feats, z = self._embed(x)
        if not self.return_embeddings:
            return None
        return {"z": z.detach(), "feats": feats.detach()}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def toy_loader(
    n: int = 512, in_dim: int = 16, batch_size: int = 64, *, seed: int = 0, shuffle: bool = True
) -> DataLoader:
    """Random vectors with a decaying spectrum (anisotropic Gaussian), as a one-tensor dataset."""
    generator = torch.Generator().manual_seed(seed)
    scales = torch.arange(1, in_dim + 1, dtype=torch.float32) ** -0.5
    data = torch.randn(n, in_dim, generator=generator) * scales
    return DataLoader(
        TensorDataset(data),
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed) if shuffle else None,
    )
