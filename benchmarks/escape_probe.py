"""Escape statistics of C8's phase-I runs (neuron 1 alone) per dimension, head start and batch.

C8 fits the median escape time T1 (``|cos(w1, v1)|`` from ``C / sqrt(d)`` to
:data:`solo_offdiag.theory.phases.ESCAPE`) over d. At large d the SGD noise can shrink the head
start before the drift takes over, and such a run never escapes; this probe counts them and gives
the censored median (a never-escaped run counted as late:
:func:`solo_offdiag.theory.experiments.censored_median`) and the 10% / 90% quantiles of the runs
that escaped, for each ``--case D:BATCH``. Every run is ``e_scaling``'s escape config of the preset
(:func:`solo_offdiag.theory.experiments.escape_config`) with the case's d and batch, ``--steps``
and head start ``--head-start-c / sqrt(d)``: the probe behind the table "C8 up to d = 1024" of
docs/theory.md. Choose on the tuning seeds (0-63 for the theory; the table used 0-95 for the
escape runs alone).

    python benchmarks/escape_probe.py --seeds 96 --steps 6000 --head-start-c 2 \\
        --case 512:128 --case 1024:512 --out /tmp/escape.json
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np

from solo_offdiag.io import atomic_write_json
from solo_offdiag.theory.experiments import (
    HEAD_START_C,
    THEORY_PRESETS,
    censored_median,
    escape_config,
    escape_times,
)
from solo_offdiag.theory.model import seeds_of, simulate_batch
from solo_offdiag.theory.phases import ESCAPE, detect_phases


def parse_case(text: str) -> tuple[int, int]:
    """``D:BATCH`` -> (d, batch)."""
    d, sep, batch = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(d), int(batch)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--case: got {text!r}; expected D:BATCH, e.g. 1024:512") from None


def probe(preset: str, d: int, batch: int, head_start_c: float, steps: int, seeds: int, seed_offset: int,
          device: str = "cpu") -> dict[str, Any]:
    """Simulate the escape runs of one case; return the escape statistics (JSON-ready)."""
    if not head_start_c / math.sqrt(d) < ESCAPE:
        raise ValueError(f"--head-start-c: got {head_start_c:g}; allowed: < {ESCAPE:g} x sqrt({d}) "
                         "(neuron 1 must start below the escape threshold)")
    cfg = escape_config(preset, d, head_start_c, batch_size=batch, steps=steps, seed=seed_offset)
    start = time.process_time()
    traj = simulate_batch(seeds_of(cfg, seeds), device=device)
    cpu = time.process_time() - start
    t = escape_times([detect_phases(traj.arm(i)) for i in range(seeds)])
    done = t[np.isfinite(t)]
    median = censored_median(t)
    return {"d": d, "batch_size": batch, "head_start_c": head_start_c, "steps": steps,
            "seeds": [seed_offset, seed_offset + seeds - 1], "escaped": int(done.size), "runs": seeds,
            "censored_median": median if math.isfinite(median) else None,
            "q10_q90_of_escaped": [float(np.percentile(done, 10)), float(np.percentile(done, 90))] if done.size else None,
            "t_escape": [None if math.isnan(x) else float(x) for x in t], "cpu_s": round(cpu, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", type=parse_case, action="append", required=True, metavar="D:BATCH",
                        help="a dimension and its batch size (repeat)")
    parser.add_argument("--preset", choices=sorted(THEORY_PRESETS), default="default",
                        help="theory preset whose escape config is used (default: default)")
    parser.add_argument("--head-start-c", type=float, default=HEAD_START_C,
                        help=f"head start |cos(w1, v1)| = C / sqrt(d) (default {HEAD_START_C:g}, e_scaling's)")
    parser.add_argument("--steps", type=int, default=6000, help="SGD steps per run (default 6000)")
    parser.add_argument("--seeds", type=int, default=96, help="runs per case (default 96)")
    parser.add_argument("--seed-offset", type=int, default=0, help="first seed (tuning seeds start at 0)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", help="JSON file for the results (written atomically after every case)")
    args = parser.parse_args()
    if args.seeds < 1 or args.steps < 1:
        parser.error(f"--seeds and --steps must be >= 1; got {args.seeds} and {args.steps}")
    results = []
    print(f"{'d':>5} {'batch':>6} {'C':>4} {'escaped':>9} {'median T1':>10} {'q10/q90 (escaped)':>18} {'CPU-s':>6}")
    for d, batch in args.case:
        try:
            res = probe(args.preset, d, batch, args.head_start_c, args.steps, args.seeds, args.seed_offset, args.device)
        except ValueError as err:
            parser.error(str(err))
        results.append(res)
        med = "none" if res["censored_median"] is None else f"{res['censored_median']:g}"
        q = "-" if res["q10_q90_of_escaped"] is None else "{:g} / {:g}".format(*res["q10_q90_of_escaped"])
        print(f"{d:>5} {batch:>6} {args.head_start_c:>4g} {res['escaped']:>4}/{res['runs']:<4} {med:>10} {q:>18} "
              f"{res['cpu_s']:>6}", flush=True)
        if args.out:
            atomic_write_json(args.out, {"cases": results})


if __name__ == "__main__":
    main()
