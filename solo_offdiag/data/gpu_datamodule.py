"""A LightningDataModule whose training set lives on the accelerator as uint8.

The DataLoader yields only index batches (a plain ``DataLoader`` over :class:`IndexDataset`).
Lightning therefore treats it like any map-style loader: under DDP it swaps in a
``DistributedSampler`` (one disjoint shard per rank, reshuffled every epoch through
``set_epoch``), and it moves the small int64 index tensor to the device. The
``on_after_batch_transfer`` hook then gathers the images on the device, augments every view there
(:class:`~solo_offdiag.data.gpu_augment.GPUAugment`) and returns solo-learn's batch format
``[indexes, [X_1, ..., X_n], targets]``, so any solo-learn method trains from it unchanged.

Each rank keeps the whole uint8 set on its device (CIFAR-10: 150 MiB; STL-10 train+unlabeled:
2.8 GiB) and gathers only its shard's indexes. ``drop_last=True`` keeps every batch the same
shape, which ``torch.compile`` and CUDA graphs need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from solo_offdiag.data.gpu_augment import GPUAugment, ViewAugmentConfig
from solo_offdiag.data.sources import InMemoryImages

__all__ = ["GPUPretrainDataModule", "IndexDataset", "collate_indexes", "rank_seed"]


class IndexDataset(Dataset):
    """``range(n)`` as a map-style dataset (so samplers, DDP sharding and ``len`` all work)."""

    def __init__(self, n: int) -> None:
        self.n = int(n)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        if not 0 <= index < self.n:
            raise IndexError(index)
        return int(index)

    def __getitems__(self, indexes: list[int]) -> list[int]:  # batched fetch: one call per batch
        return [int(i) for i in indexes]


def collate_indexes(indexes: list[int]) -> Tensor:
    return torch.as_tensor(indexes, dtype=torch.int64)


def rank_seed(seed: int, rank: int) -> int:
    """A well-mixed 63-bit seed for ``(seed, rank)``: ranks draw independent augmentations."""
    return int(np.random.SeedSequence([int(seed), int(rank)]).generate_state(2, dtype=np.uint64)[0] >> 1)


def _is_index_batch(batch: Any) -> bool:
    return isinstance(batch, Tensor) and batch.ndim == 1 and batch.dtype in (torch.int64, torch.int32)


class GPUPretrainDataModule(pl.LightningDataModule):
    """Device-resident pretraining data in solo-learn's batch format.

    Args:
        data: the training set (:class:`~solo_offdiag.data.sources.InMemoryImages`).
        views: one :class:`ViewAugmentConfig` per view (e.g. from
            :func:`~solo_offdiag.data.gpu_augment.views_from_solo_cfg`).
        batch_size: per-rank batch size (solo-learn's ``optimizer.batch_size``).
        seed: ``None`` -> global RNGs; an int -> the index order (single process) and the
            augmentation draws are reproducible, with a different augmentation stream per rank.
        drop_last: keep batch shapes static (default, as solo-learn).
        channels_last: hand the views over in channels-last memory format.
        val_dataloader: optional validation loader (or a zero-argument factory) passed through
            unchanged; its batches are not touched by the GPU augmentation.

    Examples:
        >>> from solo_offdiag.data.sources import from_arrays
        >>> data = from_arrays(torch.zeros(8, 32, 32, 3, dtype=torch.uint8), list(range(8)))
        >>> dm = GPUPretrainDataModule(data, [ViewAugmentConfig()] * 2, batch_size=4, seed=0)
        >>> indexes, (x1, x2), targets = dm.make_batch(next(iter(dm.train_dataloader())))
        >>> tuple(x1.shape), targets.dtype
        ((4, 3, 32, 32), torch.int64)
    """

    def __init__(
        self,
        data: InMemoryImages,
        views: Sequence[ViewAugmentConfig],
        batch_size: int,
        *,
        seed: int | None = None,
        drop_last: bool = True,
        channels_last: bool = False,
        val_dataloader: DataLoader | Callable[[], Any] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size: got {batch_size!r}; allowed: an integer > 0")
        if drop_last and batch_size > len(data):
            raise ValueError(
                f"batch_size: got {batch_size} with drop_last=True but the dataset has only "
                f"{len(data)} images (no batch would be produced)"
            )
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.augment = GPUAugment(list(views), seed=seed, channels_last=channels_last)
        self._val = val_dataloader
        if val_dataloader is not None:
            # Only then does Lightning see a val_dataloader (it checks for an override), so a
            # module without validation data runs no validation loop and prints no warning.
            self.val_dataloader = self._validation_loader  # type: ignore[method-assign]
        self._device_data: tuple[torch.device, Tensor, Tensor] | None = None

    # ------------------------------------------------------------------ Lightning hooks

    def setup(self, stage: str) -> None:
        trainer = getattr(self, "trainer", None)
        rank = trainer.global_rank if trainer is not None else 0
        if self.seed is not None:
            self.augment.set_seed(rank_seed(self.seed, rank))

    def train_dataloader(self) -> DataLoader:
        generator = None if self.seed is None else torch.Generator().manual_seed(self.seed)
        return DataLoader(
            IndexDataset(len(self.data)),
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=self.drop_last,
            collate_fn=collate_indexes,
            num_workers=0,
            pin_memory=torch.cuda.is_available(),
            generator=generator,
        )

    def _validation_loader(self) -> Any:
        return self._val() if callable(self._val) and not isinstance(self._val, DataLoader) else self._val

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if not _is_index_batch(batch):
            return batch
        indexes, views, targets = self.make_batch(batch)
        # Lightning casts a batch's floating tensors to the precision's input dtype *before* this
        # hook (bf16-true / 16-true: the module's dtype); views made here must be cast the same
        # way, else the first convolution sees float32 input and bf16/fp16 weights. Mixed and
        # 32-bit precisions leave them float32 (convert_input is the identity there).
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            views = trainer.precision_plugin.convert_input(views)
        return [indexes, views, targets]

    def teardown(self, stage: str) -> None:
        self._device_data = None

    # ------------------------------------------------------------------ the batch

    def device_data(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """The uint8 images and targets on ``device`` (copied there once, then cached)."""
        if self._device_data is None or self._device_data[0] != device:
            self._device_data = (
                device,
                self.data.images.to(device, non_blocking=True),
                self.data.targets.to(device, non_blocking=True),
            )
        return self._device_data[1], self._device_data[2]

    def make_batch(self, indexes: Tensor) -> list[Any]:
        """``[indexes, [X_1..X_n], targets]`` for an index batch already on its device."""
        images, targets = self.device_data(indexes.device)
        raw = images.index_select(0, indexes)
        return [indexes, self.augment(raw), targets.index_select(0, indexes)]
