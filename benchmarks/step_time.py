"""Training-step time of ``byol_offdiag`` against solo-learn's ``byol`` (not a test).

Both models are built from the same config (ResNet-18, CIFAR stem, solo's CIFAR recipe heads:
projector 4096 -> 256, BYOL's MLP predictor 4096 wide; ours: the 256 x 256 off-diagonal head),
with the same optimiser (LARS, solo's CIFAR kwargs), batch and device. Rounds interleave the two
models in one process, so drift (thermal, other load) hits both alike. A step is what Lightning
would do: solo's ``training_step`` (both views through online and momentum branches), backward,
optimiser step, EMA update. Prints median ms per step and the ratio ours / solo's (expected <= 1:
the off-diagonal head is a single d x d matmul where BYOL's predictor is a 2-layer MLP).

    python benchmarks/step_time.py                       # CPU: batch 32, 3 rounds x 5 steps
    python benchmarks/step_time.py --device cuda --batch-size 256 --steps 50 --rounds 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import warnings
from typing import Any


def _cfg(method: str, batch_size: int, device: str) -> Any:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {
            "name": "bench",
            "method": method,
            "backbone": {"name": "resnet18"},
            "method_kwargs": {"proj_hidden_dim": 4096, "proj_output_dim": 256, "pred_hidden_dim": 4096},
            "momentum": {"base_tau": 0.99, "final_tau": 1.0},
            "data": {"dataset": "cifar10", "num_large_crops": 2, "num_small_crops": 0, "num_classes": 10},
            "optimizer": {
                "name": "lars",
                "batch_size": batch_size,
                "lr": 1.0 * batch_size / 256,
                "classifier_lr": 0.1,
                "weight_decay": 1e-5,
                "kwargs": {"momentum": 0.9, "eta": 0.02, "clip_lr": True, "exclude_bias_n_norm": True},
            },
            "scheduler": {"name": "none"},
            "max_epochs": 1,
            "accelerator": "gpu" if device == "cuda" else "cpu",
            "devices": 1,
        }
    )
    OmegaConf.set_struct(cfg, False)
    if method == "byol_offdiag":
        cfg.method_kwargs.predictor = {"kind": "offdiag"}
        cfg.method_kwargs.analysis = {"enabled": False}
    return cfg


def _build(method: str, batch_size: int, device: str, seed: int) -> tuple[Any, Any]:
    import torch
    from solo.methods import METHODS

    torch.manual_seed(seed)
    model = METHODS[method](_cfg(method, batch_size, device)).to(device)
    model.log = lambda *a, **k: None  # no Trainer: solo's logging calls become no-ops
    model.log_dict = lambda *a, **k: None
    model.train()
    optimizer = model.configure_optimizers()
    return model, optimizer


def _step(model: Any, optimizer: Any, batch: list[Any]) -> None:
    out = model.training_step(batch, 0)
    loss = out["loss"] if isinstance(out, dict) else out
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    for online, target in model.momentum_pairs:
        model.momentum_updater.update(online, target)


def _time(model: Any, optimizer: Any, batch: list[Any], steps: int, device: str) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        _step(model, optimizer, batch)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 256 on cuda, 32 on cpu")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round (default 50 cuda, 5 cpu)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    parser.add_argument("--json", default=None, help="write the results to this file (atomically)")
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore")
    import torch

    from solo_offdiag.solo_adapter import SoloLearnNotInstalled, register

    try:
        register()
    except SoloLearnNotInstalled as err:
        print(err, file=sys.stderr)
        return 2
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    batch_size = args.batch_size or (256 if device == "cuda" else 32)
    steps = args.steps or (50 if device == "cuda" else 5)

    g = torch.Generator().manual_seed(0)
    batch = [
        torch.arange(batch_size, device=device),
        [torch.randn(batch_size, 3, 32, 32, generator=g).to(device) for _ in range(2)],
        torch.randint(0, 10, (batch_size,), generator=g).to(device),
    ]
    models = {name: _build(name, batch_size, device, seed=0) for name in ("byol", "byol_offdiag")}
    for model, optimizer in models.values():
        for _ in range(args.warmup):
            _step(model, optimizer, batch)
    times: dict[str, list[float]] = {name: [] for name in models}
    for r in range(args.rounds):
        order = list(models) if r % 2 == 0 else list(reversed(models))  # alternate who goes first
        for name in order:
            times[name].append(_time(*models[name], batch, steps, device))

    med = {name: statistics.median(t) for name, t in times.items()}
    ratio = med["byol_offdiag"] / med["byol"]
    where = torch.cuda.get_device_name() if device == "cuda" else f"CPU {platform.machine()} ({torch.get_num_threads()} threads)"
    print(f"device: {where}  torch {torch.__version__}  batch {batch_size}  {args.rounds} rounds x {steps} steps")
    for name in models:
        print(f"{name:<13} median {med[name]:8.1f} ms/step   rounds: {', '.join(f'{t:.1f}' for t in times[name])}")
    print(f"ratio byol_offdiag / byol: {ratio:.3f}")
    if args.json:
        from solo_offdiag.io import atomic_write_json

        atomic_write_json(
            args.json,
            {"device": where, "batch_size": batch_size, "steps": steps, "rounds": args.rounds, "ms_per_step": times, "median_ms": med, "ratio": ratio},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
