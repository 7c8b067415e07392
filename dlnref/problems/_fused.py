"""The fused completion step: loss, factor gradients and residual norms in one pass over blocks of rows.

Private to :mod:`dlnref.problems.completion`, whose :meth:`MatrixCompletion.evaluate`
calls :func:`fused_completion` for thin factors on NumPy; the readable
reference is the unfused step of the same class, and the tests hold the two
together.
"""

from typing import NamedTuple

import numpy as np
import scipy.linalg.blas

from .base import FactorGradients

#: A row block of the fused step holds about this many bytes, so that its residual stays
#: in cache while it is reused; 2^19 was fastest of 2^17 .. 2^21 at d = 1000 and 2000.
FUSED_BLOCK_BYTES = 1 << 19


class ResidualNorms(NamedTuple):
    """Squared norms of parts of the residual ``R = X - M``, summed block by block.

    Attributes
    ----------
    total : float
        ``||R||_F^2``.
    unobserved : float
        ``||P_Omega^c(R)||_F^2``.
    test : float
        ``||P_T(R)||_F^2`` over the test entries (0 without a test mask).
    """

    total: float
    unobserved: float
    test: float


def fused_completion(problem, left, right, record=True):
    """Loss, factor gradients and residual norms at ``X = left @ right``, one block of rows at a time.

    For each block ``B`` of rows (about ``FUSED_BLOCK_BYTES``), with
    ``R_B = left_B @ right - M_B`` and ``Z_B = P_Omega(R_B)``::

        loss = sum_B ||Z_B||^2 / (2 |Omega|),
        G right^T = [Z_B right^T]_B / |Omega|,
        left^T G = sum_B left_B^T Z_B / |Omega|,

    and, with ``record``, the norms of ``R``, ``P_Omega^c(R) = R - Z`` and
    ``P_T(R - Z)`` for ``errors``. A block stays in cache from its GEMM to its
    last use, so the step reads ``M`` and the mask once each from memory,
    where the unfused step (``X``, then ``R``, ``G``, ``<G, R>``,
    ``G right^T``, ``left^T G``) passes over ``m x n`` arrays about 12 times.
    Without ``record``, ``Z_B = P_Omega(X_B) - P_Omega(M)_B`` from the kept
    masked target: the same numbers (the mask is 0 or 1), two fewer passes
    over the block.

    Parameters
    ----------
    problem : MatrixCompletion
        Gives ``target``, ``mask``, ``masked_target``, ``test_weight``, ``observed`` and ``buffer``.
    left : array, shape (m, k)
    right : array, shape (k, n)
    record : bool

    Returns
    -------
    loss : 0-d array
    gradient : FactorGradients
    norms : ResidualNorms, or None without ``record``
    """
    (m, n), k = problem.shape, left.shape[1]
    target, mask, test_weight = problem.target, problem.mask, problem.test_weight
    rows = max(1, FUSED_BLOCK_BYTES // (target.itemsize * n))
    residual, masked = problem.buffer("block residual", (rows, n)), problem.buffer("block masked", (rows, n))
    right_t = np.ascontiguousarray(right.T)
    left_grad = np.empty((m, k), dtype=target.dtype)
    right_grad = np.zeros((k, n), dtype=target.dtype, order="F")  # gemm accumulates into it in place
    gemm = scipy.linalg.blas.get_blas_funcs("gemm", (right_grad,))
    observed = unobserved = test = 0.0
    for start in range(0, m, rows):
        block = slice(start, min(start + rows, m))
        r = np.matmul(left[block], right, out=residual[:block.stop - start])          # X_B
        if record:
            r -= target[block]                                                        # R_B
            z = np.multiply(mask[block], r, out=masked[:block.stop - start])          # Z_B = P_Omega(R_B)
        else:
            z = np.multiply(mask[block], r, out=r)                                    # P_Omega(X_B)
            z -= problem.masked_target[block]                                         # Z_B
        observed += np.vdot(z, z)
        np.matmul(z, right_t, out=left_grad[block])                                   # Z_B right^T
        gemm(1.0, left[block].T, z.T, beta=1.0, c=right_grad, trans_b=1, overwrite_c=1)  # += left_B^T Z_B
        if record:
            r -= z                                                                    # P_Omega^c(R_B)
            unobserved += np.vdot(r, r)
            if test_weight is not None:
                t = np.multiply(test_weight[block], r, out=z)                         # P_T(R_B): T lies outside Omega
                test += np.vdot(t, t)
    left_grad /= problem.observed
    right_grad /= problem.observed
    norms = ResidualNorms(float(observed + unobserved), float(unobserved), float(test)) if record else None
    return np.asarray(observed / (2 * problem.observed)), FactorGradients(left_grad, right_grad), norms
