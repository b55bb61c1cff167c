"""Checkpoints that survive kills: atomic writes, newest-valid resume, a checkpoint on SIGTERM.

solo-learn's ``Checkpointer`` lets Lightning write ``<name>-<run id>-ep=<k>.ckpt`` in place, and its
``AutoResumer`` takes the first ``.ckpt`` of a run directory in directory order. A SIGKILL during a
save then leaves a truncated file that every later resume picks and crashes on, and after two
kills a resume can go back to an older epoch. Here:

* :func:`checkpointer_class` is solo's ``Checkpointer`` writing each checkpoint to a temporary
  sibling, fsync-ing it and renaming it into place (:func:`solo_offdiag.io.publish`), so a
  ``.ckpt`` file is always complete; older checkpoints of the run directory (including those left
  by earlier processes) are removed after a successful save unless ``checkpoint.keep_prev``; on
  SIGTERM (Lightning raises ``SIGTERMException`` after the current batch) it saves a resumable
  mid-epoch checkpoint;
* :func:`newest_valid_checkpoint` orders a run directory's checkpoints by (epoch, global step),
  skips unreadable ones with a warning naming them, and :func:`find_resumable_run` does solo's
  auto-resume matching (its ``AutoResumer.SHOULD_MATCH`` keys) on top of it;
* :func:`is_finished` tells a finished run from an interrupted one, so re-running a finished run
  does nothing.

Everything but :func:`checkpointer_class` works without solo-learn.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solo_offdiag.config.validate import plain
from solo_offdiag.io import atomic_write_text, publish

__all__ = [
    "MARKER_KEY",
    "CheckpointInfo",
    "UnreadableCheckpoint",
    "checkpointer_class",
    "find_resumable_run",
    "is_finished",
    "newest_valid_checkpoint",
    "read_checkpoint_info",
    "remove_stale_temporaries",
    "write_run_args",
]

#: key our checkpointer adds to every checkpoint: ``{"end_of_epoch": bool}``.
MARKER_KEY = "solo_offdiag"
_TMP_SUFFIX = ".tmp"


class UnreadableCheckpoint(ValueError):
    """A checkpoint file cannot be loaded (truncated, garbage, not a Lightning checkpoint)."""


@dataclass(frozen=True)
class CheckpointInfo:
    """Where a checkpoint is and how far its training went."""

    path: Path
    epoch: int
    global_step: int
    end_of_epoch: bool
    mtime: float

    @property
    def order(self) -> tuple[int, int, bool]:
        return (self.epoch, self.global_step, self.end_of_epoch)


def read_checkpoint_info(path: str | os.PathLike[str]) -> CheckpointInfo:
    """Load ``path`` (memory-mapped, on the CPU) and return its epoch and global step.

    Raises:
        UnreadableCheckpoint: the file cannot be loaded or holds no ``epoch``/``global_step``;
            the message names the file.
    """
    import torch

    path = Path(path)
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            state = torch.load(path, map_location="cpu", weights_only=False)  # legacy format
        epoch, step = int(state["epoch"]), int(state["global_step"])
    except Exception as err:  # noqa: BLE001 - zip errors, pickle errors, EOF, missing keys: all "unreadable"
        raise UnreadableCheckpoint(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    marker = state.get(MARKER_KEY) if isinstance(state, Mapping) else None
    # solo's own Checkpointer saves only at the end of an epoch
    end_of_epoch = bool(marker.get("end_of_epoch", True)) if isinstance(marker, Mapping) else True
    return CheckpointInfo(path, epoch, step, end_of_epoch, path.stat().st_mtime)


def _candidates(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.ckpt") if p.is_file() and not p.name.startswith("."))


def newest_valid_checkpoint(
    directory: str | os.PathLike[str], *, warn: Callable[[str], None] = print
) -> CheckpointInfo | None:
    """The checkpoint of ``directory`` furthest in training (epoch, then global step), or None.

    Unreadable checkpoints are skipped, each with a warning naming it. Never directory order.
    """
    best: CheckpointInfo | None = None
    for path in _candidates(Path(directory)):
        try:
            info = read_checkpoint_info(path)
        except UnreadableCheckpoint as err:
            warn(f"solo-offdiag: warning: skipping {err}")
            continue
        if best is None or info.order > best.order or (info.order == best.order and info.mtime > best.mtime):
            best = info
    return best


def is_finished(info: CheckpointInfo, max_epochs: int | None, max_steps: int | None) -> bool:
    """Whether ``info`` is the end of training for these limits (Lightning's meaning)."""
    if max_steps is not None and max_steps > 0 and info.global_step >= max_steps:
        return True
    return bool(max_epochs) and info.end_of_epoch and info.epoch >= int(max_epochs) - 1  # type: ignore[arg-type]


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary checkpoint files a killed save left behind; return them."""
    removed = []
    for path in Path(directory).glob(f".*.ckpt.*{_TMP_SUFFIX}"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _select(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def find_resumable_run(
    cfg: Any,
    match_keys: Sequence[str],
    *,
    max_hours: float | None = None,
    warn: Callable[[str], None] = print,
) -> tuple[CheckpointInfo | None, str] | None:
    """solo's auto-resume, done safely: the run of ``<checkpoint.dir>/<method>/*`` whose
    ``args.json`` agrees with ``cfg`` on every key of ``match_keys`` and whose newest *valid*
    checkpoint is the most recent; returns (that checkpoint, run id) or None.

    A matching run with no valid checkpoint yet (killed before or during its first save) is
    returned as ``(None, run id)`` when no run has one, so that the re-run starts over in the
    same run directory instead of leaving an orphan next to a new one.

    ``max_hours`` (solo's ``auto_resume.max_hours``): ignore checkpoints older than that.
    """
    base = Path(str(_select(cfg, "checkpoint.dir") or "trained_models")) / str(_select(cfg, "method"))
    if not base.is_dir():
        return None
    wanted = {key: plain(_select(cfg, key)) for key in match_keys}
    now = _dt.datetime.now().timestamp()
    best: tuple[CheckpointInfo, str] | None = None
    fresh: tuple[float, str] | None = None
    for args_path in sorted(base.glob("*/args.json")):
        try:
            args = json.loads(args_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            warn(f"solo-offdiag: warning: skipping run {args_path.parent} (unreadable args.json: {err})")
            continue
        if not isinstance(args, Mapping) or any(_select(args, k) != v for k, v in wanted.items()):
            continue
        remove_stale_temporaries(args_path.parent)
        info = newest_valid_checkpoint(args_path.parent, warn=warn)
        if info is None:
            started = args_path.stat().st_mtime
            if (max_hours is None or now - started <= max_hours * 3600) and (fresh is None or started > fresh[0]):
                fresh = (started, args_path.parent.name)
            continue
        if max_hours is not None and now - info.mtime > max_hours * 3600:
            continue
        if best is None or info.mtime > best[0].mtime:
            best = (info, args_path.parent.name)
    if best is None and fresh is not None:
        return None, fresh[1]
    return best


def write_run_args(run_dir: Path, args: Mapping[str, Any], wandb_run_id: str | None = None) -> None:
    """``<run_dir>/args.json`` (atomically): solo's record of a run's config, which resume matches on.

    Written by the checkpointer at train start (as solo's) and by ``solo-offdiag pretrain`` when it
    creates the run directory, so that a run killed before its first save is still found by
    :func:`find_resumable_run` and re-run in place, not next to an orphaned directory.
    """
    record = {**dict(args), "wandb_run_id": wandb_run_id}
    atomic_write_text(Path(run_dir) / "args.json", json.dumps(record, default=lambda o: "<not serializable>"))


def checkpointer_class() -> type:
    """solo-learn's ``Checkpointer`` with atomic saves, stale-checkpoint clean-up and a SIGTERM save.

    Built on first use (it subclasses a solo-learn class; importing this module needs no solo).
    """
    global _CHECKPOINTER
    if _CHECKPOINTER is None:
        _CHECKPOINTER = _build_checkpointer_class()
    return _CHECKPOINTER


_CHECKPOINTER: type | None = None


def _build_checkpointer_class() -> type:
    from lightning.pytorch.utilities.exceptions import SIGTERMException
    from omegaconf import OmegaConf
    from solo.utils.checkpointer import Checkpointer

    class SafeCheckpointer(Checkpointer):  # type: ignore[misc,valid-type]
        """solo's Checkpointer (same file names, frequency, ``keep_prev``) made kill-safe.

        ``last_saved`` is the path of the last checkpoint this process published (or None).
        """

        last_saved: Path | None = None
        _end_of_epoch = True

        def save_args(self, trainer: Any) -> None:
            if trainer.is_global_zero:
                write_run_args(self.path, OmegaConf.to_container(self.cfg),  # type: ignore[arg-type]
                               getattr(self, "wandb_run_id", None))

        def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
            checkpoint[MARKER_KEY] = {"end_of_epoch": bool(self._end_of_epoch)}

        def save(self, trainer: Any) -> None:
            if not trainer.sanity_checking:
                self.save_atomically(trainer, end_of_epoch=True)

        def save_atomically(self, trainer: Any, *, end_of_epoch: bool) -> Path:
            target = self.path / self.ckpt_placeholder.format(trainer.current_epoch)
            tmp = target.with_name(f".{target.name}.{os.getpid()}{_TMP_SUFFIX}")
            self._end_of_epoch = end_of_epoch
            try:
                trainer.save_checkpoint(tmp)  # every rank takes part; rank 0 writes
            finally:
                self._end_of_epoch = True
            if trainer.is_global_zero:
                publish(tmp, target)
                if not self.keep_prev:
                    for old in self.path.glob("*.ckpt"):
                        if old != target:
                            old.unlink(missing_ok=True)
            self.last_ckpt = target
            self.last_saved = target
            return target

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            # Lightning raises SIGTERMException between batches (or inside validation: then the
            # training state is mid-evaluation, and the last end-of-epoch checkpoint is kept).
            if not isinstance(exception, SIGTERMException) or not hasattr(self, "path"):
                return
            if trainer.sanity_checking or trainer.validating:
                return
            self.save_atomically(trainer, end_of_epoch=False)

    return SafeCheckpointer
