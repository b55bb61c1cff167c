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
from solo_offdiag.config.schema import check_num_large_crops
from solo_offdiag.io import atomic_write_text
from solo_offdiag.perf import PerformanceConfig
from solo_offdiag.solo_adapter.configs import CONFIGS_PACKAGE, configs_dir
from solo_offdiag.solo_adapter.methods import METHOD_MODULES
from solo_offdiag.solo_adapter.methods.common import typed_method_cfg
from solo_offdiag.solo_adapter.requirements import require_solo

__all__ = [
    "CONFIGS_PACKAGE",
    "build_train_data",
    "compose_config",
    "configs_dir",
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
    """Our checks on a (parsed) config: method keys when the method is ours, and ``performance:``.

    Returns:
        the validated ``performance:`` section.
    """
    if cfg.get("method") in METHOD_MODULES:
        typed_method_cfg(cfg)
    if cfg.get("data", {}).get("format") == "dali":
        raise ConfigError(
            "data.format: got 'dali'; solo-offdiag pretrain supports image_folder and h5 only "
            "(use solo-learn's main_pretrain.py for DALI)"
        )
    performance = cfg.get("performance") or {}
    ours = {k: v for k, v in OmegaConf.to_container(performance, resolve=True).items()  # type: ignore[union-attr]
            if k not in _SOLO_PERFORMANCE_KEYS} if performance else {}
    return PerformanceConfig.from_mapping(ours)


def _device_type(cfg: DictConfig) -> str:
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


def _resume(cfg: DictConfig) -> tuple[str | None, str | None]:
    """(checkpoint to resume from, run id to reuse) from ``resume_from_checkpoint``/auto-resume."""
    from solo.utils.auto_resumer import AutoResumer

    explicit = cfg.get("resume_from_checkpoint")
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"resume_from_checkpoint: got {str(explicit)!r}; no such file")
        # our run directories hold args.json next to the checkpoints: reuse that run id
        run_id = path.parent.name if (path.parent / "args.json").is_file() else None
        return str(path), run_id
    if cfg.auto_resume.enabled:
        resumer = AutoResumer(
            checkpoint_dir=os.path.join(cfg.checkpoint.dir, cfg.method),
            max_hours=cfg.auto_resume.max_hours,
        )
        ckpt, run_id = resumer.find_checkpoint(cfg)
        if ckpt is not None:
            print(f"solo-offdiag: resuming from {ckpt}")
            return str(ckpt), run_id
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
    loader = prepare_dataloader(dataset, batch_size=cfg.optimizer.batch_size, num_workers=cfg.data.num_workers)
    return {"train_dataloaders": loader, "val_dataloaders": val_loader}


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
    if resuming and previous.is_file():
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
    from solo.utils.checkpointer import Checkpointer
    from solo.utils.misc import make_contiguous, omegaconf_select

    from solo_offdiag.perf import SyncFreeLARS, apply_performance, optimizer_kwargs, trainer_kwargs

    OmegaConf.set_struct(cfg, False)
    performance = validate_cfg(cfg)  # our keys first: clear errors before solo's asserts
    cfg = parse_cfg(cfg)
    performance = validate_cfg(cfg)
    if cfg.method not in METHODS:
        raise ConfigError(f"method: got {cfg.method!r}; known: {', '.join(sorted(METHODS))}")
    check_num_large_crops(cfg.data, cfg.method)
    device_type = _device_type(cfg)
    performance.check_device(device_type)
    if not performance.channels_last:
        cfg.performance.disable_channel_last = True
    cfg.optimizer.kwargs.update(optimizer_kwargs(performance, cfg.optimizer.name, device_type))

    seed_everything(cfg.seed)
    # The method fills solo's defaults into cfg (e.g. backbone.kwargs); build it before looking for
    # a run to resume, as solo's main_pretrain.py does, so AutoResumer compares like with like.
    model = METHODS[cfg.method](cfg)
    make_contiguous(model)
    if performance.sync_free_lars:
        model._OPTIMIZERS = {**model._OPTIMIZERS, "lars": SyncFreeLARS}
    for line in apply_performance(model, performance, device_type):
        print(f"solo-offdiag: {line}")

    ckpt_path, run_id = _resume(cfg)
    if "resume_from_checkpoint" in cfg:
        del cfg.resume_from_checkpoint  # not recorded in args.json, as in solo's script
    run_id = run_id or _new_run_id()
    run_dir = Path(cfg.checkpoint.dir) / cfg.method / run_id
    if hasattr(model, "analysis_out_dir"):
        model.analysis_out_dir = str(run_dir / "analysis")  # used when analysis.out_dir is null

    fit_data = build_train_data(cfg, performance, _val_loader(cfg))

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg))
    logger = _logger(cfg, run_dir, run_id, resuming=ckpt_path is not None)
    callbacks: list[Any] = [LearningRateMonitor(logging_interval="step")]
    if cfg.checkpoint.enabled:
        callbacks.append(
            Checkpointer(
                cfg,
                logdir=os.path.join(cfg.checkpoint.dir, cfg.method),
                frequency=cfg.checkpoint.frequency,
                keep_prev=cfg.checkpoint.keep_prev,
            )
        )
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
            "logger": logger,
            "callbacks": callbacks,
            "enable_checkpointing": False,
            "strategy": DDPStrategy(find_unused_parameters=False) if strategy == "ddp" else strategy,
            **trainer_kwargs(performance, cfg.get("precision")),
        }
    )
    trainer = Trainer(**kwargs)
    trainer.fit(model, ckpt_path=ckpt_path, **fit_data)
    if trainer.interrupted:
        # lightning 2.1 swallows Ctrl-C and returns normally (2.6 exits); callers such as the
        # reproduction runner must not mistake a partial run for a finished one.
        raise KeyboardInterrupt(
            f"pretraining interrupted at step {trainer.global_step}; run the same command again "
            f"to resume from the last checkpoint in {run_dir}"
        )
    return run_dir
