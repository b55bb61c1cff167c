"""The embedded default data set: scikit-learn's bundled digits as an ImageFolder.

scikit-learn ships the UCI optical digits (1,797 grey 8x8 images, 10 classes, values 0..16) inside
its wheel (``sklearn.datasets.load_digits`` reads a file of the installed package; nothing is
downloaded). :func:`export_digits` writes them once as RGB PNGs, upscaled bilinearly to ``size``
pixels, into ``<root>/train/<class>/`` and ``<root>/val/<class>/`` with a deterministic
stratified split (every class split ``val_fraction`` / rest by a fixed-seed permutation).

The export is atomic and idempotent: it is built in a temporary sibling folder, renamed into
place, and finished by ``digits.json`` (counts, size, split seed, a content hash). A second call
with the same parameters returns at once; a call with other parameters, or on a folder without a
valid ``digits.json`` (an interrupted export), rebuilds it.

Examples:
    >>> root = export_digits("data/digits32")  # doctest: +SKIP
    >>> sorted(p.name for p in root.iterdir())  # doctest: +SKIP
    ['digits.json', 'train', 'val']
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from solo_offdiag.io import atomic_write_json

__all__ = ["DIGITS_MANIFEST", "digits_manifest", "export_digits", "split_indices"]

DIGITS_MANIFEST = "digits.json"
#: bump when the export format changes, so old folders are rebuilt.
FORMAT_VERSION = 1


def split_indices(targets: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: per class, a seeded permutation; the first
    ``round(val_fraction * n_class)`` indices go to validation."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction: got {val_fraction}; allowed: 0 < val_fraction < 1")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(targets):
        idx = np.flatnonzero(targets == label)
        idx = idx[rng.permutation(len(idx))]
        n_val = int(round(val_fraction * len(idx)))
        val.extend(idx[:n_val].tolist())
        train.extend(idx[n_val:].tolist())
    return np.array(sorted(train)), np.array(sorted(val))


def digits_manifest(root: str | Path) -> dict[str, Any] | None:
    """The ``digits.json`` of a finished export, or None."""
    path = Path(root) / DIGITS_MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def export_digits(
    root: str | Path, *, size: int = 32, val_fraction: float = 0.2, seed: int = 0
) -> Path:
    """Export scikit-learn's digits to ``root`` (see the module docstring); returns ``root``."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = Path(root)
    params = {"format_version": FORMAT_VERSION, "size": int(size), "val_fraction": float(val_fraction),
              "seed": int(seed)}
    existing = digits_manifest(root)
    if existing is not None and existing.get("params") == params:
        return root

    digits = load_digits()
    images = digits.images  # (1797, 8, 8), 0..16
    targets = digits.target.astype(np.int64)
    train_idx, val_idx = split_indices(targets, val_fraction, seed)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    digest = hashlib.sha256()
    counts: dict[str, dict[str, int]] = {"train": {}, "val": {}}
    try:
        for split, indices in (("train", train_idx), ("val", val_idx)):
            for i in indices:
                label = str(int(targets[i]))
                pixels = np.clip(images[i] * (255.0 / 16.0), 0, 255).astype(np.uint8)
                img = Image.fromarray(pixels, mode="L").resize((size, size), Image.BILINEAR).convert("RGB")
                folder = tmp / split / label
                folder.mkdir(parents=True, exist_ok=True)
                img.save(folder / f"{int(i):04d}.png", optimize=False)
                digest.update(np.asarray(img).tobytes())
                counts[split][label] = counts[split].get(label, 0) + 1
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_json(root / DIGITS_MANIFEST, {
        "params": params,
        "source": "sklearn.datasets.load_digits (UCI optical recognition of handwritten digits, "
                  "bundled in the scikit-learn wheel)",
        "n_train": int(len(train_idx)),
        "n_val": int(len(val_idx)),
        "classes": [str(c) for c in range(10)],
        "counts": counts,
        "sha256_pixels": digest.hexdigest(),
    })
    return root
