"""Measures of the learning dynamics: singular values, subspace angles, the invariant subspace.

The theory checks, the figures and users call these same functions. Each takes
arrays of any backend; scalar measures come back as Python floats, vector
measures as arrays of the input's backend.
"""

import math

import numpy as np

from .backend import array_namespace, svd
from .errors import InputError


def singular_values(x):
    """Singular values of ``x`` (shape ``(m, n)``), in decreasing order, shape ``(min(m, n),)``."""
    return svd(x)[1]


def orthonormal_basis(a):
    """Orthonormal basis of the column space of ``a`` (shape ``(n, p)``, full column rank), by QR."""
    xp = array_namespace(a)
    return xp.linalg.qr(a)[0]


def principal_angles(a, b):
    r"""Principal angles between the column spaces of ``a`` and ``b``.

    Parameters
    ----------
    a : array, shape (n, p)
    b : array, shape (n, q)
        Both of full column rank (they need not be orthonormal).

    Returns
    -------
    array, shape (min(p, q),)
        Angles in radians, increasing, in ``[0, pi/2]``.

    Notes
    -----
    With orthonormal bases ``Q_a``, ``Q_b`` (q <= p after a swap), the cosines
    are the singular values of ``Q_a^T Q_b`` and the sines those of
    ``Q_b - Q_a Q_a^T Q_b``. Small angles are taken from the sines and large
    ones from the cosines, so both ends are accurate to rounding
    (Knyazev and Argentati, SIAM J. Sci. Comput. 2002):

    .. math::

        \theta_k = \begin{cases}
            \arcsin s_{q+1-k}(Q_b - Q_a Q_a^T Q_b) & \text{if } \theta_k < \pi/4,\\
            \arccos s_k(Q_a^T Q_b) & \text{otherwise,}
        \end{cases}

    with ``s_k`` the k-th largest singular value: the k-th smallest angle has
    the k-th largest cosine but the k-th smallest sine.
    """
    xp = array_namespace(a, b)
    if a.shape[1] < b.shape[1]:
        a, b = b, a
    qa, qb = orthonormal_basis(a), orthonormal_basis(b)
    cosines = xp.clip(svd(qa.T @ qb)[1], 0.0, 1.0)
    sines = xp.clip(svd(qb - qa @ (qa.T @ qb))[1], 0.0, 1.0)
    from_cos = xp.acos(cosines)  # cosines decrease, so these angles increase
    from_sin = xp.flip(xp.asin(sines))  # sines decrease, so asin gives the angles largest first: flip to match
    return xp.where(from_cos < math.pi / 4, from_sin, from_cos)


def largest_principal_angle(a, b):
    """The largest principal angle between the column spaces of ``a`` and ``b``, in radians."""
    return float(principal_angles(a, b)[-1])


def top_singular_subspaces(x, k):
    """The top-``k`` left and right singular vectors of ``x``: ``U_k`` (m, k) and ``V_k`` (n, k)."""
    U, _, Vh = svd(x)
    return U[:, :k], Vh[:k, :].T


def equal_cluster(s, size, near=None):
    """The run of ``size`` consecutive singular values that are closest to equal.

    Parameters
    ----------
    s : array, shape (k,)
        Singular values in decreasing order.
    size : int
        Length of the run, ``1 <= size <= k``.
    near : float, optional
        A run of one value is always "equal"; then the value closest to
        ``near`` is taken (the init scale, from which rho drifts only by
        O(eps^(2L-1)) per unit time). Without ``near``, the first.

    Returns
    -------
    start : int
        The run is ``s[start:start + size]``.
    spread : float
        Its relative spread ``(s[start] - s[start + size - 1]) / s[start + size - 1]``,
        0 when the run is exactly equal.
    """
    spreads = [float((s[i] - s[i + size - 1]) / s[i + size - 1]) for i in range(s.shape[0] - size + 1)]
    if size == 1 and near is not None:
        start = min(range(len(spreads)), key=lambda i: abs(float(s[i]) - near))
    else:
        start = min(range(len(spreads)), key=spreads.__getitem__)
    return start, spreads[start]


def moving_and_fixed(s, rank, near=None):
    """Split a layer's singular values into the 2r that move and the d - 2r equal ones.

    Parameters
    ----------
    s : array, shape (d,)
        Singular values in decreasing order.
    rank : int
        The target's rank r, with ``2 r < d``.
    near : float, optional
        Passed to :func:`equal_cluster`.

    Returns
    -------
    moving : list of int
        The 2r indices outside the most nearly equal run (:func:`equal_cluster`).
    fixed : list of int
        The ``d - 2r`` indices of that run.
    """
    size = s.shape[0] - 2 * rank
    start = equal_cluster(s, size, near)[0]
    fixed = list(range(start, start + size))
    return [i for i in range(s.shape[0]) if i not in fixed], fixed


