r"""
Matrix sensing: fewer measurements than unknowns
================================================

The third of the paper's problems (the *Setup* of the paper summary; its
*sensing* row of published results). A rank-:math:`r` target
:math:`M \in \mathbb{R}^{d \times d}` is seen only through :math:`k`
linear measurements

.. math::

    y_i = \langle A_i, M \rangle,\quad i = 1, \dots, k,\qquad
    \mathcal L(X) = \frac12 \sum_{i=1}^k \big(\langle A_i, X\rangle - y_i\big)^2,

with Gaussian :math:`A_i` of entry variance :math:`1/k` (the official code uses
standard deviation :math:`1/k`, so its :math:`\eta = 20` is our :math:`20/k`).

**Why this is a lesson about implicit bias.** With :math:`k < d^2` the
measurements do not determine :math:`M`: every :math:`X` in an affine subspace
of dimension :math:`d^2 - k` fits them exactly. The minimum-norm fit,
:math:`A^+ y`, is the projection of :math:`M` onto the :math:`k`-dimensional
row space of :math:`A`; for Gaussian operators that keeps about a fraction
:math:`k/d^2` of :math:`\|M\|_F^2`, so its relative error is about
:math:`\sqrt{1 - k/d^2}`. A deep linear network started small also drives
the loss to zero, but gradient descent from a small init fits the
measurements with the lowest-rank :math:`X` it can (incremental learning, one
mode at a time), and so finds :math:`M` itself once :math:`k` is a few times
the :math:`r(2d - r)` degrees of freedom of a rank-:math:`r` matrix.

**The compressed network.** Its spectral init comes from the surrogate
:math:`\widetilde M = \sum_i y_i A_i`, an unbiased but noisy estimate of
:math:`M` (relative noise about :math:`\sqrt{d^2/k}`). Its top singular vectors
are only roughly aligned with :math:`M`'s, so the head start is small: the
paper reports 3.4 s against 4.2 s here, not 2x.

This lesson checks: the minimum-norm fit's error against
:math:`\sqrt{1 - k/d^2}`; both networks (``lr="auto"``) reach a relative
recovery error below :math:`10^{-3}` from :math:`k < d^2` measurements; and
the compressed one needs no more steps than the wide one.

Run: ``python examples/sensing.py [--quick] [--out PATH]``.
"""

import argparse
import os
import pathlib

import matplotlib.pyplot as plt
import numpy as np

import dlnref
from dlnref import plots

parser = argparse.ArgumentParser(description="Matrix sensing with a wide and a compressed deep linear network.")
parser.add_argument("--quick", action="store_true", help="a smaller problem, a few seconds (or DLNREF_QUICK=1)")
parser.add_argument("--out", default=os.path.join("dlnref-output", "sensing.png"),
                    help="where to write the figure (default: dlnref-output/sensing.png)")
args = parser.parse_args()
quick = args.quick or os.environ.get("DLNREF_QUICK") == "1"
out = pathlib.Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)

d, rank, measurements = (20, 2, 240) if quick else (50, 3, 1000)
depth, eps, threshold = 3, 1e-2, 1e-3
problem = dlnref.make_problem("sensing", (d, d), rank, measurements=measurements, seed=0)
M = dlnref.to_numpy(problem.target)
print(f"sensing d={d}, r={rank}, k={measurements} measurements for d^2 = {d * d} unknowns "
      f"(a rank-r matrix has r (2d - r) = {rank * (2 * d - rank)} degrees of freedom)")

# %%
# The minimum-norm fit
# --------------------
# :math:`A^+ y`, with the operators flattened into the rows of a
# :math:`k \times d^2` matrix.
A = dlnref.to_numpy(problem.operators).reshape(measurements, d * d)
least_norm = np.linalg.lstsq(A, dlnref.to_numpy(problem.y), rcond=None)[0]
fit = float(np.linalg.norm(A @ least_norm - dlnref.to_numpy(problem.y)) / np.linalg.norm(problem.y))
ls_error = float(np.linalg.norm(least_norm - M.ravel()) / np.linalg.norm(M))
predicted = np.sqrt(1 - measurements / (d * d))
print(f"minimum-norm fit: measurements fitted to {fit:.1e}, recovery error {ls_error:.3f} "
      f"(sqrt(1 - k / d^2) = {predicted:.3f})")
assert fit < 1e-10 and abs(ls_error / predicted - 1) < 0.15, "the minimum-norm fit is not the projection"

# %%
# The surrogate's subspace
# ------------------------
surrogate = np.tensordot(dlnref.to_numpy(problem.y), dlnref.to_numpy(problem.operators), axes=1)
u_target, _ = dlnref.top_singular_subspaces(M, rank)
u_surrogate, _ = dlnref.top_singular_subspaces(surrogate, rank)
angle = float(np.max(dlnref.principal_angles(u_target, u_surrogate)))
print(f"surrogate sum_i y_i A_i: relative distance to M {np.linalg.norm(surrogate - M) / np.linalg.norm(M):.2f} "
      f"(sqrt(d^2 / k) = {np.sqrt(d * d / measurements):.2f}); largest angle between top-r left subspaces "
      f"{angle:.2f} rad")

# %%
# The wide and the compressed network
# -----------------------------------
starts = {"wide": dlnref.init_weights([d] * (depth + 1), scale=eps, seed=1),
          "compressed": dlnref.compress(problem, depth, width=2 * rank, scale=eps)}
runs = {name: dlnref.gradient_descent(problem, weights, "auto", 20000, tol=threshold / 10)
        for name, weights in starts.items()}
reach = {}
for name, run in runs.items():
    reach[name] = run.history.first_below(threshold)
    print(f"{name} ({dlnref.parameter_count(starts[name])} parameters): error {threshold:g} at step {reach[name]} "
          f"({run.history.first_below(threshold, at='seconds'):.2f} s), final loss {run.history['loss'][-1]:.1e}")
assert all(n is not None for n in reach.values()), "a network did not recover M"
assert reach["compressed"] <= reach["wide"], "the compressed network needed more steps than the wide one"
print(f"steps to {threshold:g}, wide / compressed: {reach['wide'] / reach['compressed']:.2f}")

# %%
# The figure: recovery error against step, with the minimum-norm fit's error.
fig, ax = plt.subplots(figsize=(6.5, 4))
for name, run in runs.items():
    plots.error_curves(run.history, ax=ax, color=plots.COLORS[name], label=f"{name} DLN")
ax.axhline(ls_error, color="0.4", ls="--", label=r"minimum-norm fit $A^+ y$")
ax.set_ylabel(r"relative recovery error $\|X - M\|_F / \|M\|_F$")
ax.set_title(f"sensing, d={d}, r={rank}, k={measurements} < d^2 = {d * d}", fontsize=10)
ax.legend(fontsize=8)
fig.savefig(out, dpi=100, bbox_inches="tight")
print(f"figure: {out}")
