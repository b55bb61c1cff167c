"""Training wall time with the default analysis callbacks against none, ABBA in one process.

Runs the same short fit of a ResNet-18 BYOL (torchvision ``resnet18`` backbone, 512-d features,
an MLP projector to 256-d ``z``, the off-diagonal head, an EMA target network, two augmented-by-
noise views of random images; ``--image-size`` 32 by default) alternately with and without
``build_callbacks(AnalysisConfig())`` (every 50 steps, queue 2048, ``z`` and ``feats``, every
callback on), in the order ABBA ABBA ..., so that drift of the (shared) machine hits both arms
alike. The clock starts in the first ``on_train_start`` hook and stops in the *last*
``on_train_end`` hook (after the analysis callbacks' final drain and file writes; on CUDA after a
device synchronisation). It reports

(a) the wall-time overhead (median with / median without, minus one);
(b) the time the *training thread* spends inside the analysis callbacks' hooks: per ordinary
    step, per logging point (the ``on_train_batch_end`` calls at multiples of
    ``every_n_steps``), and at start/end (``on_train_end`` drains the worker and writes the files);
(c) the compute time of the analysis jobs per logging point (in the background worker, or inline);

and, on its last line, ``ratio with/without (median wall time): R``. The load average of the
machine is printed at the start, after every fit and at the end.

Example::

    python benchmarks/callback_overhead.py --device cpu --steps 150 --repeats 2 --threads 1
    python benchmarks/callback_overhead.py --device cuda --steps 600 --batch-size 256
"""

from __future__ import annotations

import argparse
import copy
import functools
import logging
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torchvision
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from solo_offdiag.analysis.callbacks import build_callbacks
from solo_offdiag.analysis.config import AnalysisConfig
from solo_offdiag.heads import build_head

HOOKS = (
    "setup",
    "on_train_start",
    "on_train_batch_end",
    "on_train_end",
    "on_save_checkpoint",
    "on_validation_batch_end",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
)


class ResNet18BYOL(pl.LightningModule):
    """BYOL with a torchvision ResNet-18 backbone, following the analysis protocol.

    Online: backbone -> projector (512 -> hidden -> 256, BN + ReLU) -> prediction head; target: an
    EMA copy of backbone and projector (momentum 0.99). Symmetric negative-cosine loss; the two
    views are the image plus independent Gaussian noise (no augmentation pipeline: the benchmark
    measures the callbacks, not the data loading). Returns ``loss``, ``z`` and ``feats``.
    """

    def __init__(self, *, proj_hidden: int, z_dim: int, head: str, lr: float = 0.05) -> None:
        super().__init__()
        backbone = torchvision.models.resnet18()
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.projector = nn.Sequential(
            nn.Linear(512, proj_hidden),
            nn.BatchNorm1d(proj_hidden),
            nn.ReLU(),
            nn.Linear(proj_hidden, z_dim),
        )
        self.prediction_head = build_head(head, z_dim)
        self.target = nn.ModuleDict(
            {"backbone": copy.deepcopy(self.backbone), "projector": copy.deepcopy(self.projector)}
        )
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.lr = lr

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        (x,) = batch
        v1, v2 = x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x)
        f1, f2 = self.backbone(v1), self.backbone(v2)
        z1, z2 = self.projector(f1), self.projector(f2)
        p1, p2 = self.prediction_head(z1), self.prediction_head(z2)
        with torch.no_grad():
            t1 = self.target["projector"](self.target["backbone"](v1))
            t2 = self.target["projector"](self.target["backbone"](v2))
        cos = nn.functional.cosine_similarity
        loss = 4 - 2 * cos(p1, t2).mean() - 2 * cos(p2, t1).mean()
        return {"loss": loss, "z": z1.detach(), "feats": f1.detach()}

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        with torch.no_grad():
            online = [*self.backbone.parameters(), *self.projector.parameters()]
            target = [*self.target["backbone"].parameters(), *self.target["projector"].parameters()]
            torch._foreach_lerp_(target, online, 0.01)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            [p for p in self.parameters() if p.requires_grad], lr=self.lr, momentum=0.9
        )


class _Start(pl.Callback):
    """First in the callback list: the clock starts before any analysis hook."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _sync(pl_module)
        self.start = time.perf_counter()


class _Stop(pl.Callback):
    """Last in the callback list: the clock stops after the analysis callbacks' final drain."""

    def __init__(self, start: _Start) -> None:
        self._start = start

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _sync(pl_module)
        self.seconds = time.perf_counter() - self._start.start


def _sync(module: pl.LightningModule) -> None:
    if module.device.type == "cuda":
        torch.cuda.synchronize(module.device)


def _timed(callbacks: list[pl.Callback], every_n_steps: int) -> dict[str, list[float]]:
    """Wrap every hook of ``callbacks`` to add its duration to the returned buckets.

    ``point``: ``on_train_batch_end`` at a logging point; ``step``: at any other step (in the
    background mode this includes applying results of earlier points); ``other``: every other hook.
    """
    buckets: dict[str, list[float]] = {"step": [0.0], "point": [0.0], "other": [0.0]}
    for callback in callbacks:
        for name in HOOKS:
            hook = getattr(callback, name)

            @functools.wraps(hook)
            def wrapper(*args: Any, _hook: Any = hook, _name: str = name, **kwargs: Any) -> Any:
                bucket = "other"
                if _name == "on_train_batch_end":
                    step = args[0].global_step
                    bucket = "point" if step % every_n_steps == 0 else "step"
                start = time.perf_counter()
                try:
                    return _hook(*args, **kwargs)
                finally:
                    buckets[bucket][0] += time.perf_counter() - start

            setattr(callback, name, wrapper)
    return buckets


