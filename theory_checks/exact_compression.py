"""Yaras et al.'s law of parsimony: the wide DLN is a width-2r network plus one scale per layer.

The wide network and its exact compression (:func:`dlnref.compress_exact`) are
trained side by side, and every layer and the end-to-end matrix rebuilt from
the pair are compared with the wide network's.

Factorization rows compare at every step; the theory makes the two the same
trajectory, so the difference must stay at float64 rounding (:func:`layer_tolerance`).
Completion and sensing rows read the wide runs that the other checks share
(:func:`dlnref.experiments.compare.compare_with_snapshots`) at their recorded steps, and
report how far the pair, trained on the projection of the gradient onto the
form, drifts from them, and when.
"""

import math

import numpy as np

from dlnref import compress_exact, gradient_descent, to_numpy
from dlnref.compress_exact import exact_step, train_exact
from dlnref.experiments.compare import build, compare_with_snapshots, problem_of, setup
from dlnref.train import auto_lr

from .verdict import Finding, Verdict

CLAIM = ("Gradient descent on the wide DLN from an orthogonal init equals, step for step, gradient descent on a "
         "width-2r network plus one scale per layer (its exact compression).")
PAPER = ("Yaras et al. (2023), PAPER.md: W_l(t) = U_l [[W~_l(t), 0], [0, rho(t) I]] V_l^T with U_l, V_l fixed; "
         "a theorem for deep matrix factorization, an empirical observation for completion and sensing.")

#: Unit roundoff of float64.
UNIT_ROUNDOFF = np.finfo(np.float64).eps / 2
#: Drifts (relative differences of the end-to-end matrices) whose first steps the empirical rows report.
DRIFTS = (1e-3, 1e-1)

#: Factorization cases per size: (changes to the shared setup), the second with discrepant rates.
FACTORIZATION_CASES = {
    "quick": [{}, {"lr": 10.0, "outer_lr_scale": 2.0}],
    "full": [{}],
}


def layer_tolerance(d, step, condition, depth):
    """Largest relative difference of a layer that float64 rounding explains: ``2 (d + 1) u (t + 2) kappa^(L-1)``.

    Parameters
    ----------
    d : int
        Width of the wide network.
    step : int
        ``t``, the updates applied so far.
    condition : float
        ``kappa``, the largest condition number ``s_1(W_l) / s_min(W_l)`` of
        any layer up to step ``t``.
    depth : int
        ``L``.

    Notes
    -----
    First-order propagation of rounding, in four factors:

    - ``(d + 1) u``: one step rounds a layer by ``u ||W_l||`` (the update's
      subtraction) plus ``d u`` times the size of the update (the gradient's
      matmuls, inner dimension ``d``), and a stable step moves a layer by less
      than its size;
    - ``2``: the wide network and the pair each make such errors;
    - ``t + 2``: the errors of ``t`` steps add up, plus one step's worth for
      the rebuild of the wide layers from the pair;
    - ``kappa^(L-1)``: an error of relative size ``u`` made in a layer's
      smallest direction is ``u kappa`` relative to that direction, and while
      incremental learning raises the direction from ``eps`` towards
      ``s^(1/L)``, ``u' ~ u^(2 - 2/L)`` amplifies a relative error by
      ``(u / u_0)^(1 - 2/L)``, at most ``kappa^(L-2)``.

    ``kappa`` is 1 at an orthogonal init and grows only as the layers learn,
    so before they learn the tolerance is ``~ 2 d u t``.
    """
    return 2 * (d + 1) * UNIT_ROUNDOFF * (step + 2) * condition ** (depth - 1)


def layer_norms(compression):
    """Frobenius norm, spectral norm and condition number of each wide layer, read off the pair.

    The singular values of ``W_l`` are those of ``W~_l`` and, ``d - w`` times, ``|rho_l|``.
    """
    norms = []
    for W, rho in zip(compression.narrow, compression.rho):
        s, rho = np.linalg.svd(to_numpy(W), compute_uv=False), abs(float(rho))
        every = np.append(s, rho) if compression.complement > 0 else s
        frobenius = math.sqrt(float(np.sum(s**2)) + compression.complement * rho**2)
        norms.append((frobenius, float(every.max()), float(every.max() / every.min())))
    return norms


