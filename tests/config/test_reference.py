"""The README's config reference is generated from the dataclasses and kept in sync."""

from __future__ import annotations

from pathlib import Path

from solo_offdiag.config.reference import render_reference, undocumented_keys

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN, END = "<!-- config-reference:begin -->", "<!-- config-reference:end -->"


def test_every_key_is_documented() -> None:
    assert undocumented_keys() == []


def test_reference_lists_defaults_as_yaml() -> None:
    table = render_reference()
    assert "| `predictor.kind` | `offdiag` |" in table
    assert "| `analysis.enabled` | `true` |" in table
    assert "| `analysis.embeddings` | `[z, feats]` |" in table


def test_readme_embeds_the_current_reference() -> None:
    text = README.read_text(encoding="utf-8")
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    assert text[start:stop].strip() == render_reference().strip(), (
        "README config reference is stale: run "
        "`python -m solo_offdiag.config.reference --update README.md`"
    )
