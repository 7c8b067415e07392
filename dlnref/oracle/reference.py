"""dlnref's side of a check: the reference numbers and how far a correct implementation may be from them.

One evaluation
--------------
A product of matrices rounds with an error of at most about ``K eps`` times
the product of its factors' norms, for inner dimensions summing to K. So the
gradient of layer l passes when every entry is within

    tol_l = 8 eps K ||W_L ... W_{l+1}||_F ||G||_F ||W_{l-1} ... W_1||_F

with ``eps`` the machine epsilon of the checked dtype and
``K = d_0 + ... + d_L``; an update ``-lr s_l dW_l`` allows ``lr s_l tol_l``
plus ``4 eps max|W_l|`` for the rounding of ``W_l - step``.

Trajectories
------------
Rounding errors made at one step are carried, and may grow, through every
later step, at a rate set by the dynamics of the case. So the trajectory
check compares the user's ``X_t`` with an **exact** reference, dlnref's
gradient descent run in ``numpy.longdouble`` (64-bit mantissa on x86; on
platforms where longdouble is float64 the reference is float64), and
measures the growth of float64 rounding on the case itself: dlnref runs the
case in float64 twice, in two orderings of every product (the case, and its
transpose ``X^T = W_1^T ... W_L^T``, whose products associate the other
way). Writing ``e(t)`` for the larger distance of the two float64 runs from
the exact one at step t, ``X_t`` passes when every entry is within

    tol_t = 16 e(t) eps / eps_64 + 8 eps K max(1, ||X_t||_F)

(a margin of 16 over the two measured orderings, rescaled to the checked
dtype, and the one-evaluation bound as a floor). Rounding errors of another
correct ordering are a third sample of the same process, so they stay well
inside; a wrong update differs by the size of the update itself.

Step sizes
----------
dlnref's reference run must stay finite, so trajectory checks accept only
step sizes at which it provably does. Every drawn layer starts at spectral
norm at most 1, and ``||M||_F = 1``. While every layer stays within ``delta = 1/2`` of
its start, ``||W_l||_2 <= B = 3/2``, ``||X - M||_F <= R = sqrt(6) B^L + 1``,
``||dLoss/dX||_F <= lambda R`` (:func:`curvature_bound`), so a step moves a
layer by at most ``lr max(1, alpha) B^(L-1) lambda R``. After T steps the
layers have moved at most ``delta`` if

    lr <= delta / (T max(1, alpha) B^(L-1) lambda R)

and by induction they never leave that ball: the run cannot diverge.
:func:`trajectory_lr_limit` is this bound at the deepest network drawn.
"""

import dataclasses
import math

import numpy as np

from ..errors import InputError
from ..network import end_to_end, prefix_products
from ..problems import problem_class
from ..train import gradient_descent
from .cases import MAX_SIZE

#: How far the layers of a reference trajectory may move from their start (spectral norm).
DELTA = 0.5
#: Margin of the trajectory tolerance over the measured rounding of two float64 orderings.
ORDERING_MARGIN = 16


def gradient_tolerances(weights, G, dtype):
    """``tol_l`` of the module's rule for every layer (float64 weights in input-first order)."""
    eps = np.finfo(dtype).eps
    K = weights[0].shape[1] + sum(w.shape[0] for w in weights)
    prefixes = prefix_products(weights)
    below = [1.0] + [np.linalg.norm(p) for p in prefixes[:-1]]
    above, product = [], np.eye(weights[-1].shape[0])
    for w in reversed(weights):
        above.append(np.linalg.norm(product))
        product = product @ w
    above = above[::-1]
    return [8 * eps * K * a * np.linalg.norm(G) * b for a, b in zip(above, below)]


def update_tolerances(weights, G, sizes, dtype):
    """Tolerance of each layer's update ``-size_l dW_l``: ``size_l tol_l + 4 eps max|W_l|``."""
    eps = np.finfo(dtype).eps
    return [s * t + 4 * eps * np.abs(w).max() for s, t, w in zip(sizes, gradient_tolerances(weights, G, dtype), weights)]


@dataclasses.dataclass
class Mismatch:
    """Where a result differs from dlnref's beyond tolerance (layers count from 1)."""

    layer: int
    max_abs: float
    max_rel: float
    tolerance: float


