"""Closed-form heads set from the running correlation of their input: DirectPred and DirectCopy.

Both keep an exponential moving average of the correlation ``F = E[z z^T]`` of the projector
outputs they see in training and set ``W`` from it every ``freq`` training forward calls, with no
gradient through ``W`` (gradients still flow to ``z``). Their state (``corr``, ``weight``,
``num_updates``) is in persistent buffers, so it survives checkpointing and resume.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from solo_offdiag.heads.base import PredictionHead
from solo_offdiag.heads.registry import register_head

__all__ = ["DirectCopyHead", "DirectPredHead", "running_correlation_update"]


def running_correlation_update(
    corr: torch.Tensor, z: torch.Tensor, rho: float, first: bool
) -> torch.Tensor:
    """``F <- rho * F + (1 - rho) * z^T z / N`` (the first batch initialises ``F``).

    Computed in float64; under ``torch.distributed`` the batch correlation is averaged over ranks
    so that every rank holds the same ``F`` (and hence the same ``W``).
    """
    z64 = z.detach().to(torch.float64)
    batch_corr = z64.T @ z64 / z64.shape[0]
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(batch_corr)
        batch_corr /= dist.get_world_size()
    if first:
        return batch_corr
    return rho * corr + (1.0 - rho) * batch_corr


class _CorrelationHead(PredictionHead):
    """Shared machinery: running correlation, refresh schedule, frozen ``W`` buffer."""

    def __init__(self, dim: int, *, rho: float, eps: float, freq: int) -> None:
        super().__init__(dim)
        if not 0.0 <= float(rho) < 1.0:
            raise ValueError(f"{self.kind or 'head'} rho must be in [0, 1), got {rho!r}")
        if not float(eps) >= 0.0:
            raise ValueError(f"{self.kind or 'head'} eps must be >= 0, got {eps!r}")
        if not isinstance(freq, int) or isinstance(freq, bool) or freq < 1:
            raise ValueError(f"{self.kind or 'head'} freq must be a positive integer, got {freq!r}")
        self.rho, self.eps, self.freq = float(rho), float(eps), freq
        self.register_buffer("corr", torch.zeros(dim, dim, dtype=torch.float64))
        self.register_buffer("weight", torch.eye(dim))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def weight_from_correlation(self, corr: torch.Tensor) -> torch.Tensor:
        """``W`` as a function of the running correlation (defined by each subclass)."""
        raise NotImplementedError

    @torch.no_grad()
    def update(self, z: torch.Tensor) -> None:
        """Fold a batch into the running correlation; refresh ``W`` every ``freq`` updates."""
        first = int(self.num_updates) == 0
        self.corr.copy_(running_correlation_update(self.corr, z, self.rho, first))
        if int(self.num_updates) % self.freq == 0:
            self.weight.copy_(self.weight_from_correlation(self.corr).to(self.weight.dtype))
        self.num_updates += 1

    def matrix(self) -> torch.Tensor:
        return self.weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.update(z)
        # Autograd saves W for the gradient w.r.t. z; the next training call (the other view)
        # refreshes W in place, which would invalidate the saved tensor, so use a snapshot.
        weight = self.weight.clone() if self.training else self.weight
        return torch.nn.functional.linear(z, weight.to(z.dtype))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, rho={self.rho}, eps={self.eps}, freq={self.freq}"


@register_head("directpred")
class DirectPredHead(_CorrelationHead):
    """DirectPred: ``W = U diag(sqrt(s / max s) + eps) U^T`` with ``F = U diag(s) U^T``.

    Tian, Chen & Ganguli, "Understanding self-supervised learning dynamics without contrastive
    pairs", ICML 2021, Sec. 5: "directly set the linear predictor based on the statistics of its
    inputs" with ``F_hat = rho F_hat + (1 - rho) E_B[f f^T]``, rho = 0.3 and eps = 0.01 in the
    paper's CIFAR-10 runs. Negative eigenvalues (round-off of a PSD matrix) are clipped to 0.
    """

    def __init__(self, dim: int, *, rho: float = 0.3, eps: float = 0.01, freq: int = 1) -> None:
        super().__init__(dim, rho=rho, eps=eps, freq=freq)

    def weight_from_correlation(self, corr: torch.Tensor) -> torch.Tensor:
        eigvals, eigvecs = torch.linalg.eigh(corr)
        eigvals = eigvals.clamp(min=0.0)
        top = eigvals.max()
        if top <= 0:  # an all-zero input: keep the identity rather than divide by zero
            return torch.eye(self.dim, dtype=corr.dtype, device=corr.device)
        p = torch.sqrt(eigvals / top) + self.eps
        return (eigvecs * p) @ eigvecs.T


@register_head("directcopy")
class DirectCopyHead(_CorrelationHead):
    """DirectCopy: ``W = F_hat / ||F_hat||_2 + eps I``.

    Wang, Chen, Du & Tian, "Towards Demystifying Representation Learning with Non-contrastive
    Self-supervision", 2021 (arXiv:2110.04947): copy the (normalised) correlation matrix into the
    predictor, skipping DirectPred's eigen-decomposition. Normalising by the spectral norm (the
    largest eigenvalue of the PSD ``F_hat``) makes ``W`` scale-free like DirectPred's; this is our
    documented choice (``normalize=False`` uses ``F_hat`` as is).
    """

    def __init__(
        self, dim: int, *, rho: float = 0.3, eps: float = 0.01, freq: int = 1, normalize: bool = True
    ) -> None:
        super().__init__(dim, rho=rho, eps=eps, freq=freq)
        self.normalize = bool(normalize)

    def weight_from_correlation(self, corr: torch.Tensor) -> torch.Tensor:
        copied = corr
        if self.normalize:
            top = torch.linalg.eigvalsh(corr).max()
            if top > 0:
                copied = corr / top
        return copied + self.eps * torch.eye(self.dim, dtype=corr.dtype, device=corr.device)
