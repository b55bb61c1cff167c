"""The analysis callbacks end to end on a tiny LightningModule (CPU, a few dozen steps)."""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pytest
from lightning.pytorch.callbacks import ModelCheckpoint

from solo_offdiag.analysis.callbacks import (
    AnalysisProtocolError,
    AnalysisWarning,
    CollapseMonitorCallback,
    EigenAlignmentCallback,
    EmbeddingSpectrumCallback,
    HeadDynamicsCallback,
    build_callbacks,
)
from solo_offdiag.analysis.config import AnalysisConfig, CollapseConfig
from solo_offdiag.analysis.toy import ToySimSiam
from solo_offdiag.analysis.writer import load_npz, read_metrics_csv, read_metrics_table

D_Z, D_FEATS = 8, 24


def _cfg(**kw) -> AnalysisConfig:
    kw.setdefault("every_n_steps", 5)
    kw.setdefault("queue_size", 128)
    return AnalysisConfig(**kw)


def _callbacks(tmp_path, **kw):
    return build_callbacks(_cfg(**kw), head_is_linear=True, out_dir=str(tmp_path / "analysis"))


def test_build_callbacks_selection(caplog):
    names = [type(c).__name__ for c in build_callbacks(AnalysisConfig(), head_is_linear=True)]
    assert names == [
        "HeadDynamicsCallback",
        "EmbeddingSpectrumCallback",
        "CollapseMonitorCallback",
        "EigenAlignmentCallback",
    ]
    assert build_callbacks(AnalysisConfig(enabled=False), head_is_linear=True) == []
    with caplog.at_level(logging.INFO, logger="solo_offdiag.analysis.callbacks"):
        nonlinear = build_callbacks(AnalysisConfig(), head_is_linear=False)
    assert [type(c).__name__ for c in nonlinear] == [
        "EmbeddingSpectrumCallback",
        "CollapseMonitorCallback",
    ]
    assert "nonlinear" in caplog.text and "head dynamics and eigen alignment" in caplog.text
    cfg = AnalysisConfig(spectrum=False, alignment=False, collapse=CollapseConfig(enabled=False))
    assert [type(c).__name__ for c in build_callbacks(cfg, head_is_linear=True)] == [
        "HeadDynamicsCallback"
    ]


def test_full_run_writes_every_file_with_the_documented_schema(tmp_path, fit):
    trainer = fit(tmp_path, _callbacks(tmp_path), max_steps=20)
    folder = tmp_path / "analysis"
    metrics = read_metrics_csv(folder / "metrics.csv")
    assert metrics["step"].tolist() == [0, 5, 10, 15, 20]
    expected = {
        "head/dist_identity", "head/offdiag_fro", "head/offdiag_mean_abs", "head/offdiag_max_abs",
        "head/asymmetry", "head/sym_eig_min", "head/sym_eig_max", "head/condition_number",
        "rankme/z", "rankme/feats", "alpha_req/z", "alpha_req/feats", "n_samples/z",
        "n_samples/feats", "collapse_std/z", "collapse_std/feats", "collapse_threshold/z",
        "collapse_threshold/feats", "align/mean", "align/weighted_mean", "align/commutator",
    }  # fmt: skip
    assert set(metrics) == expected | {"step"}
    # step 0: the identity initialisation, head statistics only
    assert metrics["head/dist_identity"][0] == 0.0 and metrics["head/condition_number"][0] == 1.0
    assert np.isnan(metrics["rankme/z"][0])
    assert (metrics["head/dist_identity"][1:] > 0).all()  # the off-diagonals moved
    assert np.allclose(metrics["head/dist_identity"], metrics["head/offdiag_fro"])  # offdiag head
    assert ((metrics["rankme/z"][1:] >= 1) & (metrics["rankme/z"][1:] <= D_Z)).all()
    assert (metrics["n_samples/z"][1:] == 128).all()
    assert np.allclose(metrics["collapse_threshold/z"][1:], 0.1 / math.sqrt(D_Z))
    assert (
        (metrics["align/weighted_mean"][1:] > 0) & (metrics["align/weighted_mean"][1:] <= 1)
    ).all()

    head = load_npz(folder / "head_trajectory.npz")
    assert head["steps"].tolist() == [0, 5, 10, 15, 20]
    assert head["delta"].shape == (5, D_Z, D_Z) and head["delta"].dtype == np.float16
    assert np.all(np.diagonal(head["delta"], axis1=1, axis2=2) == 0)  # offdiag: diagonal is 1
    assert head["stat_steps"].tolist() == [0, 5, 10, 15, 20]
    assert head["sym_eigvals"].shape == (5, D_Z)
    fro = np.linalg.norm(head["delta"][-1].astype(np.float64))
    assert fro == pytest.approx(metrics["head/dist_identity"][-1], rel=2e-3)

    spectrum = load_npz(folder / "spectrum.npz")
    assert spectrum["steps"].tolist() == [5, 10, 15, 20]
    assert spectrum["eigvals/z"].shape == (4, D_Z)
    assert spectrum["eigvals/feats"].shape == (4, D_FEATS)
    assert np.all(np.diff(spectrum["eigvals/z"], axis=1) <= 1e-6)  # descending
    assert np.allclose(spectrum["rankme/z"], metrics["rankme/z"][1:])

    align = load_npz(folder / "alignment.npz")
    assert align["steps"].tolist() == [5, 10, 15, 20]
    assert align["per_mode"].shape == align["corr_eigvals"].shape == (4, D_Z)

    # the same values went through the Lightning logger (here CSVLogger)
    logged = (tmp_path / "logs" / "toy" / "version_0" / "metrics.csv").read_text()
    assert "rankme/z" in logged.splitlines()[0] and "head/offdiag_max_abs" in logged
    assert trainer.global_step == 20


