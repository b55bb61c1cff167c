"""The bad-input battery: every bad value gets exit != 0, one message naming the key or the value,
and no traceback. Configs go through ``solo-offdiag pretrain --print-config`` (which makes every
check a run makes before training, so no solo-learn is needed); CLI arguments through the CLIs.

Each case runs in-process through ``solo_offdiag.cli.main.main``: an exception escaping it (what
would print a traceback) fails the test, and the captured output must not contain one either.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from solo_offdiag.cli.main import main

P = "method_kwargs.predictor"

#: (overrides after ``pretrain --print-config hardware=cpu``, text the message must contain)
CONFIG_CASES: list[tuple[list[str], str]] = [
    ([f"{P}.kind=offdag"], "offdag"),
    ([f"+{P}.options={{init:foo}}"], "init"),
    ([f"{P}.kind=linear", f"+{P}.options={{init:foo}}"], "foo"),
    ([f"{P}.kind=directpred", f"+{P}.options={{rho:2}}"], "rho"),
    ([f"{P}.kind=directpred", f"+{P}.options={{freq:0}}"], "freq"),
    ([f"{P}.kind=mlp", f"+{P}.options={{hidden_dim:0}}"], "hidden_dim"),
    ([f"+{P}.options={{dim:8}}"], "options.dim"),
    ([f"{P}.lr=-1"], f"{P}.lr"),
    ([f"{P}.lr=inf"], f"{P}.lr"),
    ([f"{P}.lr=nan"], f"{P}.lr"),
    ([f"{P}.lr=fast"], "fast"),
    ([f"{P}.weight_decay=-0.1"], f"{P}.weight_decay"),
    ([f"{P}.weight_decay=inf"], f"{P}.weight_decay"),
    ([f"++{P}.static_lr=true", f"{P}.lr=0.1"], "static_lr"),
    ([f"++{P}.static_lr=maybe"], "static_lr"),
    ([f"+{P}.lrr=0.1"], f"did you mean '{P}.lr'"),
    (["+method_kwargs.predicter={}"], "predicter"),
    ([f"{P}.kind=[a,b]"], f"{P}.kind"),
    (["method_kwargs.proj_output_dim=0"], "proj_output_dim"),
    (["method_kwargs.proj_hidden_dim=-5"], "proj_hidden_dim"),
    (["method_kwargs.pred_hidden_dim=abc"], "pred_hidden_dim"),
    (["method_kwargs.analysis.enabled=maybe"], "analysis.enabled"),
    (["+method_kwargs.analysis.every_n_stepz=3"], "every_n_stepz"),
    (["method_kwargs.analysis.every_n_steps=0"], "every_n_steps"),
    (["optimizer.lr=-1"], "optimizer.lr"),
    (["optimizer.lr=inf"], "optimizer.lr"),
    (["optimizer.lr=fast"], "optimizer.lr"),
    (["optimizer.batch_size=0"], "optimizer.batch_size"),
    (["optimizer.batch_size=-4"], "optimizer.batch_size"),
    (["optimizer.batch_size=2.5"], "optimizer.batch_size"),
    (["optimizer.weight_decay=-1"], "optimizer.weight_decay"),
    (["optimizer.weight_decay=nan"], "optimizer.weight_decay"),
    (["optimizer.classifier_lr=-0.1"], "optimizer.classifier_lr"),
    (["max_epochs=0"], "max_epochs"),
    (["max_epochs=-3"], "max_epochs"),
    (["max_epochs=ten"], "max_epochs"),
    (["max_epochs=-1"], "max_epochs"),
    (["+max_steps=0"], "max_steps"),
    (["devices=0"], "devices"),
    (["devices=-2"], "devices"),
    (["devices=abc"], "devices"),
    (["devices=[]"], "devices"),
    (["devices=[0,0]"], "devices"),
    (["accelerator=gpux"], "accelerator"),
    (["precision=17"], "precision"),
    (["+num_nodes=0"], "num_nodes"),
    (["+accumulate_grad_batches=0"], "accumulate_grad_batches"),
    (["data.num_workers=-1"], "data.num_workers"),
    (["data.dataset=cifar11"], "cifar11"),
    (["data.format=zip"], "data.format"),
    (["data.format=dali"], "data.format"),
    (["+data.fraction=2"], "data.fraction"),
    (["momentum.base_tau=1.5"], "momentum.base_tau"),
    (["momentum.final_tau=nan"], "momentum.final_tau"),
    (["+scheduler.warmup_epochs=-1"], "scheduler.warmup_epochs"),
    (["checkpoint.frequency=0"], "checkpoint.frequency"),
    (["seed=-1"], "seed"),
    (["name=a/b"], "name"),
    (["auto_resume.max_hours=-1"], "auto_resume.max_hours"),
    (["performance.data_loader=foo"], "performance.data_loader"),
    (["+performance.channels_lats=false"], "channels_lats"),
    (["method="], "method"),
    (["hardware=tpu9"], "hardware"),
    (["method_kwargs.predictor.kind"], "method_kwargs.predictor.kind"),
    (["+performance.precision=16-mixed"], "performance.precision: got '16-mixed' on cpu"),
    (["method=simclr", "++data.num_large_crops=3"], "num_large_crops"),
    (["+resume_from_checkpoint=/no/such.ckpt"], "resume_from_checkpoint: got '/no/such.ckpt'; no such file"),
]

#: (arguments of ``solo-offdiag``, text the message must contain)
CLI_CASES: list[tuple[list[str], str]] = [
    (["pretrain", "--print-config", "--bogus"], "--bogus"),
    (["pretrain", "--print-config", "--config-name", "no_such_config"], "no_such_config"),
    (["pretrain", "--print-config", "--config-dir", "/no/such/dir"], "/no/such/dir"),
    (["repro", "run", "image_heads", "--seeds", "0"], "--seeds"),
    (["repro", "run", "a_trainable_head", "--seeds", "-1"], "--seeds"),
    (["repro", "run", "a_trainable_head", "--threads", "0"], "--threads"),
    (["repro", "run", "a_trainable_head", "--threads", "abc"], "--threads"),
    (["repro", "run", "a_trainable_head", "--device", "cdua"], "cdua"),
    (["repro", "run", "no_such_experiment"], "no_such_experiment"),
    (["repro", "run", "a_trainable_head", "--preset", "huge"], "huge"),
    (["repro", "all", "--preset", "huge"], "huge"),
    (["theory", "a_trainable_head", "--seeds", "0", "--out", "x"], "--seeds"),
    (["theory", "a_trainable_head", "--device", "cdua", "--out", "x"], "cdua"),
    (["no-such-command"], "no-such-command"),
]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse errors
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize(("overrides", "expected"), CONFIG_CASES, ids=[" ".join(o) for o, _ in CONFIG_CASES])
def test_bad_config_refused_by_print_config(overrides, expected, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out = _run(["pretrain", "--print-config", "hardware=cpu", *overrides], capsys)
    assert code != 0, out
    assert expected in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize(("argv", "expected"), CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_bad_cli_argument_refused(argv, expected, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out = _run(argv, capsys)
    assert code != 0, out
    assert expected in out, out
    assert "Traceback" not in out
    assert not (tmp_path / "results" / "smoke" / "theory").exists()  # nothing ran


def test_battery_size():
    assert len(CONFIG_CASES) + len(CLI_CASES) >= 50


def test_a_good_config_still_passes(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out = _run(["pretrain", "--print-config", "hardware=cpu", "devices=2", "method_kwargs.predictor.lr=0.01"],
                     capsys)
    assert code == 0 and "predictor" in out and "Traceback" not in out


def test_unreadable_resume_checkpoint_refused_by_print_config(capsys, monkeypatch, tmp_path):
    """A run would stop on it before training, so --print-config does too (no solo-learn needed)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint")
    code, out = _run(["pretrain", "--print-config", "hardware=cpu", "+resume_from_checkpoint=garbage.ckpt"], capsys)
    assert code == 2 and "garbage.ckpt: not a readable checkpoint" in out and "Traceback" not in out


