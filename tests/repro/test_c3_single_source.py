"""C3's thresholds and peak statistics have one definition each: the figure draws what the criterion judges.

Thresholds: the claims file (per preset), read by the criterion and by the figure; the theory side's
are constants of ``theory.criteria`` that the file repeats (tests/repro/test_claims.py). Peak
statistics: ``experiments.head_offdiag_summary`` / ``peak_over_final``, used by the image records, the
criterion and the figure.
"""

from __future__ import annotations

import shutil

import pytest
import yaml

from solo_offdiag.repro import artifact as A
from solo_offdiag.repro import claims as C
from solo_offdiag.repro import experiments as E
from solo_offdiag.repro import figures as F

SERIES = [0.0, 0.5, 1.2, 2.0, 1.6, 1.1, 0.9, 0.8, 0.7, 0.6]  # peak 2.0 at step 30 of 0..90


@pytest.fixture
def drawn(monkeypatch):
    """The figures drawn, instead of written."""
    figs = []
    monkeypatch.setattr(F, "_save", lambda fig, path: figs.append(fig) or path)
    return figs


def _preset_dir(tmp_path, fakes):
    preset_dir = tmp_path / "smoke"
    solo = fakes.fake_solo_run(tmp_path / "solo", "offdiag", offdiag=SERIES)
    summary = E.head_offdiag_summary(list(range(0, 100, 10)), SERIES)
    fakes.write_finished(preset_dir / "image" / "digits" / "byol_offdiag-offdiag" / "seed0",
                         fakes.image_record("digits", "offdiag", 0, 90.0, offdiag=summary, solo_run_dir=str(solo)))
    return preset_dir


def _threshold_and_labels(fig):
    ax = fig.axes[0]
    dotted = [line for line in ax.lines if line.get_linestyle() == ":"]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    return [float(line.get_ydata()[0]) for line in dotted], labels


def test_the_figure_draws_the_claims_file_thresholds_and_the_records_peak_statistics(tmp_path, fakes, drawn):
    F.write_figures(_preset_dir(tmp_path, fakes), "smoke")
    c3 = C.criterion_params("c3_rise_fall", "smoke")
    summary = E.head_offdiag_summary(list(range(0, 100, 10)), SERIES)
    levels, labels = _threshold_and_labels(drawn[0])  # c3_head_trajectory.png
    assert levels == [pytest.approx(summary["peak"] / c3["peak_over_final"])]
    assert f"peak/final {E.peak_over_final(summary):.2f}; peak at {summary['peak_position']:.0%}" in labels[0]
    assert f"last {1 - c3['peak_position_max']:.0%} of training" in labels[-1]
    # and the criterion measures the same statistics on the same record
    judged = C.c3_rise_fall([fakes.image_record("digits", "offdiag", 0, 90.0, offdiag=summary)],
                            dict(c3, datasets=["digits"]))
    assert judged.measured["digits"]["peak_over_final"] == [E.peak_over_final(summary)]
    assert judged.threshold["peak_over_final"] == c3["peak_over_final"]


def test_editing_the_thresholds_in_the_claims_file_moves_the_figure_too(tmp_path, fakes, drawn):
    edited = tmp_path / "artifact"
    for name in A.ARTIFACT_FILES:
        (edited / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(A.packaged_artifact_dir() / name, edited / name)
    data = yaml.safe_load((edited / "claims.yaml").read_text())
    c3_image = next(k for c in data["claims"] for k in c["checks"] if k["criterion"] == "c3_rise_fall")
    c3_image["smoke"].update(peak_over_final=3.0, peak_position_max=0.7)
    (edited / "claims.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    A.use_artifact(edited)
    try:
        F.write_figures(_preset_dir(tmp_path, fakes), "smoke")
    finally:
        A.use_artifact(None)
    levels, labels = _threshold_and_labels(drawn[0])  # c3_head_trajectory.png
    assert levels == [pytest.approx(2.0 / 3.0)] and "last 30% of training" in labels[-1]


def test_no_module_restates_the_c3_thresholds_or_recomputes_the_peak():
    """The figure module carries no C3 number and no argmax of its own (it once had both)."""
    from pathlib import Path

    source = Path(F.__file__).read_text(encoding="utf-8")
    assert "argmax" not in source and "0.8 *" not in source and "/ 2," not in source


def test_the_figures_have_one_legend_entry_per_head_and_name_the_heads_without_an_offdiagonal(
        tmp_path, fakes, drawn):
    preset_dir = tmp_path / "medium"
    runs = [("offdiag", 100, SERIES), ("offdiag", 101, [2 * v for v in SERIES]), ("diagonal", 100, [0.0] * 10)]
    for head, seed, series in runs:
        solo = fakes.fake_solo_run(tmp_path / f"solo-{head}-{seed}", head, offdiag=series, rankme=10.0 + seed)
        summary = E.head_offdiag_summary(list(range(0, 100, 10)), series)
        fakes.write_finished(preset_dir / "image" / "digits" / f"byol_offdiag-{head}" / f"seed{seed}",
                             fakes.image_record("digits", head, seed, 90.0, offdiag=summary, solo_run_dir=str(solo)))
    F.write_figures(preset_dir, "smoke")
    trajectory, spectrum = drawn[:2]
    _, labels = _threshold_and_labels(trajectory)
    assert labels[0] == "byol offdiag (seeds 100, 101): peak/final 3.33, 3.33; peak at 33%, 33%"
    assert len(labels) == 2 and labels[1].startswith("last 20% of training")  # the diagonal is not drawn ...
    assert "not drawn: diagonal" in trajectory.axes[0].get_title()  # ... but named
    spectrum_labels = [t.get_text() for t in spectrum.axes[1].get_legend().get_texts()]
    assert spectrum_labels == ["byol offdiag (seeds 100, 101): final RankMe 110.0, 111.0",
                               "byol diagonal (seed 100): final RankMe 110.0"]
