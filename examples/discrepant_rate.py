r"""
The discrepant rate
===================

The paper trains the compressed DLN with *discrepant* step sizes (step 5 of the
compression algorithm): the first and last layers, :math:`\widetilde W_1`
(:math:`w \times d`) and :math:`\widetilde W_L` (:math:`d \times w`), take
:math:`\alpha\eta`, the inner :math:`w \times w` layers take :math:`\eta`,

.. math::

    W_l \leftarrow W_l - \eta\, s_l\, \frac{\partial \mathcal L}{\partial W_l},
    \qquad s_1 = s_L = \alpha,\quad s_l = 1 \text{ otherwise}

(``gradient_descent(..., outer_lr_scale=alpha)``). Its ablation (completion,
20% observed; the *alpha ablation* row of the published results) reports that
the steps to converge fall as :math:`\alpha` grows: 13.0k, 8.3k, 5.2k, 2.8k,
1.8k steps for :math:`\alpha` = 0.5, 1, 2, 5, 9.75.

**Why alpha helps: the plateau.** From the spectral init every layer holds
the target's :math:`i`-th mode with the factor :math:`\varepsilon`, so the
mode :math:`u = a_1 a_2 \cdots a_L` starts at :math:`\varepsilon^L`, and
almost all the steps are spent waiting for it to leave that small value. In
the gradient flow (time :math:`\tau = \eta k`, curvature :math:`c` of the loss
along the mode, :math:`1/(mn)` here),
:math:`\dot a_l = s_l\, c\, (s - u) \prod_{k \ne l} a_k`, so every layer
grows by the same amount up to its rate,
:math:`a_l^2 = \varepsilon^2 + s_l q(\tau)`, with
:math:`\dot q = 2c(s - u)u \approx 2csu` while :math:`u \ll s`. The outer
layers, with :math:`\alpha` times the rate, grow first and pull the product up
sooner. For :math:`L = 3` the escape takes

.. math::

    \tau^* = \int_0^\infty \frac{dq}{2cs\,(\varepsilon^2 + \alpha q)\sqrt{\varepsilon^2 + q}}
           = \frac{I(\alpha)}{2cs\varepsilon},\qquad
    I(\alpha) = \int_0^\infty \frac{dx}{(1 + \alpha x)\sqrt{1 + x}}
              = \frac{1}{\alpha b}\log\frac{1 + b}{1 - b},\quad b = \sqrt{1 - 1/\alpha},

(:math:`I(1) = 2`; for :math:`\alpha < 1`, :math:`I = 2\arctan(b')/(\alpha b')`,
:math:`b' = \sqrt{1/\alpha - 1}`), which falls like :math:`\log(4\alpha)/\alpha`.
So the steps at :math:`\alpha` over the steps at 1 should be
:math:`I(\alpha)/2`, whatever the problem's size: 1.57, 0.62, 0.32, 0.20 for
:math:`\alpha` = 0.5, 2, 5, 9.75, the paper's own ratios (1.57, 0.63, 0.34, 0.22).

**Why a large alpha is unstable: the curvature.** Gradient descent with scales
:math:`s_l` conserves :math:`W_{l+1}^\top W_{l+1}/s_{l+1} - W_l W_l^\top/s_l`,
so a learnt mode of size :math:`s` ends with :math:`a_l^2 \propto s_l`: the
outer layers are larger. The preconditioned curvature along the top mode is then

.. math::

    S(\alpha) = \sum_l s_l \prod_{k \ne l} a_k^2\; c = L\, \alpha^{2/L}\, s_1^{2 - 2/L}\, c,

and gradient descent is stable only while :math:`\eta\, S(\alpha) < 2`. At a
fixed :math:`\eta` that caps :math:`\alpha` at
:math:`\alpha_{\max} = \big(2/(\eta S(1))\big)^{L/2}`: it is
:math:`\eta\,\alpha^{2/L}` (not :math:`\eta\alpha`) times the curvature that
must stay below 2. ``dlnref.auto_lr`` computes :math:`S` from the
surrogate's :math:`s_1` (an estimate from above).

This lesson reruns the ablation, checks the steps to learn the top mode
against :math:`I(\alpha)/I(1)`, then runs :math:`\alpha` at 0.8, 1.2 and 3
times :math:`\alpha_{\max}`: the first converges, the second no longer
does, the third blows up.

Run: ``python examples/discrepant_rate.py [--quick] [--out PATH]``.
"""

import argparse
import itertools
import math
import os
import pathlib

import matplotlib.pyplot as plt
import numpy as np

import dlnref
from dlnref import plots

parser = argparse.ArgumentParser(description="The outer-layer step scale alpha of the compressed DLN.")
parser.add_argument("--quick", action="store_true", help="a smaller problem, a few seconds (or DLNREF_QUICK=1)")
parser.add_argument("--out", default=os.path.join("dlnref-output", "discrepant_rate.png"),
                    help="where to write the figure (default: dlnref-output/discrepant_rate.png)")
