"""The head registry: listing, building, and errors that name what is allowed."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch

import solo_offdiag.heads as heads_package
from solo_offdiag.heads import (
    HEADS,
    PredictionHead,
    UnknownHeadError,
    build_head,
    head_options,
    list_heads,
    register_head,
)


def _public_head_classes() -> set[type]:
    """Every public PredictionHead subclass defined in a module of solo_offdiag.heads."""
    found = set()
    for info in pkgutil.iter_modules(heads_package.__path__):
        module = importlib.import_module(f"{heads_package.__name__}.{info.name}")
        found |= {cls for name, cls in inspect.getmembers(module, inspect.isclass)
                  if issubclass(cls, PredictionHead) and cls is not PredictionHead
                  and cls.__module__ == module.__name__ and not name.startswith("_")}
    return found


def test_list_heads() -> None:
    assert list_heads() == sorted(HEADS)
    # every head class the package defines is registered (a forgotten @register_head fails here)
    classes = _public_head_classes()
    assert classes and classes == set(HEADS.values())
    assert {"offdiag", "identity", "linear", "mlp"} <= set(list_heads())  # the paper's heads


@pytest.mark.parametrize("kind", list_heads())
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
    for kind in list_heads():
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
