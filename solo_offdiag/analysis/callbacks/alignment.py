"""``EigenAlignmentCallback``: how the head's eigenvectors align with its input correlation."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer

from solo_offdiag.analysis import metrics as M
from solo_offdiag.analysis.buffers import gather_sum
from solo_offdiag.analysis.callbacks.base import (
    DEFAULTS,
    AnalysisCallback,
    all_finite,
    copy64,
    for_compute,
    to_f32,
)
from solo_offdiag.analysis.callbacks.state import StepSeries
from solo_offdiag.analysis.config import AnalysisConfig
from solo_offdiag.analysis.protocol import embeddings_from, head_matrix

__all__ = ["EigenAlignmentCallback", "from_config"]


class EigenAlignmentCallback(AnalysisCallback):
    """Alignment of the head ``W`` with the eigenvectors of the correlation ``F`` of its input.

    ``F = sum z_i z_i^T / N`` is accumulated on the device over every training batch between two
    logging points (one ``d x d`` matmul per step, no sync), then gathered and reset. Logs
    ``align/mean``, ``align/weighted_mean`` and ``align/commutator`` of
    :func:`solo_offdiag.analysis.metrics.eigen_alignment`; ``alignment.npz`` holds the per-mode
    alignment and the eigenvalues of ``F`` at every logging point.

    Raises:
        AnalysisProtocolError: at ``setup``, when the module has no linear ``prediction_head``.
    """

    npz_name = "alignment.npz"
    series = ("points",)

    def __init__(
        self,
        *,
        every_n_steps: int = DEFAULTS.every_n_steps,
        embedding: str = "z",
        out_dir: str | Path | None = None,
        stop_on_nan: bool = DEFAULTS.stop_on_nan,
        background: bool | str = DEFAULTS.background,
    ) -> None:
        super().__init__(
            every_n_steps=every_n_steps,
            out_dir=out_dir,
            stop_on_nan=stop_on_nan,
            background=background,
        )
        self.embedding = embedding
        self._sum: torch.Tensor | None = None
        self._count = 0
        #: per logging point: per-mode alignment and eigenvalues of F (float32, descending).
        self.points = StepSeries(("per_mode", "eigvals"))

    def _check_module(self, pl_module: LightningModule) -> None:
        head_matrix(pl_module, who=type(self).__name__)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        z = embeddings_from(outputs, self.embedding)
        if z is None:
            self._warn_once(
                "missing",
                f"EigenAlignmentCallback: training_step outputs have no '{self.embedding}' "
                "embeddings (see solo_offdiag.analysis.protocol); alignment is skipped",
            )
        else:
            z = z.float()
            if self._sum is None or self._sum.shape[0] != z.shape[1]:
                self._sum = torch.zeros(z.shape[1], z.shape[1], device=z.device)
            self._sum.addmm_(z.T, z)
            self._count += z.shape[0]
        if self._due(trainer) and self._sum is not None:
            step = trainer.global_step
            self._last_step = step
            world = trainer.world_size
            total = gather_sum(self._sum, pl_module.all_gather, world)
            count: int | torch.Tensor = self._count
            if world > 1:  # a tensor: its value is read by the worker, not here
                count = torch.tensor(float(self._count), device=self._sum.device)
                count = gather_sum(count, pl_module.all_gather, world)
            if trainer.is_global_zero:
                weight = head_matrix(pl_module, who=type(self).__name__)
                apply = functools.partial(self._apply_alignment, trainer, step)
                self._dispatch(step, (total, count, weight), _correlation, _alignment_job, apply)
            self._sum.zero_()  # after the snapshot (stream order on a device, a clone on CPU)
            self._count = 0
            if self.stop_on_nan:
                self._broadcast_stop(trainer)
        self._sync(trainer)

    def _apply_alignment(self, trainer: Trainer, step: int, result: _AlignmentResult) -> None:
        keys = ["align/mean", "align/weighted_mean", "align/commutator"]
        what = f"the '{self.embedding}' correlation or head"
        self._report_non_finite(trainer, step, what, result.finite, keys)
        self.points.record(step, per_mode=result.per_mode, eigvals=result.eigenvalues)
        self._record(trainer, step, {f"align/{k}": v for k, v in result.scalars.items()})

    def _arrays(self) -> dict[str, Any] | None:
        if not self.points:
            return None
        return {
            "steps": self.points.steps_array(),
            "per_mode": self.points.table("per_mode"),
            "corr_eigvals": self.points.table("eigvals"),
        }


class _AlignmentResult(NamedTuple):
    scalars: dict[str, float]
    finite: bool
    per_mode: np.ndarray  # float32
    eigenvalues: np.ndarray  # float32, descending


def _correlation(
    total: torch.Tensor, count: int | torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Device-side float64 snapshots: ``F = sum z z^T / N`` and ``W``."""
    return copy64(total) / count, copy64(weight)


def _alignment_job(parts: tuple[torch.Tensor, torch.Tensor]) -> _AlignmentResult:
    corr, weight = (for_compute(x) for x in parts)
    weight = weight.to(corr.device)
    result = M.eigen_alignment(weight, corr)
    return _AlignmentResult(
        result.scalars(), all_finite(corr, weight), to_f32(result.per_mode), to_f32(result.eigenvalues)
    )


def from_config(cfg: AnalysisConfig, common: dict[str, Any]) -> EigenAlignmentCallback:
    """The callback of ``method_kwargs.analysis`` (``common``: the keys every callback takes)."""
    return EigenAlignmentCallback(**common)
