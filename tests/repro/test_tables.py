"""Tables in Markdown, LaTeX and CSV."""

from __future__ import annotations

import csv
import io

from solo_offdiag.repro.tables import Table, c1_c2_table, image_runs_table, theory_table


def _records(fakes):
    return [fakes.image_record("digits", h, s, acc + s, rankme=r)
            for s in range(2) for h, acc, r in (("offdiag", 90.0, 40.0), ("mlp", 91.0, 42.0), ("identity", 60.0, 3.0))]


def test_c1_c2_table_aggregates_over_seeds_in_head_order(fakes):
    t = c1_c2_table(_records(fakes))
    assert [r[2] for r in t.rows] == ["mlp", "offdiag", "identity"]
    mlp = t.rows[0]
    assert mlp[3] == "91.50 ± 0.71" and mlp[6] == 2


def test_image_runs_table_has_one_row_per_run_with_the_c3_statistics(fakes):
    records = _records(fakes)
    off = {"peak": 2.0, "final": 0.5, "peak_step": 10, "final_step": 20, "peak_position": 0.5, "n_points": 3}
    records[0] = fakes.image_record("digits", "offdiag", 0, 90.0, rankme=40.0, offdiag=off)
    t = image_runs_table(records)
    assert [(r[2], r[3]) for r in t.rows] == [("mlp", 0), ("mlp", 1), ("offdiag", 0), ("offdiag", 1),
                                             ("identity", 0), ("identity", 1)]
    offdiag0 = t.rows[2]
    assert offdiag0[4] == 90.0 and offdiag0[6] == 40.0 and offdiag0[-2:] == [4.0, 0.5]
    assert t.rows[0][-2:] == [None, None]  # no head trajectory: empty cells, not zeros
    flat = dict(off, peak=0.0, final=0.0)  # a head whose off-diagonal stays 0 (diagonal)
    t = image_runs_table([fakes.image_record("digits", "diagonal", 0, 90.0, offdiag=flat)])
    assert t.rows[0][-2:] == [None, None]


def test_three_formats(tmp_path, fakes):
    t = c1_c2_table(_records(fakes))
    paths = t.write(tmp_path)
    assert sorted(p.suffix for p in paths) == [".csv", ".md", ".tex"]
    md = (tmp_path / "c1_c2.md").read_text()
    assert md.startswith("| dataset | method | head |") and md.count("\n") == 2 + len(t.rows)
    tex = (tmp_path / "c1_c2.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    assert r"byol\_offdiag" in tex and r"$\pm$" in tex and "\\label{tab:c1_c2}" in tex
    rows = list(csv.reader(io.StringIO((tmp_path / "c1_c2.csv").read_text())))
    assert rows[0][:3] == ["dataset", "method", "head"] and len(rows) == 1 + len(t.rows)


def test_escaping_and_empty_cells():
    t = Table("x", ["a|b", "c"], [["50% & more_", None], [float("nan"), 1.23456]])
    assert "a\\|b" in t.markdown()
    assert r"50\% \& more\_" in t.latex()
    assert t.csv().splitlines()[1] == "50% & more_,"
    assert "nan" in t.markdown() and "1.235" in t.markdown()


def test_theory_table_names_negative_controls():
    rejected = {"status": "FAIL", "detail": "0/8 seeds", "negative_control": True}
    accepted = {"status": "PASS", "detail": "8/8 seeds", "negative_control": True}
    table = theory_table({"b_fixed_head": {"criteria": {"C5": {"status": "FAIL", "detail": "x"},
                                                          "C4_on_fixed_head": rejected}},
                          "broken": {"criteria": {"C4_on_fixed_head": accepted}}})
    statuses = [row[2] for row in table.rows]
    assert statuses == ["FAIL", "rejected (negative control, as expected)", "ACCEPTED (negative control broken)"]


def test_theory_table_reads_summaries_written_with_passed():
    """A cached summary.json from before the criteria returned Outcome ({"passed": bool}) gives the same rows."""
    old = {"C5": {"passed": True, "detail": "x"}, "C4_on_fixed_head": {"passed": False, "detail": "y",
                                                                          "negative_control": True}}
    new = {"C5": {"status": "PASS", "detail": "x"}, "C4_on_fixed_head": {"status": "FAIL", "detail": "y",
                                                                             "negative_control": True}}
    assert theory_table({"b": {"criteria": old}}).rows == theory_table({"b": {"criteria": new}}).rows


def test_head_presentation_names_only_registered_heads():
    """Tables and figures order/colour heads by name: every name they use is a registered kind."""
    from solo_offdiag.heads import list_heads
    from solo_offdiag.repro import figures
    from solo_offdiag.repro.tables import HEAD_ORDER

    assert set(HEAD_ORDER) <= set(list_heads())
    assert set(figures._COLORS) | set(figures._STYLES) <= set(list_heads())
