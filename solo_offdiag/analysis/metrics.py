"""Representation and prediction-head metrics (torch only; definitions in docs/analysis.md).

Every function takes embeddings ``Z`` of shape ``[N, d]`` (rows are samples) or a head matrix
``W`` of shape ``[d, d]`` (``p = z @ W.T``), computes in float64 on the input's device, and returns
float64 tensors: no host synchronisation happens here, callers decide when to call ``.item()``.
Non-finite inputs give NaN outputs (never an exception), so a diverging run is recorded, not lost.

**Numerical zero.** An eigenvalue ``l`` of ``C`` (or ``s^2`` for a singular value ``s`` of ``Z``)
counts as zero when ``l <= spectrum_cutoff(scale, n, d) = max(1e-12, max(n, d) * eps64) * scale``,
``scale = trace(Z^T Z) / N = mean_i ||z_i||^2`` (the uncentred second moment: the size rounding
acts on) and ``eps64 = 2.2e-16``. Justification: the float64 Gram product and ``eigh`` err by at
most about ``max(n, d) * eps64 * scale`` (backward error of the product over ``n`` rows and of the
``d x d`` eigensolver, as in ``numpy.linalg.matrix_rank``), and ``1e-12 >> eps32^2 = 1.4e-14``
also removes the rounding residue of float32 embeddings (the callbacks gather float32). Without
the cutoff that residue (~1e-15 relative) enters a log-log fit as real eigenvalues: a rank-deficient
covariance (queue ``N < d``, collapse) then gives a spuriously large alpha-ReQ.

==================  ==============================================================================
function            definition
==================  ==============================================================================
collapse_std        ``mean_j std_i(z_ij / ||z_i||)``; ~``1/sqrt(d)`` healthy, 0 collapsed (SimSiam)
rankme              ``exp(-sum_k p_k log p_k)``, ``p_k = s_k / sum s + eps``, ``s`` = svals of Z
singular_spectrum   eigenvalues (= singular values) of the covariance ``C``, descending
alpha_req           ``alpha`` of the least-squares fit ``log l_i = c - alpha log i`` on C's bulk
                    (or the alpha-ReQ authors' 1/i-weighted fit over ranks 6-100)
gram_parts,         ``Z^T Z`` and the mean on ``Z``'s device, then both spectra from those
spectra_from_gram   ``d x d`` matrices (how the callbacks split device and host work)
head_stats          ``||W - I||_F``, off-diagonal size, asymmetry, sym. eigenvalues, condition nr.
eigen_alignment     per-mode ``|u_j^T W u_j| / ||W u_j||`` for eigenvectors ``u_j`` of ``F``, and
                    the normalised commutator ``||WF - FW||_F / (||W||_F ||F||_F)``
==================  ==============================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "Alignment",
    "HeadStats",
    "ALPHA_METHODS",
    "AlphaReqFit",
    "alpha_req",
    "alpha_req_fit",
    "alpha_req_from_spectrum",
    "collapse_std",
    "correlation_matrix",
    "covariance_matrix",
    "eigen_alignment",
    "gram_parts",
    "gram_spectra",
    "head_stats",
    "rankme",
    "rankme_from_singular_values",
    "singular_spectrum",
    "singular_values",
    "spectra_from_gram",
    "spectrum_cutoff",
]

#: Garrido et al. (2023) add a small constant to every normalised singular value.
RANKME_EPS = 1e-7
#: Floor of the relative cutoff under which an eigenvalue is zero (see the module docstring).
RANK_RTOL = 1e-12
_EPS64 = float(torch.finfo(torch.float64).eps)
#: alpha-ReQ fit conventions: ``"bulk"`` (ours, the default) and ``"agrawal"`` (the authors').
ALPHA_METHODS = ("bulk", "agrawal")
#: Ranks (1-based, inclusive) and weights of the authors' convention: 1/i-weighted least squares.
AGRAWAL_RANKS = (6, 100)


def _embeddings(z: torch.Tensor) -> torch.Tensor:
    if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[0] < 1 or z.shape[1] < 1:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"expected embeddings of shape [N, d] with N, d >= 1, got {shape}")
    return z.detach().to(torch.float64)


def _square(w: torch.Tensor) -> torch.Tensor:
    if not isinstance(w, torch.Tensor) or w.ndim != 2 or w.shape[0] != w.shape[1]:
        shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(f"expected a square matrix [d, d], got {shape}")
    return w.detach().to(torch.float64)


def _nan(device: torch.device) -> torch.Tensor:
    return torch.tensor(math.nan, dtype=torch.float64, device=device)


def spectrum_cutoff(scale: float | torch.Tensor, n: int, d: int) -> torch.Tensor:
    """Eigenvalues ``<=`` this are numerically zero: ``max(1e-12, max(n, d) * eps64) * scale``.

    ``scale`` is ``trace(Z^T Z) / N`` (see the module docstring), ``n`` x ``d`` the data's shape.
    """
    rtol = max(RANK_RTOL, max(int(n), int(d)) * _EPS64)
    return torch.as_tensor(scale, dtype=torch.float64) * rtol


def _zero_below(values: torch.Tensor, cutoff: torch.Tensor) -> torch.Tensor:
    """``values`` (eigenvalues, >= 0 after clamping) with those ``<= cutoff`` set to 0."""
    values = values.clamp_min(0.0)
    return torch.where(values > cutoff.to(values.device), values, torch.zeros_like(values))


def collapse_std(z: torch.Tensor) -> torch.Tensor:
    """Mean over dimensions of the per-dimension std of the l2-normalised embeddings.

    Chen & He (SimSiam, CVPR 2021), Sec. 4.1: "if the output collapses to a constant vector, their
    std over all samples should be zero for each channel"; for a healthy ``d``-dimensional output it
    is about ``1/sqrt(d)``. Uses the unbiased std, like solo-learn's ``train_z_std``. Blind to
    *dimensional* collapse (use :func:`rankme` for that).

    Examples:
        >>> float(collapse_std(torch.ones(8, 4)))
        0.0
    """
    z = _embeddings(z)
    if z.shape[0] < 2:
        return _nan(z.device)
    normed = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return normed.std(dim=0).mean()


def singular_values(z: torch.Tensor) -> torch.Tensor:
    """Singular values of ``Z`` (not centred), descending, length ``min(N, d)``.

    Computed from the eigenvalues of the smaller Gram matrix in float64 (about twice as fast as an
    SVD for the queue sizes used here). ``s^2`` under :func:`spectrum_cutoff` ``* N`` (numerically
    zero) is returned as exactly 0.
    """
    z = _embeddings(z)
    n, d = z.shape
    if not torch.isfinite(z).all():
        return torch.full((min(n, d),), math.nan, dtype=torch.float64, device=z.device)
    gram = z.T @ z if n >= d else z @ z.T
    cutoff = spectrum_cutoff(torch.trace(gram), n, d)
    eig = _zero_below(torch.linalg.eigvalsh(gram), cutoff)
    return eig.flip(0).sqrt()


def covariance_matrix(z: torch.Tensor) -> torch.Tensor:
    """``C = (1/N) sum_i (z_i - mean)(z_i - mean)^T`` in float64 (``[d, d]``)."""
    z = _embeddings(z)
    centred = z - z.mean(dim=0, keepdim=True)
    return centred.T @ centred / z.shape[0]


def correlation_matrix(z: torch.Tensor) -> torch.Tensor:
    """``F = (1/N) sum_i z_i z_i^T`` in float64 (``[d, d]``): the matrix DirectPred aligns with."""
    z = _embeddings(z)
    return z.T @ z / z.shape[0]


def singular_spectrum(z: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of the covariance ``C`` of ``Z``, descending, clamped at 0 (length ``d``).

    ``C`` is symmetric positive semi-definite, so these are also its singular values: the curve
    whose tail drops to ~0 under dimensional collapse (Jing et al., ICLR 2022, Fig. 2 plots their
    log). At most ``N - 1`` of them are non-zero; those under :func:`spectrum_cutoff` are exactly 0.
    """
    z = _embeddings(z)
    n, d = z.shape
    cov = covariance_matrix(z)
    if not torch.isfinite(cov).all():
        return torch.full((d,), math.nan, dtype=torch.float64, device=cov.device)
    cutoff = spectrum_cutoff((z * z).sum() / n, n, d)
    return _zero_below(torch.linalg.eigvalsh(cov), cutoff).flip(0)


