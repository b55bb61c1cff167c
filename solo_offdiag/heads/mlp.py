"""BYOL's standard MLP prediction head."""

from __future__ import annotations

import torch
from torch import nn

from solo_offdiag.heads.base import PredictionHead
from solo_offdiag.heads.registry import register_head

__all__ = ["MLPHead"]


@register_head("mlp")
class MLPHead(PredictionHead):
    """``Linear(d, h) -> BatchNorm1d(h) -> ReLU -> Linear(h, d)``.

    Grill et al., "Bootstrap your own latent", NeurIPS 2020, Sec. 3.3: the predictor "uses the
    same architecture as the projector", a 4096-wide hidden layer. Built in the same layer order
    as solo-learn's BYOL predictor, so ``predictor.kind=mlp`` is the BYOL baseline arm.
    """

    is_linear = False

    def __init__(self, dim: int, *, hidden_dim: int = 4096) -> None:
        super().__init__(dim)
        if not isinstance(hidden_dim, int) or isinstance(hidden_dim, bool) or hidden_dim < 1:
            raise ValueError(f"mlp head hidden_dim must be a positive integer, got {hidden_dim!r}")
        self.hidden_dim = hidden_dim
        self.net = nn.Sequential(
            nn.Linear(dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, dim),
        )

    def matrix(self) -> None:
        return None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, hidden_dim={self.hidden_dim}"
