"""Registry of the named theory experiments (timm-style); compute only, no files.

``compute_experiment(name)`` simulates the experiment's arms (each arm batched over seeds),
detects the phases and checks the claims; it returns an :class:`ExperimentResult`: the JSON-ready
summary, the arrays and tables behind it and the figures to draw (as plain specs). Writing them
(NPZ, CSV, PNG, summary.json) is the job of :mod:`solo_offdiag.repro.theory_output`, a layer
above, so that this package stays torch + numpy only.

Examples:
    >>> "a_trainable_head" in list_experiments()
    True
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solo_offdiag.theory import criteria
from solo_offdiag.theory.config import STRUCTURAL_FIELDS, TheoryConfig
from solo_offdiag.theory.model import Trajectory, seeds_of, simulate_batch
from solo_offdiag.theory.phases import ESCAPE, detect_phases

__all__ = [
    "EXPERIMENTS",
    "IN_ALL",
    "THEORY_PRESETS",
    "Context",
    "ExperimentResult",
    "UnknownExperimentError",
    "base_config",
    "compute_experiment",
    "list_experiments",
    "plan_configs",
    "register_experiment",
    "simulate_configs",
]

#: ``default``: the documented regime (docs/theory.md), 8 seeds per arm (a claim passes with 5 of
#: them: ``criteria.required_passes``). ``smoke``: same code paths, tiny sizes, for tests and CI
#: (claims are not expected to pass there). ``large``: the paper's orderings at GPU size (below). ``scaling``: the e_scaling
#: sweep (C8): dimensions, steps/batch/logging/activation of the escape runs (m = 1: under BN the
#: normalised and the plain cubic give the same trajectory of a single neuron below the
#: truncation), and the eta_E/eta ratios of the E21-peak runs (the base model at the escape runs'
#: batch size; all <= 1, the paper's regime eta_E <= eta, since issue #9's third session).
#: ``slope_seed_factor``: the T1-vs-d runs and the E21-peak runs use this many times the seeds:
#: each slope of medians over 8 seeds left its range in ~4% of the 8-seed subsets of seeds 0-63;
#: with 2x / 3x the seeds C8 as a whole passed in 98.8% / 99.85% of resampled blocks
#: (docs/theory.md); the per-seed checks use the first ``seeds`` of them. ``escape_by_d``: per-d
#: overrides of the escape runs. At a fixed batch the SGD noise shrinks the head start faster
#: than the drift (~ |cos|^5 at small signal) grows it the larger d is, so d = 1024 needs a larger
#: batch and a longer run than d <= 512 (docs/theory.md, "C8 up to d = 1024").
THEORY_PRESETS: dict[str, dict[str, Any]] = {
    "default": {"seeds": 8, "overrides": {"batch_size": 1024, "steps": 3000},
                "scaling": {"dims": (128, 256, 512, 1024), "steps": 2500, "batch_size": 128, "log_every": 1, "m": 1,
                            "eta": 0.006, "activation": "normalized_cubic", "eta_E_ratios": (0.1, 1 / 3, 1.0),
                            "slope_seed_factor": 3, "escape_by_d": {1024: {"batch_size": 512, "steps": 6000}}}},
    # the paper's orderings at a GPU size (docs/theory.md, "The large preset"): plain cubic, eta_E =
    # eta / 3, a slight head start (3 / sqrt(d)), d = 512; C8 over d = 256 ... 2048. Its pass rates
    # are not measured on CUDA (see the docs for the CPU seeds that were run). alpha2 stays at 0.8,
    # the value of every measurement of this preset. The batch: the SGD noise's share of the escape
    # of a neuron from |cos| ~ 1/sqrt(d) grows like eta d^3 / batch; batch 32768 (was 2048) let 2 of
    # the 4 tuning seeds that failed at 2048 learn v2 (docs/theory.md). The escape runs at d = 2048
    # get 8x the batch and 4x the steps of the default preset's d = 1024 runs (same noise share,
    # T1 ~ d^2), where 95 of 96 tuning runs escaped.
    "large": {"seeds": 8, "overrides": {"d": 512, "alpha2": 0.8, "batch_size": 32768, "steps": 12000, "log_every": 50,
                                        "activation": "truncated_cubic", "eta_E": 0.01, "head_start": 3 / math.sqrt(512)},
              "scaling": {"dims": (256, 512, 1024, 2048), "steps": 8000, "batch_size": 1024, "log_every": 2, "m": 1,
                          "eta": 0.006, "activation": "truncated_cubic", "eta_E_ratios": (0.1, 1 / 3, 1.0),
                          "slope_seed_factor": 3, "escape_by_d": {2048: {"batch_size": 4096, "steps": 24000}}}},
    "smoke": {"seeds": 4, "overrides": {"d": 32, "steps": 2000, "log_every": 10},
              # head start 1.5 / sqrt(d): 2 / sqrt(32) would start above the escape threshold
              "scaling": {"dims": (32, 64, 128), "steps": 1000, "batch_size": 64, "log_every": 1, "m": 1,
                          "eta": 0.006, "activation": "normalized_cubic", "eta_E_ratios": (1 / 3, 1.0),
                          "slope_seed_factor": 2, "head_start_c": 1.5}},
}
#: Neuron 1's head start in the escape runs of e_scaling: |cos(w_1, v_1)| = HEAD_START_C / sqrt(d)
#: (a preset's ``scaling`` may set its own ``head_start_c``; it must start below ``ESCAPE``),
#: twice the typical |cos| of a random direction (the paper's "slight advantage"). The escape
#: drift grows like |cos|^4 (T1 ~ 1 / (eta * start^4) = d^2 / (eta * C^4)) while the SGD noise
#: shrinks the start at a rate independent of it, so C decides which runs escape at all at
#: d = 1024: with 1.5, 64 of 96 tuning runs escaped within 6000 steps at batch 512, with 2.0, 95
#: of 96 (docs/theory.md, "C8 up to d = 1024").
HEAD_START_C = 2.0


class UnknownExperimentError(ValueError):
    """Raised for an experiment name that is not registered; the message lists the known ones."""


@dataclass
class Context:
    """What an experiment function receives. Seeds are ``seed_offset, ..., seed_offset + seeds - 1``."""

    preset: str
    device: str
    seeds: int
    seed_offset: int = 0
    progress: bool = True
    plan: list[TheoryConfig] | None = None  # planning mode: collect the configs, simulate nothing

    def base(self, **changes: Any) -> TheoryConfig:
        return base_config(self.preset).replace(**{"seed": self.seed_offset, **changes})

    def seeded(self, cfg: TheoryConfig, n: int | None = None) -> list[TheoryConfig]:
        """``n`` (default ``seeds``) copies of ``cfg`` with this context's seeds."""
        return seeds_of(cfg.replace(seed=self.seed_offset), self.seeds if n is None else n)


