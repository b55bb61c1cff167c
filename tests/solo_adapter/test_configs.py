"""Our packaged Hydra configs compose, validate, and follow the recipes (no solo-learn needed)."""

from __future__ import annotations

import pytest

from solo_offdiag.config import ConfigError
from solo_offdiag.solo_adapter.configs import configs_dir
from solo_offdiag.solo_adapter.pretraining import compose_config, validate_cfg

PRIMARY = [
    "byol_offdiag",
    "byol_offdiag_cifar100",
    "byol_offdiag_stl10",
    "byol_offdiag_imagenet100",
    "simsiam_offdiag",
    "byol_offdiag_paper",
]


def test_every_primary_config_is_listed():
    found = sorted(p.stem for p in configs_dir().glob("*.yaml"))
    assert found == sorted(PRIMARY)


@pytest.mark.parametrize("name", PRIMARY)
@pytest.mark.parametrize("hardware", ["gpu", "cpu"])
def test_configs_compose_and_validate(name, hardware):
    cfg = compose_config([f"hardware={hardware}"], config_name=name)
    validate_cfg(cfg)
    assert cfg.method in ("byol_offdiag", "simsiam_offdiag")
    assert len(cfg.augmentations) >= 1 and sum(a.num_crops for a in cfg.augmentations) == 2
    assert cfg.wandb.enabled is False  # logging=csv by default
    if hardware == "cpu":
        assert cfg.accelerator == "cpu" and len(cfg.devices) == 1 and cfg.precision == 32


@pytest.mark.parametrize(
    "name,dataset,crop",
    [("byol_offdiag", "cifar10", 32), ("byol_offdiag_cifar100", "cifar100", 32), ("byol_offdiag_stl10", "stl10", 96), ("byol_offdiag_imagenet100", "imagenet100", 224)],
)
def test_dataset_recipes(name, dataset, crop):
    cfg = compose_config([], config_name=name)
    assert cfg.data.dataset == dataset
    assert {a.crop_size for a in cfg.augmentations} == {crop}
    assert cfg.method_kwargs.predictor.kind == "offdiag"


def test_paper_preset():
    cfg = compose_config([], config_name="byol_offdiag_paper")
    assert cfg.method_kwargs.proj_output_dim == 64
    assert cfg.optimizer.name == "adam" and cfg.method_kwargs.predictor.lr == pytest.approx(3e-3)
    assert "kwargs" not in cfg.optimizer or not cfg.optimizer.kwargs.get("eta")  # no LARS kwargs to Adam


@pytest.mark.parametrize(
    "override,match",
    [
        ("method_kwargs.predictor.kind=offdag", "did you mean 'offdiag'"),
        ("method_kwargs.predictor.lr=-1", "method_kwargs.predictor.lr"),
        ("+method_kwargs.predictor.options.dim=8", "proj_output_dim"),
        ("+method_kwargs.predictr.lr=1", "did you mean 'method_kwargs.predictor'"),
        ("optimizer.lr=abc", "optimizer.lr: got 'abc'"),
        ("+performance.data_loadr=gpu", "data_loader"),
    ],
)
def test_bad_overrides_fail_validation(override, match):
    with pytest.raises(ConfigError, match=match):
        validate_cfg(compose_config([override]))


def test_print_config_cli(capsys):
    from solo_offdiag.cli.main import main

    assert main(["pretrain", "--print-config", "hardware=cpu", "method_kwargs.predictor.kind=linear"]) == 0
    out = capsys.readouterr().out
    assert "kind: linear" in out and "accelerator: cpu" in out
    assert main(["pretrain", "--print-config", "method_kwargs.predictor.kind=nope"]) == 2
    assert "known: " in capsys.readouterr().err
