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


def test_plot_of_a_folder_without_data_fails_clearly(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 1
    assert "no metrics.csv" in capsys.readouterr().err


def test_plot_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["plot", "--help"])
    assert exit_.value.code == 0
    assert "RUN_DIR" in capsys.readouterr().out
