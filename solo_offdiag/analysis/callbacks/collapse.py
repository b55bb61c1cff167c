"""``CollapseMonitorCallback``: the collapse std of training batches, with a warning (or stop)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer

from solo_offdiag.analysis import metrics as M
from solo_offdiag.analysis.buffers import gather_rows
from solo_offdiag.analysis.callbacks.base import DEFAULTS, AnalysisCallback, warn
from solo_offdiag.analysis.config import AnalysisConfig
from solo_offdiag.analysis.protocol import embeddings_from

__all__ = ["CollapseMonitorCallback", "from_config"]


class CollapseMonitorCallback(AnalysisCallback):
    """Logs ``collapse_std/<e>`` of the current training batch every ``every_n_steps``; warns
    (with the steps and values) when the monitored embedding stays under the threshold for
    ``patience`` checks in a row, and stops training if ``stop``.

    ``threshold=None`` means ``relative_threshold / sqrt(d)`` (healthy is ``~1/sqrt(d)``, Chen &
    He 2021). Only ``monitor`` (default ``"z"``, the projector output) triggers the warning:
    backbone features after a ReLU have a large common mean direction, so their normalised std is
    low without any collapse.
    """

    def __init__(
        self,
        *,
        embeddings: Sequence[str] = DEFAULTS.embeddings,
        monitor: str = "z",
        every_n_steps: int = DEFAULTS.every_n_steps,
        threshold: float | None = DEFAULTS.collapse.threshold,
        relative_threshold: float = DEFAULTS.collapse.relative_threshold,
        patience: int = DEFAULTS.collapse.patience,
        stop: bool = DEFAULTS.collapse.stop,
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
        self.embeddings = tuple(embeddings)
        self.monitor = monitor if monitor in self.embeddings else self.embeddings[0]
        self.threshold = threshold
        self.relative_threshold = relative_threshold
        self.patience = patience
        self.stop = stop
        self._below: list[tuple[int, float]] = []
        self._alarmed = False

    @property
    def state_key(self) -> str:
        return self._generate_state_key(embeddings=self.embeddings)

    def threshold_for(self, dim: int) -> float:
        return (
            self.threshold
            if self.threshold is not None
            else self.relative_threshold / math.sqrt(dim)
        )

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._due(trainer):
            step = trainer.global_step
            self._last_step = step
            gathered: dict[str, torch.Tensor] = {}
            for name in self.embeddings:
                rows = embeddings_from(outputs, name)
                if rows is None:
                    self._warn_once(
                        f"missing-{name}",
                        f"CollapseMonitorCallback: training_step outputs have no '{name}' "
                        "embeddings (see solo_offdiag.analysis.protocol); skipped",
                    )
                    continue
                gathered[name] = gather_rows(rows.float(), pl_module.all_gather, trainer.world_size)
            if trainer.is_global_zero and gathered:
                dims = {name: int(r.shape[1]) for name, r in gathered.items()}
                apply = functools.partial(self._apply_checks, trainer, step, dims)
                self._dispatch(
                    step, tuple(gathered.values()), _collapse_std_of_each, _floats, apply
                )
            if self.stop or self.stop_on_nan:
                self._broadcast_stop(trainer)
        self._sync(trainer)

    @property
    def requests_stop(self) -> bool:
        return self.stop or self.stop_on_nan

    def _apply_checks(
        self, trainer: Trainer, step: int, dims: dict[str, int], results: list[tuple[float, bool]]
    ) -> None:
        for (name, dim), (value, finite) in zip(dims.items(), results):
            self._check(trainer, step, name, dim, value, finite)

    def _check(
        self, trainer: Trainer, step: int, name: str, dim: int, value: float, finite: bool
    ) -> None:
        key = f"collapse_std/{name}"
        if self._report_non_finite(trainer, step, f"the '{name}' embeddings", finite, [key]):
            value = math.nan
        threshold = self.threshold_for(dim)
        self._record(trainer, step, {key: value, f"collapse_threshold/{name}": threshold})
        if name != self.monitor:
            return
        if value < threshold:  # NaN compares False: non-finite is reported, not counted
            self._below.append((step, value))
        else:
            self._below, self._alarmed = [], False
        if len(self._below) >= self.patience and not self._alarmed:
            self._alarmed = True
            seen = ", ".join(f"step {s}: {v:.3g}" for s, v in self._below[-self.patience :])
            action = "stopping training (collapse.stop=true)" if self.stop else "training continues"
            warn(
                f"step {step}: collapse of '{name}': {key} stayed under {threshold:.3g} for "
                f"{self.patience} checks in a row ({seen}); healthy is ~{1 / math.sqrt(dim):.3g}; "
                f"{action}"
            )
            if self.stop:
                trainer.should_stop = True

    def _extra_state(self) -> dict[str, Any]:
        return {"below": list(self._below), "alarmed": self._alarmed}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._below = [(int(s), float(v)) for s, v in state.get("below", [])]
        self._alarmed = bool(state.get("alarmed", False))


def _collapse_std_of_each(*rows: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Device-side: (collapse std, all finite) per embedding, as 0-d tensors (no host sync)."""
    return [(M.collapse_std(r), torch.isfinite(r).all()) for r in rows]


def _floats(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> list[tuple[float, bool]]:
    return [(float(value), bool(finite)) for value, finite in parts]


def from_config(cfg: AnalysisConfig, common: dict[str, Any]) -> CollapseMonitorCallback:
    """The callback of ``method_kwargs.analysis`` (``common``: the keys every callback takes)."""
    return CollapseMonitorCallback(
        embeddings=cfg.embeddings,
        threshold=cfg.collapse.threshold,
        relative_threshold=cfg.collapse.relative_threshold,
        patience=cfg.collapse.patience,
        stop=cfg.collapse.stop,
        **common,
    )
