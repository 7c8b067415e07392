"""Alternating least squares: one half-step against per-row least squares, and recovery of a low-rank matrix."""

import numpy as np
import scipy.sparse

import dlnref
from dlnref.als import _solve_rows, als


def test_half_step_solves_each_rows_least_squares():
    rng = np.random.default_rng(0)
    mask = rng.random((8, 6)) < 0.6
    mask[3] = False
    M = rng.standard_normal((8, 6))
    rows, cols = np.nonzero(mask)
    entries = scipy.sparse.csr_array((M[rows, cols], (rows, cols)), shape=(8, 6))
    V = rng.standard_normal((6, 2))
    U = _solve_rows(entries, V, ridge=0.01)
    for i in range(8):
        if mask[i].sum() == 0:
            np.testing.assert_array_equal(U[i], 0)
            continue
        # ridge regression (lambda n_i) as plain least squares on [V_i; sqrt(0.01 n_i) I] against [M_i; 0]
        ridge = np.sqrt(0.01 * mask[i].sum()) * np.eye(2)
        expected = np.linalg.lstsq(np.vstack([V[mask[i]], ridge]), np.r_[M[i, mask[i]], 0, 0], rcond=None)[0]
        np.testing.assert_allclose(U[i], expected, rtol=1e-10, atol=1e-12)


def test_als_recovers_a_low_rank_matrix_on_both_paths():
    dense = dlnref.make_problem("completion", (30, 25), 2, fraction=0.5, seed=0)
    sparse = dlnref.SparseCompletion.from_dense(dense.target, dense.mask)
    runs = [als(problem, 2, steps=50, tol=1e-10, ridge=0.0) for problem in (dense, sparse)]
    assert runs[0].converged and runs[0].history["recovery_error"][-1] <= 1e-10
    X = runs[0].weights[1] @ runs[0].weights[0]
    np.testing.assert_allclose(X, dense.target, atol=1e-8)
    assert runs[1].converged
    np.testing.assert_allclose(runs[1].weights[1] @ runs[1].weights[0], X, atol=1e-8)


def test_rows_with_fewer_entries_than_the_rank_do_not_crash():
    """About 4 entries a row at rank 5: the Gram matrices are singular in floating point; ALS goes on (and fails
    to recover, as it must), where it raised LinAlgError."""
    problem = dlnref.synthetic_completion((2100, 2100), 5, 0.002, seed=0)
    run = als(problem, 5, 3)
    assert len(run.history) == 4 and all(np.isfinite(run.history["loss"]))