def end_to_end_tolerance(layer_tol, compression, norms):
    """``layer_tol * sum_l ||W_l||_F prod_{k != l} ||W_k||_2 / ||X||_F``: first-order rounding of the product.

    ``norms`` are the layers' :func:`layer_norms`; ``||X||_F^2 = ||X~||_F^2 + (d - w) pi^2``, from the pair.
    """
    spectral = [n[1] for n in norms]
    bound = sum(n[0] * math.prod(spectral[:l] + spectral[l + 1:]) for l, n in enumerate(norms))
    pi = math.prod(float(r) for r in compression.rho)
    X_narrow = to_numpy(_product(compression.narrow))
    x_norm = math.sqrt(float(np.sum(X_narrow**2)) + compression.complement * pi**2)
    return layer_tol * bound / x_norm


class Differences:
    """Relative differences between wide layers and the pair's rebuild, with the running condition number."""

    def __init__(self):
        self.condition = 1.0

    def __call__(self, wide, compression, step):
        """A row: ``layer_diff`` (worst layer), ``x_diff``, ``over_tolerance`` and the tolerances at ``step``."""
        rebuilt = compression.layers()
        layer_diff = max(_relative(a, b) for a, b in zip(wide, rebuilt))
        X_wide = _product(wide)
        x_diff = _relative(X_wide, compression.end_to_end())
        norms = layer_norms(compression)
        self.condition = max(self.condition, *(n[2] for n in norms))
        d, depth = int(wide[0].shape[0]), len(wide)
        tol = layer_tolerance(d, step, self.condition, depth)
        x_tol = end_to_end_tolerance(tol, compression, norms)
        return {"layer_diff": layer_diff, "x_diff": x_diff, "layer_tolerance": tol, "x_tolerance": x_tol,
                "over_tolerance": max(layer_diff / tol, x_diff / x_tol)}


