"""Claim 2: a DLN fits the target's singular values one at a time, largest first."""

from dlnref import end_to_end, to_numpy
from dlnref.dynamics import first_reach_times, largest_principal_angle, singular_values, top_singular_subspaces
from dlnref.experiments.compare import compare_with_snapshots, problem_of, setup
from dlnref.problems import paper_problems

from .verdict import Finding, Verdict

CLAIM = "The i-th singular value of X(t) reaches 90% of the target's in order t_1 < t_2 < ... < t_r."
PAPER = ("DLNs fit the principal components one at a time (incremental learning), while the top singular "
         "vectors of W_L and W_1 turn towards the target's.")

#: 90% of a target singular value counts as learnt.
FRACTION = 0.9
#: Largest principal angle (radians) between the top-r singular subspaces of X(T) and of M
#: at the end of the run: the run stops at recovery error 1e-4, so the angle is about that size.
ANGLE_TOL = 1e-3


def learning_times(snapshots, steps, target, rank):
    """``t_i`` for i = 1..r, and the final subspace angles, from weight snapshots.

    Returns
    -------
    times : list of int or None
    angles : tuple of float
        Largest principal angle between the top-r left (then right) singular
        subspaces of the last ``X`` and of ``target``.
    """
    values = [to_numpy(singular_values(end_to_end(w)))[:rank] for w in snapshots]
    s_target = to_numpy(singular_values(target))[:rank]
    times = first_reach_times(steps, values, s_target, FRACTION)
    u_x, v_x = top_singular_subspaces(end_to_end(snapshots[-1]), rank)
    u_m, v_m = top_singular_subspaces(target, rank)
    return times, (largest_principal_angle(u_x, u_m), largest_principal_angle(v_x, v_m))


def parts(size):
    """Independent parts of the check, named after the run each reads: one per problem."""
    return list(paper_problems())


def check(size="quick", seed=0, part=None):
    """Measure the order of the learning times on the wide DLN of each problem (or of ``part`` only)."""
    findings = []
    for problem in paper_problems() if part is None else [part]:
        config = setup(size, problem, seed)
        run = compare_with_snapshots(config)
        history = run["wide"]["history"]
        target = problem_of(config).target
        times, angles = learning_times(history["weights"], history["step"], target, config.rank)
        reached = all(t is not None for t in times)
        ordered = reached and all(a < b for a, b in zip(times, times[1:]))
        gaps = [b - a for a, b in zip(times, times[1:])] if reached else []
        findings.append(Finding(
            problem=f"{problem}, d={config.d}, r={config.rank}, L={config.depth}",
            measured={"times": times, "min_gap": min(gaps) if gaps else None,
                      "left_angle": angles[0], "right_angle": angles[1]},
            tolerance=f"t_i strictly increasing; final angles <= {ANGLE_TOL:g} rad",
            holds=ordered and max(angles) <= ANGLE_TOL,
            exact=problem == "factorization",
        ))
    return Verdict("incremental_learning", CLAIM, PAPER, findings)
