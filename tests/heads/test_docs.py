"""The docs and messages that list head kinds say what the head registry says (kinds, options, linearity)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import solo_offdiag.heads as heads_package
from solo_offdiag.heads import HEADS, head_options, list_heads

ROOT = Path(__file__).resolve().parents[2]


def _readme_heads_table() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Heads\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    table = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        table[cells[0].strip("`")] = cells
    return table


def _options_cell(kind: str) -> str:
    options = head_options(kind)
    return ", ".join(f"`{k}={v!r}`" for k, v in options.items()) or "-"


def test_the_readme_table_lists_every_registered_kind_once():
    assert sorted(_readme_heads_table()) == list_heads()


@pytest.mark.parametrize("kind", list_heads())
def test_the_readme_states_each_kinds_options_and_linearity(kind):
    cells = _readme_heads_table()[kind]
    assert cells[3] == _options_cell(kind), f"README heads table, {kind}: options"
    assert cells[4] == ("yes" if HEADS[kind].is_linear else "no"), f"README heads table, {kind}: linear"


def test_the_package_docstring_table_lists_every_registered_kind():
    listed = [line.split()[0].strip("`") for line in heads_package.__doc__.splitlines() if line.startswith("``")]
    assert sorted(listed) == list_heads()


@pytest.mark.parametrize("kind", list_heads())
def test_linearity_is_what_matrix_returns(kind):
    """``is_linear`` (what the registry, `solo-offdiag heads` and the analysis messages use) is true."""
    head = HEADS[kind](4)
    z = torch.randn(3, 4)
    weight = head.matrix()
    if HEADS[kind].is_linear:
        assert weight is not None and torch.allclose(head(z), z @ weight.T, atol=1e-6)
    else:
        assert weight is None


def test_the_nonlinear_head_message_lists_the_registrys_linear_kinds():
    from solo_offdiag.analysis.protocol import AnalysisProtocolError, head_matrix

    class Module(torch.nn.Module):
        prediction_head = HEADS["mlp"](4)

    with pytest.raises(AnalysisProtocolError) as err:
        head_matrix(Module(), who="HeadDynamics")
    assert f"({', '.join(list_heads(linear=True))})" in str(err.value)
    assert list_heads(linear=False) == [k for k in list_heads() if not HEADS[k].is_linear]


def test_the_solo_learn_doc_names_every_registered_kind():
    import re

    text = (ROOT / "docs" / "solo_learn.md").read_text(encoding="utf-8")
    paragraph = text.split("Heads (`solo-offdiag heads`):", 1)[1].split("\nBackbone", 1)[0]
    named = {word for word in re.findall(r"`(\w+)`", paragraph) if not word.isupper() and len(word) > 1}
    assert named == set(list_heads())
