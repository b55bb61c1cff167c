"""The background worker of the analysis callbacks: same results as inline, nothing lost on resume,
errors surface on the training thread, the config key is validated."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from solo_offdiag.analysis import metrics as M
from solo_offdiag.analysis.callbacks import (
    AnalysisWarning,
    AnalysisWorkerError,
    CollapseMonitorCallback,
    HeadDynamicsCallback,
    build_callbacks,
)
from solo_offdiag.analysis.config import AnalysisConfig, CollapseConfig
from solo_offdiag.analysis.executor import WORKER_NAME, AnalysisExecutor
from solo_offdiag.analysis.toy import ToySimSiam
from solo_offdiag.analysis.writer import load_npz, read_metrics_csv
from solo_offdiag.config.validate import ConfigError, from_mapping

NPZ = ("head_trajectory.npz", "spectrum.npz", "alignment.npz")


def _callbacks(folder, **kw):
    kw.setdefault("every_n_steps", 5)
    kw.setdefault("queue_size", 128)
    return build_callbacks(AnalysisConfig(**kw), head_is_linear=True, out_dir=str(folder))


def _threads_of(monkeypatch, name: str) -> list[str]:
    """Record the thread on which ``metrics.<name>`` runs."""
    seen: list[str] = []
    original = getattr(M, name)

    def spy(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(M, name, spy)
    return seen


# -- the executor alone ---------------------------------------------------------------------------
def test_executor_applies_results_in_submission_order_on_the_calling_thread():
    executor = AnalysisExecutor()
    applied: list[tuple[int, str]] = []
    release = threading.Event()

    def slow() -> int:
        release.wait(5)
        return 1

    def apply(result: int) -> None:
        applied.append((result, threading.current_thread().name))

    executor.submit(slow, apply, what="slow", background=True)
    executor.submit(lambda: 2, apply, what="fast", background=True)
    time.sleep(0.05)
    assert executor.poll() == 0 and executor.pending == 2  # the fast one waits for the slow one
    release.set()
    executor.drain()
    executor.shutdown()
    main = threading.current_thread().name
    assert applied == [(1, main), (2, main)]
    assert executor.jobs == 2 and executor.compute_seconds > 0


def test_executor_inline_runs_immediately():
    executor = AnalysisExecutor()
    out: list[int] = []
    executor.submit(lambda: 3, out.append, what="x", background=False)
    assert out == [3] and executor.pending == 0


def test_executor_reraises_worker_errors_naming_the_job(caplog):
    executor = AnalysisExecutor()

    def boom() -> None:
        raise RuntimeError("boom")

    executor.submit(
        boom, lambda r: None, what="HeadDynamicsCallback metrics at step 5", background=True
    )
    with pytest.raises(
        AnalysisWorkerError,
        match=r"computing HeadDynamicsCallback metrics at step 5: RuntimeError: boom",
    ) as info:
        executor.drain()
    assert isinstance(info.value.__cause__, RuntimeError)
    executor.submit(boom, lambda r: None, what="again", background=True)
    executor.drain(raise_errors=False)  # while another exception propagates: logged, not raised
    assert "again" in caplog.text
    executor.shutdown()


# -- end to end -----------------------------------------------------------------------------------
def test_background_path_writes_exactly_what_the_inline_path_writes(tmp_path, fit, monkeypatch):
    threads = _threads_of(monkeypatch, "eigen_alignment")
    fit(tmp_path / "inline", _callbacks(tmp_path / "inline", background=False), max_steps=20)
    assert set(threads) == {threading.current_thread().name}
    threads.clear()
    callbacks = _callbacks(tmp_path / "bg", background=True)
    fit(tmp_path / "bg", callbacks, max_steps=20)
    assert threads and all(t.startswith(WORKER_NAME) for t in threads)  # really in the worker
    assert all(c._in_background for c in callbacks)
    assert callbacks[0].executor.pending == 0 and callbacks[0].executor.jobs == 5 + 3 * 4

    inline, bg = tmp_path / "inline", tmp_path / "bg"
    assert (bg / "metrics.csv").read_text() == (inline / "metrics.csv").read_text()
    assert read_metrics_csv(bg / "metrics.csv")["step"].tolist() == [0, 5, 10, 15, 20]
    for name in NPZ:
        a, b = load_npz(inline / name), load_npz(bg / name)
        assert a.keys() == b.keys(), name
        for key in a:
            assert np.array_equal(a[key], b[key], equal_nan=True), (name, key)


def test_resume_with_pending_background_work_loses_and_duplicates_nothing(
    tmp_path, fit, monkeypatch
):
    """A slow worker keeps the step-10 jobs pending when ModelCheckpoint saves at step 10: the
    checkpoint must still hold the step-10 rows (state_dict drains), and the resumed run writes
    each step once."""
    original = M.head_stats

    def slow_head_stats(weight):
        time.sleep(0.3)
        return original(weight)

    monkeypatch.setattr(M, "head_stats", slow_head_stats)
    pending_at_drain: list[int] = []
    drain = AnalysisExecutor.drain

    def spy(self, **kwargs):
        pending_at_drain.append(self.pending)
        return drain(self, **kwargs)

    monkeypatch.setattr(AnalysisExecutor, "drain", spy)
    ckpt_dir = tmp_path / "ckpt"

    def checkpoint():
        # str: lightning 2.1 stores dirpath as given and its resume loads with torch's weights_only
        return ModelCheckpoint(dirpath=str(ckpt_dir), every_n_train_steps=10, save_top_k=-1)

    folder = tmp_path / "analysis"
    fit(
        tmp_path,
        [*_callbacks(folder, background=True), checkpoint()],
        max_steps=15,
        enable_checkpointing=True,
    )
    assert max(pending_at_drain) > 0  # there was work in flight at a drain point
    (ckpt,) = ckpt_dir.glob("*step=10*.ckpt")
    states = torch.load(ckpt, weights_only=False)["callbacks"]
    analysis_states = [v for k, v in states.items() if "rows" in v]
    assert len(analysis_states) == 4
    for state in analysis_states:
        assert max(state["rows"]) == 10  # every row up to the checkpoint's step, none after
    before = read_metrics_csv(folder / "metrics.csv")
    assert before["step"].tolist() == [0, 5, 10, 15]

    fit(
        tmp_path,
        [*_callbacks(folder, background=True), checkpoint()],
        max_steps=20,
        ckpt_path=str(ckpt),
        enable_checkpointing=True,
    )
    after = read_metrics_csv(folder / "metrics.csv")
    assert after["step"].tolist() == [0, 5, 10, 15, 20]
    for column in ("head/dist_identity", "rankme/z", "collapse_std/z", "align/commutator"):
        assert np.isfinite(after[column][1:]).all()
        assert np.array_equal(after[column][:3], before[column][:3], equal_nan=True)
    assert load_npz(folder / "head_trajectory.npz")["stat_steps"].tolist() == [0, 5, 10, 15, 20]
    assert load_npz(folder / "spectrum.npz")["steps"].tolist() == [5, 10, 15, 20]
    assert load_npz(folder / "alignment.npz")["steps"].tolist() == [5, 10, 15, 20]


def test_nan_warning_names_the_step_in_the_background(tmp_path, fit):
    with pytest.warns(AnalysisWarning, match=r"step 10: non-finite values .* 'z'") as record:
        trainer = fit(
            tmp_path,
            _callbacks(tmp_path / "analysis", background=True),
            max_steps=20,
            module=ToySimSiam(nan_steps={10}),
        )
    assert trainer.global_step == 20
    assert any("training continues" in str(w.message) for w in record)
    metrics = read_metrics_csv(tmp_path / "analysis" / "metrics.csv")
    row = metrics["step"].tolist().index(10)
    assert np.isnan(metrics["rankme/z"][row]) and np.isnan(metrics["collapse_std/z"][row])


def test_worker_exception_surfaces_on_the_training_thread(tmp_path, fit, monkeypatch):
    def broken(weight, correlation):
        raise RuntimeError("eigensolver exploded")

    monkeypatch.setattr(M, "eigen_alignment", broken)
    with pytest.raises(
        AnalysisWorkerError,
        match=r"EigenAlignmentCallback metrics at step 5: RuntimeError: eigensolver exploded",
    ):
        fit(tmp_path, _callbacks(tmp_path / "analysis", background=True), max_steps=20)
    # what was computed before the failure is still written (on_exception flushes)
    assert 0 in read_metrics_csv(tmp_path / "analysis" / "metrics.csv")["step"].tolist()


def test_auto_is_inline_on_cpu_and_a_stop_request_forces_inline(tmp_path, fit):
    auto = _callbacks(tmp_path / "a")
    fit(tmp_path / "a", auto, max_steps=1)
    assert not any(c._in_background for c in auto)
    head = HeadDynamicsCallback(background=True, stop_on_nan=True, out_dir=tmp_path / "b")
    collapse = CollapseMonitorCallback(background=True, stop=True, out_dir=tmp_path / "b")
    plain = CollapseMonitorCallback(embeddings=("feats",), background=True, out_dir=tmp_path / "b")
    fit(tmp_path / "b", [head, collapse, plain], max_steps=1)
    assert (head._in_background, collapse._in_background, plain._in_background) == (
        False,
        False,
        True,
    )
    assert head.executor is collapse.executor is plain.executor  # one worker for the run


# -- configuration --------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [True, False, "auto"])
def test_background_key_accepts_its_values(value):
    assert from_mapping(AnalysisConfig, {"background": value}).background == value


@pytest.mark.parametrize("value", ["yes", 1, None, "true"])
def test_background_key_rejects_other_values_naming_value_and_allowed(value):
    with pytest.raises(
        ConfigError, match=r"analysis\.background: got .*expected bool or one of 'auto'"
    ):
        from_mapping(AnalysisConfig, {"background": value}, prefix="analysis")
    with pytest.raises(ValueError, match=r"background.*'auto', true or false"):
        HeadDynamicsCallback(background=value)


def test_build_callbacks_passes_background_on():
    cfg = AnalysisConfig(background=True, collapse=CollapseConfig(stop=True))
    assert {c.background for c in build_callbacks(cfg, head_is_linear=True)} == {True}
