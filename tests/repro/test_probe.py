"""Offline linear probe and kNN: high on separable features, chance on random labels."""

from __future__ import annotations

import pytest
import torch

from solo_offdiag.repro.probe import (
    ProbeConfig,
    backbone_from_checkpoint,
    build_backbone,
    extract_features,
    knn_accuracy,
    linear_probe_accuracy,
)


def _blobs(n_per_class=60, classes=5, dim=32, seed=0, spread=0.5):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, dim, generator=g) * 3
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = centers[y] + spread * torch.randn(len(y), dim, generator=g)
    return x, y


def test_separable_features_are_classified_well():
    xtr, ytr = _blobs(seed=0)
    xva, yva = _blobs(seed=0)[0] + 0.3 * torch.randn(300, 32), _blobs(seed=0)[1]
    assert linear_probe_accuracy(xtr, ytr, xva, yva, ProbeConfig(max_iter=100)) > 95
    assert knn_accuracy(xtr, ytr, xva, yva) > 95


def test_random_labels_give_chance():
    g = torch.Generator().manual_seed(1)
    xtr, xva = torch.randn(400, 16, generator=g), torch.randn(1000, 16, generator=g)
    ytr, yva = torch.randint(0, 10, (400,), generator=g), torch.randint(0, 10, (1000,), generator=g)
    lin = linear_probe_accuracy(xtr, ytr, xva, yva, ProbeConfig(max_iter=100))
    knn = knn_accuracy(xtr, ytr, xva, yva)
    assert 4 < lin < 17 and 4 < knn < 17  # chance is 10%


def test_backbone_roundtrip_through_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_backbone("resnet18", "cifar10")
    assert model.conv1.kernel_size == (3, 3) and isinstance(model.maxpool, torch.nn.Identity)
    state = {f"backbone.{k}": v for k, v in model.state_dict().items()}
    state["projector.0.weight"] = torch.zeros(2, 2)  # other keys are ignored
    torch.save({"state_dict": state}, tmp_path / "x.ckpt")
    loaded = backbone_from_checkpoint(tmp_path / "x.ckpt", "resnet18", "cifar10")
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    assert torch.allclose(loaded(x), model(x)) and loaded(x).shape == (2, 512)
    # the ImageNet stem does not take CIFAR weights: strict loading says so
    with pytest.raises(RuntimeError):
        backbone_from_checkpoint(tmp_path / "x.ckpt", "resnet18", "stl10")
    torch.save({"state_dict": {"projector.w": torch.zeros(1)}}, tmp_path / "y.ckpt")
    with pytest.raises(ValueError, match="backbone"):
        backbone_from_checkpoint(tmp_path / "y.ckpt", "resnet18", "cifar10")
    with pytest.raises(ValueError, match="supports"):
        build_backbone("vit_tiny", "cifar10")


def test_extract_features_keeps_order_and_labels():
    model = torch.nn.Flatten()
    data = [(torch.full((1, 2, 2), float(i)), i % 3) for i in range(10)]
    feats, labels = extract_features(model, data, batch_size=4)
    assert feats.shape == (10, 4) and labels.tolist() == [i % 3 for i in range(10)]
    assert feats[:, 0].tolist() == [float(i) for i in range(10)]