def test_out_dir_defaults_to_the_log_dir(tmp_path, fit):
    callbacks = build_callbacks(_cfg(spectrum=False, alignment=False), head_is_linear=True)
    trainer = fit(tmp_path, callbacks, max_steps=5)
    assert (trainer.log_dir is not None) and (tmp_path / "logs" / "toy" / "version_0").exists()
    assert (tmp_path / "logs" / "toy" / "version_0" / "analysis" / "metrics.csv").is_file()


def test_resume_keeps_each_logged_step_exactly_once(tmp_path, fit):
    """Fit 15 steps with a checkpoint at 10 (rows 11-15 are on disk but not in the checkpoint),
    resume from it to 20: metrics.csv and the npz files hold each step once."""
    ckpt_dir = tmp_path / "ckpt"

    def checkpoint():
        # str: lightning 2.1 stores dirpath as given and its resume loads with torch's weights_only
        return ModelCheckpoint(dirpath=str(ckpt_dir), every_n_train_steps=10, save_top_k=-1)

    fit(tmp_path, [*_callbacks(tmp_path), checkpoint()], max_steps=15, enable_checkpointing=True)
    before = read_metrics_csv(tmp_path / "analysis" / "metrics.csv")
    assert before["step"].tolist() == [0, 5, 10, 15]
    (ckpt,) = ckpt_dir.glob("*step=10*.ckpt")
    fit(
        tmp_path,
        [*_callbacks(tmp_path), checkpoint()],
        max_steps=20,
        ckpt_path=str(ckpt),
        enable_checkpointing=True,
    )
    after = read_metrics_csv(tmp_path / "analysis" / "metrics.csv")
    assert after["step"].tolist() == [0, 5, 10, 15, 20]
    for column in ("head/dist_identity", "rankme/z", "collapse_std/z", "align/commutator"):
        assert np.isfinite(after[column][1:]).all()
        # rows up to the checkpoint come from the checkpointed state, unchanged
        assert np.array_equal(after[column][:3], before[column][:3], equal_nan=True)
    head = load_npz(tmp_path / "analysis" / "head_trajectory.npz")
    assert head["steps"].tolist() == [0, 5, 10, 15, 20]
    assert head["stat_steps"].tolist() == [0, 5, 10, 15, 20]
    assert load_npz(tmp_path / "analysis" / "spectrum.npz")["steps"].tolist() == [5, 10, 15, 20]
    assert load_npz(tmp_path / "analysis" / "alignment.npz")["steps"].tolist() == [5, 10, 15, 20]


def test_nan_embeddings_warn_with_the_step_record_nan_and_training_continues(tmp_path, fit):
    with pytest.warns(AnalysisWarning, match=r"step 10: non-finite values .* 'z'") as record:
        trainer = fit(tmp_path, _callbacks(tmp_path), max_steps=20, module=ToySimSiam(nan_steps={10}))
    assert trainer.global_step == 20
    assert any("training continues" in str(w.message) for w in record)
    values, present = read_metrics_table(tmp_path / "analysis" / "metrics.csv")
    row = values["step"].tolist().index(10)
    for column in ("collapse_std/z", "rankme/z", "alpha_req/z", "align/weighted_mean"):
        assert present[column][row] and math.isnan(values[column][row]), column
    assert math.isfinite(values["rankme/feats"][row])  # the other embedding is unaffected
    assert math.isfinite(values["collapse_std/z"][values["step"].tolist().index(15)])


