"""Per-seed pass rates of the theory claims C3 (theory side), C4, C5, C6 and C7 for model variants.

Each ``--set NAME:KEY=VALUE,KEY=VALUE`` is the theory preset's base config (``--preset``) with
those fields changed (any :class:`TheoryConfig` field, plus ``eta_E_over_eta`` for
``eta_E = eta x ratio``). For every setting the four arms of the claims (trainable head, head
fixed at I, no BN, no stop-gradient) run on the same seeds, paired as in the experiments, and the
per-run predicates of :mod:`solo_offdiag.theory.criteria` are counted per seed: this is the sweep
behind the parameter choices of docs/theory.md ("Departures"). Choose parameters on the tuning
seeds 0-63 only; held-out seeds are for a frozen setting.

``--arms`` runs only some arms (the claims that need a missing arm are left out: C3-theory and C4
need ``trainable``, C5 ``fixed``, C6 ``trainable`` and ``no_bn``, C7 ``trainable`` and
``no_stop_gradient``). Each claim's failing seeds are printed, and the JSON keeps the main phase
values of every trainable run (``phases``), to see *how* a seed fails.

The JSON output (``--out``) is rewritten atomically after every setting, and settings already in
it with the same fields, seeds and arms are not run again (re-run the command to resume).

    python benchmarks/theory_sweep.py --seeds 64 --out /tmp/sweep.json \\
        --set base: --set cubic:activation=truncated_cubic --set etaE1:eta_E_over_eta=1
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from solo_offdiag.io import atomic_write_json
from solo_offdiag.theory import criteria
from solo_offdiag.theory.experiments import THEORY_PRESETS, base_config
from solo_offdiag.theory.model import seeds_of, simulate_batch
from solo_offdiag.theory.phases import detect_phases

ARMS = {"trainable": {}, "fixed": {"head_trainable": False}, "no_bn": {"batch_norm": False},
        "no_stop_gradient": {"stop_gradient": False}}
#: claim -> the arms its per-seed verdict needs
CLAIM_ARMS = {"C3-theory": ("trainable",), "C4": ("trainable",), "C5": ("fixed",),
              "C6": ("trainable", "no_bn"), "C7": ("trainable", "no_stop_gradient")}
CLAIMS = tuple(CLAIM_ARMS)
#: phase values kept per trainable run in the JSON (``detect_phases`` keys)
PHASE_KEYS = ("t_escape", "t1", "t_v2", "t_both", "e21_peak", "t_sub_peak", "offdiag_peak", "final_alignment")


def parse_setting(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME:KEY=VALUE,...`` -> (name, {key: value}); values are JSON (numbers, strings, null)
    or bare words (strings)."""
    name, sep, rest = text.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--set: got {text!r}; expected NAME:KEY=VALUE,... (NAME: for the base)")
    changes: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise argparse.ArgumentTypeError(f"--set {name}: got {item!r}; expected KEY=VALUE")
        try:
            changes[key] = json.loads(value)
        except json.JSONDecodeError:
            changes[key] = value
    return name, changes


def config_of(preset: str, changes: dict[str, Any]) -> Any:
    base = base_config(preset)
    changes = dict(changes)
    ratio = changes.pop("eta_E_over_eta", None)
    cfg = base.replace(**changes)
    return cfg.replace(eta_E=cfg.eta * ratio) if ratio is not None else cfg


def per_seed(runs: dict[str, list[dict[str, Any]]]) -> dict[str, list[bool]]:
    """Per-seed verdicts of each claim whose arms (``CLAIM_ARMS``) are in ``runs``, from the
    paired runs."""
    verdict = {
        "C3-theory": lambda: [criteria.c3_run(r) for r in runs["trainable"]],
        "C4": lambda: [criteria.c4_run(r) for r in runs["trainable"]],
        "C5": lambda: [criteria.c5_run(r) for r in runs["fixed"]],
        "C6": lambda: [criteria.later_run(f, a, "t_v2") for f, a in zip(runs["trainable"], runs["no_bn"])],
        "C7": lambda: [criteria.later_run(f, a, "t_both") for f, a in zip(runs["trainable"], runs["no_stop_gradient"])],
    }
    return {c: verdict[c]() for c, needs in CLAIM_ARMS.items() if all(a in runs for a in needs)}


