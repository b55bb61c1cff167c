"""Operations per training step of the GPU path's pieces, counted on the CPU (issue #11).

Every aten operation that reaches a backend is counted with a ``TorchDispatchMode`` (a proxy for
kernel launches on a GPU: each non-view op is at least one launch; views launch nothing and are
counted apart). Pieces: ``GPUAugment`` for solo's two-view CIFAR recipe (``asymmetric.yaml``),
and one ``SyncFreeLARS`` step + the EMA update over the parameters of the benchmark's ResNet-18 +
projector + off-diagonal head (as ``benchmarks/throughput.py`` builds it, LARS as solo's CIFAR
BYOL recipe). The counts do not depend on the batch size.

    python benchmarks/op_count.py [--batch-size 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


class OpCounter(TorchDispatchMode):
    """Counts aten ops (``total``) and the ones that are views (``views``, no kernel)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))

    def summary(self) -> dict[str, int]:
        views = sum(n for name, n in self.ops.items() if _is_view(name))
        total = sum(self.ops.values())
        return {"total": total, "views": views, "kernels": total - views}


_VIEWS = {"view", "_unsafe_view", "expand", "unsqueeze", "squeeze", "select", "slice", "t", "transpose",
          "permute", "as_strided", "alias", "unbind", "split", "chunk", "detach", "reshape", "unfold",
          "diagonal", "narrow", "view_as_real", "_reshape_alias", "lift_fresh"}  # fmt: skip


def _is_view(name: str) -> bool:
    return name in _VIEWS


def count(fn: Any) -> dict[str, Any]:
    fn()  # warm: lazily created generators / caches are not part of a steady-state step
    with OpCounter() as counter:
        fn()
    return {**counter.summary(), "top": dict(counter.ops.most_common(8))}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", help="write the counts here (atomically)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    import throughput as tp

    from solo_offdiag.data.gpu_augment import GPUAugment, views_from_solo_cfg

    aug = GPUAugment(views_from_solo_cfg(tp.ASYMMETRIC, "cifar10"), seed=0)
    images = torch.randint(0, 256, (args.batch_size, 3, 32, 32), dtype=torch.uint8)
    model = tp.build_model(64, 32)
    stepper = tp.Stepper(model, torch.device("cpu"), bf16=False, fused_sgd=False, optimizer="lars")
    for p in stepper.opt.param_groups[0]["params"]:
        p.grad = torch.randn_like(p)
    n_params = len(stepper.opt.param_groups[0]["params"])

    def ema() -> None:
        with torch.no_grad():
            torch._foreach_lerp_(stepper.target, stepper.online, 0.01)

    report = {
        "batch_size": args.batch_size,
        "augment_two_views": count(lambda: aug(images)),
        "lars_step": count(stepper.opt.step),
        "ema_foreach": count(ema),
        "lars_params": n_params,
    }
    for key in ("augment_two_views", "lars_step", "ema_foreach"):
        r = report[key]
        print(f"{key:<18} {r['kernels']:5d} ops (+{r['views']} views)   most frequent: {r['top']}")
    print(f"(LARS over {n_params} parameter tensors; counts are per call, batch-size independent)")
    if args.json:
        from solo_offdiag.io import atomic_write_json

        atomic_write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
