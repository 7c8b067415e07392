import math

import numpy as np
import pytest
from conftest import host

import dlnref
from dlnref.data import spread_indices


def test_spread_spectrum_keeps_the_spread_singular_triplets():
    M = dlnref.low_rank_matrix(10, 8, 3, seed=4)
    # Independent route: the same Gaussian draw, its singular values at floor(k * 8 / 6).
    s_gauss = np.linalg.svd(np.random.default_rng(4).standard_normal((10, 8)), compute_uv=False)
    s = np.linalg.svd(M, compute_uv=False)
    assert spread_indices(8, 3) == [0, 1, 2] and spread_indices(100, 5) == [0, 10, 20, 30, 40]
    np.testing.assert_allclose(s[:3], s_gauss[[0, 1, 2]], rtol=1e-13)
    assert s[3] < 1e-13 * s[0]
    M = dlnref.low_rank_matrix(100, 100, 5, seed=0)
    s_gauss = np.linalg.svd(np.random.default_rng(0).standard_normal((100, 100)), compute_uv=False)
    np.testing.assert_allclose(np.linalg.svd(M, compute_uv=False)[:5], s_gauss[[0, 10, 20, 30, 40]], rtol=1e-12)


def test_given_spectrum(backend):
    M = host(dlnref.low_rank_matrix(7, 5, 2, seed=1, spectrum=[4.0, 0.5], backend=backend))
    np.testing.assert_allclose(np.linalg.svd(M, compute_uv=False), [4.0, 0.5, 0, 0, 0], atol=1e-14)
    np.testing.assert_array_equal(M, dlnref.low_rank_matrix(7, 5, 2, seed=1, spectrum=[4.0, 0.5]))


@pytest.mark.parametrize("shape, fraction", [((10, 10), 0.3), ((7, 13), 0.55), ((3, 3), 1.0), ((5, 4), 0.05)])
def test_mask_has_exact_count(shape, fraction, backend):
    mask = host(dlnref.random_mask(shape, fraction, seed=2, backend=backend))
    assert mask.dtype == bool and mask.shape == shape
    assert mask.sum() == math.floor(fraction * shape[0] * shape[1])


def test_operator_scale():
    A = dlnref.gaussian_operators(400, (20, 30), seed=0)
    assert A.shape == (400, 20, 30)
    # 240000 i.i.d. N(0, 1/400) entries: the sample variance is within 1% with overwhelming probability.
    assert np.var(A) * 400 == pytest.approx(1.0, rel=0.01)
    np.testing.assert_array_equal(A[:2], dlnref.gaussian_operators(400, (20, 30), seed=0)[:2])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: dlnref.low_rank_matrix(4, 3, 4), ValueError, r"rank must be <= min\(m, n\) = 3"),
        (lambda: dlnref.low_rank_matrix(4, 3, 0), ValueError, "rank must be >= 1"),
        (lambda: dlnref.low_rank_matrix(6, 6, 4), ValueError, r"spread spectrum needs 2 \* rank <= min"),
        (lambda: dlnref.low_rank_matrix(4, 3, 2, spectrum=[1.0]), ValueError, "spectrum must hold 2"),
        (lambda: dlnref.low_rank_matrix(4, 3, 1, spectrum="flat"), ValueError, "spectrum must be 'spread'"),
        (lambda: dlnref.random_mask((4, 4), 0.0), ValueError, r"fraction must be a finite number > 0"),
        (lambda: dlnref.random_mask((4, 4), 1.5), ValueError, r"fraction must lie in \(0, 1\]"),
        (lambda: dlnref.random_mask((4, 4), 0.01), ValueError, "observes no entry"),
        (lambda: dlnref.gaussian_operators(0, (2, 2)), ValueError, "count must be >= 1"),
    ],
)
def test_generators_reject_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
