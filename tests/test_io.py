"""Atomic writes: a failure mid-write leaves the previous file intact and no temporary behind."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from solo_offdiag.io import atomic_open, atomic_write_json, atomic_write_npz, atomic_write_text


def test_text_and_json_round_trip(tmp_path) -> None:
    atomic_write_text(tmp_path / "a" / "b.txt", "hello")
    assert (tmp_path / "a" / "b.txt").read_text() == "hello"
    atomic_write_json(tmp_path / "r.json", {"b": np.float32(1.5), "a": np.arange(2), "n": math.nan})
    data = json.loads((tmp_path / "r.json").read_text().replace("NaN", "null"))
    assert data == {"a": [0, 1], "b": 1.5, "n": None}


def test_npz_round_trip(tmp_path) -> None:
    atomic_write_npz(tmp_path / "x.npz", {"w": np.eye(3)})
    with np.load(tmp_path / "x.npz") as npz:
        np.testing.assert_array_equal(npz["w"], np.eye(3))


def test_failure_keeps_old_content_and_cleans_up(tmp_path) -> None:
    target = tmp_path / "result.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("partial")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_bad_mode(tmp_path) -> None:
    with pytest.raises(ValueError, match="mode"), atomic_open(tmp_path / "x", "a"):
        pass
