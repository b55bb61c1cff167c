"""``byol_offdiag``: solo-learn's BYOL with any registered prediction head (default ``offdiag``).

Imports solo-learn: import it only after :func:`solo_offdiag.solo_adapter.require_solo`.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig
from solo.methods.byol import BYOL

from solo_offdiag.solo_adapter.methods.common import OffDiagHeadMixin, prepare_offdiag_cfg
from solo_offdiag.theory.model import batch_norm

__all__ = ["OUTPUT_NORM_EPS", "BYOLOffDiag"]

#: variance floor of ``predictor.output_norm: batch`` (the theory's BN without affine parameters,
#: :func:`solo_offdiag.theory.model.batch_norm`, over the batch of one device): far below BN's
#: 1e-5, so that small outputs (a projector at init: variance ~1e-4) are standardised too.
OUTPUT_NORM_EPS = 1e-8


class BYOLOffDiag(OffDiagHeadMixin, BYOL):
    """BYOL (Grill et al., NeurIPS 2020) whose predictor is a :mod:`solo_offdiag.heads` head.

    Wen & Li (NeurIPS 2022): "a linear prediction head with only off-diagonal entries trainable,
    initialised at the identity, suffices for BYOL to learn competitive representations".

    Extra cfg settings (all under ``method_kwargs``; solo's own keys keep BYOL's meaning)::

        proj_hidden_dim: 4096      # projector hidden width (solo's key)
        proj_output_dim: 256       # projector output = head dimension d (solo's key)
        pred_hidden_dim: 4096      # hidden width of the ``mlp`` head (solo's key)
        predictor:
          kind: offdiag            # any head kind (``solo-offdiag heads``)
          options: {}              # options of that kind
          lr: null                 # absolute lr of the head group (not batch-size scaled)
          weight_decay: null       # null = optimizer.weight_decay
          static_lr: false         # pin the head to optimizer.lr without schedule
          output_norm: none        # batch: BN without affine on p and the target z (the theory's)
        analysis: {...}            # solo_offdiag.analysis.config.AnalysisConfig

    Examples:
        ``python main_pretrain.py --config-path scripts/pretrain/cifar --config-name byol.yaml
        method=byol_offdiag +method_kwargs.predictor.kind=linear``
    """

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)  # BYOL builds backbone, projectors and its MLP predictor as usual
        self._install_head(cfg)

    # -- output normalisation (predictor.output_norm: batch) ---------------------------------
    def _normalise(self, out: dict[str, Any], key: str) -> dict[str, Any]:
        if self.offdiag_cfg.predictor.output_norm == "batch":
            out[key] = batch_norm(out[key], OUTPUT_NORM_EPS)
        return out

    def forward(self, X: torch.Tensor) -> dict[str, Any]:
        return self._normalise(super().forward(X), "p")

    def multicrop_forward(self, X: torch.Tensor) -> dict[str, Any]:
        return self._normalise(super().multicrop_forward(X), "p")

    def momentum_forward(self, X: torch.Tensor) -> dict[str, Any]:
        return self._normalise(super().momentum_forward(X), "z")  # the target (no gradient)

    @staticmethod
    def add_and_assert_specific_cfg(cfg: DictConfig) -> DictConfig:
        cfg = prepare_offdiag_cfg(cfg, static_lr_default=False)
        return super(BYOLOffDiag, BYOLOffDiag).add_and_assert_specific_cfg(cfg)

