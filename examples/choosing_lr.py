"""
Choosing lr
===========

dlnref keeps the official code's loss normalisations, so the paper's step sizes
carry over. For factorization that is ``loss = ||X - M||_F^2 / (2 m n)``: its
gradient ``dLoss/dX = (X - M) / (m n)`` shrinks with the size of the matrix,
and so does every step. Gradient descent with step ``lr`` moves along the
gradient flow by ``d tau = lr / (m n)`` per step, so lr has to grow with
``m n = d^2`` for the same progress per step.

Two numbers set lr, both in units of tau:

- **the plateau.** From a small init ``eps``, a depth-3 network waits about
  ``tau* = 1 / (eps s_i)`` before it learns the target's i-th singular value
  ``s_i`` (the depth-3 analogue of Saxe's closed form:
  ``du/dtau = 3 u^{4/3} (s - u)`` from ``u0 = eps^3``). That is
  ``k* = m n / (lr eps s_i)`` steps.
- **stability.** Near the target the largest curvature of the loss, per unit
  of tau, is about ``L s_1^(2 - 2/L)``; gradient descent is stable while
  ``lr < 2 m n / (L s_1^(2 - 2/L))``. Half of that is a safe choice, and what
  ``lr="auto"`` picks (``dlnref.train.auto_lr``).

So the paper's lr 1, fine at its d = 100 for 60k-80k steps, stalls on a short
budget: at d = 50 the first mode alone needs ``k* ~ 2500 / (0.01 * 13) ~ 19k``
steps. This lesson shows (left) lr = 1 stalling where the rule converges, and
(right) that with ``lr = c d^2`` the error curves of d = 20, 40, 80 (one target
spectrum) fall on top of each other, while a fixed lr needs ``~d^2`` times
more steps.

Run: ``python examples/choosing_lr.py [--quick] [--out PATH]``.
"""

import argparse
import os

import matplotlib.pyplot as plt
import numpy as np

import dlnref
from dlnref import plots

parser = argparse.ArgumentParser(description="Choosing the step size for dlnref's loss normalisation.")
parser.add_argument("--quick", action="store_true", help="smaller problems, a few seconds (or DLNREF_QUICK=1)")
parser.add_argument("--out", default="choosing_lr.png", help="where to write the figure")
args = parser.parse_args()
quick = args.quick or os.environ.get("DLNREF_QUICK") == "1"

depth, eps = 3, 1e-2


def safe_lr(m, n, s_1, depth):
    """Half the largest stable step: ``m n / (L s_1^(2 - 2/L))``."""
    return m * n / (depth * s_1 ** (2 - 2 / depth))


def train(problem, lr, steps):
    """A wide depth-3 DLN from the orthogonal init; returns the run (None if it diverged)."""
    m, n = problem.shape
    weights = dlnref.init_weights([n] + [min(m, n)] * (depth - 1) + [m], eps, seed=1)
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run overflows before it stops
            return dlnref.gradient_descent(problem, weights, lr, steps, tol=1e-3, record_every=10)
    except dlnref.DivergenceError:
        return None


fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))

# %%
# Left: one problem (d = 50, the official spread spectrum), several lr, one budget.
d, rank, budget = (30, 3, 3000) if quick else (50, 3, 5000)
problem = dlnref.make_problem("factorization", (d, d), rank, seed=0)
s = dlnref.singular_values(problem.target)[:rank]
rule = safe_lr(d, d, float(s[0]), depth)
print(f"factorization d={d}, r={rank}, L={depth}, eps={eps:g}, s_1={s[0]:.2f}, budget {budget} steps")
print(f"rule: lr = m n / (L s_1^(2 - 2/L)) = {rule:.3g}; stable below about {2 * rule:.3g}")
print(f"lr='auto' (dlnref.train.auto_lr) gives {dlnref.train.auto_lr(problem, depth):.3g}")
for lr, color in zip((1.0, rule / 4, rule, 3 * rule), ("0.4", "tab:orange", "tab:green", "tab:red")):
    run = train(problem, lr, budget)
    plateau = d * d / (lr * eps * float(s[0]))
    if run is None:
        print(f"lr={lr:.3g}: diverged")
        continue
    error = run.history["recovery_error"][-1]
    print(f"lr={lr:.3g}: error {error:.2e} after {run.steps} steps; plateau k* = m n / (lr eps s_1) = "
          f"{plateau:.0f} steps, sigma_1 learnt (error <= 0.9) at step {run.history.first_below(0.9)}")
    plots.error_curves(run.history, ax=left, color=color, label=f"lr = {lr:.3g}")
left.set_ylabel("relative recovery error")
left.set_title(f"d={d}: lr 1 stalls, the rule converges, 3x the rule diverges", fontsize=10)
left.legend(fontsize=8)

# %%
# Right: one spectrum, three sizes; lr = c d^2 against a fixed lr.
sizes = (16, 32) if quick else (20, 40, 80)
spectrum = [3.0, 2.0, 1.0]
for size, color in zip(sizes, ("tab:blue", "tab:purple", "tab:red")):
    target = dlnref.low_rank_matrix(size, size, len(spectrum), seed=0, spectrum=spectrum)
    problem = dlnref.MatrixFactorization(target)
    fixed = [] if size == sizes[0] else [(safe_lr(sizes[0], sizes[0], spectrum[0], depth), ":")]
    for lr, style in [(safe_lr(size, size, spectrum[0], depth), "-"), *fixed]:
        run = train(problem, lr, 40 * (size // sizes[0]) ** 2 * 100)
        label = f"d={size}, lr={lr:.3g}" + (" (c d^2)" if style == "-" else " (fixed)")
        print(f"d={size}, lr={lr:.3g}{' = c d^2' if style == '-' else ' fixed'}: "
              f"error 1e-3 at step {run.history.first_below(1e-3)}")
        plots.error_curves(run.history, ax=right, color=color, ls=style, label=label)
right.set_xscale("log")
right.set_ylabel("relative recovery error")
right.set_title(f"spectrum {spectrum}: lr = c d^2 (solid) vs a fixed lr (dotted)", fontsize=10)
right.legend(fontsize=7)
fig.savefig(args.out, dpi=100, bbox_inches="tight")
print(f"figure: {args.out}")
