"""A real CPU DDP run (gloo, 2 processes) through ``solo-offdiag pretrain``: one run directory, one
set of messages (rank 0's), analysis written once, ``optimizer.lr`` scaled for two processes as
solo-learn documents it (``lr * batch_size * len(devices) * num_nodes / 256``), ``devices`` as an
int and as a string, and resume.

Three commands on a tiny image folder (4 training steps in all):

1. ``devices=2`` (int), stopped by ``max_steps=2`` at the end of epoch 0 (auto-resume ignores
   ``max_steps``, so this is an interrupted 2-epoch run);
2. the same run with ``devices='2'`` (a string): resumes in the same directory and finishes;
3. ``devices=2`` again: "already finished; nothing to do", exit 0.

Slow (two DDP launches, each starting two solo-learn processes: about 2 minutes on 2 busy cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = [pytest.mark.solo, pytest.mark.slow]

BATCH = 4
TINY = [
    "hardware=cpu", "data.dataset=custom", "data.num_workers=0", f"optimizer.batch_size={BATCH}",
    "method_kwargs.proj_hidden_dim=32", "method_kwargs.proj_output_dim=16", "method_kwargs.pred_hidden_dim=32",
    "+method_kwargs.analysis.every_n_steps=1", "+method_kwargs.analysis.queue_size=8",
    "+limit_train_batches=2", "+limit_val_batches=1", "+num_sanity_val_steps=0", "+enable_progress_bar=false",
    "max_epochs=2", "name=ddp", "auto_resume.enabled=true", "strategy=ddp",
]


def _run(args: list[str], cwd: Path) -> tuple[int, str, str]:
    # ``-m solo_offdiag``: Lightning's DDP launcher starts rank 1 by re-running this same command
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT",
                "SOLO_OFFDIAG_RUN_ID", "SOLO_OFFDIAG_RESUME_FROM"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-m", "solo_offdiag", "pretrain", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    return proc.returncode, proc.stdout, proc.stderr


def _once(out: str) -> None:
    """Every line of ours (and every analysis warning) appears once: rank 1 prints nothing."""
    ours = [line for line in out.splitlines() if line.startswith("solo-offdiag:") or "AnalysisWarning" in line]
    repeated = {line: n for line, n in Counter(ours).items() if n > 1}
    assert not repeated, repeated


def test_gloo_ddp_two_processes_one_run_dir_scaled_lr_and_resume(image_folder, tmp_path):
    from solo_offdiag.analysis.writer import read_metrics_csv
    from solo_offdiag.solo_adapter.checkpoints import newest_valid_checkpoint
    from solo_offdiag.solo_adapter.pretraining import compose_config

    ckpt_dir = tmp_path / "trained_models"
    common = [*TINY, f"data.train_path={image_folder}", f"data.val_path={image_folder}", f"checkpoint.dir={ckpt_dir}"]

    code, out, err = _run([*common, "devices=2", "+max_steps=2"], tmp_path)
    assert code == 0, out + err
    assert "Traceback" not in out + err and "GLOBAL_RANK: 1" in out + err  # really two processes
    _once(out + err)
    run_dirs = [p for p in (ckpt_dir / "byol_offdiag").iterdir() if p.is_dir()]
    assert len(run_dirs) == 1, run_dirs
    run_dir = run_dirs[0]
    assert out.count("solo-offdiag: run directory") == 1 and str(run_dir) in out
    args = json.loads((run_dir / "args.json").read_text())
    base_lr = compose_config(common).optimizer.lr
    assert args["devices"] == [0, 1]
    assert args["optimizer"]["lr"] == pytest.approx(base_lr * BATCH * 2 * 1 / 256)  # two processes, one node
    assert newest_valid_checkpoint(run_dir).global_step == 2

    code, out, err = _run([*common, "devices='2'"], tmp_path)
    assert code == 0, out + err
    assert "Traceback" not in out + err and "GLOBAL_RANK: 1" in out + err
    _once(out + err)
    assert out.count("resuming from") == 1 and str(run_dir) in out
    assert [p for p in (ckpt_dir / "byol_offdiag").iterdir() if p.is_dir()] == [run_dir]
    assert newest_valid_checkpoint(run_dir).global_step == 4
    steps = [int(s) for s in read_metrics_csv(run_dir / "analysis" / "metrics.csv")["step"]]
    assert steps == sorted(set(steps)) and set(steps) == set(range(5)), steps  # once each, none lost
    assert sorted(p.name for p in (run_dir / "analysis").iterdir()) == [
        "alignment.npz", "head_trajectory.npz", "metrics.csv", "spectrum.npz"]

    code, out, err = _run([*common, "devices=2"], tmp_path)
    assert code == 0, out + err
    assert out.count("already finished") == 1 and "nothing to do" in out
    assert [p for p in (ckpt_dir / "byol_offdiag").iterdir() if p.is_dir()] == [run_dir]
