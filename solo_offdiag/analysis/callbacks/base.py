"""The base class of the analysis callbacks and the helpers they share (see the package docstring).

:class:`AnalysisCallback` holds what every analysis callback needs: the shared writer and executor,
logging-point bookkeeping, NaN handling, the scalar rows of ``metrics.csv`` and the resume logic.
A subclass adds its hooks, its computation (split into a device-side ``stage``, a host ``finish``
and an ``apply`` on the training thread, see :meth:`AnalysisCallback._dispatch`) and, when it keeps
arrays, a :class:`~solo_offdiag.analysis.callbacks.state.StepSeries` named in ``series``.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from solo_offdiag.analysis.callbacks.state import StepSeries, truncate_rows
from solo_offdiag.analysis.config import AnalysisConfig
from solo_offdiag.analysis.executor import AnalysisExecutor
from solo_offdiag.analysis.writer import AnalysisWriter

__all__ = [
    "CPU_MAX_ELEMENTS",
    "DEFAULTS",
    "NPZ_EVERY",
    "AnalysisCallback",
    "AnalysisWarning",
    "all_finite",
    "copy64",
    "for_compute",
    "resolve_out_dir",
    "to_f32",
    "warn",
]

log = logging.getLogger("solo_offdiag.analysis.callbacks")

DEFAULTS = AnalysisConfig()
#: Above this many elements a ``d x d`` eigenproblem runs on the data's device, not on the CPU.
CPU_MAX_ELEMENTS = 1 << 22
#: npz files are rewritten every this many logging points (and at checkpoints and at the end).
NPZ_EVERY = 20


class AnalysisWarning(UserWarning):
    """Non-finite embeddings, collapse, a capped rank estimate, missing embeddings."""


def resolve_out_dir(out_dir: str | Path | None, trainer: Trainer) -> Path:
    """``out_dir`` if given, else ``<trainer.log_dir or trainer.default_root_dir>/analysis``."""
    if out_dir:
        return Path(out_dir)
    base = trainer.log_dir or trainer.default_root_dir
    return Path(base) / "analysis"


def warn(message: str) -> None:
    """An :class:`AnalysisWarning`, on global rank 0 only (under DDP every rank would repeat it)."""
    if getattr(rank_zero_only, "rank", 0) == 0:
        warnings.warn(message, AnalysisWarning, stacklevel=3)


def for_compute(x: torch.Tensor) -> torch.Tensor:
    """float64, on CPU when small (cheap transfer, no GPU float64 slowness)."""
    if x.numel() <= CPU_MAX_ELEMENTS:
        x = x.cpu()
    return x.to(torch.float64)


def all_finite(*tensors: torch.Tensor) -> bool:
    """Whether every element is finite (a host sync: call it on CPU data or in the worker)."""
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def copy64(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to(torch.float64, copy=True)


def _check_background(value: Any) -> bool | str:
    if value is True or value is False or value == "auto":
        return value
    raise ValueError(f"background must be 'auto', true or false, got {value!r}")


class AnalysisCallback(Callback):
    """Rows in state, a shared writer, logging-point bookkeeping, NaN handling, resume.

    Subclasses that write an ``.npz`` set ``npz_name``, keep their arrays in
    :class:`~solo_offdiag.analysis.callbacks.state.StepSeries` attributes named in ``series``
    (truncated on resume and checkpointed by this class) and build the file in :meth:`_arrays`.
    """

    #: file this callback writes besides metrics.csv (``None``: none).
    npz_name: str | None = None
    #: names of this callback's :class:`StepSeries` attributes (checkpointed, truncated on resume).
    series: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        every_n_steps: int,
        out_dir: str | Path | None,
        stop_on_nan: bool,
        background: bool | str = DEFAULTS.background,
    ) -> None:
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"every_n_steps must be a positive integer, got {every_n_steps!r}")
        self.every_n_steps = every_n_steps
        self.out_dir = out_dir
        self.stop_on_nan = stop_on_nan
        self.background = _check_background(background)
        self._executor: AnalysisExecutor | None = None
        self._in_background = False
        self.rows: dict[int, dict[str, float]] = {}
        self.writer: AnalysisWriter | None = None
        self._last_step = -1
        self._restored = False
        self._points_since_npz = 0
        self._warned: set[str] = set()

    # -- wiring ------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._check_module(pl_module)
        directory = resolve_out_dir(self.out_dir, trainer)
        for other in trainer.callbacks:  # share one writer per folder with sibling callbacks
            if isinstance(other, AnalysisCallback) and other.writer is not None:
                if other.writer.directory == directory:
                    self.writer = other.writer
                    break
        else:
            self.writer = AnalysisWriter(directory)
        self.writer.register(self)
        siblings = (c for c in trainer.callbacks if isinstance(c, AnalysisCallback))
        self._executor = (
            next(
                (c._executor for c in siblings if c is not self and c._executor is not None),
                None,
            )
            or AnalysisExecutor()
        )  # one worker for the run
        self._in_background = self._uses_background(trainer)

    @property
    def executor(self) -> AnalysisExecutor:
        """The executor shared with the sibling callbacks of this run (see the module docstring)."""
        if self._executor is None:  # hooks called without setup (direct use)
            self._executor = AnalysisExecutor()
        return self._executor

    @property
    def requests_stop(self) -> bool:
        """Whether this callback may stop training (then it never computes in the background)."""
        return self.stop_on_nan

    def _uses_background(self, trainer: Trainer) -> bool:
        if self.requests_stop:  # the stop must happen at the step that triggers it
            return False
        if self.background == "auto":  # on the CPU a worker would compete with training
            return trainer.strategy.root_device.type == "cuda"
        return bool(self.background)

    def _check_module(self, pl_module: LightningModule) -> None:
        """Raise :class:`AnalysisProtocolError` if ``pl_module`` lacks what this callback needs."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._restored:  # rows logged after the checkpoint would be logged again: drop them
            step = trainer.global_step
            self.rows = truncate_rows(self.rows, step)
            for name in self.series:
                self._series(name).truncate(step)
            self._truncate_arrays(step)
            self._last_step = min(self._last_step, step)
            if self.writer is not None:
                self.writer.mark_dirty()
                if trainer.is_global_zero:
                    self._write_npz()
        self._sync(trainer)

    def _sync(self, trainer: Trainer) -> None:
        """Apply finished background results (non-blocking), then write metrics.csv if due."""
        self.executor.poll()
        if self.writer is not None and trainer.is_global_zero:
            self.writer.sync(self)

    def _dispatch(
        self,
        step: int,
        inputs: tuple[Any, ...],
        stage: Callable[..., Any],
        finish: Callable[[Any], Any],
        apply: Callable[[Any], None],
    ) -> None:
        """Compute ``apply(finish(stage(*inputs)))`` inline or with the worker (global rank 0).

        ``stage``: device-side work (float64 copies, Gram products; kernel launches only, no host
        sync) that snapshots ``inputs``: on an accelerator it runs here, in stream order, so later
        in-place updates of the inputs (ring buffer, accumulator, head) do not reach the worker.
        On the CPU it runs with ``finish`` (in the worker, on clones, when in background).
        ``finish``: host work returning plain values (no tensor the training thread touches).
        ``apply``: rows, loggers and warnings, always on the training thread.
        """
        device = next(
            (x.device for x in inputs if isinstance(x, torch.Tensor)), torch.device("cpu")
        )
        background = self._in_background
        if device.type != "cpu":
            compute = functools.partial(finish, stage(*inputs))
        else:
            if background:
                inputs = tuple(x.clone() if isinstance(x, torch.Tensor) else x for x in inputs)

            def compute() -> Any:
                return finish(stage(*inputs))

        self.executor.submit(
            compute,
            apply,
            what=f"{type(self).__name__} metrics at step {step}",
            background=background,
            device=device,
        )

    def _due(self, trainer: Trainer) -> bool:
        step = trainer.global_step
        return step > 0 and step % self.every_n_steps == 0 and step != self._last_step

    def _record(self, trainer: Trainer, step: int, values: Mapping[str, float]) -> None:
        """Keep ``values`` as this callback's row at ``step`` and send them to the loggers."""
        if not trainer.is_global_zero:
            return
        values = {k: float(v) for k, v in values.items()}
        self.rows.setdefault(int(step), {}).update(values)
        for logger in trainer.loggers:
            logger.log_metrics(values, step=int(step))
        if self.writer is not None:
            self.writer.mark_dirty()
        self._points_since_npz += 1
        if self.npz_name is not None and self._points_since_npz >= NPZ_EVERY:
            self._write_npz()

    def _report_non_finite(
        self, trainer: Trainer, step: int, what: str, finite: bool, names: Sequence[str]
    ) -> bool:
        """Warn (naming the step) and maybe request a stop when ``finite`` is false."""
        if finite:
            return False
        action = (
            "stopping training (analysis.stop_on_nan=true)"
            if self.stop_on_nan
            else "training continues (set analysis.stop_on_nan=true to stop)"
        )
        warn(
            f"step {step}: non-finite values (NaN/Inf) in {what}; "
            f"{', '.join(names)} recorded as NaN; {action}"
        )
        if self.stop_on_nan:
            trainer.should_stop = True
        return True

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warn(message)

    @staticmethod
    def _broadcast_stop(trainer: Trainer) -> None:
        """Make a stop requested on rank 0 effective on every rank (collective)."""
        if trainer.world_size > 1:
            trainer.should_stop = trainer.strategy.reduce_boolean_decision(
                bool(trainer.should_stop), all=False
            )

    # -- npz files -------------------------------------------------------------------------
    def _arrays(self) -> dict[str, Any] | None:
        return None

    def _series(self, name: str) -> StepSeries:
        series = getattr(self, name)
        if not isinstance(series, StepSeries):  # pragma: no cover - a programming error
            raise TypeError(f"{type(self).__name__}.{name} is not a StepSeries")
        return series

    def _truncate_arrays(self, step: int) -> None:
        """Drop other state recorded after ``step`` (resume; the series are already truncated)."""

    def _write_npz(self) -> None:
        if self.writer is None or self.npz_name is None:
            return
        arrays = self._arrays()
        if arrays is not None:
            self.writer.write_npz(self.npz_name, arrays)
        self._points_since_npz = 0

    def _flush_all(self, trainer: Trainer) -> None:
        if self.writer is None or not trainer.is_global_zero:
            return
        self._write_npz()
        if self.writer.dirty:
            self.writer.write_metrics()

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.executor.drain()  # already done by state_dict(), which Lightning calls first
        self._flush_all(trainer)  # the folder matches what the checkpoint holds

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.executor.drain()
        self._flush_all(trainer)
        self.executor.shutdown()

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self.executor.drain(raise_errors=False)  # keep what was computed; do not mask `exception`
        self._flush_all(trainer)
        self.executor.shutdown()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._executor is not None:
            self._executor.shutdown()

    # -- resume ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        # Lightning takes the callbacks' state before calling on_save_checkpoint: every row up to
        # the checkpoint's step must be applied now.
        if self._executor is not None:
            self._executor.drain()
        extra = self._extra_state()
        for name in self.series:
            extra.update(self._series(name).state_dict())
        return {
            "rows": {int(s): dict(r) for s, r in self.rows.items()},
            "last_step": self._last_step,
            "extra": extra,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = {int(s): dict(r) for s, r in state_dict.get("rows", {}).items()}
        self._last_step = int(state_dict.get("last_step", -1))
        extra = self._upgrade_state(dict(state_dict.get("extra", {})))
        for name in self.series:
            self._series(name).load_state_dict(extra)
        self._load_extra_state(extra)
        self._restored = True

    def _extra_state(self) -> dict[str, Any]:
        """State beyond the rows and the series (subclasses)."""
        return {}

    def _upgrade_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """Convert an older checkpoint's ``extra`` state to the current layout (subclasses)."""
        return state

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass


def to_f32(x: torch.Tensor) -> np.ndarray:
    """A float64 result tensor as a float32 numpy array (what the npz files hold)."""
    return x.cpu().numpy().astype(np.float32)
