"""Shared helpers of the analysis tests: a tiny Trainer around :class:`ToySimSiam`.

Every fit runs on the CPU for a few dozen steps of a 16 -> 24 -> 8 MLP (about 50 ms a step on
the 2-core machine), with a CSVLogger in ``tmp_path`` and no progress bar.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lightning")

import lightning.pytorch as pl  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402

from solo_offdiag.analysis.toy import ToySimSiam, toy_loader  # noqa: E402

# Lightning's advice about worker counts and logging intervals is noise for these tiny fits.
_NOISE = (
    ".*does not have many workers.*",
    ".*smaller than the logging interval.*",
    ".*isinstance.treespec, LeafSpec.*",
    ".*defined a `validation_step` but have no `val_dataloader`.*",
    ".*litlogger.*",
)


@pytest.fixture(autouse=True)
def _quiet_lightning():
    with warnings.catch_warnings():
        for pattern in _NOISE:
            warnings.filterwarnings("ignore", message=pattern)
        yield


def make_trainer(tmp_path: Path, callbacks: list[Any], max_steps: int, **kwargs: Any) -> pl.Trainer:
    options: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_steps": max_steps,
        "logger": CSVLogger(str(tmp_path / "logs"), name="toy"),
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 1,
    }
    options.update(kwargs)
    return pl.Trainer(callbacks=callbacks, **options)


def _fit(
    tmp_path: Path,
    callbacks: list[Any],
    max_steps: int = 20,
    module: ToySimSiam | None = None,
    val: bool = False,
    ckpt_path: str | None = None,
    **kwargs: Any,
) -> pl.Trainer:
    """Fit ``module`` (default: a fresh ToySimSiam) with ``callbacks``; returns the trainer."""
    pl.seed_everything(0)
    module = module if module is not None else ToySimSiam()
    trainer = make_trainer(tmp_path, callbacks, max_steps, **kwargs)
    val_loader = toy_loader(n=96, batch_size=32, seed=1, shuffle=False) if val else None
    trainer.fit(module, toy_loader(), val_loader, ckpt_path=ckpt_path)
    return trainer


@pytest.fixture
def fit():
    """``fit(tmp_path, callbacks, max_steps=20, module=None, val=False, ckpt_path=None, **trainer)``
    fits a ToySimSiam (fresh by default) and returns the trainer."""
    return _fit
