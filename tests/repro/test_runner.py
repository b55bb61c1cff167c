"""Runs: finished ones are skipped, unfinished ones resumed, done.json last, env dump recorded."""

from __future__ import annotations

import json

import pytest

from solo_offdiag.repro import envinfo
from solo_offdiag.repro.runner import RunSpec, config_fingerprint, execute, read_done


def _spec(calls: list, config=None, fail=False, key="exp/run0"):
    def compute(run_dir):
        calls.append(run_dir)
        assert not (run_dir / "done.json").exists()  # done.json is written after the work
        (run_dir / "work.txt").write_text("partial")
        if fail:
            raise RuntimeError("boom")
        return {"value": 42}

    return RunSpec(key=key, config=config or {"a": 1}, compute=compute, seed=3)


def test_finished_run_is_not_recomputed(tmp_path):
    calls: list = []
    first = execute(_spec(calls), tmp_path, log=lambda m: None)
    assert first.status == "done" and first.result == {"value": 42} and len(calls) == 1
    done = read_done(first.run_dir)
    assert done["result"] == {"value": 42} and done["seed"] == 3
    assert done["config_fingerprint"] == config_fingerprint({"a": 1})
    second = execute(_spec(calls), tmp_path, log=lambda m: None)
    assert second.status == "cached" and second.result == {"value": 42} and len(calls) == 1


def test_run_without_done_json_is_resumed_in_place(tmp_path):
    calls: list = []
    failed = execute(_spec(calls, fail=True), tmp_path, log=lambda m: None)
    assert failed.status == "failed" and "boom" in failed.error
    assert read_done(failed.run_dir) is None
    assert "RuntimeError: boom" in (failed.run_dir / "error.txt").read_text()
    messages: list[str] = []
    again = execute(_spec(calls), tmp_path, log=messages.append)
    assert again.status == "done" and len(calls) == 2 and calls[0] == calls[1]
    assert json.loads((again.run_dir / "run.json").read_text())["attempt"] == 2
    assert any("resuming" in m for m in messages)


def test_changed_config_is_recomputed_and_force_recomputes(tmp_path):
    calls: list = []
    execute(_spec(calls), tmp_path, log=lambda m: None)
    out = execute(_spec(calls, config={"a": 2}), tmp_path, log=lambda m: None)
    assert out.status == "done" and len(calls) == 2
    assert read_done(out.run_dir)["config"] == {"a": 2}
    assert execute(_spec(calls, config={"a": 2}), tmp_path, force=True, log=lambda m: None).status == "done"
    assert len(calls) == 3


def test_fingerprint_ignores_key_order():
    assert config_fingerprint({"a": 1, "b": [1, 2]}) == config_fingerprint({"b": [1, 2], "a": 1})
    assert config_fingerprint({"a": 1}) != config_fingerprint({"a": 2})


def test_truncated_done_json_counts_as_unfinished(tmp_path):
    calls: list = []
    out = execute(_spec(calls), tmp_path, log=lambda m: None)
    (out.run_dir / "done.json").write_text('{"key": "exp/ru')  # a torn write (not ours: atomic)
    assert execute(_spec(calls), tmp_path, log=lambda m: None).status == "done" and len(calls) == 2


