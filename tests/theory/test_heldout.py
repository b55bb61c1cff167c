"""Statistical tests of the theory claims on seeds never used to choose parameters (2000-2015).

The default parameters were chosen on seeds 0-63 (docs/theory.md); the held-out report blocks of
the current default are 10000-10063 and 11000-11063 (5000, 7000, 8000 and 9000 were spent on
earlier models and a rejected candidate). Here C3 (theory side), C4, C5, C6 and C7 run at the default preset on 16 other seeds
with the artifact's own k-of-n rule (``criteria.required_passes(16) = 11``): a claim that holds in
90% of seeds passes with probability 0.997, so each test fails by bad luck with probability 0.003;
it fails with probability 0.34 if the per-seed rate dropped to 70%, 0.67 at 60% and 0.89 at 50%.
Paired arms share seeds and samples, as in the experiments. C8 runs ``e_scaling`` at the default
preset on seeds 2000-2007 (its escape runs on 2000-2015) with its own rule (5 of 8 per seed, and
the slopes of the medians).
"""

from __future__ import annotations

import pytest

from solo_offdiag.theory import criteria
from solo_offdiag.theory.experiments import base_config, compute_experiment
from solo_offdiag.theory.model import seeds_of, simulate_batch
from solo_offdiag.theory.phases import detect_phases

pytestmark = pytest.mark.slow
HELD_OUT = 2000
N = 16
ARMS = {"trainable": {}, "fixed": {"head_trainable": False}, "no_bn": {"batch_norm": False},
        "no_stop_gradient": {"stop_gradient": False}}


@pytest.fixture(scope="module")
def summary() -> dict:
    base = base_config("default").replace(seed=HELD_OUT)
    arms = {arm: seeds_of(base.replace(**switch), N) for arm, switch in ARMS.items()}
    traj = simulate_batch([c for v in arms.values() for c in v])
    out, k = {}, 0
    for arm, v in arms.items():
        runs = []
        for cfg in v:
            r = detect_phases(traj.arm(k))
            r["seed"] = cfg.seed
            runs.append(r)
            k += 1
        out[arm] = {"runs": runs}
    out["full"] = out["trainable"]
    return {"arms": out}


@pytest.mark.parametrize("check", ["check_c4", "check_c3_offdiag", "check_c5", "check_c6", "check_c7"])
def test_claim_holds_on_held_out_seeds(summary: dict, check: str) -> None:
    res = getattr(criteria, check)(summary)
    assert res.measured["n"] == N and res.threshold["k_required"] == criteria.required_passes(N) == 11
    assert res.threshold["pass_probability_at_target"] >= criteria.CONFIDENCE
    assert res.passed, res.detail


def test_c8_holds_on_held_out_seeds() -> None:
    res = compute_experiment("e_scaling", seeds=8, seed_offset=HELD_OUT, progress=False).summary["criteria"]["C8"]
    assert res["threshold"]["k_required"] == criteria.required_passes(8) == 5
    assert res["measured"]["peak_slope_used"], res["detail"]
    assert res["status"] == "PASS", res["detail"]
