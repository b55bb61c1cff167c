"""Lightning callbacks that watch dimensional collapse and the prediction head while training.

They work with any ``LightningModule`` that follows :mod:`solo_offdiag.analysis.protocol`
(``prediction_head``; ``training_step`` returning ``{"loss", "z", "feats"}``). Our solo-learn
methods attach them through ``configure_callbacks()`` with :func:`build_callbacks`.

=========================  ==================================================  ==================
callback                   logs (``metrics.csv`` columns)                      data file
=========================  ==================================================  ==================
HeadDynamicsCallback       ``head/dist_identity``, ``head/offdiag_fro``, ...   head_trajectory.npz
EmbeddingSpectrumCallback  ``rankme/<e>``, ``alpha_req/<e>``, ``n_samples/<e>``  spectrum.npz
CollapseMonitorCallback    ``collapse_std/<e>``, ``collapse_threshold/<e>``     -
EigenAlignmentCallback     ``align/mean``, ``align/weighted_mean``,             alignment.npz
                           ``align/commutator``
=========================  ==================================================  ==================

``<e>`` is an embedding name, ``z`` (projector output) or ``feats`` (backbone features).

Design (after Lightning's own ``LearningRateMonitor``/``EarlyStopping``): configuration in
``__init__``, work in hooks, everything that must survive a resume in ``state_dict``.

* Hot path: per training step a callback at most copies the detached embeddings into a
  preallocated device ring buffer (spectrum) or adds ``z^T z`` into a device accumulator
  (alignment). No host transfer, ``.item()`` or file write happens between logging points.
* Logging points: the training thread gathers the buffers from every rank (every rank takes part
  in the collectives, in the same order), takes device-side snapshots of what the computation
  reads (on an accelerator it also launches the ``O(N d^2)`` Gram products there, without host
  synchronisation) and hands the rest to the run's
  :class:`~solo_offdiag.analysis.executor.AnalysisExecutor`: on global rank 0 one worker thread
  moves the ``d x d`` matrices to the CPU, solves the eigenproblems in float64 and returns plain
  values; rows, loggers, warnings and npz arrays are applied on the training thread, in
  submission order, at the next hook (non-blocking) and at the latest before a checkpoint's state
  is taken, at the end of training and on an exception. ``background="auto"`` (the default)
  uses the worker when the run trains on CUDA and computes inline on the CPU (where a worker
  would compete with training for the same cores); a callback that may stop training
  (``stop_on_nan``, ``CollapseMonitorCallback(stop=True)``) always computes inline, so the stop
  happens at the step it names.
* DDP: only rank 0 computes, logs and writes files.
* Output: values go to every active Lightning logger (``logger.log_metrics``, as
  ``LearningRateMonitor`` does, so CSV, TensorBoard and W&B all work) at ``step=global_step``, and
  to ``<run dir>/analysis/`` through one shared :class:`~solo_offdiag.analysis.writer.AnalysisWriter`.
* Resume: each callback's rows are part of its checkpointed state; on resume rows after the
  checkpoint's step are dropped and the files rewritten, so no step is duplicated or lost.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.model_helpers import is_overridden

from solo_offdiag.analysis import metrics as M
from solo_offdiag.analysis.buffers import EmbeddingQueue, gather_rows, gather_sum
from solo_offdiag.analysis.config import AnalysisConfig
from solo_offdiag.analysis.executor import AnalysisExecutor, AnalysisWorkerError
from solo_offdiag.analysis.protocol import AnalysisProtocolError, embeddings_from, head_matrix
from solo_offdiag.analysis.writer import AnalysisWriter

__all__ = [
    "AnalysisProtocolError",
    "AnalysisWarning",
    "AnalysisWorkerError",
    "CollapseMonitorCallback",
    "EigenAlignmentCallback",
    "EmbeddingSpectrumCallback",
    "HeadDynamicsCallback",
    "build_callbacks",
    "resolve_out_dir",
]

log = logging.getLogger(__name__)

_DEFAULTS = AnalysisConfig()
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


def _warn(message: str) -> None:
    warnings.warn(message, AnalysisWarning, stacklevel=3)


def _for_compute(x: torch.Tensor) -> torch.Tensor:
    """float64, on CPU when small (cheap transfer, no GPU float64 slowness)."""
    if x.numel() <= CPU_MAX_ELEMENTS:
        x = x.cpu()
    return x.to(torch.float64)


def _finite(*tensors: torch.Tensor) -> bool:
    """Whether every element is finite (a host sync: call it on CPU data or in the worker)."""
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _copy64(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to(torch.float64, copy=True)


def _check_background(value: Any) -> bool | str:
    if value is True or value is False or value == "auto":
        return value
    raise ValueError(f"background must be 'auto', true or false, got {value!r}")


class _AnalysisCallback(Callback):
    """Rows in state, a shared writer, logging-point bookkeeping, NaN handling."""

    #: file this callback writes besides metrics.csv (``None``: none).
    npz_name: str | None = None

    def __init__(
        self,
        *,
        every_n_steps: int,
        out_dir: str | Path | None,
        stop_on_nan: bool,
        background: bool | str = _DEFAULTS.background,
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
            if isinstance(other, _AnalysisCallback) and other.writer is not None:
                if other.writer.directory == directory:
                    self.writer = other.writer
                    break
        else:
            self.writer = AnalysisWriter(directory)
        self.writer.register(self)
        siblings = (c for c in trainer.callbacks if isinstance(c, _AnalysisCallback))
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
            self.rows = {s: r for s, r in self.rows.items() if s <= step}
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
        _warn(
            f"step {step}: non-finite values (NaN/Inf) in {what}; "
            f"{', '.join(names)} recorded as NaN; {action}"
        )
        if self.stop_on_nan:
            trainer.should_stop = True
        return True

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _warn(message)

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

    def _truncate_arrays(self, step: int) -> None:
        """Drop array entries recorded after ``step`` (resume)."""

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
        return {
            "rows": {int(s): dict(r) for s, r in self.rows.items()},
            "last_step": self._last_step,
            "extra": self._extra_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = {int(s): dict(r) for s, r in state_dict.get("rows", {}).items()}
        self._last_step = int(state_dict.get("last_step", -1))
        self._load_extra_state(state_dict.get("extra", {}))
        self._restored = True

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass


# ---------------------------------------------------------------------------------------------
class HeadDynamicsCallback(_AnalysisCallback):
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

    def __init__(
        self,
        *,
        every_n_steps: int = _DEFAULTS.every_n_steps,
        trajectory_every: int = _DEFAULTS.trajectory_every,
        max_snapshots: int = 128,
        out_dir: str | Path | None = None,
        stop_on_nan: bool = _DEFAULTS.stop_on_nan,
        background: bool | str = _DEFAULTS.background,
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
        self._stat_steps: list[int] = []
        self._sym_eigs: list[np.ndarray] = []

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
        self._dispatch(step, (weight,), _copy64, _head_job, apply)

    def _apply_head(self, trainer: Trainer, step: int, result: _HeadResult) -> None:
        names = [f"head/{k}" for k in result.scalars]
        self._report_non_finite(trainer, step, "the prediction head matrix", result.finite, names)
        self._stat_steps.append(step)
        self._sym_eigs.append(result.sym_eigenvalues)
        if self._n_points % self._stride == 0:
            self._snapshots.append((self._n_points, step, result.delta))
            if len(self._snapshots) > self.max_snapshots:
                self._stride *= 2
                self._snapshots = [s for s in self._snapshots if s[0] % self._stride == 0]
        self._n_points += 1
        self._record(trainer, step, {f"head/{k}": v for k, v in result.scalars.items()})

    def _arrays(self) -> dict[str, Any] | None:
        if not self._stat_steps:
            return None
        steps = self._stat_steps
        out: dict[str, Any] = {
            "steps": np.array([s[1] for s in self._snapshots], dtype=np.int64),
            "delta": np.stack([s[2] for s in self._snapshots]),
            "stat_steps": np.array(self._stat_steps, dtype=np.int64),
            "sym_eigvals": np.stack(self._sym_eigs),
        }
        for key in M.HeadStats.__dataclass_fields__:
            if key != "sym_eigenvalues":
                out[key] = np.array(
                    [self.rows.get(s, {}).get(f"head/{key}", math.nan) for s in steps]
                )
        return out

    def _truncate_arrays(self, step: int) -> None:
        keep = [i for i, s in enumerate(self._stat_steps) if s <= step]
        self._stat_steps = [self._stat_steps[i] for i in keep]
        self._sym_eigs = [self._sym_eigs[i] for i in keep]
        self._snapshots = [s for s in self._snapshots if s[1] <= step]
        self._n_points = len(self._stat_steps)

    def _extra_state(self) -> dict[str, Any]:
        return {
            "stride": self._stride,
            "n_points": self._n_points,
            "snapshots": [(i, s, torch.from_numpy(a)) for i, s, a in self._snapshots],
            "stat_steps": list(self._stat_steps),
            "sym_eigs": [torch.from_numpy(e) for e in self._sym_eigs],
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._stride = int(state.get("stride", self.trajectory_every))
        self._n_points = int(state.get("n_points", 0))
        self._snapshots = [(int(i), int(s), _np(a)) for i, s, a in state.get("snapshots", [])]
        self._stat_steps = [int(s) for s in state.get("stat_steps", [])]
        self._sym_eigs = [_np(e) for e in state.get("sym_eigs", [])]


def _np(value: Any) -> np.ndarray:
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


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
        _finite(w),
        stats.sym_eigenvalues.numpy().astype(np.float32),
        delta.numpy().astype(np.float16),
    )


# ---------------------------------------------------------------------------------------------
def _has_validation(trainer: Trainer, pl_module: LightningModule) -> bool:
    """Whether this fit runs validation batches (for ``source="auto"``)."""
    if not is_overridden("validation_step", pl_module) or trainer.limit_val_batches == 0:
        return False
    loop = getattr(getattr(trainer.fit_loop, "epoch_loop", None), "val_loop", None)
    source = getattr(loop, "_data_source", None)
    if source is not None and hasattr(source, "is_defined"):
        return bool(source.is_defined())
    return True  # unknown Lightning internals: trust the validation_step override


class EmbeddingSpectrumCallback(_AnalysisCallback):
    """RankMe, alpha-ReQ and the covariance spectrum over a bounded queue of embeddings.

    ``source``: ``"val"`` fills the queue with the first ``queue_size`` validation embeddings of
    each validation run and computes at its end; ``"train"`` fills it with the training batches of
    the last ``ceil(queue_size / batch)`` steps before every logging point (a slice of training
    data set aside for measurement; it is not excluded from the gradient) and computes every
    ``every_n_steps``; ``"auto"`` is ``"val"`` when the fit has validation batches that carry
    embeddings, else ``"train"``. Under DDP each rank queues ``ceil(queue_size / world_size)`` rows.

    Logs ``rankme/<e>``, ``alpha_req/<e>`` and ``n_samples/<e>``; ``spectrum.npz`` holds every
    computed spectrum. Warns once when the queue is smaller than the embedding dimension (RankMe
    is then capped at the number of samples).
    """

    npz_name = "spectrum.npz"

    def __init__(
        self,
        *,
        embeddings: Sequence[str] = _DEFAULTS.embeddings,
        every_n_steps: int = _DEFAULTS.every_n_steps,
        queue_size: int = _DEFAULTS.queue_size,
        source: str = _DEFAULTS.source,
        alpha_fit_range: tuple[float, ...] = _DEFAULTS.alpha_fit_range,
        rankme_eps: float = M.RANKME_EPS,
        seed: int = _DEFAULTS.seed,
        out_dir: str | Path | None = None,
        stop_on_nan: bool = _DEFAULTS.stop_on_nan,
        background: bool | str = _DEFAULTS.background,
    ) -> None:
        super().__init__(
            every_n_steps=every_n_steps,
            out_dir=out_dir,
            stop_on_nan=stop_on_nan,
            background=background,
        )
        if source not in ("auto", "val", "train"):
            raise ValueError(f"source must be 'auto', 'val' or 'train', got {source!r}")
        if not embeddings:
            raise ValueError("embeddings must name at least one of 'z', 'feats'")
        self.embeddings = tuple(embeddings)
        self.queue_size = queue_size
        self.source = source
        self.alpha_fit_range = (float(alpha_fit_range[0]), float(alpha_fit_range[1]))
        self.rankme_eps = rankme_eps
        self.seed = seed
        self.mode = "train" if source == "train" else "val"
        self._queues: dict[str, EmbeddingQueue] = {}
        self._steps: list[int] = []
        self._spectra: dict[str, list[np.ndarray]] = {e: [] for e in self.embeddings}

    @property
    def state_key(self) -> str:
        return self._generate_state_key(embeddings=self.embeddings)

    def _queue(self, name: str, trainer: Trainer) -> EmbeddingQueue:
        if name not in self._queues:
            generator = torch.Generator().manual_seed(self.seed + trainer.global_rank)
            capacity = math.ceil(self.queue_size / max(trainer.world_size, 1))
            self._queues[name] = EmbeddingQueue(capacity, generator=generator)
        return self._queues[name]

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.source == "auto":
            self.mode = "val" if _has_validation(trainer, pl_module) else "train"
        elif self.source == "val" and not _has_validation(trainer, pl_module):
            self._warn_once(
                "no-val",
                "EmbeddingSpectrumCallback: source='val' but this fit has no validation batches; "
                "no spectrum will be computed (use source 'auto' or 'train')",
            )
        super().on_train_start(trainer, pl_module)

    def _push(self, trainer: Trainer, outputs: Any, hook: str) -> int:
        pushed = 0
        for name in self.embeddings:
            rows = embeddings_from(outputs, name)
            if rows is None:
                self._warn_once(
                    f"missing-{hook}-{name}",
                    f"EmbeddingSpectrumCallback: {hook} outputs have no '{name}' embeddings "
                    "(see solo_offdiag.analysis.protocol); its spectrum is skipped",
                )
                continue
            queue = self._queue(name, trainer)
            if queue.buffer is None and self.queue_size < rows.shape[1]:
                self._warn_once(
                    f"capped-{name}",
                    f"queue_size={self.queue_size} is smaller than the dimension "
                    f"{rows.shape[1]} of '{name}': the rank estimate (RankMe) is capped at "
                    f"{self.queue_size}; raise analysis.queue_size",
                )
            queue.push(rows)
            pushed += 1
        return pushed

    # training source ------------------------------------------------------------------------
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.mode == "train":
            step = trainer.global_step
            to_next = (-step) % self.every_n_steps  # steps until the next logging point
            rows = next(
                (r for e in self.embeddings if (r := embeddings_from(outputs, e)) is not None), None
            )
            per_rank = math.ceil(self.queue_size / max(trainer.world_size, 1))
            needed = math.ceil(per_rank / rows.shape[0]) if rows is not None else 1
            if to_next < needed or rows is None:
                self._push(trainer, outputs, "training_step")
            if self._due(trainer):
                self._last_step = step
                self._compute(trainer, pl_module, step)
        self._sync(trainer)

    # validation source ----------------------------------------------------------------------
    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.mode == "val" and not trainer.sanity_checking:
            for queue in self._queues.values():
                queue.reset()

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.mode != "val" or trainer.sanity_checking or dataloader_idx != 0:
            return
        if self.writer is None:  # trainer.validate() outside a fit
            return
        if self._queues and all(q.full for q in self._queues.values()):
            return  # the first queue_size validation samples: the same set at every evaluation
        carries = any(embeddings_from(outputs, e) is not None for e in self.embeddings)
        if not carries and self.source == "auto":
            self.mode = "train"  # validation_step carries no embeddings: fall back
            self._warn_once(
                "fallback",
                "EmbeddingSpectrumCallback: validation_step returns no embeddings; using "
                "training batches for the spectrum instead (source='auto')",
            )
            return
        self._push(trainer, outputs, "validation_step")

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.mode != "val" or trainer.sanity_checking or self.writer is None:
            return
        if not self._queues or trainer.global_step == self._last_step:
            return
        self._last_step = trainer.global_step
        self._compute(trainer, pl_module, trainer.global_step)
        if trainer.is_global_zero and self.writer.dirty:
            self.writer.write_metrics()

    # computation ----------------------------------------------------------------------------
    def _compute(self, trainer: Trainer, pl_module: LightningModule, step: int) -> None:
        world = trainer.world_size
        gathered: dict[str, torch.Tensor] = {}
        for name in self.embeddings:  # every rank takes part in the gathers, in the same order
            queue = self._queues.get(name)
            values = None if queue is None else queue.values()
            if values is not None and len(values) > 0:
                gathered[name] = gather_rows(values, pl_module.all_gather, world)
        if trainer.is_global_zero and gathered:
            names = tuple(gathered)
            sizes = tuple(int(r.shape[0]) for r in gathered.values())
            for name, (n, d) in zip(names, (tuple(r.shape) for r in gathered.values())):
                if n < d:
                    self._warn_once(
                        f"capped-{name}",
                        f"step {step}: only {n} samples for '{name}' of dimension {d}: the rank "
                        f"estimate (RankMe) is capped at {n}; raise analysis.queue_size",
                    )
            finish = functools.partial(
                _spectrum_job,
                names=names,
                sizes=sizes,
                rankme_eps=self.rankme_eps,
                alpha_fit_range=self.alpha_fit_range,
            )
            apply = functools.partial(self._apply_spectra, trainer, step)
            self._dispatch(step, tuple(gathered.values()), _gram_parts_of_each, finish, apply)
        if self.stop_on_nan:
            self._broadcast_stop(trainer)

    def _apply_spectra(self, trainer: Trainer, step: int, results: dict[str, _Spectrum]) -> None:
        values: dict[str, float] = {}
        for name, result in results.items():
            keys = [f"rankme/{name}", f"alpha_req/{name}"]
            what = f"the '{name}' embeddings queue"
            self._report_non_finite(trainer, step, what, result.finite, keys)
            values.update(
                {keys[0]: result.rankme, keys[1]: result.alpha_req, f"n_samples/{name}": result.n}
            )
        self._steps.append(step)
        for name in self.embeddings:
            result = results.get(name)
            self._spectra[name].append(
                result.spectrum if result is not None else np.zeros(0, dtype=np.float32)
            )
        self._record(trainer, step, values)

    def _arrays(self) -> dict[str, Any] | None:
        if not self._steps:
            return None
        out: dict[str, Any] = {"steps": np.array(self._steps, dtype=np.int64)}
        for name in self.embeddings:
            spectra = self._spectra[name]
            width = max((len(s) for s in spectra), default=0)
            if width == 0:
                continue
            table = np.full((len(spectra), width), np.nan, dtype=np.float32)
            for i, s in enumerate(spectra):
                table[i, : len(s)] = s
            out[f"eigvals/{name}"] = table
            for metric in ("rankme", "alpha_req", "n_samples"):
                out[f"{metric}/{name}"] = np.array(
                    [self.rows.get(s, {}).get(f"{metric}/{name}", math.nan) for s in self._steps]
                )
        return out

    def _truncate_arrays(self, step: int) -> None:
        keep = [i for i, s in enumerate(self._steps) if s <= step]
        self._steps = [self._steps[i] for i in keep]
        self._spectra = {e: [v[i] for i in keep] for e, v in self._spectra.items()}

    def _extra_state(self) -> dict[str, Any]:
        return {
            "steps": list(self._steps),
            "spectra": {e: [torch.from_numpy(s) for s in v] for e, v in self._spectra.items()},
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._steps = [int(s) for s in state.get("steps", [])]
        spectra = state.get("spectra", {})
        self._spectra = {e: [_np(s) for s in spectra.get(e, [])] for e in self.embeddings}


class _Spectrum(NamedTuple):
    finite: bool
    rankme: float
    alpha_req: float
    n: float
    spectrum: np.ndarray  # float32, descending (NaN: non-finite data)


def _gram_parts_of_each(*rows: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [M.gram_parts(r) for r in rows]


def _spectrum_job(
    parts: list[tuple[torch.Tensor, torch.Tensor]],
    *,
    names: tuple[str, ...],
    sizes: tuple[int, ...],
    rankme_eps: float,
    alpha_fit_range: tuple[float, float],
) -> dict[str, _Spectrum]:
    """RankMe, alpha-ReQ and the covariance spectrum from each queue's Gram matrix."""
    out: dict[str, _Spectrum] = {}
    for name, (gram, mean), n in zip(names, parts, sizes):
        gram, mean = _for_compute(gram), _for_compute(mean)
        d = gram.shape[0]
        if _finite(gram, mean):
            svals, spectrum = M.spectra_from_gram(gram, mean, n)
            rank = float(M.rankme_from_singular_values(svals, rankme_eps))
            alpha = float(M.alpha_req_from_spectrum(spectrum, alpha_fit_range))
            out[name] = _Spectrum(True, rank, alpha, float(n), _f32(spectrum))
        else:
            nans = np.full(d, np.nan, dtype=np.float32)
            out[name] = _Spectrum(False, math.nan, math.nan, float(n), nans)
    return out


