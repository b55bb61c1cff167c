"""Criteria and phase detector: accept the predicted outcome, reject wrong ones."""

from __future__ import annotations

import numpy as np

from solo_offdiag.theory import criteria
from solo_offdiag.theory.model import Trajectory
from solo_offdiag.theory.phases import detect_phases


def _run(final, peak=0.5, final_off=0.05, pos=0.4, t_v2=100, t_both=100, t_esc=40, t_sub=60, t_ret=300,
         seed=0, v2_neuron=1):
    return {"final_alignment": final, "offdiag_peak": peak, "offdiag_final": final_off,
            "offdiag_peak_position": pos, "t_v2": t_v2, "t_both": t_both, "t_escape": t_esc, "t_sub_peak": t_sub,
            "t_offdiag_peak": t_sub, "t_return": t_ret, "seed": seed, "t1_neuron": 0, "t_v2_neuron": v2_neuron}


SEPARATED = [[0.99, 0.0], [0.0, 0.98]]
COLLAPSED = [[0.99, 0.0], [-0.97, 0.05]]


def test_c4_accepts_separation_and_rejects_collapse() -> None:
    good = {"arms": {"trainable": {"runs": [_run(SEPARATED)] * 4}}}
    bad = {"arms": {"trainable": {"runs": [_run(COLLAPSED)] * 4}}}
    no_return = {"arms": {"trainable": {"runs": [_run(SEPARATED, final_off=0.45)] * 4}}}
    assert criteria.check_c4(good).passed
    assert not criteria.check_c4(bad).passed
    assert not criteria.check_c4(no_return).passed
    # the phase order: E21 peaking before neuron 1 has escaped, or after v2 is learned, or v2
    # learned by the v1 neuron, is not the paper's sequence
    for bad_order in (_run(SEPARATED, t_esc=80, t_sub=60), _run(SEPARATED, t_sub=120), _run(SEPARATED, v2_neuron=0)):
        assert not criteria.check_c4({"arms": {"trainable": {"runs": [bad_order] * 4}}}).passed
    assert not criteria.check_c4({"arms": {"trainable": {"runs": [_run(SEPARATED, t_ret=None)] * 4}}}).passed


def test_k_of_n_threshold_and_wilson_bound() -> None:
    # k = the largest count a 90%-true claim reaches with probability >= 99%
    for n in (1, 2, 4, 8, 16, 24, 64):
        k = criteria.required_passes(n)
        assert criteria.binomial_pass_probability(n, k, 0.9) >= 0.99
        assert k == n or criteria.binomial_pass_probability(n, k + 1, 0.9) < 0.99
    assert criteria.required_passes(8) == 5 and criteria.required_passes(16) == 11
    # Wilson: 0/n and n/n bounds, and the textbook value for 9/10 (0.596)
    assert criteria.wilson_lower(0, 10) == 0.0 and criteria.wilson_lower(10, 10) > 0.69
    assert abs(criteria.wilson_lower(9, 10) - 0.5958) < 1e-3
    four_of_eight = {"arms": {"fixed": {"runs": [_run(COLLAPSED)] * 4 + [_run(SEPARATED)] * 4}}}
    res = criteria.check_c5(four_of_eight)
    assert not res.passed and res.measured["passes"] == 4 and res.threshold["k_required"] == 5


def test_c5_rejects_a_run_that_learned_v2() -> None:
    assert criteria.check_c5({"arms": {"fixed": {"runs": [_run(COLLAPSED)] * 4}}}).passed
    assert not criteria.check_c5({"arms": {"fixed": {"runs": [_run(SEPARATED)] * 4}}}).passed


