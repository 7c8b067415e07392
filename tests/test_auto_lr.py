"""lr="auto": the formula by hand, and runs over sizes, fractions, depths and problems that neither diverge nor stall."""

import numpy as np
import pytest

import dlnref
from dlnref.problems import problem_class
from dlnref.problems.sparse import synthetic_completion
from dlnref.train import AUTO_LR_SAFETY, auto_lr


def test_formula_by_hand_for_factorization_and_completion():
    problem = dlnref.make_problem("factorization", (12, 10), 2, seed=0)
    s1 = np.linalg.svd(problem.target, compute_uv=False)[0]
    g = (5.0 * 1.0 * 5.0) ** (1 / 3)
    expected = AUTO_LR_SAFETY * 2 / (3 * g * s1 ** (4 / 3) / 120)
    assert auto_lr(problem, 3, 5.0) == pytest.approx(expected, rel=1e-12)
    completion = dlnref.MatrixCompletion(problem.target, np.eye(12, 10, dtype=bool) | np.eye(12, 10, -2, dtype=bool))
    s1 = np.linalg.svd(np.where(completion.mask, problem.target, 0) / completion.fraction, compute_uv=False)[0]
    # along the flat u v^T every entry has weight 1 / (m n), so P_Omega keeps |Omega| / (m n) of it
    expected = AUTO_LR_SAFETY * 2 / (2 * 5.0 * s1 * (completion.observed / 120) / completion.observed)
    assert auto_lr(completion, 2, 5.0) == pytest.approx(expected, rel=1e-12)
    sensing = dlnref.make_problem("sensing", (6, 5), 1, measurements=40, seed=0)
    A = sensing.operators
    flat = np.ones((6, 5)) / np.sqrt(30)
    assert sensing.curvature(np.ones(6) / 6**0.5, np.ones(5) / 5**0.5) == pytest.approx(
        sum(np.sum(a * flat) ** 2 for a in A), rel=1e-12)


CASES = [  # (problem, d, rank, options, depth, scale, steps)
    ("completion", 20, 2, {"fraction": 0.3}, 3, 1e-2, 1500),
    ("completion", 100, 5, {"fraction": 0.3}, 3, 1e-2, 2500),
    ("completion", 100, 5, {"fraction": 1.0}, 3, 1e-2, 2000),
    ("completion", 100, 5, {"fraction": 0.3}, 2, 1e-2, 300),
    ("completion", 300, 5, {"fraction": 0.1}, 3, 1e-2, 2500),
    ("completion", 40, 2, {"fraction": 0.5}, 4, 1e-1, 1500),
    ("factorization", 20, 2, {}, 3, 1e-2, 1500),
    ("factorization", 100, 10, {}, 3, 1e-2, 2000),
    ("sensing", 20, 2, {"measurements": 400}, 3, 1e-2, 1500),
]


@pytest.mark.parametrize("name, d, rank, options, depth, scale, steps", CASES)
def test_auto_lr_neither_diverges_nor_stalls(name, d, rank, options, depth, scale, steps):
    problem = dlnref.make_problem(name, (d, d), rank, seed=0, **options)
    alpha = problem_class(name).paper_steps[1]
    run = dlnref.gradient_descent(problem, dlnref.compress(problem, depth, 2 * rank, scale), "auto", steps,
                                  outer_lr_scale=alpha, record_every=25)
    loss = np.array(run.history["loss"])
    assert run.lr == pytest.approx(auto_lr(problem, depth, alpha))
    assert np.all(np.diff(loss) <= 1e-12 * loss[0]), "the loss rose: the step is too large"
    assert loss[-1] < 0.1 * loss[0]


def test_auto_lr_on_a_large_sparse_completion_takes_decreasing_steps():
    problem = synthetic_completion((1000, 1000), 5, 0.05, seed=0)
    run = dlnref.gradient_descent(problem, dlnref.compress(problem, 3, 10), "auto", 300, outer_lr_scale=5.0,
                                  record_every=10)
    loss = np.array(run.history["loss"])
    assert np.all(np.diff(loss) < 0)


@pytest.mark.slow
def test_auto_lr_completes_a_large_sparse_problem():
    problem = synthetic_completion((1000, 1000), 5, 0.05, seed=0)
    run = dlnref.gradient_descent(problem, dlnref.compress(problem, 3, 10), "auto", 2500, outer_lr_scale=5.0,
                                  record_every=50, tol=1e-2)
    loss = np.array(run.history["loss"])
    assert np.all(np.diff(loss) <= 1e-12 * loss[0])
    assert run.converged and run.history["unobserved_error"][-1] < 2e-2
