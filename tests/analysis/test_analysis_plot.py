"""`solo-offdiag plot`: figures from a run's saved analysis data."""

from __future__ import annotations

import pytest

from solo_offdiag.analysis.callbacks import build_callbacks
from solo_offdiag.analysis.config import AnalysisConfig
from solo_offdiag.analysis.toy import ToySimSiam
from solo_offdiag.cli.main import main

FIGURES = {
    "head_trajectory.png",
    "spectrum_z.png",
    "spectrum_feats.png",
    "rankme_alpha.png",
    "alignment.png",
    "collapse_std.png",
}


@pytest.fixture
def run_dir(tmp_path, fit):
    cfg = AnalysisConfig(every_n_steps=4, queue_size=128)
    callbacks = build_callbacks(
        cfg, head_is_linear=True, out_dir=str(tmp_path / "run" / "analysis")
    )
    with pytest.warns(UserWarning, match="step 8"):
        fit(tmp_path, callbacks, max_steps=16, module=ToySimSiam(nan_steps={8}))
    return tmp_path / "run"


def test_plot_writes_every_figure_as_png(run_dir, capsys):
    assert main(["plot", str(run_dir)]) == 0
    figures = run_dir / "analysis" / "figures"
    assert {p.name for p in figures.iterdir()} == FIGURES
    for path in figures.iterdir():
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    printed = capsys.readouterr().out.split()
    assert len(printed) == len(FIGURES)


def test_plot_accepts_the_analysis_folder_and_out(run_dir, tmp_path):
    out = tmp_path / "figs"
    assert main(["plot", str(run_dir / "analysis"), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == FIGURES


def test_plot_finds_the_analysis_folder_of_a_pretrain_run_dir(run_dir, tmp_path, capsys):
    """A pretrain run dir has Lightning's own CSV-logger metrics.csv next to analysis/."""
    (run_dir / "metrics.csv").write_text("epoch,lr-SGD,step,train_loss\n0,0.1,0,1.0\n")
    assert main(["plot", str(run_dir)]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == len(FIGURES)
    assert all(p.startswith(str(run_dir / "analysis" / "figures")) for p in printed)


def test_plot_finds_the_analysis_folder_of_a_repro_run_folder(run_dir, tmp_path):
    repro = tmp_path / "results" / "image" / "run-0"
    solo_run = repro / "solo" / "byol_offdiag" / "abc123"
    solo_run.parent.mkdir(parents=True)
    run_dir.rename(solo_run)
    (repro / "pretrain.json").write_text('{"run_dir": "solo/byol_offdiag/abc123"}')
    assert main(["plot", str(repro)]) == 0
    assert {p.name for p in (solo_run / "analysis" / "figures").iterdir()} == FIGURES
    (repro / "pretrain.json").unlink()  # no marker: the one analysis/ folder below is found
    assert main(["plot", str(repro), "--out", str(tmp_path / "f2")]) == 0
    assert {p.name for p in (tmp_path / "f2").iterdir()} == FIGURES


def test_plot_of_a_folder_with_several_runs_lists_them(run_dir, tmp_path, capsys):
    import shutil

    shutil.copytree(run_dir, tmp_path / "run2")
    assert main(["plot", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "holds 2 analysis folders" in err
    assert str(run_dir / "analysis") in err and str(tmp_path / "run2" / "analysis") in err


@pytest.mark.parametrize("content", [None, "epoch,step,train_loss\n0,0,1.0\n"])
def test_plot_of_a_folder_without_data_fails_with_one_message(tmp_path, capsys, content):
    """Empty folder, or only Lightning's metrics.csv: one message, exit 1, no traceback."""
    if content is not None:
        (tmp_path / "metrics.csv").write_text(content)
    assert main(["plot", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("solo-offdiag plot: no analysis data in") and "Traceback" not in err
    assert err.count("\n") == 1
    assert main(["plot", str(tmp_path / "missing")]) == 1
    assert "no such folder" in capsys.readouterr().err


def test_plot_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["plot", "--help"])
    assert exit_.value.code == 0
    assert "RUN_DIR" in capsys.readouterr().out
