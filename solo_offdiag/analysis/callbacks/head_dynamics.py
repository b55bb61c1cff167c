"""``HeadDynamicsCallback``: statistics of the linear prediction head and its trajectory."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer

from solo_offdiag.analysis import metrics as M
from solo_offdiag.analysis.callbacks.base import DEFAULTS, AnalysisCallback, all_finite, copy64
from solo_offdiag.analysis.callbacks.state import StepSeries, as_numpy, column
from solo_offdiag.analysis.config import AnalysisConfig
from solo_offdiag.analysis.protocol import head_matrix

__all__ = ["HeadDynamicsCallback", "from_config"]


class HeadDynamicsCallback(AnalysisCallback):
    """Head statistics every ``every_n_steps`` and a compact trajectory of the head matrix.

    Logs ``head/<stat>`` for each statistic of :func:`solo_offdiag.analysis.metrics.head_stats`
    (``dist_identity`` = ``||W - I||_F``, ``offdiag_fro``, ``offdiag_mean_abs``,
    ``offdiag_max_abs``, ``asymmetry``, ``sym_eig_min``, ``sym_eig_max``, ``condition_number``),
    also at step 0 (the identity initialisation). ``head_trajectory.npz`` keeps ``W - I`` in
    float16 (relative precision ~5e-4) every ``trajectory_every``-th logging point; when more than
    ``max_snapshots`` are kept, every other one is dropped and the stride doubles, so the file stays
    bounded (``max_snapshots * d^2 * 2`` bytes) while covering the whole run evenly.

    Raises:
        AnalysisProtocolError: at ``setup``, when the module has no linear ``prediction_head``.
    """

    npz_name = "head_trajectory.npz"
    series = ("points",)

    def __init__(
        self,
        *,
        every_n_steps: int = DEFAULTS.every_n_steps,
        trajectory_every: int = DEFAULTS.trajectory_every,
        max_snapshots: int = 128,
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
        if trajectory_every < 1 or max_snapshots < 2:
            raise ValueError("trajectory_every must be >= 1 and max_snapshots >= 2")
        self.trajectory_every = trajectory_every
        self.max_snapshots = max_snapshots
        self._stride = trajectory_every
        self._n_points = 0  # logging points seen (index of the next one)
        self._snapshots: list[tuple[int, int, np.ndarray]] = []  # (point index, step, W - I)
        #: per logging point: eigenvalues of (W + W^T) / 2 (float32, descending).
        self.points = StepSeries(("sym_eigs",), steps_key="stat_steps")

    def _check_module(self, pl_module: LightningModule) -> None:
        head_matrix(pl_module, who=type(self).__name__)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.global_step == 0 and not self._restored and trainer.is_global_zero:
            self._log_head(trainer, pl_module, 0)
        super().on_train_start(trainer, pl_module)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._due(trainer):
            step = trainer.global_step
            self._last_step = step
            if trainer.is_global_zero:  # every rank holds the same W: no gather needed
                self._log_head(trainer, pl_module, step)
            if self.stop_on_nan:
                self._broadcast_stop(trainer)
        self._sync(trainer)

    def _log_head(self, trainer: Trainer, pl_module: LightningModule, step: int) -> None:
        weight = head_matrix(pl_module, who=type(self).__name__)
        apply = functools.partial(self._apply_head, trainer, step)
        self._dispatch(step, (weight,), copy64, _head_job, apply)

    def _apply_head(self, trainer: Trainer, step: int, result: _HeadResult) -> None:
        names = [f"head/{k}" for k in result.scalars]
        self._report_non_finite(trainer, step, "the prediction head matrix", result.finite, names)
        self.points.record(step, sym_eigs=result.sym_eigenvalues)
        if self._n_points % self._stride == 0:
            self._snapshots.append((self._n_points, step, result.delta))
            if len(self._snapshots) > self.max_snapshots:
                self._stride *= 2
                self._snapshots = [s for s in self._snapshots if s[0] % self._stride == 0]
        self._n_points += 1
        self._record(trainer, step, {f"head/{k}": v for k, v in result.scalars.items()})

    def _arrays(self) -> dict[str, Any] | None:
        if not self.points:
            return None
        steps = self.points.steps
        out: dict[str, Any] = {
            "steps": np.array([s[1] for s in self._snapshots], dtype=np.int64),
            "delta": np.stack([s[2] for s in self._snapshots]),
            "stat_steps": self.points.steps_array(),
            "sym_eigvals": self.points.table("sym_eigs"),
        }
        for key in M.HeadStats.__dataclass_fields__:
            if key != "sym_eigenvalues":
                out[key] = column(self.rows, steps, f"head/{key}")
        return out

    def _truncate_arrays(self, step: int) -> None:
        self._snapshots = [s for s in self._snapshots if s[1] <= step]
        self._n_points = len(self.points)

    def _extra_state(self) -> dict[str, Any]:
        return {
            "stride": self._stride,
            "n_points": self._n_points,
            "snapshots": [(i, s, torch.from_numpy(a)) for i, s, a in self._snapshots],
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._stride = int(state.get("stride", self.trajectory_every))
        self._n_points = int(state.get("n_points", 0))
        self._snapshots = [(int(i), int(s), as_numpy(a)) for i, s, a in state.get("snapshots", [])]



class _HeadResult(NamedTuple):
    scalars: dict[str, float]
    finite: bool
    sym_eigenvalues: np.ndarray  # float32, descending
    delta: np.ndarray  # W - I, float16


def _head_job(weight: torch.Tensor) -> _HeadResult:
    """Head statistics of a float64 snapshot of ``W`` (worker or inline)."""
    w = weight.to("cpu", torch.float64)
    stats = M.head_stats(w)
    delta = w - torch.eye(w.shape[0], dtype=w.dtype)
    return _HeadResult(
        stats.scalars(),
        all_finite(w),
        stats.sym_eigenvalues.numpy().astype(np.float32),
        delta.numpy().astype(np.float16),
    )


def from_config(cfg: AnalysisConfig, common: dict[str, Any]) -> HeadDynamicsCallback:
    """The callback of ``method_kwargs.analysis`` (``common``: the keys every callback takes)."""
    return HeadDynamicsCallback(trajectory_every=cfg.trajectory_every, **common)
