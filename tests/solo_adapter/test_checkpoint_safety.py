"""Resume picks the newest *valid* checkpoint (epoch, then step; never directory order or mtime),
skips unreadable ones with a warning naming them, and tells a finished run from an interrupted one.
No solo-learn needed: checkpoints here are plain ``torch.save`` dicts with Lightning's keys."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from solo_offdiag.io import publish
from solo_offdiag.solo_adapter.checkpoints import (
    MARKER_KEY,
    UnreadableCheckpoint,
    find_resumable_run,
    is_finished,
    newest_valid_checkpoint,
    read_checkpoint_info,
    remove_stale_temporaries,
    write_run_args,
)

MATCH = ("name", "method", "data.dataset", "max_epochs")


def _ckpt(path: Path, epoch: int, step: int, end_of_epoch: bool | None = None, mtime: float | None = None) -> Path:
    state = {"epoch": epoch, "global_step": step, "state_dict": {"w": torch.zeros(64)}}
    if end_of_epoch is not None:
        state[MARKER_KEY] = {"end_of_epoch": end_of_epoch}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_newest_by_epoch_and_step_not_by_name_or_mtime(tmp_path):
    # names sort the wrong way and the oldest file is the newest on disk
    _ckpt(tmp_path / "a-ep=9.ckpt", 1, 20, mtime=2_000_000_000)
    best = _ckpt(tmp_path / "z-ep=0.ckpt", 2, 30, mtime=1_000_000_000)
    _ckpt(tmp_path / "m.ckpt", 2, 25, mtime=1_500_000_000)
    assert newest_valid_checkpoint(tmp_path).path == best


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "no_epoch"])
def test_unreadable_checkpoint_is_skipped_with_a_warning_naming_it(tmp_path, damage):
    good = _ckpt(tmp_path / "run-ep=0.ckpt", 0, 10)
    bad = tmp_path / "run-ep=1.ckpt"
    if damage == "truncated":
        _ckpt(bad, 1, 20)
        data = bad.read_bytes()
        bad.write_bytes(data[: len(data) // 3])
    elif damage == "garbage":
        bad.write_bytes(os.urandom(4096))
    elif damage == "empty":
        bad.write_bytes(b"")
    else:
        torch.save({"state_dict": {}}, bad)
    warnings: list[str] = []
    info = newest_valid_checkpoint(tmp_path, warn=warnings.append)
    assert info is not None and info.path == good
    assert len(warnings) == 1 and str(bad) in warnings[0] and "skipping" in warnings[0]
    with pytest.raises(UnreadableCheckpoint, match="run-ep=1.ckpt"):
        read_checkpoint_info(bad)


def test_temporary_files_of_a_killed_save_are_ignored_and_removed(tmp_path):
    good = _ckpt(tmp_path / "run-ep=0.ckpt", 0, 10)
    tmp = tmp_path / ".run-ep=1.ckpt.4242.tmp"
    tmp.write_bytes(b"half a checkpoint")
    assert newest_valid_checkpoint(tmp_path).path == good
    assert remove_stale_temporaries(tmp_path) == [tmp] and not tmp.exists() and good.exists()


def test_is_finished_needs_the_end_of_the_last_epoch_or_max_steps(tmp_path):
    end = read_checkpoint_info(_ckpt(tmp_path / "a.ckpt", 2, 30, end_of_epoch=True))
    mid = read_checkpoint_info(_ckpt(tmp_path / "b.ckpt", 2, 25, end_of_epoch=False))
    solo = read_checkpoint_info(_ckpt(tmp_path / "c.ckpt", 2, 30))  # solo's own: end of epoch
    assert is_finished(end, 3, -1) and is_finished(solo, 3, None)
    assert not is_finished(mid, 3, -1)  # SIGTERM mid-epoch in the last epoch
    assert not is_finished(end, 4, -1)
    assert is_finished(mid, 3, 25) and not is_finished(mid, 3, 26)
    # a mid-epoch checkpoint of the same epoch sorts before the end-of-epoch one
    assert end.order > mid.order


def test_find_resumable_run_matches_and_takes_the_most_recent_valid(tmp_path):
    cfg = {"name": "x", "method": "byol_offdiag", "data": {"dataset": "custom"}, "max_epochs": 3,
           "checkpoint": {"dir": str(tmp_path)}}
    base = tmp_path / "byol_offdiag"

    def run(run_id: str, args: dict, epoch: int, mtime: float) -> Path:
        (base / run_id).mkdir(parents=True)
        (base / run_id / "args.json").write_text(json.dumps(args))
        return _ckpt(base / run_id / f"x-{run_id}-ep={epoch}.ckpt", epoch, 10 * epoch, mtime=mtime)

    args = {k: v for k, v in cfg.items() if k != "checkpoint"}
    run("old", args, 0, 1_000_000_000)
    newest = run("new", args, 1, 1_500_000_000)
    run("other", {**args, "name": "y"}, 2, 1_900_000_000)  # does not match
    (base / "broken").mkdir()
    (base / "broken" / "args.json").write_text("[")
    warnings: list[str] = []
    info, run_id = find_resumable_run(cfg, MATCH, warn=warnings.append)
    assert (info.path, run_id) == (newest, "new")
    from omegaconf import OmegaConf  # what a run passes: nested keys (data) compare as plain dicts

    info, run_id = find_resumable_run(OmegaConf.create(cfg), MATCH, warn=warnings.append)
    assert (info.path, run_id) == (newest, "new")
    assert any("broken" in w for w in warnings)
    # the newest run's only checkpoint is torn: the older valid run is taken, with a warning
    newest.write_bytes(newest.read_bytes()[:100])
    warnings.clear()
    info, run_id = find_resumable_run(cfg, MATCH, warn=warnings.append)
    assert run_id == "old" and any(str(newest) in w for w in warnings)
    assert find_resumable_run(cfg, MATCH, max_hours=1e-9, warn=warnings.append) is None  # all too old


def test_a_run_killed_before_its_first_checkpoint_is_started_over_in_place(tmp_path):
    cfg = {"name": "x", "method": "byol_offdiag", "checkpoint": {"dir": str(tmp_path)}}
    run_dir = tmp_path / "byol_offdiag" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "args.json").write_text(json.dumps({"name": "x", "method": "byol_offdiag"}))
    (run_dir / ".x-r1-ep=0.ckpt.99.tmp").write_bytes(b"killed mid-save")
    assert find_resumable_run(cfg, ("name", "method")) == (None, "r1")
    assert not list(run_dir.glob("*.tmp"))


def test_publish_is_an_atomic_rename(tmp_path):
    tmp = tmp_path / ".x.tmp"
    tmp.write_bytes(b"new")
    target = tmp_path / "x.ckpt"
    target.write_bytes(b"old")
    assert publish(tmp, target) == target and target.read_bytes() == b"new" and not tmp.exists()


def test_run_args_written_at_creation_make_a_run_killed_before_training_resumable(tmp_path):
    """pretrain writes args.json when it creates the run directory (kill battery: a SIGKILL before
    the checkpointer's own args.json left an orphan directory next to the re-run's)."""
    cfg = {"name": "x", "method": "byol_offdiag", "max_epochs": 3, "checkpoint": {"dir": str(tmp_path)}}
    run_dir = tmp_path / "byol_offdiag" / "r7"
    run_dir.mkdir(parents=True)
    write_run_args(run_dir, cfg)
    assert json.loads((run_dir / "args.json").read_text())["wandb_run_id"] is None
    assert find_resumable_run(cfg, ("name", "method", "max_epochs")) == (None, "r7")
    assert find_resumable_run({**cfg, "max_epochs": 4}, ("name", "method", "max_epochs")) is None
