import numpy as np
import pytest
from hypothesis import given

import dlnref
from dlnref import testing as dst
from conftest import host
from helpers import central_difference_gradient


def _small_problems(backend):
    rng = np.random.default_rng(11)
    M = rng.standard_normal((5, 4)) @ np.diag([3.0, 2.0, 1.0, 0.0]) @ np.eye(4)
    mask = rng.random((5, 4)) < 0.5
    mask[0, 0], mask[1, 1] = True, False
    A = rng.standard_normal((7, 5, 4))
    on = lambda x: dlnref.to_backend(x, backend)  # noqa: E731
    return M, mask, A, {
        "factorization": dlnref.MatrixFactorization(on(M)),
        "completion": dlnref.MatrixCompletion(on(M), on(mask)),
        "sensing": dlnref.MatrixSensing(on(M), on(A)),
    }


@pytest.mark.parametrize("name", ["factorization", "completion", "sensing"])
def test_loss_gradient_and_surrogate_match_hand_formulas(name, backend):
    M, mask, A, problems = _small_problems(backend)
    problem = problems[name]
    X = np.random.default_rng(5).standard_normal((5, 4))
    R = X - M
    if name == "factorization":
        loss, grad, surrogate = np.sum(R**2) / 40, R / 20, M
    elif name == "completion":
        k = mask.sum()
        loss, grad, surrogate = np.sum(R[mask] ** 2) / (2 * k), np.where(mask, R, 0) / k, np.where(mask, M, 0) * 20 / k
    else:
        r = np.array([np.sum(a * X) - np.sum(a * M) for a in A])
        loss, grad = np.sum(r**2) / 2, sum(ri * a for ri, a in zip(r, A))
        surrogate = sum(np.sum(a * M) * a for a in A)
    Xb = dlnref.to_backend(X, backend)
    assert float(problem.loss(Xb)) == pytest.approx(loss, rel=1e-14)
    np.testing.assert_allclose(host(problem.gradient(Xb)), grad, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(host(problem.surrogate()), surrogate, rtol=1e-13, atol=1e-14)
    assert float(problem.recovery_error(Xb)) == pytest.approx(np.linalg.norm(R) / np.linalg.norm(M), rel=1e-14)


@given(problem=dst.problems())
def test_gradient_matches_central_differences(problem):
    # Every loss is quadratic in X, so central differences are exact up to rounding.
    X = np.random.default_rng(0).standard_normal(problem.shape)
    fd = central_difference_gradient(lambda x: float(problem.loss(x)), X, h=1e-2)
    grad = problem.gradient(X)
    scale = max(np.abs(fd).max(), 1e-300)
    np.testing.assert_allclose(grad, fd, rtol=0, atol=1e-9 * scale)


def test_unobserved_error():
    M, mask, _, problems = _small_problems("numpy")
    X = M + 0.1
    expected = np.linalg.norm(np.where(mask, 0, X - M)) / np.linalg.norm(np.where(mask, 0, M))
    assert float(problems["completion"].unobserved_error(X)) == pytest.approx(expected, rel=1e-14)
    assert problems["completion"].metrics(X)["unobserved_error"] == pytest.approx(expected, rel=1e-14)
    full = dlnref.MatrixCompletion(M, np.ones((5, 4), dtype=bool))
    assert full.metrics(X) == {} and full.fraction == 1.0


def test_rank_property():
    M = dlnref.low_rank_matrix(8, 6, 3, seed=1)
    assert dlnref.MatrixFactorization(M).rank == 3


def test_zero_loss_at_target():
    _, _, _, problems = _small_problems("numpy")
    for problem in problems.values():
        assert float(problem.loss(problem.target)) == 0.0
        assert float(problem.recovery_error(problem.target)) == 0.0


def test_bad_targets_raise():
    for bad in (np.array([[1.0, np.nan]]), np.array([[np.inf, 1.0]])):
        with pytest.raises(ValueError, match="target contains NaN or inf"):
            dlnref.MatrixFactorization(bad)
    with pytest.raises(ValueError, match="target must be a 2-D array"):
        dlnref.MatrixFactorization(np.ones(3))
    with pytest.raises(ValueError, match="all zeros"):
        dlnref.MatrixFactorization(np.zeros((2, 2)))
    with pytest.raises(TypeError, match="real floating"):
        dlnref.MatrixFactorization(np.ones((2, 2), dtype=int))


def test_bad_masks_raise():
    M = np.ones((3, 3))
    with pytest.raises(ValueError, match="all-False mask"):
        dlnref.MatrixCompletion(M, np.zeros((3, 3), dtype=bool))
    with pytest.raises(ValueError, match=r"mask must have shape \(3, 3\)"):
        dlnref.MatrixCompletion(M, np.ones((3, 2), dtype=bool))
    with pytest.raises(TypeError, match="mask must be a boolean array"):
        dlnref.MatrixCompletion(M, np.ones((3, 3)))


def test_bad_operators_raise():
    M = np.ones((3, 2))
    with pytest.raises(ValueError, match=r"operators must have shape \(m, 3, 2\)"):
        dlnref.MatrixSensing(M, np.ones((4, 6)))
    with pytest.raises(ValueError, match=r"operators must have shape \(4, 3, 2\)"):
        dlnref.MatrixSensing(M, np.ones((4, 2, 3)))
    with pytest.raises(ValueError, match="NaN or inf"):
        dlnref.MatrixSensing(M, np.full((4, 3, 2), np.nan))


def test_wrong_X_shape_and_mixed_backends_raise():
    import array_api_strict

    problem = dlnref.MatrixFactorization(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"X must have shape \(3, 2\)"):
        problem.loss(np.ones((2, 3)))
    with pytest.raises(TypeError, match="different backends"):
        problem.loss(array_api_strict.ones((3, 2), dtype=array_api_strict.float64))


def test_make_problem_is_seeded_and_rejects_unknown_names():
    a = dlnref.make_problem("completion", (6, 6), 2, seed=3)
    b = dlnref.make_problem("completion", (6, 6), 2, seed=3)
    np.testing.assert_array_equal(a.target, b.target)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.observed == int(0.3 * 36)
    s = dlnref.make_problem("sensing", (4, 5), 1, seed=0)
    assert s.operators.shape == (5 * 1 * 9, 4, 5)
    with pytest.raises(ValueError, match="problem must be one of"):
        dlnref.make_problem("denoising", (4, 4), 1)
