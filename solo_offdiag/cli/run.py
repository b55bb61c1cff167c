"""``solo-offdiag run``: run a solo-learn script with byol_offdiag / simsiam_offdiag registered."""

from __future__ import annotations

import argparse
import sys
from typing import Any

_EPILOG = """\
examples (inside a solo-learn checkout):
  solo-offdiag run main_knn.py --pretrained_checkpoint_dir trained_models/byol_offdiag/<run id> ...
  solo-offdiag run main_umap.py --pretrained_checkpoint_dir trained_models/byol_offdiag/<run id> ...
  solo-offdiag run main_pretrain.py --config-name byol_offdiag hardware=cpu
(the Hydra scripts main_pretrain.py / main_linear.py also work without `run`: our Hydra plugin
registers the methods.)
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a solo-learn script (main_knn.py, main_umap.py, ...) with our methods registered",
        description=(
            "Register byol_offdiag and simsiam_offdiag in solo-learn's METHODS, then run SCRIPT "
            "as __main__ with the remaining arguments (solo's argparse scripts read METHODS "
            "directly, so this is the way to use our checkpoints with them)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("script", help="path of the solo-learn script, e.g. main_knn.py")
    parser.set_defaults(func=run, accepts_extra=True)


def run(args: argparse.Namespace) -> int:
    from solo_offdiag.solo_adapter.launcher import run_script
    from solo_offdiag.solo_adapter.requirements import SoloLearnNotInstalled

    try:
        return run_script(args.script, list(getattr(args, "extra", []) or []))
    except SoloLearnNotInstalled as err:
        print(f"solo-offdiag run: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"solo-offdiag run: error: {err}", file=sys.stderr)
        return 2
