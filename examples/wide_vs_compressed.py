"""
Wide vs compressed
==================

The paper's method (C-DLN): since gradient descent only moves a
2r-dimensional subspace of each layer, train a narrow network instead,

    W~_1 : (w, d),   W~_l : (w, w),   W~_L : (d, w),   w = 2r,

started from the top-w singular vectors of the problem's surrogate
(``dlnref.compress``; for completion the surrogate is ``P_Omega(M) / p``),
with the outer layers taking a larger step (``outer_lr_scale``, the paper's
alpha).

This lesson trains both networks on the paper's matrix-completion problem and
prints their parameter counts and the steps and seconds each needs to reach
relative recovery errors 1e-2 and 1e-3; it draws the error against step and
against wall time. The compressed network has far fewer parameters, needs
fewer steps, and each of its steps is cheaper.

Run: ``python examples/wide_vs_compressed.py [--quick] [--out PATH]``.
"""

import argparse
import os

import matplotlib.pyplot as plt

import dlnref
from dlnref import plots

parser = argparse.ArgumentParser(description="The wide and the compressed deep linear network, side by side.")
parser.add_argument("--quick", action="store_true", help="a smaller problem, a few seconds (or DLNREF_QUICK=1)")
parser.add_argument("--out", default="wide_vs_compressed.png", help="where to write the figure")
args = parser.parse_args()
quick = args.quick or os.environ.get("DLNREF_QUICK") == "1"

# The paper's completion run (d=100, r=5, 30% observed, lr 10, alpha 5), or a small one.
d, rank, fraction, lr, alpha = (30, 2, 0.5, 3.0, 3.0) if quick else (100, 5, 0.3, 10.0, 5.0)
depth, eps = 3, 1e-2
problem = dlnref.make_problem("completion", (d, d), rank, fraction=fraction, seed=0)

# %%
# The two starting points. ``compress`` would default to width 2 * problem.rank,
# the rank of the *true* target, which a real solver would not know; here we
# say w = 2r on purpose.
networks = {
    "wide": (dlnref.init_weights([d] * (depth + 1), scale=eps, seed=1), 1.0),
    "compressed": (dlnref.compress(problem, depth, width=2 * rank, scale=eps), alpha),
}

# %%
# Train both with the same lr; the wide one with plain gradient descent.
runs = {name: dlnref.gradient_descent(problem, weights, lr, steps=30000, outer_lr_scale=scale, tol=1e-4)
        for name, (weights, scale) in networks.items()}

print(f"completion d={d}, r={rank}, p={fraction}, L={depth}, lr={lr:g}, alpha={alpha:g} (compressed)")
for name, run in runs.items():
    params = dlnref.parameter_count(networks[name][0])
    reach = ", ".join(f"{t:g} at step {run.history.first_below(t)} ({run.history.first_below(t, at='seconds'):.2f} s)"
                      for t in (1e-2, 1e-3))
    print(f"{name}: {params} parameters; error {reach}")
print(f"formulas: 2 d w + (L - 2) w^2 = {2 * d * 2 * rank + (depth - 2) * (2 * rank) ** 2}, L d^2 = {depth * d * d}")
wide, small = (runs[name].history.first_below(1e-3) for name in ("wide", "compressed"))
print(f"steps to 1e-3, wide / compressed: {wide / small:.2f}")

# %%
# The figure: error against step, and against seconds.
fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for name, run in runs.items():
    line = {"color": plots.COLORS[name], "label": f"{name} DLN ({dlnref.parameter_count(networks[name][0]):,} params)"}
    plots.error_curves(run.history, ax=by_step, **line)
    plots.error_curves(run.history, ax=by_time, x="seconds", **line)
by_step.set_ylabel(r"relative recovery error $\|X - M\|_F / \|M\|_F$")
by_step.legend()
fig.suptitle(f"completion, d={d}, r={rank}, p={fraction}, L={depth}, lr={lr:g}")
fig.savefig(args.out, dpi=100, bbox_inches="tight")
print(f"figure: {args.out}")
