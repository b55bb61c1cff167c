"""solo's keys that fail late, checked up front; ``devices`` normalised for solo's lr scaling; rank
detection before the Trainer exists. No solo-learn needed."""

from __future__ import annotations

import pytest

from solo_offdiag.config import ConfigError
from solo_offdiag.solo_adapter.cfgcheck import check_solo_keys, normalise_devices, trainer_devices


@pytest.mark.parametrize(("value", "expected"), [
    (1, [0]), (2, [0, 1]), ("2", [0, 1]), ("1", [0]), ([0, 1], [0, 1]), ([3], [3]), ("0,1", [0, 1]),
    ("[0, 2]", [0, 2]), (-1, [0]), ("auto", [0]),
])
def test_devices_become_one_index_per_process(value, expected):
    # solo scales optimizer.lr by len(devices): devices=2 and "2" must count two processes
    assert normalise_devices(value, "cpu") == expected


@pytest.mark.parametrize("value", [0, -2, "abc", [], [0, 0], [-1], True, 2.5, "0,x", None])
def test_bad_devices_are_refused_with_the_value(value):
    with pytest.raises(ConfigError, match=r"devices: got .*allowed: a positive integer"):
        normalise_devices(value, "cpu")


def test_trainer_gets_a_count_on_the_cpu_and_indices_on_gpus():
    assert trainer_devices([0, 1], "cpu") == 2
    assert trainer_devices([0, 1], "gpu") == [0, 1]


def test_lr_scaling_follows_the_world_size():
    """solo's rule: lr * batch_size * len(devices) * num_nodes / 256."""
    for devices in (2, "2", [0, 1], "0,1"):
        assert 0.5 * 64 * len(normalise_devices(devices, "cpu")) * 1 / 256 == pytest.approx(0.25)


def test_a_valid_config_passes_and_non_finite_numbers_anywhere_fail():
    cfg = {"optimizer": {"batch_size": 4, "lr": 0.1}, "max_epochs": 2, "devices": "1", "accelerator": "cpu",
           "data": {"dataset": "cifar10", "num_workers": 0}, "momentum": {"base_tau": 0.99, "final_tau": 1.0}}
    check_solo_keys(cfg)
    with pytest.raises(ConfigError, match=r"augmentations\[0\].rrc.scale\[1\]: got inf"):
        check_solo_keys({**cfg, "augmentations": [{"rrc": {"scale": [0.08, float("inf")]}}]})


def test_rank_zero_is_read_from_the_launcher_environment(monkeypatch):
    from solo_offdiag.solo_adapter.pretraining import is_rank_zero

    for var in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert is_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not is_rank_zero()
