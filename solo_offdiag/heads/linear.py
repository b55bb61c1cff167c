"""A full trainable linear head (all ``d*d`` entries)."""

from __future__ import annotations

import math

import torch
from torch import nn

from solo_offdiag.heads.base import PredictionHead
from solo_offdiag.heads.registry import register_head

__all__ = ["LinearHead"]

_INITS = ("identity", "random")


@register_head("linear")
class LinearHead(PredictionHead):
    """``W`` a full trainable ``d x d`` matrix, no bias.

    ``init="identity"`` starts at ``I`` (the paper's initialisation, every entry trainable);
    ``init="random"`` uses ``nn.Linear``'s default (Kaiming-uniform, a = sqrt(5)), the linear
    predictor of Tian, Chen & Ganguli (ICML 2021) trained by gradient descent.
    """

    def __init__(self, dim: int, *, init: str = "identity") -> None:
        super().__init__(dim)
        if init not in _INITS:
            raise ValueError(f"linear head init must be one of {', '.join(_INITS)}; got {init!r}")
        self.init = init
        self.weight = nn.Parameter(torch.empty(dim, dim))
        if init == "identity":
            with torch.no_grad():
                self.weight.copy_(torch.eye(dim))
        else:
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def matrix(self) -> torch.Tensor:
        return self.weight

    def extra_repr(self) -> str:
        return f"dim={self.dim}, init={self.init!r}"