@dataclass
class ExperimentResult:
    """What an experiment computed: ``summary`` (JSON-ready, with ``criteria``), ``arrays`` (for
    ``trajectories.npz``), ``tables`` (file name -> rows, for CSV), ``texts`` (file name -> text)
    and ``figures``: ``(file name, plot kind, arguments)`` specs drawn by the output layer."""

    summary: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    figures: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


ExperimentFn = Callable[[Context], ExperimentResult]
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
    if preset not in THEORY_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(THEORY_PRESETS)}")
    return TheoryConfig(**THEORY_PRESETS[preset]["overrides"])


# ------------------------------------------------------------------------------------------
# Simulation with a per-process cache, batched over every config an experiment (or `all`) needs
# ------------------------------------------------------------------------------------------
#: (config, device) -> unbatched trajectory. An arm's trajectory depends only on its own config
#: (per-seed data streams, see ``simulate_batch``), so a config shared by several experiments
#: (the full model of a, b, c, d) is simulated once and the figures of all of them agree.
_CACHE: dict[tuple[TheoryConfig, str], Trajectory] = {}


class _Planned(Exception):
    """Raised by ``_run_arms`` in planning mode, after recording the experiment's configs."""


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


def _result(ctx: Context, name: str, results: dict[str, Any], extra: dict[str, Any]) -> ExperimentResult:
    """Summary, trajectories (arrays) and the per-run table of an experiment's arms."""
    arrays: dict[str, Any] = {}
    rows = []
    for arm, res in results.items():
        arrays.update(res["traj"].arrays(prefix=f"{arm}/"))
        arrays[f"{arm}/seeds"] = np.array([c.seed for c in res["configs"]])
        for r in res["runs"]:
            rows.append({"arm": arm, **{k: v for k, v in r.items() if k != "final_alignment"},
                         "final_alignment": r["final_alignment"]})
    summary = {
        "experiment": name,
        "description": EXPERIMENTS[name][1],
        "preset": ctx.preset,
        "device": ctx.device,
        "seed_offset": ctx.seed_offset,
        "arms": {
            arm: {"config": res["configs"][0].to_dict(), "seeds": [c.seed for c in res["configs"]],
                  "runs": res["runs"], "aggregate": _aggregate(res["runs"])}
            for arm, res in results.items()
        },
        "figures": [],
    }
    summary.update(extra)
    return ExperimentResult(summary=summary, arrays=arrays, tables={"runs.csv": rows})