def invariant_subspace_residuals(w_init, w_t, w_ref, rank):
    r"""How far one layer is from the invariant-subspace form of Yaras et al.

    The theorem (deep matrix factorization, rank-r target, orthogonal init,
    d >= 2r) says that for all t

    .. math::

        W_l(t) = U_l \begin{bmatrix} \tilde W_l(t) & 0 \\ 0 & \rho(t) I_{d-2r} \end{bmatrix} V_l^T

    with ``U_l``, ``V_l`` fixed. The ``d - 2r`` equal singular values
    ``rho(t)`` need not be the smallest: the 2r-block can shrink some
    directions below rho. So the complement ``(U_perp, V_perp)`` is read off
    a reference iterate ``w_ref`` (the last one, where the block has moved
    away from rho) as the singular vectors of its most nearly equal run of
    ``d - 2r`` singular values (:func:`equal_cluster`; a run of one is the value
    nearest the init scale, ``s_1(W_l(0))``, the orthogonal init's only value).

    Parameters
    ----------
    w_init, w_t, w_ref : array, shape (m, n)
        ``W_l(0)``, ``W_l(t)`` and the reference ``W_l(T)``.
    rank : int
        The target's rank r; requires ``2 r < min(m, n)``.

    Returns
    -------
    dict of str -> float
        ``equal_spread``: the relative spread of the most nearly equal run of
        ``min(m, n) - 2r`` singular values of ``W_l(t)`` (0 when d - 2r of them
        equal one rho);
        ``left_angle``: the largest principal angle between
        ``span(W_l(t) V_perp)`` and ``span(U_perp)``;
        ``right_angle``: the same for ``span(W_l(t)^T U_perp)`` and ``span(V_perp)``
        (both 0 when the complement stays where it was);
        ``update_rank``: ``s_{2r+1}(W_l(t) - W_l(0)) / s_1(W_l(t) - W_l(0))``
        (0 when the update has rank <= 2r; NaN at t = 0);
        ``update_norm``: ``s_1(W_l(t) - W_l(0))``.
    """
    array_namespace(w_init, w_t, w_ref)
    k = 2 * rank
    size = min(w_t.shape) - k
    if size < 1:
        raise InputError(f"rank must satisfy 2 * rank < min(m, n) = {min(w_t.shape)}, got {rank}")
    near = float(singular_values(w_init)[0])
    U, s_ref, Vh = svd(w_ref)
    start = equal_cluster(s_ref, size, near)[0]
    u_perp, v_perp = U[:, start:start + size], Vh[start:start + size, :].T
    update = singular_values(w_t - w_init)
    top = float(update[0])
    return {
        "equal_spread": equal_cluster(singular_values(w_t), size, near)[1],
        "left_angle": largest_principal_angle(w_t @ v_perp, u_perp),
        "right_angle": largest_principal_angle(w_t.T @ u_perp, v_perp),
        "update_rank": float(update[k]) / top if top > 0 else math.nan,
        "update_norm": top,
    }


def first_reach_times(steps, trajectory, targets, fraction=0.9):
    """First recorded step at which each trajectory reaches ``fraction`` of its target.

    Parameters
    ----------
    steps : sequence of int, length T
        The recorded steps.
    trajectory : sequence of sequences, T x k
        ``trajectory[t][i]``, say the i-th singular value of ``X(steps[t])``.
    targets : sequence of float, length k
    fraction : float

    Returns
    -------
    list of int or None
        ``t_i = min{steps[t] : trajectory[t][i] >= fraction * targets[i]}``,
        None where it is never reached.
    """
    times = []
    for i, target in enumerate(targets):
        reached = [step for step, values in zip(steps, trajectory) if values[i] >= fraction * target]
        times.append(reached[0] if reached else None)
    return times


def saxe_mode(tau, s, u0):
    r"""Closed-form gradient-flow mode of a depth-2 linear network (Saxe et al. 2014).

    For ``X = W_2 W_1`` under ``loss = ||X - M||_F^2 / 2`` with a balanced init
    aligned with the target's singular vectors, a mode with target value
    ``s`` and start ``u0`` evolves as ``du/dtau = 2 u (s - u)``, solved by

    .. math::

        u(\tau) = \frac{s\, e^{2 s \tau}}{e^{2 s \tau} - 1 + s / u_0}.

    Gradient descent with step ``eta`` on dlnref's factorization loss
    ``||X - M||_F^2 / (2 m n)`` follows it at ``tau = eta * k / (m n)`` after k
    steps.

    Parameters
    ----------
    tau : float or numpy.ndarray
        Host times.
    s, u0 : float
        Target singular value and initial value (both > 0).

    Returns
    -------
    numpy.ndarray, like ``tau``
    """
    growth = np.exp(2 * s * np.asarray(tau, dtype=np.float64))
    return s * growth / (growth - 1 + s / u0)
