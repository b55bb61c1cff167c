"""GPUPretrainDataModule: sharding, batch format, a tiny end-to-end Lightning fit, sources."""

from __future__ import annotations

import copy

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.data import _update_dataloader
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from solo_offdiag.config.validate import ConfigError
from solo_offdiag.data import build_gpu_datamodule, from_arrays, load_dataset, load_image_folder
from solo_offdiag.data.gpu_augment import ViewAugmentConfig
from solo_offdiag.data.gpu_datamodule import GPUPretrainDataModule, IndexDataset, rank_seed
from solo_offdiag.heads import build_head

VIEWS = [ViewAugmentConfig(), ViewAugmentConfig.from_solo_cfg({"solarization": {"prob": 0.2}}, "cifar10")]


def make_data(n: int = 40, size: int = 32):
    rng = np.random.default_rng(0)
    return from_arrays(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), np.arange(n) % 10)


def test_two_rank_shards_are_disjoint_cover_and_reshuffle_per_epoch():
    dm = GPUPretrainDataModule(make_data(40), VIEWS, batch_size=4, seed=0)
    loader = dm.train_dataloader()
    per_epoch = []
    for epoch in range(2):
        shards = []
        for rank in range(2):
            sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
            sampler.set_epoch(epoch)
            ranked = _update_dataloader(loader, sampler)  # what Lightning does under DDP
            shards.append(torch.cat(list(ranked)).tolist())
        assert not set(shards[0]) & set(shards[1])
        assert sorted(shards[0] + shards[1]) == list(range(40))
        per_epoch.append(shards[0])
    assert per_epoch[0] != per_epoch[1]


def test_single_process_epochs_reshuffle_and_are_seeded():
    def epochs(seed):
        loader = GPUPretrainDataModule(make_data(40), VIEWS, batch_size=8, seed=seed).train_dataloader()
        return [torch.cat(list(loader)).tolist() for _ in range(2)]

    first, again = epochs(3), epochs(3)
    assert first == again and first[0] != first[1]
    assert sorted(first[0]) == list(range(40))


def test_batch_format_dtypes_and_passthrough():
    data = make_data(16)
    dm = GPUPretrainDataModule(data, VIEWS, batch_size=8, seed=0)
    idx = next(iter(dm.train_dataloader()))
    assert idx.dtype == torch.int64 and idx.shape == (8,)
    indexes, views, targets = dm.on_after_batch_transfer(idx, 0)
    assert torch.equal(indexes, idx) and torch.equal(targets, data.targets[idx])
    assert [(v.shape, v.dtype) for v in views] == [((8, 3, 32, 32), torch.float32)] * 2
    val_batch = (torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.int64))
    assert dm.on_after_batch_transfer(val_batch, 0) is val_batch


def test_augmentation_is_deterministic_per_seed_and_differs_per_rank():
    data = make_data(16)
    idx = torch.arange(8)

    def views(rank):
        dm = GPUPretrainDataModule(data, VIEWS, batch_size=8, seed=5)
        dm.augment.set_seed(rank_seed(5, rank))
        return dm.make_batch(idx)[1][0]

    assert torch.equal(views(0), views(0)) and not torch.equal(views(0), views(1))


def test_validation_loader_is_passed_through_only_when_given():
    from lightning.pytorch.utilities.model_helpers import is_overridden

    plain = GPUPretrainDataModule(make_data(8), VIEWS, batch_size=4)
    assert not is_overridden("val_dataloader", plain)
    val = DataLoader([(torch.zeros(3, 32, 32), 0)] * 4, batch_size=2)
    with_val = GPUPretrainDataModule(make_data(8), VIEWS, batch_size=4, val_dataloader=val)
    assert is_overridden("val_dataloader", with_val) and with_val.val_dataloader() is val
    factory = GPUPretrainDataModule(make_data(8), VIEWS, batch_size=4, val_dataloader=lambda: val)
    assert factory.val_dataloader() is val


def test_constructor_errors():
    with pytest.raises(ValueError, match="batch_size: got 0"):
        GPUPretrainDataModule(make_data(8), VIEWS, batch_size=0)
    with pytest.raises(ValueError, match="only 8 images"):
        GPUPretrainDataModule(make_data(8), VIEWS, batch_size=16)


