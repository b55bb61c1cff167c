"""The prediction-head protocol shared by every head kind.

A head maps projector outputs ``z`` of shape ``[N, d]`` to predictions ``p`` of shape ``[N, d]``.
Linear heads also expose their effective matrix ``W`` (``p = z @ W.T``, the ``nn.Linear``
convention), which the analysis callbacks and the theory read.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

__all__ = ["PredictionHead"]


class PredictionHead(nn.Module):
    """Base class of all prediction heads.

    Attributes:
        kind: registry name of the head (set by :func:`solo_offdiag.heads.register_head`).
        is_linear: whether :meth:`matrix` returns the head's effective ``d x d`` matrix.
        dim: input and output dimension ``d``.
    """

    kind: ClassVar[str] = ""
    is_linear: ClassVar[bool] = True

    def __init__(self, dim: int) -> None:
        super().__init__()
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"head dim must be a positive integer, got {dim!r}")
        self.dim = dim

    def matrix(self) -> torch.Tensor | None:
        """The effective matrix ``W`` with ``forward(z) == z @ W.T``, or ``None`` if nonlinear."""
        raise NotImplementedError

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        weight = self.matrix()
        if weight is None:  # pragma: no cover - nonlinear heads override forward
            raise NotImplementedError
        return nn.functional.linear(z, weight.to(z.dtype))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
