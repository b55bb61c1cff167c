"""Experiments (smoke preset), registry errors, CLI, and the claimed directions at small d."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from solo_offdiag.theory import TheoryConfig, criteria, simulate_batch
from solo_offdiag.theory.experiments import list_experiments, run_experiment
from solo_offdiag.theory.phases import detect_phases

ROOT = Path(__file__).resolve().parents[2]


def test_unknown_experiment_lists_known() -> None:
    with pytest.raises(ValueError, match="unknown experiment 'x'; known: a_trainable_head"):
        run_experiment("x", Path("/nonexistent"))


def test_cli_help_lists_every_experiment() -> None:
    from solo_offdiag.cli.theory import EXPERIMENT_HELP

    assert sorted(EXPERIMENT_HELP) == list_experiments()
    out = subprocess.run([sys.executable, "-m", "solo_offdiag", "theory", "--help"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert all(name in out for name in list_experiments())


def test_smoke_experiment_writes_figures_data_and_summary(tmp_path: Path) -> None:
    summary = run_experiment("b_fixed_head", tmp_path, preset="smoke", progress=False)
    for fig in summary["figures"]:
        assert (tmp_path / fig).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "trajectories.npz").exists() and (tmp_path / "runs.csv").exists()
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert set(on_disk["criteria"]) == {"C5", "C4_on_fixed_head"}
    assert on_disk["criteria"]["C4_on_fixed_head"]["negative_control"] is True
    assert "negative_control" not in on_disk["criteria"]["C5"]
    assert set(on_disk["arms"]) == {"fixed", "trainable"}
    assert "t1" in on_disk["arms"]["fixed"]["runs"][0]


# The claimed directions, from the dynamics, in the documented default regime (docs/theory.md)
# cut to 3000 steps (a run's first 3000 steps do not depend on its length). Fixed seeds: 3, 4 and
# 6 are seeds where, in the default run, the head makes the difference (E = I: neuron 2 collapses
# on v1; trainable: neuron 2 learns v2, E returns to I). Other seeds do not all behave so (6/8
# pass C4 at the default preset, docs/theory.md); these tests pin the mechanism, they are not
# evidence of its frequency.
DIRECTION = TheoryConfig(steps=3000)
DIRECTION_SEEDS = (3, 4, 6)


@pytest.fixture(scope="module")
def paired_runs() -> dict[str, list[dict]]:
    arms = {
        "trainable": [DIRECTION.replace(seed=s) for s in DIRECTION_SEEDS],
        "fixed": [DIRECTION.replace(seed=s, head_trainable=False) for s in DIRECTION_SEEDS],
    }
    traj = simulate_batch(arms["trainable"] + arms["fixed"])
    n = len(DIRECTION_SEEDS)
    return {"trainable": [detect_phases(traj.arm(i)) for i in range(n)],
            "fixed": [detect_phases(traj.arm(n + i)) for i in range(n)]}


def test_trainable_head_learns_both_features_and_returns_to_identity(paired_runs) -> None:
    summary = {"arms": {"trainable": {"runs": paired_runs["trainable"]}}}
    c4 = criteria.check_c4(summary)
    assert c4.passed, c4.detail
    for r in paired_runs["trainable"]:
        # substitution first (E21 peaks before v2 is learned); E falls while v2 is being learned
        assert abs(r["e21_peak"]) > 0.1 and r["t_sub_peak"] <= r["t_v2"]
        assert r["t_return"] is not None and r["offdiag_final"] < 0.1 * r["offdiag_peak"]


def test_fixed_head_collapses_on_v1_and_fails_the_both_features_check(paired_runs) -> None:
    summary = {"arms": {"fixed": {"runs": paired_runs["fixed"]}}}
    assert criteria.check_c5(summary).passed
    assert not criteria.check_c4(summary, arm="fixed").passed  # the criteria reject a wrong outcome


def test_sensitivity_sweep_writes_both_arms_per_variant(tmp_path: Path) -> None:
    summary = run_experiment("g_sensitivity", tmp_path, preset="smoke", seeds=2, progress=False)
    rows = summary["sensitivity"]
    assert [r["variant"] for r in rows][0] == "base" and len(rows) >= 3
    for r in rows:
        for key in ("trainable_both_separated", "fixed_both_separated", "trainable_c4_pass"):
            assert 0.0 <= r[key] <= 1.0
    assert (tmp_path / "sensitivity.csv").exists()
    assert (tmp_path / "sensitivity.md").read_text().startswith("| variant |")
