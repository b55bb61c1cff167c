"""Registry of the named theory experiments (timm-style) and their runner.

``run_experiment(name, out_dir)`` simulates the experiment's arms (each arm batched over seeds),
detects the phases, checks the claims, and writes atomically into ``out_dir``: PNG figures, the
data behind them (``*.npz`` trajectories, ``*.csv`` tables) and ``summary.json``.

Examples:
    >>> "a_trainable_head" in list_experiments()
    True
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from solo_offdiag.io import atomic_write_json, atomic_write_npz, atomic_write_text
from solo_offdiag.theory import criteria
from solo_offdiag.theory.config import STRUCTURAL_FIELDS, TheoryConfig
from solo_offdiag.theory.model import Trajectory, seeds_of, simulate_batch
from solo_offdiag.theory.phases import detect_phases

__all__ = [
    "EXPERIMENTS",
    "PRESETS",
    "Context",
    "UnknownExperimentError",
    "base_config",
    "list_experiments",
    "plan_configs",
    "register_experiment",
    "run_all",
    "simulate_configs",
    "run_experiment",
]

#: ``default``: the documented regime (docs/theory.md). ``smoke``: same code paths, tiny sizes,
#: for tests and CI (claims are not expected to pass there).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {"seeds": 8, "overrides": {}},
    "smoke": {"seeds": 4, "overrides": {"d": 32, "steps": 2000, "log_every": 10}},
}


class UnknownExperimentError(ValueError):
    """Raised for an experiment name that is not registered; the message lists the known ones."""


@dataclass
class Context:
    """What an experiment function receives."""

    out_dir: Path
    preset: str
    device: str
    seeds: int
    progress: bool = True
    plan: list[TheoryConfig] | None = None  # planning mode: collect the configs, simulate nothing

    def base(self, **changes: Any) -> TheoryConfig:
        return base_config(self.preset).replace(**changes)


ExperimentFn = Callable[[Context], dict[str, Any]]
#: name -> (function, one-line description). Fill it with :func:`register_experiment`.
EXPERIMENTS: dict[str, tuple[ExperimentFn, str]] = {}
#: run by ``run_all`` / ``solo-offdiag theory all`` (the sensitivity sweep is run on its own).
IN_ALL: list[str] = []


def register_experiment(name: str, description: str, in_all: bool = True) -> Callable[[ExperimentFn], ExperimentFn]:
    """Decorator registering an experiment function under ``name``."""

    def decorator(fn: ExperimentFn) -> ExperimentFn:
        if name in EXPERIMENTS and EXPERIMENTS[name][0] is not fn:
            raise ValueError(f"experiment {name!r} is already registered")
        EXPERIMENTS[name] = (fn, description)
        if in_all and name not in IN_ALL:
            IN_ALL.append(name)
        return fn

    return decorator


def list_experiments() -> list[str]:
    """Registered experiment names, sorted."""
    return sorted(EXPERIMENTS)


def describe_experiments() -> dict[str, str]:
    return {name: EXPERIMENTS[name][1] for name in list_experiments()}


def base_config(preset: str = "default") -> TheoryConfig:
    """The documented base config (the TheoryConfig defaults) with the preset's overrides."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    return TheoryConfig(**PRESETS[preset]["overrides"])


# ------------------------------------------------------------------------------------------
# Simulation with a per-process cache, batched over every config an experiment (or `all`) needs
# ------------------------------------------------------------------------------------------
#: (config, device) -> unbatched trajectory. An arm's trajectory depends only on its own config
#: (per-seed data streams, see ``simulate_batch``), so a config shared by several experiments
#: (the full model of a, b, c, d) is simulated once and the figures of all of them agree.
_CACHE: dict[tuple[TheoryConfig, str], Trajectory] = {}


class _Planned(Exception):
    """Raised by ``_run_arms`` in planning mode, after recording the experiment's configs."""


def clear_cache() -> None:
    _CACHE.clear()


def _structure(cfg: TheoryConfig) -> tuple[Any, ...]:
    return tuple(getattr(cfg, name) for name in STRUCTURAL_FIELDS)


