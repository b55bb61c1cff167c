"""Shared helpers of the solo-learn adapter tests.

Tests marked ``solo`` (module-level ``pytestmark = pytest.mark.solo``) need solo-learn 1.0.6;
without it they are skipped with the reason shown by ``pytest -ra``. They import solo only inside
tests and fixtures, so collection works without it. Configs are tiny (ResNet-18 with 16-32 wide
heads, batch 4, 1-2 steps): the 2-core CPU runs each training test in seconds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from solo_offdiag.solo_adapter.requirements import SOLO_COMMIT, solo_available

_AVAILABLE: tuple[bool, str] | None = None


def solo_status() -> tuple[bool, str]:
    global _AVAILABLE
    if _AVAILABLE is None:
        _AVAILABLE = solo_available()
    return _AVAILABLE


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if item.get_closest_marker("solo") is not None]
    if not marked:
        return
    ok, reason = solo_status()
    if ok:
        return
    first = reason.splitlines()[0] if reason else "import failed"
    skip = pytest.mark.skip(
        reason=(
            f"solo-learn 1.0.6 not installed ({first}): pip install 'setuptools<81' && "
            f"pip install --no-build-isolation <solo-learn checkout at {SOLO_COMMIT}>"
        )
    )
    for item in marked:
        item.add_marker(skip)


def base_cfg(
    method: str = "byol_offdiag",
    *,
    dataset: str = "cifar10",
    optimizer: str = "lars",
    batch_size: int = 4,
    predictor: dict[str, Any] | None = None,
    proj_output_dim: int = 16,
    analysis: bool = False,
    **method_kwargs: Any,
) -> Any:
    """A hand-built, already 'parsed' solo config (no parse_cfg), like solo-learn's own tests."""
    from omegaconf import OmegaConf

    kwargs: dict[str, Any] = {"proj_hidden_dim": 32, "proj_output_dim": proj_output_dim, "pred_hidden_dim": 32}
    if method.endswith("_offdiag"):
        kwargs["predictor"] = predictor or {}
        kwargs["analysis"] = {"enabled": analysis}
    kwargs.update(method_kwargs)
    cfg = {
        "name": "test",
        "method": method,
        "backbone": {"name": "resnet18"},
        "method_kwargs": kwargs,
        "data": {
            "dataset": dataset,
            "train_path": ".",
            "val_path": ".",
            "format": "image_folder",
            "num_workers": 0,
            "num_large_crops": 2,
            "num_small_crops": 0,
            "num_classes": 10,
        },
        "optimizer": {
            "name": optimizer,
            "batch_size": batch_size,
            "lr": 0.3,
            "classifier_lr": 0.1,
            "weight_decay": 1e-5,
            "kwargs": {"momentum": 0.9},
        },
        "scheduler": {"name": "warmup_cosine", "warmup_epochs": 0},
        "checkpoint": {"enabled": False},
        "auto_resume": {"enabled": False},
        "max_epochs": 1,
        "devices": 1,
        "accelerator": "cpu",
        "num_nodes": 1,
        "momentum": {"base_tau": 0.99, "final_tau": 1.0},
    }
    cfg = OmegaConf.create(cfg)
    OmegaConf.set_struct(cfg, False)
    return cfg


def random_loaders(batch_size: int = 4, size: int = 32, num_classes: int = 10, n_batches: int = 2) -> tuple[Any, Any]:
    """Train batches ``[indexes, [X1, X2], targets]`` and val batches ``(X, targets)`` of noise."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Views(Dataset):
        def __len__(self) -> int:
            return batch_size * n_batches

        def __getitem__(self, i: int) -> Any:
            g = torch.Generator().manual_seed(i)
            views = [torch.randn(3, size, size, generator=g) for _ in range(2)]
            return i, views, i % num_classes

    class Plain(Dataset):
        def __len__(self) -> int:
            return batch_size

        def __getitem__(self, i: int) -> Any:
            return torch.randn(3, size, size), i % num_classes

    return (
        DataLoader(Views(), batch_size=batch_size, drop_last=True),
        DataLoader(Plain(), batch_size=batch_size),
    )


def tiny_trainer(tmp_path: Path | None = None, **overrides: Any) -> Any:
    from lightning.pytorch import Trainer

    kwargs: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "max_epochs": 1,
        "limit_train_batches": 1,
        "limit_val_batches": 1,
        "num_sanity_val_steps": 0,
    }
    if tmp_path is not None:
        kwargs["default_root_dir"] = str(tmp_path)
    kwargs.update(overrides)
    return Trainer(**kwargs)


def write_image_folder(root: Path, classes: int = 5, per_class: int = 4, size: int = 32) -> Path:
    """A tiny ImageFolder of random PNGs (>= 5 classes: solo's top-5 metric needs them)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def solo_checkout() -> Path | None:
    """A solo-learn source checkout (for main_pretrain.py): $SOLO_LEARN_CHECKOUT or /tmp/solo-src."""
    candidate = Path(os.environ.get("SOLO_LEARN_CHECKOUT", "/tmp/solo-src"))
    return candidate if (candidate / "main_pretrain.py").is_file() else None


@pytest.fixture
def solo_cfg():
    return base_cfg


@pytest.fixture
def registered_methods() -> dict[str, type]:
    from solo_offdiag.solo_adapter import register

    return register()


@pytest.fixture
def make_loaders():
    return random_loaders


@pytest.fixture
def make_trainer(tmp_path: Path):
    def factory(**overrides: Any) -> Any:
        return tiny_trainer(tmp_path, **overrides)

    return factory


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "images")


@pytest.fixture
def checkout() -> Path:
    path = solo_checkout()
    if path is None:
        pytest.skip("no solo-learn checkout with main_pretrain.py: set SOLO_LEARN_CHECKOUT")
    return path
