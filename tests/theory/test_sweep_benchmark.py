"""benchmarks/theory_sweep.py: per-seed verdicts from the arms that were run, and its JSON."""

from __future__ import annotations

import json

import pytest


def test_claims_are_scored_only_when_their_arms_ran(load_benchmark):
    sweep = load_benchmark("theory_sweep")
    run = {"t_escape": 0, "t1": 10, "t_v2": None, "t_both": None, "e21_peak": 0.1, "offdiag_peak": 0.1,
           "offdiag_final": 0.1, "final_alignment": [[0.9, 0.0], [0.9, 0.0]]}
    assert set(sweep.per_seed({"trainable": [run]})) == {"C3-theory", "C4"}
    assert set(sweep.per_seed({"fixed": [run]})) == {"C5"}
    assert set(sweep.per_seed({"trainable": [run], "no_bn": [run]})) == {"C3-theory", "C4", "C6"}
    # v2 never learned: C4 fails; every neuron on v1 and none on v2: C5 holds
    verdicts = sweep.per_seed({"trainable": [run], "fixed": [run]})
    assert verdicts["C4"] == [False] and verdicts["C5"] == [True]


def test_sweep_writes_verdicts_and_phases_and_resumes(load_benchmark, tmp_path, monkeypatch, capsys):
    sweep = load_benchmark("theory_sweep")
    out = tmp_path / "sweep.json"
    argv = ["theory_sweep.py", "--preset", "smoke", "--seeds", "2", "--arms", "trainable", "--out", str(out),
            "--set", "short:steps=300"]
    monkeypatch.setattr("sys.argv", argv)
    sweep.main()
    result = json.loads(out.read_text())["short"]
    assert result["arms"] == ["trainable"] and set(result["passes"]) == {"C3-theory", "C4"}
    assert result["config"]["steps"] == 300 and len(result["phases"]) == 2
    assert set(result["phases"][0]) == set(sweep.PHASE_KEYS)
    assert all(len(v) == 2 for v in result["per_seed"].values())
    capsys.readouterr()
    sweep.main()  # same setting, seeds and arms: not run again
    assert "short: cached" in capsys.readouterr().out


def test_bad_setting_is_refused_with_the_expected_form(load_benchmark):
    sweep = load_benchmark("theory_sweep")
    with pytest.raises(Exception, match="NAME:KEY=VALUE"):
        sweep.parse_setting("no-colon")