def test_ablation_criteria_need_the_predicted_direction() -> None:
    summ = {"arms": {"full": {"runs": [_run(SEPARATED, t_v2=100, t_both=100)] * 3},
                     "no_bn": {"runs": [_run(COLLAPSED, t_v2=None)] * 3},
                     "no_stop_gradient": {"runs": [_run(SEPARATED, t_both=120)] * 3}}}
    assert criteria.check_c6(summ).passed
    assert not criteria.check_c7(summ).passed  # only 1.2x later: not "breaks"
    # paired per seed: one seed where the ablation is as fast does not hide behind a median
    summ["arms"]["no_bn"]["runs"] = [_run(COLLAPSED, t_v2=None)] * 2 + [_run(SEPARATED, t_v2=100)]
    assert criteria.check_c6(summ).measured["passes"] == 2
    # an ablation that is *faster* must fail
    summ["arms"]["no_bn"]["runs"] = [_run(SEPARATED, t_v2=50)] * 3
    assert not criteria.check_c6(summ).passed


def _rep(slope=2.0, eta_ratio=2.0, sub=0.2):
    return {"t1_slope_ok": abs(slope - 2) <= 0.5, "eta_ratio_ok": 2 / 1.35 <= eta_ratio <= 2.7,
            "substitution_ok": sub <= 0.5}


def test_c8_per_seed_and_peak_slope() -> None:
    sc = {"t1_slope": 2.0, "peak_slope": 0.9, "peak_slope_usable": True, "interior_peaks": 24, "peak_runs": 24}
    assert criteria.check_c8({"scaling": {**sc, "replicates": [_rep()] * 8}}).passed
    # the slope of the median escape times must be near 2 (1.0 = the d-independent finish)
    assert not criteria.check_c8({"scaling": {**sc, "t1_slope": 1.0, "replicates": [_rep()] * 8}}).passed
    # a good slope over the d that have a median fails when some d has none (half never escaped)
    assert not criteria.check_c8({"scaling": {**sc, "t1_median_every_d": False, "replicates": [_rep()] * 8}}).passed
    # T1 not proportional to 1/eta in 4 of 8 seeds: fail
    assert not criteria.check_c8({"scaling": {**sc, "replicates": [_rep()] * 4 + [_rep(eta_ratio=1.0)] * 4}}).passed
    assert not criteria.check_c8({"scaling": {**sc, "replicates": [_rep(sub=0.9)] * 8}}).passed
    # a wrong peak slope fails only when the interior peaks make it usable
    bad_peak = {**sc, "peak_slope": -0.5, "replicates": [_rep()] * 8}
    assert not criteria.check_c8({"scaling": bad_peak}).passed
    assert criteria.check_c8({"scaling": {**bad_peak, "peak_slope_usable": False}}).passed


def test_c3_thresholds() -> None:
    rising = {"arms": {"trainable": {"runs": [_run(SEPARATED, peak=0.5, final_off=0.49, pos=0.99)] * 4}}}
    assert not criteria.check_c3_offdiag(rising).passed
    assert criteria.check_c3_offdiag({"arms": {"trainable": {"runs": [_run(SEPARATED)] * 4}}}).passed


def test_phase_detector_on_a_synthetic_trajectory() -> None:
    steps = np.arange(0, 1001, 10)
    T = len(steps)
    align = np.zeros((T, 2, 2))
    align[:, 0, 0] = np.clip(steps / 200, 0, 1)  # neuron 1 learns v1 at ~160
    align[:, 1, 1] = np.clip((steps - 400) / 200, 0, 1)  # neuron 2 learns v2 at ~560
    head = np.tile(np.eye(2), (T, 1, 1))
    head[:, 1, 0] = 0.4 * np.exp(-(((steps - 300) / 80.0) ** 2))  # rise and fall, peak at 300
    traj = Trajectory(steps=steps, alignment=align, head=head, loss=np.zeros(T), weight_norm=np.ones((T, 2)))
    ph = detect_phases(traj)
    assert ph["t1"] == 160 and ph["t1_neuron"] == 0 and ph["t_escape"] == 60  # |cos| 0.3 at step 60
    assert ph["e21_peak_interior"]
    assert ph["t_v2"] == 560 and ph["t_v2_neuron"] == 1 and ph["t_both"] == 560
    assert ph["t_sub_peak"] == 300 and abs(ph["e21_peak"] - 0.4) < 1e-12
    assert ph["t_return"] is not None and 300 < ph["t_return"] < 400
    assert ph["v1_neurons"] == [0] and ph["v2_neurons"] == [1]
