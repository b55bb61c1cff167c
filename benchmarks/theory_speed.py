"""Simulated SGD steps per second of the theory model: one run vs a batch of runs (same process).

    python benchmarks/theory_speed.py --batch 16 --steps 500
"""

from __future__ import annotations

import argparse
import time

import torch

from solo_offdiag.theory import TheoryConfig, seeds_of, simulate_batch


def _rate(cfgs: list[TheoryConfig], device: str) -> float:
    simulate_batch([c.replace(steps=5) for c in cfgs], device=device)  # warm-up
    start = time.perf_counter()
    simulate_batch(cfgs, device=device)
    return cfgs[0].steps * len(cfgs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16, help="runs (seeds) simulated together")
    parser.add_argument("--steps", type=int, default=500, help="SGD steps per run")
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--m", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sampler", default="projected", choices=("projected", "full"))
    args = parser.parse_args()
    cfg = TheoryConfig(d=args.d, m=args.m, steps=args.steps, log_every=100, sampler=args.sampler)
    single = _rate([cfg], args.device)
    batched = _rate(seeds_of(cfg, args.batch), args.device)
    print(f"device={args.device} d={args.d} m={args.m} N={cfg.batch_size} sampler={args.sampler}")
    print(f"single run : {single:10.0f} run-steps/s")
    print(f"batch of {args.batch:<3}: {batched:10.0f} run-steps/s  (x{batched / single:.1f} vs single)")


if __name__ == "__main__":
    main()
