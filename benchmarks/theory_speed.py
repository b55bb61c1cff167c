"""Simulated SGD steps per second of the theory model (solo_offdiag.theory), baselines in the same run.

Prints, for the default-preset model (m = 2) batched over ``--batch`` runs: the hand-written
backward (what ``solo-offdiag theory`` uses) against the autograd reference (also with torch's default
CPU thread count, the previous code path), and a batch of 1 against the batch. ``steps/s`` counts batched steps (all runs advance together), ``run-steps/s``
counts ``steps/s x runs``. Also times the m = 64 head of ``f_wide_head``.

``--experiments PRESET`` instead times each experiment of ``solo-offdiag theory all`` on its own
(compute only, simulation cache emptied before each, so shared arms are counted in every
experiment that uses them), then ``all`` with its shared cache, in wall and CPU seconds.

    python benchmarks/theory_speed.py --batch 16 --steps 300
    python benchmarks/theory_speed.py --experiments default
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from solo_offdiag.theory import TheoryConfig, seeds_of, simulate_batch


def _rate(cfgs: list[TheoryConfig], device: str, grad: str, threads: int | None = 1) -> tuple[float, float]:
    simulate_batch([c.replace(steps=10) for c in cfgs], device=device, grad=grad, threads=threads)  # warm-up
    start = time.perf_counter()
    simulate_batch(cfgs, device=device, grad=grad, threads=threads)
    steps_per_s = cfgs[0].steps / (time.perf_counter() - start)
    return steps_per_s, steps_per_s * len(cfgs)


def _time_experiments(preset: str, device: str) -> None:
    from solo_offdiag.theory import experiments as T

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"theory preset={preset} device={device} load(1 min)={load:.2f} (compute only, no files)")
    print(f"{'experiment':<18} {'wall s':>8} {'CPU s':>8}")
    total_w = total_c = 0.0
    for name in T.IN_ALL:
        T._CACHE.clear()
        w0, c0 = time.perf_counter(), time.process_time()
        T.compute_experiment(name, preset=preset, device=device, progress=False)
        w, c = time.perf_counter() - w0, time.process_time() - c0
        total_w, total_c = total_w + w, total_c + c
        print(f"{name:<18} {w:8.1f} {c:8.1f}")
    print(f"{'sum':<18} {total_w:8.1f} {total_c:8.1f}")
    T._CACHE.clear()
    w0, c0 = time.perf_counter(), time.process_time()
    T.simulate_configs(T.plan_configs(T.IN_ALL, preset), device)
    for name in T.IN_ALL:
        T.compute_experiment(name, preset=preset, device=device, progress=False)
    print(f"{'all (shared)':<18} {time.perf_counter() - w0:8.1f} {time.process_time() - c0:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16, help="runs (seeds) simulated together")
    parser.add_argument("--steps", type=int, default=300, help="SGD steps per run")
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--experiments", metavar="PRESET", default=None,
                        help="time each theory experiment at this theory preset instead (default, smoke)")
    args = parser.parse_args()
    if args.experiments is not None:
        _time_experiments(args.experiments, args.device)
        return
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cfg = TheoryConfig(d=args.d, steps=args.steps, log_every=20)
    print(f"device={args.device} d={args.d} N={cfg.batch_size} steps={args.steps} "
          f"load(1 min)={load:.2f} torch={torch.__version__}")
    print("(rows run with 1 torch thread, as simulate_batch does on CPU, unless 'thr' says otherwise;\n"
          " the first row is the previous code path: autograd with torch's default thread count)")
    print(f"{'case':<38} {'steps/s':>9} {'run-steps/s':>12}")
    rows = [
        (f"m=2, batch {args.batch}, autograd, {torch.get_num_threads()} thr", seeds_of(cfg, args.batch), "autograd", None),
        ("m=2, batch 1, autograd", [cfg], "autograd"),
        ("m=2, batch 1, analytic", [cfg], "analytic"),
        (f"m=2, batch {args.batch}, autograd", seeds_of(cfg, args.batch), "autograd"),
        (f"m=2, batch {args.batch}, analytic", seeds_of(cfg, args.batch), "analytic"),
        ("m=64 (f_wide_head), batch 2, autograd", seeds_of(cfg.replace(m=64, head_start=None), 2), "autograd"),
        ("m=64 (f_wide_head), batch 2, analytic", seeds_of(cfg.replace(m=64, head_start=None), 2), "analytic"),
    ]
    rates = {}
    for name, cfgs, grad, *threads in rows:
        rates[name] = _rate(cfgs, args.device, grad, *threads)
        print(f"{name:<38} {rates[name][0]:9.0f} {rates[name][1]:12.0f}")
    b = f"m=2, batch {args.batch}"
    print(f"analytic vs autograd (batch {args.batch}): x{rates[b + ', analytic'][0] / rates[b + ', autograd'][0]:.1f}; "
          f"batch {args.batch} vs batch 1 (analytic, run-steps/s): "
          f"x{rates[b + ', analytic'][1] / rates['m=2, batch 1, analytic'][1]:.1f}")


if __name__ == "__main__":
    main()
