"""``solo-offdiag heads``: list the prediction-head kinds and their options."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "heads",
        help="list the prediction-head kinds (method_kwargs.predictor.kind) and their options",
        description=(
            "List the registered prediction-head kinds, usable as method_kwargs.predictor.kind, "
            "with their options (method_kwargs.predictor.options) and defaults."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print a JSON object kind -> options")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from solo_offdiag.heads import HEADS, head_options, list_heads

    if args.json:
        print(json.dumps({kind: head_options(kind) for kind in list_heads()}, indent=2, sort_keys=True))
        return 0
    width = max(len(kind) for kind in list_heads())
    for kind in list_heads():
        cls = HEADS[kind]
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        options = ", ".join(f"{k}={v!r}" for k, v in head_options(kind).items()) or "-"
        linear = "linear" if cls.is_linear else "nonlinear"
        print(f"{kind:<{width}}  [{linear}; options: {options}]  {summary}")
    return 0
