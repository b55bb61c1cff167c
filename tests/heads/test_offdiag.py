"""The paper's head: the diagonal of W is exactly 1 whatever the optimizer does."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from solo_offdiag.heads import OffDiagonalHead, build_head


def _lars_step(param: torch.Tensor, lr: float, eta: float = 0.02, weight_decay: float = 1e-4) -> None:
    """A LARS-style step (You et al. 2017), with solo-learn's skip of the trust ratio at ||p|| == 0."""
    grad = param.grad + weight_decay * param
    p_norm, g_norm = torch.norm(param), torch.norm(grad)
    ratio = eta * p_norm / g_norm if p_norm > 0 and g_norm > 0 else torch.tensor(1.0)
    with torch.no_grad():
        param -= lr * ratio * grad


OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9),
    "sgd_wd": lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9, weight_decay=0.1),
    "adam": lambda p: torch.optim.Adam(p, lr=0.05),
    "adamw_wd": lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.5),
}


def _train(head: OffDiagonalHead, step, steps: int = 20, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    target = torch.randn(head.dim, head.dim, generator=gen)
    for _ in range(steps):
        z = torch.randn(16, head.dim, generator=gen)
        loss = ((head(z) - z @ target.T) ** 2).mean()
        head.zero_grad()
        loss.backward()
        step()


def test_identity_at_init() -> None:
    head = OffDiagonalHead(5)
    assert torch.equal(head.matrix(), torch.eye(5))
    z = torch.randn(3, 5)
    assert torch.equal(head(z), z)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_diagonal_exactly_one_after_training(name: str) -> None:
    head = OffDiagonalHead(6)
    opt = OPTIMIZERS[name](head.parameters())
    _train(head, opt.step)
    w = head.matrix().detach()
    assert torch.equal(torch.diagonal(w), torch.ones(6))  # exact, not approximate
    assert (w - torch.eye(6)).abs().max() > 1e-3  # and the head did learn something


def test_diagonal_exactly_one_after_lars_steps() -> None:
    head = OffDiagonalHead(6)
    _train(head, lambda: _lars_step(head.offdiag, lr=0.5))
    w = head.matrix().detach()
    assert torch.equal(torch.diagonal(w), torch.ones(6))
    assert (w - torch.eye(6)).abs().max() > 1e-4


def test_trust_ratio_norm_excludes_identity() -> None:
    # LARS scales by ||p||: the trainable tensor must not contain the identity's norm sqrt(d).
    head = OffDiagonalHead(16)
    assert torch.norm(head.offdiag) == 0


def test_gradient_on_diagonal_is_exactly_zero() -> None:
    head = OffDiagonalHead(4)
    z = torch.randn(8, 4)
    (head(z) ** 3).sum().backward()
    assert torch.equal(torch.diagonal(head.offdiag.grad), torch.zeros(4))
    assert head.offdiag.grad.abs().sum() > 0


def test_state_dict_holds_only_the_offdiagonal_parameter() -> None:
    head = OffDiagonalHead(3)
    assert list(head.state_dict()) == ["offdiag"]
    assert [n for n, _ in head.named_parameters()] == ["offdiag"]
    buffers = dict(head.named_buffers())
    assert set(buffers) == {"eye", "mask"}  # non-persistent, but they follow .to()
    head = head.to(torch.float64)
    assert head.matrix().dtype == torch.float64


def test_state_dict_round_trip() -> None:
    head = OffDiagonalHead(4)
    with torch.no_grad():
        head.offdiag.normal_()
    clone = build_head("offdiag", 4)
    clone.load_state_dict(head.state_dict())
    assert torch.equal(clone.matrix(), head.matrix())


@settings(max_examples=30, deadline=None)
@given(
    dim=st.integers(1, 12),
    lr=st.floats(1e-4, 10.0),
    wd=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_diagonal_invariant_property(dim: int, lr: float, wd: float, seed: int) -> None:
    head = OffDiagonalHead(dim)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=wd)
    _train(head, opt.step, steps=3, seed=seed)
    assert torch.equal(torch.diagonal(head.matrix().detach()), torch.ones(dim))
