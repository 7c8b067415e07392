import warnings

import numpy as np
import pytest
from conftest import host
from helpers import explicit_layer_gradient

import dlnref


def _setup(depth, backend="numpy"):
    rng = np.random.default_rng(depth)
    dims = [4, 5, 3, 6, 2, 3][: depth + 1]
    W = [rng.standard_normal((o, i)) / 2 for i, o in zip(dims[:-1], dims[1:])]
    M = rng.standard_normal((dims[-1], dims[0]))
    problem = dlnref.MatrixFactorization(dlnref.to_backend(M, backend))
    return W, M, problem


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_one_step_matches_update_rule_by_hand(depth, backend):
    W, M, problem = _setup(depth, backend)
    lr, alpha = 0.3, 2.5
    result = dlnref.gradient_descent(problem, [dlnref.to_backend(w, backend) for w in W], lr, 1,
                                     outer_lr_scale=alpha)
    X = np.linalg.multi_dot(W[::-1]) if depth > 1 else W[0]
    G = (X - M) / M.size
    for l, (w, new) in enumerate(zip(W, host(result.weights))):
        s = alpha if l in (0, depth - 1) else 1.0
        np.testing.assert_allclose(new, w - lr * s * explicit_layer_gradient(W, G, l), rtol=1e-13, atol=1e-15)
    assert result.steps == 1 and not result.converged


def test_history_rows_describe_the_weights_after_t_updates():
    W, M, problem = _setup(3)
    full = dlnref.gradient_descent(problem, W, 0.5, 6, record_every=2)
    assert full.history["step"] == [0, 2, 4, 6]
    for t, loss, error in zip(full.history["step"], full.history["loss"], full.history["recovery_error"]):
        Wt = dlnref.gradient_descent(problem, W, 0.5, t).weights
        X = dlnref.end_to_end(Wt)
        assert loss == pytest.approx(float(problem.loss(X)), rel=1e-13)
        assert error == pytest.approx(np.linalg.norm(X - M) / np.linalg.norm(M), rel=1e-13)
    assert all(b >= a for a, b in zip(full.history["seconds"], full.history["seconds"][1:]))
    assert full.history["loss"][-1] < full.history["loss"][0]


def test_last_step_is_always_recorded_and_input_is_untouched():
    W, _, problem = _setup(2)
    before = [w.copy() for w in W]
    result = dlnref.gradient_descent(problem, W, 0.1, 5, record_every=3)
    assert result.history["step"] == [0, 3, 5]
    for a, b in zip(W, before):
        np.testing.assert_array_equal(a, b)


def test_tol_stops_at_first_recorded_step_below():
    problem = dlnref.make_problem("factorization", (8, 8), 1, seed=0)
    W = dlnref.compress(problem, 3, 2, scale=0.1)
    result = dlnref.gradient_descent(problem, W, 3.0, 5000, tol=1e-3)
    errors = result.history["recovery_error"]
    assert result.converged and errors[-1] <= 1e-3 < errors[-2]
    assert result.steps == result.history["step"][-1] < 5000
    assert result.history.first_below(1e-3) == result.steps


