"""Checks of solo-learn's own keys that would otherwise fail late (mid-setup or mid-training).

solo-learn asserts some keys in ``parse_cfg`` (bare ``AssertionError``s) and leaves others to
Lightning or to the first batch. ``solo-offdiag pretrain`` (and ``--print-config``) runs these
checks first, so each bad value gets one message: the key, the value and what is allowed. No
solo-learn import here.

``devices`` is also normalised: solo scales ``optimizer.lr`` by ``batch_size * len(devices) *
num_nodes / 256`` (``solo/args/pretrain.py``), which is right only for a list of device indices
(its recipes say ``devices: [0, 1]``). An int ``2`` would crash ``len()``, a string ``"2"`` would
count as one device; :func:`normalise_devices` turns either into the list ``[0, 1]``, so the lr is
scaled by the real number of processes per node.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from solo_offdiag.config import ConfigError

__all__ = ["check_data_paths", "check_solo_keys", "normalise_devices", "trainer_devices"]

_ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
_PRECISIONS = ("16", "32", "64", "bf16", "16-mixed", "bf16-mixed", "32-true", "64-true", "16-true", "bf16-true",
               "transformer-engine")
_DATASETS = ("cifar10", "cifar100", "stl10", "imagenet", "imagenet100", "custom")
_FOLDER_DATASETS = ("imagenet", "imagenet100", "custom")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _get(cfg: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _walk_floats(node: Any, prefix: str = "") -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            out += _walk_floats(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            out += _walk_floats(value, f"{prefix}[{i}]")
    elif isinstance(node, float):
        out.append((prefix, node))
    return out


def normalise_devices(value: Any, accelerator: Any = "auto") -> list[int]:
    """solo's ``devices`` as a list of indices, one per process on this node.

    Accepted: a positive int ``n`` or its string ``"n"`` (the first ``n`` devices), a list of
    distinct non-negative ints, a comma-separated string ``"0,1"``, and ``-1``/``"auto"`` (all
    visible GPUs; one process on the CPU).

    Raises:
        ConfigError: anything else, naming the value and what is allowed.
    """
    allowed = ("a positive integer (e.g. 2), a list of device indices (e.g. [0, 1]), a string "
               "'2' or '0,1', or -1/'auto' (all GPUs)")
    original = value
    if isinstance(value, str):
        text = value.strip()
        if text in ("auto", "-1"):
            value = -1
        elif "," in text or text.startswith("["):
            try:
                value = [int(part) for part in text.strip("[]").split(",") if part.strip()]
            except ValueError:
                raise ConfigError(f"devices: got {original!r}; allowed: {allowed}") from None
        else:
            try:
                value = int(text)
            except ValueError:
                raise ConfigError(f"devices: got {original!r}; allowed: {allowed}") from None
    if _is_int(value):
        if value == -1:
            accel = str(accelerator or "auto")
            count = 1
            if accel in ("gpu", "cuda", "auto"):
                import torch

                count = max(torch.cuda.device_count(), 1)
            return list(range(count))
        if value < 1:
            raise ConfigError(f"devices: got {original!r}; allowed: {allowed}")
        return list(range(value))
    if isinstance(value, (list, tuple)):
        if not value or not all(_is_int(v) and v >= 0 for v in value) or len(set(value)) != len(value):
            raise ConfigError(f"devices: got {original!r}; allowed: {allowed}")
        return [int(v) for v in value]
    raise ConfigError(f"devices: got {original!r}; allowed: {allowed}")


def trainer_devices(devices: list[int], accelerator: Any) -> Any:
    """What Lightning's ``Trainer(devices=...)`` takes: a count on the CPU, the indices otherwise."""
    return len(devices) if str(accelerator) == "cpu" else list(devices)


