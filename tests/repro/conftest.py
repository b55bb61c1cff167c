"""Shared fakes of the reproduction tests: theory summaries, image runs, a results folder.

Fake theory summaries carry just the fields :mod:`solo_offdiag.theory.criteria` reads, so the
real criteria functions judge them (delegation is tested, not mocked). Fake image runs look like
a finished solo-learn run directory (args.json, a ResNet-18 checkpoint with ``backbone.*`` keys,
analysis/metrics.csv and spectrum.npz) without needing solo-learn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from solo_offdiag.io import atomic_write_json, atomic_write_npz, atomic_write_text
from solo_offdiag.repro.experiments import THEORY_PRESET_FOR


def theory_run(good: bool, seed: int = 0) -> dict[str, Any]:
    """One seed's detect_phases-like dict: `good` = the mechanism as the paper predicts."""
    if good:
        return {"seed": seed, "final_alignment": [[0.95, 0.05], [0.05, 0.92]], "offdiag_peak": 0.6,
                "offdiag_final": 0.05, "offdiag_peak_position": 0.3, "t1": 800, "t_v2": 3000, "t_both": 3000,
                "e21_peak": 0.5, "substitution_duration": 100, "t_escape": 0, "t_sub_peak": 900,
                "t_offdiag_peak": 900, "t_return": 2000, "t1_neuron": 0, "t_v2_neuron": 1}
    return {"seed": seed, "final_alignment": [[0.95, 0.05], [0.9, 0.1]], "offdiag_peak": 0.6,
            "offdiag_final": 0.59, "offdiag_peak_position": 0.99, "t1": 800, "t_v2": None, "t_both": None,
            "e21_peak": 0.5, "substitution_duration": None}


def theory_summary(name: str, good: bool, preset: str = THEORY_PRESET_FOR["smoke"]) -> dict[str, Any]:
    """A summary.json of theory experiment `name` whose claim passes iff `good`."""
    def arm(ok: bool) -> dict[str, Any]:
        return {"runs": [theory_run(ok, s) for s in range(4)]}

    bad = theory_run(False)
    arms: dict[str, Any]
    if name == "a_trainable_head":
        arms = {"trainable": arm(good)}
    elif name == "b_fixed_head":
        collapsed = {"runs": [dict(bad, final_alignment=[[0.95, 0.05], [0.9, 0.1]]) for _ in range(4)]}
        arms = {"fixed": collapsed if good else arm(True), "trainable": arm(True)}
    elif name in ("c_no_bn", "d_no_stopgrad"):
        ablated = "no_bn" if name == "c_no_bn" else "no_stop_gradient"
        arms = {"full": arm(True), ablated: arm(False) if good else arm(True)}
    elif name == "f_wide_head":
        arms = {"wide": arm(good)}
    else:
        arms = {}
    summary: dict[str, Any] = {"experiment": name, "preset": preset, "arms": arms, "criteria": {}}
    if name == "e_scaling":
        rep = {"t1_slope_ok": good, "eta_ratio_ok": good, "substitution_ok": True}
        summary["scaling"] = {"t1_slope": 2.1 if good else 0.3, "peak_slope": 1.0, "peak_slope_usable": True,
                              "interior_peaks": 12, "peak_runs": 12, "replicates": [rep] * 4}
    return summary


THEORY = ["a_trainable_head", "b_fixed_head", "c_no_bn", "d_no_stopgrad", "e_scaling", "f_wide_head"]


def write_finished(run_dir: Path, result: dict[str, Any], config: dict[str, Any] | None = None) -> None:
    from solo_offdiag.repro.runner import config_fingerprint

    config = config or {"fake": True}
    atomic_write_json(run_dir / "done.json", {"key": run_dir.name, "config": config,
                                              "config_fingerprint": config_fingerprint(config),
                                              "result": result})


