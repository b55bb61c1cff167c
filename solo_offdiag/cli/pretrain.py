"""``solo-offdiag pretrain``: pretrain with our Hydra configs, no solo-learn checkout needed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

_EPILOG = """\
overrides are Hydra overrides, as for solo-learn's main_pretrain.py, e.g.
  solo-offdiag pretrain hardware=cpu data.train_path=./datasets max_epochs=10
  solo-offdiag pretrain --config-name byol_offdiag_paper method_kwargs.predictor.kind=linear
  solo-offdiag pretrain --config-dir solo-learn/scripts/pretrain/cifar --config-name byol.yaml \\
      method=byol_offdiag
configs: byol_offdiag (CIFAR-10), byol_offdiag_cifar100, byol_offdiag_stl10,
byol_offdiag_imagenet100, simsiam_offdiag, byol_offdiag_paper; groups: augmentations=...,
logging=csv|wandb|wandb_offline, hardware=gpu|cpu. The run directory is printed at the end.
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain byol_offdiag / simsiam_offdiag (or any solo-learn method) from our configs",
        description=(
            "Self-supervised pretraining on solo-learn's library with our Hydra configs. "
            "Validates every key of ours before anything is built."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config-name", "-cn", default="byol_offdiag", help="primary config (default: byol_offdiag)"
    )
    parser.add_argument(
        "--config-dir",
        "-cd",
        default=None,
        help="directory searched first for --config-name (e.g. a solo-learn checkout's scripts/pretrain/cifar)",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="compose and validate the config, print it, and exit (needs no solo-learn)",
    )
    parser.set_defaults(func=run, accepts_extra=True)


def run(args: argparse.Namespace) -> int:
    from solo_offdiag.config import ConfigError
    from solo_offdiag.solo_adapter.requirements import SoloLearnNotInstalled

    overrides = list(getattr(args, "extra", []) or [])
    bad = [o for o in overrides if o.startswith("-")]
    if bad:
        print(f"solo-offdiag pretrain: unknown option {bad[0]!r} (overrides look like key=value)", file=sys.stderr)
        return 2
    try:
        from hydra.errors import HydraException
        from omegaconf import OmegaConf

        from solo_offdiag.solo_adapter.pretraining import compose_config, pretrain, validate_cfg

        if args.print_config:
            cfg = compose_config(overrides, config_name=args.config_name, config_dir=args.config_dir)
            validate_cfg(cfg)
            print(OmegaConf.to_yaml(cfg), end="")
            return 0
        run_dir = pretrain(overrides, config_name=args.config_name, config_dir=args.config_dir)
    except SoloLearnNotInstalled as err:
        print(f"solo-offdiag pretrain: {err}", file=sys.stderr)
        return 2
    except (ConfigError, HydraException, FileNotFoundError) as err:
        print(f"solo-offdiag pretrain: error: {err}", file=sys.stderr)
        return 2
    print(f"solo-offdiag: run directory {run_dir}")
    return 0
