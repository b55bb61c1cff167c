"""Run the theory experiments and write what they computed: ``trajectories.npz``, CSV tables,
PNG figures and ``summary.json`` (atomically), one folder per experiment.

:mod:`solo_offdiag.theory.experiments` computes only (torch + numpy); this module is the layer
above that touches the file system and matplotlib. ``solo-offdiag theory`` and the repro
pipeline both call :func:`run_experiment` / :func:`run_all`.
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any

from solo_offdiag.io import atomic_write_json, atomic_write_npz, atomic_write_text
from solo_offdiag.theory import experiments as T

__all__ = ["csv_text", "run_all", "run_experiment", "write_result"]


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV (lists and dicts written with ``repr``); empty string for no rows."""
    if not rows:
        return ""
    buf = io.StringIO()
    keys = list(rows[0])
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (r[k] if not isinstance(r[k], (list, dict)) else repr(r[k])) for k in keys})
    return buf.getvalue()


def _draw(kind: str, args: dict[str, Any]) -> Any:
    from solo_offdiag.repro import theory_plots as P

    if kind == "grid":
        return P.plot_grid(args["trajs"], args["phases"], args["titles"], args["suptitle"], arms=args["arms"])
    if kind == "dynamics":
        return P.plot_dynamics(args["traj"], args["phases"], args["title"])
    if kind == "offdiag":
        return P.plot_offdiag(args["traj"], args["phases"], args["title"])
    if kind == "scaling":
        return P.plot_scaling(args["x"], args["y"], args["slope"], args["intercept"], args["xlabel"],
                              args["ylabel"], args["title"], points=args.get("points"), target=args.get("target"),
                              note=args.get("note"))
    raise ValueError(f"unknown figure kind {kind!r}; known: grid, dynamics, offdiag, scaling")


def write_result(result: T.ExperimentResult, out_dir: Path | str) -> dict[str, Any]:
    """Write an experiment's arrays, tables, texts, figures and ``summary.json`` into ``out_dir``."""
    from solo_offdiag.repro import theory_plots as P

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if result.arrays:
        atomic_write_npz(out / "trajectories.npz", result.arrays)
    for name, rows in result.tables.items():
        atomic_write_text(out / name, csv_text(rows))
    for name, text in result.texts.items():
        atomic_write_text(out / name, text)
    written = []
    for name, kind, args in result.figures:
        if kind == "scaling" and not math.isfinite(args["slope"]):
            continue  # no finite fit (too few points): nothing to draw
        P.save(_draw(kind, args), out / name)
        written.append(name)
    result.summary["figures"] = written
    atomic_write_json(out / "summary.json", result.summary)
    return result.summary


def run_experiment(
    name: str, out_dir: Path | str, preset: str = "default", device: str = "cpu", seeds: int | None = None,
    progress: bool = True, seed_offset: int = 0,
) -> dict[str, Any]:
    """Compute experiment ``name`` (:func:`solo_offdiag.theory.experiments.compute_experiment`) and
    write its files into ``out_dir``; returns the summary."""
    result = T.compute_experiment(name, preset=preset, device=device, seeds=seeds, seed_offset=seed_offset,
                                  progress=progress)
    return write_result(result, out_dir)


def _pass_by_seed(results: dict[str, Any], out: Path) -> str | None:
    """Figure: one row per checked claim, one cell per seed (green pass, red fail)."""
    from solo_offdiag.repro import theory_plots as P

    rows = [(f"{c} ({name})", r["measured"]["per_seed"]) for name, s in results.items()
            for c, r in s["criteria"].items() if not r.get("negative_control") and "per_seed" in r.get("measured", {})]
    if not rows:
        return None
    P.save(P.plot_pass_by_seed(rows, results[next(iter(results))].get("seed_offset", 0)), out / "pass_by_seed.png")
    return "pass_by_seed.png"


def run_all(
    out_dir: Path | str, preset: str = "default", device: str = "cpu", seeds: int | None = None,
    progress: bool = True, seed_offset: int = 0,
) -> dict[str, Any]:
    """Run every experiment of ``IN_ALL`` into ``out_dir/<name>/``; write ``out_dir/summary.json``
    (claim results, wall times) and ``pass_by_seed.png``.

    The configs of all experiments are collected first and simulated as one batch per tensor
    structure, so ``all`` costs about as many batched steps as its longest experiments."""
    out = Path(out_dir)
    start = time.perf_counter()
    T.simulate_configs(T.plan_configs(T.IN_ALL, preset, seeds, seed_offset), device,
                       progress="all" if progress else False)
    sim_time = time.perf_counter() - start
    results: dict[str, Any] = {}
    for name in T.IN_ALL:
        s = run_experiment(name, out / name, preset=preset, device=device, seeds=seeds, progress=progress,
                           seed_offset=seed_offset)
        results[name] = {"criteria": s.get("criteria", {}), "wall_time_s": s["wall_time_s"],
                         "seed_offset": seed_offset}
    fig = _pass_by_seed(results, out)
    overall = {"preset": preset, "device": device, "seed_offset": seed_offset, "experiments": results,
               "figures": [fig] if fig else [], "simulation_wall_time_s": sim_time,
               "wall_time_s": time.perf_counter() - start}
    atomic_write_json(out / "summary.json", overall)
    return overall
