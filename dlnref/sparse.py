"""Matrix completion from the observed entries alone: no ``m x n`` array is ever formed.

The problem holds the observed entries ``(i_k, j_k, M_{i_k j_k})``, k = 1..|Omega|,
of an ``(m, n)`` matrix ``M``. A DLN's end-to-end matrix arrives factored,
``X = left @ right`` (``left = W_L`` of shape ``(m, w)``, ``right = W_{L-1} ... W_1``
of shape ``(w, n)``), so the residual on the observed entries is

    r_k = left[i_k, :] @ right[:, j_k] - M_{i_k j_k},       O(|Omega| w),

and ``dLoss/dX = P_Omega(X - M) / |Omega|`` is a sparse matrix with the
values ``r / |Omega|``. Back-propagation multiplies it by thin matrices
(``scipy.sparse``), so a compressed step costs ``O(|Omega| w + (m + n) w^2)``.
The loss and the surrogate are those of :class:`dlnref.MatrixCompletion`; on
the same entries the two agree to rounding.
"""

import math
import array_api_compat.numpy as xp_numpy
import numpy as np
import scipy.sparse

from ._checks import check_fraction, check_int
from .backend import top_svd
from .data import Entries
from .network import _orthonormal
from .problems import Evaluation

#: Entries gathered per block when forming the residual: the temporary
#: ``(block, w)`` arrays then stay in cache (2^14 ran 3x faster than 2^18 at w = 10).
GATHER_BLOCK = 1 << 14


def as_entries(name, entries, shape):
    """Check ``(rows, cols, values)`` against ``shape`` and return them as :class:`Entries`."""
    if not isinstance(entries, tuple) or len(entries) != 3:
        raise TypeError(f"{name} must be a (rows, cols, values) triple, got {type(entries).__name__}")
    rows, cols, values = (np.asarray(a) for a in entries)
    if not (rows.ndim == cols.ndim == values.ndim == 1 and rows.shape == cols.shape == values.shape):
        raise ValueError(f"{name}: rows, cols and values must be 1-D of one length, got shapes "
                         f"{rows.shape}, {cols.shape}, {values.shape}")
    if rows.size == 0:
        raise ValueError(f"{name} must hold at least one entry, got none")
    for axis, index, size in (("rows", rows, shape[0]), ("cols", cols, shape[1])):
        if not np.issubdtype(index.dtype, np.integer):
            raise TypeError(f"{name}: {axis} must be integers, got dtype {index.dtype}")
        if index.min() < 0 or index.max() >= size:
            raise ValueError(f"{name}: {axis} must lie in [0, {size}) for shape {shape}, "
                             f"got values from {index.min()} to {index.max()}")
    if not np.issubdtype(values.dtype, np.number) or not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: values must be finite numbers")
    return Entries(rows.astype(np.int64), cols.astype(np.int64), values.astype(np.float64))


def gather_product(left, right, rows, cols, out=None, scratch=None):
    """Entries ``(left @ right)[rows_k, cols_k] = left[rows_k, :] @ right[:, cols_k]``, without forming the product.

    ``right`` None means ``X = left``. Costs ``O(k w)`` in blocks of
    :data:`GATHER_BLOCK` entries. ``out`` (shape ``(k,)``) and ``scratch``
    (two ``(GATHER_BLOCK, w)`` arrays) let a caller reuse its memory: a loop
    that allocates nothing runs up to 2x faster once the heap has grown.
    """
    if right is None:
        return left[rows, cols]
    left, right_t = np.ascontiguousarray(left), np.ascontiguousarray(right.T)  # row gathers want C order
    out = np.empty(len(rows)) if out is None else out
    block = min(GATHER_BLOCK, len(rows))
    if scratch is None:
        scratch = np.empty((2, block, left.shape[1]))
    for start in range(0, len(rows), block):
        size = min(block, len(rows) - start)
        a = np.take(left, rows[start:start + size], axis=0, out=scratch[0, :size], mode="clip")
        b = np.take(right_t, cols[start:start + size], axis=0, out=scratch[1, :size], mode="clip")
        np.einsum("ij,ij->i", a, b, out=out[start:start + size])
    return out


