"""End to end: `solo-offdiag pretrain` with our packaged configs, and solo-learn's main_pretrain.py
with our Hydra plugin, on a tiny generated image folder (CPU, tiny heads, 2 steps)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.solo

TINY = [
    "hardware=cpu",
    "data.dataset=custom",
    "data.num_workers=0",
    "optimizer.batch_size=4",
    "method_kwargs.proj_hidden_dim=32",
    "method_kwargs.proj_output_dim=16",
    "method_kwargs.pred_hidden_dim=32",
    "method_kwargs.analysis.enabled=false",
    "+limit_train_batches=2",
    "+limit_val_batches=1",
    "+num_sanity_val_steps=0",
    "+enable_progress_bar=false",
    "max_epochs=1",
]


def _solo_recipe(overrides: list[str]) -> list[str]:
    """solo's byol.yaml has no method_kwargs.analysis: add the key instead of overriding it."""
    return [("+" + o if o.startswith("method_kwargs.analysis") else o) for o in overrides]


def _paths(image_folder: Path, tmp_path: Path) -> list[str]:
    return [
        f"data.train_path={image_folder}",
        f"data.val_path={image_folder}",
        f"checkpoint.dir={tmp_path / 'trained_models'}",
    ]


def test_pretrain_cli_runs_checkpoints_and_auto_resumes(image_folder, tmp_path, capsys):
    import torch

    from solo_offdiag.cli.main import main

    # an "interrupted" 2-epoch run: max_steps stops it after epoch 0 (auto-resume ignores max_steps)
    overrides = [*TINY[:-1], "max_epochs=2", *_paths(image_folder, tmp_path), "name=e2e"]
    assert main(["pretrain", *overrides, "+max_steps=2"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if "run directory" in x][-1]
    run_dir = Path(line.split("run directory ")[1])
    assert run_dir.parent == tmp_path / "trained_models" / "byol_offdiag"
    ckpts = sorted(run_dir.glob("*.ckpt"))
    assert len(ckpts) == 1 and (run_dir / "args.json").is_file() and (run_dir / "config.yaml").is_file()
    assert (run_dir / "metrics.csv").is_file()
    args = json.loads((run_dir / "args.json").read_text())
    assert args["method_kwargs"]["predictor"]["kind"] == "offdiag"
    state = torch.load(ckpts[0], map_location="cpu", weights_only=False)
    assert state["global_step"] == 2 and "predictor.offdiag" in state["state_dict"]

    # the same command again: auto-resume (matches name, method, dataset, epochs, optimizer)
    # continues in the same run directory
    from solo_offdiag.solo_adapter import pretrain

    again = pretrain(overrides)
    assert again == run_dir
    state = torch.load(sorted(run_dir.glob("*.ckpt"))[-1], map_location="cpu", weights_only=False)
    assert state["global_step"] == 4


def test_pretrain_simsiam_and_explicit_resume(image_folder, tmp_path):
    import torch

    from solo_offdiag.solo_adapter import pretrain

    base = [*TINY, *_paths(image_folder, tmp_path), "auto_resume.enabled=false"]
    run_dir = pretrain(base, config_name="simsiam_offdiag")
    ckpt = next(run_dir.glob("*.ckpt"))
    resumed = pretrain([*base[:-1], "max_epochs=2", f"+resume_from_checkpoint='{ckpt}'"], config_name="simsiam_offdiag")
    assert resumed == run_dir
    state = torch.load(sorted(run_dir.glob("*ep=1.ckpt"))[0], map_location="cpu", weights_only=True)
    assert state["global_step"] == 4  # loadable with weights_only=True (no partial in the file)


def test_pretrain_with_solo_recipe_and_our_groups(checkout, image_folder, tmp_path):
    """solo's own byol.yaml, method=byol_offdiag, and our `hardware` group via the search path."""
    from solo_offdiag.solo_adapter import pretrain

    run_dir = pretrain(
        ["method=byol_offdiag", "+hardware=cpu", "wandb.enabled=false", "auto_resume.enabled=false", *_solo_recipe(TINY[1:]), *_paths(image_folder, tmp_path)],
        config_name="byol.yaml",
        config_dir=checkout / "scripts/pretrain/cifar",
    )
    assert next(run_dir.glob("*.ckpt"))


def test_pretrain_bad_key_fails_before_training(image_folder, tmp_path, capsys):
    from solo_offdiag.cli.main import main

    code = main(["pretrain", *TINY, *_paths(image_folder, tmp_path), "+method_kwargs.predictor.lrr=0.1"])
    assert code == 2
    assert "did you mean 'method_kwargs.predictor.lr'" in capsys.readouterr().err
    assert not (tmp_path / "trained_models").exists()


@pytest.mark.parametrize(
    "config_args",
    [["--config-name", "byol_offdiag"], ["--config-path", "scripts/pretrain/cifar", "--config-name", "byol.yaml", "method=byol_offdiag", "+hardware=cpu", "wandb.enabled=false"]],
    ids=["our-config-name", "solo-recipe-method-override"],
)
def test_solo_main_pretrain_finds_our_methods_and_configs(checkout, image_folder, tmp_path, config_args):
    """Nothing of ours on the command line but names: the Hydra plugin does the rest."""
    overrides = [*TINY, *_paths(image_folder, tmp_path), "auto_resume.enabled=false"]
    if "+hardware=cpu" in config_args:
        overrides = _solo_recipe(overrides[1:])
    env = {**os.environ, "WANDB_MODE": "disabled"}
    result = subprocess.run(
        [sys.executable, "main_pretrain.py", *config_args, *overrides],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((tmp_path / "trained_models" / "byol_offdiag").glob("*/*.ckpt"))


def test_interrupted_fit_is_not_reported_as_finished(image_folder, tmp_path, monkeypatch):
    """lightning 2.1 returns normally from fit() after Ctrl-C: pretrain must raise instead."""
    from lightning.pytorch import Trainer
    from lightning.pytorch.trainer.states import TrainerStatus

    from solo_offdiag.solo_adapter import pretrain

    def interrupted_fit(self, *args, **kwargs):
        self.state.status = TrainerStatus.INTERRUPTED

    monkeypatch.setattr(Trainer, "fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt, match="run the same command again"):
        pretrain([*TINY, *_paths(image_folder, tmp_path), "auto_resume.enabled=false"])


def test_pretrain_with_the_gpu_resident_data_path(image_folder, tmp_path):
    """performance.data_loader=gpu: the uint8 set and the augmentations live on the model's device
    (here the CPU), and solo's byol_offdiag trains from it unchanged."""
    import torch

    from solo_offdiag.solo_adapter import pretrain

    run_dir = pretrain([*TINY, *_paths(image_folder, tmp_path), "auto_resume.enabled=false",
                        "performance.data_loader=gpu", "+performance.augment_seed=0"])
    state = torch.load(sorted(run_dir.glob("*.ckpt"))[-1], map_location="cpu", weights_only=False)
    assert state["global_step"] == 2
    offdiag = state["state_dict"]["predictor.offdiag"]
    assert torch.isfinite(offdiag).all() and offdiag.abs().sum() > 0  # the head trained


_LAUNCH = "import sys; from solo_offdiag.cli.main import main; sys.exit(main())"


def _signal_after_first_checkpoint(image_folder, tmp_path, name: str, max_epochs: int, sig):
    """Launch a tiny ``pretrain`` (4 steps an epoch), send ``sig`` once its first checkpoint exists.

    Returns the command (to re-run it), its environment, the runs' base folder and the stopped
    process's return code and output.
    """
    import time

    overrides = [o for o in TINY if not o.startswith(("+limit_train_batches", "max_epochs"))]
    cmd = [sys.executable, "-c", _LAUNCH, "pretrain", *overrides, "+limit_train_batches=4",
           f"max_epochs={max_epochs}", *_paths(image_folder, tmp_path), f"name={name}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = tmp_path / "trained_models" / "byol_offdiag"
    deadline = time.monotonic() + 600
    while not list(base.glob("*/*.ckpt")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=600)
    return cmd, env, base, proc.returncode, out


def test_sigterm_checkpoints_exits_143_and_the_rerun_finishes_then_does_nothing(image_folder, tmp_path):
    """Preemption: SIGTERM after the first epoch's checkpoint -> a resumable checkpoint, the run
    directory printed, exit 143; the same command resumes to the end; once more: nothing to do."""
    import signal

    import torch

    from solo_offdiag.solo_adapter.checkpoints import newest_valid_checkpoint

    cmd, env, base, returncode, out = _signal_after_first_checkpoint(
        image_folder, tmp_path, "sigterm", 3, signal.SIGTERM)
    assert returncode == 143, out[-3000:]
    assert "run directory" in out and "SIGTERM" in out and "Traceback" not in out
    (run_dir,) = base.iterdir()
    stopped = newest_valid_checkpoint(run_dir)
    assert 4 <= stopped.global_step < 12

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"resuming from {stopped.path}" in again.stdout
    assert [p.name for p in base.iterdir()] == [run_dir.name]  # the same run directory
    final = newest_valid_checkpoint(run_dir)
    assert final.global_step == 12 and final.end_of_epoch and len(list(run_dir.glob("*.ckpt"))) == 1
    state = torch.load(final.path, map_location="cpu", weights_only=False)
    assert state["global_step"] == 12

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "already finished" in done.stdout and "nothing to do" in done.stdout
    assert newest_valid_checkpoint(run_dir).mtime == final.mtime  # not retrained


@pytest.mark.slow
def test_ctrl_c_exits_130_without_a_traceback_and_the_rerun_resumes(image_folder, tmp_path):
    """Ctrl-C (SIGINT) after the first checkpoint: exit 130, one line, no traceback (lightning 2.1
    swallows the interrupt and returns from fit, 2.6 exits 1: both become 130); the same command
    then resumes from the last checkpoint in the same run directory."""
    import signal

    from solo_offdiag.solo_adapter.checkpoints import newest_valid_checkpoint

    cmd, env, base, returncode, out = _signal_after_first_checkpoint(
        image_folder, tmp_path, "sigint", 2, signal.SIGINT)
    assert returncode == 130, out[-3000:]
    assert "interrupted" in out and "Traceback" not in out, out[-3000:]
    (run_dir,) = base.iterdir()
    stopped = newest_valid_checkpoint(run_dir)
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"resuming from {stopped.path}" in again.stdout
    assert [p.name for p in base.iterdir()] == [run_dir.name]
    assert newest_valid_checkpoint(run_dir).global_step == 8


def test_torn_checkpoint_is_skipped_and_garbage_explicit_one_refused(image_folder, tmp_path, capsys):
    """A truncated newest checkpoint (a kill mid-save by a writer that is not atomic) is skipped
    with a warning naming it; an explicit unreadable resume_from_checkpoint is one clear error."""
    from solo_offdiag.cli.main import main

    overrides = [*TINY[:-1], "max_epochs=2", *_paths(image_folder, tmp_path), "name=torn"]
    assert main(["pretrain", *overrides, "+max_steps=2"]) == 0  # epoch 0 done: ep=0 checkpoint
    (run_dir,) = (tmp_path / "trained_models" / "byol_offdiag").iterdir()
    (good,) = run_dir.glob("*.ckpt")
    torn = run_dir / good.name.replace("ep=0", "ep=1")
    torn.write_bytes(good.read_bytes()[:2048])
    capsys.readouterr()
    assert main(["pretrain", *overrides]) == 0
    out = capsys.readouterr().out
    assert f"skipping {torn}" in out and f"resuming from {good}" in out

    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00not a checkpoint")
    code = main(["pretrain", *overrides, f"+resume_from_checkpoint='{garbage}'"])
    err = capsys.readouterr().err
    assert code == 2 and "resume_from_checkpoint" in err and str(garbage) in err and "Traceback" not in err


def test_corrupt_image_is_named(image_folder, tmp_path, capsys):
    from solo_offdiag.cli.main import main

    bad = sorted(image_folder.glob("*/*.png"))
    for path in bad:  # every file: whichever the shuffled first batch reads is named
        path.write_bytes(b"this is not a png")
    code = main(["pretrain", *TINY, *_paths(image_folder, tmp_path), "auto_resume.enabled=false", "name=corrupt"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot read this image" in err and "Traceback" not in err
    assert any(str(path) in err for path in bad), err