def first_mismatch(theirs, ours, tolerances):
    """The first layer where ``theirs`` and ``ours`` differ beyond its tolerance, or None.

    A missing or extra layer, or a layer of the wrong shape, counts as an
    infinite difference at that layer.
    """
    if len(theirs) != len(ours):
        return Mismatch(min(len(theirs), len(ours)) + 1, np.inf, np.inf, 0.0)
    for l, (t, o, tol) in enumerate(zip(theirs, ours, tolerances), start=1):
        t = np.asarray(t, dtype=np.float64)
        if t.shape != o.shape:
            return Mismatch(l, np.inf, np.inf, tol)
        diff = np.abs(t - o).max(initial=0.0)
        if not diff <= tol:
            return Mismatch(l, float(diff), float(diff / max(np.abs(o).max(initial=0.0), np.finfo(float).tiny)), tol)
    return None


def matches(theirs, ours, tolerances):
    """True when every layer of ``theirs`` is within its tolerance of ``ours``."""
    return first_mismatch(theirs, ours, tolerances) is None


def curvature_bound(kind):
    """``lambda`` with ``||dLoss/dX||_F <= lambda ||X - M||_F`` on every drawn case of ``kind``.

    The problem's :attr:`~dlnref.problems.Problem.oracle_gradient_bound`:
    ``1/(m n) <= 1/4`` (factorization, m, n >= 2), ``1/|Omega| <= 1/3``
    (completion, ``|Omega| >= 3``), ``||A||_op^2 <= 9`` (sensing, drawn so).

    Raises
    ------
    InputError
        For a problem that states no bound: no step size is provably safe for it.
    """
    bound = problem_class(kind).oracle_gradient_bound
    if bound is None:
        raise InputError(f"the problem {kind!r} states no oracle_gradient_bound, so no step size provably keeps "
                         "dlnref's reference trajectory bounded; give its class one to run trajectory checks")
    return bound


def trajectory_lr_limit(kind, steps, outer_lr_scale, depth):
    """Largest lr at which dlnref's run of ``steps`` steps provably stays bounded on every drawn case.

    ``delta / (T max(1, alpha) B^(L-1) lambda R)``, see the module's notes.
    """
    B = 1 + DELTA
    R = math.sqrt(MAX_SIZE) * B**depth + 1
    return DELTA / (max(steps, 1) * max(1.0, outer_lr_scale) * B ** (depth - 1) * curvature_bound(kind) * R)


def _run(problem, weights, lr, outer_lr_scale, steps):
    run = gradient_descent(problem, weights, lr, steps, outer_lr_scale=outer_lr_scale, blas_threads=None,
                           observe=lambda step, w: {"X": end_to_end(w)})
    return run.history["X"]


def reference_trajectory(problem, weights, lr, outer_lr_scale, steps, dtype=np.float64):
    """The exact trajectory ``[X_0, ..., X_T]`` (longdouble) and the tolerance of each step for ``dtype``.

    Parameters
    ----------
    problem : RecoveryProblem (float64, NumPy)
    weights : list of ndarray, float64, input first
    lr, outer_lr_scale : float
    steps : int
    dtype : numpy dtype
        The dtype of the checked implementation.

    Returns
    -------
    exact : list of ndarray (longdouble), shape (m, n)
    tolerances : list of float
    """
    wide = np.longdouble
    exact = _run(problem.astype(wide), [w.astype(wide) for w in weights], lr, outer_lr_scale, steps)
    plain = _run(problem, weights, lr, outer_lr_scale, steps)
    flipped = _run(problem.transposed(), [w.T for w in weights[::-1]], lr, outer_lr_scale, steps)
    eps, eps64 = np.finfo(dtype).eps, np.finfo(np.float64).eps
    K = weights[0].shape[1] + sum(w.shape[0] for w in weights)
    tolerances = []
    for x, a, b in zip(exact, plain, flipped):
        spread = max(np.abs(a - x).max(), np.abs(b.T - x).max())
        floor = 8 * eps * K * max(1.0, float(np.linalg.norm(x.astype(np.float64))))
        tolerances.append(ORDERING_MARGIN * float(spread) * eps / eps64 + floor)
    return exact, tolerances
