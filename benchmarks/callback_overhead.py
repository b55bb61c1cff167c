"""Training wall time with the default analysis callbacks against none, in one process.

Runs the same short fit of :class:`solo_offdiag.analysis.toy.ToyBYOL` (an MLP BYOL with the
paper's default widths: 512-d backbone features, 256-d projector output and off-diagonal head)
alternately with and without ``build_callbacks(AnalysisConfig())`` (every 50 steps, queue 2048,
``z`` and ``feats``, every callback on), in the order ABBA ABBA ..., so that drift of the machine
hits both arms alike. Timing covers ``on_train_start`` to ``on_train_end`` (not Trainer
construction). It also sums the time spent inside the analysis callbacks' hooks, a direct
measurement that is much less noisy than the difference of two wall times.

Example::

    python benchmarks/callback_overhead.py --steps 200 --repeats 3
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from solo_offdiag.analysis.callbacks import build_callbacks
from solo_offdiag.analysis.config import AnalysisConfig
from solo_offdiag.analysis.toy import ToyBYOL

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


class _WallClock(pl.Callback):
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds = time.perf_counter() - self.start


def _timed(callbacks: list[pl.Callback]) -> list[float]:
    """Wrap every hook of ``callbacks`` to add its duration to the returned one-item list."""
    total = [0.0]
    for callback in callbacks:
        for name in HOOKS:
            hook = getattr(callback, name)

            @functools.wraps(hook)
            def wrapper(*args: Any, _hook: Any = hook, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return _hook(*args, **kwargs)
                finally:
                    total[0] += time.perf_counter() - start

            setattr(callback, name, wrapper)
    return total


def run_once(args: argparse.Namespace, with_callbacks: bool, root: Path) -> tuple[float, float]:
    """One fit; returns (train wall seconds, seconds inside analysis hooks)."""
    pl.seed_everything(0, verbose=False)
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(args.batch_size * 16, args.in_dim, generator=generator)
    loader = DataLoader(
        TensorDataset(data), batch_size=args.batch_size, shuffle=True, drop_last=True
    )
    module = ToyBYOL(
        in_dim=args.in_dim,
        hidden_dim=args.hidden_dim,
        feat_dim=args.feat_dim,
        z_dim=args.z_dim,
        lr=1e-3,
    )
    cfg = AnalysisConfig()  # the defaults under test
    analysis = (
        build_callbacks(cfg, head_is_linear=True, out_dir=str(root / "analysis"))
        if with_callbacks
        else []
    )
    in_hooks = _timed(analysis)
    clock = _WallClock()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=args.steps,
        logger=CSVLogger(str(root), name="bench"),  # the same logger in both arms
        callbacks=[clock, *analysis],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=50,
    )
    trainer.fit(module, loader)
    return clock.seconds, in_hooks[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps per fit")
    parser.add_argument("--repeats", type=int, default=3, help="ABBA rounds (2 fits per arm each)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--in-dim", type=int, default=1024)
    parser.add_argument("--hidden-dim", type=int, default=1024)
    parser.add_argument("--feat-dim", type=int, default=512, help="backbone feature width")
    parser.add_argument("--z-dim", type=int, default=256, help="projector output = head dim")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    cfg = AnalysisConfig()
    print(
        f"ToyBYOL {args.in_dim}->{args.hidden_dim}->{args.feat_dim}->{args.z_dim}, batch "
        f"{args.batch_size}, {args.steps} steps, CPU threads {torch.get_num_threads()}; "
        f"analysis defaults: every_n_steps={cfg.every_n_steps}, queue_size={cfg.queue_size}, "
        f"embeddings={list(cfg.embeddings)}"
    )
    times: dict[bool, list[float]] = {False: [], True: []}
    hooks: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for with_cb in (False, True, True, False):
                seconds, in_hooks = run_once(
                    args, with_cb, Path(tmp) / f"r{r}_{with_cb}_{len(hooks)}"
                )
                times[with_cb].append(seconds)
                if with_cb:
                    hooks.append(in_hooks / seconds)
                label = "with callbacks" if with_cb else "without       "
                print(
                    f"round {r}: {label} {seconds:7.2f} s"
                    + (f"  (in analysis hooks {in_hooks:.2f} s)" if with_cb else "")
                )
    base, with_ = statistics.median(times[False]), statistics.median(times[True])
    print(f"median without callbacks: {base:.2f} s ({1000 * base / args.steps:.1f} ms/step)")
    print(f"median with callbacks:    {with_:.2f} s ({1000 * with_ / args.steps:.1f} ms/step)")
    print(f"overhead (median wall time): {100 * (with_ / base - 1):+.2f} %")
    print(
        f"time inside analysis hooks: {100 * statistics.median(hooks):.2f} % of training wall time"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
