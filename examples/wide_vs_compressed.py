r"""
Wide vs compressed
==================

The paper's method (claim 3; the *compression algorithm*, steps 1-5): since
gradient descent moves only a :math:`2r`-dimensional subspace of each layer,
train a narrow network instead,

.. math::

    \widetilde W_1 \in \mathbb{R}^{w \times d},\quad
    \widetilde W_l \in \mathbb{R}^{w \times w}\ (1 < l < L),\quad
    \widetilde W_L \in \mathbb{R}^{d \times w},\qquad w = 2r,

with :math:`2dw + (L-2)w^2` parameters against :math:`Ld^2`, started from the
top-:math:`w` singular vectors of the problem's surrogate
(:func:`dlnref.compress`; for completion :math:`P_\Omega(M)/p`), and trained
with the outer layers taking a larger step :math:`\alpha\eta` (the discrepant
rate, ``outer_lr_scale``).

The paper credits the C-DLN with fewer steps *and* cheaper steps. But its
completion runs give the C-DLN :math:`\alpha = 5` and the wide network
:math:`\alpha = 1`, so two effects are mixed in the step count:

- **compression** (narrow width and spectral init), measured at one
  :math:`\alpha`: wide against compressed, both at :math:`\alpha = 1`, and both at :math:`\alpha`;
- **the discrepant rate**, measured on one network: :math:`\alpha = 1` against :math:`\alpha`.

This lesson trains the four runs on the paper's completion problem and prints
the steps and seconds to relative recovery error :math:`10^{-3}`, and the time
per step. In our runs the step-count gain of compression alone is modest
(1.17x at the paper's sizes, 1.27x in quick mode), and most of the paper's
headline step ratio (3.61x = 1.17 x 3.08 at the paper's sizes) comes from
:math:`\alpha = 5`, which helps the wide network just as much (3.13x). The
time per step is where compression pays most: 5.5x at :math:`d = 100`
(:math:`O(d^2 w)` against :math:`O(d^3)`), only 1.4x at the quick mode's
:math:`d = 30`, where the step's fixed costs dominate.

Run: ``python examples/wide_vs_compressed.py [--quick] [--out PATH]``.
"""

import argparse
import os
import pathlib

import matplotlib.pyplot as plt

import dlnref
from dlnref import plots

parser = argparse.ArgumentParser(description="The wide and the compressed deep linear network, side by side.")
parser.add_argument("--quick", action="store_true", help="a smaller problem, a few seconds (or DLNREF_QUICK=1)")
parser.add_argument("--out", default=os.path.join("dlnref-output", "wide_vs_compressed.png"),
                    help="where to write the figure (default: dlnref-output/wide_vs_compressed.png)")
args = parser.parse_args()
quick = args.quick or os.environ.get("DLNREF_QUICK") == "1"
out = pathlib.Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)

# The paper's completion run (d=100, r=5, 30% observed, lr 10, alpha 5), or a small one.
d, rank, fraction, lr, alpha = (30, 2, 0.5, 3.0, 3.0) if quick else (100, 5, 0.3, 10.0, 5.0)
depth, eps, threshold = 3, 1e-2, 1e-3
problem = dlnref.make_problem("completion", (d, d), rank, fraction=fraction, seed=0)

# %%
# The two starting points
# -----------------------
# ``compress`` would default to width ``2 * problem.rank``, the rank of the
# *true* target, which a real solver would not know; here we say
# :math:`w = 2r` on purpose.
starts = {
    "wide": dlnref.init_weights([d] * (depth + 1), scale=eps, seed=1),
    "compressed": dlnref.compress(problem, depth, width=2 * rank, scale=eps),
}
for name, weights in starts.items():
    print(f"{name}: {dlnref.parameter_count(weights)} parameters")
print(f"formulas: 2 d w + (L - 2) w^2 = {2 * d * 2 * rank + (depth - 2) * (2 * rank) ** 2}, L d^2 = {depth * d * d}")

# %%
# Four runs: each network at :math:`\alpha = 1` and at :math:`\alpha`
# ---------------------------------------------------------------------
runs, steps = {}, {}
for name, weights in starts.items():
    for scale in (1.0, alpha):
        run = dlnref.gradient_descent(problem, weights, lr, steps=30000, outer_lr_scale=scale, tol=threshold / 10)
        runs[name, scale] = run
        steps[name, scale] = run.history.first_below(threshold)
        seconds = run.history.first_below(threshold, at="seconds")
        per_step = 1e3 * run.history["seconds"][-1] / run.steps
        print(f"{name}, alpha={scale:g}: error {threshold:g} at step {steps[name, scale]} ({seconds:.2f} s, "
              f"{per_step:.3f} ms per step)")

# %%
# The two effects, separated
# --------------------------
compression_1 = steps["wide", 1.0] / steps["compressed", 1.0]
compression_a = steps["wide", alpha] / steps["compressed", alpha]
rate_compressed = steps["compressed", 1.0] / steps["compressed", alpha]
rate_wide = steps["wide", 1.0] / steps["wide", alpha]
headline = steps["wide", 1.0] / steps["compressed", alpha]
print(f"completion d={d}, r={rank}, p={fraction}, L={depth}, lr={lr:g}, alpha={alpha:g}: steps to {threshold:g}")
print(f"compression alone, alpha=1: wide / compressed = {compression_1:.2f}")
print(f"compression alone, alpha={alpha:g}: wide / compressed = {compression_a:.2f}")
print(f"the discrepant rate alone, compressed: alpha=1 / alpha={alpha:g} = {rate_compressed:.2f}")
print(f"the discrepant rate alone, wide: alpha=1 / alpha={alpha:g} = {rate_wide:.2f}")
print(f"the paper's comparison, wide at alpha=1 / compressed at alpha={alpha:g}: {headline:.2f} "
      f"= {compression_1:.2f} x {rate_compressed:.2f}")
assert compression_1 > 1 and compression_a > 1, "the compressed network needs more steps than the wide one"
assert rate_compressed > compression_1, "compression, not alpha, gives most of the step ratio"
cost = {name: sum(runs[name, a].history["seconds"][-1] for a in (1.0, alpha)) /
        sum(runs[name, a].steps for a in (1.0, alpha)) for name in starts}
print(f"time per step, wide / compressed: {cost['wide'] / cost['compressed']:.1f}")
print(f"verdict: compression saves {compression_1:.2f}x in steps and {cost['wide'] / cost['compressed']:.1f}x in time "
      f"per step; alpha={alpha:g} saves {rate_compressed:.2f}x in steps")

# %%
# The figure: error against step, and against seconds.
fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for (name, scale), run in runs.items():
    line = {"color": plots.COLORS[name], "ls": "-" if scale != 1 else ":",
            "label": f"{name} ({dlnref.parameter_count(starts[name]):,} params), alpha={scale:g}"}
    plots.error_curves(run.history, ax=by_step, **line)
    plots.error_curves(run.history, ax=by_time, x="seconds", **line)
by_step.set_ylabel(r"relative recovery error $\|X - M\|_F / \|M\|_F$")
by_step.legend(fontsize=8)
fig.suptitle(f"completion, d={d}, r={rank}, p={fraction}, L={depth}, lr={lr:g}")
fig.savefig(out, dpi=100, bbox_inches="tight")
print(f"figure: {out}")