def _representative(runs: list[dict[str, Any]]) -> int:
    """Index of the first run showing both features separated (else 0): the one drawn large."""
    for i, r in enumerate(runs):
        if criteria.both_features_separated(r["final_alignment"]):
            return i
    return 0


def _arm_figures(out: ExperimentResult, results: dict[str, Any], stem: str, title: str) -> None:
    """Figure specs: every run in one grid, and the representative run of each arm large."""
    runs = [(arm, i) for arm, res in results.items() for i in range(len(res["runs"]))]
    out.figures.append((f"{stem}_grid.png", "grid", {
        "trajs": [results[a]["traj"].arm(i) for a, i in runs], "phases": [results[a]["runs"][i] for a, i in runs],
        "titles": [f"{a}, seed {results[a]['runs'][i]['seed']}" for a, i in runs], "suptitle": title,
        "arms": [a for a, _ in runs]}))
    for arm, res in results.items():
        i = _representative(res["runs"])
        out.figures.append((f"{stem}_{arm}.png", "dynamics", {
            "traj": res["traj"].arm(i), "phases": res["runs"][i],
            "title": f"{title}: {arm}, seed {res['runs'][i]['seed']}"}))
    out.summary["figures"] = [f[0] for f in out.figures]


# ------------------------------------------------------------------------------------------
# The experiments
# ------------------------------------------------------------------------------------------
@register_experiment("a_trainable_head", "dynamics with the trainable identity-initialised head, m = 2 (C4, C3)")
def _exp_a(ctx: Context) -> ExperimentResult:
    results = _run_arms(ctx, {"trainable": ctx.seeded(ctx.base())}, "a")
    out = _result(ctx, "a_trainable_head", results, {})
    _arm_figures(out, results, "dynamics", "trainable head (m = 2)")
    out.summary["criteria"] = {
        "C4": criteria.check_c4(out.summary).to_dict(),
        "C3-theory": criteria.check_c3_offdiag(out.summary).to_dict(),
    }
    return out


@register_experiment("b_fixed_head", "head fixed at the identity (no predictor) vs trainable (C5)")
def _exp_b(ctx: Context) -> ExperimentResult:
    base = ctx.base()
    results = _run_arms(ctx, {"fixed": ctx.seeded(base.replace(head_trainable=False)),
                              "trainable": ctx.seeded(base)}, "b")
    out = _result(ctx, "b_fixed_head", results, {})
    _arm_figures(out, results, "dynamics", "E fixed at I vs trainable")
    out.summary["criteria"] = {
        "C5": criteria.check_c5(out.summary).to_dict(),
        # negative control: the fixed head must fail the "both features" check of C4
        "C4_on_fixed_head": {**criteria.check_c4(out.summary, arm="fixed").to_dict(), "negative_control": True},
    }
    return out


def _ablation(ctx: Context, name: str, arm: str, switch: dict[str, Any], title: str, claim: str,
              check: Any) -> ExperimentResult:
    """The full model against one switch turned off, same seeds and samples (paired arms)."""
    base = ctx.base()
    results = _run_arms(ctx, {"full": ctx.seeded(base), arm: ctx.seeded(base.replace(**switch))}, name[0])
    out = _result(ctx, name, results, {})
    _arm_figures(out, results, "dynamics", title)
    out.summary["criteria"] = {claim: check(out.summary).to_dict()}
    return out


