"""Checkpoint round trip, resume, main_linear-style backbone loading, load_from_checkpoint."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.solo


def _fit(model, make_trainer, make_loaders, **trainer_kwargs):
    train, val = make_loaders()
    trainer = make_trainer(**trainer_kwargs)
    trainer.fit(model, train, val, ckpt_path=trainer_kwargs.pop("ckpt_path", None))
    return trainer


def test_round_trip_and_resume(registered_methods, solo_cfg, make_loaders, make_trainer, tmp_path):
    cls = registered_methods["byol_offdiag"]
    cfg = solo_cfg(predictor={"lr": 0.1})
    cfg.max_epochs = 2
    model = cls(cfg)
    train, val = make_loaders()
    trainer = make_trainer(max_epochs=1, limit_train_batches=2)
    trainer.fit(model, train, val)
    path = tmp_path / "epoch1.ckpt"
    trainer.save_checkpoint(path)

    # round trip: every tensor comes back, including the head and solo's momentum twins
    loaded = cls.load_from_checkpoint(path, cfg=cfg)
    assert loaded.prediction_head.offdiag.abs().sum() > 0
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, msg=key)
    state = torch.load(path, map_location="cpu", weights_only=False)
    assert "predictor.offdiag" in state["state_dict"]

    # resume: a fresh model continues from step 2 with the head and optimizer state restored
    resumed = cls(cfg)
    trainer2 = make_trainer(max_epochs=2, limit_train_batches=2)
    trainer2.fit(resumed, train, val, ckpt_path=str(path))
    assert trainer2.global_step == 4
    groups = {g["name"]: g for g in trainer2.optimizers[0].param_groups}
    assert groups["predictor"]["initial_lr"] == pytest.approx(0.1)


def test_main_linear_style_backbone_loading(registered_methods, solo_cfg, make_loaders, make_trainer, tmp_path):
    """solo's main_linear keeps only ``backbone.*`` keys, renamed, into a fresh backbone."""
    from solo.methods.base import BaseMethod

    cfg = solo_cfg()
    model = registered_methods["byol_offdiag"](cfg)
    trainer = make_trainer(fast_dev_run=True)
    train, val = make_loaders()
    trainer.fit(model, train, val)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)

    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    backbone_state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    backbone = BaseMethod._BACKBONES["resnet18"]("byol_offdiag")
    backbone.fc = torch.nn.Identity()
    backbone.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
    backbone.maxpool = torch.nn.Identity()
    missing, unexpected = backbone.load_state_dict(backbone_state, strict=False)
    assert not missing and not unexpected
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    backbone.eval()
    torch.testing.assert_close(backbone(x), model.backbone(x))


def test_knn_style_loading_by_registry_name(registered_methods, solo_cfg, make_loaders, make_trainer, tmp_path):
    """main_knn / main_umap: ``METHODS[name].load_from_checkpoint(path, strict=False, cfg=cfg)``."""
    from solo.methods import METHODS

    cfg = solo_cfg("simsiam_offdiag")
    model = registered_methods["simsiam_offdiag"](cfg)
    trainer = make_trainer(fast_dev_run=True)
    train, val = make_loaders()
    trainer.fit(model, train, val)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    loaded = METHODS["simsiam_offdiag"].load_from_checkpoint(path, strict=False, cfg=cfg)
    torch.testing.assert_close(loaded.prediction_head.offdiag, model.prediction_head.offdiag)
