"""SyncFreeLARS and the in-place momentum update against solo-learn's own code (needs solo-learn)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from solo_offdiag.perf import SyncFreeLARS, in_place_momentum_update
from solo_offdiag.solo_adapter.requirements import solo_available

_OK, _WHY = solo_available()
pytestmark = [pytest.mark.solo, pytest.mark.skipif(not _OK, reason=f"solo-learn not usable: {_WHY}")]


def _groups(params):
    w, b, head = params
    return [
        {"params": [w]},  # the defaults
        {"params": [head], "weight_decay": 0.0, "lr": 0.05},  # another lr, no decay
        {"params": [b], "exclude_bias_n_norm": False},  # a 1-D parameter never excluded
    ]


@pytest.mark.parametrize("clip_lr", [False, True])
@pytest.mark.parametrize("exclude", [False, True])
@pytest.mark.parametrize("nesterov", [False, True])
def test_sync_free_lars_equals_solo_lars_over_groups_and_steps(clip_lr, exclude, nesterov):
    from solo.utils.lars import LARS

    torch.manual_seed(0)
    shapes = [(8, 5), (8,), (4, 4)]
    ours = [torch.randn(s, requires_grad=True) for s in shapes]
    ours[2].data.zero_()  # a zero-initialised head: no trust ratio while ||p|| = 0
    theirs = [p.detach().clone().requires_grad_(True) for p in ours]
    kw = dict(lr=0.3, momentum=0.9, weight_decay=1e-2, eta=0.02, eps=1e-8, clip_lr=clip_lr,
              exclude_bias_n_norm=exclude, nesterov=nesterov)  # fmt: skip
    g_ours, g_theirs = _groups(ours), _groups(theirs)
    opt_ours, opt_theirs = SyncFreeLARS(g_ours, **kw), LARS(g_theirs, **kw)
    for step in range(4):
        for p, q in zip(ours, theirs):
            g = torch.randn_like(p) if step != 1 else torch.zeros_like(p)  # a zero gradient step too
            p.grad, q.grad = g.clone(), g.clone()
        opt_ours.step()
        opt_theirs.step()
        for p, q in zip(ours, theirs):
            torch.testing.assert_close(p, q, atol=1e-7, rtol=1e-6)
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(
            opt_ours.state[p]["momentum_buffer"], opt_theirs.state[q]["momentum_buffer"], atol=1e-7, rtol=1e-6
        )


def test_in_place_momentum_update_equals_solos_and_keeps_storage():
    from solo.utils.momentum import MomentumUpdater

    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Linear(5, 3))
    theirs_net, ours_net = copy.deepcopy(online), copy.deepcopy(online)
    for p in ours_net.parameters():
        p.data.mul_(0.5)
    theirs_net.load_state_dict(ours_net.state_dict())
    model = nn.Module()
    model.momentum_updater = MomentumUpdater(0.99, 1.0)
    reference = MomentumUpdater(0.99, 1.0)
    assert in_place_momentum_update(model)
    pointers = [p.data_ptr() for p in ours_net.parameters()]
    for step in range(3):
        with torch.no_grad():
            for p in online.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        model.momentum_updater.update(online, ours_net)
        reference.update(online, theirs_net)
        model.momentum_updater.update_tau(step + 1, 10)
        reference.update_tau(step + 1, 10)
        for p, q in zip(ours_net.parameters(), theirs_net.parameters()):
            assert torch.equal(p, q)
    assert [p.data_ptr() for p in ours_net.parameters()] == pointers
    assert not in_place_momentum_update(nn.Linear(2, 2))


def test_solo_byol_offdiag_trains_in_bf16_true_on_the_gpu_data_path(tmp_path):
    """Issue #11: `precision: bf16-true` with `data_loader: gpu` crashed on the first step (float32
    views, bf16 weights). A real solo training run through our pretrain entry point, on the CPU."""
    import numpy as np
    from PIL import Image

    from solo_offdiag.solo_adapter import pretrain

    rng = np.random.default_rng(0)
    for c in range(5):  # solo's top-5 metric needs >= 5 classes
        (tmp_path / "images" / f"class{c}").mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "images" / f"class{c}" / f"{i}.png")
    images = tmp_path / "images"
    run_dir = pretrain([
        "hardware=cpu", "data.dataset=custom", "data.num_workers=0", "optimizer.batch_size=4",
        "method_kwargs.proj_hidden_dim=32", "method_kwargs.proj_output_dim=16", "method_kwargs.pred_hidden_dim=32",
        "method_kwargs.analysis.enabled=false", "+limit_train_batches=2", "+limit_val_batches=1",
        "+num_sanity_val_steps=0", "+enable_progress_bar=false", "max_epochs=1", "auto_resume.enabled=false",
        f"data.train_path={images}", f"data.val_path={images}", f"checkpoint.dir={tmp_path / 'trained_models'}",
        "performance.data_loader=gpu", "+performance.augment_seed=0", "+performance.precision=bf16-true",
    ])  # fmt: skip
    state = torch.load(sorted(run_dir.glob("*.ckpt"))[-1], map_location="cpu", weights_only=False)
    assert state["global_step"] == 2
    offdiag = state["state_dict"]["predictor.offdiag"]
    assert offdiag.dtype == torch.bfloat16 and torch.isfinite(offdiag.float()).all() and offdiag.abs().sum() > 0
