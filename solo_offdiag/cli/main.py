"""``solo-offdiag``: one console script, one subcommand per module.

Each module listed in :data:`SUBCOMMANDS` defines ``add_parser(subparsers)``, which adds its
sub-parser and sets ``func`` (called with the parsed namespace, returning an exit code). Modules
keep their top-level imports light so that ``solo-offdiag --help`` stays fast; heavy imports
(solo-learn, Lightning, matplotlib) happen inside ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from solo_offdiag import __version__

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS: tuple[str, ...] = (
    "solo_offdiag.cli.heads",
    "solo_offdiag.cli.pretrain",
    "solo_offdiag.cli.run",
    "solo_offdiag.cli.plot",
    "solo_offdiag.cli.theory",
    "solo_offdiag.cli.repro",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand attached."""
    parser = argparse.ArgumentParser(
        prog="solo-offdiag",
        description=(
            "Off-diagonal prediction heads for BYOL/SimSiam (Wen & Li, NeurIPS 2022) on "
            "solo-learn: list heads, pretrain, run solo-learn scripts with our methods "
            "registered, plot analysis runs, simulate the theory, and reproduce the paper."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMANDS:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and dispatch to the chosen subcommand; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    # Only pass-through subcommands (pretrain, run) accept unparsed arguments.
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "accepts_extra", False):
        args.extra = extra
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C anywhere: the shell's code for SIGINT, no traceback
        print(f"solo-offdiag {args.command}: interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
