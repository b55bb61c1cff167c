"""The ``large`` theory preset: the paper's orderings at GPU size, built and stepped on the CPU.

Its pass rates are not measured on CUDA (docs/theory.md, "The large preset"); these tests check
that it is the regime it claims to be and that every experiment of ``theory all`` can be built
and simulated with it (a few steps), on the CPU and, where one exists, on CUDA.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from solo_offdiag.theory.experiments import IN_ALL, THEORY_PRESETS, base_config, plan_configs
from solo_offdiag.theory.model import simulate_batch


def test_large_preset_has_the_papers_orderings() -> None:
    cfg = base_config("large")
    assert cfg.d >= 512 and cfg.batch_size >= 1024
    assert cfg.activation == "truncated_cubic"  # the plain cubic on raw <w, x>
    assert cfg.eta_E < cfg.eta
    # a slight head start: a few times the typical |cos| 1/sqrt(d) of a random direction
    assert cfg.head_start is not None and cfg.head_start <= 4 / math.sqrt(cfg.d)
    assert max(THEORY_PRESETS["large"]["scaling"]["dims"]) >= 1024


def test_every_experiment_of_all_builds_with_the_large_preset() -> None:
    cfgs = plan_configs(list(IN_ALL) + ["g_sensitivity"], preset="large", seeds=1, seed_offset=5)
    assert {256, 512, 1024, 2048} <= {c.d for c in cfgs}
    assert {c.seed for c in cfgs} >= {5}
    main = plan_configs(["a_trainable_head"], preset="large", seeds=2)
    assert [(c.d, c.batch_size, c.eta_E < c.eta) for c in main] == [(512, 32768, True)] * 2
    # the escape runs at d = 2048 keep the SGD noise's share (~ d^3 / batch) of the default
    # preset's d = 1024 runs, where 95 of 96 tuning runs escaped: twice d, 8x the batch
    esc = {c.d: c.batch_size for c in plan_configs(["e_scaling"], preset="large", seeds=1) if c.m == 1}
    default = {c.d: c.batch_size for c in plan_configs(["e_scaling"], preset="default", seeds=1) if c.m == 1}
    assert esc[2048] == 8 * default[1024]


def _few_steps(device: str) -> tuple[np.ndarray, np.ndarray]:
    base = base_config("large").replace(steps=6, log_every=3, seed=11)
    traj = simulate_batch([base, base.replace(head_trainable=False)], device=device)
    return traj.head, traj.alignment


def test_large_preset_steps_on_cpu() -> None:
    head, align = _few_steps("cpu")
    assert np.isfinite(head).all() and np.isfinite(align).all()
    assert head.shape == (2, 3, 2, 2)
    assert abs(head[0, -1, 1, 0]) > 0  # the trainable head moved
    assert (head[1] == np.eye(2)).all()  # the fixed one did not
    # neuron 1 starts with the preset's slight head start on v1
    assert abs(abs(align[0, 0, 0, 0]) - base_config("large").head_start) < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the large preset is meant for --device cuda)")
def test_large_preset_steps_on_cuda_like_on_cpu() -> None:
    head_cpu, align_cpu = _few_steps("cpu")
    head_gpu, align_gpu = _few_steps("cuda")
    assert np.isfinite(head_gpu).all()
    # same init; the data streams come from different generators on the two devices
    np.testing.assert_allclose(align_gpu[:, 0], align_cpu[:, 0], atol=1e-5)
