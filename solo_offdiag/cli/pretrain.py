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
    """Exit codes: 0 done (or already finished), 2 bad input (one message, no traceback),
    130 Ctrl-C, 143 SIGTERM (a resumable checkpoint is saved; the same command resumes)."""
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
        from omegaconf.errors import OmegaConfBaseException

        from solo_offdiag.solo_adapter.pretraining import (
            CorruptImage,
            Preempted,
            check_data_paths,
            compose_config,
            config_notes,
            is_rank_zero,
            pretrain,
            validate_cfg,
        )

        if args.print_config:
            cfg = compose_config(overrides, config_name=args.config_name, config_dir=args.config_dir)
            validate_cfg(cfg)
            print(OmegaConf.to_yaml(cfg), end="")
            for note in config_notes(cfg):
                print(f"solo-offdiag: note: {note}", file=sys.stderr)
            try:
                check_data_paths(OmegaConf.to_container(cfg, resolve=True))
            except ConfigError as err:
                print(f"solo-offdiag: warning: {err}; a run would stop here", file=sys.stderr)
            return 0
        run_dir = pretrain(overrides, config_name=args.config_name, config_dir=args.config_dir)
    except SoloLearnNotInstalled as err:
        print(f"solo-offdiag pretrain: {err}", file=sys.stderr)
        return 2
    except (ConfigError, HydraException, OmegaConfBaseException, FileNotFoundError) as err:
        print(f"solo-offdiag pretrain: error: {_one_message(err)}", file=sys.stderr)
        return 2
    except Preempted as err:
        if is_rank_zero():
            print(f"solo-offdiag: {err}", flush=True)
            print(f"solo-offdiag: run directory {err.run_dir}", flush=True)
        return 143
    except KeyboardInterrupt as err:
        print(f"solo-offdiag pretrain: interrupted{f': {err}' if str(err) else ''}", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - a data file named in the message (DataLoader workers
        # re-raise it with the worker's traceback as text: keep our line only)
        line = _corrupt_image_line(err, CorruptImage)
        if line is None:
            raise
        print(f"solo-offdiag pretrain: error: {line}", file=sys.stderr)
        return 2
    if is_rank_zero():
        print(f"solo-offdiag: run directory {run_dir}")
    return 0


def _one_message(err: BaseException) -> str:
    """Hydra/OmegaConf errors on one line, without OmegaConf's ``full_key``/``object_type`` block."""
    context = ("full_key:", "object_type=", "reference_type=")
    text = str(err).strip().split("Config search path:")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(context)]
    return " ".join(lines[:12]) if lines else type(err).__name__


def _corrupt_image_line(err: BaseException, corrupt: type) -> str | None:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, corrupt) or (isinstance(seen, ValueError) and "cannot read this image" in str(seen)):
            lines = [line for line in str(seen).splitlines() if "cannot read this image" in line]
            return (lines[-1].split("CorruptImage: ")[-1] if lines else str(seen)).strip()
        seen = seen.__cause__ or seen.__context__
    return None
