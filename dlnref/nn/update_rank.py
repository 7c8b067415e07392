"""How low-dimensional a layer's updates are: ``W_l(t) - W_l(0)`` for any layer, linear or not.

The paper's abstract: "for many deep models, updates to the weight matrices
occur within a low-dimensional invariant subspace". For a layer with
snapshots ``W(0)``, ``W(t)``, these measures read that off the update
``D(t) = W(t) - W(0)``: its singular values, the share of its energy in the
top k, and whether its top-k subspaces stay put between two times.
"""

import math

from ..backend import array_namespace
from ..dynamics import principal_angles, singular_values, top_singular_subspaces
from ..errors import InputError


def energy_fraction(s, k):
    """``sum_{i<=k} s_i^2 / sum_i s_i^2`` for singular values ``s`` (decreasing); NaN when all are 0."""
    xp = array_namespace(s)
    total = float(xp.sum(s**2))
    return float(xp.sum(s[:k] ** 2)) / total if total > 0 else math.nan


def captured_energy(update, left, right):
    """Share of ``update``'s energy inside given subspaces: ``||U^T D V||_F^2 / ||D||_F^2``.

    Parameters
    ----------
    update : array, shape (m, n)
    left : array, shape (m, k), orthonormal columns
    right : array, shape (n, k), orthonormal columns
    """
    xp = array_namespace(update, left, right)
    total = float(xp.sum(update**2))
    return float(xp.sum((left.T @ update @ right) ** 2)) / total if total > 0 else math.nan


def update_rank_measures(w_init, w_mid, w_end, k):
    """The low-dimensional-update measures of one layer between three snapshots.

    Parameters
    ----------
    w_init, w_mid, w_end : array, shape (m, n)
        ``W(0)``, ``W(t_1)`` and ``W(t_2)`` with ``0 < t_1 < t_2``.
    k : int
        Dimension of the subspace, ``1 <= k < min(m, n)``.

    Returns
    -------
    dict of str -> float
        ``energy_top_k``: share of ``||D(t_2)||_F^2`` in its top k singular values;
        ``ratio_k1``: ``s_{k+1} / s_1`` of ``D(t_2)``;
        ``left_angle``, ``right_angle``: the largest principal angle (radians)
        between the top-k left (right) singular subspaces of ``D(t_1)`` and ``D(t_2)``;
        ``captured``: share of ``D(t_2)``'s energy inside the top-k subspaces of
        ``D(t_1)`` (1 when the later update stays in the earlier subspace).
    """
    array_namespace(w_init, w_mid, w_end)
    if not 1 <= k < min(w_init.shape):
        raise InputError(f"k must satisfy 1 <= k < min(m, n) = {min(w_init.shape)}, got {k}")
    early, late = w_mid - w_init, w_end - w_init
    s = singular_values(late)
    u1, v1 = top_singular_subspaces(early, k)
    u2, v2 = top_singular_subspaces(late, k)
    return {
        "energy_top_k": energy_fraction(s, k),
        "ratio_k1": float(s[k] / s[0]) if float(s[0]) > 0 else math.nan,
        "left_angle": float(principal_angles(u1, u2)[-1]),
        "right_angle": float(principal_angles(v1, v2)[-1]),
        "captured": captured_energy(late, u1, v1),
    }


def layer_reports(snapshots, steps, ks):
    """:func:`update_rank_measures` for every layer of a recorded run, mid-run against the end.

    Parameters
    ----------
    snapshots : list of list of array
        ``snapshots[t][l]``: layer l at the t-th recorded step (at least three records).
    steps : sequence of int
        The step of each snapshot.
    ks : sequence of int
        The subspace dimension k of each layer.

    Returns
    -------
    list of dict
        Per layer, the measures between ``t_1`` (the record at half the run)
        and ``t_2`` (the last), plus ``k``, ``t1``, ``t2``, ``singular_values``
        (of ``D(t_2)``, a host list) and ``energy`` (``energy_fraction`` of
        ``D(t)`` at every record, NaN at step 0).
    """
    if len(snapshots) < 3:
        raise InputError(f"need at least 3 snapshots (start, middle, end), got {len(snapshots)}")
    mid = len(snapshots) // 2
    reports = []
    for l, k in enumerate(ks):
        w0 = snapshots[0][l]
        report = update_rank_measures(w0, snapshots[mid][l], snapshots[-1][l], k)
        report.update(k=k, t1=steps[mid], t2=steps[-1], steps=list(steps),
                      singular_values=[float(v) for v in singular_values(snapshots[-1][l] - w0)],
                      energy=[energy_fraction(singular_values(w[l] - w0), k) for w in snapshots])
        reports.append(report)
    return reports