def test_completion_records_unobserved_error():
    problem = dlnref.make_problem("completion", (8, 8), 1, fraction=0.5, seed=0)
    result = dlnref.gradient_descent(problem, dlnref.compress(problem, 2, 2), 1.0, 3)
    assert len(result.history["unobserved_error"]) == 4


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_divergence_raises_with_step_and_advice():
    W, _, problem = _setup(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # the DivergenceError is the whole report: no overflow warnings first
        with pytest.raises(dlnref.DivergenceError, match=r"at step \d+ \(lr=1e\+06\).*smaller lr") as info:
            dlnref.gradient_descent(problem, W, 1e6, 1000)
    assert info.value.step < 20


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"lr": 0.0}, ValueError, "lr must be a finite number > 0"),
        ({"lr": -1.0}, ValueError, "lr must be a finite number > 0"),
        ({"lr": float("inf")}, ValueError, "lr must be a finite number > 0"),
        ({"steps": -1}, ValueError, "steps must be >= 0"),
        ({"outer_lr_scale": 0.0}, ValueError, "outer_lr_scale"),
        ({"record_every": 0}, ValueError, "record_every must be >= 1"),
        ({"tol": -1.0}, ValueError, "tol must be a finite number >= 0"),
        ({"blas_threads": 0}, ValueError, "blas_threads must be >= 1"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    W, _, problem = _setup(3)
    with pytest.raises(error, match=match):
        dlnref.gradient_descent(problem, W, **{"lr": 0.1, "steps": 2, **kwargs})


def test_weights_must_fit_the_problem():
    W, _, _ = _setup(3)
    with pytest.raises(ValueError, match=r"end-to-end matrix of shape \(6, 4\).*target has shape \(3, 3\)"):
        dlnref.gradient_descent(dlnref.MatrixFactorization(np.ones((3, 3))), W, 0.1, 1)


def test_step_sizes():
    assert dlnref.step_sizes(1, 2.0, 3.0) == [6.0]
    assert dlnref.step_sizes(2, 2.0, 3.0) == [6.0, 6.0]
    assert dlnref.step_sizes(4, 2.0, 3.0) == [6.0, 2.0, 2.0, 6.0]


def test_backends_train_to_the_same_weights(backend):
    problem = dlnref.make_problem("completion", (10, 10), 2, fraction=0.5, seed=0, backend=backend)
    W = dlnref.init_weights([10] * 4, 0.1, seed=1, backend=backend)
    ours = host(dlnref.gradient_descent(problem, W, 1.0, 30, outer_lr_scale=2.0).weights)
    problem = dlnref.make_problem("completion", (10, 10), 2, fraction=0.5, seed=0)
    ref = dlnref.gradient_descent(problem, dlnref.init_weights([10] * 4, 0.1, seed=1), 1.0, 30,
                                  outer_lr_scale=2.0).weights
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_tol_equal_to_a_recorded_error_stops_there():
    """``tol`` is reached when the error is <= tol: a tol equal to the error recorded at step 40 stops at step 40."""
    problem = dlnref.make_problem("factorization", (8, 8), 1, seed=0)
    W = dlnref.compress(problem, 3, 2, scale=0.1)
    free = dlnref.gradient_descent(problem, W, 3.0, 200, record_every=10)
    errors = free.history["recovery_error"]
    assert all(a > b for a, b in zip(errors, errors[1:]))        # decreasing: step 40 is the first at or below it
    stopped = dlnref.gradient_descent(problem, W, 3.0, 200, record_every=10, tol=errors[4])
    assert stopped.converged and stopped.steps == 40 and stopped.history["step"][-1] == 40


def test_patience_counts_recorded_rows_not_steps():
    """Validation entries that training moves away from: the best validation RMSE is at row 0, so a run
    recording every 5 steps with patience 3 stops at row 3, step 15."""
    rows, cols = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    problem = dlnref.SparseCompletion(rows, cols, np.ones(4), (3, 2), validation=(np.array([2]), np.array([0]),
                                                                                   np.array([-5.0])))
    weights = [np.full((1, 2), 0.5), np.array([[0.5], [0.5], [0.5]])]
    run = dlnref.gradient_descent(problem, weights, 0.5, 100, record_every=5, patience=3)
    rmse = run.history["validation_rmse"]
    assert all(a < b for a, b in zip(rmse, rmse[1:]))               # getting worse from the start
    assert run.stopped_early and run.history["step"] == [0, 5, 10, 15] and run.steps == 15


def _halving(t, x, update, record):
    """A step of descend on a number: loss x^2, x halves."""
    return x * x, x, x / 2 if update else x


def _error_is_the_evaluation(t, x, evaluation):
    return {"recovery_error": evaluation}


def _halving_leap(t, x, count):
    return [(x / 2**i) ** 2 for i in range(count)], x / 2**count


@pytest.mark.parametrize("record_every", [1, 3, 4, 10])
def test_a_leap_between_rows_gives_the_rows_of_single_steps(record_every):
    runs = [dlnref.train.descend(_halving, _error_is_the_evaluation, 1.0, 10, record_every=record_every, leap=leap)
            for leap in (None, _halving_leap)]
    assert runs[0].history.columns == runs[1].history.columns | {"seconds": runs[0].history["seconds"]}
    assert runs[1].history["step"] == sorted({*range(0, 10, record_every), 10})
    assert runs[1].history["recovery_error"] == [2.0**-t for t in runs[1].history["step"]]
    assert runs[0].weights == runs[1].weights == 2.0**-10   # the final state


@pytest.mark.parametrize("bad, step", [(float("nan"), 6), (float("inf"), 6)])
def test_a_bad_loss_inside_a_leap_is_a_divergence_at_its_step(bad, step):
    def leap(t, x, count):   # stops at the bad loss of step 6, as the compiled leap does
        losses = [(x / 2**i) ** 2 if t + i != step else bad for i in range(count)]
        return losses[:step - t + 1] if t <= step < t + count else losses, x / 2**count

    with pytest.raises(dlnref.DivergenceError, match=f"is {bad} at step {step} "):
        dlnref.train.descend(_halving, _error_is_the_evaluation, 1.0, 10, record_every=4, leap=leap)


def test_blas_threads_are_limited_while_training_and_restored_after():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return {info["filepath"]: info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}

    W, _, problem = _setup(3)
    before, seen = blas_threads(), []
    for _ in range(2):   # the second run reuses the controller of the first
        dlnref.gradient_descent(problem, W, 0.1, 2, blas_threads=1,
                                observe=lambda t, weights: seen.append(blas_threads()) or {})
    assert len(seen) == 6 and all(set(threads.values()) == {1} for threads in seen)
    assert set(seen[0]) == set(before)   # every BLAS loaded, NumPy's and SciPy's (the compiled step's)
    assert blas_threads() == before
