"""Images/s of full BYOL-offdiag training steps on three data paths, in one process (issue #6).

(a) solo-learn's default data path: PIL images + torchvision transforms in DataLoader CPU workers
    (solo-learn's own ``build_transform_pipeline`` when solo is importable, otherwise our
    re-statement of the same pipeline, labelled as such);
(b) our GPU path: ``GPUPretrainDataModule`` (uint8 set on the device, augmentation on the device);
(c) synthetic already-augmented tensors on the device: the model-only ceiling.

One step = two views through a ResNet-18 (CIFAR stem) + projector + off-diagonal head, the EMA
target on both views, symmetric BYOL loss, backward, optimizer step (LARS as solo's CIFAR recipe,
sync-free form) and the EMA update. This model is a stand-in for solo's BYOL module (both views in
one batch through one ``torch.cat``, a foreach EMA): (b) and (c) are upper bounds for a real solo
run, and (a)/(b) ratios compare data paths, not whole trainers.

Order, so that nothing can favour our path: every round runs (b), then (c), then (a); (a)'s
DataLoader workers exist only while (a) runs (started after (c), shut down before the next round),
so they never compete with (b)/(c) for the cores; (a)'s warm-up ends by draining its prefetch
queue (the batches the workers made while the model warmed up are taken without a step), so the
timed window starts from an empty queue and measures the steady state. The median round is
reported, then the ratios and the peak device memory.

    python benchmarks/throughput.py --device cpu          # CI-sized, < 60 s on 2 cores
    python benchmarks/throughput.py --device cuda --compile --json results/throughput.json
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solo_offdiag.data.gpu_augment import DATASET_STATS  # noqa: E402
from solo_offdiag.data.gpu_datamodule import GPUPretrainDataModule  # noqa: E402
from solo_offdiag.data.sources import InMemoryImages, from_arrays, load_torchvision  # noqa: E402
from solo_offdiag.perf import SyncFreeLARS  # noqa: E402

#: Dense peak FLOP/s by device-name fragment: (bf16 tensor core, tf32 tensor core).
PEAK_FLOPS = {
    "H200": (989e12, 494e12),
    "H100 PCIe": (756e12, 378e12),
    "H100": (989e12, 494e12),  # SXM / HBM3
    "A100": (312e12, 156e12),
    "L40S": (362e12, 183e12),
    "L4": (121e12, 60e12),
    "A10": (125e12, 62e12),
}

ASYMMETRIC = [{"crop_size": 32}, {"crop_size": 32, "solarization": {"prob": 0.2}}]


# --------------------------------------------------------------------------- model


def build_model(proj_hidden: int, proj_out: int) -> nn.Module:
    import torchvision

    from solo_offdiag.heads import build_head

    backbone = torchvision.models.resnet18()
    backbone.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)  # CIFAR stem
    backbone.maxpool = nn.Identity()
    backbone.fc = nn.Identity()
    model = nn.Module()
    model.backbone = backbone
    model.projector = nn.Sequential(
        nn.Linear(512, proj_hidden), nn.BatchNorm1d(proj_hidden), nn.ReLU(), nn.Linear(proj_hidden, proj_out)
    )
    model.predictor = build_head("offdiag", proj_out)
    model.momentum_backbone = copy.deepcopy(backbone).requires_grad_(False)
    model.momentum_projector = copy.deepcopy(model.projector).requires_grad_(False)
    return model


class Stepper:
    """One full training step; ``record_function`` labels feed ``--profile``."""

    def __init__(self, model: nn.Module, device: torch.device, bf16: bool, fused_sgd: bool, optimizer: str) -> None:
        self.model, self.device, self.bf16 = model, device, bf16
        params = [p for p in model.parameters() if p.requires_grad]
        if optimizer == "lars":  # solo's CIFAR BYOL recipe: LARS lr 1.0, eta 0.02, clip_lr, wd 1e-5
            self.opt = SyncFreeLARS(params, lr=1.0, momentum=0.9, weight_decay=1e-5, eta=0.02, clip_lr=True,
                                    exclude_bias_n_norm=True)  # fmt: skip
        else:
            self.opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-5, **({"fused": True} if fused_sgd else {}))
        self.online = list(model.backbone.parameters()) + list(model.projector.parameters())
        self.target = list(model.momentum_backbone.parameters()) + list(model.momentum_projector.parameters())

    def forward_loss(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        m = self.model
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            x = torch.cat([x1, x2])
            p1, p2 = m.predictor(m.projector(m.backbone(x))).chunk(2)
            with torch.no_grad():
                z1, z2 = m.momentum_projector(m.momentum_backbone(x)).chunk(2)
            return (2 - 2 * F.cosine_similarity(p1, z2.detach(), dim=-1).mean()) + (
                2 - 2 * F.cosine_similarity(p2, z1.detach(), dim=-1).mean()
            )

    def step(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        from torch.profiler import record_function

        with record_function("forward"):
            loss = self.forward_loss(x1, x2)
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        with record_function("ema"), torch.no_grad():
            torch._foreach_lerp_(self.target, self.online, 0.01)
        return loss.detach()


# --------------------------------------------------------------------------- data paths


class _PILArrayDataset(torch.utils.data.Dataset):
    """What torchvision's CIFAR10.__getitem__ + solo's dataset_with_index do: PIL from uint8."""

    def __init__(self, images_nhwc: np.ndarray, targets: np.ndarray, transform: Callable) -> None:
        self.images, self.targets, self.transform = images_nhwc, targets, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Any:
        from PIL import Image

        return i, self.transform(Image.fromarray(self.images[i])), int(self.targets[i])


def solo_default_transform() -> tuple[Callable, str]:
    """solo-learn's two-view CIFAR pipeline: its own code if importable, else our re-statement."""
    try:
        from omegaconf import OmegaConf
        from solo.data.pretrain_dataloader import build_transform_pipeline, prepare_n_crop_transform

        full = {
            "rrc": {"enabled": True, "crop_min_scale": 0.08, "crop_max_scale": 1.0},
            "color_jitter": {"prob": 0.8, "brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1},
            "grayscale": {"prob": 0.2}, "gaussian_blur": {"prob": 0.0}, "equalization": {"prob": 0.0},
            "horizontal_flip": {"prob": 0.5}, "crop_size": 32, "num_crops": 1,
        }  # fmt: skip
        pipes = [
            build_transform_pipeline("cifar10", OmegaConf.create({**full, "solarization": {"prob": p}}))
            for p in (0.0, 0.2)
        ]
        return prepare_n_crop_transform(pipes, [1, 1]), "solo-learn's build_transform_pipeline"
    except ImportError:
        pass
    import torchvision.transforms as T
    from PIL import ImageOps

    mean, std = DATASET_STATS["cifar10"]

    def pipeline(solarize: float) -> Callable:
        return T.Compose([
            T.RandomResizedCrop(32, scale=(0.08, 1.0), interpolation=T.InterpolationMode.BICUBIC),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([ImageOps.solarize], p=solarize),
            T.RandomHorizontalFlip(p=0.5),
            T.ToTensor(),
            T.Normalize(mean, std),
        ])  # fmt: skip

    views = [pipeline(0.0), pipeline(0.2)]
    return (lambda img: [v(img) for v in views]), "re-statement of solo-learn's pipeline (solo not installed)"


def make_images(n: int, size: int, data_root: str | None) -> InMemoryImages:
    if data_root:
        return load_torchvision("cifar10", data_root, download=False)
    rng = np.random.default_rng(0)  # smooth random images: realistic cost for PIL bicubic / jitter
    low = torch.from_numpy(rng.random((n, 3, max(size // 4, 1), max(size // 4, 1)), dtype=np.float32))
    img = (F.interpolate(low, size=size, mode="bilinear") * 255).round().to(torch.uint8)
    return from_arrays(img, rng.integers(0, 10, n), layout="NCHW")


def loop(it_factory: Callable[[], Iterator]) -> Iterator:
    while True:
        yield from it_factory()


# --------------------------------------------------------------------------- measurement


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_path(stepper: Stepper, batches: Iterator, steps: int, warmup: int, batch: int, device: torch.device) -> float:
    for _ in range(warmup):
        stepper.step(*next(batches))
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        stepper.step(*next(batches))
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def time_solo_path(
    stepper: Stepper, loader: Any, to_device: Callable[[Iterator], Iterator], steps: int, warmup: int, prefetched: int,
    batch: int, device: torch.device,
) -> float:
    """Path (a) with fresh workers: warm up, drain the prefetch queue, time, shut the workers down."""
    it = iter(loader)
    try:
        batches = to_device(loop_iter(it, loader))
        for _ in range(warmup):
            stepper.step(*next(batches))
        for _ in range(prefetched):  # whatever the workers made meanwhile: taken, not timed
            next(batches)
        return time_path(stepper, batches, steps, 0, batch, device)
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()  # no worker runs while the next round times (b) and (c)


def loop_iter(first: Iterator, loader: Any) -> Iterator:
    """``first``, then fresh epochs of ``loader`` (a small set can end inside a timed window)."""
    yield from first
    while True:
        yield from iter(loader)


def flops_per_image(stepper: Stepper, x1: torch.Tensor, x2: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        stepper.forward_loss(x1, x2).backward()
    stepper.opt.zero_grad(set_to_none=True)
    return counter.get_total_flops() / x1.shape[0]


def peak_flops(device: torch.device, bf16: bool) -> tuple[float | None, str]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, (bf, tf) in PEAK_FLOPS.items():
            if key in name:
                return (bf if bf16 else tf), f"{key} datasheet dense {'bf16' if bf16 else 'tf32'}"
        return None, f"unknown GPU {name!r}"
    a = torch.randn(1024, 1024)
    a @ a
    start, reps = time.perf_counter(), 20
    for _ in range(reps):
        a @ a
    return reps * 2 * 1024**3 / (time.perf_counter() - start), "measured fp32 1024^2 matmul"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1 ...")
    parser.add_argument("--batch-size", type=int, help="per-step batch (default 256 on GPU, 16 on CPU)")
    parser.add_argument("--dataset-size", type=int, help="images in the set (default 50000 GPU, 256 CPU)")
    parser.add_argument("--steps", type=int, help="timed steps per path and round, >= 1 (default 50 GPU, 3 CPU)")
    parser.add_argument("--warmup", type=int, help="untimed steps per path and round, >= 0 (default 10 GPU, 1 CPU); "
                        "path (a) also drains its prefetch queue after it")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3 GPU, 1 CPU)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="CPU workers of path (a) (default: all cores)")
    parser.add_argument("--proj-hidden", type=int, help="projector hidden dim (default 4096 GPU, 256 CPU)")
    parser.add_argument("--proj-out", type=int, help="projector output dim (default 256 GPU, 64 CPU)")
    parser.add_argument("--optimizer", choices=("lars", "sgd"), default="lars")
    parser.add_argument("--precision", choices=("bf16", "fp32"), help="default bf16 on GPU, fp32 on CPU")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="nn.Module.compile() the model parts")
    parser.add_argument("--paths", default="abc", help="subset of 'abc' to run")
    parser.add_argument("--data-root", help="a CIFAR-10 directory (torchvision layout) instead of random images")
    parser.add_argument("--profile", action="store_true", help="print a profiler summary of path (b)")
    parser.add_argument("--json", help="also write the results to this JSON file (atomically)")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else args.device.replace("auto", "cpu"))
    gpu = device.type == "cuda"
    batch = args.batch_size or (256 if gpu else 16)
    n = args.dataset_size or (50000 if gpu else 256)
    steps = args.steps if args.steps is not None else (50 if gpu else 3)
    warmup = args.warmup if args.warmup is not None else (10 if gpu else 1)
    rounds = args.rounds if args.rounds is not None else (3 if gpu else 1)
    for name, value, low in (("--steps", steps, 1), ("--warmup", warmup, 0), ("--rounds", rounds, 1),
                             ("--batch-size", batch, 1), ("--dataset-size", n, 1), ("--workers", args.workers, 0)):  # fmt: skip
        if value < low:
            parser.error(f"{name}: got {value}; allowed: an integer >= {low}")
    if n < batch:
        parser.error(f"--dataset-size: got {n}; allowed: >= the batch size {batch} (batches drop the last partial one)")
    bf16 = (args.precision or ("bf16" if gpu else "fp32")) == "bf16"
    channels_last = not args.no_channels_last
    paths = [p for p in "abc" if p in args.paths]
    data = make_images(n, 32, args.data_root)
    if gpu:
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")

    # Path (a)'s loader. Its workers are forked only when (a) runs, i.e. after CUDA is initialised
    # here: that is safe because the workers never touch CUDA (pinning runs in a thread of this
    # process), and it keeps them from running during (b)/(c).
    solo_loader, solo_label = None, None
    if "a" in paths:
        transform, solo_label = solo_default_transform()
        ds = _PILArrayDataset(data.images.permute(0, 2, 3, 1).numpy(), data.targets.numpy(), transform)
        solo_loader = torch.utils.data.DataLoader(
            ds, batch_size=batch, shuffle=True, num_workers=args.workers, pin_memory=gpu, drop_last=True,
            persistent_workers=False, prefetch_factor=2 if args.workers > 0 else None,
        )  # fmt: skip
    model = build_model(args.proj_hidden or (4096 if gpu else 256), args.proj_out or (256 if gpu else 64)).to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if args.compile:
        for name in ("backbone", "projector", "momentum_backbone", "momentum_projector", "predictor"):
            getattr(model, name).compile()
    stepper = Stepper(model, device, bf16, fused_sgd=gpu, optimizer=args.optimizer)
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def solo_batches(it: Iterator) -> Iterator:
        for _, (x1, x2), _ in it:
            yield (x1.to(device, non_blocking=True).contiguous(memory_format=fmt),
                   x2.to(device, non_blocking=True).contiguous(memory_format=fmt))  # fmt: skip

    from solo_offdiag.data.gpu_augment import views_from_solo_cfg

    dm = GPUPretrainDataModule(data, views_from_solo_cfg(ASYMMETRIC, "cifar10"), batch, seed=0, channels_last=channels_last)

    def gpu_batches() -> Iterator:
        from torch.profiler import record_function

        it = loop(dm.train_dataloader)
        while True:
            with record_function("data"):
                idx = next(it).to(device, non_blocking=True)
                _, (x1, x2), _ = dm.make_batch(idx)
            yield x1, x2

    fixed = dm.make_batch(torch.arange(batch, device=device))[1]

    def synthetic_batches() -> Iterator:
        while True:
            yield fixed[0], fixed[1]

    sources = {"b": gpu_batches(), "c": synthetic_batches()}
    prefetched = (args.workers or 0) * 2  # DataLoader prefetch_factor 2 per worker
    results: dict[str, list[float]] = {p: [] for p in paths}
    peak_mem: dict[str, float] = {}
    for _ in range(rounds):
        for p in [q for q in "bca" if q in paths]:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            if p == "a":
                results[p].append(time_solo_path(stepper, solo_loader, solo_batches, steps, warmup, prefetched, batch, device))
            else:
                results[p].append(time_path(stepper, sources[p], steps, warmup, batch, device))
            if device.type == "cuda":
                peak_mem[p] = max(peak_mem.get(p, 0.0), torch.cuda.max_memory_allocated(device) / 2**30)
    ips = {p: statistics.median(v) for p, v in results.items()}

    flops = flops_per_image(stepper, *fixed)
    peak, peak_label = peak_flops(device, bf16)
    names = {"a": f"(a) solo default path [{solo_label}], {args.workers} CPU workers",
             "b": "(b) GPU path (GPUPretrainDataModule)", "c": "(c) synthetic pre-augmented (model ceiling)"}  # fmt: skip
    report: dict[str, Any] = {
        "date": _dt.date.today().isoformat(),
        "device": device_name(device),
        "command": "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "torch": torch.__version__,
        "batch_size": batch, "dataset_size": n, "steps": steps, "warmup": warmup, "rounds": rounds,
        "precision": "bf16" if bf16 else "fp32", "channels_last": channels_last, "compile": args.compile,
        "optimizer": args.optimizer, "images_per_s": ips, "rounds_images_per_s": results,
        "flops_per_image_step": flops, "peak_flops": peak, "peak_source": peak_label,
    }  # fmt: skip
    if args.profile:
        report["profile"] = profile(stepper, sources["b"], device, steps=min(steps, 10))
    report["peak_memory_gib"] = peak_mem
    report["ratios"] = {
        "b_over_a": ips["b"] / ips["a"] if {"a", "b"} <= set(ips) else None,
        "b_over_c": ips["b"] / ips["c"] if {"b", "c"} <= set(ips) else None,
    }
    print(f"device: {report['device']}  torch {torch.__version__}  batch {batch}  precision {report['precision']}  "
          f"steps {steps} x {rounds} rounds, warm-up {warmup}")  # fmt: skip
    for p in paths:
        frac = f"{ips[p] * flops / peak:.1%}" if peak else "n/a"
        print(f"{names[p]:<90} {ips[p]:>10.1f} img/s   FLOP ceiling fraction {frac}")
    print(f"FLOPs per image per step: {flops / 1e9:.2f} GFLOP; peak: {peak / 1e12 if peak else float('nan'):.2f} TFLOP/s ({peak_label})")
    print("note: the model is a stand-in for solo's BYOL module (one torch.cat of both views, foreach EMA): "
          "(b) and (c) are upper bounds for a real solo run")
    if report["ratios"]["b_over_a"] is not None:
        print(f"ratio (b)/(a): {report['ratios']['b_over_a']:.2f}x   (target on a GPU: >= 5x with (a) at solo's num_workers 4)")
    if report["ratios"]["b_over_c"] is not None:
        print(f"ratio (b)/(c): {report['ratios']['b_over_c']:.2f} of the model-only ceiling   (target: >= 0.9)")
    if peak_mem:
        print("peak device memory (GiB): " + ", ".join(f"({p}) {v:.2f}" for p, v in peak_mem.items()))

    if args.json:
        from solo_offdiag.io import atomic_write_json

        atomic_write_json(args.json, report)
    return report


def profile(stepper: Stepper, batches: Iterator, device: torch.device, steps: int) -> dict[str, dict[str, float]]:
    """Where one step's time goes on path (b): data / forward / backward / optimizer / ema."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    for _ in range(2):
        stepper.step(*next(batches))
    sync(device)
    with torch_profile(activities=activities) as prof:
        for _ in range(steps):
            stepper.step(*next(batches))
        sync(device)
    labels = ("data", "forward", "backward", "optimizer", "ema")
    summary: dict[str, dict[str, float]] = {}
    for ev in prof.key_averages():
        if ev.key in labels:
            dev = getattr(ev, "device_time_total", getattr(ev, "cuda_time_total", 0.0))
            summary[ev.key] = {"cpu_ms_per_step": ev.cpu_time_total / 1e3 / steps, "device_ms_per_step": dev / 1e3 / steps}
    print(f"profile of path (b), {steps} steps (ms per step; device = GPU kernel time attributed to the label):")
    for key in labels:
        row = summary.get(key, {"cpu_ms_per_step": 0.0, "device_ms_per_step": 0.0})
        print(f"  {key:<10} cpu {row['cpu_ms_per_step']:9.2f}   device {row['device_ms_per_step']:9.2f}")
    return summary


if __name__ == "__main__":
    main()
