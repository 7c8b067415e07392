"""The conventions a user declares instead of writing glue: the loss's normalisation, the depths, returned arrays.

Loss conventions
----------------
With ``S`` the sum of squared residuals of a problem, dlnref's loss is
``S / (2 N)``, ``N`` the problem's normalisation count
(:attr:`dlnref.problems.Problem.normalisation`: ``m n`` for factorization,
``|Omega|`` for completion, 1 for sensing). A user's loss ``S / (h N')``
has the gradient ``kappa = 2 N / (h N')`` times dlnref's, and a user's step
``W <- W - lr' dLoss'/dW`` equals dlnref's at ``lr`` when ``lr' = lr / kappa``:
the checks pass that step size to the user's function, so that no lr glue
is needed. The conventions (:data:`LOSSES`):

- ``"dlnref"``: ``S / (2 N)``;
- ``"sum"``, ``"half_sum"``: ``S`` and ``S / 2``;
- ``"mean"``, ``"half_mean"``: ``S / T`` and ``S / (2 T)``, ``T`` the loss's
  terms: ``|Omega|`` (completion), ``k`` (sensing), ``m n`` (factorization);
- ``"mean_all"``, ``"half_mean_all"``: ``S / (m n)`` and ``S / (2 m n)``
  whatever the problem, a torch or JAX mean over the whole masked matrix.
"""

import argparse

import numpy as np

from ..errors import InputError
from ..problems import problem_class

#: The declared loss conventions, ``"infer"`` aside: name -> (h, which count T, words).
CONVENTIONS = {
    "dlnref": (2, "normalisation", "dlnref's S/(2 N)"),
    "sum": (1, "one", "a sum of squared residuals without the 1/2"),
    "half_sum": (2, "one", "a sum with the 1/2"),
    "mean": (1, "terms", "a mean over the loss's terms without the 1/2"),
    "half_mean": (2, "terms", "a mean over the loss's terms with the 1/2"),
    "mean_all": (1, "all", "a mean over all m n entries without the 1/2"),
    "half_mean_all": (2, "all", "a mean over all m n entries with the 1/2"),
}
LOSSES = (*CONVENTIONS, "infer")


def check_loss(loss):
    """Raise :class:`~dlnref.errors.InputError` unless ``loss`` is one of :data:`LOSSES`."""
    if loss not in LOSSES:
        raise InputError(f"loss must be one of {LOSSES}, got {loss!r}")


def terms_count(problem):
    """``T``, the number of terms of the problem's sum of squares: its first oracle size, else ``m n``."""
    sizes = problem_class(problem.name).oracle_sizes
    return int(getattr(problem, sizes[0])) if sizes else int(problem.shape[0] * problem.shape[1])


def normalisation_count(problem):
    """``N``, the count dlnref's loss divides the half sum of squares by."""
    cls = problem_class(problem.name)
    sizes = {name: getattr(problem, name) for name in cls.oracle_sizes}
    return cls.loss_counts(tuple(problem.shape), **sizes)[cls.normalisation][0]


def convention_count(loss, problem):
    """``N'`` of the convention ``loss`` on ``problem``."""
    which = CONVENTIONS[loss][1]
    return {"normalisation": normalisation_count(problem), "one": 1, "terms": terms_count(problem),
            "all": int(problem.shape[0] * problem.shape[1])}[which]


def loss_scale(loss, problem):
    r"""``kappa``: the gradient of the convention ``loss`` is ``kappa`` times dlnref's on ``problem``.

    .. math:: \kappa = \frac{2 N}{h N'}

    for a loss :math:`S / (h N')` and dlnref's :math:`S / (2 N)`.
    """
    if loss == "dlnref":
        return 1.0
    return 2 * normalisation_count(problem) / (CONVENTIONS[loss][0] * convention_count(loss, problem))


def convention_words(loss, problem):
    """The convention in words on ``problem`` (say "a sum with the 1/2")."""
    if loss == "dlnref":
        return f"dlnref's S/(2 N), N = {normalisation_count(problem)}"
    return CONVENTIONS[loss][2]


def allowed_depths(depths, default_max, deepest=None):
    """The depths a check draws: those of ``depths`` up to ``default_max``, else the smallest declared one.

    Parameters
    ----------
    depths : iterable of int or None
        The depths L the user's code supports (None: any).
    default_max : int
        The deepest network the check draws by default.
    deepest : int or None
        An upper bound the check cannot exceed (None: ``default_max``).

    Returns
    -------
    tuple of int, increasing
    """
    if depths is None:
        return tuple(range(1, default_max + 1))
    declared = check_depths(depths)
    kept = tuple(d for d in declared if d <= default_max)
    return kept or declared[:1]


def check_depths(depths):
    """``depths`` as an increasing tuple of positive ints, or InputError naming what is wrong."""
    try:
        given = list(depths)
        values = sorted({int(d) for d in given})
        exact = all(float(d) == int(d) for d in given)
    except (TypeError, ValueError):
        raise InputError(f"depths must be an iterable of positive integers (say range(2, 5)), got {depths!r}") from None
    if not given:
        raise InputError(f"depths is empty, got {depths!r}: give the depths your code supports (say range(2, 5))")
    if not exact or values[0] < 1:
        raise InputError(f"depths must hold positive integers (say range(2, 5)), got {depths!r}")
    return tuple(values)


def parse_depths(text):
    """``"2-4"`` or ``"2,3,5"`` (the command line's ``--depths``) as a tuple of depths.

    Raises
    ------
    argparse.ArgumentTypeError
        Naming what is expected, so that the command line shows this message.
    """
    values = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.strip().isdigit() or (dash and not high.strip().isdigit()):
            raise argparse.ArgumentTypeError(f"expected depths like 2-4 or 2,3,5 (positive integers), got {text!r}")
        first, last = int(low), int(high or low)
        if first < 1 or last < first:
            raise argparse.ArgumentTypeError(f"expected depths like 2-4 or 2,3,5, each at least 1 and each range "
                                             f"low-high with low <= high, got {text!r}")
        values += range(first, last + 1)
    return check_depths(values)


def to_numpy(x):
    """An array the user's function returned, as a NumPy array: torch tensors (grad or not, any device), JAX arrays.

    Torch and JAX are never imported: a tensor is detached and moved to the host through its own methods.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        if hasattr(x, "resolve_conj"):
            x = x.resolve_conj()
        return x.numpy()
    return np.asarray(x)
