r"""The compressed DLN (C-DLN) of Kwon et al.: narrow inner layers, spectral init.

A wide DLN for an ``(m, n)`` target has ``L`` layers of size about ``d x d``.
Gradient descent from a small orthogonal init only moves a ``2r``-dimensional
subspace of each layer (the invariant subspace), so the paper trains instead

.. math::

    \tilde W_1 \in \mathbb{R}^{w \times n}, \qquad
    \tilde W_l \in \mathbb{R}^{w \times w} \ (l = 2, \dots, L-1), \qquad
    \tilde W_L \in \mathbb{R}^{m \times w},

with ``w >= r`` (the experiments use ``w = 2r``), started from the top
singular vectors of the problem's surrogate.
"""

from ._checks import check_int, check_positive
from .errors import InputError
from .problems import check_problem


def compress(problem, depth, width=None, scale=1e-2):
    """Spectrally initialised weights of the compressed DLN.

    Parameters
    ----------
    problem : RecoveryProblem
        Supplies ``top_singular(width)``, the top singular triplets of its
        surrogate (a truncated SVD above :data:`dlnref.backend.FULL_SVD_MAX`),
        and, for the default width, ``rank``.
    depth : int
        Number of layers L >= 2.
    width : int or None
        Inner width ``w`` with ``1 <= w <= min(m, n)``; None means
        ``2 * problem.rank``, the paper's choice. Note that ``problem.rank``
        is the rank of the *true* target ``M``, which the problem knows because
        it was built from ``M``, but which a real solver would not know (it
        sees only the observed entries or the measurements). With real data,
        pass ``width`` yourself, say twice a rank estimated from the
        surrogate's singular values.
    scale : float
        The init scale ``eps``.

    Returns
    -------
    list of array
        ``[W~_1, ..., W~_L]`` with

        - ``W~_1 = eps V_w^T``, shape ``(w, n)``;
        - ``W~_l = eps I_w``, shape ``(w, w)``, for l = 2..L-1;
        - ``W~_L = eps U_w``, shape ``(m, w)``;

        where ``U_w`` and ``V_w`` hold the top-``w`` left and right singular
        vectors of the surrogate (signs as fixed by :func:`dlnref.backend.svd`).
        So the end-to-end matrix starts at ``eps^L U_w V_w^T``.
    """
    check_problem(problem)
    depth = check_int("depth", depth, 1)
    if depth < 2:
        raise InputError(f"depth must be >= 2 for a compressed DLN (one layer has no inner width), got {depth}")
    scale = check_positive("scale", scale)
    m, n = problem.shape
    if width is None:
        width = 2 * problem.rank
        if width > min(m, n):
            raise InputError(
                f"the default width 2 * rank = {width} exceeds min(m, n) = {min(m, n)}; pass width explicitly"
            )
    width = check_int("width", width, 1)
    if width > min(m, n):
        raise InputError(f"width must be <= min(m, n) = {min(m, n)} for a ({m}, {n}) problem, got {width}")
    U, _, Vh = problem.top_singular(width)
    xp = problem.xp
    inner = [scale * xp.eye(width, dtype=U.dtype) for _ in range(depth - 2)]
    return [scale * Vh, *inner, scale * U]


def parameter_count(weights):
    """Number of trainable entries, ``sum_l d_l d_{l-1}``.

    For a compressed DLN of a ``(d, d)`` problem this is ``2 d w + (L - 2) w^2``;
    for the wide DLN it is ``L d^2``.

    Parameters
    ----------
    weights : list of array, W_l of shape (d_l, d_{l-1})

    Returns
    -------
    int
    """
    return sum(int(W.shape[0]) * int(W.shape[1]) for W in weights)
