"""Phase detector for a simulated trajectory: T1, the substitution peak of E21, T_v2, return of E.

The phases of paper.md section 2 ("Predicted dynamics"), located on the logged alignments and
head matrices of one run. All times are SGD steps (``None`` when the event never happens within
the run). Thresholds are named constants so that figures, summaries and criteria agree.

Examples:
    >>> import numpy as np
    >>> from solo_offdiag.theory import TheoryConfig, simulate
    >>> phases = detect_phases(simulate(TheoryConfig(d=8, steps=50, log_every=10)))
    >>> sorted(phases)[:3]
    ['e21_final', 'e21_peak', 'final_alignment']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from solo_offdiag.theory.model import Trajectory

__all__ = ["ESCAPE", "INTERIOR_FALL", "LEARNED", "RETURN_FRACTION", "UNLEARNED", "detect_phases",
           "first_step"]

#: |cos(w_j, v_l)| at or above which feature l counts as learned by neuron j. A random direction
#: in R^d has |cos| ~ 1/sqrt(d) (<= 0.18 for d >= 32), so 0.8 is far outside chance.
LEARNED = 0.8
#: |cos| below which a feature counts as *not* learned (used for "v2 unlearned").
UNLEARNED = 0.3
#: ``||E - I||_F`` back at or below this fraction of its peak = "E returned towards I".
RETURN_FRACTION = 0.5
#: |cos(w_1, v_1)| at which neuron 1 has *escaped* the random-init regime (|cos| ~ 1/sqrt(d)):
#: the end of phase I in the theorem's sense (the d-dependent part of the growth; the finish
#: from 0.3 to ``LEARNED`` takes a d-independent number of steps). T1 of C8 is this time.
ESCAPE = 0.3
#: An E21 peak is *interior* (a rise and fall, not a value frozen at the end of the run) when it
#: lies before the last 10% of the run and |E21| ends at most this fraction of it.
INTERIOR_FALL = 0.8


def first_step(steps: np.ndarray, mask: np.ndarray, after: int | None = None) -> int | None:
    """The first logged step where ``mask`` holds (at or after step ``after``), else ``None``."""
    ok = mask if after is None else mask & (steps >= after)
    idx = np.flatnonzero(ok)
    return int(steps[idx[0]]) if idx.size else None


def detect_phases(
    traj: Trajectory, learned: float = LEARNED, return_fraction: float = RETURN_FRACTION
) -> dict[str, Any]:
    """Phase times and values of one (unbatched) trajectory, as a JSON-ready dict.

    Keys: ``t1`` (first step some neuron has learned v1) and ``t1_neuron``; ``t_escape`` (first
    step neuron 1 has |cos(w_1, v_1)| >= ``ESCAPE``: the escape time T1 of C8); ``t_v2`` and
    ``t_v2_neuron`` (the same for v2); ``t_both`` (first step with v1 and v2 learned by different
    neurons); ``e21_peak`` (signed E21 = E[1, 0] at max |E21|) and
    ``t_sub_peak``, ``e21_peak_interior`` (see ``INTERIOR_FALL``); ``t_sub_10``/``t_sub_90`` (first steps |E21| reaches 10%/90% of its peak) and
    ``substitution_duration = t_sub_90 - t_sub_10``; ``offdiag_peak``/``t_offdiag_peak`` of
    ``||E - I||_F`` and ``offdiag_peak_position`` (its time as a fraction of the run);
    ``t_return`` (first step after the peak with ``||E - I||_F <= return_fraction * peak``);
    ``offdiag_final``, ``e21_final``, ``final_alignment`` ([m][2]) and ``v1_neurons`` /
    ``v2_neurons`` (neurons that end with the feature learned).
    """
    if traj.batched:
        raise ValueError("detect_phases: pass one arm (traj.arm(i))")
    steps = traj.steps
    align = np.abs(traj.alignment)  # [T, m, 2]
    best_v1 = align[:, :, 0].max(axis=1)
    best_v2 = align[:, :, 1].max(axis=1)
    t1 = first_step(steps, best_v1 >= learned)
    t_escape = first_step(steps, align[:, 0, 0] >= ESCAPE)
    t_v2 = first_step(steps, best_v2 >= learned)
    # both features learned by *different* neurons (for m >= 2)
    v1_ok, v2_ok = align[:, :, 0] >= learned, align[:, :, 1] >= learned
    n_v1, n_v2 = v1_ok.sum(axis=1), v2_ok.sum(axis=1)
    n_both = (v1_ok & v2_ok).sum(axis=1)
    separated = (n_v1 >= 1) & (n_v2 >= 1) & ((n_v1 + n_v2 - n_both) >= 2)
    t_both = first_step(steps, separated)

    def neuron_at(t: int | None, feature: int) -> int | None:
        if t is None:
            return None
        k = int(np.searchsorted(steps, t))
        return int(align[k, :, feature].argmax())

    m = traj.head.shape[-1]
    e21 = traj.head[:, 1, 0] if m > 1 else np.zeros(len(steps))
    k_peak = int(np.abs(e21).argmax())
    peak = float(np.abs(e21[k_peak]))
    off = traj.offdiag_norm
    k_off = int(off.argmax())
    off_peak = float(off[k_off])
    if peak > 0:
        t10 = first_step(steps, np.abs(e21) >= 0.1 * peak)
        t90 = first_step(steps, np.abs(e21) >= 0.9 * peak)
    else:
        t10 = t90 = None
    t_return = (
        first_step(steps, off <= return_fraction * off_peak, after=int(steps[k_off]))
        if off_peak > 0 else None
    )
    final = align[-1]
    span = max(int(steps[-1] - steps[0]), 1)
    interior = bool(peak > 0 and (steps[k_peak] - steps[0]) / span < 0.9
                    and abs(e21[-1]) <= INTERIOR_FALL * peak)
    return {
        "t1": t1,
        "t_escape": t_escape,
        "t1_neuron": neuron_at(t1, 0),
        "t_v2": t_v2,
        "t_v2_neuron": neuron_at(t_v2, 1),
        "t_both": t_both,
        "e21_peak": float(e21[k_peak]),
        "t_sub_peak": int(steps[k_peak]),
        "e21_peak_interior": interior,
        "t_sub_10": t10,
        "t_sub_90": t90,
        "substitution_duration": (t90 - t10) if (t10 is not None and t90 is not None) else None,
        "offdiag_peak": off_peak,
        "t_offdiag_peak": int(steps[k_off]),
        "offdiag_peak_position": float((steps[k_off] - steps[0]) / span),
        "t_return": t_return,
        "offdiag_final": float(off[-1]),
        "e21_final": float(e21[-1]),
        "final_alignment": traj.alignment[-1].tolist(),
        "v1_neurons": [int(j) for j in np.flatnonzero(final[:, 0] >= learned)],
        "v2_neurons": [int(j) for j in np.flatnonzero(final[:, 1] >= learned)],
        "steps": int(steps[-1]),
    }
