import numpy as np
import pytest
from conftest import host
from helpers import central_difference_gradient
from hypothesis import given

import dlnref
from dlnref import testing as dst
from dlnref.problems import _fused, completion


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
    with pytest.raises(ValueError, match=r"operators must have shape \(k, 3, 2\)"):
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


def _thin_completion(m, n, k, seed=1, test=True):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((m, 3)) @ rng.standard_normal((3, n))
    mask = rng.random((m, n)) < 0.3
    test_mask = (~mask) & (rng.random((m, n)) < 0.2) if test else None
    return dlnref.MatrixCompletion(M, mask, test_mask=test_mask), rng.standard_normal((m, k)), rng.standard_normal((k, n))


@pytest.mark.parametrize("m, n, k, block_bytes", [(600, 520, 10, 1 << 19), (700, 400, 3, 1 << 19),
                                                  (513, 1100, 1, 1 << 19), (300, 900, 4, 1)])
def test_fused_completion_step_matches_the_hand_formulas(m, n, k, block_bytes, monkeypatch):
    """Thin factors: loss, G right^T, left^T G and the errors from row blocks equal the dense formulas.

    Sizes leave a partial last block; block_bytes 1 makes every block one row.
    """
    monkeypatch.setattr(_fused, "FUSED_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(completion, "FUSED_MIN_ENTRIES", 1)
    problem, left, right = _thin_completion(m, n, k)
    evaluation = problem.evaluate(left, right, factored=True)
    assert isinstance(evaluation.gradient, dlnref.problems.FactorGradients)
    assert isinstance(evaluation, completion.NormsEvaluation)
    mask, test_mask, M = problem.mask, problem.test_mask, problem.target
    R = left @ right - M
    G = mask * R / mask.sum()
    np.testing.assert_allclose(float(evaluation.loss), np.sum((mask * R) ** 2) / (2 * mask.sum()), rtol=1e-13)
    np.testing.assert_allclose(evaluation.gradient.left, G @ right.T, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(evaluation.gradient.right, left.T @ G, rtol=1e-12, atol=1e-15)
    errors = problem.errors(evaluation)
    assert set(errors) == {"recovery_error", "unobserved_error", "test_rmse"}
    np.testing.assert_allclose(errors["recovery_error"], np.linalg.norm(R) / np.linalg.norm(M), rtol=1e-13)
    np.testing.assert_allclose(errors["unobserved_error"],
                               np.linalg.norm(~mask * R) / np.linalg.norm(~mask * M), rtol=1e-13)
    np.testing.assert_allclose(errors["test_rmse"], np.sqrt(np.sum((test_mask * R) ** 2) / test_mask.sum()),
                               rtol=1e-13)


def test_fused_completion_step_applies_to_thin_factors_of_large_problems_only():
    small, left, right = _thin_completion(100, 100, 10, test=False)
    assert not isinstance(small.evaluate(left, right, factored=True), completion.NormsEvaluation)
    large, left, right = _thin_completion(600, 600, 10, test=False)
    assert isinstance(large.evaluate(left, right, factored=True), completion.NormsEvaluation)
    wide = np.random.default_rng(0).standard_normal((600, completion.FUSED_MAX_WIDTH + 1))
    assert not isinstance(large.evaluate(wide, wide.T, factored=True), completion.NormsEvaluation)
    assert isinstance(large.evaluate(left, right).gradient, np.ndarray)   # factored=False: G itself


def test_training_with_the_fused_step_retraces_the_unfused_one(monkeypatch):
    """300 steps of the compressed DLN at d = 600 (error 1 to 3e-3): the fused and the unfused step agree."""
    problem = dlnref.make_problem("completion", (600, 600), 3, fraction=0.3, seed=0)
    weights = dlnref.compress(problem, 3, 6, 0.3)
    fused = dlnref.gradient_descent(problem, weights, "auto", 300, outer_lr_scale=5.0)
    monkeypatch.setattr(completion, "FUSED_MIN_ENTRIES", 10**12)
    plain = dlnref.gradient_descent(problem, weights, "auto", 300, outer_lr_scale=5.0)
    assert plain.history["recovery_error"][-1] < 1e-2 < 0.9 < plain.history["recovery_error"][0]   # the run moves
    for a, b in zip(fused.weights, plain.weights):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13 * np.abs(b).max())
    for column in ("loss", "recovery_error", "unobserved_error"):
        np.testing.assert_allclose(fused.history[column], plain.history[column], rtol=1e-12)


def test_fused_step_without_record_gives_the_same_numbers_and_no_errors(monkeypatch):
    """record=False forms Z_B = P_Omega(X_B) - P_Omega(M)_B: the same bits as P_Omega(X_B - M_B), as the mask is 0/1."""
    monkeypatch.setattr(completion, "FUSED_MIN_ENTRIES", 1)
    problem, left, right = _thin_completion(300, 500, 6)
    full = problem.evaluate(left, right, factored=True)
    full = (float(full.loss), full.gradient.left.copy(), full.gradient.right.copy())
    light = problem.evaluate(left, right, factored=True, record=False)
    assert float(light.loss) == full[0] and light.norms is None
    np.testing.assert_array_equal(light.gradient.left, full[1])
    np.testing.assert_array_equal(light.gradient.right, full[2])
    with pytest.raises(ValueError, match="record=False"):
        problem.errors(light)


def test_fused_training_does_not_depend_on_how_often_it_records():
    problem = dlnref.make_problem("completion", (600, 600), 3, fraction=0.3, seed=0)
    weights = dlnref.compress(problem, 3, 6, 0.3)
    every, sparse = (dlnref.gradient_descent(problem, weights, "auto", 60, outer_lr_scale=5.0, record_every=r)
                     for r in (1, 7))
    for a, b in zip(every.weights, sparse.weights):
        np.testing.assert_array_equal(a, b)
    assert every.history["recovery_error"][::7] == sparse.history["recovery_error"][:-1]
