"""The simulator: invariants (hypothesis), determinism, exactness of the projected noise sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from solo_offdiag.config.validate import ConfigError
from solo_offdiag.theory import TheoryConfig, simulate, simulate_batch
from solo_offdiag.theory.model import (
    _sample,
    complementary_masks,
    gradients,
    init_state,
    view_counts_pmf,
)

SMALL = TheoryConfig(d=16, steps=40, log_every=10, batch_size=32, dtype="float64")


@settings(max_examples=30, deadline=None)
@given(patches=st.integers(2, 12), data=st.data())
def test_complementary_masks_partition_patches(patches: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(1, patches - 1))
    n1 = torch.tensor(data.draw(st.lists(st.integers(max(0, k - (patches - patches // 2)), min(k, patches // 2)),
                                         min_size=1, max_size=5)))
    view1 = complementary_masks(n1, patches, k)
    view2 = 1 - view1
    assert torch.all((view1 + view2) == 1)
    assert torch.all(view1.sum(-1) == patches // 2)  # view 1 is exactly half the patches
    assert torch.all(view1[:, :k].sum(-1) == n1)  # with n1 of the feature patches


def test_view_count_law_is_hypergeometric_and_sampled_so() -> None:
    pmf = view_counts_pmf(8, 4)
    assert abs(sum(pmf) - 1) < 1e-12 and abs(pmf[2] - 36 / 70) < 1e-12
    state = init_state([SMALL.replace(batch_size=4096)])
    n1 = _sample(state)["n1"].flatten().numpy()
    freq = np.bincount(n1, minlength=5) / n1.size
    assert np.allclose(freq, pmf, atol=0.03)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 1000))
def test_deterministic_for_a_seed(seed: int) -> None:
    a = simulate(SMALL.replace(seed=seed))
    b = simulate(SMALL.replace(seed=seed))
    assert np.array_equal(a.alignment, b.alignment) and np.array_equal(a.head, b.head)


def test_shapes_and_batch_over_dims_keeps_padding_zero() -> None:
    cfgs = [SMALL.replace(d=8), SMALL.replace(d=16, seed=3), SMALL.replace(d=12, head_trainable=False)]
    traj = simulate_batch(cfgs)
    T = len(traj.steps)
    assert traj.alignment.shape == (3, T, 2, 2) and traj.head.shape == (3, T, 2, 2)
    assert traj.loss.shape == (3, T) and np.all(np.isfinite(traj.loss))
    state = init_state(cfgs)
    for _ in range(5):
        from solo_offdiag.theory.model import sgd_step

        sgd_step(state)
    assert torch.all(state.W[0, :, 8:] == 0) and torch.all(state.W[2, :, 12:] == 0)
    assert np.all(traj.head[2] == np.eye(2))  # fixed head never moves


def test_structural_mismatch_is_rejected_with_the_field_name() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        simulate_batch([SMALL, SMALL.replace(batch_size=8)])


def test_config_validation_names_key_value_and_allowed() -> None:
    with pytest.raises(ConfigError, match=r"p_weak: got 1.5; allowed: in \(0, 1\)"):
        TheoryConfig(p_weak=1.5)
    with pytest.raises(ConfigError, match="unknown key 'alpah1'; did you mean 'alpha1'"):
        TheoryConfig.from_dict({"alpah1": 1.0})


def test_projected_sampler_has_the_law_of_the_full_sampler() -> None:
    """Mean and second moment of the stochastic gradient agree between the two samplers."""
    cfg = TheoryConfig(d=12, batch_size=16, dtype="float64", noise_std=0.5, head_start=0.5)
    grads = {}
    arms = 50  # independent data streams (seeds) evaluated at one common state: 30 steps x 50 arms
    for sampler in ("full", "projected"):
        state = init_state([cfg.replace(sampler=sampler, seed=s) for s in range(arms)])
        state.W = state.W[:1].expand_as(state.W).clone()  # the same weights in every arm
        state.A = state.A + 0.3 * state.consts["offdiag_mask"]  # a non-trivial head
        gs = []
        for _ in range(30):
            _, gW, gA = gradients(state, _sample(state))
            gs.append(torch.cat([gW.flatten(1), gA.flatten(1)], dim=1))
        grads[sampler] = torch.cat(gs)
    full, proj = grads["full"], grads["projected"]
    se = torch.sqrt(full.var(0) / full.shape[0] + proj.var(0) / proj.shape[0]) + 1e-12
    z = (full.mean(0) - proj.mean(0)) / se
    assert z.abs().max() < 5.0
    # total variance, including the part orthogonal to the weights that the projected sampler draws
    v_full, v_proj = full.var(0).sum(), proj.var(0).sum()
    assert abs(v_full / v_proj - 1) < 0.15


def test_an_arm_does_not_depend_on_the_rest_of_its_batch() -> None:
    """Per-seed data streams: the same config alone or beside other arms gives the same run, and
    arms differing only in a switch see the same samples (paired comparisons)."""
    cfg = SMALL.replace(seed=5, steps=20, log_every=5)
    alone = simulate(cfg)
    batch = simulate_batch([cfg.replace(seed=1, d=24), cfg, cfg.replace(head_trainable=False)])
    assert np.allclose(batch.alignment[1], alone.alignment, atol=1e-9)
    assert np.allclose(batch.head[1], alone.head, atol=1e-9)
    assert np.array_equal(batch.alignment[2][0], alone.alignment[0])  # same init under a switch


def test_balanced_init_gives_neuron_2_no_preference() -> None:
    state = init_state([SMALL.replace(seed=s, head_start=0.4) for s in range(4)])
    W = state.W.double()
    cos = W[..., :2] / W.norm(dim=-1, keepdim=True)
    assert torch.allclose(cos[:, 0, 0].abs(), torch.full((4,), 0.4, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(cos[:, 1, 0].abs(), cos[:, 1, 1].abs())
    raw = init_state([SMALL.replace(seed=s, head_start=0.4, init_balance=False) for s in range(4)]).W
    assert not torch.allclose(raw[:, 1, 0].abs(), raw[:, 1, 1].abs())


def test_balanced_init_scale_typical_or_the_draws_rms() -> None:
    """'typical': neuron 2's feature components are exactly the init std (no lottery of their
    size); 'rms': the RMS of its two Gaussian draws, which varies from seed to seed."""
    cfgs = [SMALL.replace(seed=s, head_start=0.4) for s in range(8)]
    typical = init_state(cfgs).W.double()
    assert torch.allclose(typical[:, 1, :2].abs(), torch.full((8, 2), SMALL.effective_init_std, dtype=torch.float64))
    raw = init_state([c.replace(init_balance=False) for c in cfgs]).W.double()
    rms = init_state([c.replace(init_balance_scale="rms") for c in cfgs]).W.double()
    assert torch.allclose(rms[:, 1, :2].abs(), raw[:, 1, :2].pow(2).mean(-1, keepdim=True).sqrt().expand(8, 2))
    assert rms[:, 1, 0].abs().std() > 0.1 * SMALL.effective_init_std
    # the head-start neuron's v2 component is typical too (a large draw made neuron 1 learn v2
    # instead of v1 in 2 of 64 escape runs); its v1 component is the head start
    assert torch.allclose(typical[:, 0, 1].abs(), torch.full((8,), SMALL.effective_init_std, dtype=torch.float64))
    assert torch.equal(rms[:, 0, 1], raw[:, 0, 1])
    cos1 = typical[:, 0, 0].abs() / typical[:, 0].norm(dim=-1)
    assert torch.allclose(cos1, torch.full((8,), 0.4, dtype=torch.float64), atol=1e-6)
    # the rest of the neurons does not depend on the scale
    assert torch.equal(typical[:, :, 2:], rms[:, :, 2:]) and torch.equal(typical[:, 1, 2:], raw[:, 1, 2:])


def test_a_run_prefix_does_not_depend_on_its_length() -> None:
    """Samples are pre-drawn in chunks of a constant size: the first k steps of a longer run equal
    a k-step run (the direction tests cut the default runs short relying on this)."""
    short = simulate(SMALL.replace(steps=70, log_every=10))
    long = simulate(SMALL.replace(steps=150, log_every=10))
    k = len(short.steps)
    assert np.array_equal(short.alignment, long.alignment[:k]) and np.array_equal(short.head, long.head[:k])
