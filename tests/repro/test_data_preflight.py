"""The full preset's data sets are checked once, before any run: a missing, undownloadable data
set stops the command with one clear message instead of failing every run of the grid."""

from __future__ import annotations

import urllib.error

import pytest
import torchvision.datasets

from solo_offdiag.cli.main import main
from solo_offdiag.repro import pipeline


class _Offline:
    calls: list[dict] = []

    def __init__(self, root, **kwargs):
        _Offline.calls.append({"root": root, **kwargs})
        raise urllib.error.URLError("Name or service not known")


class _Present:
    def __init__(self, root, **kwargs):
        pass


def test_missing_dataset_names_folder_cause_and_instructions(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", _Offline)
    with pytest.raises(pipeline.DataUnavailable) as info:
        pipeline.ensure_torchvision_dataset("cifar10", tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "URLError" in message and "artifact/README.md" in message
    assert _Offline.calls[-1]["download"] is True


def test_present_dataset_passes(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets, "STL10", _Present)
    assert pipeline.ensure_torchvision_dataset("stl10", tmp_path) == tmp_path


def test_full_preset_stops_before_any_run(tmp_path, monkeypatch, capsys):
    for name in ("CIFAR10", "CIFAR100", "STL10"):
        monkeypatch.setattr(torchvision.datasets, name, _Offline)
    monkeypatch.setattr("solo_offdiag.repro.experiments.image_unavailable", lambda: None)
    executed = []
    monkeypatch.setattr(pipeline, "execute", lambda *a, **k: executed.append(a))
    rc = main(["repro", "run", "image_heads", "--preset", "full", "--results", str(tmp_path / "r"),
               "--data-dir", str(tmp_path / "nodata"), "--no-progress"])
    assert rc == 2 and executed == []
    assert "not found in" in capsys.readouterr().out
