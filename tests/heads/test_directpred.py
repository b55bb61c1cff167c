"""DirectPred and DirectCopy equal their definitions on a known correlation."""

from __future__ import annotations

import pytest
import torch

from solo_offdiag.heads import build_head


def _orthogonal(dim: int, seed: int = 0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def _samples_with_correlation(u: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Exactly ``z^T z / N = U diag(s) U^T``: N = d rows, z = sqrt(d) diag(sqrt s) U^T."""
    d = u.shape[0]
    return (d**0.5) * torch.diag(s.sqrt()) @ u.T


def test_directpred_equals_definition() -> None:
    d = 6
    u = _orthogonal(d)
    s = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.25, 0.0], dtype=torch.float64)
    head = build_head("directpred", d, rho=0.3, eps=0.01).double()
    head.train()
    head(_samples_with_correlation(u, s))
    expected = u @ torch.diag(torch.sqrt(s / s.max()) + 0.01) @ u.T
    torch.testing.assert_close(head.corr, u @ torch.diag(s) @ u.T)
    torch.testing.assert_close(head.matrix(), expected)


def test_directcopy_equals_definition() -> None:
    d = 5
    u = _orthogonal(d, 1)
    s = torch.tensor([3.0, 1.5, 1.0, 0.2, 0.1], dtype=torch.float64)
    corr = u @ torch.diag(s) @ u.T
    head = build_head("directcopy", d, eps=0.05).double()
    head(_samples_with_correlation(u, s))
    torch.testing.assert_close(head.matrix(), corr / 3.0 + 0.05 * torch.eye(d, dtype=torch.float64))
    raw = build_head("directcopy", d, eps=0.05, normalize=False).double()
    raw(_samples_with_correlation(u, s))
    torch.testing.assert_close(raw.matrix(), corr + 0.05 * torch.eye(d, dtype=torch.float64))


def test_running_average_and_refresh_frequency() -> None:
    d = 3
    head = build_head("directpred", d, rho=0.5, freq=2).double()
    a = torch.eye(d, dtype=torch.float64) * 3**0.5  # corr = I
    b = 2 * a  # corr = 4 I
    head(a)
    w_after_first = head.matrix().clone()
    head(b)  # second update: corr = 0.5 I + 0.5 * 4 I, W not refreshed (freq=2)
    torch.testing.assert_close(head.corr, 2.5 * torch.eye(d, dtype=torch.float64))
    assert torch.equal(head.matrix(), w_after_first)
    head(b)
    assert int(head.num_updates) == 3


def test_eval_mode_does_not_update() -> None:
    head = build_head("directpred", 4)
    head.eval()
    head(torch.randn(8, 4))
    assert int(head.num_updates) == 0
    assert torch.equal(head.corr, torch.zeros(4, 4, dtype=torch.float64))


def test_no_gradient_into_w_but_into_z() -> None:
    head = build_head("directpred", 4)
    assert list(head.parameters()) == []
    z = torch.randn(8, 4, requires_grad=True)
    head(z).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["directpred", "directcopy"])
def test_two_views_then_one_backward(kind: str) -> None:
    """BYOL/SimSiam call the head on both views before a single backward; the second call's
    refresh of W must not invalidate what the first call saved for autograd."""
    head = build_head(kind, 4)
    z1 = torch.randn(8, 4, requires_grad=True)
    z2 = torch.randn(8, 4, requires_grad=True)
    w_first = head(z1)
    (w_first.sum() + head(z2).sum()).backward()
    assert z1.grad is not None and z2.grad is not None
    assert int(head.num_updates) == 2


def test_state_survives_checkpoint_round_trip() -> None:
    head = build_head("directcopy", 4)
    for _ in range(3):
        head(torch.randn(16, 4))
    state = head.state_dict()
    assert set(state) == {"corr", "weight", "num_updates"}
    resumed = build_head("directcopy", 4)
    resumed.load_state_dict(state)
    assert int(resumed.num_updates) == 3
    torch.testing.assert_close(resumed.matrix(), head.matrix())
    batch = torch.randn(16, 4)
    torch.testing.assert_close(resumed(batch), head(batch))


def test_all_zero_input_keeps_identity() -> None:
    head = build_head("directpred", 3)
    head(torch.zeros(4, 3))
    assert torch.equal(head.matrix(), torch.eye(3) + 0.0)


@pytest.mark.parametrize(
    ("kw", "match"), [({"rho": 1.0}, "rho"), ({"eps": -1.0}, "eps"), ({"freq": 0}, "freq")]
)
def test_bad_options(kw, match) -> None:
    with pytest.raises(ValueError, match=match):
        build_head("directpred", 3, **kw)