def test_nan_embeddings_stop_training_when_asked(tmp_path, fit):
    with pytest.warns(AnalysisWarning, match="step 10.*stopping training"):
        trainer = fit(
            tmp_path,
            _callbacks(tmp_path, stop_on_nan=True),
            max_steps=30,
            module=ToySimSiam(nan_steps={10}),
        )
    assert trainer.global_step == 10


@pytest.mark.parametrize("callback_cls", [HeadDynamicsCallback, EigenAlignmentCallback])
def test_module_without_head_fails_at_setup_naming_what_is_missing(tmp_path, callback_cls, fit):
    with pytest.raises(AnalysisProtocolError, match=r"ToySimSiam has no attribute `prediction_head`"):
        fit(tmp_path, [callback_cls()], max_steps=2, module=ToySimSiam(head=None))
    with pytest.raises(AnalysisProtocolError, match=r"MLPHead\) is nonlinear: its matrix\(\)"):
        fit(tmp_path, [callback_cls()], max_steps=2, module=ToySimSiam(head="mlp"))


def test_nonlinear_head_runs_with_build_callbacks(tmp_path, fit):
    cfg = _cfg()
    callbacks = build_callbacks(cfg, head_is_linear=False, out_dir=str(tmp_path / "analysis"))
    fit(tmp_path, callbacks, max_steps=10, module=ToySimSiam(head="mlp"))
    metrics = read_metrics_csv(tmp_path / "analysis" / "metrics.csv")
    assert "rankme/z" in metrics and not any(k.startswith("head/") for k in metrics)


def test_queue_smaller_than_dimension_warns_that_rank_is_capped(tmp_path, fit):
    callbacks = [EmbeddingSpectrumCallback(every_n_steps=5, queue_size=16, out_dir=tmp_path)]
    with pytest.warns(AnalysisWarning, match=r"queue_size=16 .* dimension 24 of 'feats'.*capped"):
        fit(tmp_path, callbacks, max_steps=5)
    metrics = read_metrics_csv(tmp_path / "metrics.csv")
    assert metrics["rankme/feats"][0] <= 16 and metrics["n_samples/feats"][0] == 16


def test_collapse_monitor_warns_with_steps_and_values_and_can_stop(tmp_path, fit):
    monitor = CollapseMonitorCallback(
        every_n_steps=5, threshold=10.0, patience=2, stop=True, out_dir=tmp_path
    )
    with pytest.warns(
        AnalysisWarning, match=r"step 10: collapse of 'z'.*step 5: .*step 10: "
    ) as rec:
        trainer = fit(tmp_path, [monitor], max_steps=30)
    assert trainer.global_step == 10
    assert any("stopping training" in str(w.message) for w in rec)
    assert read_metrics_csv(tmp_path / "metrics.csv")["step"].tolist() == [5, 10]


def test_collapse_monitor_is_quiet_on_a_healthy_run(tmp_path, fit):
    monitor = CollapseMonitorCallback(every_n_steps=5, out_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AnalysisWarning)
        trainer = fit(tmp_path, [monitor], max_steps=15)
    # it did check, at every logging point, and found the healthy ~1/sqrt(d) level
    metrics = read_metrics_csv(tmp_path / "metrics.csv")
    assert metrics["step"].tolist() == [5, 10, 15] and trainer.global_step == 15
    threshold = metrics["collapse_threshold/z"]
    assert np.allclose(threshold, 0.1 / math.sqrt(8))  # z_dim 8 of the toy module
    assert (metrics["collapse_std/z"] > threshold).all()
    assert np.isfinite(metrics["collapse_std/feats"]).all()


@pytest.mark.parametrize("source", ["val", "auto"])
def test_spectrum_on_validation_embeddings(tmp_path, source, fit):
    spectrum = EmbeddingSpectrumCallback(source=source, queue_size=64, out_dir=tmp_path)
    fit(tmp_path, [spectrum], max_steps=16, val=True)  # 8 batches per epoch: val at 8 and 16
    assert spectrum.mode == "val"
    metrics = read_metrics_csv(tmp_path / "metrics.csv")
    assert metrics["step"].tolist() == [8, 16]
    assert (metrics["n_samples/z"] == 64).all()  # the first 64 of the 96 validation samples


