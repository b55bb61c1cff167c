"""Training wall time with the default analysis callbacks against none, in one process.

Runs the same short fit of :class:`solo_offdiag.analysis.toy.ToySimSiam` (an MLP BYOL with the
paper's default widths: 512-d backbone features, 256-d projector output and off-diagonal head)
alternately with and without ``build_callbacks(AnalysisConfig())`` (every 50 steps, queue 2048,
``z`` and ``feats``, every callback on), in the order ABBA ABBA ..., so that drift of the machine
hits both arms alike. Timing covers ``on_train_start`` to ``on_train_end`` (not Trainer
construction). It reports

(a) the wall-time overhead (median with / median without, minus one);
(b) the time the *training thread* spends inside the analysis callbacks' hooks: per ordinary
    step, per logging point (the ``on_train_batch_end`` calls at multiples of
    ``every_n_steps``), and at start/end (``on_train_end`` waits for the worker); a direct
    measurement, much less noisy than the difference of two wall times;
(c) the compute time of the analysis jobs per logging point (in the background worker with
    ``--background true``, or inline, on the training thread, with ``false``).

With (b) and (c) the overhead for another step time ``t`` can be projected as
``(b_step * (n - 1) + b_point) / (n * t)`` (``n = every_n_steps``): inline, ``b_point`` includes
``c``; in the background it does not, as long as ``c < n * t`` (the worker keeps up; it then
competes only with the host side of training for CPU cores).

Example::

    python benchmarks/callback_overhead.py --steps 500 --repeats 2 --background true
"""

from __future__ import annotations

import argparse
import functools
import os
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
from solo_offdiag.analysis.toy import ToySimSiam

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
    pl.seed_everything(0)
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(args.batch_size * 16, args.in_dim, generator=generator)
    loader = DataLoader(
        TensorDataset(data), batch_size=args.batch_size, shuffle=True, drop_last=True
    )
    module = ToySimSiam(
        in_dim=args.in_dim,
        hidden_dim=args.hidden_dim,
        feat_dim=args.feat_dim,
        z_dim=args.z_dim,
        lr=1e-3,
    )
    cfg = AnalysisConfig(background=args.background)  # the defaults under test
    analysis = (
        build_callbacks(cfg, head_is_linear=True, out_dir=str(root / "analysis"))
        if with_callbacks
        else []
    )
    buckets = _timed(analysis, cfg.every_n_steps)
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
    out = {"wall": clock.seconds}
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
    parser.add_argument("--steps", type=int, default=200, help="training steps per fit")
    parser.add_argument("--repeats", type=int, default=3, help="ABBA rounds (2 fits per arm each)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--in-dim", type=int, default=1024)
    parser.add_argument("--hidden-dim", type=int, default=1024)
    parser.add_argument("--feat-dim", type=int, default=512, help="backbone feature width")
    parser.add_argument("--z-dim", type=int, default=256, help="projector output = head dim")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument(
        "--background",
        choices=("auto", "true", "false"),
        default="auto",
        help="analysis.background (auto: worker on CUDA only; this benchmark runs on the CPU)",
    )
    args = parser.parse_args(argv)
    args.background = {"auto": "auto", "true": True, "false": False}[args.background]
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    cfg = AnalysisConfig()
    print(
        f"ToySimSiam {args.in_dim}->{args.hidden_dim}->{args.feat_dim}->{args.z_dim}, batch "
        f"{args.batch_size}, {args.steps} steps, CPU threads {torch.get_num_threads()}; "
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
                print(f"round {r}: {label} {result['wall']:7.2f} s{extra}")
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
