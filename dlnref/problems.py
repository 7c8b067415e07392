"""The three low-rank recovery problems of the paper.

Each problem holds a target ``M`` of shape ``(m, n)`` and measures a candidate
end-to-end matrix ``X`` of the same shape. All share one interface:

- ``loss(X)``: the training loss, with the official code's normalisation;
- ``gradient(X)``: ``dLoss/dX``, shape ``(m, n)``;
- ``loss_and_gradient(X)``: both, from one residual;
- ``evaluate(left, right)``: the training step's call, the loss and
  ``dLoss/dX`` at ``X = left @ right`` as an :class:`Evaluation` (with
  ``factored=True``, the gradients with respect to ``left`` and ``right``
  instead, :class:`FactorGradients`), and ``errors(evaluation)``: the
  recorded error measures there;
- ``recovery_error(X)``: ``||X - M||_F / ||M||_F`` over all entries;
- ``surrogate()``: the matrix whose top singular vectors seed the compressed
  network (see :func:`dlnref.compress`);
- ``metrics(X)``: problem-specific numbers recorded during training;
- ``top_singular(k)`` and ``curvature(u, v)``: what the spectral init and the
  automatic step size (:func:`dlnref.train.auto_lr`) read.

:class:`dlnref.sparse.SparseCompletion` answers the same calls from the
observed entries alone.

A problem knows nothing about networks; :mod:`dlnref.train` joins the two.
"""

import dataclasses
import functools
import math
from typing import NamedTuple

import numpy as np
import scipy.linalg.blas

from . import data
from ._checks import check_array, check_int, check_matrix, check_shape
from .backend import array_namespace, is_numpy, svd, to_backend, top_svd
from .errors import InputError, InputTypeError
from .network import FactorGradients


@dataclasses.dataclass
class Evaluation:
    """A problem evaluated at one end-to-end matrix ``X``, by ``problem.evaluate``.

    Attributes
    ----------
    loss : 0-d array
        The training loss at ``X``.
    gradient : array or scipy.sparse array, shape (m, n)
        ``dLoss/dX`` at ``X`` (sparse for :class:`dlnref.sparse.SparseCompletion`).
    state : object
        What the problem's ``errors`` reads (the residual, say). On NumPy,
        ``evaluate`` writes the residual and the gradient into buffers that the
        next ``evaluate`` overwrites: use them before calling it again.
    """

    loss: object
    gradient: object
    state: object


