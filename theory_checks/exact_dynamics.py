"""Claim 4 (beyond the paper): depth-2 gradient descent tracks Saxe et al.'s closed form."""

import numpy as np

from dlnref import MatrixFactorization, compress, gradient_descent, low_rank_matrix, to_numpy
from dlnref.dynamics import saxe_mode

from .verdict import Finding, Verdict

CLAIM = ("For depth 2 with a balanced spectral init, each mode u_i of X follows "
         "u(tau) = s e^{2 s tau} / (e^{2 s tau} - 1 + s / u0), tau = lr * k / (m n).")
PAPER = ("Saxe, McClelland, Ganguli (2014): exact gradient-flow solutions; gradient descent is its explicit "
         "Euler discretisation, so its error should shrink in proportion to the step.")

#: Target spectrum and size per check size.
SIZES = {"quick": (12, (3.0, 2.0, 1.0)), "full": (50, (8.0, 4.0, 2.0, 1.0))}
#: Init scale eps of each layer, so u0 = eps^2.
EPS = 1e-2
#: Step sizes, in units of tau per step (lr / (m n)), as a fraction of 1 / s_1.
STEP_FRACTIONS = (0.02, 0.005)
#: The error at the smaller step must be at most this (relative to s_i) ...
TRACK_TOL = 1e-2
#: ... and Euler's first order means 4x smaller steps give about 4x smaller errors; ask for 2x.
MIN_ORDER_RATIO = 2.0


def tracking_error(d, spectrum, step_fraction, seed):
    """Largest ``|u_i(k) - u_i(tau_k)| / s_i`` over modes and steps, for one step size.

    ``u_i(k) = u_i^T X_k v_i`` with ``(u_i, v_i)`` the target's singular pairs.
    The run lasts until the smallest mode's closed form is within 1e-3 of its target.
    """
    target = low_rank_matrix(d, d, len(spectrum), seed=seed, spectrum=list(spectrum))
    problem = MatrixFactorization(target)
    s = np.asarray(spectrum)
    dtau = step_fraction / s[0]
    lr = dtau * d * d
    u0 = EPS**2
    tau_end = np.log(s[-1] / u0 * 1e3) / (2 * s[-1])
    steps = int(np.ceil(tau_end / dtau))
    U, _, Vh = np.linalg.svd(to_numpy(target))
    record_every = max(1, steps // 400)

    def modes(step, weights):
        X = to_numpy(weights[1] @ weights[0])
        return {"modes": np.einsum("ik,ij,jk->k", U[:, :len(s)], X, Vh[:len(s)].T)}

    run = gradient_descent(problem, compress(problem, 2, len(s), EPS), lr, steps,
                           record_every=record_every, observe=modes)
    taus = np.asarray(run.history["step"]) * dtau
    measured = np.array(run.history["modes"])
    exact = np.stack([saxe_mode(taus, si, u0) for si in s], axis=1)
    return float(np.max(np.abs(measured - exact) / s)), steps


def check(size="quick", seed=0):
    """Compare gradient descent with the closed form at two step sizes."""
    d, spectrum = SIZES[size]
    (coarse, n1), (fine, n2) = (tracking_error(d, spectrum, f, seed) for f in STEP_FRACTIONS)
    ratio = coarse / fine
    finding = Finding(
        problem=f"factorization, d={d}, L=2, s={list(spectrum)}, eps={EPS:g}",
        measured={"error_coarse": coarse, "error_fine": fine, "ratio": ratio, "step_ratio":
                  STEP_FRACTIONS[0] / STEP_FRACTIONS[1], "steps": [n1, n2]},
        tolerance=f"fine error <= {TRACK_TOL:g}; coarse/fine >= {MIN_ORDER_RATIO:g}",
        holds=fine <= TRACK_TOL and ratio >= MIN_ORDER_RATIO, exact=True,
    )
    return Verdict("exact_dynamics", CLAIM, PAPER, [finding])