def simulate_configs(cfgs: list[TheoryConfig], device: str = "cpu", progress: bool | str = False) -> None:
    """Simulate every config not yet cached, as few batches as possible (one per structure)."""
    todo = [c for c in dict.fromkeys(cfgs) if (c, device) not in _CACHE]
    groups: dict[tuple[Any, ...], list[TheoryConfig]] = {}
    for cfg in todo:
        groups.setdefault(_structure(cfg), []).append(cfg)
    for i, group in enumerate(groups.values()):
        label = progress if isinstance(progress, str) else "theory"
        traj = simulate_batch(group, device=device,
                              progress=f"{label} [{i + 1}/{len(groups)}: {len(group)} runs]" if progress else False)
        for k, cfg in enumerate(group):
            _CACHE[(cfg, device)] = traj.arm(k)


def _stack(trajs: list[Trajectory], cfgs: list[TheoryConfig]) -> Trajectory:
    return Trajectory(
        steps=trajs[0].steps,
        alignment=np.stack([t.alignment for t in trajs]),
        head=np.stack([t.head for t in trajs]),
        loss=np.stack([t.loss for t in trajs]),
        weight_norm=np.stack([t.weight_norm for t in trajs]),
        configs=list(cfgs),
        wall_time_s=sum(t.wall_time_s for t in trajs),
    )


def _run_arms(ctx: Context, arms: dict[str, list[TheoryConfig]], name: str) -> dict[str, Any]:
    """Simulate each arm (all arms of the experiment batched together); return trajectories and
    per-run phases. In planning mode only record the configs."""
    all_cfgs = [c for cfgs in arms.values() for c in cfgs]
    if ctx.plan is not None:
        ctx.plan.extend(all_cfgs)
        raise _Planned
    simulate_configs(all_cfgs, ctx.device, progress=name if ctx.progress else False)
    out: dict[str, Any] = {}
    for arm, cfgs in arms.items():
        traj = _stack([_CACHE[(c, ctx.device)] for c in cfgs], cfgs)
        runs = []
        for i, cfg in enumerate(cfgs):
            ph = detect_phases(traj.arm(i))
            ph.update(seed=cfg.seed, d=cfg.d, eta=cfg.eta, eta_E=cfg.eta_E if cfg.head_trainable else 0.0)
            runs.append(ph)
        out[arm] = {"traj": traj, "runs": runs, "configs": cfgs}
    return out


def _aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float | None:
        vals = [r[key] for r in runs if r.get(key) is not None]
        return float(np.median(vals)) if vals else None

    n = max(len(runs), 1)
    return {
        "n_runs": len(runs),
        "median_t1": med("t1"),
        "median_t_v2": med("t_v2"),
        "median_t_both": med("t_both"),
        "median_t_sub_peak": med("t_sub_peak"),
        "median_abs_e21_peak": float(np.median([abs(r["e21_peak"]) for r in runs])) if runs else None,
        "median_t_return": med("t_return"),
        "median_offdiag_final": med("offdiag_final"),
        "fraction_v2_learned": sum(r["t_v2"] is not None for r in runs) / n,
        "fraction_both_separated": sum(
            criteria.both_features_separated(r["final_alignment"]) for r in runs) / n,
        "fraction_collapsed_on_v1": sum(criteria.collapsed_on_v1(r["final_alignment"]) for r in runs) / n,
    }


def _csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    keys = list(rows[0])
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (r[k] if not isinstance(r[k], (list, dict)) else repr(r[k])) for k in keys})
    return buf.getvalue()


