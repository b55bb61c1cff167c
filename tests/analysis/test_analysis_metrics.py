"""The torch-only metrics against closed-form cases, and their invariants (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from solo_offdiag.analysis import metrics as M


def _orthogonal(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q


def _with_singular_values(s: list[float], n: int, d: int, seed: int = 0) -> torch.Tensor:
    u, v = _orthogonal(n, seed)[:, : len(s)], _orthogonal(d, seed + 1)[:, : len(s)]
    return u @ torch.diag(torch.tensor(s, dtype=torch.float64)) @ v.T


# -- RankMe ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 3, 7, 16])
def test_rankme_of_k_equal_singular_values_is_k(k):
    z = _with_singular_values([2.5] * k, n=40, d=16)
    assert float(M.rankme(z)) == pytest.approx(k, rel=1e-4)


def test_rankme_matches_definition_on_unequal_values():
    s = [4.0, 2.0, 1.0, 0.5]
    z = _with_singular_values(s, n=30, d=10)
    p = np.array(s) / sum(s) + M.RANKME_EPS
    expected = math.exp(-(p * np.log(p)).sum() - 6 * M.RANKME_EPS * math.log(M.RANKME_EPS))
    assert float(M.rankme(z)) == pytest.approx(expected, rel=1e-5)


def test_singular_values_match_svd():
    z = torch.randn(50, 12, dtype=torch.float64)
    assert torch.allclose(M.singular_values(z), torch.linalg.svdvals(z), atol=1e-8)
    assert torch.allclose(M.singular_values(z.T), torch.linalg.svdvals(z.T), atol=1e-8)


_matrices = st.tuples(st.integers(2, 40), st.integers(2, 24), st.integers(0, 10_000))


@settings(max_examples=40, deadline=None)
@given(_matrices, st.floats(1e-3, 1e3))
def test_rankme_bounds_and_invariances(shape, scale):
    n, d, seed = shape
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    value = float(M.rankme(z))
    assert 1 - 1e-6 <= value <= min(n, d) + 1e-3
    assert float(M.rankme(scale * z)) == pytest.approx(value, rel=1e-6)
    rotated = z @ _orthogonal(d, seed)
    assert float(M.rankme(rotated)) == pytest.approx(value, rel=1e-6)


# -- spectrum and alpha-ReQ -----------------------------------------------------------------------
def test_singular_spectrum_is_descending_covariance_eigenvalues():
    z = torch.randn(200, 6, dtype=torch.float64) * torch.arange(1, 7)
    expected = np.sort(np.linalg.eigvalsh(np.cov(z.numpy(), rowvar=False, bias=True)))[::-1]
    assert np.allclose(M.singular_spectrum(z).numpy(), expected, atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.2, 3.0), st.integers(16, 200))
def test_alpha_req_recovers_an_exact_power_law(alpha, d):
    eig = torch.arange(1, d + 1, dtype=torch.float64) ** -alpha
    assert float(M.alpha_req_from_spectrum(eig)) == pytest.approx(alpha, abs=1e-9)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_alpha_req_recovers_a_planted_power_law_from_samples(alpha):
    d, n = 64, 20_000
    scales = torch.arange(1, d + 1, dtype=torch.float64) ** (-alpha / 2)
    g = torch.Generator().manual_seed(0)
    z = (torch.randn(n, d, generator=g, dtype=torch.float64) * scales) @ _orthogonal(d, 3)
    assert float(M.alpha_req(z, (0.05, 0.8))) == pytest.approx(alpha, abs=0.08)


def test_alpha_req_fit_range_is_validated():
    with pytest.raises(ValueError, match="fit_range"):
        M.alpha_req_from_spectrum(torch.ones(8), (0.8, 0.2))


# -- collapse std ---------------------------------------------------------------------------------
def test_collapse_std_of_constant_is_zero_and_of_isotropic_is_inverse_sqrt_d():
    assert float(M.collapse_std(torch.ones(10, 5) * 3)) == pytest.approx(0.0, abs=1e-12)
    d = 64
    z = torch.randn(20_000, d, generator=torch.Generator().manual_seed(0))
    assert float(M.collapse_std(z)) == pytest.approx(1 / math.sqrt(d), rel=0.02)


# -- head statistics ------------------------------------------------------------------------------
def test_head_stats_of_identity():
    stats = M.head_stats(torch.eye(6))
    assert stats.scalars() == {
        "dist_identity": 0.0,
        "offdiag_fro": 0.0,
        "offdiag_mean_abs": 0.0,
        "offdiag_max_abs": 0.0,
        "asymmetry": 0.0,
        "sym_eig_min": 1.0,
        "sym_eig_max": 1.0,
        "condition_number": 1.0,
    }
    assert torch.equal(stats.sym_eigenvalues, torch.ones(6, dtype=torch.float64))


def test_head_stats_of_one_offdiagonal_entry():
    a, d = 0.3, 4
    w = torch.eye(d, dtype=torch.float64)
    w[0, 1] = a
    s = M.head_stats(w).scalars()
    assert s["dist_identity"] == pytest.approx(a)
    assert s["offdiag_fro"] == pytest.approx(a)
    assert s["offdiag_max_abs"] == pytest.approx(a)
    assert s["offdiag_mean_abs"] == pytest.approx(a / (d * (d - 1)))
    assert s["asymmetry"] == pytest.approx(math.sqrt(2) * a / math.sqrt(d + a * a))
    assert s["sym_eig_max"] == pytest.approx(1 + a / 2)
    assert s["sym_eig_min"] == pytest.approx(1 - a / 2)
    sv = np.linalg.svd(w.numpy(), compute_uv=False)
    assert s["condition_number"] == pytest.approx(sv[0] / sv[-1])


def test_head_stats_of_diagonal_head_counts_only_the_diagonal_in_dist_identity():
    s = M.head_stats(torch.diag(torch.tensor([1.0, 2.0, 0.0]))).scalars()
    assert s["dist_identity"] == pytest.approx(math.sqrt(2))
    assert s["offdiag_fro"] == 0.0
    assert s["condition_number"] == math.inf


# -- eigen alignment ------------------------------------------------------------------------------
def test_alignment_is_one_and_commutator_zero_for_shared_eigenvectors():
    q = _orthogonal(8, 5)
    w = q @ torch.diag(torch.linspace(-1, 3, 8, dtype=torch.float64)) @ q.T
    f = q @ torch.diag(torch.linspace(5, 0.1, 8, dtype=torch.float64)) @ q.T
    a = M.eigen_alignment(w, f)
    assert torch.allclose(a.per_mode, torch.ones(8, dtype=torch.float64), atol=1e-9)
    assert float(a.weighted_mean) == pytest.approx(1.0, abs=1e-9)
    assert float(a.commutator) == pytest.approx(0.0, abs=1e-12)


def test_alignment_with_identity_head_is_perfect():
    f = M.correlation_matrix(torch.randn(100, 5, dtype=torch.float64))
    a = M.eigen_alignment(torch.eye(5), f)
    assert float(a.mean) == pytest.approx(1.0) and float(a.commutator) == pytest.approx(0.0)


def test_alignment_is_clearly_below_one_for_rotated_eigenvectors():
    f = torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64))
    c = s = math.sqrt(0.5)  # W's eigenvectors at 45 degrees to F's
    r = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    w = r @ torch.diag(torch.tensor([2.0, 0.5], dtype=torch.float64)) @ r.T
    a = M.eigen_alignment(w, f)
    assert float(a.weighted_mean) < 0.9
    assert float(a.commutator) > 0.3


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 12), st.integers(0, 10_000))
def test_alignment_ranges(d, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, d, generator=g, dtype=torch.float64)
    f = M.correlation_matrix(torch.randn(3 * d, d, generator=g, dtype=torch.float64))
    a = M.eigen_alignment(w, f)
    assert bool(((a.per_mode >= 0) & (a.per_mode <= 1)).all())
    assert 0 <= float(a.weighted_mean) <= 1 and 0 <= float(a.mean) <= 1
    assert 0 <= float(a.commutator) <= math.sqrt(2) + 1e-12


# -- bad input ------------------------------------------------------------------------------------
def test_non_finite_inputs_give_nan_not_exceptions():
    z = torch.randn(20, 4)
    z[3, 1] = float("nan")
    assert math.isnan(float(M.rankme(z)))
    assert math.isnan(float(M.alpha_req(z)))
    assert math.isnan(float(M.collapse_std(z)))
    w = torch.eye(4)
    w[0, 1] = float("inf")
    assert all(math.isnan(v) for v in M.head_stats(w).scalars().values())
    assert math.isnan(float(M.eigen_alignment(torch.eye(4), M.correlation_matrix(z)).commutator))


@pytest.mark.parametrize("bad", [torch.ones(5), torch.ones(0, 3), torch.ones(2, 3, 4)])
def test_embedding_shape_errors(bad):
    with pytest.raises(ValueError, match=r"\[N, d\]"):
        M.rankme(bad)


def test_square_matrix_errors():
    with pytest.raises(ValueError, match="square"):
        M.head_stats(torch.ones(2, 3))
    with pytest.raises(ValueError, match="same shape"):
        M.eigen_alignment(torch.eye(2), torch.eye(3))


def test_gram_spectra_match_the_separate_functions():
    z = torch.randn(300, 20, dtype=torch.float64) * torch.linspace(0.1, 3, 20) + 2.0
    svals, spectrum = M.gram_spectra(z)
    assert torch.allclose(svals, M.singular_values(z), rtol=1e-8, atol=1e-8)
    assert torch.allclose(spectrum, M.singular_spectrum(z), rtol=1e-6, atol=1e-9)
    small = torch.randn(5, 20, dtype=torch.float64)  # N < d: the fallback
    assert torch.equal(M.gram_spectra(small)[1], M.singular_spectrum(small))


def test_spectra_from_gram_match_the_separate_functions_and_cut_to_min_n_d():
    z = torch.randn(300, 20, dtype=torch.float64) * torch.linspace(0.1, 3, 20) + 2.0
    svals, spectrum = M.spectra_from_gram(*M.gram_parts(z), 300)
    assert torch.allclose(svals, M.singular_values(z), rtol=1e-8, atol=1e-8)
    assert torch.allclose(spectrum, M.singular_spectrum(z), rtol=1e-6, atol=1e-9)
    small = torch.randn(5, 20, dtype=torch.float64)  # N < d: N singular values, d eigenvalues
    svals, spectrum = M.spectra_from_gram(*M.gram_parts(small), 5)
    assert svals.shape == (5,) and spectrum.shape == (20,)
    assert torch.allclose(svals, M.singular_values(small), rtol=1e-8, atol=1e-8)
    assert torch.allclose(spectrum, M.singular_spectrum(small), rtol=1e-6, atol=1e-9)
    k = 4  # RankMe of k equal singular values is k, through the Gram path too
    eye = torch.eye(k, 10, dtype=torch.float64)
    assert float(M.rankme_from_singular_values(M.spectra_from_gram(*M.gram_parts(eye), k)[0])) == (
        pytest.approx(k, rel=1e-5)
    )
    bad = z.clone()
    bad[3, 4] = float("nan")
    svals, spectrum = M.spectra_from_gram(*M.gram_parts(bad), 300)
    assert torch.isnan(svals).all() and torch.isnan(spectrum).all()
