"""Criteria and phase detector: accept the predicted outcome, reject wrong ones."""

from __future__ import annotations

import numpy as np

from solo_offdiag.theory import criteria
from solo_offdiag.theory.model import Trajectory
from solo_offdiag.theory.phases import detect_phases


def _run(final, peak=0.5, final_off=0.05, pos=0.4, t_v2=100, t_both=100):
    return {"final_alignment": final, "offdiag_peak": peak, "offdiag_final": final_off,
            "offdiag_peak_position": pos, "t_v2": t_v2, "t_both": t_both}


SEPARATED = [[0.99, 0.0], [0.0, 0.98]]
COLLAPSED = [[0.99, 0.0], [-0.97, 0.05]]


def test_c4_accepts_separation_and_rejects_collapse() -> None:
    good = {"arms": {"trainable": {"runs": [_run(SEPARATED)] * 4}}}
    bad = {"arms": {"trainable": {"runs": [_run(COLLAPSED)] * 4}}}
    no_return = {"arms": {"trainable": {"runs": [_run(SEPARATED, final_off=0.45)] * 4}}}
    assert criteria.check_c4(good).passed
    assert not criteria.check_c4(bad).passed
    assert not criteria.check_c4(no_return).passed


def test_c5_rejects_a_run_that_learned_v2() -> None:
    assert criteria.check_c5({"arms": {"fixed": {"runs": [_run(COLLAPSED)] * 4}}}).passed
    assert not criteria.check_c5({"arms": {"fixed": {"runs": [_run(SEPARATED)] * 4}}}).passed


def test_ablation_criteria_need_the_predicted_direction() -> None:
    summ = {"arms": {"full": {"runs": [_run(SEPARATED, t_v2=100, t_both=100)] * 3},
                     "no_bn": {"runs": [_run(COLLAPSED, t_v2=None)] * 3},
                     "no_stop_gradient": {"runs": [_run(SEPARATED, t_both=120)] * 3}}}
    assert criteria.check_c6(summ).passed
    assert not criteria.check_c7(summ).passed  # only 1.2x later: not "breaks"
    # an ablation that is *faster* must fail
    summ["arms"]["no_bn"]["runs"] = [_run(SEPARATED, t_v2=50)] * 3
    assert not criteria.check_c6(summ).passed


def test_c8_and_c3_thresholds() -> None:
    ok = {"scaling": {"t1_slope": 2.1, "peak_slope": 0.9, "substitution_over_t1": 0.2}}
    assert criteria.check_c8(ok).passed
    assert not criteria.check_c8({"scaling": {**ok["scaling"], "t1_slope": 1.0}}).passed
    assert not criteria.check_c8({"scaling": {**ok["scaling"], "peak_slope": -0.5}}).passed
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
    assert ph["t1"] == 160 and ph["t1_neuron"] == 0
    assert ph["t_v2"] == 560 and ph["t_v2_neuron"] == 1 and ph["t_both"] == 560
    assert ph["t_sub_peak"] == 300 and abs(ph["e21_peak"] - 0.4) < 1e-12
    assert ph["t_return"] is not None and 300 < ph["t_return"] < 400
    assert ph["v1_neurons"] == [0] and ph["v2_neurons"] == [1]
