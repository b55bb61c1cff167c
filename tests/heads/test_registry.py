"""The head registry: listing, building, and errors that name what is allowed."""

from __future__ import annotations

import pytest
import torch

from solo_offdiag.heads import (
    HEADS,
    PredictionHead,
    UnknownHeadError,
    build_head,
    head_options,
    list_heads,
    register_head,
)

EXPECTED = ["diagonal", "directcopy", "directpred", "identity", "linear", "mlp", "offdiag"]


def test_list_heads() -> None:
    assert list_heads() == EXPECTED


@pytest.mark.parametrize("kind", EXPECTED)
def test_every_head_maps_dim_to_dim(kind: str) -> None:
    head = build_head(kind, 8)
    assert head.kind == kind
    z = torch.randn(6, 8)
    out = head(z)
    assert out.shape == (6, 8)
    w = head.matrix()
    if head.is_linear:
        assert w.shape == (8, 8)
        head.eval()  # correlation heads update W in training mode only
        torch.testing.assert_close(head(z), z @ w.T.to(z.dtype))
    else:
        assert w is None


def test_unknown_head_lists_known_kinds() -> None:
    with pytest.raises(UnknownHeadError) as info:
        build_head("offdig", 4)
    message = str(info.value)
    assert "'offdig'" in message and "did you mean 'offdiag'" in message
    for kind in EXPECTED:
        assert kind in message


def test_unknown_option_names_allowed_ones() -> None:
    with pytest.raises(ValueError, match="no option 'inti'.*did you mean 'init'"):
        build_head("linear", 4, inti="random")


def test_head_options() -> None:
    assert head_options("linear") == {"init": "identity"}
    assert head_options("offdiag") == {}
    assert set(head_options("directpred")) == {"rho", "eps", "freq"}


@pytest.mark.parametrize("dim", [0, -3, 2.5, True])
def test_bad_dim(dim) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        build_head("offdiag", dim)


def test_register_is_idempotent_and_refuses_replacement() -> None:
    cls = HEADS["offdiag"]
    assert register_head("offdiag")(cls) is cls

    class Other(PredictionHead):
        def matrix(self):
            return torch.eye(self.dim)

    with pytest.raises(ValueError, match="already registered"):
        register_head("offdiag")(Other)
    assert HEADS["offdiag"] is cls


def test_register_rejects_non_heads() -> None:
    with pytest.raises(TypeError):
        register_head("nope")(int)  # type: ignore[arg-type]
    assert "nope" not in HEADS