class TinyBYOL(pl.LightningModule):
    """A small BYOL with the off-diagonal head that consumes solo-learn's batch format."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.projector = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, dim))
        self.predictor = build_head("offdiag", dim)
        self.momentum_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        self.momentum_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.losses: list[float] = []

    def training_step(self, batch, batch_idx):
        indexes, views, targets = batch
        assert indexes.dtype == torch.int64 and targets.shape == indexes.shape and len(views) == 2
        p = [self.predictor(self.projector(self.backbone(x))) for x in views]
        with torch.no_grad():
            z = [self.momentum_projector(self.momentum_backbone(x)) for x in views]
        loss = sum(2 - 2 * F.cosine_similarity(p[i], z[1 - i]).mean() for i in range(2))
        self.losses.append(float(loss.detach()))
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        online = list(self.backbone.parameters()) + list(self.projector.parameters())
        target = list(self.momentum_backbone.parameters()) + list(self.momentum_projector.parameters())
        with torch.no_grad():
            torch._foreach_lerp_(target, online, 0.01)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def test_tiny_byol_offdiag_trains_end_to_end_with_lightning(tmp_path):
    pl.seed_everything(0, workers=True)
    dm = GPUPretrainDataModule(make_data(32), VIEWS, batch_size=8, seed=0)
    model = TinyBYOL()
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=2, limit_train_batches=2, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    assert len(model.losses) == 4 and all(np.isfinite(model.losses))
    assert model.predictor.offdiag.abs().sum() > 0  # the head trained
    assert torch.equal(torch.diagonal(model.predictor.matrix()), torch.ones(16))


# --------------------------------------------------------------------------- sources and solo cfg


def test_from_arrays_layouts_and_errors():
    nhwc = np.zeros((2, 5, 6, 3), dtype=np.uint8)
    assert tuple(from_arrays(nhwc).images.shape) == (2, 3, 5, 6)
    assert tuple(from_arrays(torch.zeros(2, 3, 5, 6, dtype=torch.uint8)).images.shape) == (2, 3, 5, 6)
    assert from_arrays(nhwc).targets.tolist() == [-1, -1]
    with pytest.raises(ValueError, match="expected uint8"):
        from_arrays(nhwc.astype(np.float32))
    with pytest.raises(ValueError, match="targets: expected shape"):
        from_arrays(nhwc, [1, 2, 3])


def test_image_folder_is_decoded_once_into_uint8(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    data = load_image_folder(tmp_path, image_size=16)
    assert tuple(data.images.shape) == (6, 3, 16, 16) and data.targets.tolist() == [0, 0, 0, 1, 1, 1]
    assert tuple(load_dataset("custom", tmp_path).images.shape) == (6, 3, 20, 30)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "a" / "odd.png")
    with pytest.raises(ValueError, match="pass image_size"):
        load_image_folder(tmp_path)


def _solo_cfg(**performance):
    view = {"crop_size": 32, "num_crops": 1}
    return {
        "data": {"dataset": "cifar10", "train_path": None, "num_large_crops": 2, "num_small_crops": 0},
        "optimizer": {"batch_size": 8},
        "augmentations": [view, {**view, "solarization": {"prob": 0.2}}],
        "performance": {"data_loader": "gpu", **performance},
    }


def test_build_from_solo_cfg():
    dm = build_gpu_datamodule(_solo_cfg(augment_seed=1, channels_last=True), data=make_data(16))
    assert dm.batch_size == 8 and dm.seed == 1 and [v.solarization.prob for v in dm.augment.views] == [0, 0.2]
    _, views, _ = dm.make_batch(torch.arange(8))
    assert views[0].is_contiguous(memory_format=torch.channels_last)


def test_build_from_solo_cfg_errors():
    bad = _solo_cfg()
    bad["data"]["num_large_crops"] = 3
    with pytest.raises(ConfigError, match="num_large_crops"):
        build_gpu_datamodule(bad, data=make_data(16))
    with pytest.raises(ConfigError, match="performance.augment_sed"):
        build_gpu_datamodule(_solo_cfg(augment_sed=1), data=make_data(16))
    with pytest.raises(ValueError, match="data.train_path: got None"):
        build_gpu_datamodule(_solo_cfg())


def test_index_dataset_bounds():
    ds = IndexDataset(3)
    assert [ds[i] for i in range(3)] == [0, 1, 2] and ds.__getitems__([2, 0]) == [2, 0]
    with pytest.raises(IndexError):
        ds[3]
    assert isinstance(DataLoader(ds, batch_size=2).dataset, IndexDataset)


@pytest.mark.parametrize("precision", ["bf16-true", "bf16-mixed"])
def test_bf16_training_step_through_the_datamodule(tmp_path, precision):
    """Issue #11: with bf16-true the views must reach the model in its dtype (they are made after
    Lightning's own input cast); mixed precision keeps them float32 under autocast."""
    seen = []

    class Recording(TinyBYOL):
        def training_step(self, batch, batch_idx):
            seen.append(batch[1][0].dtype)
            return super().training_step(batch, batch_idx)

    dm = GPUPretrainDataModule(make_data(16), VIEWS, batch_size=8, seed=0)
    model = Recording()
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=2, logger=False, precision=precision,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    expected = torch.bfloat16 if precision == "bf16-true" else torch.float32
    assert seen == [expected, expected] and all(np.isfinite(model.losses))
