"""Problems whose target is a dense ``(m, n)`` array: the common part of the paper's three.

:class:`RecoveryProblem` holds the target ``M`` and gives the error measures
from the residual ``R = X - M``; a subclass writes only
:meth:`RecoveryProblem.evaluate_residual` (its loss and ``dLoss/dX``), its
surrogate and its synthetic draw. On NumPy, a training step's ``X`` and
``dLoss/dX`` go into buffers kept across steps.
"""

import dataclasses
import functools

import numpy as np

from .._checks import check_array, check_matrix, check_shape
from ..backend import array_namespace, inner, is_numpy, svd, to_backend
from ..errors import InputError
from .base import Evaluation, FactorGradients, Problem


@dataclasses.dataclass(slots=True)
class ResidualEvaluation(Evaluation):
    """An :class:`Evaluation` that keeps the residual ``R = X - M``, which ``errors`` reads.

    Attributes
    ----------
    residual : array, shape (m, n), or None
        ``X - M``; None for an evaluation made with ``record=False``. On
        NumPy it lives in a buffer that the next evaluation overwrites: use it
        before evaluating again.
    """

    residual: object = None


def frobenius(xp, x):
    """``||x||_F`` as a 0-d array."""
    return xp.sqrt(inner(x, x, xp))


def count_true(xp, mask):
    """Number of True entries of a boolean array, as an int."""
    return int(xp.sum(xp.astype(mask, xp.int64)))


class RecoveryProblem(Problem):
    """A recovery problem with a dense target ``M``: the error measures and the buffers of a step.

    Parameters
    ----------
    target : array, shape (m, n)
        The matrix ``M`` to recover; finite, floating, not all zero.
    backend : str or None
        If given, host inputs are moved to this backend; None keeps the
        inputs' own backend.
    """

    def __init__(self, target, backend=None):
        self.backend = backend
        check_array("target", target)
        target = self._on_backend(target)
        self.xp = array_namespace(target)
        check_matrix("target", target, self.xp)
        self.target = target
        self.shape = tuple(target.shape)
        self._target_norm = frobenius(self.xp, target)
        if float(self._target_norm) == 0:
            raise InputError("target must not be all zeros: the relative recovery error is undefined")

    def _on_backend(self, x):
        return x if self.backend is None else to_backend(x, self.backend)

    def evaluate_residual(self, X, buffer=None, record=True):
        """Loss, ``dLoss/dX`` and the residual ``X - M`` at ``X``: what a subclass writes.

        Parameters
        ----------
        X : array, shape (m, n)
        buffer : callable or None
            ``buffer(name)`` gives an ``(m, n)`` array kept across steps;
            given, ``X`` is itself such a buffer, which the problem may
            overwrite (with the residual, say).
        record : bool
            False when the residual is not needed (None may be returned for it).

        Returns
        -------
        loss : 0-d array
        gradient : array, shape (m, n)
        residual : array, shape (m, n), or None
        """
        raise NotImplementedError(f"{type(self).__name__} must define evaluate_residual")

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
        return self.evaluate_residual(X, None, record=False)[:2]

    def evaluate(self, left, right=None, factored=False, record=True):
        """As :meth:`dlnref.problems.Problem.evaluate`, with ``X`` and ``dLoss/dX`` in kept buffers on NumPy.

        The backends of ``left`` and ``right`` are not checked here, only the
        shape of ``X``; :func:`dlnref.gradient_descent` checks the rest once.

        Returns
        -------
        ResidualEvaluation
        """
        self._check_factors(left, right)
        if right is None or not is_numpy(self.xp):
            loss, G, residual = self.evaluate_residual(left if right is None else left @ right, None, record)
        else:
            loss, G, residual = self.evaluate_residual(np.matmul(left, right, out=self.buffer("X")), self.buffer,
                                                       record)
        if factored and right is not None:
            G = FactorGradients(G @ right.T, left.T @ G)
        return ResidualEvaluation(loss, G, left, right, residual)

    def _check_factors(self, left, right):
        shape = (left.shape[0], (left if right is None else right).shape[1])
        if shape != self.shape:
            raise InputError(f"left @ right must have the problem's shape {self.shape}, got {shape}")

    def buffer(self, name, shape=None):
        """An array (``(m, n)`` by default) kept across evaluations (NumPy): a step overwrites it instead of allocating."""
        buffers = self.__dict__.setdefault("_buffers", {})
        shape = self.shape if shape is None else shape
        if name not in buffers or buffers[name].shape != shape:
            buffers[name] = np.empty(shape, dtype=self.target.dtype)
        return buffers[name]

    def errors(self, evaluation):
        """``recovery_error`` and the problem's metrics, from the residual that the evaluation kept."""
        if evaluation.residual is None:
            raise InputError("this evaluation was made with record=False, which skips what errors reads; "
                             "evaluate with record=True")
        residual = evaluation.residual
        return {"recovery_error": float(self._recovery_error(residual)),
                **{name: float(value) for name, value in self._metrics(residual).items()}}

    def recovery_error(self, X):
        """Relative recovery error ``||X - M||_F / ||M||_F`` (0-d array)."""
        self._check_X(X)
        return self._recovery_error(X - self.target)

    def metrics(self, X):
        """Extra numbers to record at ``X``: a dict of name -> 0-d array."""
        self._check_X(X)
        return self._metrics(X - self.target)

    def _recovery_error(self, residual):
        return frobenius(self.xp, residual) / self._target_norm

    def _metrics(self, residual):
        """The extra numbers from the residual ``X - M`` (none here)."""
        return {}

    @functools.cached_property
    def rank(self):
        """Numerical rank of the target: singular values above ``max(m, n) * eps * s_1``."""
        s = svd(self.target)[1]
        tol = max(self.shape) * self.xp.finfo(self.target.dtype).eps * s[0]
        return count_true(self.xp, s > tol)
