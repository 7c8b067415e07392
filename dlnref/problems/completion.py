"""Matrix completion: fit the observed entries of the target."""

import dataclasses
import functools
import math

import numpy as np

from .. import data
from .._checks import check_array, check_shape
from ..backend import array_namespace, inner, is_numpy
from ..errors import InputError, InputTypeError
from ._fused import ResidualNorms, fused_completion
from .base import Evaluation
from .dense import RecoveryProblem, count_true, frobenius
from .factorization import unit_target
from .sparse import synthetic_completion

#: The fused step applies to factors at most this wide (the compressed
#: network's ``2 r``); wider ones are the wide network's GEMMs, fastest whole.
FUSED_MAX_WIDTH = 64

#: ... and to problems of at least this many entries: below it the whole
#: residual fits in cache, and the paper's d = 100 runs keep the official
#: code's order of operations.
FUSED_MIN_ENTRIES = 1 << 18

#: :meth:`MatrixCompletion.synthetic` draws a dense target and mask up to this many rows and columns
#: each; a larger problem is built from its observed entries (:func:`dlnref.problems.synthetic_completion`).
DENSE_MAX_SIDE = 2000


@dataclasses.dataclass(slots=True)
class NormsEvaluation(Evaluation):
    """An :class:`Evaluation` of the fused step: the residual's norms, summed block by block, in place of the residual.

    Attributes
    ----------
    norms : ResidualNorms or None
        None for an evaluation made with ``record=False``.
    """

    norms: ResidualNorms = None


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
    options = ("fraction",)
    paper_steps = (10.0, 5.0)
    setups = {
        "quick": {"d": 30, "rank": 2, "fraction": 0.5, "lr": 3.0, "outer_lr_scale": 3.0, "steps": 20000,
                  "record_every": 5},
        "full": {"d": 100, "rank": 5, "fraction": 0.3, "lr": 10.0, "steps": 60000, "record_every": 25},
    }
    oracle_gradient_bound = 1 / 3   # |Omega| >= 3
    normalisation = "|Omega|"
    oracle_sizes = ("observed",)

    def __init__(self, target, mask, test_mask=None, backend=None):
        super().__init__(target, backend)
        target, mask, xp = self.target, self._check_mask("mask", mask), self.xp
        self.mask = mask
        self.observed = count_true(xp, mask)
        if self.observed == 0:
            raise InputError("mask must observe at least one entry, got an all-False mask")
        self.fraction = self.observed / (self.shape[0] * self.shape[1])
        self._weight = xp.astype(mask, target.dtype)
        self._gradient_weight = self._weight / self.observed
        self._unobserved_weight = 1 - self._weight
        self._unobserved_norm = frobenius(xp, self._unobserved_weight * target)
        self._has_unobserved = self.observed < self.shape[0] * self.shape[1] and float(self._unobserved_norm) > 0
        self.test_mask = None if test_mask is None else self._check_mask("test_mask", test_mask)
        self.test_weight = None
        if self.test_mask is not None:
            self.tested = count_true(xp, self.test_mask)
            if self.tested == 0:
                raise InputError("test_mask must hold at least one entry, got an all-False mask")
            overlap = count_true(xp, self.test_mask & mask)
            if overlap:
                raise InputError(f"test_mask must not overlap mask: {overlap} entries are in both; "
                                 "held-out entries must be unseen in training (pass test_mask & ~mask)")
            self.test_weight = xp.astype(self.test_mask, target.dtype)

    @classmethod
    def synthetic(cls, shape, rank, seed=0, fraction=0.3, backend=None):
        """A rank-``rank`` target (spread spectrum) and a uniform mask of ``floor(fraction m n)`` entries.

        Above :data:`DENSE_MAX_SIDE` rows or columns, the problem is built
        from its observed entries: :func:`dlnref.problems.synthetic_completion`
        (NumPy only).
        """
        if max(shape) > DENSE_MAX_SIDE:
            if backend not in (None, "numpy"):
                raise InputError(f"completion above {DENSE_MAX_SIDE} rows or columns runs from its observed entries "
                                 f"on NumPy only, got backend {backend!r}")
            return synthetic_completion(shape, rank, fraction, seed=seed)
        target_rng, side_rng = data.problem_streams(seed)
        target = data.low_rank_matrix(*shape, rank, seed=target_rng, backend=backend)
        return cls(target, data.random_mask(shape, fraction, seed=side_rng, backend=backend))

    @classmethod
    def memory_entries(cls, shape, fraction=0.3):
        """About ``10 m n`` entries dense; 4 per observed entry above :data:`DENSE_MAX_SIDE`."""
        if max(shape) > DENSE_MAX_SIDE:
            return 4 * math.floor(fraction * shape[0] * shape[1])
        return 10 * shape[0] * shape[1]

    def _check_mask(self, name, mask):
        check_array(name, mask)
        mask = self._on_backend(mask)
        if getattr(mask, "dtype", None) != self.xp.bool:
            raise InputTypeError(f"{name} must be a boolean array, got dtype {getattr(mask, 'dtype', type(mask))}")
        check_shape(name, mask, self.shape)
        array_namespace(mask, self.target)
        return mask

    def evaluate_residual(self, X, buffer=None, record=True):
        if buffer is None:
            residual = X - self.target
            gradient = self._gradient_weight * residual  # P_Omega(R) / |Omega|: _gradient_weight = mask / |Omega|
        else:  # X is a buffer of ours: R = X - M in place, G into a second buffer (3 passes over m x n with X's GEMM)
            residual = X
            residual -= self.target
            gradient = np.multiply(self._gradient_weight, residual, out=buffer("gradient"))
        # <G, R> / 2 = ||P_Omega(R)||^2 / (2 |Omega|), because the mask is 0/1 (mask^2 = mask)
        return inner(gradient, residual, self.xp) / 2, gradient, residual

    def evaluate(self, left, right=None, factored=False, record=True):
        """As :meth:`RecoveryProblem.evaluate`; with ``factored`` and thin factors on NumPy, one fused pass.

        When ``right`` is given, ``factored`` is True, ``k <= FUSED_MAX_WIDTH``
        and ``m n >= FUSED_MIN_ENTRIES``, ``X`` and ``G`` are never formed
        (the private ``_fused`` module): the result is then a
        :class:`NormsEvaluation`, whose norms :meth:`errors` reads.
        """
        if not (factored and right is not None and is_numpy(self.xp) and left.shape[1] <= FUSED_MAX_WIDTH
                and self.shape[0] * self.shape[1] >= FUSED_MIN_ENTRIES):
            return super().evaluate(left, right, factored)
        self._check_factors(left, right)
        loss, gradient, norms = fused_completion(self, left, right, record)
        return NormsEvaluation(loss, gradient, left, right, norms)

    @functools.cached_property
    def masked_target(self):
        """``P_Omega(M)``, shape ``(m, n)``, for the fused step without ``record``."""
        return self._weight * self.target

    def errors(self, evaluation):
        """As :meth:`RecoveryProblem.errors`; from the norms of a :class:`NormsEvaluation` too."""
        if not isinstance(evaluation, NormsEvaluation):
            return super().errors(evaluation)
        norms = evaluation.norms
        if norms is None:
            raise InputError("this evaluation was made with record=False, which skips the residual norms that "
                             "errors reads; evaluate with record=True")
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
        return frobenius(self.xp, self._unobserved_weight * residual) / self._unobserved_norm

    def _test_rmse(self, residual):
        return frobenius(self.xp, self.test_weight * residual) / self.tested**0.5

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

    @classmethod
    def loss_counts(cls, shape, observed=None, **sizes):
        m, n = shape
        return {"1": (1, f"a sum over the {observed} observed entries"),
                "|Omega|": (observed, f"a mean over the {observed} observed entries"),
                "m n": (m * n, f"a mean over all {m * n} entries, not over the {observed} observed ones,")}

    @classmethod
    def oracle_case(cls, shape, rank, seed, observed=None, **sizes):
        """A unit-norm target and a mask of exactly ``observed`` entries (the oracle's cases)."""
        target_rng, side_rng = data.problem_streams(seed)
        target = unit_target(shape, rank, target_rng)
        # floor((|Omega| + 1/2) / (m n) * m n) = |Omega| whatever the rounding of the fraction.
        return cls(target, data.random_mask(shape, (observed + 0.5) / (shape[0] * shape[1]), seed=side_rng))

    def gradient_bound(self):
        """``1 / |Omega|``: ``dLoss/dX = P_Omega(X - M) / |Omega|``."""
        return 1 / self.observed

    def transposed(self):
        return MatrixCompletion(self.target.T, self.mask.T)

    def astype(self, dtype):
        return MatrixCompletion(self.target.astype(dtype), self.mask)