class ResidualNorms(NamedTuple):
    """Squared norms of parts of the residual ``R = X - M``, summed block by block (:class:`MatrixCompletion`).

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


def _frobenius(xp, x):
    """``||x||_F`` as a 0-d array."""
    return xp.sqrt(_inner(xp, x, x))


def _inner(xp, a, b):
    """Frobenius inner product ``<a, b> = sum_ij a_ij b_ij`` as a 0-d array (one fused pass)."""
    return xp.vecdot(xp.reshape(a, (-1,)), xp.reshape(b, (-1,)))


def _count_true(xp, mask):
    """Number of True entries of a boolean array, as an int."""
    return int(xp.sum(xp.astype(mask, xp.int64)))


class RecoveryProblem:
    """Common part of the recovery problems: the target and the error measures.

    Parameters
    ----------
    target : array, shape (m, n)
        The matrix ``M`` to recover; finite, floating, not all zero.
    backend : str or None
        If given, host inputs are moved to this backend; None keeps the
        inputs' own backend.
    """

    name = "recovery"

    def __init__(self, target, backend=None):
        self.backend = backend
        check_array("target", target)
        target = self._on_backend(target)
        self.xp = array_namespace(target)
        check_matrix("target", target, self.xp)
        self.target = target
        self.shape = tuple(target.shape)
        self._target_norm = _frobenius(self.xp, target)
        if float(self._target_norm) == 0:
            raise InputError("target must not be all zeros: the relative recovery error is undefined")

    def _on_backend(self, x):
        return x if self.backend is None else to_backend(x, self.backend)

    @property
    def entries_per_step(self):
        """Array entries that one loss-and-gradient evaluation reads (``m n`` here)."""
        return self.shape[0] * self.shape[1]

    def _check_X(self, X):
        check_shape("X", X, self.shape)
        array_namespace(X, self.target)

    def loss(self, X):
        """Training loss at ``X`` (a 0-d array)."""
        return self.loss_and_gradient(X)[0]

    def gradient(self, X):
        """``dLoss/dX`` at ``X``, shape ``(m, n)``."""
        return self.loss_and_gradient(X)[1]

    def loss_and_gradient(self, X):
        """Loss (0-d array) and ``dLoss/dX`` (shape ``(m, n)``) at ``X``."""
        self._check_X(X)
        evaluation = self._evaluate(X)
        return evaluation.loss, evaluation.gradient

    def evaluate(self, left, right=None, factored=False, record=True):
        """Loss and ``dLoss/dX`` at ``X = left @ right`` (``X = left`` when ``right`` is None).

        The one call of a training step (:func:`dlnref.train.gradient_step`).
        The backends of ``left`` and ``right`` are not checked here, only the
        shape of ``X``; :func:`dlnref.gradient_descent` checks the rest once.

        Parameters
        ----------
        left : array, shape (m, k)
        right : array, shape (k, n), or None
        factored : bool
            With ``right``, return the gradients with respect to the factors,
            ``FactorGradients(G @ right^T, left^T @ G)``, in place of ``G``:
            all that back-propagation needs. A problem may then avoid
            forming ``G`` (:class:`MatrixCompletion` does, for thin factors).
        record : bool
            False when ``errors`` will not be asked for this evaluation (a
            training step that records no row): a problem may then skip what
            only ``errors`` reads (:class:`MatrixCompletion`'s fused step does).

        Returns
        -------
        Evaluation
        """
        self._check_factors(left, right)
        if right is None or not is_numpy(self.xp):
            evaluation = self._evaluate(left if right is None else left @ right)
        else:
            evaluation = self._evaluate(np.matmul(left, right, out=self._buffer("X")), self._buffer)
        if factored and right is not None:
            G = evaluation.gradient
            evaluation.gradient = FactorGradients(G @ right.T, left.T @ G)
        return evaluation

    def _check_factors(self, left, right):
        shape = (left.shape[0], (left if right is None else right).shape[1])
        if shape != self.shape:
            raise InputError(f"left @ right must have the problem's shape {self.shape}, got {shape}")

    def _buffer(self, name, shape=None):
        """An array (``(m, n)`` by default) kept across evaluations (NumPy): the step overwrites it instead of allocating."""
        buffers = self.__dict__.setdefault("_buffers", {})
        shape = self.shape if shape is None else shape
        if name not in buffers or buffers[name].shape != shape:
            buffers[name] = np.empty(shape, dtype=self.target.dtype)
        return buffers[name]

    def errors(self, evaluation):
        """The recorded error measures at an :class:`Evaluation` of this problem.

        Returns
        -------
        dict of str -> float
            ``recovery_error`` and the problem's ``metrics``.
        """
        residual = self._residual(evaluation)
        row = {"recovery_error": float(self._recovery_error(residual))}
        row.update({name: float(value) for name, value in self._metrics(residual).items()})
        return row

    def _residual(self, evaluation):
        """``X - M`` at an evaluation (subclasses keep it as the state)."""
        return evaluation.state

    def top_singular(self, k, seed=0):
        """Top ``k`` singular triplets ``(U, s, Vh)`` of ``surrogate()`` (see :func:`dlnref.backend.top_svd`)."""
        return top_svd(self.surrogate(), k, seed)

    def curvature(self, u, v):
        """Second derivative of the loss along the unit rank-one direction ``u v^T``.

        Parameters
        ----------
        u : array, shape (m,)
        v : array, shape (n,)
            Unit vectors.

        Returns
        -------
        float
            ``d^2/dt^2 loss(X + t u v^T)``, the same at every ``X`` (the loss is
            quadratic): ``||u v^T||^2`` under the loss's quadratic form.
        """
        raise NotImplementedError

    def recovery_error(self, X):
        """Relative recovery error ``||X - M||_F / ||M||_F`` (0-d array)."""
        self._check_X(X)
        return self._recovery_error(X - self.target)

    def metrics(self, X):
        """Extra numbers to record at ``X``: a dict of name -> 0-d array."""
        self._check_X(X)
        return self._metrics(X - self.target)

    def _recovery_error(self, residual):
        return _frobenius(self.xp, residual) / self._target_norm

    def _metrics(self, residual):
        """The extra numbers from the residual ``X - M`` (none here)."""
        return {}

    @functools.cached_property
    def rank(self):
        """Numerical rank of the target: singular values above ``max(m, n) * eps * s_1``."""
        s = svd(self.target)[1]
        tol = max(self.shape) * self.xp.finfo(self.target.dtype).eps * s[0]
        return _count_true(self.xp, s > tol)

    def surrogate(self):
        raise NotImplementedError


class MatrixFactorization(RecoveryProblem):
    """Deep matrix factorization: fit every entry of ``M``.

    Parameters
    ----------
    target : array, shape (m, n)
    backend : str or None
        Move host inputs to this backend (None: keep theirs).

    Notes
    -----
    ``loss(X) = ||X - M||_F^2 / (2 m n)``, ``dLoss/dX = (X - M) / (m n)``.
    Surrogate: ``M`` itself.
    """

    name = "factorization"

    def _evaluate(self, X, buffer=None):
        size = self.shape[0] * self.shape[1]
        if buffer is None:
            residual = X - self.target
            gradient = residual / size
        else:  # X is a buffer of ours: R = X - M in place, G into a second buffer
            residual = X
            residual -= self.target
            gradient = np.divide(residual, size, out=buffer("gradient"))
        return Evaluation(_inner(self.xp, residual, residual) / (2 * size), gradient, residual)

    def surrogate(self):
        """``M``, shape ``(m, n)``."""
        return self.target

    def curvature(self, u, v):
        """``||u v^T||_F^2 / (m n) = 1 / (m n)``."""
        return 1 / (self.shape[0] * self.shape[1])


#: A row block of the fused completion step (:meth:`MatrixCompletion.evaluate`
#: with thin factors) holds about this many bytes, so that its residual stays
#: in cache while it is reused; 2^19 was fastest of 2^17 .. 2^21 at d = 1000 and 2000.
FUSED_BLOCK_BYTES = 1 << 19

#: The fused step applies to factors at most this wide (the compressed
#: network's ``2 r``); wider ones are the wide network's GEMMs, fastest whole.
FUSED_MAX_WIDTH = 64

#: ... and to problems of at least this many entries: below it the whole
#: residual fits in cache, and the paper's d = 100 runs keep the official
#: code's order of operations.
FUSED_MIN_ENTRIES = 1 << 18


class MatrixCompletion(RecoveryProblem):
    """Matrix completion: fit the observed entries ``Omega`` of ``M``.

    Parameters
    ----------
    target : array, shape (m, n)
    mask : array of bool, shape (m, n)
        True where an entry is observed; at least one must be.
    test_mask : array of bool, shape (m, n), optional
        Held-out entries with known values (real data, where the target is
        known only there and on ``mask``); adds ``test_rmse`` to ``metrics``.
    backend : str or None
        Move host inputs to this backend (None: keep theirs).

    Notes
    -----
    With ``P_Omega`` zeroing the unobserved entries,
    ``loss(X) = ||P_Omega(X - M)||_F^2 / (2 |Omega|)`` and
    ``dLoss/dX = P_Omega(X - M) / |Omega|``.
    Surrogate: ``P_Omega(M) / p`` with ``p = |Omega| / (m n)``, an unbiased
    estimate of ``M`` under uniform sampling.
    ``metrics`` adds ``unobserved_error = ||P_Omega^c(X - M)||_F / ||P_Omega^c(M)||_F``,
    the error on the entries training never saw (absent when all are observed),
    and with a ``test_mask`` T, ``test_rmse = sqrt(||P_T(X - M)||_F^2 / |T|)``.
    """

    name = "completion"

    def __init__(self, target, mask, test_mask=None, backend=None):
        super().__init__(target, backend)
        target, mask, xp = self.target, self._check_mask("mask", mask), self.xp
        self.mask = mask
        self.observed = _count_true(xp, mask)
        if self.observed == 0:
            raise InputError("mask must observe at least one entry, got an all-False mask")
        self.fraction = self.observed / (self.shape[0] * self.shape[1])
        self._weight = xp.astype(mask, target.dtype)
        self._gradient_weight = self._weight / self.observed
        self._unobserved_weight = 1 - self._weight
        self._unobserved_norm = _frobenius(xp, self._unobserved_weight * target)
        self._has_unobserved = self.observed < self.shape[0] * self.shape[1] and float(self._unobserved_norm) > 0
        self.test_mask = None if test_mask is None else self._check_mask("test_mask", test_mask)
        if self.test_mask is not None:
            self.tested = _count_true(xp, self.test_mask)
            if self.tested == 0:
                raise InputError("test_mask must hold at least one entry, got an all-False mask")
            overlap = _count_true(xp, self.test_mask & mask)
            if overlap:
                raise InputError(f"test_mask must not overlap mask: {overlap} entries are in both; "
                                 "held-out entries must be unseen in training (pass test_mask & ~mask)")
            self._test_weight = xp.astype(self.test_mask, target.dtype)

    def _check_mask(self, name, mask):
        check_array(name, mask)
        mask = self._on_backend(mask)
        if getattr(mask, "dtype", None) != self.xp.bool:
            raise InputTypeError(f"{name} must be a boolean array, got dtype {getattr(mask, 'dtype', type(mask))}")
        check_shape(name, mask, self.shape)
        array_namespace(mask, self.target)
        return mask

    def _evaluate(self, X, buffer=None):
        if buffer is None:
            residual = X - self.target
            gradient = self._gradient_weight * residual  # P_Omega(R) / |Omega|: _gradient_weight = mask / |Omega|
        else:  # X is a buffer of ours: R = X - M in place, G into a second buffer (3 passes over m x n with X's GEMM)
            residual = X
            residual -= self.target
            gradient = np.multiply(self._gradient_weight, residual, out=buffer("gradient"))
        # <G, R> / 2 = ||P_Omega(R)||^2 / (2 |Omega|), because the mask is 0/1 (mask^2 = mask)
        return Evaluation(_inner(self.xp, gradient, residual) / 2, gradient, residual)

    def evaluate(self, left, right=None, factored=False, record=True):
        """As :meth:`RecoveryProblem.evaluate`; with ``factored`` and thin factors on NumPy, one fused pass.

        When ``right`` is given, ``factored`` is True, ``k <= FUSED_MAX_WIDTH``
        and ``m n >= FUSED_MIN_ENTRIES``, ``X`` and ``G`` are never formed: see
        :meth:`_evaluate_fused`. The evaluation's ``state`` is then a
        :class:`ResidualNorms` (None with ``record=False``), which :meth:`errors` reads.
        """
        if not (factored and right is not None and is_numpy(self.xp) and left.shape[1] <= FUSED_MAX_WIDTH
                and self.shape[0] * self.shape[1] >= FUSED_MIN_ENTRIES):
            return super().evaluate(left, right, factored)
        self._check_factors(left, right)
        return self._evaluate_fused(left, right, record)

    def _evaluate_fused(self, left, right, record=True):
        """Loss, factor gradients and residual norms at ``X = left @ right``, one block of rows at a time.

        For each block ``B`` of rows (about ``FUSED_BLOCK_BYTES``), with
        ``R_B = left_B @ right - M_B`` and ``Z_B = P_Omega(R_B)``:

        .. math::

            loss = sum_B ||Z_B||^2 / (2 |Omega|),
            G right^T = [Z_B right^T]_B / |Omega|,
            left^T G = sum_B left_B^T Z_B / |Omega|,

        and, with ``record``, the norms of ``R``, ``P_Omega^c(R) = R - Z`` and
        ``P_T(R - Z)`` for :meth:`errors`. A block stays in cache from its GEMM
        to its last use, so the step reads ``M`` and the mask once each from
        memory, where the unfused step (``X``, then ``R``, ``G``, ``<G, R>``,
        ``G right^T``, ``left^T G``) passes over ``m x n`` arrays about 12
        times. Without ``record``, ``Z_B = P_Omega(X_B) - P_Omega(M)_B`` from
        the kept masked target: the same numbers (the mask is 0 or 1), two
        fewer passes over the block.

        Parameters
        ----------
        left : array, shape (m, k)
        right : array, shape (k, n)
        record : bool

        Returns
        -------
        Evaluation
            ``gradient`` a :class:`FactorGradients`, ``state`` a :class:`ResidualNorms` (None without ``record``).
        """
        (m, n), k = self.shape, left.shape[1]
        rows = max(1, FUSED_BLOCK_BYTES // (self.target.itemsize * n))
        residual, masked = self._buffer("block residual", (rows, n)), self._buffer("block masked", (rows, n))
        right_t = np.ascontiguousarray(right.T)
        left_grad = np.empty((m, k), dtype=self.target.dtype)
        right_grad = np.zeros((k, n), dtype=self.target.dtype, order="F")  # gemm accumulates into it in place
        gemm = scipy.linalg.blas.get_blas_funcs("gemm", (right_grad,))
        observed = unobserved = test = 0.0
        for start in range(0, m, rows):
            block = slice(start, min(start + rows, m))
            r = np.matmul(left[block], right, out=residual[:block.stop - start])      # X_B
            if record:
                r -= self.target[block]                                               # R_B
                z = np.multiply(self.mask[block], r, out=masked[:block.stop - start])    # Z_B = P_Omega(R_B)
            else:
                z = np.multiply(self.mask[block], r, out=r)                           # P_Omega(X_B)
                z -= self._masked_target[block]                                       # Z_B
            observed += np.vdot(z, z)
            np.matmul(z, right_t, out=left_grad[block])                               # Z_B right^T
            gemm(1.0, left[block].T, z.T, beta=1.0, c=right_grad, trans_b=1, overwrite_c=1)  # += left_B^T Z_B
            if record:
                r -= z                                                                # P_Omega^c(R_B)
                unobserved += np.vdot(r, r)
                if self.test_mask is not None:
                    t = np.multiply(self._test_weight[block], r, out=z)             # P_T(R_B): T lies outside Omega
                    test += np.vdot(t, t)
        left_grad /= self.observed
        right_grad /= self.observed
        norms = ResidualNorms(float(observed + unobserved), float(unobserved), float(test)) if record else None
        return Evaluation(np.asarray(observed / (2 * self.observed)), FactorGradients(left_grad, right_grad), norms)

    @functools.cached_property
    def _masked_target(self):
        """``P_Omega(M)``, shape ``(m, n)``, for the fused step without ``record``."""
        return self._weight * self.target

    def errors(self, evaluation):
        """As :meth:`RecoveryProblem.errors`; from the :class:`ResidualNorms` of a fused evaluation too."""
        norms = evaluation.state
        if norms is None:
            raise InputError("this evaluation was made with record=False, which skips the residual norms that "
                             "errors reads; evaluate with record=True")
        if not isinstance(norms, ResidualNorms):
            return super().errors(evaluation)
        row = {"recovery_error": math.sqrt(norms.total) / float(self._target_norm)}
        if self._has_unobserved:
            row["unobserved_error"] = math.sqrt(norms.unobserved) / float(self._unobserved_norm)
        if self.test_mask is not None:
            row["test_rmse"] = math.sqrt(norms.test / self.tested)
        return row

    def curvature(self, u, v):
        """``||P_Omega(u v^T)||_F^2 / |Omega| = sum_{(i, j) in Omega} u_i^2 v_j^2 / |Omega|``."""
        return float(u**2 @ self._gradient_weight @ v**2)

    def unobserved_error(self, X):
        """``||P_Omega^c(X - M)||_F / ||P_Omega^c(M)||_F`` (0-d array)."""
        self._check_X(X)
        return self._unobserved_error(X - self.target)

    def test_rmse(self, X):
        """Root-mean-square error on the test entries (0-d array); needs a ``test_mask``."""
        if self.test_mask is None:
            raise InputError("test_rmse needs a problem built with a test_mask")
        self._check_X(X)
        return self._test_rmse(X - self.target)

    def _unobserved_error(self, residual):
        return _frobenius(self.xp, self._unobserved_weight * residual) / self._unobserved_norm

    def _test_rmse(self, residual):
        return _frobenius(self.xp, self._test_weight * residual) / self.tested**0.5

    def _metrics(self, residual):
        """``unobserved_error`` (unless every entry is observed) and ``test_rmse`` (with a test mask)."""
        extra = {}
        if self._has_unobserved:
            extra["unobserved_error"] = self._unobserved_error(residual)
        if self.test_mask is not None:
            extra["test_rmse"] = self._test_rmse(residual)
        return extra

    def surrogate(self):
        """``P_Omega(M) / p``, shape ``(m, n)``."""
        return self._weight * self.target / self.fraction


class MatrixSensing(RecoveryProblem):
    """Matrix sensing: fit linear measurements ``y_i = <A_i, M>``.

    Parameters
    ----------
    target : array, shape (d1, d2)
    operators : array, shape (m, d1, d2)
        The sensing matrices ``A_1, ..., A_m``.
    backend : str or None
        Move host inputs to this backend (None: keep theirs).

    Notes
    -----
    ``loss(X) = sum_i (<A_i, X> - y_i)^2 / 2`` and
    ``dLoss/dX = sum_i (<A_i, X> - y_i) A_i``.
    Surrogate: ``sum_i y_i A_i`` (only its singular vectors are used). With
    i.i.d. N(0, 1/m) operators it is an unbiased estimate of ``M``.
    The operators are stored flattened, ``A`` of shape ``(m, d1 d2)`` in
    row-major order, so one step costs two matrix-vector products with ``A``.
    """

    name = "sensing"

    def __init__(self, target, operators, backend=None):
        super().__init__(target, backend)
        check_array("operators", operators)
        target, operators, xp = self.target, self._on_backend(operators), self.xp
        if getattr(operators, "ndim", None) != 3:
            raise InputError(f"operators must have shape (m, {self.shape[0]}, {self.shape[1]}), got {getattr(operators, 'shape', None)}")
        check_shape("operators", operators, (operators.shape[0], *self.shape))
        if operators.shape[0] == 0:
            raise InputError(f"operators must hold at least one sensing matrix, got the empty shape {tuple(operators.shape)}")
        check_matrix("operators (flattened)", xp.reshape(operators, (operators.shape[0], -1)), xp)
        array_namespace(operators, target)
        self.operators = operators
        self._flat = xp.reshape(operators, (operators.shape[0], -1))
        self.measurements = self._measure(target)

    @property
    def entries_per_step(self):
        """Array entries that one loss-and-gradient evaluation reads: ``m d1 d2``, twice."""
        return 2 * self._flat.shape[0] * self._flat.shape[1]

    def _measure(self, X):
        """``A(X)_i = <A_i, X>``, shape (m,)."""
        return self._flat @ self.xp.reshape(X, (-1,))

    def _adjoint(self, r):
        """``A^*(r) = sum_i r_i A_i``, shape (d1, d2)."""
        return self.xp.reshape(r @ self._flat, self.shape)

    def _evaluate(self, X, buffer=None):
        residual = self._measure(X) - self.measurements
        return Evaluation(_inner(self.xp, residual, residual) / 2, self._adjoint(residual), X)

    def _residual(self, evaluation):
        return evaluation.state - self.target

    def surrogate(self):
        """``sum_i y_i A_i``, shape ``(d1, d2)``."""
        return self._adjoint(self.measurements)

    def curvature(self, u, v):
        """``||A(u v^T)||^2 = sum_i (u^T A_i v)^2``."""
        xp = self.xp
        return float(xp.sum(self._measure(xp.reshape(u, (-1, 1)) * xp.reshape(v, (1, -1))) ** 2))


def make_problem(name, shape, rank, *, fraction=0.3, measurements=None, seed=0, backend=None):
    """Build one of the paper's synthetic problems from a single seed.

    Parameters
    ----------
    name : {"factorization", "completion", "sensing"}
    shape : tuple of int
        ``(m, n)`` of the target.
    rank : int
        Rank of the target, drawn with :func:`dlnref.data.low_rank_matrix`
        (spread spectrum).
    fraction : float
        Observed fraction (completion only).
    measurements : int or None
        Number of sensing operators (sensing only); None means ``5 r (m + n)``.
    seed : int or numpy.random.SeedSequence
        The target, the mask and the operators come from independent child
        streams of this seed.
    backend : str or None

    Returns
    -------
    RecoveryProblem
    """
    if name not in PROBLEMS:
        raise InputError(f"problem must be one of {tuple(PROBLEMS)}, got {name!r}")
    if isinstance(shape, str) or not hasattr(shape, "__len__") or len(shape) != 2:
        raise InputTypeError(f"shape must be a pair (m, n), got {shape!r}; for a square d x d target pass (d, d)")
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(check_int("seed", seed, 0))
    target_seed, side_seed = (np.random.default_rng(s) for s in seq.spawn(2))
    target = data.low_rank_matrix(*shape, rank, seed=target_seed, backend=backend)
    if name == "factorization":
        return MatrixFactorization(target)
    if name == "completion":
        return MatrixCompletion(target, data.random_mask(shape, fraction, seed=side_seed, backend=backend))
    count = 5 * rank * (shape[0] + shape[1]) if measurements is None else measurements
    return MatrixSensing(target, data.gaussian_operators(count, shape, seed=side_seed, backend=backend))


PROBLEMS = {"factorization": MatrixFactorization, "completion": MatrixCompletion, "sensing": MatrixSensing}
