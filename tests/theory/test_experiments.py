"""Experiments (smoke preset), registry errors, CLI, and the claimed directions at small d."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from solo_offdiag.theory import TheoryConfig, criteria, seeds_of, simulate_batch
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
    assert set(on_disk["arms"]) == {"fixed", "trainable"}
    assert "t1" in on_disk["arms"]["fixed"]["runs"][0]


# The claimed directions, from the dynamics, at a dimension that runs in seconds. Fixed seeds;
# nothing here is tuned to the outcome beyond the documented base regime (docs/theory.md).
DIRECTION = TheoryConfig(d=64, steps=5000, log_every=50, batch_size=256)


@pytest.fixture(scope="module")
def paired_runs() -> dict[str, list[dict]]:
    seeds = 3
    arms = {
        "trainable": seeds_of(DIRECTION, seeds),
        "fixed": seeds_of(DIRECTION.replace(head_trainable=False), seeds),
    }
    out = {}
    for arm, cfgs in arms.items():
        traj = simulate_batch(cfgs)
        out[arm] = [detect_phases(traj.arm(i)) for i in range(len(cfgs))]
    return out


def test_fixed_head_collapses_on_v1_and_fails_the_both_features_check(paired_runs) -> None:
    summary = {"arms": {"fixed": {"runs": paired_runs["fixed"]}}}
    # At d = 64 a seed whose neuron 2 starts far more aligned with v2 than with v1 (a Cauchy-tailed
    # ratio) learns v2 even with E = I; that happens for seed 1 here. The majority collapses.
    c5 = criteria.check_c5(summary)
    assert c5.measured["fraction_collapsed_on_v1"] >= 2 / 3, c5.detail
    assert not criteria.check_c4(summary, arm="fixed").passed  # the criteria reject a wrong outcome


def test_trainable_head_substitutes_v1_in_neuron_2(paired_runs) -> None:
    """Substitution, in the predicted direction: fewer seeds have neuron 2 (re)learn v1 with the
    trainable head than with E = I, and E21 grows where it substitutes. At d = 64 this is not
    seed-by-seed (docs/theory.md): one seed's neuron 2 wins v1 before E21 has grown."""

    def neuron2_on_v1(runs):
        return sum(abs(r["final_alignment"][1][0]) >= 0.8 for r in runs)

    assert neuron2_on_v1(paired_runs["trainable"]) < neuron2_on_v1(paired_runs["fixed"])
    for tr in paired_runs["trainable"]:
        if abs(tr["final_alignment"][1][0]) < 0.3 and tr["t_v2"] is None:
            assert abs(tr["e21_peak"]) > 0.1
