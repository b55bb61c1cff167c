"""benchmarks/gpu_check.py: the prepared GPU check runs (CPU smoke on a cheap subset), its
summary compares against the targets, and bad arguments are refused."""

from __future__ import annotations

import json

import pytest


def test_summary_compares_with_the_targets(tmp_path, load_benchmark):
    gc = load_benchmark("gpu_check")
    (tmp_path / "tp_default.json").write_text(json.dumps(
        {"images_per_s": {"a": 9000.0, "b": 16000.0, "c": 17000.0}, "ratios": {"b_over_a": 16 / 9, "b_over_c": 16 / 17}}))  # fmt: skip
    (tmp_path / "tp_recipe.json").write_text(json.dumps(
        {"images_per_s": {"a": 4000.0, "b": 16000.0}, "ratios": {"b_over_a": 4.0, "b_over_c": None}}))  # fmt: skip
    summary = gc.summarise(tmp_path, {"tp_default": {"status": "ok", "seconds": 1.0}}, smoke=False)
    assert summary["verdict"]["met"] == {"b_img_s >= 15000": True, "b/c >= 0.9": True, "b / recipe a >= 5": False}
    assert "GPU run" in (tmp_path / "summary.md").read_text()


def test_bad_arguments_are_refused(capsys, load_benchmark):
    gc = load_benchmark("gpu_check")
    with pytest.raises(SystemExit):
        gc.main(["--only", "env,warp"])
    assert "--only: got ['warp']" in capsys.readouterr().err


@pytest.mark.slow
def test_cpu_smoke_runs_the_sync_step(tmp_path, load_benchmark):
    """The real step at toy sizes on the CPU (the GPU-only checks say that they did not run).
    The full ``--cpu-smoke`` run (every step) is too slow for CI on 2 cores; see docs/performance.md."""
    rc = load_benchmark("gpu_check").main(["--cpu-smoke", "--only", "sync", "--out", str(tmp_path), "--budget", "900"])
    log = (tmp_path / "log.txt").read_text()
    assert rc == 0, log
    assert "ran (CPU: sync debug mode not available)  in-place momentum update" in log
    assert json.loads((tmp_path / "summary.json").read_text())["steps"]["sync"]["status"] == "ok"
