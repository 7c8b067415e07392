"""Matrix sensing: fit ``k`` linear measurements of the target."""

import numpy as np

from .. import data
from .._checks import check_array, check_matrix, check_shape
from ..backend import array_namespace, inner, to_numpy
from ..errors import InputError
from .dense import RecoveryProblem
from .factorization import unit_target


class MatrixSensing(RecoveryProblem):
    """Matrix sensing: fit the measurements ``y_i = <A_i, M>``, i = 1..k.

    Parameters
    ----------
    target : array, shape (m, n)
    operators : array, shape (k, m, n)
        The sensing matrices ``A_1, ..., A_k``.
    backend : str or None
        Move host inputs to this backend (None: keep theirs).

    Attributes
    ----------
    y : array, shape (k,)
        The measurements ``<A_i, M>``.

    Notes
    -----
    ``loss(X) = sum_i (<A_i, X> - y_i)^2 / 2`` and
    ``dLoss/dX = sum_i (<A_i, X> - y_i) A_i``.
    Surrogate: ``sum_i y_i A_i`` (only its singular vectors are used). With
    i.i.d. N(0, 1/k) operators it is an unbiased estimate of ``M``.
    The operators are stored flattened, ``A`` of shape ``(k, m n)`` in
    row-major order, so one step costs two matrix-vector products with ``A``.
    """

    name = "sensing"
    options = ("measurements",)
    paper_steps = (20.0, 1.0)   # in the official operators' scaling (entry std 1/k): 20 / k here
    setups = {
        "quick": {"d": 20, "rank": 2, "measurements": 400, "lr": 10.0 / 400, "outer_lr_scale": 1.0, "steps": 20000,
                  "record_every": 5},
        "full": {"d": 200, "rank": 5, "measurements": 4000, "lr": 20.0 / 4000, "steps": 20000, "record_every": 10},
    }
    oracle_gradient_bound = 9.0   # cases drawn with ||A||_op^2 <= 9
    normalisation = "1"
    oracle_sizes = ("measurements",)

    def __init__(self, target, operators, backend=None):
        super().__init__(target, backend)
        check_array("operators", operators)
        target, operators, xp = self.target, self._on_backend(operators), self.xp
        if getattr(operators, "ndim", None) != 3:
            raise InputError(f"operators must have shape (k, {self.shape[0]}, {self.shape[1]}), "
                             f"got {getattr(operators, 'shape', None)}")
        check_shape("operators", operators, (operators.shape[0], *self.shape))
        if operators.shape[0] == 0:
            raise InputError(f"operators must hold at least one sensing matrix, got the empty shape "
                             f"{tuple(operators.shape)}")
        check_matrix("operators (flattened)", xp.reshape(operators, (operators.shape[0], -1)), xp)
        array_namespace(operators, target)
        self.operators = operators
        self._flat = xp.reshape(operators, (operators.shape[0], -1))
        self.y = self._measure(target)

    @classmethod
    def synthetic(cls, shape, rank, seed=0, measurements=None, backend=None):
        """A rank-``rank`` target (spread spectrum) and ``measurements`` Gaussian operators (None: ``5 r (m + n)``)."""
        target_rng, side_rng = data.problem_streams(seed)
        target = data.low_rank_matrix(*shape, rank, seed=target_rng, backend=backend)
        count = 5 * rank * (shape[0] + shape[1]) if measurements is None else measurements
        return cls(target, data.gaussian_operators(count, shape, seed=side_rng, backend=backend))

    @classmethod
    def memory_entries(cls, shape, measurements=4000):
        """About ``10 m n`` entries, plus the operators twice while they are drawn and scaled: ``2 k m n``."""
        return 10 * shape[0] * shape[1] + 2 * measurements * shape[0] * shape[1]

    def _measure(self, X):
        """``A(X)_i = <A_i, X>``, shape (k,)."""
        return self._flat @ self.xp.reshape(X, (-1,))

    def _adjoint(self, r):
        """``A^*(r) = sum_i r_i A_i``, shape (m, n)."""
        return self.xp.reshape(r @ self._flat, self.shape)

    def evaluate_residual(self, X, buffer=None, record=True):
        residual = self._measure(X) - self.y
        return (inner(residual, residual, self.xp) / 2, self._adjoint(residual),
                X - self.target if record else None)

    def surrogate(self):
        """``sum_i y_i A_i``, shape ``(m, n)``."""
        return self._adjoint(self.y)

    def curvature(self, u, v):
        """``||A(u v^T)||^2 = sum_i (u^T A_i v)^2``."""
        xp = self.xp
        return float(xp.sum(self._measure(xp.reshape(u, (-1, 1)) * xp.reshape(v, (1, -1))) ** 2))

    @classmethod
    def loss_counts(cls, shape, measurements=None, **sizes):
        k = measurements
        return {"1": (1, f"a sum over the {k} measurements"), "k": (k, f"a mean over the {k} measurements")}

    @classmethod
    def oracle_case(cls, shape, rank, seed, measurements=None, **sizes):
        """A unit-norm target and ``measurements`` operators of N(0, 1/k) entries (the oracle's cases)."""
        target_rng, side_rng = data.problem_streams(seed)
        return cls(unit_target(shape, rank, target_rng), data.gaussian_operators(measurements, shape, seed=side_rng))

    def gradient_bound(self):
        """``||A||_op^2``, the operator as a k x (m n) matrix: the curvature of the loss in X."""
        return float(np.linalg.norm(to_numpy(self._flat), 2) ** 2)

    @property
    def measurements(self):
        """``k``, the number of operators."""
        return self.operators.shape[0]

    def transposed(self):
        return MatrixSensing(self.target.T, self.xp.permute_dims(self.operators, (0, 2, 1)))

    def astype(self, dtype):
        return MatrixSensing(self.target.astype(dtype), self.operators.astype(dtype))