def run_once(args: argparse.Namespace, with_callbacks: bool, root: Path) -> dict[str, float]:
    """One fit; returns train wall seconds and, with callbacks, the hook and worker times."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    size = args.image_size
    data = torch.randn(args.batch_size * 8, 3, size, size, generator=generator)
    loader = DataLoader(
        TensorDataset(data), batch_size=args.batch_size, shuffle=True, drop_last=True
    )
    module = ResNet18BYOL(proj_hidden=args.proj_hidden, z_dim=args.z_dim, head="offdiag")
    cfg = AnalysisConfig(background=args.background)  # the defaults under test
    analysis = (
        build_callbacks(cfg, head_is_linear=True, out_dir=str(root / "analysis"))
        if with_callbacks
        else []
    )
    buckets = _timed(analysis, cfg.every_n_steps)
    start = _Start()
    stop = _Stop(start)
    trainer = pl.Trainer(
        accelerator=args.device,
        devices=1,
        max_steps=args.steps,
        logger=CSVLogger(str(root), name="bench"),  # the same logger in both arms
        callbacks=[start, *analysis, stop],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=50,
    )
    trainer.fit(module, loader)
    out = {"wall": stop.seconds}
    if analysis:
        executor = analysis[0].executor
        out.update({k: v[0] for k, v in buckets.items()})
        out["compute"] = executor.compute_seconds
        out["jobs"] = float(executor.jobs)
        out["background"] = float(any(c._in_background for c in analysis))
    return out


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--steps", type=int, default=150, help="training steps per fit")
    parser.add_argument("--repeats", type=int, default=2, help="ABBA rounds (2 fits per arm each)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32, help="square random images")
    parser.add_argument("--proj-hidden", type=int, default=1024, help="projector hidden width")
    parser.add_argument("--z-dim", type=int, default=256, help="projector output = head dim")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument(
        "--background",
        choices=("auto", "true", "false"),
        default="auto",
        help="analysis.background (default auto: the worker on CUDA, inline on the CPU)",
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.steps < AnalysisConfig().every_n_steps:
        parser.error(f"--steps must be >= every_n_steps ({AnalysisConfig().every_n_steps})")
    args.background = {"auto": "auto", "true": True, "false": False}[args.background]
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    cfg = AnalysisConfig()
    print(
        f"ResNet-18 BYOL (torchvision resnet18, 512-d feats, projector 512->{args.proj_hidden}->"
        f"{args.z_dim}, offdiag head, EMA target) on {args.device}, batch {args.batch_size} of "
        f"3x{args.image_size}x{args.image_size}, {args.steps} steps per fit, "
        f"CPU threads {torch.get_num_threads()}; "
        f"analysis defaults: every_n_steps={cfg.every_n_steps}, queue_size={cfg.queue_size}, "
        f"embeddings={list(cfg.embeddings)}; background={args.background}"
    )
    print(f"start: {_load()}")
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for with_cb in (False, True, True, False):
                root = Path(tmp) / f"r{r}_{with_cb}_{len(runs[with_cb])}"
                result = run_once(args, with_cb, root)
                runs[with_cb].append(result)
                label = "with callbacks" if with_cb else "without       "
                extra = ""
                if with_cb:
                    hooks = result["step"] + result["point"] + result["other"]
                    where = "worker" if result["background"] else "inline"
                    extra = (
                        f"  (training thread in analysis hooks {hooks:.2f} s; "
                        f"analysis compute {result['compute']:.2f} s, {where})"
                    )
                print(f"round {r}: {label} {result['wall']:7.2f} s{extra}  [{_load()}]", flush=True)
    print(f"end:   {_load()}")
    n = cfg.every_n_steps
    points = args.steps // n
    base = statistics.median(x["wall"] for x in runs[False])
    with_ = statistics.median(x["wall"] for x in runs[True])
    med = {k: statistics.median(x[k] for x in runs[True]) for k in runs[True][0]}
    print(f"median without callbacks: {base:.2f} s ({1000 * base / args.steps:.1f} ms/step)")
    print(f"median with callbacks:    {with_:.2f} s ({1000 * with_ / args.steps:.1f} ms/step)")
    print(f"(a) overhead (median wall time): {100 * (with_ / base - 1):+.2f} %")
    hooks = med["step"] + med["point"] + med["other"]
    print(
        f"(b) training thread inside analysis hooks: {1000 * hooks:.0f} ms in all "
        f"({100 * hooks / with_:.2f} % of training wall time): "
        f"{1000 * med['step'] / (args.steps - points):.3f} ms per ordinary step, "
        f"{1000 * med['point'] / points:.1f} ms per logging point, "
        f"{1000 * med['other']:.0f} ms at start/end"
    )
    where = "background worker" if med["background"] else "inline, on the training thread"
    print(
        f"(c) analysis compute per logging point: {1000 * med['compute'] / points:.1f} ms "
        f"({where}; {med['jobs']:.0f} jobs in {points} logging points + step 0)"
    )
    print(f"ratio with/without (median wall time): {with_ / base:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
