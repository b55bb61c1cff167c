"""The hand-written backward of the simulator equals autograd (float64, every switch combination)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from solo_offdiag.theory import TheoryConfig, simulate_batch
from solo_offdiag.theory.model import _sample, gradients, init_state

BASE = TheoryConfig(d=10, batch_size=16, dtype="float64", steps=10, head_start=0.5)
#: arms with different d, BN on/off, stop-gradient on/off, fixed head: one batch covers all paths
ARMS = [BASE, BASE.replace(seed=1, d=7, batch_norm=False), BASE.replace(seed=2, stop_gradient=False),
        BASE.replace(seed=3, batch_norm=False, stop_gradient=False), BASE.replace(seed=4, head_trainable=False)]


@pytest.mark.parametrize("act", ["truncated_cubic", "normalized_cubic"])
@pytest.mark.parametrize("sampler", ["projected", "full"])
@pytest.mark.parametrize("arms", [ARMS, ARMS[:1], [ARMS[2]], BASE.replace(m=5, seed=7, head_start=None)],
                         ids=["mixed", "paper", "no_sg", "m5"])
def test_analytic_gradients_equal_autograd(act: str, sampler: str, arms) -> None:
    arms = arms if isinstance(arms, list) else [arms]
    # truncation 0.4: some |<w, x>| fall beyond it, so both branches of the truncated cubic are hit
    state = init_state([c.replace(sampler=sampler, activation=act, truncation=0.4) for c in arms])
    gen = torch.Generator().manual_seed(0)
    state.A = state.A + 0.3 * torch.randn(state.A.shape, generator=gen, dtype=torch.float64)
    batch = _sample(state)
    loss_a, gW_a, gA_a = gradients(state, batch, "analytic")
    loss_b, gW_b, gA_b = gradients(state, batch, "autograd")
    assert torch.allclose(loss_a, loss_b, rtol=0, atol=1e-10)
    scale = gW_b.abs().max()
    assert scale > 1e-3  # a real gradient, not zeros on both sides
    assert torch.allclose(gW_a, gW_b, rtol=0, atol=1e-10 * max(1.0, float(scale)))
    assert torch.allclose(gA_a, gA_b, rtol=0, atol=1e-10 * max(1.0, float(gA_b.abs().max())))


def test_analytic_and_autograd_runs_agree() -> None:
    cfgs = [c.replace(steps=30, log_every=10) for c in ARMS]
    a = simulate_batch(cfgs, grad="analytic")
    b = simulate_batch(cfgs, grad="autograd")
    assert np.allclose(a.alignment, b.alignment, atol=1e-8) and np.allclose(a.head, b.head, atol=1e-8)


def test_analytic_refuses_unsupported_variants() -> None:
    state = init_state([BASE.replace(ema=0.5)])
    with pytest.raises(ValueError, match="ema=0"):
        gradients(state, _sample(state), "analytic")
    gradients(state, _sample(state))  # "auto" falls back to autograd
