"""``EmbeddingSpectrumCallback``: RankMe, alpha-ReQ and the covariance spectrum of embeddings."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities.model_helpers import is_overridden

from solo_offdiag.analysis import metrics as M
from solo_offdiag.analysis.buffers import EmbeddingQueue, gather_rows
from solo_offdiag.analysis.callbacks.base import (
    DEFAULTS,
    AnalysisCallback,
    all_finite,
    for_compute,
    to_f32,
)
from solo_offdiag.analysis.callbacks.state import StepSeries, column
from solo_offdiag.analysis.config import AnalysisConfig
from solo_offdiag.analysis.protocol import embeddings_from

__all__ = ["EmbeddingSpectrumCallback", "from_config"]


def _has_validation(trainer: Trainer, pl_module: LightningModule) -> bool:
    """Whether this fit runs validation batches (for ``source="auto"``)."""
    if not is_overridden("validation_step", pl_module) or trainer.limit_val_batches == 0:
        return False
    loop = getattr(getattr(trainer.fit_loop, "epoch_loop", None), "val_loop", None)
    source = getattr(loop, "_data_source", None)
    if source is not None and hasattr(source, "is_defined"):
        return bool(source.is_defined())
    return True  # unknown Lightning internals: trust the validation_step override


class EmbeddingSpectrumCallback(AnalysisCallback):
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
    series = ("spectra",)

    def __init__(
        self,
        *,
        embeddings: Sequence[str] = DEFAULTS.embeddings,
        every_n_steps: int = DEFAULTS.every_n_steps,
        queue_size: int = DEFAULTS.queue_size,
        source: str = DEFAULTS.source,
        alpha_fit_range: tuple[float, ...] = DEFAULTS.alpha_fit_range,
        alpha_method: str = DEFAULTS.alpha_method,
        rankme_eps: float = M.RANKME_EPS,
        seed: int = DEFAULTS.seed,
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
        if source not in ("auto", "val", "train"):
            raise ValueError(f"source must be 'auto', 'val' or 'train', got {source!r}")
        if not embeddings:
            raise ValueError("embeddings must name at least one of 'z', 'feats'")
        self.embeddings = tuple(embeddings)
        self.queue_size = queue_size
        self.source = source
        self.alpha_fit_range = (float(alpha_fit_range[0]), float(alpha_fit_range[1]))
        if alpha_method not in M.ALPHA_METHODS:
            allowed = ", ".join(M.ALPHA_METHODS)
            raise ValueError(f"alpha_method must be one of {allowed}, got {alpha_method!r}")
        self.alpha_method = alpha_method
        self.rankme_eps = rankme_eps
        self.seed = seed
        self.mode = "train" if source == "train" else "val"
        self._queues: dict[str, EmbeddingQueue] = {}
        #: per logging point and embedding: the covariance eigenvalues (float32, descending;
        #: empty when that embedding had no data at that point).
        self.spectra = StepSeries(self.embeddings)

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
                alpha_method=self.alpha_method,
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
            if result.finite and result.alpha_reason is not None:
                self._warn_once(
                    f"alpha-nan-{name}",
                    f"step {step}: alpha_req/{name} recorded as NaN: {result.alpha_reason} "
                    f"({int(result.n)} samples; raise analysis.queue_size if the queue is the "
                    "cause; later NaNs of this kind are not warned about)",
                )
            values.update(
                {keys[0]: result.rankme, keys[1]: result.alpha_req, f"n_samples/{name}": result.n}
            )
        empty = np.zeros(0, dtype=np.float32)
        self.spectra.record(
            step,
            **{e: results[e].spectrum if e in results else empty for e in self.embeddings},
        )
        self._record(trainer, step, values)

    def _arrays(self) -> dict[str, Any] | None:
        if not self.spectra:
            return None
        steps = self.spectra.steps
        out: dict[str, Any] = {"steps": self.spectra.steps_array()}
        for name in self.embeddings:
            table = self.spectra.table(name)
            if table.shape[1] == 0:
                continue
            out[f"eigvals/{name}"] = table
            for metric in ("rankme", "alpha_req", "n_samples"):
                out[f"{metric}/{name}"] = column(self.rows, steps, f"{metric}/{name}")
        return out

    def _upgrade_state(self, state: dict[str, Any]) -> dict[str, Any]:
        legacy = state.get("spectra")  # checkpoints before the StepSeries layout
        if isinstance(legacy, dict):
            return {"steps": state.get("steps", []), **legacy}
        return state


class _Spectrum(NamedTuple):
    finite: bool
    rankme: float
    alpha_req: float
    n: float
    spectrum: np.ndarray  # float32, descending (NaN: non-finite data)
    alpha_reason: str | None = None  # why alpha_req is NaN on finite data


def _gram_parts_of_each(*rows: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [M.gram_parts(r) for r in rows]


def _spectrum_job(
    parts: list[tuple[torch.Tensor, torch.Tensor]],
    *,
    names: tuple[str, ...],
    sizes: tuple[int, ...],
    rankme_eps: float,
    alpha_fit_range: tuple[float, float],
    alpha_method: str = "bulk",
) -> dict[str, _Spectrum]:
    """RankMe, alpha-ReQ and the covariance spectrum from each queue's Gram matrix."""
    out: dict[str, _Spectrum] = {}
    for name, (gram, mean), n in zip(names, parts, sizes):
        gram, mean = for_compute(gram), for_compute(mean)
        d = gram.shape[0]
        if all_finite(gram, mean):
            svals, spectrum = M.spectra_from_gram(gram, mean, n)
            rank = float(M.rankme_from_singular_values(svals, rankme_eps))
            fit = M.alpha_req_fit(spectrum, alpha_fit_range, method=alpha_method)
            alpha = float(fit.alpha)
            out[name] = _Spectrum(True, rank, alpha, float(n), to_f32(spectrum), fit.reason)
        else:
            nans = np.full(d, np.nan, dtype=np.float32)
            out[name] = _Spectrum(False, math.nan, math.nan, float(n), nans)
    return out


def from_config(cfg: AnalysisConfig, common: dict[str, Any]) -> EmbeddingSpectrumCallback:
    """The callback of ``method_kwargs.analysis`` (``common``: the keys every callback takes)."""
    return EmbeddingSpectrumCallback(
        embeddings=cfg.embeddings,
        queue_size=cfg.queue_size,
        source=cfg.source,
        alpha_fit_range=cfg.alpha_fit_range,
        alpha_method=cfg.alpha_method,
        seed=cfg.seed,
        **common,
    )
