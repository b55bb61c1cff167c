"""The embedded default data set: scikit-learn's digits exported once to an ImageFolder."""

from __future__ import annotations

import numpy as np
import pytest

from solo_offdiag.repro.digits import digits_manifest, export_digits, split_indices


def test_counts_classes_and_image_format(digits16):
    m = digits_manifest(digits16)
    assert m["n_train"] + m["n_val"] == 1797 and m["n_val"] == 359
    for split in ("train", "val"):
        classes = sorted(p.name for p in (digits16 / split).iterdir())
        assert classes == [str(i) for i in range(10)]
        assert sum(m["counts"][split].values()) == m[f"n_{split}"]
    from PIL import Image

    img = Image.open(next((digits16 / "train" / "3").iterdir()))
    assert img.size == (16, 16) and img.mode == "RGB"


def test_export_is_deterministic_and_idempotent(digits16, tmp_path):
    again = export_digits(tmp_path / "other", size=16)
    assert digits_manifest(again)["sha256_pixels"] == digits_manifest(digits16)["sha256_pixels"]
    stamp = (digits16 / "digits.json").stat().st_mtime_ns
    export_digits(digits16, size=16)  # same parameters: nothing rewritten
    assert (digits16 / "digits.json").stat().st_mtime_ns == stamp


def test_interrupted_export_is_rebuilt(tmp_path):
    root = tmp_path / "d"
    (root / "train" / "0").mkdir(parents=True)  # a half-written folder without digits.json
    export_digits(root, size=8)
    assert digits_manifest(root)["n_train"] == 1438
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".d.")]  # no temp folders left


def test_split_is_stratified_and_disjoint():
    targets = np.repeat(np.arange(10), 50)
    train, val = split_indices(targets, 0.2, seed=0)
    assert len(set(train) & set(val)) == 0 and len(train) + len(val) == 500
    assert np.bincount(targets[val]).tolist() == [10] * 10
    assert np.array_equal(split_indices(targets, 0.2, seed=0)[1], val)
    with pytest.raises(ValueError, match="val_fraction"):
        split_indices(targets, 1.5, seed=0)