def run_setting(cfg: Any, seeds: int, offset: int, chunk: int, label: str, device: str,
                arms: tuple[str, ...] = tuple(ARMS)) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in arms}
    w0, c0 = time.perf_counter(), time.process_time()
    for start in range(offset, offset + seeds, chunk):
        n = min(chunk, offset + seeds - start)
        planned = {a: seeds_of(cfg.replace(seed=start, **ARMS[a]), n) for a in arms}
        traj = simulate_batch([c for v in planned.values() for c in v], device=device,
                              progress=f"{label} seeds {start}-{start + n - 1}")
        k = 0
        for a, v in planned.items():
            for _ in v:
                runs[a].append(detect_phases(traj.arm(k)))
                k += 1
    verdicts = per_seed(runs)
    trainable = runs.get("trainable", [])
    return {
        "config": cfg.to_dict(), "seeds": [offset, offset + seeds - 1], "arms": list(arms),
        "passes": {c: int(sum(v)) for c, v in verdicts.items()}, "n": seeds,
        "per_seed": {c: [bool(x) for x in v] for c, v in verdicts.items()},
        "median_abs_e21_peak": sorted(abs(r["e21_peak"]) for r in trainable)[seeds // 2] if trainable else None,
        "phases": [{k: r.get(k) for k in PHASE_KEYS} for r in trainable],  # detect_phases: JSON-ready
        "wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0,
        "load_avg_1min_end": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", dest="sets", action="append", type=parse_setting, required=True,
                        metavar="NAME:KEY=VALUE,...", help="a setting (repeat); 'NAME:' alone is the preset's base")
    parser.add_argument("--preset", default="default", choices=sorted(THEORY_PRESETS))
    parser.add_argument("--seeds", type=int, default=64, help="seeds per setting (default 64)")
    parser.add_argument("--seed-offset", type=int, default=0, help="first seed (tuning seeds: 0-63)")
    parser.add_argument("--chunk", type=int, default=16, help="seeds simulated together (x4 arms)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS),
                        help="arms to run (default: all four); claims needing another arm are left out")
    parser.add_argument("--out", type=Path, required=True, help="JSON results (resumable)")
    args = parser.parse_args()
    if args.seeds < 1 or args.chunk < 1 or args.seed_offset < 0:
        parser.error(f"--seeds {args.seeds}, --chunk {args.chunk}: must be >= 1; --seed-offset {args.seed_offset}: >= 0")
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    for name, changes in args.sets:
        cfg = config_of(args.preset, changes)
        old = results.get(name)
        arms = tuple(a for a in ARMS if a in args.arms)
        seeds = [args.seed_offset, args.seed_offset + args.seeds - 1]
        if old and old["config"] == cfg.to_dict() and old["seeds"] == seeds and old.get("arms", list(ARMS)) == list(arms):
            print(f"{name}: cached")
        else:
            results[name] = {"changes": changes, **run_setting(cfg, args.seeds, args.seed_offset, args.chunk, name,
                                                               args.device, arms)}
            atomic_write_json(args.out, results)
        r = results[name]
        rates = "  ".join(f"{c} {k}/{r['n']}" for c, k in r["passes"].items())
        peak = r["median_abs_e21_peak"]
        print(f"{name:<24} {rates}  |E21| peak {'-' if peak is None else f'{peak:.3f}'}  "
              f"{r['cpu_s']:.0f} CPU-s, {r['wall_s']:.0f} s wall, load {r['load_avg_1min_end']:.1f}", flush=True)
        for c, verdicts in r["per_seed"].items():
            failed = [r["seeds"][0] + i for i, ok in enumerate(verdicts) if not ok]
            if failed:
                print(f"    {c} fails on seeds {', '.join(map(str, failed))}", flush=True)


if __name__ == "__main__":
    main()
