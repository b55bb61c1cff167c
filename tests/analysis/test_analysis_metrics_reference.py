"""The spectrum metrics against an independent numpy float64 reference (SVD of the data itself,
no Gram shortcut), on the inputs where they used to go wrong: low rank, collapsed, tiny ``n``,
``n < d``, float32-rounded data; directly and through the Gram path the callbacks use.

The reference applies the documented numerical-zero rule (``metrics`` module docstring):
an eigenvalue ``l`` of the covariance is zero when ``l <= max(1e-12, max(n, d) eps64) * scale``,
``scale = mean_i ||z_i||^2``. Cases with a reference eigenvalue close to that cutoff (within a
factor 100 below or 10^4 above) are skipped: there the rule itself, not the code, decides.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from solo_offdiag.analysis import metrics as M

EPS64 = np.finfo(np.float64).eps


def _cutoff(scale: float, n: int, d: int) -> float:
    return max(1e-12, max(n, d) * EPS64) * scale


def ref_spectrum(z: np.ndarray) -> tuple[np.ndarray, float]:
    """Covariance eigenvalues (descending, length d) from the SVD of the centred data; cutoff."""
    n, d = z.shape
    s = np.linalg.svd(z - z.mean(axis=0), compute_uv=False)
    eig = np.zeros(d)
    eig[: len(s)] = s**2 / n
    cut = _cutoff(float((z * z).sum()) / n, n, d)
    return np.where(eig > cut, eig, 0.0), cut


def ref_singular_values(z: np.ndarray) -> tuple[np.ndarray, float]:
    n, d = z.shape
    s = np.linalg.svd(z, compute_uv=False)
    cut = _cutoff(float((z * z).sum()), n, d)  # on s^2, relative to trace(Z^T Z)
    return np.where(s**2 > cut, s, 0.0), cut


def ref_rankme(s: np.ndarray, eps: float) -> float:
    if s.sum() <= 0:
        return math.nan
    p = s / s.sum() + eps
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def ref_alpha(eig: np.ndarray, method: str, fit_range=(0.05, 0.8)) -> float:
    """Weighted least squares with numpy's lstsq (rows scaled by sqrt(weight))."""
    d = len(eig)
    rank = int((eig > 0).sum())
    if method == "agrawal":
        first, last = 6, min(100, d)
    else:
        first = math.floor(fit_range[0] * d) + 1
        last = max(math.ceil(fit_range[1] * d), first)
    ranks = np.arange(first, min(last, rank) + 1, dtype=np.float64)
    if len(ranks) < 2:
        return math.nan
    w = 1 / ranks if method == "agrawal" else np.ones_like(ranks)
    design = np.stack([np.log(ranks), np.ones_like(ranks)], axis=1) * np.sqrt(w)[:, None]
    target = np.log(eig[ranks.astype(int) - 1]) * np.sqrt(w)
    (slope, _), *_ = np.linalg.lstsq(design, target, rcond=None)
    return float(-slope)


