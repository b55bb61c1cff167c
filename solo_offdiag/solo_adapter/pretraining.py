"""``solo-offdiag pretrain``: our own Hydra pretraining entry point on solo-learn's library parts.

For users with a pip-installed solo-learn and no checkout (no ``main_pretrain.py``). It follows
the same steps as solo's script, written here from its library API: ``parse_cfg``, the dataset
and loader builders, ``Checkpointer``, ``AutoResumer``, a Lightning ``Trainer``. Differences:

* every run has a **run directory** ``<checkpoint.dir>/<method>/<run id>`` fixed before training,
  holding checkpoints, ``args.json``, the CSV (or W&B) logs, ``config.yaml`` and the analysis
  output; :func:`pretrain` returns it, and (auto-)resume reuses it;
* our keys are validated before anything is built (:func:`validate_cfg`);
* the ``performance:`` switches of :mod:`solo_offdiag.perf` are honoured, including the
  GPU-resident data path (``performance.data_loader: gpu``; see :func:`build_train_data`);
* ``data.format: dali`` is not supported here (use solo-learn's ``main_pretrain.py``).
"""

from __future__ import annotations

import inspect
import os
import random
import string
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from solo_offdiag.config import ConfigError
from solo_offdiag.config.schema import check_num_large_crops, inert_key_notes
from solo_offdiag.io import atomic_write_text
from solo_offdiag.perf import PerformanceConfig
from solo_offdiag.solo_adapter.cfgcheck import (
    check_data_paths,
    check_solo_keys,
    normalise_devices,
    trainer_devices,
)
from solo_offdiag.solo_adapter.checkpoints import (
    CheckpointInfo,
    checkpointer_class,
    find_resumable_run,
    is_finished,
    read_checkpoint_info,
    remove_stale_temporaries,
    write_run_args,
)
from solo_offdiag.solo_adapter.configs import CONFIGS_PACKAGE, configs_dir
from solo_offdiag.solo_adapter.methods import METHOD_MODULES
from solo_offdiag.solo_adapter.methods.common import typed_method_cfg
from solo_offdiag.solo_adapter.requirements import require_solo

__all__ = [
    "CONFIGS_PACKAGE",
    "build_train_data",
    "compose_config",
    "configs_dir",
    "CorruptImage",
    "Preempted",
    "check_data_paths",
    "config_notes",
    "is_rank_zero",
    "pretrain",
    "run_pretrain",
    "validate_cfg",
]

#: solo-learn keeps one key of its own under ``performance:``; ours are the rest.
_SOLO_PERFORMANCE_KEYS = ("disable_channel_last",)


def compose_config(
    overrides: Sequence[str] = (),
    *,
    config_name: str = "byol_offdiag",
    config_dir: str | os.PathLike[str] | None = None,
) -> DictConfig:
    """Compose a pretrain config with Hydra (no solo-learn needed).

    ``config_dir`` (e.g. a solo-learn checkout's ``scripts/pretrain/cifar``) is searched first;
    our configs are always on the search path too (via our Hydra search-path plugin, and as the
    primary directory when ``config_dir`` is None).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    primary = Path(config_dir) if config_dir is not None else configs_dir()
    if not primary.is_dir():
        raise FileNotFoundError(f"config directory not found: {str(primary)!r}")
    if GlobalHydra.instance().is_initialized():  # e.g. called from inside a @hydra.main app
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(primary.resolve()), version_base="1.2"):
        cfg = compose(config_name=config_name, overrides=list(overrides))
    OmegaConf.set_struct(cfg, False)
    return cfg


def pretrain(
    overrides: Sequence[str] = (),
    *,
    config_name: str = "byol_offdiag",
    config_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Compose a config (Hydra overrides as on the command line) and pretrain; return the run dir.

    Examples:
        >>> run_dir = pretrain(["hardware=cpu", "max_epochs=1"])  # doctest: +SKIP

    Raises:
        SoloLearnNotInstalled: solo-learn 1.0.6 is missing (with install instructions).
        ConfigError: an invalid key of ours, before anything is built.
    """
    return run_pretrain(compose_config(overrides, config_name=config_name, config_dir=config_dir))


