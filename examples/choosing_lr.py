r"""
Choosing lr
===========

dlnref keeps the official code's loss normalisations (the *Normalisations* of
the paper summary), so the paper's step sizes carry over. For factorization that
is :math:`\mathcal L = \|X - M\|_F^2/(2mn)`: its gradient
:math:`\partial\mathcal L/\partial X = (X - M)/(mn)` shrinks with the size of
the matrix, and so does every step. Gradient descent with step :math:`\eta`
moves along the gradient flow by :math:`d\tau = \eta/(mn)` per step, so
:math:`\eta` has to grow with :math:`mn = d^2` for the same progress per step.

Two numbers set :math:`\eta`, both in units of :math:`\tau`:

- **the plateau.** From a small init :math:`\varepsilon`, a depth-3 network
  waits about :math:`\tau^* = 1/(\varepsilon s_i)` before it learns the
  target's :math:`i`-th singular value :math:`s_i` (the depth-3 analogue of
  Saxe's closed form: :math:`du/d\tau = 3u^{4/3}(s - u)` from
  :math:`u_0 = \varepsilon^3`, so :math:`u^{-1/3}` falls at the rate :math:`s`).
  That is :math:`k^* = mn/(\eta\,\varepsilon s_i)` steps.
- **stability.** Near the target the largest curvature of the loss, per unit
  of :math:`\tau`, is about :math:`L s_1^{2-2/L}`; gradient descent is stable while

  .. math::

      \eta < \frac{2mn}{L\, s_1^{2 - 2/L}}.

  Half of that is a safe choice, and what ``lr="auto"`` picks
  (:func:`dlnref.train.auto_lr`).

So the paper's :math:`\eta = 1`, fine at its :math:`d = 100` for 60k-80k
steps, stalls on a short budget: at :math:`d = 50` the first mode alone needs
:math:`k^* \approx 2500/(0.01 \cdot 13) \approx 19\text{k}` steps. This lesson
shows (left) :math:`\eta = 1` stalling where the rule converges and 3x the rule
diverging, and (right) that with :math:`\eta = c\,d^2` the error curves of
several :math:`d` (one target spectrum) fall on top of each other, while a
fixed :math:`\eta` needs about :math:`d^2` times more steps. It checks the
plateau's length against :math:`k^*` and the 4x.

Run: ``python examples/choosing_lr.py [--quick] [--out PATH]``.
"""

import argparse
import os
import pathlib

import matplotlib.pyplot as plt
import numpy as np

import dlnref
from dlnref import plots

parser = argparse.ArgumentParser(description="Choosing the step size for dlnref's loss normalisation.")
parser.add_argument("--quick", action="store_true", help="smaller problems, a few seconds (or DLNREF_QUICK=1)")
parser.add_argument("--out", default=os.path.join("dlnref-output", "choosing_lr.png"),
                    help="where to write the figure (default: dlnref-output/choosing_lr.png)")
args = parser.parse_args()
quick = args.quick or os.environ.get("DLNREF_QUICK") == "1"
out = pathlib.Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)

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


# %%
# One problem, several lr, one budget
# -----------------------------------
# :math:`d = 50`, the official spread spectrum (the left panel).
d, rank, budget = (30, 3, 3000) if quick else (50, 3, 5000)
problem = dlnref.make_problem("factorization", (d, d), rank, seed=0)
s = dlnref.singular_values(problem.target)[:rank]
rule = safe_lr(d, d, float(s[0]), depth)
print(f"factorization d={d}, r={rank}, L={depth}, eps={eps:g}, s_1={s[0]:.2f}, budget {budget} steps")
print(f"rule: lr = m n / (L s_1^(2 - 2/L)) = {rule:.3g}; stable below about {2 * rule:.3g}")
print(f"lr='auto' (dlnref.train.auto_lr) gives {dlnref.train.auto_lr(problem, depth):.3g}")
left_runs, errors = [], {}
for lr, color in zip((1.0, rule / 4, rule, 3 * rule), ("0.4", "tab:orange", "tab:green", "tab:red")):
    run = train(problem, lr, budget)
    plateau = d * d / (lr * eps * float(s[0]))
    if run is None:
        print(f"lr={lr:.3g}: diverged")
        errors[lr] = float("inf")
        continue
    errors[lr] = run.history["recovery_error"][-1]
    print(f"lr={lr:.3g}: error {errors[lr]:.2e} after {run.steps} steps; plateau k* = m n / (lr eps s_1) = "
          f"{plateau:.0f} steps, sigma_1 learnt (error <= 0.9) at step {run.history.first_below(0.9)}")
    if lr == rule:
        learnt = run.history.first_below(0.9)
        print(f"plateau at the rule's lr: measured / k* = {learnt / plateau:.2f}")
        assert 0.8 < learnt / plateau < 1.5, "the plateau's length is not k* = m n / (lr eps s_1)"
    left_runs.append((lr, color, run.history))
assert errors[1.0] > 0.99 and errors[rule] < 1e-3 and errors[3 * rule] == float("inf"), errors

# %%
# One spectrum, several sizes: :math:`\eta = c\,d^2` against a fixed :math:`\eta`
# -------------------------------------------------------------------------------
# (the right panel).
sizes = (16, 32) if quick else (20, 40, 80)
spectrum = [3.0, 2.0, 1.0]
right_runs, reach = [], {}
for size, color in zip(sizes, ("tab:blue", "tab:purple", "tab:red")):
    target = dlnref.low_rank_matrix(size, size, len(spectrum), seed=0, spectrum=spectrum)
    problem = dlnref.MatrixFactorization(target)
    fixed = [] if size == sizes[0] else [(safe_lr(sizes[0], sizes[0], spectrum[0], depth), ":")]
    for lr, style in [(safe_lr(size, size, spectrum[0], depth), "-"), *fixed]:
        run = train(problem, lr, 40 * (size // sizes[0]) ** 2 * 100)
        label = f"d={size}, lr={lr:.3g}" + (" (c d^2)" if style == "-" else " (fixed)")
        reach[size, style] = run.history.first_below(1e-3)
        print(f"d={size}, lr={lr:.3g}{' = c d^2' if style == '-' else ' fixed'}: "
              f"error 1e-3 at step {reach[size, style]}")
        right_runs.append((color, style, label, run.history))
ratio = reach[sizes[1], ":"] / reach[sizes[1], "-"]
print(f"d={sizes[1]}: fixed lr / c d^2 lr, steps to 1e-3: {ratio:.2f} ((d / {sizes[0]})^2 = {(sizes[1] / sizes[0]) ** 2:g})")
assert 3.5 < ratio < 4.5, "a fixed lr does not need d^2 times the steps"

# %%
# The figure
# ----------
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
for lr, color, history in left_runs:
    plots.error_curves(history, ax=left, color=color, label=f"lr = {lr:.3g}")
left.set_ylabel("relative recovery error")
left.set_title(f"d={d}: lr 1 stalls, the rule converges, 3x the rule diverges", fontsize=10)
left.legend(fontsize=8)
for color, style, label, history in right_runs:
    plots.error_curves(history, ax=right, color=color, ls=style, label=label)
right.set_xscale("log")
right.set_ylabel("relative recovery error")
right.set_title(f"spectrum {spectrum}: lr = c d^2 (solid) vs a fixed lr (dotted)", fontsize=10)
right.legend(fontsize=7)
fig.savefig(out, dpi=100, bbox_inches="tight")
print(f"figure: {out}")
