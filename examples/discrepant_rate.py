"""
The discrepant rate
===================

The paper trains the compressed DLN with *discrepant* step sizes: the first
and last layers, ``W~_1`` (w x d) and ``W~_L`` (d x w), take ``alpha * lr``,
and the inner ``w x w`` layers take ``lr``:

    W_l <- W_l - lr * s_l * dLoss/dW_l,   s_1 = s_L = alpha,  s_l = 1 otherwise

(``gradient_descent(..., outer_lr_scale=alpha)``; ``dlnref.step_sizes`` lists
the ``lr * s_l``). Its ablation (completion, 20% observed) reports that the
steps to converge fall as alpha grows: 13.0k, 8.3k, 5.2k, 2.8k, 1.8k steps for
alpha = 0.5, 1, 2, 5, 9.75, against 9.3k for the wide network.

This lesson reruns that ablation (the paper's sizes, or small ones with
``--quick``), prints the steps to relative error 1e-3 for each alpha and the
wide network, and draws the error curves and the steps against alpha. Too
large an alpha makes the step unstable: such runs are reported as diverged.

Run: ``python examples/discrepant_rate.py [--quick] [--out PATH]``.
"""

import argparse
import os

import matplotlib.pyplot as plt

import dlnref
from dlnref import plots

parser = argparse.ArgumentParser(description="The outer-layer step scale alpha of the compressed DLN.")
parser.add_argument("--quick", action="store_true", help="a smaller problem, a few seconds (or DLNREF_QUICK=1)")
parser.add_argument("--out", default="discrepant_rate.png", help="where to write the figure")
args = parser.parse_args()
quick = args.quick or os.environ.get("DLNREF_QUICK") == "1"

if quick:
    d, rank, fraction, lr, alphas = 30, 2, 0.5, 3.0, (0.5, 1.0, 2.0, 4.0)
else:
    d, rank, fraction, lr, alphas = 100, 5, 0.2, 10.0, (0.5, 1.0, 2.0, 5.0, 9.75)
depth, eps, threshold = 3, 1e-2, 1e-3
problem = dlnref.make_problem("completion", (d, d), rank, fraction=fraction, seed=0)
start = dlnref.compress(problem, depth, width=2 * rank, scale=eps)

# %%
# One compressed run per alpha, and the wide network (alpha = 1) for reference.
histories, steps = {}, []
for alpha in alphas:
    try:
        run = dlnref.gradient_descent(problem, start, lr, steps=30000, outer_lr_scale=alpha, tol=threshold)
        histories[alpha] = run.history
        steps.append(run.history.first_below(threshold))
    except dlnref.DivergenceError as error:
        print(f"alpha={alpha:g}: {error}")
        steps.append(None)
wide = dlnref.gradient_descent(problem, dlnref.init_weights([d] * (depth + 1), eps, seed=1), lr, steps=30000,
                               tol=threshold)
wide_steps = wide.history.first_below(threshold)

print(f"completion d={d}, r={rank}, p={fraction}, L={depth}, lr={lr:g}: steps to {threshold:g}")
for alpha, n in zip(alphas, steps):
    print(f"compressed, alpha={alpha:g}: {n}")
print(f"wide, alpha=1: {wide_steps}")
reached = [n for n in steps if n is not None]
print(f"fewer steps as alpha grows: {all(a > b for a, b in zip(reached, reached[1:]))}")

# %%
# The figure: error curves per alpha, and steps against alpha.
fig, (curves, ablation) = plt.subplots(1, 2, figsize=(10, 4))
colors = plt.cm.plasma([i / len(alphas) for i in range(len(alphas))])
for (alpha, history), color in zip(histories.items(), colors):
    plots.error_curves(history, ax=curves, color=color, label=f"compressed, alpha={alpha:g}")
plots.error_curves(wide.history, ax=curves, color=plots.COLORS["wide"], ls="--", label="wide, alpha=1")
curves.set_ylabel("relative recovery error")
curves.legend(fontsize=8)
plots.alpha_steps(alphas, steps, wide_steps, ax=ablation, threshold=f"{threshold:g}")
fig.suptitle(f"the discrepant rate: completion, d={d}, r={rank}, p={fraction}, L={depth}, lr={lr:g}")
fig.savefig(args.out, dpi=100, bbox_inches="tight")
print(f"figure: {args.out}")