def validate_cfg(cfg: DictConfig) -> PerformanceConfig:
    """Every check a run makes before training (``--print-config`` runs the same): our method keys
    when the method is ours (:func:`solo_offdiag.config.validate_method_cfg`), solo-learn's keys
    that would fail late (:func:`solo_offdiag.solo_adapter.cfgcheck.check_solo_keys`),
    ``data.num_large_crops`` for solo's methods, ``performance:`` (also against the device the run
    would use) and an explicit ``resume_from_checkpoint`` (exists and is readable). Not here: the
    data folders (``--print-config`` warns, see :func:`check_data_paths`) and the name of a solo-learn
    method, which needs solo-learn's registry.

    Returns:
        the validated ``performance:`` section.

    Raises:
        ConfigError: the first bad value (key, value, what is allowed).
    """
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    method = plain.get("method")
    if not isinstance(method, str) or not method:
        raise ConfigError(f"method: got {method!r}; allowed: byol_offdiag, simsiam_offdiag or any solo-learn method")
    if method in METHOD_MODULES:
        typed_method_cfg(plain)
    else:
        check_num_large_crops(plain.get("data") or {}, method)  # type: ignore[arg-type]
    check_solo_keys(plain)  # type: ignore[arg-type]
    if (plain.get("data") or {}).get("format") == "dali":  # type: ignore[union-attr]
        raise ConfigError(
            "data.format: got 'dali'; solo-offdiag pretrain supports image_folder and h5 only "
            "(use solo-learn's main_pretrain.py for DALI)"
        )
    performance = plain.get("performance") or {}
    if not isinstance(performance, dict):
        raise ConfigError(f"performance: got {performance!r}; expected a mapping")
    ours = {k: v for k, v in performance.items() if k not in _SOLO_PERFORMANCE_KEYS}
    checked = PerformanceConfig.from_mapping(ours)
    checked.check_device(_device_type(plain))
    _explicit_resume(plain)
    return checked


def _explicit_resume(cfg: Any) -> CheckpointInfo | None:
    """``resume_from_checkpoint`` read (epoch, step), or None when not given.

    Raises:
        ConfigError: no such file, or not a readable checkpoint (the message names it).
    """
    explicit = cfg.get("resume_from_checkpoint")
    if explicit is None:
        return None
    path = Path(str(explicit))
    if not path.is_file():
        raise ConfigError(f"resume_from_checkpoint: got {str(explicit)!r}; no such file")
    try:
        return read_checkpoint_info(path)
    except ValueError as err:
        raise ConfigError(f"resume_from_checkpoint: {err}") from None


def config_notes(cfg: DictConfig) -> list[str]:
    """Notes on accepted keys that have no effect (e.g. SimSiam's ``temperature`` from solo's recipes)."""
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    return inert_key_notes(plain) if plain.get("method") in METHOD_MODULES else []  # type: ignore[arg-type]


def _device_type(cfg: Any) -> str:
    """The torch device type a run of ``cfg`` (DictConfig or plain mapping) trains on."""
    import torch

    accelerator = str(cfg.get("accelerator") or "auto")
    if accelerator in ("gpu", "cuda"):
        return "cuda"
    if accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return accelerator


def _new_run_id() -> str:
    suffix = "".join(random.Random().choices(string.ascii_lowercase + string.digits, k=4))
    return time.strftime("%Y%m%d-%H%M%S-") + suffix