@register_experiment("c_no_bn", "batch normalisation removed (C6: no acceleration)")
def _exp_c(ctx: Context) -> ExperimentResult:
    return _ablation(ctx, "c_no_bn", "no_bn", {"batch_norm": False}, "with vs without BN", "C6",
                     criteria.check_c6)


@register_experiment("d_no_stopgrad", "stop-gradient removed from the target (C7)")
def _exp_d(ctx: Context) -> ExperimentResult:
    return _ablation(ctx, "d_no_stopgrad", "no_stop_gradient", {"stop_gradient": False},
                     "with vs without stop-gradient", "C7", criteria.check_c7)


def _loglog_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        return math.nan, math.nan
    slope, intercept = np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)
    return float(slope), float(intercept)


def censored_median(times: np.ndarray) -> float:
    """Median escape time over seeds, a run that never escaped (NaN) counted as later than every
    escape (right-censored at the run's end), so slow seeds are not dropped from the median; inf
    when at least half of the runs never escaped (no median exists within the run)."""
    t = np.asarray(times, dtype=float)
    return float(np.median(np.where(np.isnan(t), np.inf, t)))


def head_start_c(preset: str) -> float:
    """The escape runs' head-start constant of ``preset`` (``|cos(w_1, v_1)| = c / sqrt(d)``),
    checked to start below the escape threshold at the preset's smallest d."""
    sc = THEORY_PRESETS[preset]["scaling"]
    c = float(sc.get("head_start_c", HEAD_START_C))
    if not c / math.sqrt(min(sc["dims"])) < ESCAPE:
        raise ValueError(f"head_start_c of preset {preset!r}: got {c:g}; allowed: < {ESCAPE:g} x sqrt(d) at "
                         f"the smallest d = {min(sc['dims'])}, so that neuron 1 starts below the escape threshold")
    return c


def escape_config(preset: str, d: int, c: float | None = None, **changes: Any) -> TheoryConfig:
    """The config of one of ``e_scaling``'s escape runs at dimension ``d``: neuron 1 alone
    (``m = 1``: its escape without the race against neuron 2, docs/theory.md, C8) with head start
    ``c / sqrt(d)`` (default :func:`head_start_c`), the preset's ``scaling`` settings and its
    ``escape_by_d`` overrides for this d, then ``changes``."""
    sc = THEORY_PRESETS[preset]["scaling"]
    c = head_start_c(preset) if c is None else c
    return base_config(preset).replace(**{
        "steps": sc["steps"], "batch_size": sc["batch_size"], "log_every": sc["log_every"],
        "activation": sc["activation"], "m": sc["m"], "eta": sc["eta"], "d": d, "head_start": c / math.sqrt(d),
        **sc.get("escape_by_d", {}).get(d, {}), **changes})


def escape_times(runs: list[dict[str, Any]]) -> np.ndarray:
    """``t_escape`` of each run (:func:`detect_phases`), NaN where the run never escaped."""
    return np.array([math.nan if r["t_escape"] is None else r["t_escape"] for r in runs], dtype=float)


def scaling_configs(ctx: Context) -> dict[str, list[TheoryConfig]]:
    """The arms of ``e_scaling``: the escape sweep over ``d`` (:func:`escape_config`; one arm per d,
    as a d may have its own batch and run length), the same at the smallest ``d`` with ``eta / 2``,
    and the full model at each ``eta_E / eta`` ratio (for the E21 peak and the substitution time).
    The d sweep and the ratio arms use ``slope_seed_factor`` x the seeds (their slopes are fitted on
    medians)."""
    sc = THEORY_PRESETS[ctx.preset]["scaling"]
    base = ctx.base()
    n_esc = ctx.seeds * sc["slope_seed_factor"]
    arms = {f"d{d}": ctx.seeded(escape_config(ctx.preset, d), n_esc) for d in sc["dims"]}
    arms["eta_half"] = ctx.seeded(escape_config(ctx.preset, sc["dims"][0], eta=sc["eta"] / 2))
    for r in sc["eta_E_ratios"]:  # the full model (d, steps of the base), at the escape runs' batch size
        arms[f"etaE_{r:g}"] = ctx.seeded(base.replace(eta_E=base.eta * r, batch_size=sc["batch_size"]), n_esc)
    return arms


