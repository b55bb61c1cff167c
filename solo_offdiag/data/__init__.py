"""The GPU-resident pretraining data path (issue #6).

* :mod:`~solo_offdiag.data.gpu_augment`: batched on-device re-statement of solo-learn's per-view
  augmentations (:class:`GPUAugment`, :class:`ViewAugmentConfig`).
* :mod:`~solo_offdiag.data.sources`: a training set as one uint8 tensor (:class:`InMemoryImages`).
* :mod:`~solo_offdiag.data.gpu_datamodule`: :class:`GPUPretrainDataModule`, a LightningDataModule
  yielding solo-learn's ``[indexes, [X1, X2], targets]`` from it (imported lazily: Lightning is
  only loaded when it is used).
"""

from __future__ import annotations

from typing import Any

from solo_offdiag.data.gpu_augment import (
    DATASET_STATS,
    GPUAugment,
    ViewAugmentConfig,
    views_from_solo_cfg,
)
from solo_offdiag.data.sources import (
    InMemoryImages,
    from_arrays,
    load_dataset,
    load_image_folder,
    load_torchvision,
)

__all__ = [
    "DATASET_STATS",
    "GPUAugment",
    "GPUPretrainDataModule",
    "InMemoryImages",
    "ViewAugmentConfig",
    "build_gpu_datamodule",
    "from_arrays",
    "load_dataset",
    "load_image_folder",
    "load_torchvision",
    "views_from_solo_cfg",
]

_LAZY = {"GPUPretrainDataModule": "gpu_datamodule", "build_gpu_datamodule": "solo_cfg"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"solo_offdiag.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'solo_offdiag.data' has no attribute {name!r}")