def gram_parts(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Z^T Z, mean of the rows)`` in float64, on ``z``'s device: everything the spectra need.

    One ``O(N d^2)`` matmul in float64 (not float32: the covariance below is ``Z^T Z / N - mu
    mu^T``, and ReLU features have a large common mean, so float32 would cancel away the small
    eigenvalues; TF32 settings do not apply to float64). On a GPU this is a few kernel launches
    without host synchronisation, and it leaves only ``d x d`` data for the host (see
    :func:`spectra_from_gram`). A non-finite ``z`` gives a non-finite Gram matrix.
    """
    z = _embeddings(z)
    return z.T @ z, z.mean(dim=0)


def spectra_from_gram(
    gram: torch.Tensor, mean: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(singular_values(z), singular_spectrum(z))`` from ``gram_parts(z)`` of ``n`` rows.

    ``C = (Z^T Z - N mu mu^T) / N``; only the two ``d x d`` eigenvalue problems are solved (in
    float64, on ``gram``'s device). The singular values are cut to ``min(n, d)``; values under
    :func:`spectrum_cutoff` are exactly 0, as in the direct functions. Non-finite input gives NaN
    vectors.
    """
    gram, mean = gram.detach().to(torch.float64), mean.detach().to(torch.float64)
    d = gram.shape[0]
    if not (torch.isfinite(gram).all() and torch.isfinite(mean).all()):
        nans = torch.full((d,), math.nan, dtype=torch.float64, device=gram.device)
        return nans[: min(n, d)], nans
    cov = (gram - n * torch.outer(mean, mean)) / n
    trace = torch.trace(gram)
    gram_eig = _zero_below(torch.linalg.eigvalsh(gram), spectrum_cutoff(trace, n, d))
    svals = gram_eig.flip(0)[: min(n, d)].sqrt()
    cov_eig = torch.linalg.eigvalsh((cov + cov.T) / 2)
    spectrum = _zero_below(cov_eig, spectrum_cutoff(trace / n, n, d)).flip(0)
    return svals, spectrum


