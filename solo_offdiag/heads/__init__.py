"""Prediction heads (torch only): one registry, one small module per kind.

=============  ===============================================================  ==============
kind           definition                                                       trainable
=============  ===============================================================  ==============
``offdiag``    ``W = I + A * (1 - I)``, ``A`` zero-initialised (Wen & Li 2022)  off-diagonal
``identity``   ``W = I`` (no predictor)                                          nothing
``linear``     full ``W``, identity or random init                               all entries
``diagonal``   ``W = diag(s)``, ``s = 1`` at init (ablation)                      diagonal
``mlp``        Linear-BN-ReLU-Linear (BYOL, Grill et al. 2020)                   all
``directpred`` ``U diag(sqrt(s/max s)+eps) U^T`` of running ``F`` (Tian 2021)    nothing (set)
``directcopy`` ``F/||F|| + eps I`` of running ``F`` (Wang et al. 2021)            nothing (set)
=============  ===============================================================  ==============
"""

from solo_offdiag.heads import diagonal, directpred, identity, linear, mlp, offdiag  # noqa: F401
from solo_offdiag.heads.base import PredictionHead
from solo_offdiag.heads.diagonal import DiagonalHead
from solo_offdiag.heads.directpred import DirectCopyHead, DirectPredHead
from solo_offdiag.heads.identity import IdentityHead
from solo_offdiag.heads.linear import LinearHead
from solo_offdiag.heads.mlp import MLPHead
from solo_offdiag.heads.offdiag import OffDiagonalHead
from solo_offdiag.heads.registry import (
    HEADS,
    UnknownHeadError,
    build_head,
    head_options,
    list_heads,
    register_head,
)

__all__ = [
    "HEADS",
    "DiagonalHead",
    "DirectCopyHead",
    "DirectPredHead",
    "IdentityHead",
    "LinearHead",
    "MLPHead",
    "OffDiagonalHead",
    "PredictionHead",
    "UnknownHeadError",
    "build_head",
    "head_options",
    "list_heads",
    "register_head",
]
