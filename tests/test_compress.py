import numpy as np
import pytest
from conftest import host

import dlnref


@pytest.mark.parametrize("name, width", [("completion", 4), ("sensing", 4), ("factorization", 2)])
@pytest.mark.parametrize("depth", [2, 3, 5])
def test_end_to_end_is_scaled_top_singular_projector(name, width, depth, backend):
    problem = dlnref.make_problem(name, (9, 7), 2, fraction=0.5, seed=1, backend=backend)
    W = dlnref.compress(problem, depth, width, scale=0.1)
    # Independent route: NumPy's own SVD of the surrogate (U_w V_w^T does not depend on signs).
    U, s, Vh = np.linalg.svd(host(problem.surrogate()))
    assert s[width - 1] > s[width] * (1 + 1e-6)  # the top-w subspace is well defined
    expected = 0.1**depth * U[:, :width] @ Vh[:width]
    np.testing.assert_allclose(host(dlnref.end_to_end(W)), expected, rtol=1e-12, atol=1e-15)
    shapes = [tuple(w.shape) for w in W]
    assert shapes == [(width, 7)] + [(width, width)] * (depth - 2) + [(9, width)]


def test_layers_are_scaled_orthonormal():
    problem = dlnref.make_problem("completion", (10, 10), 2, seed=0)
    W = dlnref.compress(problem, 4, 4, scale=0.01)
    np.testing.assert_allclose(W[0] @ W[0].T, 1e-4 * np.eye(4), atol=1e-18)
    np.testing.assert_allclose(W[-1].T @ W[-1], 1e-4 * np.eye(4), atol=1e-18)
    np.testing.assert_array_equal(W[1], 0.01 * np.eye(4))


def test_default_width_is_twice_the_rank():
    problem = dlnref.make_problem("factorization", (12, 12), 3, seed=0)
    assert [tuple(w.shape) for w in dlnref.compress(problem, 3)] == [(6, 12), (6, 6), (12, 6)]


@pytest.mark.parametrize("d, w, depth", [(100, 10, 3), (100, 20, 3), (50, 7, 5), (30, 4, 2)])
def test_parameter_counts(d, w, depth):
    problem = dlnref.make_problem("factorization", (d, d), 2, seed=0)
    assert dlnref.parameter_count(dlnref.compress(problem, depth, w)) == 2 * d * w + (depth - 2) * w**2
    assert dlnref.parameter_count(dlnref.init_weights([d] * (depth + 1), 0.1)) == depth * d**2


def test_svd_sign_convention_and_reconstruction(backend):
    x = np.random.default_rng(0).standard_normal((6, 4))
    U, s, Vh = host(dlnref.svd(dlnref.to_backend(x, backend)))
    np.testing.assert_allclose((U * s) @ Vh, x, atol=1e-13)
    rows = np.argmax(np.abs(U), axis=0)
    assert np.all(U[rows, np.arange(4)] > 0)
    assert np.all(np.diff(s) <= 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"depth": 1}, "depth must be >= 2"),
        ({"depth": 0}, "depth must be >= 1"),
        ({"width": 7}, r"width must be <= min\(m, n\) = 6"),
        ({"width": 0}, "width must be >= 1"),
        ({"scale": 0.0}, "scale must be a finite number > 0"),
    ],
)
def test_compress_rejects_bad_input(kwargs, match):
    problem = dlnref.make_problem("factorization", (6, 8), 2, seed=0)
    with pytest.raises(ValueError, match=match):
        dlnref.compress(problem, **{"depth": 3, "width": 3, **kwargs})


def test_default_width_too_large_raises():
    target = dlnref.low_rank_matrix(6, 6, 4, spectrum=[4.0, 3.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="default width 2 \\* rank = 8"):
        dlnref.compress(dlnref.MatrixFactorization(target), 3)
