"""``solo-offdiag plot RUN_DIR``: draw the analysis figures of a run from its saved data."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="draw PNG figures (head trajectory, spectrum, RankMe/alpha, alignment) of a run",
        description=(
            "Draw the analysis figures of a training run from the data the analysis callbacks "
            "saved in its analysis/ folder (metrics.csv, head_trajectory.npz, spectrum.npz, "
            "alignment.npz). RUN_DIR may be a run directory of `solo-offdiag pretrain`, its "
            "analysis/ folder, or a run folder of `solo-offdiag repro` (the analysis folder is "
            "found through its pretrain.json, or as the one analysis/ folder below it). "
            "Figures: head_trajectory.png (||W - I||_F and max/mean |off-diagonal| over "
            "steps), spectrum_<e>.png (log eigenvalues of the covariance over training), "
            "rankme_alpha.png, alignment.png and collapse_std.png. Figures without data are "
            "skipped. No training and no GPU needed."
        ),
    )
    parser.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        help="a run directory, its analysis/ folder, or a repro run folder",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="folder for the PNGs (default: <analysis folder>/figures)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from solo_offdiag.analysis.plots import plot_run

    try:
        written = plot_run(args.run_dir, args.out)
    except (FileNotFoundError, ValueError) as err:  # no analysis data, or an unreadable file
        print(f"solo-offdiag plot: {err}", file=sys.stderr)
        return 1
    if not written:
        print(f"solo-offdiag plot: no plottable data in {args.run_dir}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0