def test_auto_source_falls_back_to_training_batches_without_validation_embeddings(tmp_path, fit):
    spectrum = EmbeddingSpectrumCallback(every_n_steps=4, queue_size=64, out_dir=tmp_path)
    module = ToySimSiam()
    module.validation_step = lambda batch, batch_idx: None  # validation without embeddings
    with pytest.warns(AnalysisWarning, match="validation_step returns no embeddings"):
        fit(tmp_path, [spectrum], max_steps=16, val=True, module=module)
    assert spectrum.mode == "train"
    assert read_metrics_csv(tmp_path / "metrics.csv")["step"].tolist() == [12, 16]


def test_training_step_without_embeddings_still_logs_the_head(tmp_path, fit):
    with pytest.warns(AnalysisWarning, match="outputs have no 'z'"):
        fit(tmp_path, _callbacks(tmp_path), max_steps=10, module=ToySimSiam(return_embeddings=False))
    metrics = read_metrics_csv(tmp_path / "analysis" / "metrics.csv")
    assert metrics["step"].tolist() == [0, 5, 10]
    assert not any(k.startswith(("rankme", "align", "collapse")) for k in metrics)


def test_gradient_accumulation_logs_each_step_once(tmp_path, fit):
    fit(tmp_path, _callbacks(tmp_path), max_steps=10, accumulate_grad_batches=2)
    assert read_metrics_csv(tmp_path / "analysis" / "metrics.csv")["step"].tolist() == [0, 5, 10]


def test_trajectory_is_thinned_to_stay_bounded(tmp_path, fit):
    head = HeadDynamicsCallback(every_n_steps=1, max_snapshots=4, out_dir=tmp_path)
    fit(tmp_path, [head], max_steps=12)
    data = load_npz(tmp_path / "head_trajectory.npz")
    assert len(data["steps"]) <= 4 and data["steps"][0] == 0
    assert np.all(np.diff(data["steps"]) == data["steps"][1] - data["steps"][0])  # even spacing
    assert data["stat_steps"].tolist() == list(range(13))  # scalars: every logged step


_DDP_SCRIPT = """
import sys, warnings
warnings.simplefilter("ignore")
import lightning.pytorch as pl
from solo_offdiag.analysis.callbacks import build_callbacks
from solo_offdiag.analysis.config import AnalysisConfig
from solo_offdiag.analysis.toy import ToySimSiam, toy_loader

if __name__ == "__main__":
    out = sys.argv[1]
    pl.seed_everything(0)
    cfg = AnalysisConfig(every_n_steps=5, queue_size=100)
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_steps=10, logger=False,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        callbacks=build_callbacks(cfg, head_is_linear=True, out_dir=out),
    )
    trainer.fit(ToySimSiam(), toy_loader())
"""


def test_ddp_two_cpu_processes_gather_and_write_once(tmp_path):
    """Lightning DDP (gloo, 2 processes): queues are gathered (2 x 50 rows), rank 0 writes."""
    import subprocess
    import sys

    script = tmp_path / "ddp_fit.py"
    script.write_text(_DDP_SCRIPT)
    out = tmp_path / "analysis"
    result = subprocess.run(
        [sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics_csv(out / "metrics.csv")
    assert metrics["step"].tolist() == [0, 5, 10]
    assert metrics["n_samples/z"][1:].tolist() == [100.0, 100.0]  # ceil(100 / 2) rows per rank
    assert np.isfinite(metrics["align/commutator"][1:]).all()
    assert sorted(p.name for p in out.iterdir()) == [
        "alignment.npz", "head_trajectory.npz", "metrics.csv", "spectrum.npz"
    ]  # fmt: skip


def test_alpha_req_of_a_rank_deficient_queue_is_nan_with_a_reason(tmp_path, fit):
    """Two samples of an 8-d z: rank 1, too few points to fit; RankMe is still computed."""
    spectrum = EmbeddingSpectrumCallback(
        every_n_steps=4, queue_size=2, embeddings=("z",), out_dir=tmp_path
    )
    with pytest.warns(AnalysisWarning, match=r"step 4: alpha_req/z recorded as NaN: numerical rank 1"):
        fit(tmp_path, [spectrum], max_steps=8)
    metrics = read_metrics_csv(tmp_path / "metrics.csv")
    assert np.isnan(metrics["alpha_req/z"]).all()
    assert (metrics["rankme/z"] > 1).all() and (metrics["rankme/z"] <= 2).all()