def test_results_are_written_atomically(tmp_path, monkeypatch):
    import os

    calls: list = []
    real_replace = os.replace

    def crash(src, dst):
        if str(dst).endswith("done.json"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        execute(_spec(calls), tmp_path, log=lambda m: None)
    run_dir = tmp_path / "exp" / "run0"
    assert not (run_dir / "done.json").exists()
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_every_run_records_config_seed_git_and_environment(tmp_path):
    out = execute(_spec([]), tmp_path, log=lambda m: None)
    run = json.loads((out.run_dir / "run.json").read_text())
    assert run["config"] == {"a": 1} and run["seed"] == 3 and set(run["git"]) == {"sha", "dirty", "branch"}
    env = json.loads((out.run_dir / "env.json").read_text())
    for key in ("python", "platform", "hostname", "date_utc", "packages", "accelerator", "git", "solo_learn_pin"):
        assert key in env
    for pkg in ("torch", "torchvision", "lightning", "solo-learn", "numpy"):
        assert pkg in env["packages"]
    assert env["packages"]["torch"]
    assert "cuda_available" in env["accelerator"]


def test_git_state_in_this_checkout_and_outside(tmp_path):
    inside = envinfo.git_state()
    if inside["sha"] is not None:
        assert len(inside["sha"]) == 40 and isinstance(inside["dirty"], bool)
    assert envinfo.git_state(tmp_path) == {"sha": None, "dirty": None, "branch": None}


def test_changed_config_starts_from_scratch_without_stale_state(tmp_path):
    calls: list = []
    out = execute(_spec(calls, fail=True), tmp_path, log=lambda m: None)  # unfinished, leaves work.txt
    (out.run_dir / "checkpoint.ckpt").write_text("state of config a=1")
    messages: list[str] = []
    again = execute(_spec(calls, config={"a": 2}), tmp_path, log=messages.append)
    assert again.status == "done" and not (again.run_dir / "checkpoint.ckpt").exists()
    assert json.loads((again.run_dir / "run.json").read_text())["attempt"] == 1
    assert any("config changed" in m for m in messages)


def test_interrupt_is_recorded_and_reraised_then_resumed(tmp_path):
    calls: list = []

    def interrupted(run_dir):
        calls.append(run_dir)
        raise KeyboardInterrupt

    spec = _spec(calls)
    spec_int = RunSpec(key=spec.key, config=spec.config, compute=interrupted, seed=3)
    with pytest.raises(KeyboardInterrupt):
        execute(spec_int, tmp_path, log=lambda m: None)
    run_dir = tmp_path / spec.key
    assert "interrupted" in (run_dir / "error.txt").read_text() and read_done(run_dir) is None
    out = execute(spec, tmp_path, log=lambda m: None)
    assert out.status == "done" and json.loads((run_dir / "run.json").read_text())["attempt"] == 2


@pytest.mark.parametrize("content", ["[]", "garbage{", "", "null", '"a string"', "42"])
@pytest.mark.parametrize("name", ["done.json", "run.json"])
def test_corrupt_result_json_is_recomputed_not_a_traceback(tmp_path, name, content):
    calls: list = []
    out = execute(_spec(calls), tmp_path, log=lambda m: None)
    (out.run_dir / name).write_text(content)
    again = execute(_spec(calls), tmp_path, log=lambda m: None)
    expected = ("done", 2) if name == "done.json" else ("cached", 1)  # run.json only matters unfinished
    assert (again.status, len(calls)) == expected
    assert read_done(again.run_dir)["result"] == {"value": 42}


def test_corrupt_output_of_a_finished_run_is_recomputed(tmp_path):
    calls: list = []

    def verify(run_dir):
        return None if (run_dir / "work.txt").read_text() == "partial" else "work.txt is corrupt"

    spec = _spec(calls)
    spec.verify = verify
    out = execute(spec, tmp_path, log=lambda m: None)
    assert execute(spec, tmp_path, log=lambda m: None).status == "cached" and len(calls) == 1
    (out.run_dir / "work.txt").write_text("[]")
    messages: list[str] = []
    again = execute(spec, tmp_path, log=messages.append)
    assert again.status == "done" and len(calls) == 2 and any("work.txt is corrupt" in m for m in messages)


def test_unfinished_run_with_corrupt_run_json_resumes(tmp_path):
    calls: list = []
    out = execute(_spec(calls, fail=True), tmp_path, log=lambda m: None)
    (out.run_dir / "run.json").write_text("[]")
    assert execute(_spec(calls), tmp_path, log=lambda m: None).status == "done"


@pytest.mark.parametrize("content", ["[]", "{broken", None])
def test_theory_runs_verify_their_summary(tmp_path, content):
    """A finished theory run whose summary.json is corrupt is recomputed (not 'cached' forever),
    and the claim check treats it as missing rather than crashing."""
    from solo_offdiag.repro.check import theory_summary
    from solo_offdiag.repro.experiments import theory_specs

    (spec,) = theory_specs(["a_trainable_head"], "smoke", "cpu", None, progress=False)
    run_dir = tmp_path / "smoke" / spec.key
    run_dir.mkdir(parents=True)
    (run_dir / "done.json").write_text('{"result": {}}')
    (run_dir / "summary.json").write_text('{"preset": "default"}')
    assert spec.verify(run_dir) is None
    if content is None:
        (run_dir / "summary.json").unlink()
    else:
        (run_dir / "summary.json").write_text(content)
    assert "summary.json" in spec.verify(run_dir)
    assert theory_summary(tmp_path / "smoke", "a_trainable_head") is None


def test_a_change_of_the_theory_model_makes_a_cached_theory_run_stale(monkeypatch):
    """The fingerprint of a theory run covers the model it simulates, not only the experiment's
    name and preset: changing a default (here eta_E of the preset) or an experiment's grid (C8's
    ratios) changes it, so the finished run is recomputed instead of reported cached."""
    from solo_offdiag.repro.experiments import theory_specs
    from solo_offdiag.repro.runner import config_fingerprint
    from solo_offdiag.theory import experiments as X
    from solo_offdiag.theory.config import TheoryConfig

    def fingerprints() -> list[str]:
        specs = theory_specs(["a_trainable_head", "e_scaling"], "smoke", "cpu", None, progress=False)
        return [config_fingerprint(s.config) for s in specs]

    before = fingerprints()
    assert fingerprints() == before  # deterministic
    preset = X.THEORY_PRESETS["default"]
    monkeypatch.setitem(preset, "overrides", {**preset["overrides"], "eta_E": 0.02})
    changed = fingerprints()
    assert changed[0] != before[0] and changed[1] != before[1]
    monkeypatch.setitem(preset, "overrides", dict(preset["overrides"], eta_E=TheoryConfig().eta_E))  # back
    monkeypatch.setitem(preset, "scaling", {**preset["scaling"], "eta_E_ratios": (0.2, 1.0)})
    regrid = fingerprints()
    assert regrid[0] == before[0] and regrid[1] != before[1]  # only e_scaling simulates the ratios
