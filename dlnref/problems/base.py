"""The problem protocol: what a recovery problem must give, and what it may.

A recovery problem measures a candidate end-to-end matrix ``X`` of shape
``(m, n)`` against a target ``M`` that it knows, or knows only through
measurements. :class:`Problem` is the protocol, written as an abstract class.

**What a user writes** (the minimal part, abstract here):

- ``name`` (a class attribute), ``shape = (m, n)``, ``rank`` (the target's, or None);
- ``loss(X)``, ``gradient(X)`` (``dLoss/dX``, shape ``(m, n)``),
  ``recovery_error(X)`` (``||X - M||_F / ||M||_F``) and ``surrogate()`` (the
  ``(m, n)`` matrix whose top singular vectors seed the compressed network);
- the classmethod ``synthetic(shape, rank, seed=0, **options)``, a problem with
  a random rank-``rank`` target.

**Everything else has a correct default**, derived from the minimal part; the
built-in problems override what makes them fast or exact:

- ``evaluate(left, right)``: the training step's one call, the loss and
  ``dLoss/dX`` at ``X = left @ right`` (factored: :class:`FactorGradients`),
  and ``errors(evaluation)``: the recorded error measures there;
- ``top_singular(k)`` and ``curvature(u, v)``: what the spectral init and
  ``lr="auto"`` read;
- the oracle's facts (``normalisation``, ``loss_counts``, ``oracle_case``,
  ``transposed``, ``astype``), the command line's ``options`` and the paper's
  setups (``paper_steps``, ``setups``).

A problem knows nothing about networks: :mod:`dlnref.train` joins the two.
"""

import abc
import dataclasses
from typing import NamedTuple

import array_api_compat.numpy as xp_numpy

from ..backend import top_svd
from ..errors import InputError, InputTypeError


class FactorGradients(NamedTuple):
    """``dLoss/dX`` seen through the factors of ``X = left @ right``: the gradients with respect to them.

    What back-propagation needs from ``G = dLoss/dX``, returned by
    ``problem.evaluate(left, right, factored=True)``.

    Attributes
    ----------
    left : array, shape (m, k)
        ``dLoss/d(left) = G @ right^T``.
    right : array, shape (k, n)
        ``dLoss/d(right) = left^T @ G``.
    """

    left: object
    right: object


@dataclasses.dataclass(slots=True)
class Evaluation:
    """A problem evaluated at ``X = left @ right`` (``X = left`` when ``right`` is None), by ``problem.evaluate``.

    Attributes
    ----------
    loss : 0-d array
        The training loss at ``X``.
    gradient : array, scipy.sparse array or FactorGradients
        ``dLoss/dX``, shape ``(m, n)``, or its :class:`FactorGradients`.
    left : array, shape (m, k)
    right : array, shape (k, n), or None
        The factors it was evaluated at, for ``problem.errors``.
    """

    loss: object
    gradient: object
    left: object
    right: object = None

    @property
    def X(self):
        """The end-to-end matrix ``left @ right`` (``left`` when ``right`` is None), formed on demand."""
        return self.left if self.right is None else self.left @ self.right


def check_problem(problem):
    """Raise :class:`~dlnref.errors.InputTypeError` unless ``problem`` follows the protocol (a :class:`Problem`)."""
    if not isinstance(problem, Problem):
        raise InputTypeError(f"problem must be a dlnref problem (a dlnref.problems.Problem, say from "
                             f"dlnref.make_problem), got {type(problem).__name__}")


