"""`repro check`: a line per claim, real theory criteria on stored summaries, exit codes."""

from __future__ import annotations

import pytest

from solo_offdiag.cli.main import main
from solo_offdiag.repro import experiments as E
from solo_offdiag.repro.check import evaluate
from solo_offdiag.repro.claims import load_claims


def _image(preset_dir, fakes, offdiag_acc=90.0, identity_acc=50.0, identity_rank=5.0):
    for head, acc, rank, off in (("mlp", 91.0, 40.0, None), ("offdiag", offdiag_acc, 40.0,
                                                               {"peak": 1.0, "final": 0.2, "peak_position": 0.3}),
                                 ("identity", identity_acc, identity_rank, None)):
        fakes.write_finished(preset_dir / "image" / "digits" / f"byol_offdiag-{head}" / "seed0",
                             fakes.image_record("digits", head, 0, acc, rankme=rank, offdiag=off))


def _statuses(report):
    return {v.claim: v.status for v in report.verdicts}


def test_everything_passes_on_good_results(tmp_path, fakes):
    fakes.write_theory_results(tmp_path / "smoke", good=True)
    _image(tmp_path / "smoke", fakes)
    report = evaluate(tmp_path, "smoke")
    assert set(_statuses(report).values()) == {"PASS"}, report.lines()
    assert report.exit_code == 0
    assert main(["repro", "check", "--results", str(tmp_path)]) == 0
    assert (tmp_path / "smoke" / "check.txt").read_text().count("PASS") >= 8


def test_each_claim_can_fail(tmp_path, fakes):
    fakes.write_theory_results(tmp_path / "smoke", good=False)
    _image(tmp_path / "smoke", fakes, offdiag_acc=70.0, identity_acc=69.0, identity_rank=40.0)
    report = evaluate(tmp_path, "smoke")
    statuses = _statuses(report)
    assert all(s == "FAIL" for s in statuses.values()), report.lines()
    assert report.exit_code == 1
    assert main(["repro", "check", "--results", str(tmp_path)]) == 1


def test_missing_image_results_are_skipped_with_the_reason_and_do_not_fail(tmp_path, fakes, capsys, monkeypatch):
    fakes.write_theory_results(tmp_path / "smoke", good=True)
    monkeypatch.setattr(E, "image_unavailable", lambda: "solo-learn is not installed.\nhow to")
    assert main(["repro", "check", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "C1  SKIPPED" in out and "needs solo-learn 1.0.6" in out and E.SOLO_PIN in out
    assert "C3  PASS" in out  # theory side passes, image side skipped
    assert main(["repro", "check", "--results", str(tmp_path), "--strict"]) == 1


def test_theory_run_with_another_preset_is_not_used(tmp_path, fakes):
    fakes.write_theory_results(tmp_path / "smoke", good=True, preset="smoke")  # expected: default
    report = evaluate(tmp_path, "smoke")
    c4 = next(v for v in report.verdicts if v.claim == "C4")
    assert c4.status == "SKIPPED" and "theory preset 'smoke'" in c4.checks[0].detail


def test_unfinished_runs_are_not_evidence(tmp_path, fakes):
    fakes.write_theory_results(tmp_path / "smoke", good=True)
    (tmp_path / "smoke" / "theory" / "a_trainable_head" / "done.json").unlink()
    report = evaluate(tmp_path, "smoke")
    assert _statuses(report)["C4"] == "SKIPPED"


@pytest.mark.parametrize("preset", ["smoke", "full"])
def test_empty_results_skip_everything(tmp_path, preset):
    report = evaluate(tmp_path, preset)
    assert set(_statuses(report).values()) == {"SKIPPED"} and report.exit_code == 0
    n_claims = len(load_claims())  # the claims are the file's
    assert report.lines()[-1].startswith(f"preset {preset}: 0 PASS, 0 FAIL, {n_claims} SKIPPED")
