"""``solo-offdiag theory``: run the simulated-theory experiments (Wen & Li 2022, section 2)."""

from __future__ import annotations

import argparse
from typing import Any

from solo_offdiag.claim_registry import verdict_text
from solo_offdiag.cli import argtypes

# The registry's descriptions (solo_offdiag.theory.experiments.describe_experiments), repeated here
# so that `--help` does not import torch; tests/test_single_source.py checks that they are equal.
EXPERIMENT_HELP = {
    "a_trainable_head": "dynamics with the trainable identity-initialised head, m = 2 (C4, C3)",
    "b_fixed_head": "head fixed at the identity (no predictor) vs trainable (C5)",
    "c_no_bn": "batch normalisation removed (C6: no acceleration)",
    "d_no_stopgrad": "stop-gradient removed from the target (C7)",
    "e_scaling": "escape time T1 vs d and vs eta, substitution time, peak E21 vs sqrt(eta_E/eta) (C8)",
    "f_wide_head": "m = 64 neurons, 64x64 head: ||E - I|| over training (exploratory, no verdict)",
    "g_sensitivity": "one-at-a-time sensitivity grid: trainable vs fixed head (not in `all`)",
}
#: The theory presets (solo_offdiag.theory.experiments.THEORY_PRESETS; same test).
PRESET_HELP = {
    "default": "the documented CPU regime (d = 64, plain cubic, alpha2 = 0.7, eta_E = eta/3, 8 seeds per arm)",
    "large": "the paper's orderings at GPU size (d = 512, batch 32768, plain cubic, eta_E < eta, "
             "slight head start; use --device cuda; not validated: C4 6/8 on CPU tuning seeds 0-7, docs/theory.md)",
    "smoke": "tiny sizes, same code paths (tests and CI; claims are not expected to pass)",
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    lines = "\n".join(f"  {k:<17} {v}" for k, v in EXPERIMENT_HELP.items())
    parser = subparsers.add_parser(
        "theory",
        help="simulate the paper's theory (substitution and acceleration effects)",
        description=(
            "Simulate the simple setting of Wen & Li (2022) and write figures (PNG), their data "
            "(NPZ/CSV) and summary.json with phase times and claim checks.\n\nexperiments:\n"
            f"{lines}\n  {'all':<17} every experiment above except g_sensitivity, into OUT/<name>/\n"
            f"  {'list':<17} print the experiment names"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("experiment", help="experiment name, 'all' or 'list'")
    parser.add_argument("--out", default=None, help="output directory (required unless 'list')")
    parser.add_argument("--preset", default="default", choices=tuple(PRESET_HELP),
                        help="; ".join(f"'{k}': {v}" for k, v in PRESET_HELP.items()))
    parser.add_argument("--device", default="cpu", type=argtypes.device, help="torch device, e.g. cpu or cuda")
    parser.add_argument("--seeds", type=argtypes.positive_int, default=None, help="seeds per arm (default: preset's)")
    parser.add_argument("--seed-offset", type=argtypes.non_negative_int, default=0, metavar="K",
                        help="use seeds K, K+1, ... (default 0; the default parameters were chosen on seeds 0-63)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=_main)
    return parser


def _main(args: argparse.Namespace) -> int:
    from solo_offdiag.repro import theory_output
    from solo_offdiag.theory import experiments

    if args.experiment == "list":
        for name, desc in experiments.describe_experiments().items():
            print(f"{name:<17} {desc}")
        return 0
    if args.out is None:
        print("solo-offdiag theory: --out DIR is required")
        return 2
    progress = not args.no_progress
    try:
        if args.experiment == "all":
            summary = theory_output.run_all(args.out, preset=args.preset, device=args.device,
                                            seeds=args.seeds, progress=progress, seed_offset=args.seed_offset)
            crit = {f"{n}:{c}": r for n, s in summary["experiments"].items() for c, r in s["criteria"].items()}
        else:
            summary = theory_output.run_experiment(args.experiment, args.out, preset=args.preset,
                                                   device=args.device, seeds=args.seeds, progress=progress,
                                                   seed_offset=args.seed_offset)
            crit = summary.get("criteria", {})
    except ValueError as err:
        print(f"solo-offdiag theory: {err}")
        return 2
    for key, r in crit.items():  # Outcome.to_dict()s; a negative control must reject its arm
        print(f"{key}: {verdict_text(r['status'], bool(r.get('negative_control')))} - {r['detail']}")
    print(f"wall time {summary['wall_time_s']:.1f} s; results in {args.out}")
    return 0
