"""Offline evaluation of a pretrained backbone: linear probe and weighted kNN on frozen features.

Protocol (follows solo-learn's linear-eval and kNN protocols on frozen features; this is our own
fresh implementation, not solo's code, and it does not need solo-learn):

1. The backbone is rebuilt from the checkpoint's ``backbone.*`` weights (the keys solo-learn's
   ``main_linear.py`` loads): torchvision ResNet-18/50 with ``fc = Identity``, and for CIFAR
   solo's stem (3x3 stride-1 ``conv1``, no max-pool). Loading is strict: a mismatch is an error.
2. Features of the train and validation splits are extracted once, in eval mode, without
   augmentation (images resized/centred to the training crop size and normalised as solo does).
3. Linear probe: a multinomial logistic regression on the features standardised with the train
   mean/std, trained full batch with L-BFGS (``max_iter`` iterations, strong-Wolfe line search,
   L2 penalty ``weight_decay``). Deterministic, and on frozen features the optimum of this convex
   problem is what solo's SGD-trained linear layer approaches; top-1 on the validation split.
4. kNN: solo's ``WeightedKNNClassifier`` rule: cosine similarity, ``k = 20`` nearest train
   features, votes weighted by ``exp(sim / T)``, ``T = 0.07``; top-1 on the validation split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "KNN_K",
    "KNN_T",
    "ProbeConfig",
    "backbone_from_checkpoint",
    "build_backbone",
    "eval_dataset",
    "extract_features",
    "knn_accuracy",
    "linear_probe_accuracy",
]

KNN_K = 20
KNN_T = 0.07
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ProbeConfig:
    """Linear-probe hyper-parameters (one source of truth; recorded in every probe.json)."""

    max_iter: int = 300
    weight_decay: float = 1e-4
    lr: float = 1.0
    knn_k: int = KNN_K
    knn_t: float = KNN_T
    batch_size: int = 256


# ------------------------------------------------------------------------------------------
# Backbone
# ------------------------------------------------------------------------------------------
def build_backbone(name: str, dataset: str) -> nn.Module:
    """The architecture solo-learn builds for ``backbone.name`` and ``data.dataset``."""
    import torchvision

    builders = {"resnet18": torchvision.models.resnet18, "resnet50": torchvision.models.resnet50}
    if name not in builders:
        raise ValueError(f"backbone.name: got {name!r}; the offline probe supports {', '.join(builders)}")
    model = builders[name]()
    model.fc = nn.Identity()
    if dataset in ("cifar10", "cifar100"):
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
        model.maxpool = nn.Identity()
    return model


def backbone_from_checkpoint(ckpt: str | Path, backbone_name: str, dataset: str) -> nn.Module:
    """Rebuild the backbone and load the checkpoint's ``backbone.*`` weights (strict)."""
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    state = state.get("state_dict", state)
    weights = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    if not weights:
        raise ValueError(f"{ckpt}: no 'backbone.*' weights in the checkpoint's state_dict")
    model = build_backbone(backbone_name, dataset)
    model.load_state_dict(weights, strict=True)
    return model.eval()


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------
def eval_dataset(dataset: str, split: str, data_dir: str | Path, crop_size: int) -> Any:
    """The un-augmented evaluation dataset of ``split`` ("train" or "val")."""
    from torchvision import datasets
    from torchvision import transforms as T

    if split not in ("train", "val"):
        raise ValueError(f"split: got {split!r}; allowed: train, val")
    mean, std = (CIFAR_MEAN, CIFAR_STD) if dataset in ("cifar10", "cifar100") else (IMAGENET_MEAN, IMAGENET_STD)
    tf = T.Compose([T.Resize(crop_size), T.CenterCrop(crop_size), T.ToTensor(), T.Normalize(mean, std)])
    root = Path(data_dir)
    if dataset == "cifar10":
        return datasets.CIFAR10(root, train=split == "train", transform=tf, download=False)
    if dataset == "cifar100":
        return datasets.CIFAR100(root, train=split == "train", transform=tf, download=False)
    if dataset == "stl10":
        return datasets.STL10(root, split="train" if split == "train" else "test", transform=tf, download=False)
    # custom / digits: an ImageFolder with train/ and val/
    return datasets.ImageFolder(root / split, transform=tf)


