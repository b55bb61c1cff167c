"""``byol_offdiag``: solo-learn's BYOL with any registered prediction head (default ``offdiag``).

Imports solo-learn: import it only after :func:`solo_offdiag.solo_adapter.require_solo`.
"""

from __future__ import annotations

from omegaconf import DictConfig
from solo.methods.byol import BYOL

from solo_offdiag.solo_adapter.methods.common import OffDiagHeadMixin, prepare_offdiag_cfg

__all__ = ["BYOLOffDiag"]


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
        analysis: {...}            # solo_offdiag.analysis.config.AnalysisConfig

    Examples:
        ``python main_pretrain.py --config-path scripts/pretrain/cifar --config-name byol.yaml
        method=byol_offdiag +method_kwargs.predictor.kind=linear``
    """

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)  # BYOL builds backbone, projectors and its MLP predictor as usual
        self._install_head(cfg)

    @staticmethod
    def add_and_assert_specific_cfg(cfg: DictConfig) -> DictConfig:
        cfg = prepare_offdiag_cfg(cfg, static_lr_default=False)
        return super(BYOLOffDiag, BYOLOffDiag).add_and_assert_specific_cfg(cfg)
