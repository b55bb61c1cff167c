"""``simsiam_offdiag``: solo-learn's SimSiam with any registered prediction head (no EMA).

The theory's setting (Wen & Li 2022, Sec. 2): the target branch shares the online weights under a
stop-gradient, the outputs pass a BatchNorm without affine parameters (solo's SimSiam projector
ends with ``BatchNorm1d(affine=False)``), and the online branch has the head ``E``.

Imports solo-learn: import it only after :func:`solo_offdiag.solo_adapter.require_solo`.
"""

from __future__ import annotations

from omegaconf import DictConfig
from solo.methods.simsiam import SimSiam

from solo_offdiag.solo_adapter.methods.common import OffDiagHeadMixin, prepare_offdiag_cfg

__all__ = ["SimSiamOffDiag"]


class SimSiamOffDiag(OffDiagHeadMixin, SimSiam):
    """SimSiam (Chen & He, CVPR 2021) whose predictor is a :mod:`solo_offdiag.heads` head.

    Same ``method_kwargs`` as :class:`~solo_offdiag.solo_adapter.methods.byol_offdiag.BYOLOffDiag`,
    except the default of ``predictor.static_lr``: like solo's SimSiam (and Chen & He's "fixed lr
    for the predictor"), the head group is pinned to ``optimizer.lr`` unless ``predictor.lr`` or
    ``predictor.static_lr`` is given.
    """

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        self._install_head(cfg)

    @staticmethod
    def add_and_assert_specific_cfg(cfg: DictConfig) -> DictConfig:
        cfg = prepare_offdiag_cfg(cfg, static_lr_default=True, output_norm=False)
        return super(SimSiamOffDiag, SimSiamOffDiag).add_and_assert_specific_cfg(cfg)