@torch.no_grad()
def extract_features(model: nn.Module, dataset: Any, device: str = "cpu", batch_size: int = 256,
                     num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features (float32, CPU) and labels of every sample of ``dataset``."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    model = model.to(device).eval()
    feats, labels = [], []
    for x, y in loader:
        feats.append(model(x.to(device)).float().cpu())
        labels.append(torch.as_tensor(y))
    return torch.cat(feats), torch.cat(labels).long()


# ------------------------------------------------------------------------------------------
# Classifiers on frozen features
# ------------------------------------------------------------------------------------------
def linear_probe_accuracy(
    train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
    cfg: ProbeConfig = ProbeConfig(), device: str = "cpu",
) -> float:
    """Top-1 accuracy (%) on ``val`` of a multinomial logistic regression fitted on ``train``."""
    train_x, val_x = train_x.to(device, torch.float64), val_x.to(device, torch.float64)
    train_y, val_y = train_y.to(device), val_y.to(device)
    mean, std = train_x.mean(0, keepdim=True), train_x.std(0, keepdim=True).clamp_min(1e-6)
    xtr, xva = (train_x - mean) / std, (val_x - mean) / std
    n_classes = int(max(train_y.max(), val_y.max()).item()) + 1
    generator = torch.Generator(device="cpu").manual_seed(0)
    weight = (torch.randn(xtr.shape[1], n_classes, generator=generator, dtype=torch.float64) * 1e-3).to(device)
    weight.requires_grad_(True)
    bias = torch.zeros(n_classes, dtype=torch.float64, device=device, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=cfg.lr, max_iter=cfg.max_iter, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(xtr @ weight + bias, train_y) + cfg.weight_decay * weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = (xva @ weight + bias).argmax(1)
    return float((pred == val_y).double().mean().item() * 100.0)


@torch.no_grad()
def knn_accuracy(
    train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
    k: int = KNN_K, t: float = KNN_T, chunk: int = 1024,
) -> float:
    """Top-1 accuracy (%) of the weighted cosine kNN (solo-learn's WeightedKNNClassifier rule)."""
    tr = nn.functional.normalize(train_x.float(), dim=1)
    n_classes = int(max(train_y.max(), val_y.max()).item()) + 1
    k = min(k, tr.shape[0])
    correct = 0
    for start in range(0, val_x.shape[0], chunk):
        va = nn.functional.normalize(val_x[start:start + chunk].float(), dim=1)
        sim, idx = (va @ tr.T).topk(k, dim=1)
        votes = torch.zeros(va.shape[0], n_classes)
        votes.scatter_add_(1, train_y[idx], (sim / t).exp())
        correct += int((votes.argmax(1) == val_y[start:start + chunk]).sum())
    return 100.0 * correct / max(val_x.shape[0], 1)


def evaluate_checkpoint(
    ckpt: str | Path, args: Mapping[str, Any], data_dir: str | Path, *, dataset: str | None = None,
    device: str = "cpu", cfg: ProbeConfig = ProbeConfig(),
) -> dict[str, Any]:
    """Linear probe and kNN of a checkpoint, given its run's ``args.json`` contents."""
    ds = dataset or args["data"]["dataset"]
    crop = int(args["augmentations"][0]["crop_size"])
    model = backbone_from_checkpoint(ckpt, args["backbone"]["name"], ds)
    train = extract_features(model, eval_dataset(ds, "train", data_dir, crop), device, cfg.batch_size)
    val = extract_features(model, eval_dataset(ds, "val", data_dir, crop), device, cfg.batch_size)
    return {
        "probe_acc1": linear_probe_accuracy(*train, *val, cfg=cfg, device=device),
        "knn_acc1": knn_accuracy(*train, *val, k=cfg.knn_k, t=cfg.knn_t),
        "n_train": int(train[0].shape[0]),
        "n_val": int(val[0].shape[0]),
        "feature_dim": int(train[0].shape[1]),
        "checkpoint": str(ckpt),
        "protocol": {**cfg.__dict__},
    }