def _write_common(ctx: Context, name: str, results: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Trajectories (NPZ), per-run table (CSV) and summary.json for the arms of an experiment."""
    arrays: dict[str, Any] = {}
    rows = []
    for arm, res in results.items():
        arrays.update(res["traj"].arrays(prefix=f"{arm}/"))
        arrays[f"{arm}/seeds"] = np.array([c.seed for c in res["configs"]])
        for r in res["runs"]:
            rows.append({"arm": arm, **{k: v for k, v in r.items() if k != "final_alignment"},
                         "final_alignment": r["final_alignment"]})
    atomic_write_npz(ctx.out_dir / "trajectories.npz", arrays)
    atomic_write_text(ctx.out_dir / "runs.csv", _csv(rows))
    summary = {
        "experiment": name,
        "description": EXPERIMENTS[name][1],
        "preset": ctx.preset,
        "device": ctx.device,
        "arms": {
            arm: {"config": res["configs"][0].to_dict(), "seeds": [c.seed for c in res["configs"]],
                  "runs": res["runs"], "aggregate": _aggregate(res["runs"])}
            for arm, res in results.items()
        },
    }
    summary.update(extra)
    return summary


def _representative(runs: list[dict[str, Any]]) -> int:
    """Index of the first run showing both features separated (else 0): the one drawn large."""
    for i, r in enumerate(runs):
        if criteria.both_features_separated(r["final_alignment"]):
            return i
    return 0


def _figures_for_arms(ctx: Context, results: dict[str, Any], stem: str, title: str) -> list[str]:
    from solo_offdiag.theory import plots

    names = []
    trajs, phs, titles, arm_of = [], [], [], []
    for arm, res in results.items():
        for i, r in enumerate(res["runs"]):
            trajs.append(res["traj"].arm(i))
            phs.append(r)
            titles.append(f"{arm}, seed {r['seed']}")
            arm_of.append(arm)
    fig = plots.plot_grid(trajs, phs, titles, title, arms=arm_of)
    plots.save(fig, ctx.out_dir / f"{stem}_grid.png")
    names.append(f"{stem}_grid.png")
    for arm, res in results.items():
        i = _representative(res["runs"])
        fig = plots.plot_dynamics(res["traj"].arm(i), res["runs"][i],
                                  f"{title}: {arm}, seed {res['runs'][i]['seed']}")
        plots.save(fig, ctx.out_dir / f"{stem}_{arm}.png")
        names.append(f"{stem}_{arm}.png")
    return names


# ------------------------------------------------------------------------------------------
# The experiments
# ------------------------------------------------------------------------------------------
@register_experiment("a_trainable_head", "dynamics with the trainable identity-initialised head, m = 2 (C4, C3)")
def _exp_a(ctx: Context) -> dict[str, Any]:
    results = _run_arms(ctx, {"trainable": seeds_of(ctx.base(), ctx.seeds)}, "a")
    figs = _figures_for_arms(ctx, results, "dynamics", "trainable head (m = 2)")
    summary = _write_common(ctx, "a_trainable_head", results, {"figures": figs})
    summary["criteria"] = {
        "C4": criteria.check_c4(summary).to_dict(),
        "C3-theory": criteria.check_c3_offdiag(summary).to_dict(),
    }
    return summary


@register_experiment("b_fixed_head", "head fixed at the identity (no predictor) vs trainable (C5)")
def _exp_b(ctx: Context) -> dict[str, Any]:
    base = ctx.base()
    results = _run_arms(ctx, {"fixed": seeds_of(base.replace(head_trainable=False), ctx.seeds),
                              "trainable": seeds_of(base, ctx.seeds)}, "b")
    figs = _figures_for_arms(ctx, results, "dynamics", "E fixed at I vs trainable")
    summary = _write_common(ctx, "b_fixed_head", results, {"figures": figs})
    summary["criteria"] = {
        "C5": criteria.check_c5(summary).to_dict(),
        # negative control: the fixed head must fail the "both features" check of C4
        "C4_on_fixed_head": {**criteria.check_c4(summary, arm="fixed").to_dict(),
                             "negative_control": True},
    }
    return summary


def _ablation(ctx: Context, name: str, arm: str, switch: dict[str, Any], title: str, claim: str,
              check: Any) -> dict[str, Any]:
    """The full model against one switch turned off, same seeds and samples (paired arms)."""
    base = ctx.base()
    results = _run_arms(ctx, {"full": seeds_of(base, ctx.seeds),
                              arm: seeds_of(base.replace(**switch), ctx.seeds)}, name[0])
    figs = _figures_for_arms(ctx, results, "dynamics", title)
    summary = _write_common(ctx, name, results, {"figures": figs})
    summary["criteria"] = {claim: check(summary).to_dict()}
    return summary


@register_experiment("c_no_bn", "batch normalisation removed (C6: no acceleration)")
def _exp_c(ctx: Context) -> dict[str, Any]:
    return _ablation(ctx, "c_no_bn", "no_bn", {"batch_norm": False}, "with vs without BN", "C6",
                     criteria.check_c6)


@register_experiment("d_no_stopgrad", "stop-gradient removed from the target (C7)")
def _exp_d(ctx: Context) -> dict[str, Any]:
    return _ablation(ctx, "d_no_stopgrad", "no_stop_gradient", {"stop_gradient": False},
                     "with vs without stop-gradient", "C7", criteria.check_c7)


def _loglog_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        return math.nan, math.nan
    slope, intercept = np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)
    return float(slope), float(intercept)


#: e_scaling sweeps (fractions of the base config).
SCALING_DIMS = {"default": (32, 64, 128, 256), "smoke": (16, 32, 64)}
SCALING_ETA_E_RATIOS = {"default": (1 / 16, 1 / 4, 1.0), "smoke": (1 / 4, 1.0)}


@register_experiment("e_scaling", "T1 vs d (log-log slope) and peak E21 vs sqrt(eta_E/eta) (C8)")
def _exp_e(ctx: Context) -> dict[str, Any]:
    from solo_offdiag.theory import plots

    base = ctx.base()
    seeds = max(2, ctx.seeds // 2)
    dims = SCALING_DIMS[ctx.preset]
    # T1: random init (no head start), so that T1 is the escape time from |cos| ~ 1/sqrt(d)
    d_cfgs = [base.replace(d=d, head_start=None, seed=s)
              for d in dims for s in range(seeds)]
    ratios = SCALING_ETA_E_RATIOS[ctx.preset]
    e_arms = {f"etaE_{r:g}": seeds_of(base.replace(eta_E=base.eta * r), seeds) for r in ratios}
    results = _run_arms(ctx, {"dims": d_cfgs, **e_arms}, "e")
    d_runs = results["dims"]["runs"]
    t1 = np.array([math.nan if r["t1"] is None else r["t1"] for r in d_runs], dtype=float)
    d_all = np.array([r["d"] for r in d_runs], dtype=float)
    d_axis = np.array(dims, dtype=float)
    t1_med = np.array([np.nanmedian(t1[d_all == d]) if np.isfinite(t1[d_all == d]).any() else math.nan
                       for d in d_axis])
    t1_slope, t1_icpt = _loglog_fit(d_axis, t1_med)
    sq = np.sqrt(np.array(ratios))
    peaks = np.array([np.median([abs(r["e21_peak"]) for r in results[f"etaE_{r_:g}"]["runs"]]) for r_ in ratios])
    peak_slope, peak_icpt = _loglog_fit(sq, peaks)
    # substitution (10% -> 90% rise of |E21|) relative to T1, over all runs with a head start
    sub_ratio = [r["substitution_duration"] / r["t1"] for a in e_arms for r in results[a]["runs"]
                 if r["substitution_duration"] is not None and r["t1"]]
    scaling = {
        "d": d_axis.tolist(), "t1_median": t1_med.tolist(), "t1_all": t1.tolist(), "d_all": d_all.tolist(),
        "t1_slope": t1_slope, "t1_intercept": t1_icpt,
        "sqrt_eta_E_over_eta": sq.tolist(), "e21_peak_median": peaks.tolist(),
        "peak_slope": peak_slope, "peak_intercept": peak_icpt,
        "substitution_over_t1": float(np.median(sub_ratio)) if sub_ratio else math.inf,
        "substitution_over_t1_all": sub_ratio,
    }
    figs = []
    if np.isfinite(t1_slope):
        fig = plots.plot_scaling(d_axis, t1_med, t1_slope, t1_icpt, "dimension d", "T1 (SGD steps)",
                                 "phase I length vs dimension (no head start)", points=(d_all, t1),
                                 target=criteria.T1_SLOPE_TARGET)
        plots.save(fig, ctx.out_dir / "t1_vs_d.png")
        figs.append("t1_vs_d.png")
    if np.isfinite(peak_slope):
        fig = plots.plot_scaling(sq, peaks, peak_slope, peak_icpt, "sqrt(eta_E / eta)", "peak |E21| (median)",
                                 "substitution peak vs learning-rate ratio", target=criteria.PEAK_SLOPE_TARGET)
        plots.save(fig, ctx.out_dir / "e21_peak_vs_lr_ratio.png")
        figs.append("e21_peak_vs_lr_ratio.png")
    atomic_write_text(ctx.out_dir / "t1_vs_d.csv", _csv([{"d": d, "t1_median": t} for d, t in zip(d_axis, t1_med)]))
    atomic_write_text(ctx.out_dir / "e21_peak_vs_lr_ratio.csv",
                      _csv([{"sqrt_eta_E_over_eta": s, "e21_peak_median": p} for s, p in zip(sq, peaks)]))
    summary = _write_common(ctx, "e_scaling", results, {"figures": figs, "scaling": scaling})
    summary["criteria"] = {"C8": criteria.check_c8(summary).to_dict()}
    return summary


@register_experiment("f_wide_head", "m = 64 neurons with a 64x64 head: rise and fall of ||E - I|| (C3)")
def _exp_f(ctx: Context) -> dict[str, Any]:
    from solo_offdiag.theory import plots

    m = 64 if ctx.preset == "default" else 8
    base = ctx.base(m=m, head_start=None)
    results = _run_arms(ctx, {"wide": seeds_of(base, 2)}, "f")
    figs = []
    res = results["wide"]
    for i, r in enumerate(res["runs"]):
        fig = plots.plot_offdiag(res["traj"].arm(i), r, f"{m}x{m} head, seed {r['seed']}")
        plots.save(fig, ctx.out_dir / f"offdiag_seed{r['seed']}.png")
        figs.append(f"offdiag_seed{r['seed']}.png")
    traj = res["traj"]
    atomic_write_text(ctx.out_dir / "offdiag.csv", _csv([
        {"step": int(s), **{f"seed{c.seed}": float(traj.arm(i).offdiag_norm[k]) for i, c in enumerate(res["configs"])}}
        for k, s in enumerate(traj.steps)]))
    summary = _write_common(ctx, "f_wide_head", results, {"figures": figs})
    summary["criteria"] = {"C3-theory": criteria.check_c3_offdiag(summary, arm="wide").to_dict()}
    return summary


#: One-at-a-time sensitivity grid around the base config (docs/theory.md, "Sensitivity"):
#: feature gap alpha2/alpha1 (alpha1 = 1), noise, eta_E/eta, dimension, head start, init.
SENSITIVITY: dict[str, dict[str, tuple[Any, ...]]] = {
    "default": {
        "alpha2": (0.6, 0.7, 0.9),
        "noise_std": (0.12, 0.25),
        "eta_E_over_eta": (1 / 3, 1.0, 10.0),
        "d": (32, 128),
        "head_start": (0.3, 0.5),
        "init_balance": (False,),
    },
    "smoke": {"alpha2": (0.6,), "eta_E_over_eta": (1 / 3,)},
}


def _variant(base: TheoryConfig, key: str, value: Any) -> TheoryConfig:
    if key == "eta_E_over_eta":
        return base.replace(eta_E=base.eta * value)
    return base.replace(**{key: value})


def _c4_pass(run: dict[str, Any]) -> bool:
    """One run passes C4's per-seed test: both features in different neurons and E returned."""
    return bool(criteria.both_features_separated(run["final_alignment"]) and run.get("t_return") is not None)


@register_experiment("g_sensitivity", "one-at-a-time sensitivity grid: trainable vs fixed head (not in `all`)",
                     in_all=False)
def _exp_g(ctx: Context) -> dict[str, Any]:
    base = ctx.base()
    variants: dict[str, TheoryConfig] = {"base": base}
    for key, values in SENSITIVITY[ctx.preset].items():
        for v in values:
            variants[f"{key}={v:.3g}" if isinstance(v, float) else f"{key}={v}"] = _variant(base, key, v)
    arms: dict[str, list[TheoryConfig]] = {}
    for label, cfg in variants.items():
        arms[f"{label}|trainable"] = seeds_of(cfg, ctx.seeds)
        arms[f"{label}|fixed"] = seeds_of(cfg.replace(head_trainable=False), ctx.seeds)
    results = _run_arms(ctx, arms, "g")
    table = []
    for label in variants:
        tr_runs, fx_runs = results[f"{label}|trainable"]["runs"], results[f"{label}|fixed"]["runs"]
        tr, fx = _aggregate(tr_runs), _aggregate(fx_runs)
        table.append({
            "variant": label,
            "seeds": len(tr_runs),
            "trainable_both_separated": tr["fraction_both_separated"],
            "fixed_both_separated": fx["fraction_both_separated"],
            "trainable_c4_pass": sum(_c4_pass(r) for r in tr_runs) / max(len(tr_runs), 1),
            "fixed_collapsed_on_v1": fx["fraction_collapsed_on_v1"],
            "trainable_median_abs_e21_peak": tr["median_abs_e21_peak"],
            "trainable_median_t_v2": tr["median_t_v2"],
        })
    atomic_write_text(ctx.out_dir / "sensitivity.csv", _csv(table))
    md = ["| variant | trainable: both separated | trainable: C4 run test | fixed I: both separated "
          "| fixed I: all on v1 | median peak abs E21 |", "|---|---|---|---|---|---|"]
    n = ctx.seeds
    md += [f"| {r['variant']} | {round(r['trainable_both_separated'] * n)}/{n} | {round(r['trainable_c4_pass'] * n)}/{n} "
           f"| {round(r['fixed_both_separated'] * n)}/{n} | {round(r['fixed_collapsed_on_v1'] * n)}/{n} "
           f"| {r['trainable_median_abs_e21_peak']:.2f} |" for r in table]
    atomic_write_text(ctx.out_dir / "sensitivity.md", "\n".join(md) + "\n")
    summary = _write_common(ctx, "g_sensitivity", results, {"sensitivity": table, "figures": []})
    return summary


# ------------------------------------------------------------------------------------------
# Runner
# ------------------------------------------------------------------------------------------
def run_experiment(
    name: str, out_dir: Path | str, preset: str = "default", device: str = "cpu",
    seeds: int | None = None, progress: bool = True,
) -> dict[str, Any]:
    """Run experiment ``name``, write its figures, data and ``summary.json`` into ``out_dir``."""
    if name not in EXPERIMENTS:
        raise UnknownExperimentError(f"unknown experiment {name!r}; known: {', '.join(list_experiments())}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    if seeds is not None and seeds < 1:
        raise ValueError(f"seeds: got {seeds}; allowed: >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(out_dir=out, preset=preset, device=device,
                  seeds=seeds if seeds is not None else PRESETS[preset]["seeds"], progress=progress)
    start = time.perf_counter()
    summary = EXPERIMENTS[name][0](ctx)
    summary["wall_time_s"] = time.perf_counter() - start
    summary["seeds"] = ctx.seeds
    atomic_write_json(out / "summary.json", summary)
    return summary


def plan_configs(names: list[str], preset: str = "default", seeds: int | None = None) -> list[TheoryConfig]:
    """Every config the experiments ``names`` will simulate (in order, with repeats removed)."""
    plan: list[TheoryConfig] = []
    for name in names:
        ctx = Context(out_dir=Path("."), preset=preset, device="cpu",
                      seeds=seeds if seeds is not None else PRESETS[preset]["seeds"], progress=False, plan=plan)
        with contextlib.suppress(_Planned):
            EXPERIMENTS[name][0](ctx)
    return list(dict.fromkeys(plan))


def run_all(
    out_dir: Path | str, preset: str = "default", device: str = "cpu", seeds: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every experiment of ``IN_ALL`` into ``out_dir/<name>/`` and write ``out_dir/summary.json``
    (claim results and wall times of all of them).

    The configs of all experiments are collected first and simulated as one batch per tensor
    structure (m, steps, ...), so ``all`` costs about as many batched steps as its longest
    experiments, not their sum."""
    out = Path(out_dir)
    start = time.perf_counter()
    simulate_configs(plan_configs(IN_ALL, preset, seeds), device, progress="all" if progress else False)
    sim_time = time.perf_counter() - start
    results: dict[str, Any] = {}
    for name in IN_ALL:
        s = run_experiment(name, out / name, preset=preset, device=device, seeds=seeds, progress=progress)
        results[name] = {"criteria": s.get("criteria", {}), "wall_time_s": s["wall_time_s"]}
    overall = {"preset": preset, "device": device, "experiments": results,
               "simulation_wall_time_s": sim_time, "wall_time_s": time.perf_counter() - start}
    atomic_write_json(out / "summary.json", overall)
    return overall