def _f32(x: torch.Tensor) -> np.ndarray:
    return x.cpu().numpy().astype(np.float32)


# ---------------------------------------------------------------------------------------------
class CollapseMonitorCallback(_AnalysisCallback):
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
        embeddings: Sequence[str] = _DEFAULTS.embeddings,
        monitor: str = "z",
        every_n_steps: int = _DEFAULTS.every_n_steps,
        threshold: float | None = _DEFAULTS.collapse.threshold,
        relative_threshold: float = _DEFAULTS.collapse.relative_threshold,
        patience: int = _DEFAULTS.collapse.patience,
        stop: bool = _DEFAULTS.collapse.stop,
        out_dir: str | Path | None = None,
        stop_on_nan: bool = _DEFAULTS.stop_on_nan,
        background: bool | str = _DEFAULTS.background,
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
            _warn(
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


# ---------------------------------------------------------------------------------------------
class EigenAlignmentCallback(_AnalysisCallback):
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

    def __init__(
        self,
        *,
        every_n_steps: int = _DEFAULTS.every_n_steps,
        embedding: str = "z",
        out_dir: str | Path | None = None,
        stop_on_nan: bool = _DEFAULTS.stop_on_nan,
        background: bool | str = _DEFAULTS.background,
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
        self._steps: list[int] = []
        self._per_mode: list[np.ndarray] = []
        self._eigvals: list[np.ndarray] = []

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
        self._steps.append(step)
        self._per_mode.append(result.per_mode)
        self._eigvals.append(result.eigenvalues)
        self._record(trainer, step, {f"align/{k}": v for k, v in result.scalars.items()})

    def _arrays(self) -> dict[str, Any] | None:
        if not self._steps:
            return None
        return {
            "steps": np.array(self._steps, dtype=np.int64),
            "per_mode": np.stack(self._per_mode),
            "corr_eigvals": np.stack(self._eigvals),
        }

    def _truncate_arrays(self, step: int) -> None:
        keep = [i for i, s in enumerate(self._steps) if s <= step]
        self._steps = [self._steps[i] for i in keep]
        self._per_mode = [self._per_mode[i] for i in keep]
        self._eigvals = [self._eigvals[i] for i in keep]

    def _extra_state(self) -> dict[str, Any]:
        return {
            "steps": list(self._steps),
            "per_mode": [torch.from_numpy(a) for a in self._per_mode],
            "eigvals": [torch.from_numpy(a) for a in self._eigvals],
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._steps = [int(s) for s in state.get("steps", [])]
        self._per_mode = [_np(a) for a in state.get("per_mode", [])]
        self._eigvals = [_np(a) for a in state.get("eigvals", [])]


class _AlignmentResult(NamedTuple):
    scalars: dict[str, float]
    finite: bool
    per_mode: np.ndarray  # float32
    eigenvalues: np.ndarray  # float32, descending


def _correlation(
    total: torch.Tensor, count: int | torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Device-side float64 snapshots: ``F = sum z z^T / N`` and ``W``."""
    return _copy64(total) / count, _copy64(weight)


def _alignment_job(parts: tuple[torch.Tensor, torch.Tensor]) -> _AlignmentResult:
    corr, weight = (_for_compute(x) for x in parts)
    weight = weight.to(corr.device)
    result = M.eigen_alignment(weight, corr)
    return _AlignmentResult(
        result.scalars(), _finite(corr, weight), _f32(result.per_mode), _f32(result.eigenvalues)
    )


# ---------------------------------------------------------------------------------------------
def build_callbacks(
    cfg: AnalysisConfig, *, head_is_linear: bool, out_dir: str | None = None
) -> list[Callback]:
    """The analysis callbacks selected by ``cfg`` (``[]`` when ``cfg.enabled`` is false).

    Args:
        cfg: the validated ``method_kwargs.analysis`` section.
        head_is_linear: whether the module's ``prediction_head.matrix()`` is a matrix; the
            head-dynamics and eigen-alignment callbacks are left out (with an info log) if not.
        out_dir: output folder; ``None`` = ``cfg.out_dir``, else
            ``<trainer.log_dir or default_root_dir>/analysis``.

    Examples:
        >>> [type(c).__name__ for c in build_callbacks(AnalysisConfig(), head_is_linear=True)]
        ['HeadDynamicsCallback', 'EmbeddingSpectrumCallback', 'CollapseMonitorCallback', 'EigenAlignmentCallback']
    """
    if not cfg.enabled:
        return []
    directory = out_dir if out_dir is not None else cfg.out_dir
    common = {
        "every_n_steps": cfg.every_n_steps,
        "out_dir": directory,
        "stop_on_nan": cfg.stop_on_nan,
        "background": cfg.background,
    }
    callbacks: list[Callback] = []
    skipped = []
    if cfg.head_dynamics:
        if head_is_linear:
            callbacks.append(HeadDynamicsCallback(trajectory_every=cfg.trajectory_every, **common))
        else:
            skipped.append("head dynamics")
    if cfg.spectrum:
        callbacks.append(
            EmbeddingSpectrumCallback(
                embeddings=cfg.embeddings,
                queue_size=cfg.queue_size,
                source=cfg.source,
                alpha_fit_range=cfg.alpha_fit_range,
                seed=cfg.seed,
                **common,
            )
        )
    if cfg.collapse.enabled:
        callbacks.append(
            CollapseMonitorCallback(
                embeddings=cfg.embeddings,
                threshold=cfg.collapse.threshold,
                relative_threshold=cfg.collapse.relative_threshold,
                patience=cfg.collapse.patience,
                stop=cfg.collapse.stop,
                **common,
            )
        )
    if cfg.alignment:
        if head_is_linear:
            callbacks.append(EigenAlignmentCallback(**common))
        else:
            skipped.append("eigen alignment")
    if skipped:
        log.info("analysis: the prediction head is nonlinear; %s skipped", " and ".join(skipped))
    return callbacks