def _relative(a, b):
    a, b = to_numpy(a), to_numpy(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


def _product(weights):
    X = to_numpy(weights[0])
    for W in weights[1:]:
        X = to_numpy(W) @ X
    return X


def side_by_side(problem, weights, lr, steps, outer_lr_scale=1.0, tol=0.0, compression=None):
    """Train the wide network and its exact compression together, comparing at every step.

    Parameters
    ----------
    problem : RecoveryProblem
    weights : list of array
        The wide orthogonal init.
    lr, steps, outer_lr_scale, tol
        As for :func:`dlnref.gradient_descent` (the wide run stops at ``tol``).
    compression : ExactCompression or None
        The pair to compare (None: ``compress_exact(problem, weights)``).

    Returns
    -------
    History
        The wide run's history, with the columns of :class:`Differences` at every step.
    """
    pair = [compress_exact(problem, weights) if compression is None else compression]
    differences = Differences()

    def observe(step, wide):
        row = differences(wide, pair[0], step)
        pair[0] = exact_step(problem, pair[0], lr, outer_lr_scale)
        return row

    return gradient_descent(problem, weights, lr, steps, outer_lr_scale=outer_lr_scale, tol=tol,
                            observe=observe).history


def worst(history):
    """The worst of each difference over the steps, the step where it occurs, and ``ulps_per_step``.

    ``ulps_per_step`` is the largest ``layer_diff / (u (t + 1))``: how many
    units of roundoff each step added, at most.
    """
    steps = history["step"]
    summary = {}
    for column in ("layer_diff", "x_diff", "over_tolerance"):
        values = history[column]
        i = max(range(len(values)), key=values.__getitem__)
        summary[column], summary[f"{column}_step"] = float(values[i]), steps[i]
    summary["ulps_per_step"] = float(max(v / (UNIT_ROUNDOFF * (t + 1)) for v, t in zip(history["layer_diff"], steps)))
    return summary


def _factorization_finding(size, seed, changes):
    config = setup(size, "factorization", seed, **changes).resolved()
    problem, starts = build(config)
    lr = auto_lr(problem, config.depth, config.outer_lr_scale) if config.lr == "auto" else config.lr  # as compare's
    history = side_by_side(problem, starts["wide"][0], lr, config.steps, config.outer_lr_scale, config.tol)
    summary = worst(history)
    return Finding(
        problem=f"factorization, d={config.d}, r={config.rank}, L={config.depth}, alpha={config.outer_lr_scale:g}, "
                f"lr={lr:.4g}",
        measured={**summary, "steps": history["step"][-1], "final_error": history["recovery_error"][-1]},
        tolerance="every step: layer and end-to-end differences <= 2 (d+1) u (t+2) kappa^(L-1) "
                  "(and its first-order image on X)",
        holds=summary["over_tolerance"] <= 1, exact=True,
    )


def drift(size, problem_name, seed):
    """How far the pair drifts from the shared wide run of ``problem_name``, at its recorded steps.

    Returns
    -------
    dict
        The :func:`worst` summary; ``leaves_rounding_at``, the first step past
        the rounding tolerance; for each level in :data:`DRIFTS`, the first
        step with ``x_diff`` above it and the wide recovery error there; the
        final ``x_diff`` and the final recovery errors of the wide network and of the pair;
        and the pair's :func:`subspace_floor`.
    """
    config = setup(size, problem_name, seed).resolved()
    run = compare_with_snapshots(config)
    wide = run["wide"]["history"]
    problem = problem_of(config)
    snapshots = dict(zip(wide["step"], wide["weights"]))
    differences = Differences()
    start = compress_exact(problem, build(config)[1]["wide"][0])
    pair = train_exact(problem, start, run["config"]["lr"], wide["step"][-1], record_every=config.record_every,
                       observe=lambda step, c: differences(snapshots[step], c, step)).history
    steps = pair["step"]
    measured = {**worst(pair), "leaves_rounding_at": next((t for t, r in zip(steps, pair["over_tolerance"]) if r > 1),
                                                          None)}
    for level in DRIFTS:
        at = next((i for i, x in enumerate(pair["x_diff"]) if x > level), None)
        measured[f"drift_{level:g}_at"] = None if at is None else steps[at]
        measured[f"wide_error_at_drift_{level:g}"] = None if at is None else wide["recovery_error"][at]
    return {**measured, "final_x_diff": pair["x_diff"][-1], "final_wide_error": wide["recovery_error"][-1],
            "final_pair_error": pair["recovery_error"][-1], "subspace_floor": subspace_floor(problem, start),
            "steps": steps[-1]}


def subspace_floor(problem, compression):
    """``||M - B_L B_L^T M B_0 B_0^T||_F / ||M||_F``: the least recovery error the pair's fixed subspaces allow.

    The pair's end-to-end matrix is ``B_L Y B_0^T + pi P_L`` with ``pi ~ eps^L``, so
    its error cannot go much below this; for factorization it is 0 (to rounding).
    """
    M = to_numpy(problem.target)
    B_0, B_L = to_numpy(compression.bases[0]), to_numpy(compression.bases[-1])
    return float(np.linalg.norm(M - B_L @ (B_L.T @ M @ B_0) @ B_0.T) / np.linalg.norm(M))


def _empirical_finding(size, problem_name, seed):
    config = setup(size, problem_name, seed)
    measured = drift(size, problem_name, seed)
    return Finding(
        problem=f"{problem_name}, d={config.d}, r={config.rank}, L={config.depth}",
        measured=measured,
        tolerance="as factorization (rounding); drift_L_at = first recorded step with x_diff > L",
        holds=measured["over_tolerance"] <= 1, exact=False,
    )


def check(size="quick", seed=0):
    """Factorization at every step (exact); completion and sensing drift (empirical)."""
    findings = [_factorization_finding(size, seed, changes) for changes in FACTORIZATION_CASES[size]]
    findings += [_empirical_finding(size, name, seed) for name in ("completion", "sensing")]
    return Verdict("exact_compression", CLAIM, PAPER, findings)
