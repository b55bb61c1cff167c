"""Registry of the reproduction experiments and their runs, per preset.

* Theory experiments (``a_trainable_head`` ... ``f_wide_head``): one run each, wrapping
  :func:`solo_offdiag.theory.experiments.run_experiment` with the theory preset the claims file
  names for this preset (both ``smoke`` and ``full`` use theory ``default``: it takes 1-2 minutes).
* ``image_heads``: a grid of solo-learn pretraining runs (dataset x method x head x seed) from the
  pinned ``artifact/configs/image_heads.yaml``, each followed by the offline linear probe and kNN
  (:mod:`solo_offdiag.repro.probe`) and a summary of its analysis-callback output. It needs
  solo-learn 1.0.6; without it :func:`image_unavailable` says why and how to install it.

Run keys (folders under ``<results>/<preset>/``): ``theory/<name>`` and
``image/<dataset>/<method>-<head>/seed<k>``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from solo_offdiag.io import atomic_write_json
from solo_offdiag.repro.artifact import artifact_file
from solo_offdiag.repro.runner import RunSpec
from solo_offdiag.solo_adapter.requirements import SOLO_PIN

__all__ = [
    "image_config",
    "IMAGE_EXPERIMENT",
    "THEORY_PRESET_FOR",
    "describe",
    "head_offdiag_summary",
    "image_grid",
    "image_specs",
    "image_unavailable",
    "list_experiments",
    "peak_over_final",
    "solo_run_dir",
    "specs_for",
    "theory_experiments",
    "theory_specs",
]

IMAGE_EXPERIMENT = "image_heads"
#: the one-line install hint printed with every SKIPPED image check.
SOLO_INSTALL_HINT = (
    "pip install 'setuptools<81' && pip install --no-build-isolation "
    f"'git+https://github.com/vturrisi/solo-learn@{SOLO_PIN}' (artifact/README.md, 'Enabling the image experiments')"
)
#: repro preset -> theory preset (the claims file's theory checks say the same; a test asserts it).
THEORY_PRESET_FOR = {"smoke": "default", "medium": "default", "full": "default"}
#: The first seed of the theory experiments in every repro preset (``--seed-offset`` overrides it):
#: the theory model was chosen on seeds 0-63 (docs/theory.md), so the artifact reports on seeds
#: from 100 on, as the image grid does (``first_seed: 100`` in configs/image_heads.yaml).
THEORY_FIRST_SEED = 100


def theory_experiments() -> list[str]:
    """The theory experiments of ``solo-offdiag theory all``, in its order."""
    from solo_offdiag.theory import experiments as T

    return list(T.IN_ALL)


def list_experiments() -> list[str]:
    return [*theory_experiments(), IMAGE_EXPERIMENT]


def describe() -> dict[str, str]:
    from solo_offdiag.theory import experiments as T

    out = {name: T.EXPERIMENTS[name][1] for name in theory_experiments()}
    out[IMAGE_EXPERIMENT] = ("solo-learn pretraining, heads x datasets x seeds, offline linear probe + "
                             "kNN, head trajectory and RankMe (C1, C2, C3; needs solo-learn)")
    return out


# ------------------------------------------------------------------------------------------
# Theory
# ------------------------------------------------------------------------------------------
def theory_specs(names: Sequence[str], preset: str, device: str, seeds: int | None,
                 progress: bool = True, seed_offset: int = THEORY_FIRST_SEED) -> list[RunSpec]:
    """One RunSpec per theory experiment; ``seed_offset`` (first seed) is part of the run's config,
    hence of run.json and the fingerprint (another offset is another run)."""
    theory_preset = THEORY_PRESET_FOR[preset]
    specs = []
    for name in names:
        config = {"experiment": name, "theory_preset": theory_preset, "device": device, "seeds": seeds,
                  "seed_offset": seed_offset, "models": theory_models(name, theory_preset, seeds, seed_offset)}

        def compute(run_dir: Path, name: str = name) -> dict[str, Any]:
            from solo_offdiag.repro import theory_output

            summary = theory_output.run_experiment(name, run_dir, preset=theory_preset, device=device, seeds=seeds,
                                                   progress=progress, seed_offset=seed_offset)
            return {"criteria": summary.get("criteria", {}), "wall_time_s": summary.get("wall_time_s"),
                    "figures": summary.get("figures", [])}

        specs.append(RunSpec(key=f"theory/{name}", config=config, compute=compute, seed=None,
                             description=f"theory experiment {name} (theory preset {theory_preset})",
                             tags={"kind": "theory", "experiment": name}, verify=_summary_intact))
    return specs


def theory_models(name: str, theory_preset: str, seeds: int | None, seed_offset: int) -> dict[str, Any]:
    """What a theory run simulates, for its config (hence its fingerprint): the preset's base
    model in full, and a digest of every model config the experiment plans. A change of a default
    of the model (e.g. ``eta_E``) or of a preset makes the cached run stale, so it is recomputed."""
    import hashlib

    from solo_offdiag.theory.experiments import base_config, plan_configs

    plan = [c.to_dict() for c in plan_configs([name], preset=theory_preset, seeds=seeds, seed_offset=seed_offset)]
    digest = hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"base": base_config(theory_preset).to_dict(), "configs": len(plan), "digest": digest}


def _summary_intact(run_dir: Path) -> str | None:
    from solo_offdiag.repro.runner import read_json_object

    if not read_json_object(run_dir / "summary.json"):
        return f"{run_dir / 'summary.json'} is missing or unreadable"
    return None


# ------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------
def image_unavailable() -> str | None:
    """None when solo-learn 1.0.6 is importable, else the reason and the install instructions."""
    from solo_offdiag.solo_adapter.requirements import solo_available

    ok, reason = solo_available()
    return None if ok else reason


def image_config() -> Path:
    """The pinned image config of the artifact in use (``--artifact DIR``, else the packaged copy)."""
    return artifact_file("configs", "image_heads.yaml")


def image_grid(preset: str, config_path: Path | None = None) -> dict[str, Any]:
    """The preset's section of the pinned image config (default: :func:`image_config`)."""
    import yaml

    config_path = config_path if config_path is not None else image_config()
    with open(config_path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict) or not isinstance(data.get(preset), dict):
        found = ", ".join(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{config_path}: no section {preset!r} (found: {found or 'nothing'})")
    return data[preset]


def _data_paths(dataset: str, data_dir: Path) -> tuple[str, str]:
    if dataset == "digits":
        return str(data_dir / "train"), str(data_dir / "val")
    return str(data_dir), str(data_dir)


def image_specs(preset: str, device: str, seeds: int | None, data_root: Path, data_dir: Path | None,
                progress: bool = True, first_seed: int | None = None) -> list[RunSpec]:
    """One RunSpec per (dataset, method, head, seed) of the preset's grid, seeds ``first_seed``,
    ``first_seed + 1``, ... (None: the grid's ``first_seed``)."""
    grid = image_grid(preset)
    n_seeds = seeds if seeds is not None else int(grid["seeds"])
    # held-out seeds: the recipes were tuned on seeds 0-99 (docs/image_study.md), presets report on
    # seeds from their `first_seed` on
    if first_seed is None:
        first_seed = int(grid.get("first_seed", 0))
    specs = []
    for entry in grid["grid"]:
        dataset, method = entry["dataset"], entry["method"]
        ddir = (data_root / "digits32" if dataset == "digits" else Path(data_dir or "datasets")).resolve()
        for head in entry["heads"]:
            for seed in range(first_seed, first_seed + n_seeds):
                key = f"image/{dataset}/{method}-{head}/seed{seed}"
                hardware = ["hardware=gpu"] if device.startswith("cuda") else [
                    "hardware=cpu", f"data.num_workers={grid.get('cpu_num_workers', 2)}"]
                # what determines the result (fingerprinted); paths and the progress bar are
                # added per attempt (runtime_overrides), so moved results stay valid
                overrides = [
                    *hardware, *grid.get("overrides", []),
                    f"method_kwargs.predictor.kind={head}", f"++seed={seed}",
                    f"name={preset}-{dataset}-{method}-{head}-s{seed}",
                ]
                config = {"experiment": IMAGE_EXPERIMENT, "preset": preset, "dataset": dataset,
                          "method": method, "head": head, "seed": seed, "device": device,
                          "config_name": entry["config_name"], "overrides": overrides}

                def compute(run_dir: Path, config: dict[str, Any] = config, ddir: Path = ddir) -> dict[str, Any]:
                    return _image_run(run_dir, config, ddir, device, progress)

                specs.append(RunSpec(key=key, config=config, compute=compute, seed=seed,
                                     description=f"{method} head={head} on {dataset}, seed {seed}",
                                     tags={"kind": "image", "dataset": dataset, "method": method, "head": head}))
    return specs


def _last_checkpoint(run_dir: Path) -> Path:
    """The newest *valid* checkpoint of a solo run directory (by epoch and step, never by mtime or
    directory order; unreadable ones are skipped with a warning)."""
    from solo_offdiag.solo_adapter.checkpoints import newest_valid_checkpoint

    info = newest_valid_checkpoint(run_dir)
    if info is None:
        raise FileNotFoundError(f"{run_dir}: pretraining left no readable checkpoint (checkpoint.enabled?)")
    return info.path


class IncompletePretraining(RuntimeError):
    """Pretraining returned before its last epoch/step (Lightning swallows Ctrl-C and returns)."""


def runtime_overrides(run_dir: Path, dataset: str, data_dir: Path, progress: bool) -> list[str]:
    """The overrides that depend on where things are (not fingerprinted, see :func:`image_specs`)."""
    train_path, val_path = _data_paths(dataset, data_dir)
    return [f"checkpoint.dir={run_dir / 'pretrain'}", f"data.train_path={train_path}",
            f"data.val_path={val_path}",
            f"++enable_progress_bar={'true' if progress and sys.stderr.isatty() else 'false'}"]


def check_complete(ckpt: Path, args: dict[str, Any]) -> dict[str, int]:
    """Raise :class:`IncompletePretraining` unless ``ckpt`` is from the end of training."""
    from solo_offdiag.solo_adapter.checkpoints import is_finished, read_checkpoint_info

    info = read_checkpoint_info(ckpt)
    epoch, step = info.epoch, info.global_step
    max_steps = int(args.get("max_steps") or -1)
    max_epochs = int(args.get("max_epochs") or 0)
    if not is_finished(info, max_epochs, max_steps):
        raise IncompletePretraining(
            f"{ckpt.name}: training stopped at epoch {epoch + 1} of {max_epochs} (step {step}"
            + (f" of {max_steps}" if max_steps > 0 else "") + "), interrupted? Re-run to resume it")
    return {"epoch": epoch, "global_step": step}


def _image_run(run_dir: Path, config: dict[str, Any], data_dir: Path, device: str,
               progress: bool = False) -> dict[str, Any]:
    from solo_offdiag.repro.probe import evaluate_checkpoint
    from solo_offdiag.repro.runner import read_json_object

    marker = read_json_object(run_dir / "pretrain.json")
    solo_run = run_dir / str(marker.get("run_dir", "")) if isinstance(marker.get("run_dir"), str) else None
    # a valid marker: pretraining finished in an earlier attempt, only the evaluation is left; a
    # missing or corrupt one: pretrain() auto-resumes (a finished run: it says so and returns)
    if solo_run is None or not (solo_run / "args.json").is_file():
        from solo_offdiag.solo_adapter import pretrain

        overrides = [*config["overrides"], *runtime_overrides(run_dir, config["dataset"], data_dir, progress)]
        solo_run = Path(pretrain(overrides, config_name=config["config_name"]))
        finished = check_complete(_last_checkpoint(solo_run), json.loads((solo_run / "args.json").read_text()))
        atomic_write_json(run_dir / "pretrain.json", {
            "run_dir": str(solo_run.resolve().relative_to(run_dir.resolve())), "overrides": overrides, **finished})
    args = json.loads((solo_run / "args.json").read_text())
    ckpt = _last_checkpoint(solo_run)
    probe_device = "cuda" if device.startswith("cuda") else "cpu"
    probe = evaluate_checkpoint(ckpt, args, data_dir, device=probe_device)
    atomic_write_json(run_dir / "probe.json", probe)
    analysis = solo_run / "analysis"
    result = {
        "dataset": config["dataset"], "method": config["method"], "head": config["head"],
        "seed": config["seed"], "probe_acc1": probe["probe_acc1"], "knn_acc1": probe["knn_acc1"],
        # relative to the run folder (see solo_run_dir()), so results folders can move
        "solo_run_dir": str(solo_run.resolve().relative_to(run_dir.resolve())),
        "checkpoint": str(ckpt.resolve().relative_to(run_dir.resolve())),
    }
    result.update(analysis_summary(analysis))
    return result


def solo_run_dir(record: dict[str, Any]) -> Path:
    """The solo-learn run directory of an image record (``_run_dir`` is set by ``image_records``)."""
    path = Path(record.get("solo_run_dir", ""))
    return path if path.is_absolute() else Path(record.get("_run_dir", ".")) / path


def _series(metrics: dict[str, Any], column: str) -> tuple[list[int], list[float]]:
    import numpy as np

    if column not in metrics:
        return [], []
    steps, values = metrics["step"], metrics[column]
    ok = np.isfinite(values)
    return [int(s) for s in steps[ok]], [float(v) for v in values[ok]]


def head_offdiag_summary(steps: Sequence[int], values: Sequence[float]) -> dict[str, Any] | None:
    """Peak, final value and relative peak position of a ||W - I||_F series (None if empty).

    The one definition of these statistics: the image records, the C3 criterion
    (:func:`solo_offdiag.repro.claims.c3_rise_fall`) and the C3 figure all use it.
    """
    if len(values) < 2:
        return None
    i = max(range(len(values)), key=lambda k: values[k])
    span = steps[-1] - steps[0]
    return {"peak": float(values[i]), "final": float(values[-1]), "peak_step": int(steps[i]),
            "final_step": int(steps[-1]),
            "peak_position": float((steps[i] - steps[0]) / span) if span > 0 else 1.0,
            "n_points": len(values)}


def peak_over_final(summary: dict[str, Any]) -> float:
    """``peak / final`` of a :func:`head_offdiag_summary` (a final value of 0 counts as 1e-300)."""
    return float(summary["peak"]) / max(float(summary["final"]), 1e-300)


def analysis_summary(analysis_dir: Path) -> dict[str, Any]:
    """Last RankMe / collapse values and the ||W - I||_F summary from ``analysis/metrics.csv``."""
    path = analysis_dir / "metrics.csv"
    if not path.is_file():
        return {"rankme_z": None, "rankme_feats": None, "head_offdiag": None}
    from solo_offdiag.analysis.writer import read_metrics_csv

    metrics = read_metrics_csv(path)

    def last(column: str) -> float | None:
        _, vals = _series(metrics, column)
        return vals[-1] if vals and math.isfinite(vals[-1]) else None

    steps, off = _series(metrics, "head/offdiag_fro")
    return {"rankme_z": last("rankme/z"), "rankme_feats": last("rankme/feats"),
            "collapse_std_z": last("collapse_std/z"), "head_offdiag": head_offdiag_summary(steps, off)}


def specs_for(names: Sequence[str], preset: str, device: str, seeds: int | None, data_root: Path,
              data_dir: Path | None, progress: bool = True, seed_offset: int | None = None) -> list[RunSpec]:
    """RunSpecs of the named experiments (theory ones first, in the theory package's order).

    ``seed_offset``: the first seed of every experiment, theory and image alike (None: each one's
    default, :data:`THEORY_FIRST_SEED` and the image grid's ``first_seed``), so one number reruns the
    whole artifact on other seeds."""
    known = list_experiments()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown experiment {unknown[0]!r}; known: {', '.join(known)}")
    theory = [n for n in theory_experiments() if n in names]
    specs = theory_specs(theory, preset, device, seeds, progress,
                         THEORY_FIRST_SEED if seed_offset is None else seed_offset)
    if IMAGE_EXPERIMENT in names:
        specs += image_specs(preset, device, seeds, data_root, data_dir, progress, first_seed=seed_offset)
    return specs
