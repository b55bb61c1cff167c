"""`solo-offdiag repro`: helps, list, run/all with the theory package faked, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from solo_offdiag.cli.main import main
from solo_offdiag.repro import experiments as E
from solo_offdiag.repro.experiments import THEORY_PRESET_FOR

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("args", [["repro", "--help"], ["repro", "run", "--help"], ["repro", "all", "--help"],
                                  ["repro", "check", "--help"], ["repro", "figures", "--help"],
                                  ["repro", "tables", "--help"], ["repro", "list", "--help"]])
def test_helps(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: solo-offdiag repro" in out


def test_help_as_a_process_is_light():
    out = subprocess.run([sys.executable, "-m", "solo_offdiag", "repro", "--help"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0 and "smoke" in out.stdout and E.SOLO_PIN in out.stdout
    probe = "import sys; from solo_offdiag.cli.main import build_parser; build_parser(); " \
            "print(sorted(m for m in ('torch', 'matplotlib', 'solo', 'lightning') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "'solo'" not in out.stdout and "'matplotlib'" not in out.stdout


def test_list(capsys):
    assert main(["repro", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("a_trainable_head", "f_wide_head", "image_heads"):
        assert name in out


@pytest.fixture
def fake_theory(monkeypatch, fakes):
    """run_experiment writes a passing summary (and counts its calls)."""
    from solo_offdiag.io import atomic_write_json
    from solo_offdiag.repro import theory_output as T

    calls: list[str] = []

    def run_experiment(name, out_dir, preset="default", device="cpu", seeds=None, progress=True, seed_offset=0):
        calls.append(name)
        summary = fakes.theory_summary(name, True, preset)
        atomic_write_json(Path(out_dir) / "summary.json", summary)
        return summary

    monkeypatch.setattr(T, "run_experiment", run_experiment)
    return calls


def test_run_then_rerun_is_cached(tmp_path, fake_theory, capsys):
    args = ["repro", "run", "a_trainable_head", "--results", str(tmp_path), "--no-progress"]
    assert main(args) == 0 and fake_theory == ["a_trainable_head"]
    done = json.loads((tmp_path / "smoke" / "theory" / "a_trainable_head" / "done.json").read_text())
    assert done["config"]["theory_preset"] == THEORY_PRESET_FOR["smoke"]
    # by default the artifact's theory runs use seeds from 100 on, not the tuning seeds 0-63
    assert done["config"]["seed_offset"] == E.THEORY_FIRST_SEED >= 64
    assert main(args) == 0 and fake_theory == ["a_trainable_head"]
    assert "cached" in capsys.readouterr().out
    assert main(["repro", "run", "nope", "--results", str(tmp_path)]) == 2


def test_run_image_without_solo_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(E, "image_unavailable", lambda: "solo-learn is not installed.\npip install ...")
    assert main(["repro", "run", "image_heads", "--results", str(tmp_path)]) == 2
    assert "needs solo-learn 1.0.6" in capsys.readouterr().out


def test_all_without_solo_skips_images_and_checks_theory(tmp_path, fake_theory, monkeypatch, capsys):
    monkeypatch.setattr(E, "image_unavailable", lambda: "solo-learn is not installed.\n    pip install X")
    rc = main(["repro", "all", "--preset", "smoke", "--results", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "SKIPPED image_heads" in out and "pip install X" in out
    assert fake_theory == E.theory_experiments()
    preset_dir = tmp_path / "smoke"
    for name in ("check.txt", "check.json", "all.json", "env.json", "tables/claims.md", "tables/c1_c2.tex",
                 "tables/theory.csv", "figures/index.md"):
        assert (preset_dir / name).is_file(), name
    assert "C4  PASS" in out and "C1  SKIPPED" in out
    summary = json.loads((preset_dir / "all.json").read_text())
    assert summary["skipped"] == {"image_heads": "solo-learn is not installed.\n    pip install X"}
    # a second `all` recomputes nothing
    assert main(["repro", "all", "--results", str(tmp_path), "--no-progress"]) == 0
    assert fake_theory == E.theory_experiments()


def test_snapshot_copies_the_verdicts_tables_and_figures_of_a_finished_preset(tmp_path, fake_theory, monkeypatch,
                                                                               capsys):
    monkeypatch.setattr(E, "image_unavailable", lambda: "solo-learn is not installed.")
    out = tmp_path / "snap"
    # nothing judged yet: refused, naming what to run
    assert main(["repro", "snapshot", "--results", str(tmp_path), "--out", str(out)]) == 2
    assert "run `solo-offdiag repro all --preset smoke`" in capsys.readouterr().out and not out.exists()
    assert main(["repro", "all", "--results", str(tmp_path), "--no-progress"]) == 0
    preset_dir = tmp_path / "smoke"
    assert main(["repro", "snapshot", "--results", str(tmp_path), "--out", str(out), "--produced-by", "CMD X"]) == 0
    assert (out / "check.txt").read_bytes() == (preset_dir / "check.txt").read_bytes()
    assert (out / "tables" / "theory.md").read_bytes() == (preset_dir / "tables" / "theory.md").read_bytes()
    readme = (out / "README.md").read_text()
    assert (preset_dir / "check.txt").read_text().rstrip() in readme and "CMD X" in readme
    assert "theory: 6 runs" in readme and "image: no runs" in readme
    assert sorted(p.name for p in (out / "theory").iterdir()) == sorted(E.theory_experiments())
    # the snapshot may not be written into the results it copies
    assert main(["repro", "snapshot", "--results", str(tmp_path), "--out", str(preset_dir / "x")]) == 2


def test_a_failing_run_makes_all_fail_and_is_resumed(tmp_path, fake_theory, monkeypatch, capsys):
    from solo_offdiag.repro import theory_output as T

    monkeypatch.setattr(E, "image_unavailable", lambda: "not installed.\nx")
    good = T.run_experiment

    def flaky(name, *a, **k):
        if name == "c_no_bn":
            raise RuntimeError("interrupted")
        return good(name, *a, **k)

    monkeypatch.setattr(T, "run_experiment", flaky)
    assert main(["repro", "all", "--results", str(tmp_path), "--no-progress"]) == 1
    assert "c_no_bn: FAILED" in capsys.readouterr().out
    monkeypatch.setattr(T, "run_experiment", good)
    assert main(["repro", "all", "--results", str(tmp_path), "--no-progress"]) == 0
    assert fake_theory.count("c_no_bn") == 1 and fake_theory.count("a_trainable_head") == 1


@pytest.mark.parametrize(("signame", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_stops_all_and_the_next_call_resumes(tmp_path, fake_theory, monkeypatch, capsys, signame, code):
    """SIGINT/SIGTERM during a run (here: one that, like Lightning, swallows the interrupt and
    returns normally) stops the pipeline with exit 143 (SIGTERM; Ctrl-C: 130); the next call skips
    the finished runs."""
    import contextlib
    import os
    import signal

    from solo_offdiag.repro import theory_output as T

    monkeypatch.setattr(E, "image_unavailable", lambda: "not installed.\nx")
    good = T.run_experiment

    def swallowing(name, *a, **k):
        if name == "b_fixed_head":
            with contextlib.suppress(KeyboardInterrupt):  # what Lightning's Trainer.fit does
                os.kill(os.getpid(), getattr(signal, signame))
        return good(name, *a, **k)

    monkeypatch.setattr(T, "run_experiment", swallowing)
    assert main(["repro", "all", "--results", str(tmp_path), "--no-progress"]) == code
    out = capsys.readouterr().out
    assert "interrupted during theory/b_fixed_head" in out and "C1  " not in out
    assert ("SIGTERM" in out) == (signame == "SIGTERM")
    assert fake_theory == ["a_trainable_head", "b_fixed_head"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))
    monkeypatch.setattr(T, "run_experiment", good)
    assert main(["repro", "all", "--results", str(tmp_path), "--no-progress"]) == 0
    # b returned normally (its result is kept; image runs check their checkpoint for completeness)
    assert fake_theory == E.theory_experiments()


def test_threads_option_sets_and_restores_torch_threads(tmp_path, fake_theory, monkeypatch):
    import torch

    from solo_offdiag.repro import theory_output as T

    seen = []
    good = T.run_experiment
    monkeypatch.setattr(T, "run_experiment", lambda *a, **k: (seen.append(torch.get_num_threads()), good(*a, **k))[1])
    before = torch.get_num_threads()
    assert main(["repro", "run", "c_no_bn", "--results", str(tmp_path), "--no-progress"]) == 0
    assert seen == [1] and torch.get_num_threads() == before  # CPU default: 1 thread
    assert main(["repro", "run", "d_no_stopgrad", "--threads", "2", "--results", str(tmp_path),
                 "--no-progress"]) == 0
    assert seen == [1, 2] and torch.get_num_threads() == before
