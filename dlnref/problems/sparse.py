r"""Matrix completion from the observed entries alone: no ``m x n`` array is ever formed.

The problem holds the observed entries ``(i_k, j_k, M_{i_k j_k})``, k = 1..|Omega|,
of an ``(m, n)`` matrix ``M``. A DLN's end-to-end matrix arrives factored,
``X = left @ right`` (``left = W_L`` of shape ``(m, w)``, ``right = W_{L-1} ... W_1``
of shape ``(w, n)``), so the residual on the observed entries is

.. math::

    r_k = \mathrm{left}_{i_k,:}\, \mathrm{right}_{:,j_k} - M_{i_k j_k}, \qquad O(|\Omega|\, w),

and ``dLoss/dX = P_Omega(X - M) / |Omega|`` is a sparse matrix with the
values ``r / |Omega|``. Back-propagation multiplies it by thin matrices
(``scipy.sparse``), so a compressed step costs ``O(|Omega| w + (m + n) w^2)``.
The loss and the surrogate are those of :class:`dlnref.MatrixCompletion`; on
the same entries the two agree to rounding.

The ``O(|Omega| w)`` work (the residual and the two sparse products) runs on
threads: the entries are cut once into at most :data:`MAX_PARTS` runs of whole
rows, each run is one task, and partial results are combined in run order, so
the result does not depend on the number of threads (NumPy's gathers and
ufuncs and SciPy's sparse products release the GIL).

With numba installed (``pip install "dlnref[fast]"``), the engine "numba" makes
all of it in one compiled pass over each run (:mod:`dlnref.problems._sparse_kernel`),
on the same runs and threads; NumPy stays the reference and the fallback.
"""

import importlib
import math

import numpy as np
import scipy.sparse

from .. import data
from .._checks import check_fraction, check_int
from ..backend import top_svd
from ..data import Entries
from ..errors import InputError, InputTypeError
from ._threads import MAX_PARTS, PART_MIN_ENTRIES, by_parts, default_threads, in_parallel, row_parts
from .base import Evaluation, FactorGradients, Problem

#: Entries gathered per block when forming the residual: the temporary
#: ``(block, w)`` arrays then stay in cache (2^12 ran 1.3x faster than 2^14,
#: and 2^14 3x faster than 2^18, at w = 10).
GATHER_BLOCK = 1 << 12

#: Values of :attr:`SparseCompletion.engine`: "auto" is "numba" where numba imports, else "numpy".
ENGINES = ("auto", "numpy", "numba")


def as_entries(name, entries, shape):
    """Check ``(rows, cols, values)`` against ``shape`` and return them as :class:`Entries`."""
    if not isinstance(entries, tuple) or len(entries) != 3:
        raise InputTypeError(f"{name} must be a (rows, cols, values) triple, got {type(entries).__name__}")
    rows, cols, values = (np.asarray(a) for a in entries)
    if not (rows.ndim == cols.ndim == values.ndim == 1 and rows.shape == cols.shape == values.shape):
        raise InputError(f"{name}: rows, cols and values must be 1-D of one length, got shapes "
                         f"{rows.shape}, {cols.shape}, {values.shape}")
    if rows.size == 0:
        raise InputError(f"{name} must hold at least one entry, got none")
    for axis, index, size in (("rows", rows, shape[0]), ("cols", cols, shape[1])):
        if not np.issubdtype(index.dtype, np.integer):
            raise InputTypeError(f"{name}: {axis} must be integers, got dtype {index.dtype}")
        if index.min() < 0 or index.max() >= size:
            raise InputError(f"{name}: {axis} must lie in [0, {size}) for shape {shape}, "
                             f"got values from {index.min()} to {index.max()}")
    if not np.issubdtype(values.dtype, np.number) or not np.all(np.isfinite(values)):
        raise InputError(f"{name}: values must be finite numbers")
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
    out = np.empty(len(rows)) if out is None else out
    if scratch is None:
        scratch = np.empty((2, min(GATHER_BLOCK, len(rows)), left.shape[1]))
    return _row_dots(np.ascontiguousarray(left), np.ascontiguousarray(right.T), rows, cols, out, scratch)


