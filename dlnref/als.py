r"""Alternating least squares (ALS): the classical baseline for matrix completion.

ALS fits ``X = U V^T`` with ``U`` of shape ``(m, r)`` and ``V`` of shape
``(n, r)`` by solving, in turn, the least-squares problem of every row of ``U``
with ``V`` fixed and of every row of ``V`` with ``U`` fixed:

.. math::

    u_i = \Bigl(\sum_{j \in \Omega_i} v_j v_j^T + \lambda |\Omega_i| I\Bigr)^{-1}
          \sum_{j \in \Omega_i} M_{ij} v_j,

and the same with the roles swapped (the ridge weighted by the row's count is
ALS-WR's, Zhou et al. 2008). Each half-step costs ``O(|Omega| r^2 + (m + n) r^3)``.
It runs on the observed entries of a :class:`dlnref.MatrixCompletion` or a
:class:`dlnref.problems.sparse.SparseCompletion` (NumPy only), and records the same error
measures as :func:`dlnref.gradient_descent`, so that ``dlnref compare`` can put it
next to the networks.
"""

import math
import time

import numpy as np
import scipy.sparse

from ._checks import check_int, check_positive
from .backend import to_numpy
from .errors import InputError, InputTypeError
from .train import History, TrainResult


def als(problem, rank, steps=100, tol=0.0, ridge=1e-10, seed=0, patience=None):
    """Complete the problem's matrix at rank ``rank`` by alternating least squares.

    Parameters
    ----------
    problem : MatrixCompletion or SparseCompletion
    rank : int
        The rank r of the fit, ``1 <= r <= min(m, n)``.
    steps : int
        Most sweeps (one sweep updates ``U``, then ``V``).
    tol : float
        Stop once the recorded ``recovery_error`` is ``<= tol``.
    ridge : float
        ``lambda >= 0``: keeps rows with fewer than r observed entries
        solvable; on noisy ratings it is the regulariser (0.05 to 0.1).
    seed : int
        Seeds the truncated SVD of the start (the surrogate's top-r pairs).
    patience : int or None
        With validation entries: stop once ``validation_rmse`` has not reached a
        new minimum for this many sweeps.

    Returns
    -------
    TrainResult
        ``weights = [V^T, U]`` (so ``X = U V^T``, the layer order of a depth-2
        network) and a history with one row per sweep.
    """
    rank = check_int("rank", rank, 1)
    steps = check_int("steps", steps, 0)
    tol = check_positive("tol", tol, allow_zero=True)
    ridge = check_positive("ridge", ridge, allow_zero=True)
    rows, cols, values = observed_entries(problem)
    m, n = problem.shape
    if rank > min(m, n):
        raise InputError(f"rank must be <= min(m, n) = {min(m, n)}, got {rank}")
    by_row = scipy.sparse.csr_array((values, (rows, cols)), shape=(m, n))
    U, s, Vh = (to_numpy(a) for a in problem.top_singular(rank, seed))
    U, V = U * np.sqrt(s), Vh.T * np.sqrt(s)
    history, start, best = History(), time.perf_counter(), (math.inf, 0)
    for step in range(steps + 1):
        evaluation = problem.evaluate(problem.xp.asarray(U), problem.xp.asarray(V.T))
        row = {"step": step, "loss": float(evaluation.loss), **problem.errors(evaluation),
               "seconds": time.perf_counter() - start}
        history.append(row)
        if row["recovery_error"] <= tol:
            return TrainResult([V.T, U], history, step, converged=True)
        if patience is not None and "validation_rmse" in row:
            best = (row["validation_rmse"], step) if row["validation_rmse"] < best[0] else best
            if step - best[1] >= patience:
                return TrainResult([V.T, U], history, step, converged=False, stopped_early=True)
        if step == steps:
            break
        U = _solve_rows(by_row, V, ridge)
        V = _solve_rows(by_row.T.tocsr(), U, ridge)
    return TrainResult([V.T, U], history, steps, converged=False)


def observed_entries(problem):
    """``(rows, cols, values)`` of the observed entries, as host arrays."""
    if hasattr(problem, "rows"):
        return problem.rows, problem.cols, problem.values
    if not hasattr(problem, "mask"):
        raise InputTypeError(f"ALS needs a completion problem (observed entries), got {type(problem).__name__}")
    mask = to_numpy(problem.mask)
    rows, cols = np.nonzero(mask)
    return rows, cols, to_numpy(problem.target)[rows, cols]


def _solve_rows(entries, other, ridge):
    """Row i of the result: ``(sum_j o_j o_j^T + ridge n_i I)^{-1} sum_j e_ij o_j`` over the n_i stored j of row i.

    ``entries`` is a CSR array (m, n) of the observed values; ``other`` (n, r).
    The Gram matrices come from ``r (r + 1) / 2`` sparse matrix-vector
    products with the 0/1 pattern, the right-hand sides from one sparse product.
    """
    r = other.shape[1]
    pattern = scipy.sparse.csr_array((np.ones_like(entries.data), entries.indices, entries.indptr), shape=entries.shape)
    gram = np.empty((entries.shape[0], r, r))
    for a in range(r):
        for b in range(a, r):
            gram[:, a, b] = gram[:, b, a] = pattern @ (other[:, a] * other[:, b])
    counts = np.diff(entries.indptr)
    gram += ridge * counts[:, None, None] * np.eye(r)
    rhs = entries @ other
    empty = counts == 0
    gram[empty] = np.eye(r)  # a row with no observed entry stays at 0
    try:
        return np.linalg.solve(gram, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:   # a Gram matrix singular in floating point: the least-norm solutions instead
        return (np.linalg.pinv(gram) @ rhs[..., None])[..., 0]   # (rows with fewer than r entries, a tiny ridge)