def write_theory_results(preset_dir: Path, good: bool = True, preset: str = THEORY_PRESET_FOR["smoke"],
                         names: list[str] | None = None) -> None:
    for name in names or THEORY:
        run_dir = preset_dir / "theory" / name
        atomic_write_json(run_dir / "summary.json", theory_summary(name, good, preset))
        write_finished(run_dir, {"criteria": {}})


def fake_solo_run(run_dir: Path, head: str, *, offdiag: list[float] | None = None,
                  rankme: float = 40.0, dataset: str = "custom", epoch: int = 0, global_step: int = 10,
                  max_epochs: int = 1) -> Path:
    """A solo-learn run directory as `pretrain` leaves it (finished with the default epochs)."""
    import torch

    from solo_offdiag.repro.probe import build_backbone

    run_dir.mkdir(parents=True, exist_ok=True)
    args = {"data": {"dataset": dataset}, "backbone": {"name": "resnet18"},
            "augmentations": [{"crop_size": 16}], "method_kwargs": {"predictor": {"kind": head}},
            "max_epochs": max_epochs}
    atomic_write_text(run_dir / "args.json", json.dumps(args))
    torch.manual_seed(0)
    state = {f"backbone.{k}": v for k, v in build_backbone("resnet18", dataset).state_dict().items()}
    torch.save({"state_dict": state, "epoch": epoch, "global_step": global_step},
               run_dir / f"fake-ep={epoch}.ckpt")
    steps = list(range(0, 100, 10))
    offdiag = offdiag if offdiag is not None else [0.0] * len(steps)
    rows = ["step,head/offdiag_fro,rankme/z"]
    for s, v in zip(steps, offdiag):
        rows.append(f"{s},{v!r},{rankme!r}")
    atomic_write_text(run_dir / "analysis" / "metrics.csv", "\n".join(rows) + "\n")
    eig = np.sort(np.random.default_rng(0).random((len(steps), 16)), axis=1)[:, ::-1]
    atomic_write_npz(run_dir / "analysis" / "spectrum.npz", {
        "steps": np.array(steps), "eigvals/z": eig, "rankme/z": np.full(len(steps), rankme)})
    return run_dir


def image_record(dataset: str, head: str, seed: int, probe: float, rankme: float = 40.0,
                 offdiag: dict[str, float] | None = None, method: str = "byol_offdiag",
                 solo_run_dir: str = "") -> dict[str, Any]:
    return {"dataset": dataset, "method": method, "head": head, "seed": seed, "probe_acc1": probe,
            "knn_acc1": probe - 1, "rankme_z": rankme, "head_offdiag": offdiag, "solo_run_dir": solo_run_dir}


@pytest.fixture
def digits16(tmp_path_factory) -> Path:
    """The digits export at 16 px (shared per test session is not needed: ~2 s)."""
    from solo_offdiag.repro.digits import export_digits

    return export_digits(tmp_path_factory.mktemp("data") / "digits16", size=16)


@pytest.fixture
def fakes():
    """The helpers above, as a fixture (tests never import from a package called `tests`)."""
    from types import SimpleNamespace

    return SimpleNamespace(theory_run=theory_run, theory_summary=theory_summary, THEORY=THEORY,
                           write_finished=write_finished, write_theory_results=write_theory_results,
                           fake_solo_run=fake_solo_run, image_record=image_record)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `solo` skip, with the reason, when solo-learn 1.0.6 is missing."""
    here = Path(__file__).parent
    marked = [i for i in items if i.get_closest_marker("solo") is not None and here in Path(str(i.fspath)).parents]
    if not marked:
        return
    from solo_offdiag.solo_adapter.requirements import SOLO_PIN, solo_available

    ok, reason = solo_available()
    if ok:
        return
    skip = pytest.mark.skip(reason=f"solo-learn 1.0.6 not installed ({reason.splitlines()[0]}): "
                                   "pip install 'setuptools<81' && pip install --no-build-isolation "
                                   f"'git+https://github.com/vturrisi/solo-learn@{SOLO_PIN}'")
    for item in marked:
        item.add_marker(skip)
