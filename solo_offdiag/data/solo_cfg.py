"""Build the GPU data module from a solo-learn pretrain config (a plain mapping or DictConfig).

Reads solo-learn's own keys, so augmentation values have one source of truth (the
``augmentations:`` list): ``data.dataset``, ``data.train_path``, ``data.num_large_crops``,
``data.num_small_crops``, ``optimizer.batch_size``, ``augmentations``; and ours under
``performance:`` (:class:`solo_offdiag.perf.PerformanceConfig`): ``augment_seed``,
``channels_last``, ``download``, ``image_size``. No solo-learn import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from solo_offdiag.config.validate import ConfigError, plain
from solo_offdiag.data.gpu_augment import views_from_solo_cfg
from solo_offdiag.data.gpu_datamodule import GPUPretrainDataModule
from solo_offdiag.data.sources import InMemoryImages, load_dataset
from solo_offdiag.perf import PerformanceConfig

__all__ = ["build_gpu_datamodule"]


def build_gpu_datamodule(
    cfg: Mapping[str, Any],
    *,
    data: InMemoryImages | None = None,
    val_dataloader: Any | Callable[[], Any] | None = None,
    performance: PerformanceConfig | None = None,
) -> GPUPretrainDataModule:
    """The :class:`GPUPretrainDataModule` for solo-learn config ``cfg``.

    Args:
        cfg: solo-learn's pretrain config (after ``parse_cfg`` or raw).
        data: the training set; ``None`` loads ``data.dataset`` from ``data.train_path``.
        val_dataloader: passed through to the data module (e.g. solo's classification loader).
        performance: already validated ``performance:`` section; ``None`` validates
            ``cfg["performance"]`` (or uses the defaults).

    Raises:
        ConfigError: a missing/invalid key, naming it.
    """
    cfg = plain(cfg)
    perf = performance if performance is not None else PerformanceConfig.from_mapping(cfg.get("performance"))
    data_cfg = _section(cfg, "data")
    dataset = data_cfg.get("dataset")
    views = views_from_solo_cfg(_required(cfg, "augmentations"), dataset)
    expected = int(data_cfg.get("num_large_crops", 2)) + int(data_cfg.get("num_small_crops", 0) or 0)
    if len(views) != expected:
        raise ConfigError(
            f"augmentations: the pipelines give {len(views)} views (sum of num_crops); "
            f"data.num_large_crops + data.num_small_crops = {expected}"
        )
    batch_size = _section(cfg, "optimizer").get("batch_size")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ConfigError(f"optimizer.batch_size: got {batch_size!r}; allowed: an integer > 0")
    if data is None:
        data = load_dataset(
            str(dataset), data_cfg.get("train_path"), download=perf.download, image_size=perf.image_size
        )
    return GPUPretrainDataModule(
        data,
        views,
        batch_size,
        seed=perf.augment_seed,
        channels_last=perf.channels_last,
        val_dataloader=val_dataloader,
    )


def _section(cfg: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = cfg.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: got {value!r}; expected a mapping")
    return value


def _required(cfg: Mapping[str, Any], key: str) -> Any:
    if cfg.get(key) is None:
        raise ConfigError(f"{key}: missing; the GPU data path needs solo-learn's {key!r} list")
    return cfg[key]
