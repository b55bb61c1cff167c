"""Short image runs of the head study (docs/image_study.md): one solo-learn pretraining on digits
per (variant, head, seed), then kNN / linear probe and the analysis summary, one JSON line each.

    .venv-solo/bin/python artifact/image_study.py --variant adam_wd --heads offdiag identity mlp \
        --seeds 0 --out runs/study

A variant is a named list of Hydra overrides (VARIANTS below) on a packaged config, with the
digits set-up of BASE; ``--variant pinned`` is the smoke preset's own recipe, read from
artifact/configs/image_heads.yaml (the source of truth: its config and overrides). ``--set
KEY=VALUE`` adds more; a later value of a key replaces an earlier one (``--epochs`` last). Results: ``<out>/results.jsonl``
(appended) and each run's folder ``<out>/<variant>-<head>-s<seed>/``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

BASE = [
    "hardware=cpu", "data.num_workers=1", "data.dataset=custom", "optimizer.batch_size=32",
    "++scheduler.warmup_epochs=1", "augmentations.0.crop_size=16", "augmentations.1.crop_size=16",
    "method_kwargs.proj_hidden_dim=512", "method_kwargs.proj_output_dim=64",
    "method_kwargs.pred_hidden_dim=512", "++method_kwargs.analysis.every_n_steps=11",
    "++limit_val_batches=0", "++num_sanity_val_steps=0", "checkpoint.frequency=100",
    "auto_resume.enabled=false", "wandb.enabled=false", "++enable_progress_bar=false",
]
#: name -> (config name, overrides)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    # solo-learn's LARS recipe as in the smoke preset (the starting point)
    "lars": ("byol_offdiag", []),
    # LARS, head group without the trust ratio (plain SGD + momentum at the global lr)
    "lars_head_sgd": ("byol_offdiag", ["++method_kwargs.predictor.lars.trust_ratio=false"]),
    # the paper preset (Adam 3e-3 head, absolute; network Adam 3e-3 x 32/256)
    "adam": ("byol_offdiag_paper", []),
    # Adam, weight decay on the head (coupled L2) as the restoring force towards W = I
    "adam_wd": ("byol_offdiag_paper", ["method_kwargs.predictor.weight_decay=0.05"]),
    # AdamW: decoupled decay on the head (lr * wd * A per step), which a consistent head gradient
    # (Adam's normalised step ~ lr) outweighs and a noise-dominated one does not
    "adamw_wd": ("byol_offdiag_paper", ["optimizer.name=adamw", "method_kwargs.predictor.weight_decay=5.0"]),
}


def merge_overrides(*lists: list[str]) -> list[str]:
    """Hydra overrides with one entry per key, the last value winning (Hydra itself refuses a
    key given twice); the key is the text before ``=`` without a leading ``+``/``++``.

    >>> merge_overrides(["a=1", "++b=2"], ["b=3", "c=4"])
    ['a=1', 'b=3', 'c=4']
    """
    merged: dict[str, str] = {}
    for item in (o for overrides in lists for o in overrides):
        merged.pop(key := item.split("=", 1)[0].lstrip("+"), None)
        merged[key] = item
    return list(merged.values())


def pinned_variant() -> tuple[str, list[str]]:
    """The smoke preset's config name and overrides (artifact/configs/image_heads.yaml)."""
    from solo_offdiag.repro.experiments import image_grid

    grid = image_grid("smoke")
    return grid["grid"][0]["config_name"], list(grid["overrides"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", required=True, choices=sorted([*VARIANTS, "pinned"]),
                    help="named overrides (VARIANTS); 'pinned': the smoke preset's recipe")
    ap.add_argument("--heads", nargs="+", default=["offdiag"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--epochs", type=int, default=8, help="epochs of 44 steps (default 8 = 352 steps)")
    ap.add_argument("--set", nargs="*", default=[], help="extra Hydra overrides")
    ap.add_argument("--tag", default="", help="suffix of the run name (for --set variants)")
    ap.add_argument("--out", type=Path, default=Path("runs/study"))
    ap.add_argument("--no-probe", action="store_true", help="skip the linear probe / kNN")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from solo_offdiag.repro.digits import export_digits
    from solo_offdiag.repro.experiments import _last_checkpoint, analysis_summary
    from solo_offdiag.repro.probe import evaluate_checkpoint
    from solo_offdiag.solo_adapter import pretrain

    out = args.out.resolve()
    data = export_digits(out.parent / "digits32")
    config_name, variant = pinned_variant() if args.variant == "pinned" else VARIANTS[args.variant]
    for seed in args.seeds:
        for head in args.heads:
            name = f"{args.variant}{args.tag}-{head}-s{seed}"
            run_dir = out / name
            overrides = merge_overrides(
                BASE, variant, args.set,
                [f"max_epochs={args.epochs}", f"method_kwargs.predictor.kind={head}", f"++seed={seed}",
                 f"name={name}", f"checkpoint.dir={run_dir}", f"data.train_path={data / 'train'}",
                 f"data.val_path={data / 'val'}"])
            t0 = time.time()
            solo_run = Path(pretrain(overrides, config_name=config_name))
            row = {"variant": args.variant + args.tag, "head": head, "seed": seed, "config": config_name,
                   "overrides": [*variant, *args.set], "pretrain_s": round(time.time() - t0, 1),
                   "run_dir": str(solo_run)}
            row.update(analysis_summary(solo_run / "analysis"))
            if not args.no_probe:
                cargs = json.loads((solo_run / "args.json").read_text())
                probe = evaluate_checkpoint(_last_checkpoint(solo_run), cargs, data)
                row.update(probe_acc1=probe["probe_acc1"], knn_acc1=probe["knn_acc1"])
            out.mkdir(parents=True, exist_ok=True)
            with open(out / "results.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
