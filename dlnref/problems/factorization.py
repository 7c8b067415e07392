"""Deep matrix factorization: fit every entry of the target."""

import numpy as np

from .. import data
from ..backend import inner
from .dense import RecoveryProblem


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
    paper_steps = (1.0, 1.0)
    setups = {
        "quick": {"d": 30, "rank": 3, "lr": 20.0, "outer_lr_scale": 1.0, "steps": 20000, "record_every": 5},
        "full": {"d": 100, "rank": 10, "lr": 1.0, "steps": 300000, "record_every": 250},
    }
    oracle_gradient_bound = 1 / 4   # m, n >= 2
    normalisation = "m n"

    @classmethod
    def synthetic(cls, shape, rank, seed=0, backend=None):
        """A rank-``rank`` target with the spread spectrum (:func:`dlnref.data.low_rank_matrix`)."""
        target_rng, _ = data.problem_streams(seed)
        return cls(data.low_rank_matrix(*shape, rank, seed=target_rng, backend=backend))

    def evaluate_residual(self, X, buffer=None, record=True):
        size = self.shape[0] * self.shape[1]
        if buffer is None:
            residual = X - self.target
            gradient = residual / size
        else:  # X is a buffer of ours: R = X - M in place, G into a second buffer
            residual = X
            residual -= self.target
            gradient = np.divide(residual, size, out=buffer("gradient"))
        return inner(residual, residual, self.xp) / (2 * size), gradient, residual

    def surrogate(self):
        """``M``, shape ``(m, n)``."""
        return self.target

    def curvature(self, u, v):
        """``||u v^T||_F^2 / (m n) = 1 / (m n)``."""
        return 1 / (self.shape[0] * self.shape[1])

    @classmethod
    def loss_counts(cls, shape, **sizes):
        m, n = shape
        return {"1": (1, "a sum of squares"), "m n": (m * n, f"a mean over the {m * n} entries")}

    @classmethod
    def oracle_case(cls, shape, rank, seed, **sizes):
        """A rank-``rank`` target scaled to ``||M||_F = 1`` (the oracle's cases)."""
        return cls(unit_target(shape, rank, data.problem_streams(seed)[0]))

    def gradient_bound(self):
        """``1 / (m n)``: ``dLoss/dX = (X - M) / (m n)``."""
        return 1 / (self.shape[0] * self.shape[1])

    def transposed(self):
        return MatrixFactorization(self.target.T)

    def astype(self, dtype):
        return MatrixFactorization(self.target.astype(dtype))


def unit_target(shape, rank, rng):
    """The oracle's target: a rank-``rank`` spread-spectrum matrix drawn from ``rng``, scaled to ``||M||_F = 1``."""
    target = data.low_rank_matrix(*shape, rank, seed=rng)
    return target / np.linalg.norm(target)
