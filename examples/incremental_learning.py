r"""
Incremental learning
====================

A deep linear network started from a small init does not fit its target all at
once. It fits the target's singular values one after another, largest first
(claim 2 of Kwon et al.; the *Incremental learning, as pictured* figure of the
paper), and meanwhile the top singular vectors of the last layer :math:`W_L`
and of the first :math:`W_1` turn towards the target's, much like a power method.

**Why.** Along the target's :math:`i`-th singular pair, with every layer
holding the mode with the factor :math:`a`, the end-to-end value
:math:`u = a^L` follows the flow
:math:`\dot u = L\,u^{2-2/L}(s_i - u)/(mn)` (time :math:`\tau = \eta k`). From
:math:`u(0) = \varepsilon^L` it waits on a plateau of length about
:math:`mn/((L-2)\,\varepsilon^{L-2} s_i)` for :math:`L \ge 3`: the larger
:math:`s_i`, the sooner it leaves, so the modes are learnt in order. Before any
mode is learnt, the gradient :math:`A_l^\top G R_l^\top` with
:math:`G \approx -M/(mn)` multiplies the layers by :math:`M` step after step, a
power iteration: the layers' top singular vectors align with :math:`M`'s first.

This lesson trains a wide DLN (depth 3, :math:`d \times d` layers,
:math:`\varepsilon = 10^{-2}`) on deep matrix factorization, and records at every
step, through ``gradient_descent``'s ``observe`` hook:

- the singular values of the end-to-end matrix :math:`X(t)`;
- the alignment :math:`|\langle u_1(W_L), u_1(M)\rangle|` of the top left
  singular vector of :math:`W_L` with the target's, and the same for the right
  vectors of :math:`W_1`.

It checks that each :math:`\sigma_i(X)` first reaches 90% of :math:`s_i` at
steps :math:`t_1 < t_2 < \dots`, and that both alignments pass 0.99 before
:math:`t_1`.

Run: ``python examples/incremental_learning.py [--quick] [--out PATH]``.
"""

import argparse
import itertools
import os
import pathlib

import matplotlib.pyplot as plt
import numpy as np

import dlnref
from dlnref import plots

parser = argparse.ArgumentParser(description="Incremental learning in a wide deep linear network.")
parser.add_argument("--quick", action="store_true", help="a smaller problem, a few seconds (or DLNREF_QUICK=1)")
parser.add_argument("--out", default=os.path.join("dlnref-output", "incremental_learning.png"),
                    help="where to write the figure (default: dlnref-output/incremental_learning.png)")
args = parser.parse_args()
quick = args.quick or os.environ.get("DLNREF_QUICK") == "1"
out = pathlib.Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)

# %%
# The problem and the network
# ---------------------------
# A rank-r target with well separated singular values (the official code's
# "spread" spectrum), and a wide DLN with d x d layers.
d, rank, depth = (20, 3, 3) if quick else (50, 4, 3)
problem = dlnref.make_problem("factorization", (d, d), rank, seed=0)
weights = dlnref.init_weights([d] * (depth + 1), scale=1e-2, seed=1)
s_target = dlnref.singular_values(problem.target)[:rank]
u_target, v_target = dlnref.top_singular_subspaces(problem.target, 1)

# Half the largest stable step for this loss (see examples/choosing_lr.py):
# lr = m n / (L s_1^(2 - 2/L)).
lr = d * d / (depth * s_target[0] ** (2 - 2 / depth))


# %%
# What to record: ``observe(step, weights)`` returns a dict, added to the
# history row. Arrays are kept as they are.
def observe(step, weights):
    u_last, _ = dlnref.top_singular_subspaces(weights[-1], 1)
    _, v_first = dlnref.top_singular_subspaces(weights[0], 1)
    return {
        "sigma": dlnref.singular_values(dlnref.end_to_end(weights))[:rank],
        "left_alignment": abs(float(u_last[:, 0] @ u_target[:, 0])),
        "right_alignment": abs(float(v_first[:, 0] @ v_target[:, 0])),
    }


run = dlnref.gradient_descent(problem, weights, lr, steps=20000, tol=1e-6, observe=observe)
history = run.history
sigma = np.array(history["sigma"])  # shape (T, r)

# %%
# When is each singular value learnt?
# -----------------------------------
times = dlnref.first_reach_times(history["step"], sigma, s_target, fraction=0.9)
print(f"factorization d={d}, r={rank}, L={depth}, lr={lr:.3g}: {run.steps} steps to error "
      f"{history['recovery_error'][-1]:.1e}")
for i, (t, s) in enumerate(zip(times, s_target), start=1):
    print(f"sigma_{i}: target {s:.3f}, reaches 90% at step {t}")
in_order = all(a is not None and b is not None and a < b for a, b in itertools.pairwise(times))
print(f"learnt in order (t_1 < t_2 < ...): {in_order}")
for side in ("left", "right"):
    print(f"{side} alignment first >= 0.99 at step {history.first_above(0.99, f'{side}_alignment')}")
aligned = [history.first_above(0.99, f"{side}_alignment") for side in ("left", "right")]
assert in_order, f"the singular values were not learnt in order: {times}"
assert all(a is not None and a <= times[0] for a in aligned), "the vectors did not align before the first mode"

# %%
# The figure
# ----------
fig, (ax_values, ax_align) = plt.subplots(1, 2, figsize=(10, 4))
plots.singular_value_curves(history["step"], sigma, s_target, ax=ax_values)
ax_values.legend(fontsize=8, loc="lower right")
ax_values.set_title("singular values of X(t); the target's dashed", fontsize=10)
ax_align.plot(history["step"], history["left_alignment"], label=r"$|\langle u_1(W_L), u_1(M)\rangle|$")
ax_align.plot(history["step"], history["right_alignment"], label=r"$|\langle v_1(W_1), v_1(M)\rangle|$")
plots.steps_axis(ax_align)
ax_align.set_ylabel("alignment with the target's top singular vector")
ax_align.grid(True, alpha=0.3)
ax_align.legend()
fig.suptitle(f"incremental learning: wide DLN, factorization, d={d}, r={rank}, L={depth}")
fig.savefig(out, dpi=100, bbox_inches="tight")
print(f"figure: {out}")
