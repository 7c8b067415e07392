r"""Claim 3: the compressed DLN is never worse than the wide one, and faster.

The theorem (Kwon et al. 2024), paraphrased
-------------------------------------------
Setting:

- deep matrix factorization, ``loss = ||X - M||_F^2 / (2 m n)``, with a target
  ``M`` of rank r;
- the wide DLN: L layers of size d x d from the orthogonal init
  ``W_l(0) = eps O_l``;
- the compressed DLN (C-DLN): inner width ``r_hat >= r``, from the spectral
  init of ``M`` itself (:func:`dlnref.compress`), ``W~_1 = eps V^T``,
  ``W~_l = eps I``, ``W~_L = eps U``;
- both trained by gradient descent with the same step size.

Assumption: incremental learning. The wide DLN fits the target's principal
components one at a time, largest first, each inside a small subspace
(claim 2, measured by ``theory_checks.incremental_learning``).

Conclusion: at every iteration t,

.. math::

    \|\tilde X(t) - M\|_F \le \|X(t) - M\|_F,

with ``X~`` the C-DLN's end-to-end matrix and ``X`` the wide DLN's.

Nothing is proved for completion or sensing, nor for the 2x speedup: those
are the paper's experiments, and :func:`check` reports what it measures.
How the theorem is tested here: :func:`never_worse` at every recorded step,
over several seeds and sizes (depth 2 among them, ``r_hat = 2r``, the same
step size and ``alpha = 1`` for both networks), with a float64 rounding slack
of :data:`ROUNDING`. The assumption is not imposed first: the runs show
whether the conclusion holds on them.
"""

import functools

from dlnref.errors import InputError
from dlnref.experiments.compare import compare_with_snapshots, run_compare, setup

from .verdict import Finding, Verdict

CLAIM = "With the spectral init, the compressed DLN's recovery error is at most the wide DLN's at every step."
#: One-line summary for the verdict table; the theorem and its assumptions are in the module docstring.
PAPER = ("Theorem (deep matrix factorization, assuming incremental learning): the C-DLN's error is lower at every "
         "iteration. Experiments: more than 2x faster training overall.")

#: Relative slack for float64 rounding when comparing two errors at one step.
ROUNDING = 1e-10
#: The paper's speedup claim.
SPEEDUP = 2.0
#: The threshold at which speed is compared.
REACH = "0.001"

#: Extra factorization cases, (d, rank, depth, lr, seeds) per size: many seeds and sizes.
FACTORIZATION_CASES = {
    "quick": [(20, 2, 3, 10.0, range(4)), (30, 3, 3, 20.0, range(4)), (24, 4, 4, 10.0, range(2)),
              (20, 2, 2, 10.0, range(2))],
    "full": [(100, 10, 3, 1.0, range(3)), (100, 5, 3, 1.0, range(2)), (60, 5, 4, 1.0, range(2)),
             (100, 10, 2, 1.0, range(1))],
}


def never_worse(wide, compressed):
    """Largest ``compressed / wide - 1`` over the steps both recorded, and the step where it occurs."""
    worst, at = -1.0, None
    for step, e_wide, e_comp in zip(wide["step"], wide["recovery_error"], compressed["recovery_error"]):
        excess = e_comp / e_wide - 1
        if excess > worst:
            worst, at = excess, step
    return worst, at


def _factorization_finding(size, case, seed):
    """One seed of a factorization case; :func:`combine` keeps the worst seed of each case."""
    d, rank, depth, lr, seeds = case
    config = setup(size, "factorization", seed, d=d, rank=rank, depth=depth, lr=lr, record_every=1, width=2 * rank)
    run = run_compare(config)
    excess, at = never_worse(run["wide"]["history"], run["compressed"]["history"])
    return Finding(
        problem=f"factorization, d={d}, r={rank}, L={depth}, {len(seeds)} seeds",
        measured={"max_excess": excess, "at_seed_step": (seed, at)},
        tolerance=f"compressed/wide - 1 <= {ROUNDING:g} at every step",
        holds=excess <= ROUNDING, exact=True,
    )


def combine(findings):
    """The parts' findings in order, each factorization case's seeds merged into its worst (the first, on ties)."""
    merged = []
    for finding in findings:
        same_case = merged and finding.problem == merged[-1].problem and finding.problem.startswith("factorization")
        if not same_case:
            merged.append(finding)
        elif finding.measured["max_excess"] > merged[-1].measured["max_excess"]:
            merged[-1] = finding
    return merged


def _speed_finding(size, problem, seed, **changes):
    config = setup(size, problem, seed, **changes)
    run = compare_with_snapshots(config) if not changes else run_compare(config)
    excess, at = never_worse(run["wide"]["history"], run["compressed"]["history"])
    steps, seconds = run["speedup"]["steps_to"][REACH], run["speedup"]["seconds_to"][REACH]
    label = f"{problem}, d={config.d}, r={config.rank}, L={config.depth}, alpha={run['config']['outer_lr_scale']:g}"
    return Finding(
        problem=label,
        measured={"steps_ratio": steps, "seconds_ratio": seconds, "max_excess": excess,
                  "final_wide": run["wide"]["final_error"], "final_compressed": run["compressed"]["final_error"]},
        tolerance=f"wide/compressed seconds to {REACH} >= {SPEEDUP:g}",
        holds=seconds is not None and seconds >= SPEEDUP, exact=False,
    )


def _parts(size, seed):
    """``{name: function returning the part's Finding}``: each seed of each factorization case, then the speedups."""
    parts = {"factorization, d={}, r={}, L={}, seed {}".format(*case[:3], s):
             functools.partial(_factorization_finding, size, case, s)
             for case in FACTORIZATION_CASES[size] for s in case[4]}
    parts["completion"] = functools.partial(_speed_finding, size, "completion", seed)
    parts["sensing"] = functools.partial(_speed_finding, size, "sensing", seed)
    parts["completion, L=2"] = functools.partial(_speed_finding, size, "completion", seed, depth=2)
    return parts


def parts(size):
    """Independent parts of the check; "completion" and "sensing" read the runs the other claims read."""
    return list(_parts(size, 0))


def check(size="quick", seed=0, part=None):
    """The factorization theorem over seeds and sizes; speedups for completion and sensing, depth 2 included.

    ``part`` (one of :func:`parts`) computes that part's finding only (for one seed of a factorization case).
    """
    chosen = _parts(size, seed)
    if part is not None and part not in chosen:
        raise InputError(f"part must be one of {tuple(chosen)}, got {part!r}")
    findings = [find() for name, find in chosen.items() if part is None or name == part]
    return Verdict("compressed_faster", CLAIM, PAPER, findings if part is not None else combine(findings))
