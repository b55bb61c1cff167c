"""byol_offdiag / simsiam_offdiag as solo-learn methods: shapes, init, param groups, training."""

from __future__ import annotations

import sys

import pytest
import torch

from solo_offdiag.heads import list_heads

pytestmark = pytest.mark.solo

HEAD_DIM = 16


def _batch(n: int = 4, size: int = 32, crops: int = 2) -> list:
    return [torch.arange(n), [torch.randn(n, 3, size, size) for _ in range(crops)], torch.randint(0, 10, (n,))]


def test_registered_names(registered_methods):
    from solo.methods import METHODS

    assert set(registered_methods) == {"byol_offdiag", "simsiam_offdiag"}
    for name, cls in registered_methods.items():
        assert METHODS[name] is cls


@pytest.mark.parametrize("dataset,size", [("cifar10", 32), ("imagenet100", 64)])
def test_byol_forward_shapes(registered_methods, solo_cfg, dataset, size):
    cfg = solo_cfg(dataset=dataset)
    model = registered_methods["byol_offdiag"](cfg)
    x = torch.randn(4, 3, size, size)
    out = model(x)
    assert out["logits"].shape == (4, 10)
    assert out["feats"].shape == (4, model.features_dim)
    assert out["z"].shape == out["p"].shape == (4, HEAD_DIM)
    momentum = model.momentum_forward(x)
    assert momentum["feats"].shape == (4, model.features_dim) and momentum["z"].shape == (4, HEAD_DIM)
    multicrop = model.multicrop_forward(torch.randn(4, 3, size // 2, size // 2))
    assert multicrop["z"].shape == multicrop["p"].shape == (4, HEAD_DIM)
    assert model.predictor is model.prediction_head
    # the off-diagonal head starts at the identity: p == z
    torch.testing.assert_close(out["p"], out["z"])


def test_simsiam_forward_shapes(registered_methods, solo_cfg):
    model = registered_methods["simsiam_offdiag"](solo_cfg("simsiam_offdiag"))
    out = model(torch.randn(4, 3, 32, 32))
    assert out["z"].shape == out["p"].shape == (4, HEAD_DIM)
    assert isinstance(model.projector[-1], torch.nn.BatchNorm1d) and not model.projector[-1].affine


@pytest.mark.parametrize("kind", list_heads())
@pytest.mark.parametrize("method", ["byol_offdiag", "simsiam_offdiag"])
def test_every_head_kind_trains_one_step(registered_methods, solo_cfg, make_loaders, make_trainer, method, kind):
    from solo_offdiag.heads import HEADS

    model = registered_methods[method](solo_cfg(method, predictor={"kind": kind}))
    assert isinstance(model.prediction_head, HEADS[kind])
    train, val = make_loaders()
    make_trainer(limit_train_batches=1, limit_val_batches=1).fit(model, train, val)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log()`")
def test_training_step_returns_loss_and_detached_embeddings(registered_methods, solo_cfg):
    model = registered_methods["byol_offdiag"](solo_cfg())
    # outside fit, solo's self.log calls only warn
    batch = _batch()
    out = model.training_step(batch, 0)
    assert set(out) == {"loss", "z", "feats"}
    assert out["loss"].requires_grad and out["loss"].ndim == 0
    assert out["z"].shape == (4, HEAD_DIM) and not out["z"].requires_grad
    assert out["feats"].shape == (4, model.features_dim) and not out["feats"].requires_grad
    # z and feats are the online outputs of the FIRST large view (train-mode BN: per-view batch
    # statistics, as in the training step), not of the second one
    fmt = torch.preserve_format if model.no_channel_last else torch.channels_last  # as solo does
    with torch.no_grad():
        feats = [model.backbone(view.to(memory_format=fmt)) for view in batch[1]]
        z = [model.projector(f) for f in feats]
    assert torch.allclose(out["feats"], feats[0], atol=1e-4)
    assert torch.allclose(out["z"], z[0], atol=1e-4)
    assert not torch.allclose(out["z"], z[1], atol=1e-2)


def test_validation_step_adds_embeddings_but_not_to_solo_outputs(registered_methods, solo_cfg):
    model = registered_methods["byol_offdiag"](solo_cfg())
    out = model.validation_step((torch.randn(4, 3, 32, 32), torch.arange(4)), 0)
    assert out["z"].shape == (4, HEAD_DIM) and out["feats"].shape == (4, model.features_dim)
    assert not out["z"].requires_grad
    assert {"val_loss", "val_acc1", "batch_size"} <= set(out)
    assert "z" not in model.validation_step_outputs[-1]


@pytest.mark.parametrize("method,solo_name", [("byol_offdiag", "byol"), ("simsiam_offdiag", "simsiam")])
def test_init_identical_to_solo_for_same_seed(registered_methods, solo_cfg, method, solo_name):
    from lightning.pytorch import seed_everything
    from solo.methods import METHODS

    seed_everything(7)
    ours = registered_methods[method](solo_cfg(method)).state_dict()
    seed_everything(7)
    theirs = METHODS[solo_name](solo_cfg(solo_name)).state_dict()
    shared = [k for k in theirs if not k.startswith("predictor.")]
    assert any(k.startswith("projector.") for k in shared) and any(k.startswith("backbone.") for k in shared)
    for key in shared:
        torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0, msg=key)
    assert not any(k.startswith("prediction_head.") for k in ours)  # the head is stored once


def _groups(model):
    optimizer = model.configure_optimizers()
    if isinstance(optimizer, tuple):
        optimizer = optimizer[0][0]
    return {g["name"]: g for g in optimizer.param_groups}, optimizer


@pytest.mark.parametrize("optimizer", ["lars", "sgd", "adam", "adamw"])
def test_predictor_group_reaches_optimizer(registered_methods, solo_cfg, optimizer):
    cfg = solo_cfg(optimizer=optimizer, predictor={"lr": 0.003, "weight_decay": 0.0})
    cfg.scheduler.name = "none"
    if optimizer.startswith("adam"):
        cfg.optimizer.kwargs = {}
    model = registered_methods["byol_offdiag"](cfg)
    groups, _ = _groups(model)
    head = groups["predictor"]
    assert head["lr"] == 0.003 and head["weight_decay"] == 0.0
    assert [id(p) for p in head["params"]] == [id(model.prediction_head.offdiag)]
    assert groups["backbone"]["lr"] == pytest.approx(0.3)
    assert groups["backbone"]["weight_decay"] == pytest.approx(1e-5)


def test_predictor_group_defaults_to_global_settings(registered_methods, solo_cfg):
    cfg = solo_cfg()
    cfg.scheduler.name = "none"
    groups, _ = _groups(registered_methods["byol_offdiag"](cfg))
    assert groups["predictor"]["lr"] == pytest.approx(0.3)
    assert groups["predictor"]["weight_decay"] == pytest.approx(1e-5)


def test_exclude_bias_n_norm_wd_keeps_head_matrix_decayed(registered_methods, solo_cfg):
    cfg = solo_cfg(predictor={"kind": "mlp", "weight_decay": 1e-3, "lr": 0.01})
    cfg.scheduler.name = "none"
    cfg.optimizer.exclude_bias_n_norm_wd = True
    groups, _ = _groups(registered_methods["byol_offdiag"](cfg))
    assert groups["predictor"]["weight_decay"] == 1e-3 and groups["predictor"]["lr"] == 0.01
    assert all(p.ndim == 2 for p in groups["predictor"]["params"])
    assert groups["predictor_no_decay"]["weight_decay"] == 0 and groups["predictor_no_decay"]["lr"] == 0.01


def test_parameterless_head_has_no_group(registered_methods, solo_cfg):
    cfg = solo_cfg(predictor={"kind": "identity"})
    cfg.scheduler.name = "none"
    groups, _ = _groups(registered_methods["byol_offdiag"](cfg))
    assert "predictor" not in groups


def test_simsiam_head_static_lr_by_default_and_scheduled_with_own_lr(registered_methods, solo_cfg, make_trainer, make_loaders):
    cfg = solo_cfg("simsiam_offdiag")
    assert registered_methods["simsiam_offdiag"](cfg).cfg.method_kwargs.predictor.static_lr is True
    own = solo_cfg("simsiam_offdiag", predictor={"lr": 0.01})
    model = registered_methods["simsiam_offdiag"](own)
    assert model.cfg.method_kwargs.predictor.static_lr is False
    groups = {g["name"]: g for g in model.learnable_params}
    assert groups["predictor"]["lr"] == 0.01 and "static_lr" not in groups["predictor"]
    byol = registered_methods["byol_offdiag"](solo_cfg())
    assert byol.cfg.method_kwargs.predictor.static_lr is False


def test_warmup_cosine_schedules_head_from_its_own_lr(registered_methods, solo_cfg, make_loaders, make_trainer):
    model = registered_methods["byol_offdiag"](solo_cfg(predictor={"lr": 0.02}))
    train, val = make_loaders(n_batches=2)
    trainer = make_trainer(limit_train_batches=2, max_epochs=2)
    trainer.fit(model, train, val)
    groups = {g["name"]: g for g in trainer.optimizers[0].param_groups}
    assert groups["predictor"]["initial_lr"] == pytest.approx(0.02)
    assert groups["predictor"]["lr"] < 0.02  # cosine decay below the base lr of the group


@pytest.mark.parametrize("optimizer", ["lars", "sgd"])
def test_fast_dev_run_cifar_stem_moves_only_offdiagonal(registered_methods, solo_cfg, make_loaders, make_trainer, optimizer):
    model = registered_methods["byol_offdiag"](solo_cfg(optimizer=optimizer, predictor={"lr": 0.1}))
    assert model.backbone.conv1.kernel_size == (3, 3)  # CIFAR stem
    before = model.prediction_head.matrix().detach().clone()
    train, val = make_loaders()
    trainer = make_trainer(fast_dev_run=True)
    trainer.fit(model, train, val)
    after = model.prediction_head.matrix().detach()
    assert not torch.equal(before, after)
    torch.testing.assert_close(torch.diagonal(after), torch.ones(HEAD_DIM))
    assert any(g["name"] == "predictor" for g in trainer.optimizers[0].param_groups)


def test_fit_with_imagenet_stem_and_momentum_classifier(registered_methods, solo_cfg, make_loaders, make_trainer):
    cfg = solo_cfg(dataset="imagenet100")
    cfg.momentum.classifier = True
    model = registered_methods["byol_offdiag"](cfg)
    train, val = make_loaders(size=64)
    make_trainer(fast_dev_run=True).fit(model, train, val)


def test_configure_callbacks_follows_analysis_enabled(registered_methods, solo_cfg):
    assert registered_methods["byol_offdiag"](solo_cfg(analysis=False)).configure_callbacks() == []
    model = registered_methods["byol_offdiag"](solo_cfg(analysis=True))
    names = [type(c).__name__ for c in model.configure_callbacks()]
    assert names == [
        "HeadDynamicsCallback",
        "EmbeddingSpectrumCallback",
        "CollapseMonitorCallback",
        "EigenAlignmentCallback",
    ]


def test_configure_callbacks_without_the_analysis_package_warns(registered_methods, solo_cfg, monkeypatch):
    """A build without solo_offdiag.analysis.callbacks trains without them, with one warning."""
    model = registered_methods["byol_offdiag"](solo_cfg(analysis=True))
    monkeypatch.setitem(sys.modules, "solo_offdiag.analysis.callbacks", None)  # import fails
    with pytest.warns(RuntimeWarning, match="analysis callbacks"):
        assert model.configure_callbacks() == []


def test_head_lars_settings_reach_the_group_and_remove_the_trust_ratio(registered_methods, solo_cfg):
    cfg = solo_cfg(predictor={"lr": 0.1, "weight_decay": 0.0, "lars": {"trust_ratio": False}})
    cfg.scheduler.name = "none"
    model = registered_methods["byol_offdiag"](cfg)
    groups, optimizer = _groups(model)
    head = groups["predictor"]
    assert head["eta"] == float("inf") and head["clip_lr"] is True
    assert groups["backbone"]["eta"] != float("inf")  # the rest keeps the recipe's LARS
    A = model.prediction_head.offdiag
    with torch.no_grad():
        A.copy_(torch.full_like(A, 1e-3))  # tiny ||A||: the trust ratio would bound the step by eta*||A||
    for g in optimizer.param_groups:
        g["momentum"] = 0.0
    grad = torch.randn_like(A)
    for p in model.parameters():
        p.grad = None
    A.grad = grad.clone()
    before = A.detach().clone()
    optimizer.step()
    # plain SGD on the head: exactly lr * grad (no trust-ratio factor)
    torch.testing.assert_close(before - A.detach(), 0.1 * grad)


def test_head_lars_eta_override(registered_methods, solo_cfg):
    cfg = solo_cfg(predictor={"lars": {"eta": 0.5, "clip_lr": False}})
    cfg.scheduler.name = "none"
    groups, _ = _groups(registered_methods["byol_offdiag"](cfg))
    assert groups["predictor"]["eta"] == 0.5 and groups["predictor"]["clip_lr"] is False


@pytest.mark.parametrize(("kind", "expected"), [("offdiag", 20.0), ("mlp", 1e-5)])
def test_head_weight_decay_kinds_reach_optimizer(registered_methods, solo_cfg, kind, expected):
    cfg = solo_cfg(optimizer="adamw", predictor={"kind": kind, "weight_decay": 20.0,
                                                 "weight_decay_kinds": ["offdiag", "diagonal"]})
    cfg.scheduler.name = "none"
    cfg.optimizer.kwargs = {}
    groups, _ = _groups(registered_methods["byol_offdiag"](cfg))
    assert groups["predictor"]["weight_decay"] == pytest.approx(expected)


def test_head_weight_decay_start(registered_methods, solo_cfg):
    from types import SimpleNamespace

    cfg = solo_cfg(optimizer="adamw", predictor={"weight_decay": 20.0, "weight_decay_start": 0.5})
    cfg.scheduler.name = "none"
    cfg.optimizer.kwargs = {}
    model = registered_methods["byol_offdiag"](cfg)
    groups, optimizer = _groups(model)
    trainer = SimpleNamespace(estimated_stepping_batches=100, optimizers=[optimizer], global_step=0)
    model._trainer = trainer
    for step, expected in [(0, 0.0), (49, 0.0), (50, 20.0), (99, 20.0)]:
        trainer.global_step = step
        model._apply_head_weight_decay_start()
        assert groups["predictor"]["weight_decay"] == expected, step
    assert groups["backbone"]["weight_decay"] == pytest.approx(1e-5)  # other groups untouched
    # a resumed run (optimizer state saved while the decay was off) gets the decay back
    trainer.global_step = 10
    model._apply_head_weight_decay_start()
    optimizer.load_state_dict(optimizer.state_dict())
    trainer.global_step = 60
    model._apply_head_weight_decay_start()
    assert {g["name"]: g for g in optimizer.param_groups}["predictor"]["weight_decay"] == 20.0


def test_output_norm_batch_standardises_prediction_and_target(registered_methods, solo_cfg):
    """predictor.output_norm: batch -> p and the momentum (target) z have mean 0 and variance 1 per
    coordinate over the batch (BN without affine, the theory's normalisation); none -> untouched."""
    x = torch.randn(8, 3, 32, 32)
    torch.manual_seed(0)
    plain = registered_methods["byol_offdiag"](solo_cfg())
    torch.manual_seed(0)
    normed = registered_methods["byol_offdiag"](solo_cfg(predictor={"output_norm": "batch"}))
    plain.eval(), normed.eval()  # no dropout/BN statistics updates between the two calls
    out, ref = normed(x), plain(x)
    target = normed.momentum_forward(x)["z"]
    for t in (out["p"], target):
        torch.testing.assert_close(t.mean(0), torch.zeros(HEAD_DIM), atol=1e-5, rtol=0)
        torch.testing.assert_close(t.var(0, unbiased=False), torch.ones(HEAD_DIM), atol=1e-3, rtol=0)
    torch.testing.assert_close(out["z"], ref["z"])  # the projector output (analysed as z) is not changed
    from solo_offdiag.solo_adapter.methods.byol_offdiag import OUTPUT_NORM_EPS
    from solo_offdiag.theory.model import batch_norm

    torch.testing.assert_close(out["p"], batch_norm(ref["p"], OUTPUT_NORM_EPS))
    assert not torch.allclose(ref["p"].mean(0), torch.zeros(HEAD_DIM), atol=1e-3)  # the default leaves p alone


def test_output_norm_is_refused_by_simsiam(registered_methods, solo_cfg):
    from solo_offdiag.config import ConfigError

    with pytest.raises(ConfigError, match=r"output_norm: got 'batch'; allowed for simsiam_offdiag: 'none'"):
        registered_methods["simsiam_offdiag"](solo_cfg("simsiam_offdiag", predictor={"output_norm": "batch"}))
