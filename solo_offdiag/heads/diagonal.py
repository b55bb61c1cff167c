"""Diagonal-only head (ablation): the complement of the paper's off-diagonal head."""

from __future__ import annotations

import torch
from torch import nn

from solo_offdiag.heads.base import PredictionHead
from solo_offdiag.heads.registry import register_head

__all__ = ["DiagonalHead"]


@register_head("diagonal")
class DiagonalHead(PredictionHead):
    """``W = diag(s)`` with ``s`` initialised to ones and the only parameter.

    Ablation: the theory's substitution effect needs off-diagonal entries (one neuron's feature
    is fed into another through ``E21``); a diagonal head can only rescale each neuron.
    """

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.scale = nn.Parameter(torch.ones(dim))

    def matrix(self) -> torch.Tensor:
        return torch.diag(self.scale)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.scale.to(z.dtype)