class SparseCompletion:
    """Matrix completion from observed entries, never forming an ``(m, n)`` array (NumPy only).

    Parameters
    ----------
    rows, cols : array of int, shape (k,)
        0-based positions of the observed entries Omega (no repeats).
    values : array of float, shape (k,)
        ``M`` at those positions.
    shape : tuple of int
        ``(m, n)``.
    target_factors : (array (m, r), array (r, n)) or None
        ``M = A @ B`` when it is known (synthetic problems): the recovery
        error is then computed exactly from the factors.
    validation, test : (rows, cols, values) or None
        Held-out entries; add ``validation_rmse`` and ``test_rmse`` to ``errors``.

    Notes
    -----
    ``loss(X) = sum_k r_k^2 / (2 |Omega|)`` with ``r_k = X_{i_k j_k} - M_{i_k j_k}``,
    ``dLoss/dX = P_Omega(X - M) / |Omega|`` (sparse), surrogate ``P_Omega(M) / p``
    with ``p = |Omega| / (m n)``, as :class:`dlnref.MatrixCompletion`.
    ``errors`` gives:

    - ``recovery_error = ||X - M||_F / ||M||_F`` with ``target_factors``; without
      them, the relative error on the observed entries ``||r|| / ||P_Omega(M)||``
      (the only entries known);
    - ``unobserved_error = ||P_Omega^c(X - M)||_F / ||P_Omega^c(M)||_F`` with
      ``target_factors``, from ``||P_Omega^c(R)||^2 = ||R||_F^2 - ||r||^2``;
    - ``validation_rmse``, ``test_rmse``: ``sqrt(mean((X - M)^2))`` over those entries.
    """

    name = "completion"
    backend = "numpy"
    xp = xp_numpy

    def __init__(self, rows, cols, values, shape, target_factors=None, validation=None, test=None):
        m, n = (check_int(f"shape[{i}]", s, 1) for i, s in enumerate(shape))
        self.shape = (m, n)
        entries = as_entries("observed entries", (rows, cols, values), self.shape)
        linear = entries.rows * n + entries.cols
        if not np.all(linear[1:] > linear[:-1]):  # row-major order: r is then the CSR data of dLoss/dX
            order = np.argsort(linear, kind="stable")
            entries, linear = Entries(*(a[order] for a in entries)), linear[order]
        self.rows, self.cols, self.values = entries
        self.observed = len(self.rows)
        repeated = linear[1:] == linear[:-1]
        if repeated.any():
            k = int(np.argmax(repeated))
            raise ValueError(f"observed entries must not repeat a position, got ({self.rows[k]}, {self.cols[k]}) twice")
        self._indptr = np.searchsorted(self.rows, np.arange(m + 1)).astype(np.int64)
        self.fraction = self.observed / (m * n)
        self._values_norm = float(np.linalg.norm(self.values))
        if self._values_norm == 0:
            raise ValueError("observed values must not all be zero: the relative errors are undefined")
        self.held_out = {name: as_entries(name, e, self.shape)
                         for name, e in (("validation", validation), ("test", test)) if e is not None}
        self.target_factors = None
        self._top, self._buffers = None, {}
        if target_factors is not None:
            A, B = (np.asarray(f, dtype=np.float64) for f in target_factors)
            if A.ndim != 2 or B.ndim != 2 or A.shape[0] != m or B.shape[1] != n or A.shape[1] != B.shape[0]:
                raise ValueError(f"target_factors must be (A, B) with A of shape ({m}, r) and B of shape (r, {n}), "
                                 f"got {A.shape} and {B.shape}")
            self.target_factors = (A, B)
            self._target_norm = _product_norm(A, B)
            self._unobserved_norm = math.sqrt(max(self._target_norm**2 - self._values_norm**2, 0.0))

    @classmethod
    def from_dense(cls, target, mask, target_factors=None):
        """The observed entries of a dense ``target`` where ``mask`` is True (small problems, tests)."""
        target, mask = np.asarray(target), np.asarray(mask, dtype=bool)
        rows, cols = np.nonzero(mask)
        return cls(rows, cols, target[rows, cols], target.shape, target_factors=target_factors)

    @property
    def entries_per_step(self):
        """Array entries that one evaluation reads: the observed ones."""
        return self.observed

    @property
    def rank(self):
        """Rank of the target, known only from ``target_factors``."""
        if self.target_factors is None:
            raise ValueError("the rank of observed entries alone is unknown; pass width explicitly")
        return int(np.linalg.matrix_rank(self.target_factors[0] @ (self.target_factors[1] @ self.target_factors[1].T)))

    def evaluate(self, left, right=None, factored=False):
        """Loss and sparse ``dLoss/dX`` at ``X = left @ right`` from the observed entries (see the class Notes).

        ``factored`` is accepted for the problems' common interface: the sparse
        ``G`` is returned either way (its products with thin factors are cheap).
        """
        if (left.shape[0], (left if right is None else right).shape[1]) != self.shape:
            raise ValueError(f"left @ right must have the problem's shape {self.shape}")
        if right is None:
            residual = left[self.rows, self.cols] - self.values
        else:  # into buffers kept across evaluations, as the dense problems do
            k, w = self.observed, left.shape[1]
            residual = gather_product(left, right, self.rows, self.cols, out=self._buffer("residual", (k,)),
                                      scratch=self._buffer("scratch", (2, min(GATHER_BLOCK, k), w)))
            residual -= self.values
        data = np.divide(residual, self.observed, out=self._buffer("gradient", residual.shape))
        gradient = scipy.sparse.csr_array((data, self.cols, self._indptr), shape=self.shape, copy=False)
        return Evaluation(residual @ residual / (2 * self.observed), gradient, (left, right, residual))

    def _buffer(self, name, shape):
        """An array kept across evaluations (the next ``evaluate`` overwrites it)."""
        if name not in self._buffers or self._buffers[name].shape != shape:
            self._buffers[name] = np.empty(shape)
        return self._buffers[name]

    def loss_and_gradient(self, X):
        """Loss and sparse ``dLoss/dX`` at a dense ``X`` of shape ``(m, n)`` (small problems)."""
        evaluation = self.evaluate(X)
        return evaluation.loss, evaluation.gradient

    def loss(self, X):
        """Training loss at a dense ``X``."""
        return self.evaluate(X).loss

    def gradient(self, X):
        """Sparse ``dLoss/dX`` at a dense ``X``."""
        return self.evaluate(X).gradient

    def errors(self, evaluation):
        """The recorded error measures at an evaluation (see the class Notes), as floats."""
        left, right, residual = evaluation.state
        observed = float(np.linalg.norm(residual))
        row = {}
        if self.target_factors is None:
            row["recovery_error"] = observed / self._values_norm
        else:
            total = _difference_norm(left, right, *self.target_factors)
            row["recovery_error"] = total / self._target_norm
            if self._unobserved_norm > 0:
                row["unobserved_error"] = math.sqrt(max(total**2 - observed**2, 0.0)) / self._unobserved_norm
        for name, entries in self.held_out.items():
            error = gather_product(left, right, entries.rows, entries.cols) - entries.values
            row[f"{name}_rmse"] = float(np.sqrt(error @ error / len(error)))
        return row

    def errors_at(self, left, right=None):
        """:meth:`errors` at ``X = left @ right``."""
        return self.errors(self.evaluate(left, right))

    def surrogate(self):
        """``P_Omega(M) / p`` as a ``scipy.sparse.csr_array``, shape ``(m, n)``."""
        return scipy.sparse.csr_array((self.values / self.fraction, self.cols, self._indptr), shape=self.shape)

    def top_singular(self, k, seed=0):
        """Top ``k`` singular triplets of the surrogate by a truncated SVD (kept for smaller ``k``)."""
        if self._top is None or self._top[1].shape[0] < k:
            self._top = top_svd(self.surrogate(), k, seed)
        U, s, Vh = self._top
        return U[:, :k], s[:k], Vh[:k, :]

    def curvature(self, u, v):
        """``sum_k u_{i_k}^2 v_{j_k}^2 / |Omega|``, as :meth:`dlnref.MatrixCompletion.curvature`."""
        return float(u[self.rows] ** 2 @ v[self.cols] ** 2) / self.observed