@register_experiment("e_scaling", "escape time T1 vs d and vs eta, substitution time, peak E21 vs sqrt(eta_E/eta) (C8)")
def _exp_e(ctx: Context) -> ExperimentResult:
    sc = THEORY_PRESETS[ctx.preset]["scaling"]
    arms = scaling_configs(ctx)
    results = _run_arms(ctx, arms, "e")
    dims = np.array(sc["dims"], dtype=float)
    n = ctx.seeds
    n_esc = n * sc["slope_seed_factor"]
    esc = np.array([escape_times(results[f"d{d}"]["runs"]) for d in sc["dims"]])
    half = escape_times(results["eta_half"]["runs"])
    base_ratio = ctx.base().eta_E / ctx.base().eta
    sub_arm = min(sc["eta_E_ratios"], key=lambda r: abs(r - base_ratio))
    sub_runs = results[f"etaE_{sub_arm:g}"]["runs"]
    replicates = []
    for k in range(n):
        slope, _ = _loglog_fit(dims, esc[:, k])
        eta_ratio = half[k] / esc[0, k] if np.isfinite(half[k]) and np.isfinite(esc[0, k]) and esc[0, k] > 0 else math.nan
        r = sub_runs[k]
        sub = (r["substitution_duration"] / r["t1"]) if r["substitution_duration"] is not None and r["t1"] else math.inf
        replicates.append({
            "seed": ctx.seed_offset + k, "t_escape": esc[:, k].tolist(), "t1_slope": slope,
            "t1_slope_ok": bool(abs(slope - criteria.T1_SLOPE_TARGET) <= criteria.T1_SLOPE_TOL),
            "t_escape_eta_half": float(half[k]), "eta_ratio": float(eta_ratio),
            "eta_ratio_ok": bool(2 / criteria.ETA_RATIO_TOL <= eta_ratio <= 2 * criteria.ETA_RATIO_TOL),
            "substitution_over_t1": float(sub), "substitution_ok": bool(sub <= criteria.SUB_OVER_T1_MAX),
        })
    t1_med = np.array([censored_median(row) for row in esc])
    t1_slope, t1_icpt = _loglog_fit(dims, t1_med)  # over the d that have a median (all: see C8)
    ratios = list(sc["eta_E_ratios"])
    sq = np.sqrt(np.array(ratios, dtype=float))
    interior = {r: [abs(x["e21_peak"]) for x in results[f"etaE_{r:g}"]["runs"] if x["e21_peak_interior"]]
                for r in ratios}
    peaks = np.array([np.median(v) if v else math.nan for v in interior.values()])
    usable = all(len(v) * 2 >= n_esc for v in interior.values())
    peak_slope, peak_icpt = _loglog_fit(sq, peaks)
    scaling = {
        "d": dims.tolist(), "slope_seeds": n_esc, "t1_median": [float(v) if np.isfinite(v) else None for v in t1_med],
        "escaped_per_d": [int(np.isfinite(row).sum()) for row in esc],
        "t1_median_every_d": bool(np.isfinite(t1_med).all()), "t1_all": esc.T.tolist(),
        "t1_slope": t1_slope, "t1_intercept": t1_icpt, "t1_threshold_cos": ESCAPE,
        "head_start_c": head_start_c(ctx.preset),
        "sqrt_eta_E_over_eta": sq.tolist(), "e21_peak_median": peaks.tolist(),
        "interior_peaks_per_ratio": {f"{r:g}": len(v) for r, v in interior.items()},
        "interior_peaks": sum(len(v) for v in interior.values()), "peak_runs": n_esc * len(ratios),
        "peak_slope": peak_slope if np.isfinite(peak_slope) else None, "peak_intercept": peak_icpt,
        "peak_slope_usable": usable, "replicates": replicates,
    }
    out = _result(ctx, "e_scaling", results, {"scaling": scaling})
    out.tables["t1_vs_d.csv"] = [{"seed": rep["seed"], "d": int(d), "t_escape": t}
                                 for rep in replicates for d, t in zip(dims, rep["t_escape"])]
    out.tables["e21_peak_vs_lr_ratio.csv"] = [
        {"eta_E_over_eta": r, "seed": x["seed"], "abs_e21_peak": abs(x["e21_peak"]),
         "interior": x["e21_peak_interior"]} for r in ratios for x in results[f"etaE_{r:g}"]["runs"]]
    out.figures.append(("t1_vs_d.png", "scaling", {
        "x": dims, "y": t1_med, "slope": t1_slope, "intercept": t1_icpt, "xlabel": "dimension d",
        "ylabel": f"T1: steps until |cos(w1, v1)| >= {ESCAPE:g}",
        "title": f"phase I (escape) vs dimension, head start {head_start_c(ctx.preset):g}/sqrt(d)",
        "points": (np.repeat(dims, n_esc), esc.ravel()), "target": criteria.T1_SLOPE_TARGET,
        "note": "never escaped, per d: " + ", ".join(str(n_esc - k) for k in scaling["escaped_per_d"])
                + f" of {n_esc} (counted as late in the median)"}))
    out.figures.append(("e21_peak_vs_lr_ratio.png", "scaling", {
        "x": sq, "y": peaks, "slope": peak_slope, "intercept": peak_icpt, "xlabel": "sqrt(eta_E / eta)",
        "ylabel": "peak |E21| (median of interior peaks)",
        "title": f"substitution peak vs learning-rate ratio ({scaling['interior_peaks']}/{scaling['peak_runs']} interior)",
        "points": (np.concatenate([np.full(len(v), s) for s, v in zip(sq, interior.values())]),
                   np.concatenate([np.asarray(v, dtype=float) for v in interior.values()])),
        "target": criteria.PEAK_SLOPE_TARGET}))
    out.summary["figures"] = [f[0] for f in out.figures]
    out.summary["criteria"] = {"C8": criteria.check_c8(out.summary).to_dict()}
    return out