def gram_spectra(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(singular_values(z), singular_spectrum(z))`` from one ``d x d`` Gram matrix (``N >= d``).

    ``C = (Z^T Z - N mu mu^T) / N``, so both spectra share the ``O(N d^2)`` product; only the two
    ``O(d^3)`` eigenvalue problems remain. Falls back to the separate functions when ``N < d``.
    """
    z = _embeddings(z)
    n, d = z.shape
    if n < d or not torch.isfinite(z).all():
        return singular_values(z), singular_spectrum(z)
    return spectra_from_gram(*gram_parts(z), n)


def rankme_from_singular_values(s: torch.Tensor, eps: float = RANKME_EPS) -> torch.Tensor:
    """RankMe from singular values ``s`` (any order): ``exp(entropy(s / sum(s) + eps))``.

    ``0 log 0 = 0``, so ``eps = 0`` is allowed (exactly zero singular values then add nothing).
    NaN when ``s`` is not finite or all zero.
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    s = s.detach().to(torch.float64)
    total = s.sum()
    if not torch.isfinite(total) or total <= 0:
        return _nan(s.device)
    p = s / total + eps
    return torch.exp(-torch.xlogy(p, p).sum())


def rankme(z: torch.Tensor, eps: float = RANKME_EPS) -> torch.Tensor:
    """RankMe, the smooth effective rank of the embeddings ``Z`` (value in ``[1, min(N, d)]``).

    Garrido et al. (ICML 2023), Eq. 1: "RankMe(Z) = exp(-sum_k p_k log p_k), p_k = sigma_k(Z) /
    ||sigma(Z)||_1 + eps" (the effective rank of Roy & Vetterli, 2007). A matrix with ``k`` equal
    non-zero singular values has RankMe ``k`` (up to ``eps``). Invariant to scaling and rotation.
    Compare values only across runs of the same method and queue size.

    Examples:
        >>> round(float(rankme(torch.eye(5))), 4)
        5.0
    """
    return rankme_from_singular_values(singular_values(z), eps)


@dataclass(frozen=True)
class AlphaReqFit:
    """An alpha-ReQ fit: the value and what it was fitted on (``reason`` says why it is NaN)."""

    #: the decay coefficient (0-d float64 tensor; NaN when no fit was possible).
    alpha: torch.Tensor
    #: number of eigenvalues the line was fitted to.
    points: int
    #: numerical rank: eigenvalues above the cutoff.
    rank: int
    #: 1-based ranks ``(first, last)`` the convention asks for, before the cap at ``rank``.
    ranks: tuple[int, int]
    #: ``None`` when ``alpha`` is a fit, else why it is NaN.
    reason: str | None = None


def _fit_ranks(d: int, method: str, fit_range: tuple[float, float]) -> tuple[int, int]:
    if method == "agrawal":
        return AGRAWAL_RANKS[0], min(AGRAWAL_RANKS[1], d)
    lo, hi = fit_range
    start = math.floor(lo * d)
    return start + 1, max(math.ceil(hi * d), start + 1)


def alpha_req_fit(
    eigenvalues: torch.Tensor,
    fit_range: tuple[float, float] = (0.05, 0.8),
    *,
    method: str = "bulk",
    cutoff: float | torch.Tensor | None = None,
) -> AlphaReqFit:
    """Power-law decay coefficient ``alpha`` of a descending spectrum ``l_1 >= ... >= l_d``.

    ``method="bulk"`` (default): ordinary least squares of ``log l_i = c - alpha log i`` over
    ranks ``i`` in ``[floor(lo * d) + 1, ceil(hi * d)]`` (1-based; ``fit_range = (lo, hi)``).
    ``method="agrawal"``: the alpha-ReQ authors' convention, least squares weighted by ``1/i``
    over ranks 6 to 100 (``fit_range`` is ignored); use it to compare with published values.

    Either way the fit is capped at the numerical rank: only eigenvalues ``> cutoff`` enter it
    (default ``cutoff``: :func:`spectrum_cutoff` of ``sum(l)`` for ``n = d``; the spectra of
    :func:`singular_spectrum` and :func:`spectra_from_gram` already hold exact zeros under theirs).
    NaN, with ``reason``, when fewer than two points are left or the spectrum is not finite.
    """
    if method not in ALPHA_METHODS:
        raise ValueError(f"method must be one of {', '.join(ALPHA_METHODS)}, got {method!r}")
    lo, hi = fit_range
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"fit_range must satisfy 0 <= lo < hi <= 1, got {fit_range!r}")
    eig = eigenvalues.detach().to(torch.float64).flatten()
    d = eig.numel()
    first, last = _fit_ranks(d, method, (lo, hi))
    if d == 0 or not torch.isfinite(eig).all():
        return AlphaReqFit(_nan(eig.device), 0, 0, (first, last), "non-finite eigenvalues")
    eig = eig.sort(descending=True).values
    total = eig.clamp_min(0.0).sum()
    tol = spectrum_cutoff(total, d, d) if cutoff is None else torch.as_tensor(cutoff)
    rank = int((eig > tol.to(eig.device)).sum()) if total > 0 else 0
    stop = min(last, rank)
    points = max(stop - first + 1, 0)
    if points < 2 and rank == 0:
        reason = "the covariance is numerically zero (a single sample or complete collapse)"
        return AlphaReqFit(_nan(eig.device), 0, 0, (first, last), reason)
    if points < 2:
        reason = (
            f"numerical rank {rank} (eigenvalues > {float(tol):.3g}) leaves {points} of ranks "
            f"{first}-{last} to fit, need >= 2"
        )
        return AlphaReqFit(_nan(eig.device), points, rank, (first, last), reason)
    ranks = torch.arange(first, stop + 1, dtype=torch.float64, device=eig.device)
    x, y = ranks.log(), eig[first - 1 : stop].log()
    w = 1.0 / ranks if method == "agrawal" else torch.ones_like(ranks)
    x_c = x - (w * x).sum() / w.sum()
    slope = (w * x_c * y).sum() / (w * x_c * x_c).sum()
    return AlphaReqFit(-slope, points, rank, (first, last))