def _product_norm(A, B):
    """``||A B||_F`` from thin QR factors: ``||R_A R_B^T||_F`` with ``A = Q_A R_A``, ``B^T = Q_B R_B``."""
    return float(np.linalg.norm(np.linalg.qr(A, mode="r") @ np.linalg.qr(B.T, mode="r").T))


def _difference_norm(left, right, A, B):
    """``||left @ right - A @ B||_F`` as ``||[left, -A] @ [right; B]||_F``, in ``O((m + n) (w + r)^2)``."""
    if right is None:
        return float(np.linalg.norm(left - A @ B))
    return _product_norm(np.hstack([left, -A]), np.vstack([right, B]))


def synthetic_completion(shape, rank, fraction, seed=0):
    """A completion problem at any size: a factored rank-``r`` target and uniformly sampled entries.

    Parameters
    ----------
    shape : tuple of int
        ``(m, n)``.
    rank : int
        ``r`` with ``2 r <= min(m, n)``.
    fraction : float in (0, 1]
        Observed fraction p; ``floor(p m n)`` entries are drawn without replacement.
    seed : int or numpy.random.SeedSequence

    Returns
    -------
    SparseCompletion
        With ``target_factors = (U diag(s), V^T)``.

    Notes
    -----
    ``U`` (m, r) and ``V`` (n, r) are Haar-random with orthonormal columns and
    ``s_k = (sqrt(m) + sqrt(n)) (1 - k / (2 r))``, k = 0..r-1: the top half of
    an ``(m, n)`` Gaussian matrix's spectrum, spread as the official code
    spreads it (:func:`dlnref.data.low_rank_matrix`), without its ``O(m n
    min(m, n))`` SVD. Memory and time are ``O(|Omega| + (m + n) r)``.
    """
    m, n = (check_int(f"shape[{i}]", s, 1) for i, s in enumerate(shape))
    rank = check_int("rank", rank, 1)
    if 2 * rank > min(m, n):
        raise ValueError(f"rank must satisfy 2 * rank <= min(m, n) = {min(m, n)}, got {rank}")
    fraction = check_fraction("fraction", fraction)
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(check_int("seed", seed, 0))
    target_rng, mask_rng = (np.random.default_rng(s) for s in seq.spawn(2))
    spectrum = (math.sqrt(m) + math.sqrt(n)) * (1 - np.arange(rank) / (2 * rank))
    A = _orthonormal(target_rng, m, rank) * spectrum
    B = _orthonormal(target_rng, n, rank).T
    rows, cols = sample_positions((m, n), math.floor(fraction * m * n), mask_rng)
    return SparseCompletion(rows, cols, gather_product(A, B, rows, cols), (m, n), target_factors=(A, B))


def sample_positions(shape, count, rng):
    """``count`` distinct positions of an ``(m, n)`` matrix, uniformly without replacement, in ``O(count)`` memory.

    Draws linear indices with replacement, drops repeats, tops up until
    ``count`` remain, then keeps a uniformly random ``count`` of them.
    """
    m, n = shape
    if count < 1:
        raise ValueError(f"the observed fraction of a {shape} matrix gives no entry; raise fraction")
    if count > m * n // 2:
        chosen = np.sort(rng.choice(m * n, size=count, replace=False))
    else:
        chosen = _distinct(rng.integers(0, m * n, size=count + count // 8 + 16))
        while len(chosen) < count:
            chosen = _distinct(np.concatenate([chosen, rng.integers(0, m * n, size=count - len(chosen) + 16)]))
        chosen = np.sort(rng.choice(chosen, size=count, replace=False))
    return chosen // n, chosen % n


def _distinct(x):
    """The distinct values of an int array, sorted (by sorting: faster than hashing at millions of values)."""
    x = np.sort(x)
    return x[np.concatenate(([True], x[1:] != x[:-1]))]