def _data(kind: str, n: int, d: int, k: int, offset: float, seed: int, f32: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        z = rng.standard_normal((n, d)) * np.arange(1, d + 1) ** -0.5
    elif kind == "low_rank":  # rank k (before centring)
        z = rng.standard_normal((n, k)) @ rng.standard_normal((k, d))
    elif kind == "collapsed":  # every row the same vector: zero covariance
        z = np.tile(rng.standard_normal(d), (n, 1))
    else:  # "power_law": spectrum i^-1.5 planted in a random basis
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        z = rng.standard_normal((n, d)) * np.arange(1, d + 1) ** -0.75 @ q.T
    z = z + offset * rng.standard_normal(d)  # a common mean (ReLU features have a large one)
    return z.astype(np.float32).astype(np.float64) if f32 else z


_cases = st.tuples(
    st.sampled_from(["gaussian", "low_rank", "collapsed", "power_law"]),
    st.integers(1, 70),  # n (tiny n and n < d included)
    st.integers(1, 48),  # d
    st.integers(1, 8),  # k for low rank
    st.sampled_from([0.0, 1.0, 5.0]),  # mean offset
    st.integers(0, 10_000),
    st.booleans(),  # float32-rounded data
)


def _clear_of_cutoff(values: np.ndarray, cut: float) -> bool:
    return not np.any((values > cut * 1e-2) & (values < cut * 1e4))


def _close(a: float, b: float, tol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol * max(1.0, abs(b))


@settings(max_examples=150, deadline=None)
@given(_cases, st.sampled_from(M.ALPHA_METHODS))
def test_alpha_req_matches_the_reference_directly_and_through_the_gram_path(case, method):
    kind, n, d, k, offset, seed, f32 = case
    z = _data(kind, n, d, k, offset, seed, f32)
    eig_ref, cut = ref_spectrum(z)
    s = np.linalg.svd(z - z.mean(axis=0), compute_uv=False) ** 2 / n
    assume(_clear_of_cutoff(s, cut))
    expected = ref_alpha(eig_ref, method)
    zt = torch.from_numpy(z)
    direct = float(M.alpha_req(zt, method=method))
    _, spectrum = M.spectra_from_gram(*M.gram_parts(zt), n)
    via_gram = float(M.alpha_req_from_spectrum(spectrum, method=method))
    assert _close(direct, expected, 1e-5), (direct, expected)
    assert _close(via_gram, expected, 1e-4), (via_gram, expected)
    # the spectra themselves: same zeros, same values
    direct_spec = M.singular_spectrum(zt).numpy()
    assert np.array_equal(direct_spec > 0, eig_ref > 0)
    assert np.array_equal(spectrum.numpy() > 0, eig_ref > 0)
    assert np.allclose(direct_spec, eig_ref, rtol=1e-6, atol=cut)


@settings(max_examples=150, deadline=None)
@given(_cases, st.sampled_from([0.0, M.RANKME_EPS]))
def test_rankme_matches_the_reference_directly_and_through_the_gram_path(case, eps):
    kind, n, d, k, offset, seed, f32 = case
    z = _data(kind, n, d, k, offset, seed, f32)
    s_ref, cut = ref_singular_values(z)
    assume(_clear_of_cutoff(np.linalg.svd(z, compute_uv=False) ** 2, cut))
    expected = ref_rankme(s_ref, eps)
    zt = torch.from_numpy(z)
    direct = float(M.rankme(zt, eps=eps))
    svals, _ = M.spectra_from_gram(*M.gram_parts(zt), n)
    via_gram = float(M.rankme_from_singular_values(svals, eps))
    assert _close(direct, expected, 1e-6), (direct, expected)
    assert _close(via_gram, expected, 1e-5), (via_gram, expected)
    assert math.isfinite(direct)  # never NaN on finite data with a non-zero row (0 log 0 = 0)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 24), st.integers(0, 10_000))
def test_collapse_std_is_the_unbiased_std_of_the_normalised_rows(n, d, seed):
    z = np.random.default_rng(seed).standard_normal((n, d))
    value = float(M.collapse_std(torch.from_numpy(z)))
    if n < 2:
        assert math.isnan(value)  # the unbiased std needs two rows
    else:
        normed = z / np.linalg.norm(z, axis=1, keepdims=True)
        assert value == pytest.approx(normed.std(axis=0, ddof=1).mean(), rel=1e-9)


# -- the cases the issue reported, pinned ---------------------------------------------------------
def test_rank_deficient_gaussian_gives_the_true_alpha_not_the_rounding_residue():
    """N = 64 < d = 256: 63 non-zero eigenvalues; the fit must stop there (was 23.4)."""
    z = torch.from_numpy(np.random.default_rng(0).standard_normal((64, 256)))
    value = float(M.alpha_req(z))
    assert value == pytest.approx(ref_alpha(ref_spectrum(z.numpy())[0], "bulk"), abs=1e-9)
    assert 0.5 < value < 2.0
    fit = M.alpha_req_fit(M.singular_spectrum(z))
    assert fit.rank == 63 and fit.points == 63 - 12 and fit.reason is None


@pytest.mark.parametrize("n", [1, 2, 3])
def test_too_few_points_give_nan_with_a_reason(n):
    z = torch.from_numpy(np.random.default_rng(1).standard_normal((n, 256)))
    fit = M.alpha_req_fit(M.spectra_from_gram(*M.gram_parts(z), n)[1])
    assert math.isnan(float(fit.alpha)) and fit.rank == n - 1
    expected = "numerically zero" if n == 1 else "need >= 2"
    assert fit.reason is not None and expected in fit.reason


def test_fully_collapsed_batch_gives_nan_through_the_gram_path():
    z = torch.ones(256, 64) * torch.linspace(-1, 1, 64)  # was 13.5
    fit = M.alpha_req_fit(M.spectra_from_gram(*M.gram_parts(z), 256)[1])
    assert math.isnan(float(fit.alpha)) and fit.rank == 0 and "collapse" in fit.reason


def test_rankme_with_eps_zero_and_exact_zero_singular_values():
    z = torch.zeros(10, 6, dtype=torch.float64)
    z[0, 0], z[1, 1] = 3.0, 3.0
    assert float(M.rankme(z, eps=0.0)) == pytest.approx(2.0, abs=1e-12)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        M.rankme_from_singular_values(torch.ones(3), -1.0)


def test_agrawal_convention_is_a_weighted_fit_over_ranks_6_to_100():
    """An exact power law beyond rank 5, distorted before it: only ranks 6-100 count."""
    eig = torch.arange(1, 301, dtype=torch.float64) ** -1.3
    eig[:5] *= 50.0  # outside the authors' range, inside ours
    fit = M.alpha_req_fit(eig, method="agrawal")
    assert float(fit.alpha) == pytest.approx(1.3, abs=1e-9)
    assert fit.ranks == (6, 100) and fit.points == 95
    with pytest.raises(ValueError, match="method must be one of bulk, agrawal"):
        M.alpha_req_fit(eig, method="authors")
