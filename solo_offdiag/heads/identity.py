"""The frozen identity head: no predictor at all."""

from __future__ import annotations

import torch

from solo_offdiag.heads.base import PredictionHead
from solo_offdiag.heads.registry import register_head

__all__ = ["IdentityHead"]


@register_head("identity")
class IdentityHead(PredictionHead):
    """``W = I``, frozen, no parameters: the "no prediction head" arm.

    Wen & Li (NeurIPS 2022), Sec. 2: without a prediction head, even with BatchNorm, every neuron
    learns only the strong feature -- dimensional collapse. Having no parameters, it adds no
    unused parameters under DDP.
    """

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.register_buffer("eye", torch.eye(dim), persistent=False)

    def matrix(self) -> torch.Tensor:
        return self.eye

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z