class Preempted(KeyboardInterrupt):
    """Training stopped on SIGTERM (e.g. a preempted job) after saving a resumable checkpoint.

    ``run_dir``: the run directory; ``checkpoint``: the checkpoint the same command resumes from.
    """

    def __init__(self, message: str, run_dir: Path, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.run_dir = run_dir
        self.checkpoint = checkpoint


#: set while ``Trainer.fit`` runs in this process: a SIGTERM then only asks Lightning to stop after
#: the current batch (and our checkpointer to save), instead of interrupting mid-step.
FIT_IN_PROGRESS = False

_ENV_RUN_ID = "SOLO_OFFDIAG_RUN_ID"
_ENV_RESUME = "SOLO_OFFDIAG_RESUME_FROM"


def is_rank_zero() -> bool:
    """Whether this process is the global rank 0 (always true without DDP). Before the Trainer
    exists this is read from the variables Lightning's DDP launcher sets in child processes."""
    return all(int(os.environ.get(var, "0") or 0) == 0 for var in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def _say(message: str) -> None:
    if is_rank_zero():
        print(f"solo-offdiag: {message}", flush=True)


def _resume(cfg: DictConfig) -> tuple[CheckpointInfo | None, str | None]:
    """(checkpoint to resume from, run id to reuse) from ``resume_from_checkpoint``/auto-resume.

    DDP child processes (rank > 0) take both from rank 0 (environment), so every rank trains in
    the same run directory from the same checkpoint.
    """
    if not is_rank_zero() and _ENV_RUN_ID in os.environ:
        ckpt = os.environ.get(_ENV_RESUME) or None
        return (read_checkpoint_info(ckpt) if ckpt else None), os.environ[_ENV_RUN_ID]
    info = _explicit_resume(cfg)
    if info is not None:
        path = info.path
        # our run directories hold args.json next to the checkpoints: reuse that run id
        run_id = path.parent.name if (path.parent / "args.json").is_file() else None
        return info, run_id
    if cfg.auto_resume.enabled:
        from solo.utils.auto_resumer import AutoResumer

        found = find_resumable_run(cfg, AutoResumer.SHOULD_MATCH, max_hours=cfg.auto_resume.max_hours,
                                   warn=lambda m: _say(m.removeprefix("solo-offdiag: ")))
        if found is not None:
            if found[0] is None:
                _say(f"run {found[1]} has no readable checkpoint yet; starting it over in the same directory")
            return found
    return None, None


def _val_loader(cfg: DictConfig) -> Any:
    """solo's classification validation loader, or None when the dataset has no validation set."""
    from solo.data.classification_dataloader import prepare_data

    if cfg.data.dataset == "custom" and (cfg.data.no_labels or cfg.data.val_path is None):
        return None
    if cfg.data.dataset in ("imagenet100", "imagenet") and cfg.data.val_path is None:
        return None
    _, loader = prepare_data(
        cfg.data.dataset,
        train_data_path=cfg.data.train_path,
        val_data_path=cfg.data.val_path,
        data_format=cfg.data.format,
        batch_size=cfg.optimizer.batch_size,
        num_workers=cfg.data.num_workers,
    )
    return loader


def build_train_data(cfg: DictConfig, performance: PerformanceConfig, val_loader: Any) -> dict[str, Any]:
    """The one place that chooses the training data path; returns ``Trainer.fit`` keyword args.

    ``performance.data_loader: solo`` (default): solo-learn's PIL augmentations in DataLoader
    workers. ``gpu``: :class:`solo_offdiag.data.GPUPretrainDataModule` (the whole uint8 set on
    the device, batched augmentations there), fed by the same ``augmentations:`` list.
    """
    if performance.data_loader == "gpu":
        from solo_offdiag.data import build_gpu_datamodule

        return {"datamodule": build_gpu_datamodule(cfg, val_dataloader=val_loader, performance=performance)}
    from solo.data.pretrain_dataloader import (
        FullTransformPipeline,
        NCropAugmentation,
        build_transform_pipeline,
        prepare_dataloader,
        prepare_datasets,
    )

    transform = FullTransformPipeline(
        [
            NCropAugmentation(build_transform_pipeline(cfg.data.dataset, aug), aug.num_crops)
            for aug in cfg.augmentations
        ]
    )
    dataset = prepare_datasets(
        cfg.data.dataset,
        transform,
        train_data_path=cfg.data.train_path,
        data_format=cfg.data.format,
        no_labels=cfg.data.no_labels,
        data_fraction=cfg.data.fraction,
    )
    _name_corrupt_images(dataset)
    loader = prepare_dataloader(dataset, batch_size=cfg.optimizer.batch_size, num_workers=cfg.data.num_workers)
    return {"train_dataloaders": loader, "val_dataloaders": val_loader}


class CorruptImage(ValueError):
    """An image file of the training set cannot be decoded; the message starts with its path."""


class _NamingLoader:
    """Wraps an ImageFolder's ``loader`` so that a file PIL cannot read is named in the error
    (picklable, for DataLoader workers)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __call__(self, path: str) -> Any:
        try:
            return self.loader(path)
        except Exception as err:  # noqa: BLE001 - PIL raises several types for a bad file
            raise CorruptImage(f"{path}: cannot read this image ({type(err).__name__}: {err}); "
                               "remove or replace the file") from None


def _name_corrupt_images(dataset: Any) -> None:
    inner = dataset
    while hasattr(inner, "dataset") and not hasattr(inner, "samples"):  # Subset (data.fraction)
        inner = inner.dataset
    if hasattr(inner, "samples") and callable(getattr(inner, "loader", None)):
        inner.loader = _NamingLoader(inner.loader)


def _logger(cfg: DictConfig, run_dir: Path, run_id: str, resuming: bool) -> Any:
    if cfg.wandb.enabled:
        from lightning.pytorch.loggers import WandbLogger

        return WandbLogger(
            name=cfg.name,
            project=cfg.wandb.project,
            entity=cfg.wandb.entity,
            offline=cfg.wandb.offline,
            id=run_id,
            save_dir=str(run_dir),
            resume="allow" if resuming else None,
        )
    from lightning.pytorch.loggers import CSVLogger

    previous = run_dir / "metrics.csv"
    if resuming and previous.is_file() and is_rank_zero():  # DDP: rank 0 alone moves files
        # the CSV writer cannot append rows with new columns to an old file: keep it aside
        previous.rename(run_dir / time.strftime("metrics-until-%Y%m%d-%H%M%S.csv"))
    # save_dir/name/version == run_dir, so trainer.log_dir is the run directory.
    return CSVLogger(save_dir=str(run_dir.parent), name="", version=run_id)


def run_pretrain(cfg: DictConfig) -> Path:
    """Pretrain with a composed (not yet parsed) solo-learn config; return the run directory.

    Order: solo's ``parse_cfg`` and our validation (errors before anything is built); resume
    detection; seed; method; data; Trainer; ``fit``.
    """
    require_solo()
    from solo_offdiag.solo_adapter.registration import register

    register()
    from lightning.pytorch import Trainer, seed_everything
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.strategies import DDPStrategy
    from solo.args.pretrain import parse_cfg
    from solo.methods import METHODS
    from solo.utils.misc import make_contiguous, omegaconf_select

    from solo_offdiag.perf import SyncFreeLARS, apply_performance, optimizer_kwargs, trainer_kwargs

    OmegaConf.set_struct(cfg, False)
    performance = validate_cfg(cfg)  # our keys and solo's late-failing ones first: clear errors
    check_data_paths(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    for note in config_notes(cfg):
        _say(f"note: {note}")
    # solo scales optimizer.lr by len(devices): make that the real number of processes per node
    cfg.devices = normalise_devices(cfg.get("devices", 1), cfg.get("accelerator"))
    cfg = parse_cfg(cfg)
    performance = validate_cfg(cfg)
    if cfg.method not in METHODS:
        raise ConfigError(f"method: got {cfg.method!r}; known: {', '.join(sorted(METHODS))}")
    device_type = _device_type(cfg)  # validate_cfg checked performance against it
    if not performance.channels_last:
        cfg.performance.disable_channel_last = True
    cfg.optimizer.kwargs.update(optimizer_kwargs(performance, cfg.optimizer.name, device_type))

    seed_everything(cfg.seed)
    # The method fills solo's defaults into cfg (e.g. backbone.kwargs); build it before looking for
    # a run to resume, as solo's main_pretrain.py does, so the resume matching compares like with like.
    model = METHODS[cfg.method](cfg)
    make_contiguous(model)
    if performance.sync_free_lars:
        model._OPTIMIZERS = {**model._OPTIMIZERS, "lars": SyncFreeLARS}
    for line in apply_performance(model, performance, device_type):
        _say(line)

    resume, run_id = _resume(cfg)
    if "resume_from_checkpoint" in cfg:
        del cfg.resume_from_checkpoint  # not recorded in args.json, as in solo's script
    run_id = run_id or _new_run_id()
    run_dir = Path(cfg.checkpoint.dir) / cfg.method / run_id
    if resume is not None:
        if is_finished(resume, cfg.get("max_epochs"), cfg.get("max_steps")):
            _say(f"run {run_dir} is already finished (checkpoint {resume.path.name}: epoch "
                 f"{resume.epoch + 1} of {cfg.get('max_epochs')}, step {resume.global_step}); nothing to do")
            return run_dir
        _say(f"resuming from {resume.path} (epoch {resume.epoch}, step {resume.global_step})")
    if is_rank_zero():  # DDP children (started by fit) follow rank 0's choice
        os.environ[_ENV_RUN_ID] = run_id
        os.environ[_ENV_RESUME] = str(resume.path) if resume is not None else ""
    if hasattr(model, "analysis_out_dir"):
        model.analysis_out_dir = str(run_dir / "analysis")  # used when analysis.out_dir is null

    fit_data = build_train_data(cfg, performance, _val_loader(cfg))

    if is_rank_zero():
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(run_dir)
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg))
        if cfg.checkpoint.enabled and not (run_dir / "args.json").is_file():
            # before anything slow: a kill from here on leaves a run that resume finds (in place)
            write_run_args(run_dir, OmegaConf.to_container(cfg))  # type: ignore[arg-type]
    logger = _logger(cfg, run_dir, run_id, resuming=resume is not None)
    callbacks: list[Any] = [LearningRateMonitor(logging_interval="step")]
    checkpointer = None
    if cfg.checkpoint.enabled:
        checkpointer = checkpointer_class()(
            cfg,
            logdir=os.path.join(cfg.checkpoint.dir, cfg.method),
            frequency=cfg.checkpoint.frequency,
            keep_prev=cfg.checkpoint.keep_prev,
        )
        callbacks.append(checkpointer)
    if omegaconf_select(cfg, "auto_umap.enabled", False):
        from solo.utils.auto_umap import AutoUMAP

        callbacks.append(
            AutoUMAP(cfg.name, logdir=os.path.join(cfg.auto_umap.dir, cfg.method), frequency=cfg.auto_umap.frequency)
        )

    plain = OmegaConf.to_container(cfg, resolve=True)
    valid = inspect.signature(Trainer.__init__).parameters
    kwargs = {name: plain[name] for name in valid if name in plain}  # type: ignore[index,operator]
    strategy = cfg.get("strategy") or "auto"
    kwargs.update(
        {
            "devices": trainer_devices(list(cfg.devices), cfg.get("accelerator")),
            "logger": logger,
            "callbacks": callbacks,
            "enable_checkpointing": False,
            "strategy": DDPStrategy(find_unused_parameters=False) if strategy == "ddp" else strategy,
            **trainer_kwargs(performance, cfg.get("precision")),
        }
    )
    trainer = Trainer(**kwargs)
    _fit(trainer, model, resume, fit_data, run_dir, checkpointer)
    return run_dir


def _fit(trainer: Any, model: Any, resume: CheckpointInfo | None, fit_data: dict[str, Any], run_dir: Path,
         checkpointer: Any) -> None:
    """``trainer.fit`` with honest outcomes: SIGTERM -> :class:`Preempted` (after the checkpoint),
    Ctrl-C -> ``KeyboardInterrupt`` (lightning 2.1 swallows it and returns, 2.6 exits with 1)."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    global FIT_IN_PROGRESS
    # During fit, Lightning's own SIGTERM handler (which also calls a handler installed before)
    # asks the loop to stop after the current batch; our checkpointer saves in on_exception.
    FIT_IN_PROGRESS = True
    try:
        trainer.fit(model, ckpt_path=str(resume.path) if resume is not None else None, **fit_data)
    except SIGTERMException:
        saved = getattr(checkpointer, "last_saved", None)
        where = (f"checkpoint {saved} saved" if saved is not None and trainer.received_sigterm else
                 "no checkpoint saved (checkpoint.enabled is false)" if checkpointer is None else
                 "the last end-of-epoch checkpoint is kept")
        raise Preempted(
            f"stopped on SIGTERM at step {trainer.global_step}; {where}; run the same command again "
            f"to resume in {run_dir}", run_dir, saved) from None
    except SystemExit:
        if trainer.interrupted:  # lightning 2.6: Ctrl-C becomes sys.exit(1)
            raise KeyboardInterrupt(_interrupt_message(trainer, run_dir)) from None
        raise
    finally:
        FIT_IN_PROGRESS = False
    if trainer.interrupted:
        # lightning 2.1 swallows Ctrl-C and returns normally (2.6 exits); callers such as the
        # reproduction runner must not mistake a partial run for a finished one.
        raise KeyboardInterrupt(_interrupt_message(trainer, run_dir))


def _interrupt_message(trainer: Any, run_dir: Path) -> str:
    return (f"pretraining interrupted at step {trainer.global_step}; run the same command again "
            f"to resume from the last checkpoint in {run_dir}")

