"""solo_offdiag.perf: the performance: section, its refusals, and the sync-free LARS."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from solo_offdiag.config.validate import ConfigError
from solo_offdiag.perf import (
    PerformanceConfig,
    SyncFreeLARS,
    apply_performance,
    forbid_host_sync,
    optimizer_kwargs,
    trainer_kwargs,
)


def test_defaults_and_keys():
    cfg = PerformanceConfig.from_mapping(None)
    assert cfg.data_loader == "solo" and cfg.channels_last and not cfg.torch_compile
    assert PerformanceConfig.from_mapping({"cuda_graphs": True, "torch_compile": True}).effective_compile_mode == "reduce-overhead"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"cuda_graphs": True}, "performance.cuda_graphs: got true with performance.torch_compile false"),
        ({"torch_compile": True, "compile_mode": "reduce-overhead"}, "captures CUDA graphs"),
        ({"precision": "bf16"}, "performance.precision: got 'bf16'; allowed: null or one of"),
        ({"data_loader": "dali"}, "performance.data_loader: got 'dali'"),
        ({"presicion": "32"}, "did you mean 'performance.precision'"),
    ],
)
def test_bad_sections_are_refused_with_the_key(section, message):
    with pytest.raises(ConfigError) as err:
        PerformanceConfig.from_mapping(section)
    assert message in str(err.value)


def test_device_checks():
    graphs = PerformanceConfig.from_mapping({"cuda_graphs": True, "torch_compile": True})
    with pytest.raises(ConfigError, match="cuda_graphs: got true on device 'cpu'"):
        graphs.check_device("cpu")
    with pytest.raises(ConfigError, match="16-mixed' on cpu"):
        PerformanceConfig.from_mapping({"precision": "16-mixed"}).check_device("cpu")


def test_trainer_and_optimizer_kwargs():
    cfg = PerformanceConfig.from_mapping({"precision": "bf16-mixed"})
    assert trainer_kwargs(cfg, "16-mixed") == {"benchmark": True, "precision": "bf16-mixed"}
    assert trainer_kwargs(PerformanceConfig(), "32")["precision"] == "32"
    assert optimizer_kwargs(cfg, "adamw", "cuda") == {"fused": True}
    assert optimizer_kwargs(cfg, "lars", "cuda") == {} and optimizer_kwargs(cfg, "sgd", "cpu") == {}


def test_apply_performance_channels_last_and_compile_errors():
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    done = apply_performance(model, PerformanceConfig(), "cpu")
    assert "channels_last" in done and model[0].weight.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ConfigError, match="compile_modules: none of"):
        apply_performance(model, PerformanceConfig.from_mapping({"torch_compile": True}), "cpu")
    with forbid_host_sync():  # a no-op without CUDA
        pass


def _reference_lars_step(params, lr, momentum, wd, eta, eps, clip_lr, exclude, state):
    """solo-learn's LARS update restated with its Python-side branches (one host sync each)."""
    for p in params:
        d_p = p.grad.clone()
        p_norm, g_norm = torch.norm(p), torch.norm(p.grad)
        if p.ndim != 1 or not exclude:
            if p_norm != 0 and g_norm != 0:
                lars_lr = eta * p_norm / (g_norm + p_norm * wd + eps)
                if clip_lr:
                    lars_lr = min(lars_lr / lr, 1)
                d_p = (d_p + wd * p) * lars_lr
        if momentum:
            buf = state.get(id(p))
            state[id(p)] = buf = d_p.clone() if buf is None else buf.mul_(momentum).add_(d_p)
            d_p = buf
        p.data.add_(d_p, alpha=-lr)


@pytest.mark.parametrize("clip_lr", [False, True])
def test_sync_free_lars_equals_solo_lars(clip_lr):
    torch.manual_seed(0)
    shapes = [(6, 5), (6,), (4, 4)]
    ours = [torch.randn(s, requires_grad=True) for s in shapes]
    ours[2].data.zero_()  # a zero-initialised parameter (the off-diagonal head): no trust ratio
    ref = [p.detach().clone().requires_grad_(True) for p in ours]
    kwargs = dict(lr=0.3, momentum=0.9, weight_decay=1e-2, eta=0.02, eps=1e-8, clip_lr=clip_lr)
    opt = SyncFreeLARS(ours, exclude_bias_n_norm=True, **kwargs)
    state: dict = {}
    for _ in range(3):
        grads = [torch.randn(s) for s in shapes]
        for p, q, g in zip(ours, ref, grads):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        _reference_lars_step(ref, kwargs["lr"], 0.9, 1e-2, 0.02, 1e-8, clip_lr, True, state)
        for p, q in zip(ours, ref):
            torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


def test_sync_free_lars_runs_on_meta_without_host_reads():
    p = torch.empty(8, 8, device="meta", requires_grad=True)
    p.grad = torch.empty(8, 8, device="meta")
    SyncFreeLARS([p], lr=0.1, momentum=0.9, weight_decay=1e-5, clip_lr=True).step()


def test_in_place_momentum_update_keeps_storage_and_is_applied_by_apply_performance():
    """solo's MomentumUpdater rebinds mp.data each step (CUDA graphs would read stale storage);
    the replacement writes the same values in place (solo's own class: tests/data/test_solo_parity.py)."""

    class Rebinding:  # solo's update, restated: mp.data = tau * mp.data + (1 - tau) * op.data
        cur_tau = 0.9

        def update(self, online, momentum):
            for op, mp in zip(online.parameters(), momentum.parameters()):
                mp.data = self.cur_tau * mp.data + (1 - self.cur_tau) * op.data

    torch.manual_seed(0)
    online, ours, theirs = nn.Linear(4, 3), nn.Linear(4, 3), nn.Linear(4, 3)
    theirs.load_state_dict(ours.state_dict())
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    model.momentum_updater = Rebinding()
    assert "in-place momentum" in " ".join(apply_performance(model, PerformanceConfig(), "cpu"))
    pointers = [p.data_ptr() for p in ours.parameters()]
    for _ in range(3):
        model.momentum_updater.update(online, ours)
        Rebinding().update(online, theirs)
    assert all(torch.equal(p, q) for p, q in zip(ours.parameters(), theirs.parameters()))
    assert [p.data_ptr() for p in ours.parameters()] == pointers