@register_experiment("f_wide_head", "m = 64 neurons, 64x64 head: ||E - I|| over training (exploratory, no verdict)")
def _exp_f(ctx: Context) -> ExperimentResult:
    m = 64 if ctx.preset != "smoke" else 8
    # batch 128 and one seed: an m = 64 arm costs ~32 m = 2 arms per sample (~9 CPU-s per seed
    # at the default preset), and no verdict rests on it
    base = ctx.base(m=m, head_start=None, batch_size=128)
    results = _run_arms(ctx, {"wide": ctx.seeded(base, 1)}, "f")
    out = _result(ctx, "f_wide_head", results, {"exploratory": WIDE_HEAD_REASON})
    res = results["wide"]
    for i, r in enumerate(res["runs"]):
        out.figures.append((f"offdiag_seed{r['seed']}.png", "offdiag", {
            "traj": res["traj"].arm(i), "phases": r, "title": f"{m}x{m} head, seed {r['seed']} (exploratory)"}))
    traj = res["traj"]
    out.tables["offdiag.csv"] = [
        {"step": int(s), **{f"seed{c.seed}": float(traj.arm(i).offdiag_norm[k]) for i, c in enumerate(res["configs"])}}
        for k, s in enumerate(traj.steps)]
    out.summary["figures"] = [f[0] for f in out.figures]
    out.summary["criteria"] = {}
    return out


#: Why the wide-head experiment carries no verdict (docs/theory.md, "C3").
WIDE_HEAD_REASON = (
    "the paper's 64x64 figure trains a 64-neuron network with Adam (lr 3e-3), most likely on real "
    "images, where many features exist; the 2-feature model has only v1 and v2 for 64 neurons, so "
    "most neurons see no feature and ||E - I|| need not fall. Reported, not checked; C3's theory "
    "side is checked on the m = 2 model of a_trainable_head, where the theorem applies."
)


#: One-at-a-time sensitivity grid around the base config (docs/theory.md, "Sensitivity").
SENSITIVITY: dict[str, dict[str, tuple[Any, ...]]] = {
    "default": {
        "alpha2": (0.6, 0.9),
        "noise_std": (0.1, 0.3),
        "eta_E_over_eta": (1 / 10, 1.0),
        "head_start": (0.1, 0.4),
        "batch_size": (256,),
    },
    "large": {"eta_E_over_eta": (1.0, 3.0), "head_start": (0.3,)},
    "smoke": {"alpha2": (0.6,), "eta_E_over_eta": (1.0,)},
}


def _variant(base: TheoryConfig, key: str, value: Any) -> TheoryConfig:
    if key == "eta_E_over_eta":
        return base.replace(eta_E=base.eta * value)
    return base.replace(**{key: value})


