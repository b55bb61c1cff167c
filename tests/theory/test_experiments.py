"""Experiments (smoke preset), registry errors, CLI, e_scaling and the wide-head experiment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from solo_offdiag.repro.theory_output import run_experiment
from solo_offdiag.theory.experiments import (
    THEORY_PRESETS,
    censored_median,
    compute_experiment,
    list_experiments,
    plan_configs,
)

ROOT = Path(__file__).resolve().parents[2]


def test_unknown_experiment_lists_known() -> None:
    with pytest.raises(ValueError, match="unknown experiment 'x'; known: a_trainable_head"):
        compute_experiment("x")
    with pytest.raises(ValueError, match="seed_offset: got -1"):
        compute_experiment("a_trainable_head", seed_offset=-1)


def test_cli_help_lists_every_experiment() -> None:
    from solo_offdiag.cli.theory import EXPERIMENT_HELP, PRESET_HELP

    assert sorted(EXPERIMENT_HELP) == list_experiments()
    assert sorted(PRESET_HELP) == sorted(THEORY_PRESETS)
    out = subprocess.run([sys.executable, "-m", "solo_offdiag", "theory", "--help"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert all(name in out for name in list_experiments()) and "--seed-offset" in out


def test_seed_offset_selects_the_seeds() -> None:
    cfgs = plan_configs(["b_fixed_head"], preset="smoke", seeds=3, seed_offset=1000)
    assert sorted({c.seed for c in cfgs}) == [1000, 1001, 1002]
    # the runs behind the two slopes use twice the seeds (slope_seed_factor), the eta/2 runs the seeds
    scaling = plan_configs(["e_scaling"], preset="smoke", seeds=2, seed_offset=7)
    assert {c.seed for c in scaling} == {7, 8, 9, 10} and {c.seed for c in scaling if c.eta == 0.003} == {7, 8}


def test_smoke_experiment_writes_figures_data_and_summary(tmp_path: Path) -> None:
    summary = run_experiment("b_fixed_head", tmp_path, preset="smoke", seeds=2, progress=False, seed_offset=3)
    for fig in summary["figures"]:
        assert (tmp_path / fig).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "trajectories.npz").exists() and (tmp_path / "runs.csv").exists()
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert set(on_disk["criteria"]) == {"C5", "C4_on_fixed_head"}
    assert on_disk["criteria"]["C4_on_fixed_head"]["negative_control"] is True
    c5 = on_disk["criteria"]["C5"]
    assert c5["measured"]["n"] == 2 and 0 <= c5["measured"]["wilson_lower_95"] <= c5["measured"]["pass_rate"]
    assert on_disk["seed_offset"] == 3 and on_disk["arms"]["fixed"]["seeds"] == [3, 4]


def test_e_scaling_measures_escape_times_per_seed(tmp_path: Path) -> None:
    summary = run_experiment("e_scaling", tmp_path, preset="smoke", seeds=2, progress=False)
    sc = summary["scaling"]
    assert len(sc["replicates"]) == 2 and sc["slope_seeds"] == 4 and len(sc["t1_all"]) == 4
    assert sc["peak_runs"] == 4 * 2  # 4 seeds x the smoke preset's 2 ratios
    for rep in sc["replicates"]:
        # the escape takes longer in a larger dimension and with a smaller learning rate
        t = rep["t_escape"]
        assert all(x > 0 for x in t) and t[-1] > t[0]
        assert rep["t_escape_eta_half"] > t[0]
    assert sc["interior_peaks"] <= sc["peak_runs"]
    assert "C8" in summary["criteria"] and (tmp_path / "t1_vs_d.png").exists()


def test_escape_runs_fit_up_to_1024_with_their_own_batch_per_d() -> None:
    sc = THEORY_PRESETS["default"]["scaling"]
    assert sc["dims"][0] == 128 and sc["dims"][-1] == 1024  # the range of d
    esc = [c for c in plan_configs(["e_scaling"], preset="default", seeds=2) if c.m == 1]
    by_d = {d: {(c.batch_size, c.steps) for c in esc if c.d == d} for d in sc["dims"]}
    assert by_d[1024] == {(512, 6000)}
    assert all(v == {(sc["batch_size"], sc["steps"])} for d, v in by_d.items() if d != 1024)


def test_escape_head_start_must_start_below_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    from solo_offdiag.theory import experiments as X

    assert X.head_start_c("default") == X.HEAD_START_C == 2.0 and X.head_start_c("smoke") == 1.5
    monkeypatch.setitem(X.THEORY_PRESETS["smoke"], "scaling", {**X.THEORY_PRESETS["smoke"]["scaling"], "head_start_c": 2.0})
    with pytest.raises(ValueError, match=r"head_start_c of preset 'smoke': got 2; allowed: < 0.3 x sqrt\(d\)"):
        plan_configs(["e_scaling"], preset="smoke", seeds=1)


def test_censored_median_counts_never_escaped_runs_as_late() -> None:
    nan = float("nan")
    assert censored_median([10.0, 20.0, nan]) == 20.0  # nanmedian would say 15
    assert censored_median([10.0, nan, nan]) == float("inf")  # no median within the run
    assert censored_median([10.0, 20.0, nan, nan]) == float("inf")
    assert censored_median([30.0, 10.0, 20.0]) == 20.0


def test_wide_head_is_exploratory_with_a_reason(tmp_path: Path) -> None:
    summary = run_experiment("f_wide_head", tmp_path, preset="smoke", seeds=1, progress=False)
    assert summary["criteria"] == {} and "Adam" in summary["exploratory"]
    assert summary["arms"]["wide"]["config"]["m"] == 8
    assert (tmp_path / "offdiag.csv").read_text().startswith("step,")


def test_sensitivity_sweep_writes_both_arms_per_variant(tmp_path: Path) -> None:
    summary = run_experiment("g_sensitivity", tmp_path, preset="smoke", seeds=2, progress=False)
    rows = summary["sensitivity"]
    assert [r["variant"] for r in rows][0] == "base" and len(rows) >= 3
    assert (tmp_path / "sensitivity.md").read_text().startswith("| variant |")
