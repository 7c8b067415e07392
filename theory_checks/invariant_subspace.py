"""Claim 1: gradient descent moves only a 2r-dimensional subspace of each layer."""

import math

import numpy as np

from dlnref import to_numpy
from dlnref.dynamics import invariant_subspace_residuals, singular_values
from dlnref.experiments.compare import compare_with_snapshots, problem_of, setup
from dlnref.problems import paper_problems

from .verdict import Finding, Verdict

CLAIM = "From an orthogonal init, each layer keeps d-2r equal singular values on a fixed subspace; only 2r directions move."
PAPER = ("W_l(t) = U_l [[W~_l(t), 0], [0, rho(t) I_{d-2r}]] V_l^T with U_l, V_l fixed (Yaras et al. 2023): "
         "a theorem for deep matrix factorization, an empirical observation for completion and sensing.")

#: float64 rounding, amplified by the steps of a run and the conditioning of the
#: eps-sized singular values, stays far below this; the theory says 0.
EXACT_TOL = 1e-8


def update_rank_bound(scale, depth, top_singular_value):
    """Tolerance on ``s_{2r+1}(W_l(t) - W_l(0)) / s_1(...)``: ``4 eps^L / s_1(M)``.

    The complement's rho drifts by about ``eps^(2L-1)`` per unit of time while
    the 2r-block moves by at least ``eps^(L-1) s_1(M)``, so the ratio is largest
    at the first step, about ``eps^L / s_1(M)``; the factor 4 is headroom.
    """
    return 4 * scale**depth / top_singular_value


def rounding_floor(step, w_init, update_norm):
    """The update rank that float64 rounding alone can show: ``4 u (t + 1) ||W_l(0)||_F / s_1(update)``.

    Each of the t updates rounds every entry of ``W_l`` by up to ``u |W_l|``
    (u the unit roundoff), so the computed ``W_l(t) - W_l(0)`` carries an error
    of norm up to about ``u (t + 1) ||W_l||_F``, whatever the theory says. With a
    tiny init (eps^L below ~1e-10) that floor, not the dynamics, sets the
    measured ratio.
    """
    return 4 * np.finfo(np.float64).eps / 2 * (step + 1) * float(np.linalg.norm(to_numpy(w_init))) / update_norm


def worst_residuals(snapshots, steps, rank, bound):
    """Worst of each :func:`invariant_subspace_residuals` measure over layers and recorded steps.

    Parameters
    ----------
    snapshots : list of list of array
        ``snapshots[t][l]`` is layer l at the t-th recorded step; the last
        snapshot is the reference for the fixed complement.
    steps : sequence of int
        The step of each snapshot.
    rank : int
    bound : float
        The theory's bound on the update rank (:func:`update_rank_bound`).

    Returns
    -------
    dict of str -> float
        The worst ``equal_spread``, angles and ``update_rank``;
        ``update_rank_over_tolerance``, the worst of ``update_rank / (bound +
        rounding_floor)`` (at most 1 when the claim holds); and, prefixed
        ``final_``, the spread and update rank at the last step (its angles are
        0 by construction, the last step being the reference).
    """
    worst, final = {"update_rank_over_tolerance": 0.0}, {}
    for layer in range(len(snapshots[0])):
        w_init, w_ref = snapshots[0][layer], snapshots[-1][layer]
        for step, weights in zip(steps, snapshots):
            residuals = invariant_subspace_residuals(w_init, weights[layer], w_ref, rank)
            for name, value in residuals.items():
                if not math.isnan(value):
                    worst[name] = max(worst.get(name, 0.0), value)
            if residuals["update_norm"] > 0:
                tolerance = bound + rounding_floor(step, w_init, residuals["update_norm"])
                worst["update_rank_over_tolerance"] = max(worst["update_rank_over_tolerance"],
                                                          residuals["update_rank"] / tolerance)
        for name in ("equal_spread", "update_rank"):
            final[f"final_{name}"] = max(final.get(f"final_{name}", 0.0), residuals[name])
    worst.pop("update_norm")
    return {**worst, **final}


def parts(size):
    """Independent parts of the check, named after the run each reads: one per problem."""
    return list(paper_problems())


def check(size="quick", seed=0, part=None):
    """Measure the invariant-subspace form of every layer of the wide DLN, on all three problems (or ``part``)."""
    findings = []
    for problem in paper_problems() if part is None else [part]:
        config = setup(size, problem, seed)
        run = compare_with_snapshots(config)
        bound = update_rank_bound(config.scale, config.depth,
                                  float(to_numpy(singular_values(problem_of(config).target))[0]))
        history = run["wide"]["history"]
        worst = worst_residuals(history["weights"], history["step"], config.rank, bound)
        exact = problem == "factorization"
        holds = (max(worst["equal_spread"], worst["left_angle"], worst["right_angle"]) <= EXACT_TOL
                 and worst["update_rank_over_tolerance"] <= 1)
        findings.append(Finding(
            problem=f"{problem}, d={config.d}, r={config.rank}, L={config.depth}",
            measured={**worst, "steps": run["wide"]["steps_run"]},
            tolerance=f"spread, angles <= {EXACT_TOL:g}; update rank <= 4 eps^L/s_1 = {bound:.2g} "
                      "+ float64 rounding floor",
            holds=holds, exact=exact,
        ))
    return Verdict("invariant_subspace", CLAIM, PAPER, findings)