def _row_dots(left, right_t, rows, cols, out, scratch):
    """``out_k = left[rows_k] @ right_t[cols_k]`` (C-ordered ``left``, ``right_t``), block by block.

    Each block's row dots are ``(a * b) @ 1``: a product in place and a
    matrix-vector product (41 ms per 2*10^6 entries at w = 10, gathers
    included, against 48 ms with ``einsum("ij,ij->i")``).
    """
    ones = np.ones(left.shape[1])
    block = scratch.shape[1]
    for start in range(0, len(rows), block):
        stop = min(start + block, len(rows))
        a = left.take(rows[start:stop], axis=0, out=scratch[0, :stop - start], mode="clip")  # methods: no wrappers
        b = right_t.take(cols[start:stop], axis=0, out=scratch[1, :stop - start], mode="clip")
        np.matmul(np.multiply(a, b, out=a), ones, out=out[start:stop])
    return out


class SparseCompletion(Problem):
    """Matrix completion from observed entries, never forming an ``(m, n)`` array (NumPy arrays only).

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
    threads : int or None
        Threads for the residual and the sparse products (also settable as the
        attribute ``threads``); None takes :func:`default_threads`. The results
        do not depend on it, bit for bit.
    engine : {"auto", "numpy", "numba"}
        What makes the residual and the gradient (also settable as the
        attribute ``engine``, which reads "numpy" or "numba"): NumPy gathers
        and SciPy products, or one compiled pass (the private ``_sparse_kernel``,
        ``pip install "dlnref[fast]"``), compiled or loaded from the disk cache
        when chosen. "auto" takes "numba" where numba imports. The two agree to
        rounding (about 1e-15 relative), not bit for bit: their sums run in
        other orders.

    Notes
    -----
    ``loss(X) = sum_k r_k^2 / (2 |Omega|)`` with ``r_k = X_{i_k j_k} - M_{i_k j_k}``,
    ``dLoss/dX = P_Omega(X - M) / |Omega|`` (sparse), surrogate ``P_Omega(M) / p``
    with ``p = |Omega| / (m n)``, as :class:`dlnref.MatrixCompletion`.
    ``errors`` gives:

    - ``recovery_error = ||X - M||_F / ||M||_F`` over all ``m n`` entries with
      ``target_factors``; without them, under the same name, the relative error
      over the observed entries Omega only, ``||r|| / ||P_Omega(M)||`` (the only
      entries known: for ratings, the training entries; a training error);
    - ``unobserved_error = ||P_Omega^c(X - M)||_F / ||P_Omega^c(M)||_F`` with
      ``target_factors``, from ``||P_Omega^c(R)||^2 = ||R||_F^2 - ||r||^2``;
    - ``validation_rmse``, ``test_rmse``: ``sqrt(mean((X - M)^2))`` over those entries.
    """

    name = "completion"
    backend = "numpy"

    def __init__(self, rows, cols, values, shape, target_factors=None, validation=None, test=None, threads=None,
                 engine="auto"):
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
            raise InputError(f"observed entries must not repeat a position, got ({self.rows[k]}, {self.cols[k]}) twice")
        self._indptr = np.searchsorted(self.rows, np.arange(m + 1)).astype(np.int64)
        self._parts = row_parts(self._indptr, min(MAX_PARTS, max(1, self.observed // PART_MIN_ENTRIES)))
        self.threads = default_threads() if threads is None else threads
        self.engine = engine
        self.fraction = self.observed / (m * n)
        self._values_norm = float(np.linalg.norm(self.values))
        if self._values_norm == 0:
            raise InputError("observed values must not all be zero: the relative errors are undefined")
        self.held_out = {name: as_entries(name, e, self.shape)
                         for name, e in (("validation", validation), ("test", test)) if e is not None}
        self.target_factors = None
        self._top, self._buffers = None, {}
        if target_factors is not None:
            A, B = (np.asarray(f, dtype=np.float64) for f in target_factors)
            if A.ndim != 2 or B.ndim != 2 or A.shape[0] != m or B.shape[1] != n or A.shape[1] != B.shape[0]:
                raise InputError(f"target_factors must be (A, B) with A of shape ({m}, r) and B of shape (r, {n}), "
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
    def threads(self):
        """Threads that :meth:`evaluate` and the gradient's products use (at most one per run of rows)."""
        return self._threads

    @threads.setter
    def threads(self, value):
        self._threads = check_int("threads", value, 1)

    @property
    def engine(self):
        """"numpy" or "numba": what :meth:`evaluate` makes the residual and the gradient with."""
        return "numpy" if self._kernel is None else "numba"

    @engine.setter
    def engine(self, value):
        self._kernel = _kernel(value)

    @property
    def rank(self):
        """Rank of the target, known only from ``target_factors`` (None without them)."""
        if self.target_factors is None:
            return None
        return int(np.linalg.matrix_rank(self.target_factors[0] @ (self.target_factors[1] @ self.target_factors[1].T)))

    @classmethod
    def synthetic(cls, shape, rank, seed=0, fraction=0.3, threads=None, engine="auto"):
        """:func:`synthetic_completion`: a factored target and uniformly sampled entries."""
        return synthetic_completion(shape, rank, fraction, seed=seed, threads=threads, engine=engine)

    @classmethod
    def memory_entries(cls, shape, fraction=0.3):
        """About 4 numbers per observed entry."""
        return 4 * math.floor(fraction * shape[0] * shape[1])

    def evaluate(self, left, right=None, factored=False, record=True):
        """Loss and sparse ``dLoss/dX`` at ``X = left @ right`` from the observed entries (see the class Notes).

        With ``factored`` and ``right``, the gradient comes as
        :class:`dlnref.problems.FactorGradients` ``(G right^T, left^T G)``, its
        two sparse products made by runs of rows on :attr:`threads`
        (:func:`gradient_times`, :func:`times_gradient`, or the kernel's
        passes with :attr:`engine` "numba"); else as a ``scipy.sparse.csr_array``.
        ``record`` is accepted for the problems' common interface (``errors``
        reads only the factors).
        """
        if (left.shape[0], (left if right is None else right).shape[1]) != self.shape:
            raise InputError(f"left @ right must have the problem's shape {self.shape}")
        k = self.observed
        residual, data = self._buffer("residual", (k,)), self._buffer("gradient", (k,))  # kept across evaluations
        factors = None
        if right is None:
            np.subtract(left[self.rows, self.cols], self.values, out=residual)
            np.multiply(residual, 1 / k, out=data)
            squares = [residual @ residual]
        elif self._kernel is not None:
            squares, factors = self._kernel_runs(left, right, residual, data, factored)
        else:
            squares = self._residual_runs(left, right, residual, data)
        gradient = scipy.sparse.csr_array((data, self.cols, self._indptr), shape=self.shape, copy=False)
        if factored and right is not None:
            bounds = self._parts, self.threads
            gradient = factors or FactorGradients(gradient_times(gradient, right.T, *bounds),
                                                  times_gradient(left.T, gradient, *bounds))
        return Evaluation(math.fsum(squares) / (2 * k), gradient, left, right)

    def _residual_runs(self, left, right, residual, data):
        """``||r||^2`` over each run of rows, writing ``r`` into ``residual`` and ``r / |Omega|`` into ``data``."""
        left, right_t = np.ascontiguousarray(left), np.ascontiguousarray(right.T)  # row gathers want C order
        k = self.observed
        scratch = [self._buffer(f"scratch{t}", (2, min(GATHER_BLOCK, k), left.shape[1]))
                   for t in range(min(self.threads, len(self._parts) - 1))]

        def run(start, stop, worker):  # entries start:stop, on the worker's scratch
            r = _row_dots(left, right_t, self.rows[start:stop], self.cols[start:stop], residual[start:stop],
                          scratch[worker])
            np.subtract(r, self.values[start:stop], out=r)
            np.multiply(r, 1 / k, out=data[start:stop])  # as MatrixCompletion (a product is faster than /)
            return r @ r

        return by_parts(self.threads, self._indptr[self._parts], run)

    def _kernel_runs(self, left, right, residual, data, factored):
        """Engine "numba": ``||r||^2`` over each run of rows and, with ``factored``, the factor gradients (else None).

        Each run writes its rows of ``G right^T`` and its own partial
        ``(left^T G)^T``; the partials are summed in run order, so the result
        does not depend on :attr:`threads`, bit for bit.
        """
        left, right_t = np.ascontiguousarray(left), np.ascontiguousarray(right.T)
        (m, w), n = left.shape, right_t.shape[0]
        left_grad = np.empty((m, w) if factored else (0, w))

        def run(a, b, worker):  # rows a:b, into their rows of left_grad and their own partial
            partial = np.zeros((n, w) if factored else (0, w))
            squares = self._kernel.run_of_rows(left, right_t, self.cols, self.values, self._indptr, a, b,
                                               1 / self.observed, residual, data, left_grad, partial)
            return squares, partial

        runs = by_parts(self.threads, self._parts, run)
        right_grad_t = runs[0][1]
        for _, partial in runs[1:]:
            right_grad_t += partial
        return [squares for squares, _ in runs], FactorGradients(left_grad, right_grad_t.T) if factored else None

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

    def recovery_error(self, X):
        """The relative recovery error at a dense ``X``; which entries it covers depends on ``target_factors``.

        With ``target_factors``, ``||X - M||_F / ||M||_F`` over all ``m n`` entries. Without them (ratings,
        or any problem built from entries alone) ``M`` is known only on Omega, and the same name holds
        ``||P_Omega(X - M)||_F / ||P_Omega(M)||_F``: over the observed entries this problem trains on (for
        ratings, the training entries, without the validation and test ones), which is a training error.
        """
        return self.errors_at(X)["recovery_error"]

    def errors(self, evaluation):
        """The recorded error measures at an evaluation (see the class Notes), as floats."""
        left, right = evaluation.left, evaluation.right
        observed = math.sqrt(2 * self.observed * float(evaluation.loss))  # ||r||, as loss = ||r||^2 / (2 |Omega|)
        row = {}
        if self.target_factors is None:
            row["recovery_error"] = observed / self._values_norm
        else:
            total = _difference_norm(left, right, *self.target_factors, min(self.threads, len(self._parts) - 1))
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


def _kernel(engine):
    """:mod:`dlnref.problems._sparse_kernel`, compiled, for ``engine`` "numba" (or "auto" where numba imports); else None."""
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(map(repr, ENGINES))}, got {engine!r}")
    if engine == "numpy":
        return None
    try:
        kernel = importlib.import_module("dlnref.problems._sparse_kernel")
    except ImportError as error:
        if engine == "auto":
            return None
        raise InputError(f'engine="numba" needs numba, which did not import ({error}): '
                         'pip install "dlnref[fast]"') from error
    kernel.warm_up()
    return kernel


def gradient_times(G, B, parts, threads):
    """``G @ B`` for a CSR ``G`` (m, n) and a dense ``B`` (n, w), by runs of rows on threads.

    With the runs ``G_t = G[a_t:a_{t+1}]`` (``parts`` = ``a``, whole rows),
    ``G B = [G_1 B; ...; G_P B]``: each run is one task.
    """
    B = np.ascontiguousarray(B)  # else SciPy copies it once per run
    out = np.empty((G.shape[0], B.shape[1]))

    def rows_times(a, b, worker):  # out[a:b] = G[a:b] @ B
        out[a:b] = _rows(G, a, b) @ B

    by_parts(threads, parts, rows_times)
    return out


def times_gradient(A, G, parts, threads):
    """``A @ G`` for a dense ``A`` (w, m) and a CSR ``G`` (m, n), by runs of rows on threads.

    ``A G = sum_t A[:, a_t:a_{t+1}] G_t``, one task a run, summed in run order:
    the result does not depend on ``threads``, bit for bit.
    """
    A = np.asfortranarray(A)  # its column runs, transposed, are then C-ordered: no copy in SciPy

    def times_rows(a, b, worker):  # A[:, a:b] @ G[a:b] = (G[a:b].T @ A[:, a:b].T).T
        return (_rows(G, a, b, scipy.sparse.csc_array) @ A[:, a:b].T).T

    partials = by_parts(threads, parts, times_rows)
    for partial in partials[1:]:
        partials[0] += partial
    return partials[0]


def _rows(G, a, b, kind=scipy.sparse.csr_array):
    """``G[a:b]`` on ``G``'s own entries, no copy (``G[a:b].T`` with ``kind=csc_array``).

    SciPy's constructor copies a view of a much larger array ("prune"), so
    the arrays are set after constructing an empty matrix of the shape.
    """
    start, stop = G.indptr[a], G.indptr[b]
    rows = kind((b - a, G.shape[1]) if kind is scipy.sparse.csr_array else (G.shape[1], b - a))
    rows.data, rows.indices = G.data[start:stop], G.indices[start:stop]
    rows.indptr = G.indptr[a:b + 1] - start
    return rows


def _product_norm(A, B, threads=1):
    """``||A B||_F`` from thin QR factors: ``||R_A R_B^T||_F`` with ``A = Q_A R_A``, ``B^T = Q_B R_B``.

    With ``threads > 1`` the two QRs run at once.
    """
    calls = [lambda: np.linalg.qr(A, mode="r"), lambda: np.linalg.qr(B.T, mode="r")]
    R_A, R_B = in_parallel(calls) if threads > 1 else [call() for call in calls]
    return float(np.linalg.norm(R_A @ R_B.T))


def _difference_norm(left, right, A, B, threads=1):
    """``||left @ right - A @ B||_F`` as ``||[left, -A] @ [right; B]||_F``, in ``O((m + n) (w + r)^2)``."""
    if right is None:
        return float(np.linalg.norm(left - A @ B))
    return _product_norm(np.hstack([left, -A]), np.vstack([right, B]), threads)


def synthetic_completion(shape, rank, fraction, seed=0, threads=None, engine="auto"):
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
    threads, engine
        As for :class:`SparseCompletion`.

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
        raise InputError(f"rank must satisfy 2 * rank <= min(m, n) = {min(m, n)}, got {rank}")
    fraction = check_fraction("fraction", fraction)
    target_rng, mask_rng = data.problem_streams(seed)
    spectrum = (math.sqrt(m) + math.sqrt(n)) * (1 - np.arange(rank) / (2 * rank))
    A = data.haar_orthonormal(target_rng, m, rank) * spectrum
    B = data.haar_orthonormal(target_rng, n, rank).T
    rows, cols = sample_positions((m, n), math.floor(fraction * m * n), mask_rng)
    return SparseCompletion(rows, cols, gather_product(A, B, rows, cols), (m, n), target_factors=(A, B),
                            threads=threads, engine=engine)


def sample_positions(shape, count, rng):
    """``count`` distinct positions of an ``(m, n)`` matrix, uniformly without replacement, in ``O(count)`` memory.

    Draws linear indices with replacement, drops repeats, tops up until
    ``count`` remain, then keeps a uniformly random ``count`` of them.
    """
    m, n = shape
    if count < 1:
        raise InputError(f"the observed fraction of a {shape} matrix gives no entry; raise fraction")
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
