"""The paper's head: identity-initialised linear map with only off-diagonal entries trainable."""

from __future__ import annotations

import torch
from torch import nn

from solo_offdiag.heads.base import PredictionHead
from solo_offdiag.heads.registry import register_head

__all__ = ["OffDiagonalHead"]


@register_head("offdiag")
class OffDiagonalHead(PredictionHead):
    """``W = I + A * (1 - I)`` with ``A`` zero-initialised and the only parameter.

    Wen & Li (NeurIPS 2022), Sec. 1: "we replace the prediction head with a linear layer
    initialised as the identity and only train its off-diagonal entries". The diagonal of ``W`` is
    exactly 1 after any number of steps of any optimizer, because the mask removes ``A``'s
    diagonal from the forward pass (its gradient is exactly zero). This is why a gradient mask on a
    plain ``nn.Linear`` is *not* used: weight decay would shrink the diagonal, and LARS would
    compute its trust ratio on a norm that includes the identity. Here ``||A||`` is the norm of the
    trainable part only. ``eye`` and ``mask`` are non-persistent buffers, so the state dict holds
    ``A`` alone and both follow ``.to(device)``.

    Reference: Z. Wen, Y. Li. The Mechanism of Prediction Head in Non-contrastive Self-supervised
    Learning. NeurIPS 2022. arXiv:2205.06226.

    Examples:
        >>> head = OffDiagonalHead(4)
        >>> bool(torch.equal(head.matrix(), torch.eye(4)))
        True
    """

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.offdiag = nn.Parameter(torch.zeros(dim, dim))
        self.register_buffer("eye", torch.eye(dim), persistent=False)
        self.register_buffer("mask", 1.0 - torch.eye(dim), persistent=False)

    def matrix(self) -> torch.Tensor:
        return self.eye + self.offdiag * self.mask