def check_solo_keys(cfg: Mapping[str, Any]) -> None:
    """Check solo-learn's keys that fail late; raise :class:`ConfigError` on the first bad one.

    ``cfg`` is the plain (resolved) composed config.
    """
    for key, value in _walk_floats(cfg):
        if not math.isfinite(value):
            raise ConfigError(f"{key}: got {value!r}; allowed: a finite number")

    def number(key: str, *, integer: bool, low: float, allowed: str, extra: tuple[Any, ...] = (),
               required: bool = False) -> None:
        present, value = _get(cfg, key)
        if not present or value is None:
            if required:
                raise ConfigError(f"{key}: missing; allowed: {allowed}")
            return
        if value in extra and not isinstance(value, bool):
            return
        ok = _is_int(value) if integer else _is_number(value)
        if not ok or value < low:
            raise ConfigError(f"{key}: got {value!r}; allowed: {allowed}")

    number("optimizer.batch_size", integer=True, low=1, allowed="an integer >= 1 (per device)", required=True)
    number("optimizer.lr", integer=False, low=0, allowed="a finite number >= 0", required=True)
    number("optimizer.weight_decay", integer=False, low=0, allowed="a finite number >= 0")
    number("optimizer.classifier_lr", integer=False, low=0, allowed="a finite number >= 0")
    number("max_epochs", integer=True, low=1, allowed="an integer >= 1 (or -1 with max_steps > 0)", extra=(-1,))
    number("max_steps", integer=True, low=1, allowed="an integer >= 1, or -1 (no limit)", extra=(-1,))
    number("num_nodes", integer=True, low=1, allowed="an integer >= 1")
    number("accumulate_grad_batches", integer=True, low=1, allowed="an integer >= 1")
    number("data.num_workers", integer=True, low=0, allowed="an integer >= 0")
    number("checkpoint.frequency", integer=True, low=1, allowed="an integer >= 1 (epochs)")
    number("scheduler.warmup_epochs", integer=False, low=0, allowed="a number >= 0")
    number("seed", integer=True, low=0, allowed="an integer >= 0")
    number("auto_resume.max_hours", integer=False, low=0, allowed="a number >= 0")
    for key in ("momentum.base_tau", "momentum.final_tau"):
        present, value = _get(cfg, key)
        if present and value is not None and not (_is_number(value) and 0 <= value <= 1):
            raise ConfigError(f"{key}: got {value!r}; allowed: a number in [0, 1]")
    present, fraction = _get(cfg, "data.fraction")
    if present and fraction is not None and fraction != -1 and not (_is_number(fraction) and 0 < fraction <= 1):
        raise ConfigError(f"data.fraction: got {fraction!r}; allowed: -1 (all) or a number in (0, 1]")
    max_epochs, max_steps = cfg.get("max_epochs"), cfg.get("max_steps")
    if max_epochs == -1 and not (_is_int(max_steps) and max_steps > 0):
        raise ConfigError("max_epochs: got -1 (no epoch limit) without max_steps > 0; the run would never end")

    accelerator = cfg.get("accelerator", "auto")
    if str(accelerator) not in _ACCELERATORS:
        raise ConfigError(f"accelerator: got {accelerator!r}; allowed: {', '.join(_ACCELERATORS)}")
    if "devices" in cfg:
        normalise_devices(cfg["devices"], accelerator)
    precision = cfg.get("precision")
    if precision is not None and str(precision) not in _PRECISIONS:
        raise ConfigError(f"precision: got {precision!r}; allowed: {', '.join(_PRECISIONS)}")
    name = cfg.get("name")
    if "name" in cfg and (not isinstance(name, str) or not name or "/" in name):
        raise ConfigError(f"name: got {name!r}; allowed: a non-empty string without '/'")

    data = cfg.get("data") or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"data: got {data!r}; expected a mapping")
    dataset = data.get("dataset")
    if dataset is not None and dataset not in _DATASETS:
        raise ConfigError(f"data.dataset: got {dataset!r}; allowed: {', '.join(_DATASETS)}")
    data_format = data.get("format")
    if data_format is not None and data_format not in ("image_folder", "h5", "dali"):
        raise ConfigError(f"data.format: got {data_format!r}; allowed: image_folder, h5 (dali: solo's main_pretrain.py)")
    augmentations = cfg.get("augmentations")
    if "augmentations" in cfg and (not isinstance(augmentations, list) or not augmentations):
        raise ConfigError(f"augmentations: got {augmentations!r}; allowed: a non-empty list of pipelines")
    if isinstance(augmentations, list):
        for i, pipeline in enumerate(augmentations):
            if not isinstance(pipeline, Mapping):
                raise ConfigError(f"augmentations[{i}]: got {pipeline!r}; expected a mapping")
            for key in ("crop_size", "num_crops"):
                value = pipeline.get(key)
                if value is not None and not (_is_int(value) and value >= 1):
                    raise ConfigError(f"augmentations[{i}].{key}: got {value!r}; allowed: an integer >= 1")


def check_data_paths(cfg: Mapping[str, Any]) -> None:
    """Image-folder datasets (``custom``, ``imagenet``, ``imagenet100``): ``data.train_path`` (and
    ``data.val_path`` if set) must be existing folders. A run checks this before building anything;
    ``--print-config`` reports it as a warning (the data may live elsewhere when printing).
    """
    data = cfg.get("data") or {}
    if not isinstance(data, Mapping):
        return
    dataset, data_format = data.get("dataset"), data.get("format")
    if dataset in _FOLDER_DATASETS and data_format in (None, "image_folder"):
        from pathlib import Path

        for key in ("train_path", "val_path"):
            path = data.get(key)
            if path is None and key == "val_path":
                continue
            if path is None or not Path(str(path)).is_dir():
                raise ConfigError(
                    f"data.{key}: got {path!r}; allowed: an existing folder of class sub-folders "
                    f"(data.dataset={dataset!r} reads an image folder)"
                )