def alpha_req_from_spectrum(
    eigenvalues: torch.Tensor,
    fit_range: tuple[float, float] = (0.05, 0.8),
    *,
    method: str = "bulk",
    cutoff: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """``alpha_req_fit(...).alpha``: see :func:`alpha_req_fit` (NaN when no fit is possible)."""
    return alpha_req_fit(eigenvalues, fit_range, method=method, cutoff=cutoff).alpha


def alpha_req(
    z: torch.Tensor, fit_range: tuple[float, float] = (0.05, 0.8), *, method: str = "bulk"
) -> torch.Tensor:
    """alpha-ReQ: decay coefficient of the covariance eigenspectrum of ``Z`` (Agrawal et al. 2022).

    Agrawal et al. (NeurIPS 2022): "the eigenspectrum decay coefficient alpha of the representation
    covariance ... l_i ~ i^(-alpha)"; alpha near 1 generalises best, small alpha = flat
    (whitened) spectrum, large alpha = few dominant directions (towards collapse). ``method``
    and ``fit_range``: see :func:`alpha_req_fit`; only numerically non-zero eigenvalues are fitted.
    """
    return alpha_req_from_spectrum(singular_spectrum(z), fit_range, method=method)


@dataclass(frozen=True)
class HeadStats:
    """Statistics of a linear head ``W`` (float64 tensors; 0-d except ``sym_eigenvalues``)."""

    #: ``||W - I||_F``: distance from the identity initialisation (the rise-and-fall curve).
    dist_identity: torch.Tensor
    #: Frobenius norm of the off-diagonal part (equals ``dist_identity`` for the offdiag head).
    offdiag_fro: torch.Tensor
    #: mean of ``|W_ij|`` over ``i != j``.
    offdiag_mean_abs: torch.Tensor
    #: max of ``|W_ij|`` over ``i != j``.
    offdiag_max_abs: torch.Tensor
    #: ``||W - W^T||_F / ||W||_F`` (0 for symmetric ``W``; NaN for ``W = 0``).
    asymmetry: torch.Tensor
    #: eigenvalues of ``(W + W^T) / 2``, descending, length ``d``.
    sym_eigenvalues: torch.Tensor
    #: ``sigma_max(W) / sigma_min(W)`` (``inf`` when ``W`` is singular).
    condition_number: torch.Tensor

    def scalars(self) -> dict[str, float]:
        """The 0-d statistics as Python floats, keyed as in ``metrics.csv`` (without ``head/``)."""
        return {
            "dist_identity": float(self.dist_identity),
            "offdiag_fro": float(self.offdiag_fro),
            "offdiag_mean_abs": float(self.offdiag_mean_abs),
            "offdiag_max_abs": float(self.offdiag_max_abs),
            "asymmetry": float(self.asymmetry),
            "sym_eig_min": float(self.sym_eigenvalues[-1]),
            "sym_eig_max": float(self.sym_eigenvalues[0]),
            "condition_number": float(self.condition_number),
        }


def head_stats(weight: torch.Tensor) -> HeadStats:
    """Statistics of a linear prediction head ``W`` (``p = z @ W.T``); see :class:`HeadStats`.

    Examples:
        >>> stats = head_stats(torch.eye(3))
        >>> stats.scalars()["dist_identity"], stats.scalars()["condition_number"]
        (0.0, 1.0)
    """
    w = _square(weight)
    d = w.shape[0]
    if not torch.isfinite(w).all():
        nan = _nan(w.device)
        return HeadStats(nan, nan, nan, nan, nan, torch.full((d,), math.nan, dtype=w.dtype), nan)
    eye = torch.eye(d, dtype=w.dtype, device=w.device)
    off = w * (1 - eye)
    n_off = d * (d - 1)
    abs_off = off.abs()
    norm = torch.linalg.matrix_norm(w)
    # Two different matrices, so no decomposition is redundant: svdvals(W) for the condition
    # number (eigvalsh(W^T W) is ~25% cheaper but squares it, losing sigma_min beyond ~1e8) and
    # eigvalsh of the symmetric part.
    svals = torch.linalg.svdvals(w)
    return HeadStats(
        dist_identity=torch.linalg.matrix_norm(w - eye),
        offdiag_fro=torch.linalg.matrix_norm(off),
        offdiag_mean_abs=abs_off.sum() / n_off if n_off else torch.zeros((), dtype=w.dtype),
        offdiag_max_abs=abs_off.max(),
        asymmetry=torch.linalg.matrix_norm(w - w.T) / norm if norm > 0 else _nan(w.device),
        sym_eigenvalues=torch.linalg.eigvalsh((w + w.T) / 2).flip(0),
        condition_number=svals[0] / svals[-1]
        if svals[-1] > 0
        else torch.tensor(math.inf, dtype=w.dtype, device=w.device),
    )


@dataclass(frozen=True)
class Alignment:
    """Alignment of a head ``W`` with the eigenbasis of the correlation ``F`` (float64 tensors)."""

    #: ``a_j = |u_j^T W u_j| / ||W u_j||`` per eigenvector ``u_j`` of ``F`` (descending ``s_j``),
    #: in ``[0, 1]``, 1 when ``u_j`` is an eigenvector of ``W`` (NaN where ``W u_j = 0``).
    per_mode: torch.Tensor
    #: eigenvalues ``s_j`` of ``F``, descending.
    eigenvalues: torch.Tensor
    #: plain mean of ``a_j``.
    mean: torch.Tensor
    #: ``sum_j s_j a_j / sum_j s_j``: the modes that carry the data count most.
    weighted_mean: torch.Tensor
    #: ``||W F - F W||_F / (||W||_F ||F||_F)``, in ``[0, sqrt(2)]``; 0 iff they commute.
    commutator: torch.Tensor

    def scalars(self) -> dict[str, float]:
        return {
            "mean": float(self.mean),
            "weighted_mean": float(self.weighted_mean),
            "commutator": float(self.commutator),
        }


def eigen_alignment(weight: torch.Tensor, correlation: torch.Tensor) -> Alignment:
    """How well a head ``W`` shares its eigenvectors with the input correlation ``F``.

    Tian, Chen & Ganguli (DirectPred, ICML 2021), Sec. 4: at the fixed point "the eigenspace of
    W_p gradually aligns with that of F", i.e. the two matrices commute. ``correlation`` is
    ``F = Z^T Z / N`` of the head's *input* (see :func:`correlation_matrix`).

    Examples:
        >>> f = torch.diag(torch.tensor([3.0, 2.0, 1.0]))
        >>> a = eigen_alignment(torch.diag(torch.tensor([1.0, 5.0, 2.0])), f)
        >>> float(a.weighted_mean), float(a.commutator)
        (1.0, 0.0)
    """
    w, f = _square(weight), _square(correlation)
    if w.shape != f.shape:
        raise ValueError(f"W {tuple(w.shape)} and F {tuple(f.shape)} must have the same shape")
    d = w.shape[0]
    if not (torch.isfinite(w).all() and torch.isfinite(f).all()):
        nan = _nan(w.device)
        nans = torch.full((d,), math.nan, dtype=w.dtype, device=w.device)
        return Alignment(nans, nans, nan, nan, nan)
    f = (f + f.T) / 2
    eigenvalues, vectors = torch.linalg.eigh(f)
    eigenvalues, vectors = eigenvalues.flip(0), vectors.flip(1)
    w_u = w @ vectors  # column j = W u_j
    rayleigh = (vectors * w_u).sum(dim=0).abs()
    lengths = w_u.norm(dim=0)
    per_mode = torch.where(lengths > 0, rayleigh / lengths.clamp_min(1e-300), math.nan)
    per_mode = per_mode.clamp(max=1.0)  # rounding can exceed 1 by an ulp
    weights = eigenvalues.clamp_min(0.0)
    valid = torch.isfinite(per_mode)
    if weights[valid].sum() > 0:
        weighted = (weights[valid] * per_mode[valid]).sum() / weights[valid].sum()
    else:
        weighted = per_mode[valid].mean() if valid.any() else _nan(w.device)
    norm_w, norm_f = torch.linalg.matrix_norm(w), torch.linalg.matrix_norm(f)
    if norm_w > 0 and norm_f > 0:
        commutator = torch.linalg.matrix_norm(w @ f - f @ w) / (norm_w * norm_f)
    else:
        commutator = _nan(w.device)
    mean = per_mode[valid].mean() if valid.any() else _nan(w.device)
    return Alignment(per_mode, eigenvalues, mean, weighted, commutator)