def test_results_folder_that_is_a_file(capsys, tmp_path: Path):
    target = tmp_path / "results"
    target.write_text("not a folder")
    code, out = _run(["repro", "check", "--results", str(target)], capsys)
    assert code == 2 and str(target) in out and "Traceback" not in out


# -- solo-learn's own, unmodified main_pretrain.py with our plugin (solo-marked) --------------------
#: (arguments of ``python main_pretrain.py``, text the message must contain). Our configs come from the
#: Hydra plugin (no --config-path), solo's recipe from its checkout's ``scripts/pretrain/cifar``.
STOCK_SCRIPT_CASES: list[tuple[list[str], str]] = [
    (["--config-name", "byol_offdiag", "hardware=cpu", f"{P}.kind=bogus"],
     "method_kwargs.predictor.kind: unknown head 'bogus'; known: "),
    (["--config-name", "simsiam_offdiag", "hardware=cpu", f"++{P}.static_lr=true", f"{P}.lr=0.1"],
     f"{P}.static_lr: got true with predictor.lr=0.1"),
    (["--config-path", "scripts/pretrain/cifar", "--config-name", "byol.yaml", "method=byol_offdiag",
      "wandb.enabled=false", f"+{P}.lrr=0.1"], f"did you mean '{P}.lr'"),
]


def _solo_checkout() -> Path:
    """solo-learn's checkout (``$SOLO_LEARN_CHECKOUT`` or /tmp/solo-src) with solo-learn importable."""
    import os

    from solo_offdiag.solo_adapter.requirements import SOLO_COMMIT, solo_available

    checkout = Path(os.environ.get("SOLO_LEARN_CHECKOUT", "/tmp/solo-src"))
    if not (checkout / "main_pretrain.py").is_file():
        pytest.skip(f"no solo-learn checkout with main_pretrain.py at {checkout}: set SOLO_LEARN_CHECKOUT")
    ok, reason = solo_available()
    if not ok:
        pytest.skip(f"solo-learn 1.0.6 not installed ({reason.splitlines()[0] if reason else 'import failed'}): "
                    f"pip install 'setuptools<81' && pip install --no-build-isolation <solo-learn checkout at "
                    f"{SOLO_COMMIT}>")
    return checkout


@pytest.mark.solo
@pytest.mark.parametrize(("argv", "expected"), STOCK_SCRIPT_CASES, ids=[a[1] + " " + a[-1] for a, _ in STOCK_SCRIPT_CASES])
def test_bad_key_of_ours_in_solos_own_main_pretrain(argv, expected, tmp_path):
    """Hydra prints a stack trace for any exception of the task, except a CompactHydraException:
    our method's config errors are one (and still ConfigErrors), so solo's unmodified script gives
    the message alone and exits 1, before anything is built."""
    import os
    import subprocess
    import sys

    checkout = _solo_checkout()
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["OMP_NUM_THREADS"] = "1"
    argv = [str(checkout / a) if a.startswith("scripts/") else a for a in argv]
    proc = subprocess.run([sys.executable, str(checkout / "main_pretrain.py"), *argv, f"hydra.run.dir={tmp_path}/h"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert expected in out, out
    assert "Traceback" not in out, out
    assert not (tmp_path / "trained_models").exists()  # nothing was built or written
