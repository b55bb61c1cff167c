"""identity, linear, diagonal and mlp heads."""

from __future__ import annotations

import pytest
import torch

from solo_offdiag.heads import build_head


def test_identity_has_no_parameters_and_returns_input() -> None:
    head = build_head("identity", 5)
    assert list(head.parameters()) == []
    assert head.state_dict() == {}
    z = torch.randn(4, 5)
    assert head(z) is z


def test_linear_identity_init_trains_every_entry() -> None:
    head = build_head("linear", 4)
    assert torch.equal(head.matrix(), torch.eye(4))
    (head(torch.randn(8, 4)) ** 3).sum().backward()
    assert (head.weight.grad != 0).all()


def test_linear_random_init_differs_from_identity() -> None:
    torch.manual_seed(0)
    head = build_head("linear", 16, init="random")
    assert not torch.allclose(head.matrix(), torch.eye(16))
    assert head.matrix().abs().max() <= 1 / 16**0.5 + 1e-6  # nn.Linear's bound 1/sqrt(fan_in)


def test_linear_bad_init() -> None:
    with pytest.raises(ValueError, match="identity, random"):
        build_head("linear", 4, init="zeros")


def test_diagonal_head_keeps_offdiagonal_zero() -> None:
    head = build_head("diagonal", 4)
    opt = torch.optim.AdamW(head.parameters(), lr=0.1, weight_decay=0.1)
    for _ in range(5):
        z = torch.randn(8, 4)
        loss = ((head(z) - 2 * z.flip(1)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = head.matrix().detach()
    assert torch.equal(w - torch.diag(torch.diagonal(w)), torch.zeros(4, 4))
    assert not torch.equal(torch.diagonal(w), torch.ones(4))


def test_mlp_matches_byol_layout() -> None:
    head = build_head("mlp", 8, hidden_dim=32)
    layers = [type(m).__name__ for m in head.net]
    assert layers == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert head.net[0].in_features == 8 and head.net[0].out_features == 32
    assert head.net[3].out_features == 8
    assert head.matrix() is None


def test_mlp_bad_hidden_dim() -> None:
    with pytest.raises(ValueError, match="hidden_dim"):
        build_head("mlp", 8, hidden_dim=0)
