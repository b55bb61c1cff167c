"""The image experiment: grid, per-run work (pretrain faked), figures; and one real solo-learn run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from solo_offdiag.heads import list_heads
from solo_offdiag.repro import experiments as E
from solo_offdiag.repro.runner import execute


def test_smoke_grid_is_small_and_full_grid_is_the_study(tmp_path):
    smoke = E.image_specs("smoke", "cpu", None, tmp_path, None)
    assert {s.config["head"] for s in smoke} >= {"mlp", "offdiag", "identity"}
    assert {s.config["dataset"] for s in smoke} == {"digits"}
    assert all("hardware=cpu" in s.config["overrides"] for s in smoke)
    full = E.image_specs("full", "cuda", None, tmp_path, Path("/data"))
    assert {s.config["dataset"] for s in full} == {"cifar10", "cifar100", "stl10"}
    byol = {s.config["head"] for s in full if s.config["method"] == "byol_offdiag"}
    assert byol == set(list_heads())  # the study covers every registered head
    assert all("hardware=gpu" in s.config["overrides"] for s in full)
    # where the data and the run live is not part of the fingerprinted config (results can move)
    assert not any(o.startswith(("data.train_path", "checkpoint.dir", "++enable_progress_bar"))
                   for s in full for o in s.config["overrides"])
    assert "data.train_path=/data" in E.runtime_overrides(tmp_path, "cifar10", Path("/data"), False)
    assert f"data.val_path={tmp_path / 'd' / 'val'}" in E.runtime_overrides(tmp_path, "digits", tmp_path / "d", False)
    assert len({s.key for s in full}) == len(full)  # one folder per run
    assert len({o for s in full for o in s.config["overrides"] if o.startswith("name=")}) == len(full)
    assert len(E.image_specs("smoke", "cpu", 2, tmp_path, None)) == 2 * len(smoke)


def test_image_presets_report_on_held_out_seeds_and_medium_has_every_head(tmp_path):
    # recipes are chosen on seeds < 100 (docs/image_study.md); presets report from seed 100 on
    for preset in ("smoke", "medium"):
        specs = E.image_specs(preset, "cpu", None, tmp_path, None)
        assert specs and min(s.seed for s in specs) >= 100
        assert all(s.key.endswith(f"seed{s.seed}") for s in specs)
    medium = E.image_specs("medium", "cpu", None, tmp_path, None)
    assert {s.config["head"] for s in medium} == set(list_heads())  # every registered head
    assert sorted({s.seed for s in medium}) == [100, 101, 102]
    # medium trains with the smoke recipe
    assert E.image_grid("medium")["overrides"] == E.image_grid("smoke")["overrides"]


def test_head_offdiag_summary():
    s = E.head_offdiag_summary([0, 10, 20, 30, 40], [0.0, 0.5, 1.0, 0.6, 0.2])
    assert s["peak"] == 1.0 and s["final"] == 0.2 and s["peak_position"] == 0.5 and s["peak_step"] == 20
    assert E.head_offdiag_summary([0], [0.0]) is None


def test_image_run_pretrains_probes_and_summarises(tmp_path, digits16, monkeypatch, fakes):
    import solo_offdiag.solo_adapter as adapter

    calls = []

    def fake_pretrain(overrides, *, config_name="byol_offdiag", config_dir=None):
        calls.append((list(overrides), config_name))
        ckpt_dir = Path(next(o.split("=", 1)[1] for o in overrides if o.startswith("checkpoint.dir=")))
        head = next(o.split("=", 1)[1] for o in overrides if o.startswith("method_kwargs.predictor.kind="))
        return fakes.fake_solo_run(ckpt_dir / "byol_offdiag" / "run1", head,
                                   offdiag=[0, 0.4, 0.8, 1.0, 0.9, 0.6, 0.4, 0.3, 0.25, 0.2], **finish)

    monkeypatch.setattr(adapter, "pretrain", fake_pretrain)
    spec = next(s for s in E.image_specs("smoke", "cpu", 1, tmp_path / "data", None) if s.config["head"] == "offdiag")
    spec.compute = lambda run_dir, c=spec.config: E._image_run(run_dir, c, digits16, "cpu")

    # pretraining that returns early (Lightning swallows Ctrl-C) is not a finished run
    finish = {"epoch": 0, "global_step": 3, "max_epochs": 2}
    out = execute(spec, tmp_path / "smoke", log=lambda m: None)
    assert out.status == "failed" and "IncompletePretraining" in out.error and "epoch 1 of 2" in out.error
    assert not (out.run_dir / "pretrain.json").exists() and not (out.run_dir / "done.json").exists()

    finish = {"epoch": 1, "global_step": 6, "max_epochs": 2}
    out = execute(spec, tmp_path / "smoke", log=lambda m: None)
    assert out.status == "done", out.error
    assert json.loads((out.run_dir / "run.json").read_text())["attempt"] == 2
    r = out.result
    assert r["head"] == "offdiag" and r["dataset"] == "digits" and 0 <= r["probe_acc1"] <= 100
    assert r["probe_acc1"] > 30 and r["knn_acc1"] > 30  # even random ResNet features beat chance (10%)
    assert r["rankme_z"] == 40.0
    assert r["head_offdiag"]["peak"] == 1.0 and r["head_offdiag"]["peak_position"] == pytest.approx(3 / 9)
    smoke_grid = E.image_grid("smoke")
    assert calls[0][1] == smoke_grid["grid"][0]["config_name"]
    assert f"++seed={smoke_grid['first_seed']}" in calls[0][0]
    assert not Path(r["solo_run_dir"]).is_absolute()  # relative to the run folder
    probe = json.loads((out.run_dir / "probe.json").read_text())
    assert probe["n_train"] == 1438 and probe["n_val"] == 359 and probe["protocol"]["knn_k"] == 20

    # figures from the stored analysis output
    from solo_offdiag.repro.figures import write_figures

    paths = write_figures(tmp_path / "smoke")
    names = {p.name for p in paths}
    assert {"c3_head_trajectory.png", "rank_spectrum.png"} <= names
    assert all(p.stat().st_size > 5000 for p in paths)

    # an interrupted evaluation resumes without pretraining again
    (out.run_dir / "done.json").unlink()
    assert execute(spec, tmp_path / "smoke", log=lambda m: None).status == "done" and len(calls) == 2

    # a moved results folder is still valid: cached, and its figures are drawn from the new place
    import shutil

    shutil.move(tmp_path / "smoke", tmp_path / "moved")
    assert execute(spec, tmp_path / "moved", log=lambda m: None).status == "cached" and len(calls) == 2
    assert {"c3_head_trajectory.png", "rank_spectrum.png"} <= {p.name for p in write_figures(tmp_path / "moved")}


@pytest.mark.solo
@pytest.mark.slow
def test_real_solo_run_on_digits(tmp_path, digits16):
    """Two pretraining steps of byol_offdiag through solo-learn on the digits, then the probe."""
    spec = next(s for s in E.image_specs("smoke", "cpu", 1, tmp_path / "data", None) if s.config["head"] == "offdiag")
    tiny = ["optimizer.batch_size=8", "max_epochs=1", "++max_steps=2", "method_kwargs.proj_hidden_dim=32",
            "method_kwargs.proj_output_dim=16", "method_kwargs.pred_hidden_dim=32", "data.num_workers=0",
            "++method_kwargs.analysis.every_n_steps=1", "augmentations.0.crop_size=16", "augmentations.1.crop_size=16"]
    spec.config["overrides"] = [o for o in spec.config["overrides"] if not o.startswith("data.num_workers")] + tiny
    spec.compute = lambda run_dir, c=spec.config: E._image_run(run_dir, c, digits16, "cpu")
    out = execute(spec, tmp_path / "smoke", log=lambda m: None)
    assert out.status == "done", out.error + (out.run_dir / "error.txt").read_text()
    assert 0 <= out.result["probe_acc1"] <= 100 and out.result["head_offdiag"] is not None
    args = json.loads((out.run_dir / out.result["solo_run_dir"] / "args.json").read_text())
    assert args["method_kwargs"]["predictor"]["kind"] == "offdiag" and args["seed"] == spec.seed == E.image_grid("smoke")["first_seed"]


def _image_study_module():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "artifact" / "image_study.py"
    spec = importlib.util.spec_from_file_location("image_study", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_image_study_pinned_variant_is_the_smoke_recipe_with_one_value_per_key():
    study = _image_study_module()
    config_name, overrides = study.pinned_variant()
    grid = E.image_grid("smoke")
    assert config_name == grid["grid"][0]["config_name"] and overrides == grid["overrides"]
    merged = study.merge_overrides(study.BASE, overrides, ["optimizer.batch_size=64"], ["max_epochs=10"])
    keys = [o.split("=", 1)[0].lstrip("+") for o in merged]
    assert len(keys) == len(set(keys))
    # the later list wins: the study's own value, then the pinned recipe's, then BASE's
    assert "optimizer.batch_size=64" in merged and "max_epochs=10" in merged
    assert "auto_resume.enabled=true" in merged and "auto_resume.enabled=false" not in merged
    assert "++method_kwargs.predictor.weight_decay_start=0.5" in merged


def test_one_seed_offset_moves_every_experiment(tmp_path):
    names = ["a_trainable_head", E.IMAGE_EXPERIMENT]
    first = int(E.image_grid("smoke")["first_seed"])
    default = E.specs_for(names, "smoke", "cpu", None, tmp_path, None)
    theory = [s for s in default if s.key.startswith("theory/")]
    image = [s for s in default if s.key.startswith("image/")]
    assert theory and image
    assert all(s.config["seed_offset"] == E.THEORY_FIRST_SEED for s in theory)
    assert {s.seed for s in image} == {first}
    # the CPU presets (recipes tuned on seeds 0-1) report from the theory's first seed too; the full
    # preset's packaged recipes were tuned on no seed of ours and start at 0
    assert all(E.image_grid(p)["first_seed"] == E.THEORY_FIRST_SEED for p in ("smoke", "medium"))
    moved = E.specs_for(names, "smoke", "cpu", 2, tmp_path, None, seed_offset=300)
    assert all(s.config["seed_offset"] == 300 for s in moved if s.key.startswith("theory/"))
    image_moved = [s for s in moved if s.key.startswith("image/")]
    assert {s.seed for s in image_moved} == {300, 301}
    # another seed is another run: its key and its run name differ
    assert not {s.key for s in image_moved} & {s.key for s in image}
    assert all(f"-s{s.seed}" in " ".join(s.config["overrides"]) for s in image_moved)
