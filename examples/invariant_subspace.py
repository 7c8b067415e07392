"""
The invariant subspace of one layer
===================================

Yaras et al.'s theorem (the "law of parsimony"), on which the compression
rests: for deep matrix factorization with a rank-r target and an orthogonal
init ``W_l(0) = eps O_l``, every layer keeps the form

    W_l(t) = U_l [[W~_l(t), 0], [0, rho(t) I_{d-2r}]] V_l^T

with ``U_l``, ``V_l`` fixed. Only a 2r-dimensional subspace of each layer
moves; the other ``d - 2r`` singular values stay equal to one value
``rho(t)``, on a subspace that does not turn.

This lesson trains a wide DLN, keeps a copy of ``W_1`` at each recorded step
(``observe``), and measures with ``dlnref.invariant_subspace_residuals``:

- the relative spread of the ``d - 2r`` most nearly equal singular values
  (0 in theory);
- the largest principal angle between where the complement is at step t and
  where it is at the end, on the left and on the right (0 in theory);
- ``s_{2r+1} / s_1`` of the update ``W_1(t) - W_1(0)``: 0 when the update has
  rank at most 2r (the theory: ``eps^L / s_1(M)`` or so).

It prints the worst of each over the run and draws the layer's singular values
and the angles. All of them sit at the float64 rounding level.

Run: ``python examples/invariant_subspace.py [--quick] [--out PATH]``.
"""

import argparse
import os

import matplotlib.pyplot as plt
import numpy as np

import dlnref
from dlnref import plots
from dlnref.dynamics import moving_and_fixed

parser = argparse.ArgumentParser(description="The invariant subspace of one layer of a deep linear network.")
parser.add_argument("--quick", action="store_true", help="a smaller problem, a few seconds (or DLNREF_QUICK=1)")
parser.add_argument("--out", default="invariant_subspace.png", help="where to write the figure")
args = parser.parse_args()
quick = args.quick or os.environ.get("DLNREF_QUICK") == "1"

d, rank, depth, eps = (16, 2, 3, 1e-2) if quick else (40, 3, 3, 1e-2)
problem = dlnref.make_problem("factorization", (d, d), rank, seed=0)
weights = dlnref.init_weights([d] * (depth + 1), scale=eps, seed=1)
s_1 = float(dlnref.singular_values(problem.target)[0])
lr = d * d / (depth * s_1 ** (2 - 2 / depth))  # half the stable step (examples/choosing_lr.py)

# %%
# Train, keeping a host copy of the first layer at every recorded step.
run = dlnref.gradient_descent(problem, weights, lr, steps=20000, tol=1e-6, record_every=5,
                              observe=lambda step, W: {"W_1": dlnref.to_numpy(W[0]).copy()})
steps, layers = run.history["step"], run.history["W_1"]

# %%
# Measure the theorem's form at every recorded step, against the last step.
residuals = [dlnref.invariant_subspace_residuals(layers[0], w, layers[-1], rank) for w in layers]
worst = {name: max(r[name] for r in residuals) for name in ("equal_spread", "left_angle", "right_angle")}
worst["update_rank"] = max(r["update_rank"] for r in residuals[1:])  # no update yet at step 0
print(f"factorization d={d}, r={rank}, L={depth}, eps={eps:g}, lr={lr:.3g}: {run.steps} steps, "
      f"final error {run.history['recovery_error'][-1]:.1e}")
print(f"worst spread of the d - 2r = {d - 2 * rank} equal singular values: {worst['equal_spread']:.2e}")
print(f"worst angle of the fixed complement, left: {worst['left_angle']:.2e} rad")
print(f"worst angle of the fixed complement, right: {worst['right_angle']:.2e} rad")
print(f"worst s_(2r+1) / s_1 of W_1(t) - W_1(0): {worst['update_rank']:.2e} "
      f"(theory: about eps^L / s_1(M) = {eps ** depth / s_1:.1e})")

# %%
# The figure: the 2r singular values that move, the band of the equal ones,
# and the angles of the complement.
values = np.array([dlnref.singular_values(w) for w in layers])
splits = [moving_and_fixed(v, rank, near=eps) for v in values]
moving = np.array([v[m] for v, (m, _) in zip(values, splits)])
fixed = np.array([v[f] for v, (_, f) in zip(values, splits)])
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
plots.layer_singular_values(steps, moving, fixed, ax=left)
plots.angle_curves(steps, {"fixed complement, left side": [r["left_angle"] for r in residuals],
                           "fixed complement, right side": [r["right_angle"] for r in residuals]}, ax=right)
fig.suptitle(f"one layer ($W_1$) of a wide DLN: factorization, d={d}, r={rank}, L={depth}")
fig.savefig(args.out, dpi=100, bbox_inches="tight")
print(f"figure: {args.out}")