args = parser.parse_args()
quick = args.quick or os.environ.get("DLNREF_QUICK") == "1"
out = pathlib.Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)

if quick:
    d, rank, fraction, lr, alphas = 30, 2, 0.5, 3.0, (0.5, 1.0, 2.0, 4.0)
else:
    d, rank, fraction, lr, alphas = 100, 5, 0.2, 10.0, (0.5, 1.0, 2.0, 5.0, 9.75)
depth, eps, threshold = 3, 1e-2, 1e-3
problem = dlnref.make_problem("completion", (d, d), rank, fraction=fraction, seed=0)
start = dlnref.compress(problem, depth, width=2 * rank, scale=eps)


def plateau_integral(alpha):
    r"""``I(alpha)``: the plateau's length in units of ``1 / (2 c s eps)`` for L = 3 (see the text)."""
    if alpha == 1:
        return 2.0
    if alpha > 1:
        b = math.sqrt(1 - 1 / alpha)
        return math.log((1 + b) / (1 - b)) / (alpha * b)
    b = math.sqrt(1 / alpha - 1)
    return 2 * math.atan(b) / (alpha * b)


# %%
# The ablation: one compressed run per alpha, and the wide network
# ----------------------------------------------------------------
histories, steps, top_mode = {}, [], []
for alpha in alphas:
    run = dlnref.gradient_descent(problem, start, lr, steps=30000, outer_lr_scale=alpha, tol=threshold)
    histories[alpha] = run.history
    steps.append(run.history.first_below(threshold))
    top_mode.append(run.history.first_below(0.9))  # the top mode is learnt: the error falls below 0.9
wide = dlnref.gradient_descent(problem, dlnref.init_weights([d] * (depth + 1), eps, seed=1), lr, steps=30000,
                               tol=threshold)
wide_steps = wide.history.first_below(threshold)

print(f"completion d={d}, r={rank}, p={fraction}, L={depth}, lr={lr:g}: steps to {threshold:g}")
for alpha, n in zip(alphas, steps):
    print(f"compressed, alpha={alpha:g}: {n}")
print(f"wide, alpha=1: {wide_steps}")
print(f"fewer steps as alpha grows: {all(a > b for a, b in itertools.pairwise(steps))}")
assert all(n is not None for n in steps) and all(a > b for a, b in itertools.pairwise(steps)), steps

# %%
# The plateau against :math:`I(\alpha)/I(1)`
# -------------------------------------------
# Steps until the error falls below 0.9 (the top mode learnt), relative to
# :math:`\alpha = 1`, against the flow's prediction.
at_one = top_mode[alphas.index(1.0)]
worst = 0.0
for alpha, k in zip(alphas, top_mode):
    predicted = plateau_integral(alpha) / plateau_integral(1.0)
    worst = max(worst, abs(k / at_one / predicted - 1))
    print(f"alpha={alpha:g}: top mode learnt at step {k}, ratio to alpha=1 {k / at_one:.3f}, "
          f"I(alpha)/I(1) = {predicted:.3f}")
print(f"worst relative gap to the plateau formula: {worst:.3f}")
assert worst < 0.1, "the plateau formula misses the measured steps"

# %%
# The stability limit
# -------------------
# :math:`S(1)` from ``auto_lr`` (which returns half of :math:`2/S`), then
# :math:`\alpha_{\max} = (2/(\eta S(1)))^{L/2}`.
sharpness = 1 / dlnref.auto_lr(problem, depth, 1.0)
alpha_max = (2 / (lr * sharpness)) ** (depth / 2)
print(f"S(1) = L s_1^(2 - 2/L) c = {sharpness:.4g}; lr S(1) = {lr * sharpness:.3g}; "
      f"alpha_max = (2 / (lr S(1)))^(L/2) = {alpha_max:.3g}")
probes = {}
for factor in (0.8, 1.2, 3.0):
    alpha = factor * alpha_max
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run overflows before it stops
            run = dlnref.gradient_descent(problem, start, lr, steps=3000 if quick else 10000, outer_lr_scale=alpha,
                                          tol=threshold, record_every=10)
        probes[factor] = run.history["recovery_error"][-1]
        verdict = f"error {probes[factor]:.2e} after {run.steps} steps"
    except dlnref.DivergenceError as error:
        probes[factor] = math.inf
        verdict = f"diverged ({str(error).split('(')[0].strip()})"
    print(f"alpha = {factor:g} alpha_max = {alpha:.3g} (lr alpha^(2/L) S(1) = "
          f"{lr * alpha ** (2 / depth) * sharpness:.2f}): {verdict}")
stable = probes[0.8] <= threshold and probes[1.2] > 10 * threshold and probes[3.0] == math.inf
print(f"converges below alpha_max, stalls above it, blows up far above it: {stable}")
assert stable, probes

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
fig.savefig(out, dpi=100, bbox_inches="tight")
print(f"figure: {out}")