@register_experiment("g_sensitivity", "one-at-a-time sensitivity grid: trainable vs fixed head (not in `all`)",
                     in_all=False)
def _exp_g(ctx: Context) -> ExperimentResult:
    base = ctx.base()
    variants: dict[str, TheoryConfig] = {"base": base}
    for key, values in SENSITIVITY[ctx.preset].items():
        for v in values:
            variants[f"{key}={v:.3g}" if isinstance(v, float) else f"{key}={v}"] = _variant(base, key, v)
    arms: dict[str, list[TheoryConfig]] = {}
    for label, cfg in variants.items():
        arms[f"{label}|trainable"] = ctx.seeded(cfg)
        arms[f"{label}|fixed"] = ctx.seeded(cfg.replace(head_trainable=False))
    results = _run_arms(ctx, arms, "g")
    table = []
    for label in variants:
        tr_runs, fx_runs = results[f"{label}|trainable"]["runs"], results[f"{label}|fixed"]["runs"]
        table.append({
            "variant": label,
            "seeds": len(tr_runs),
            "c4_passes": sum(criteria.c4_run(r) for r in tr_runs),
            "c3_passes": sum(criteria.c3_run(r) for r in tr_runs),
            "c5_passes": sum(criteria.c5_run(r) for r in fx_runs),
            "trainable_median_abs_e21_peak": _aggregate(tr_runs)["median_abs_e21_peak"],
            "trainable_median_t_v2": _aggregate(tr_runs)["median_t_v2"],
        })
    out = _result(ctx, "g_sensitivity", results, {"sensitivity": table})
    out.tables["sensitivity.csv"] = table
    md = ["| variant | C4 (trainable) | C3 (trainable) | C5 (fixed I) | median peak abs E21 |",
          "|---|---|---|---|---|"]
    md += [f"| {r['variant']} | {r['c4_passes']}/{r['seeds']} | {r['c3_passes']}/{r['seeds']} "
           f"| {r['c5_passes']}/{r['seeds']} | {r['trainable_median_abs_e21_peak']:.3f} |" for r in table]
    out.texts["sensitivity.md"] = "\n".join(md) + "\n"
    out.summary["criteria"] = {}
    return out


# ------------------------------------------------------------------------------------------
# Runner (compute only)
# ------------------------------------------------------------------------------------------
def _context(preset: str, device: str, seeds: int | None, seed_offset: int, progress: bool,
             plan: list[TheoryConfig] | None = None) -> Context:
    if preset not in THEORY_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(THEORY_PRESETS)}")
    if seeds is not None and seeds < 1:
        raise ValueError(f"seeds: got {seeds}; allowed: >= 1")
    if seed_offset < 0:
        raise ValueError(f"seed_offset: got {seed_offset}; allowed: >= 0")
    return Context(preset=preset, device=device, seeds=seeds if seeds is not None else THEORY_PRESETS[preset]["seeds"],
                   seed_offset=seed_offset, progress=progress, plan=plan)


def compute_experiment(
    name: str, preset: str = "default", device: str = "cpu", seeds: int | None = None, seed_offset: int = 0,
    progress: bool = True,
) -> ExperimentResult:
    """Simulate experiment ``name`` and check its claims; nothing is written."""
    if name not in EXPERIMENTS:
        raise UnknownExperimentError(f"unknown experiment {name!r}; known: {', '.join(list_experiments())}")
    ctx = _context(preset, device, seeds, seed_offset, progress)
    start = time.perf_counter()
    out = EXPERIMENTS[name][0](ctx)
    out.summary["wall_time_s"] = time.perf_counter() - start
    out.summary["seeds"] = ctx.seeds
    out.summary["seed_offset"] = ctx.seed_offset
    return out


def plan_configs(names: list[str], preset: str = "default", seeds: int | None = None,
                 seed_offset: int = 0) -> list[TheoryConfig]:
    """Every config the experiments ``names`` will simulate (in order, with repeats removed)."""
    plan: list[TheoryConfig] = []
    for name in names:
        ctx = _context(preset, "cpu", seeds, seed_offset, False, plan=plan)
        with contextlib.suppress(_Planned):
            EXPERIMENTS[name][0](ctx)
    return list(dict.fromkeys(plan))