class Problem(abc.ABC):
    """The protocol of a recovery problem (see the module's notes): five methods and a constructor to write.

    Attributes
    ----------
    name : str
        The problem's name in the registry and on the command line (a class attribute).
    shape : tuple of int
        ``(m, n)``, the shape of ``X`` and of the target.
    rank : int or None
        The target's rank, where the problem knows it (the default width of
        the compressed network is ``2 * rank``); None otherwise.
    """

    name = None
    rank = None

    #: The options of :meth:`synthetic` that ``dlnref compare`` passes from its own (fields of
    #: :class:`dlnref.experiments.compare.CompareConfig`): ``("fraction",)`` for completion, say.
    options = ()
    #: The paper's step size and outer-layer scale alpha for this problem, in its loss's own
    #: normalisation; ``(None, 1.0)`` means ``lr="auto"`` and plain gradient descent.
    paper_steps = (None, 1.0)
    #: The paper's runs of this problem, ``{"quick": {...}, "full": {...}}`` of
    #: :class:`~dlnref.experiments.compare.CompareConfig` fields, which the theory checks and the
    #: figures read; None for a problem that is not one of the paper's.
    setups = None
    #: The count that the loss divides the half sum of squared residuals by, as a symbol of
    #: :meth:`loss_counts` (``"m n"``, ``"|Omega|"``, ``"1"``), for the oracle's diagnosis of a
    #: loss normalised differently; None: unknown, and the diagnosis stays generic.
    normalisation = None
    #: The sizes that the oracle draws for a case of this problem, beyond its shape and rank
    #: (``("observed",)`` for completion), passed to :meth:`oracle_case`; each is also an attribute.
    oracle_sizes = ()
    #: A bound ``lambda`` on ``||dLoss/dX||_F / ||X - M||_F`` that every oracle case keeps (its cases
    #: with a larger :meth:`gradient_bound` are not drawn); the trajectory checks' safe step sizes
    #: rest on it. None: unknown, and those checks refuse the problem.
    oracle_gradient_bound = None

    # --- the minimal part ---------------------------------------------------------------------------

    @abc.abstractmethod
    def loss(self, X):
        """Training loss at ``X``, shape ``(m, n)`` (a 0-d array or a float)."""

    @abc.abstractmethod
    def gradient(self, X):
        """``dLoss/dX`` at ``X``, shape ``(m, n)``."""

    @abc.abstractmethod
    def recovery_error(self, X):
        """``||X - M||_F / ||M||_F``."""

    @abc.abstractmethod
    def surrogate(self):
        """The ``(m, n)`` matrix whose top singular vectors seed the compressed network."""

    @classmethod
    @abc.abstractmethod
    def synthetic(cls, shape, rank, seed=0, **options):
        """A problem of this kind with a random rank-``rank`` target of shape ``(m, n)``, from ``seed``."""

    # --- defaults, derived from the minimal part ------------------------------------------------------

    #: The array namespace of the problem's arrays (NumPy's here; a problem on another backend sets its own).
    xp = xp_numpy

    def loss_and_gradient(self, X):
        """The loss and ``dLoss/dX`` at ``X``."""
        return self.loss(X), self.gradient(X)

    def metrics(self, X):
        """Extra numbers to record at ``X``, name -> number (none here)."""
        return {}

    def evaluate(self, left, right=None, factored=False, record=True):
        """Loss and ``dLoss/dX`` at ``X = left @ right`` (``X = left`` when ``right`` is None): one training step's call.

        Parameters
        ----------
        left : array, shape (m, k)
        right : array, shape (k, n), or None
        factored : bool
            With ``right``, give the gradients with respect to the factors,
            ``FactorGradients(G @ right^T, left^T @ G)``, in place of ``G``:
            all that back-propagation needs. A problem may then avoid forming
            ``G`` (:class:`~dlnref.problems.MatrixCompletion` does, for thin factors).
        record : bool
            False when :meth:`errors` will not be asked for this evaluation (a
            step that records no row): a problem may then skip what only
            ``errors`` reads.

        Returns
        -------
        Evaluation
        """
        X = left if right is None else left @ right
        if tuple(X.shape) != tuple(self.shape):
            raise InputError(f"left @ right must have the problem's shape {tuple(self.shape)}, got {tuple(X.shape)}")
        loss, G = self.loss_and_gradient(X)
        if factored and right is not None:
            G = FactorGradients(G @ right.T, left.T @ G)
        return Evaluation(loss, G, left, right)

    def errors(self, evaluation):
        """The recorded error measures at an :class:`Evaluation` of this problem: ``recovery_error`` and the ``metrics``.

        Returns
        -------
        dict of str -> float
        """
        X = evaluation.X
        return {"recovery_error": float(self.recovery_error(X)),
                **{name: float(value) for name, value in self.metrics(X).items()}}

    def top_singular(self, k, seed=0):
        """Top ``k`` singular triplets ``(U, s, Vh)`` of :meth:`surrogate` (:func:`dlnref.backend.top_svd`)."""
        return top_svd(self.surrogate(), k, seed)

    def curvature(self, u, v):
        """Second derivative of the loss along the unit rank-one direction ``D = u v^T``.

        The default takes the loss's second difference at 0,
        ``loss(D) + loss(-D) - 2 loss(0)``, exact for a quadratic loss (every
        problem of the paper's) up to the rounding of ``loss(0)``.

        Parameters
        ----------
        u : array, shape (m,)
        v : array, shape (n,)
            Unit vectors.

        Returns
        -------
        float
        """
        xp = self.xp
        D = xp.reshape(u, (-1, 1)) * xp.reshape(v, (1, -1))
        zero = xp.zeros_like(D)
        return float(self.loss(D)) + float(self.loss(-D)) - 2 * float(self.loss(zero))

    # --- the oracle's facts -------------------------------------------------------------------------

    @classmethod
    def loss_counts(cls, shape, **sizes):
        """The counts another implementation's loss might divide by: symbol -> (count, words).

        With :attr:`normalisation`, the oracle tells a loss normalised by
        another count apart from other mistakes. None known here.
        """
        return {}

    @classmethod
    def oracle_case(cls, shape, rank, seed, **sizes):
        """The problem of an oracle case: :meth:`synthetic` by default (``sizes`` as in :attr:`oracle_sizes`)."""
        return cls.synthetic(shape, rank, seed=seed, **sizes)

    def gradient_bound(self):
        """``lambda`` with ``||dLoss/dX||_F <= lambda ||X - M||_F`` for this problem, or None when unknown."""
        return None

    def transposed(self):
        """The same problem on ``X^T``: the oracle runs it to measure rounding in the other ordering."""
        return Transposed(self)

    def astype(self, dtype):
        """The same problem computed in ``dtype`` (the oracle's exact reference runs in ``numpy.longdouble``)."""
        raise InputError(f"the problem {self.name!r} cannot change its dtype (to {dtype}): give it an astype method "
                         "to run the oracle's trajectory checks on it")

    @classmethod
    def memory_entries(cls, shape, **options):
        """Float64 entries that building and training the problem holds at its peak, roughly (``10 m n`` here)."""
        return 10 * shape[0] * shape[1]


class Transposed(Problem):
    """A problem seen on ``X^T``: ``loss(X) = base.loss(X^T)``, ``dLoss/dX = base.gradient(X^T)^T``.

    Parameters
    ----------
    base : Problem
    """

    def __init__(self, base):
        self.base = base
        self.name, self.rank, self.xp = base.name, base.rank, base.xp
        self.shape = tuple(base.shape)[::-1]

    def loss(self, X):
        return self.base.loss(X.T)

    def gradient(self, X):
        return self.base.gradient(X.T).T

    def recovery_error(self, X):
        return self.base.recovery_error(X.T)

    def metrics(self, X):
        return self.base.metrics(X.T)

    def surrogate(self):
        return self.base.surrogate().T

    def transposed(self):
        return self.base

    @classmethod
    def synthetic(cls, shape, rank, seed=0, **options):
        raise InputError("a transposed problem has no synthetic draw of its own: transpose one of its base kind")
