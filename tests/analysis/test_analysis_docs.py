"""docs/analysis.md documents every config key and every metrics.csv column the callbacks write."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from solo_offdiag.analysis import metrics as M
from solo_offdiag.analysis.config import AnalysisConfig, CollapseConfig

DOC = (Path(__file__).resolve().parents[2] / "docs" / "analysis.md").read_text(encoding="utf-8")


def test_every_config_key_is_documented():
    keys = [f.name for f in dataclasses.fields(AnalysisConfig) if f.name != "collapse"]
    keys += [f"collapse.{f.name}" for f in dataclasses.fields(CollapseConfig)]
    missing = [k for k in keys if f"| `{k}` |" not in DOC]
    assert missing == []


def test_every_head_column_is_documented():
    names = M.head_stats(__import__("torch").eye(2)).scalars()
    assert [n for n in names if f"head/{n}" not in DOC] == []
    for column in ("rankme/<e>", "alpha_req/<e>", "n_samples/<e>", "collapse_std/<e>",
                   "align/weighted_mean", "align/commutator", "align/mean"):  # fmt: skip
        assert column in DOC
