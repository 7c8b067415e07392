r"""
Exact compression: the wide network, trained at the cost of a narrow one
========================================================================

The invariant-subspace theorem (claim 1; the *Invariant subspace* section of
the paper summary, after Yaras et al.) says more than "the wide network is
nearly low-dimensional": for deep matrix factorization from an orthogonal
init :math:`W_l(0) = \varepsilon O_l`, every layer *is*

.. math::

    W_l(t) = B_l\,\big(\widetilde W_l(t) - \rho_l(t) I_w\big)\,B_{l-1}^\top + \frac{\rho_l(t)}{\varepsilon}\,W_l(0),
    \qquad w = 2r,

with fixed orthonormal bases :math:`B_l = O_l B_{l-1}` (:math:`d \times w`),
a :math:`w \times w` network :math:`\widetilde W_l` and one scalar
:math:`\rho_l` per layer. Gradient descent on the wide layers is then exactly
gradient descent on the pair:

.. math::

    \widetilde W_l \leftarrow \widetilde W_l - \eta s_l\, \widetilde A_l^\top \widetilde G\, \widetilde R_l^\top,
    \qquad \rho_l \leftarrow \rho_l - \eta s_l\, \frac{\pi}{mn} \prod_{k \ne l} \rho_k,
    \qquad \widetilde G = \frac{\widetilde X - \widetilde M}{mn},

with :math:`\widetilde M = B_L^\top M B_0` and :math:`\pi = \prod_l \rho_l`
(the derivation is the docstring of :mod:`dlnref.compress_exact`). This is the
law-of-parsimony construction of the official code, which no experiment of the
paper uses.

**Why a step is flat in d.** Nothing in the pair's step has a dimension
:math:`d`: it multiplies :math:`w \times w` matrices, :math:`O(L w^3)` flops,
against :math:`O(L d^3)` for the wide step. :math:`d` enters only once, in
building the bases, and again when the wide layers are rebuilt.

This lesson checks both halves: the pair's trajectory is the wide network's
(every layer, to rounding), and every array the pair's step works on has the
same shape at every :math:`d`. It also times both steps side by side, and
prints how the pair's time per step stays flat while the wide network's grows
like :math:`d^3` (timings are measurements, printed, never asserted).

Run: ``python examples/exact_compression.py [--quick] [--out PATH]``.
"""

import argparse
import os
import pathlib
import time

import matplotlib.pyplot as plt
import numpy as np

import dlnref

parser = argparse.ArgumentParser(description="The exact (law-of-parsimony) compression of a wide DLN.")
parser.add_argument("--quick", action="store_true", help="smaller sizes, a few seconds (or DLNREF_QUICK=1)")
parser.add_argument("--out", default=os.path.join("dlnref-output", "exact_compression.png"),
                    help="where to write the figure (default: dlnref-output/exact_compression.png)")
args = parser.parse_args()
quick = args.quick or os.environ.get("DLNREF_QUICK") == "1"
out = pathlib.Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)

rank, depth, eps = 2, 3, 1e-2


def setup(d):
    """A rank-2 factorization problem of size d, the wide orthogonal init, its exact pair and a stable lr."""
    problem = dlnref.make_problem("factorization", (d, d), rank, seed=0)
    wide = dlnref.init_weights([d] * (depth + 1), eps, seed=1)
    return problem, wide, dlnref.compress_exact(problem, wide), dlnref.auto_lr(problem, depth)


# %%
# The pair is the wide network
# ----------------------------
d = 24
problem, wide, pair, lr = setup(d)
steps = 1500
wide_run = dlnref.gradient_descent(problem, wide, lr, steps, record_every=50)
pair_run = dlnref.train_exact(problem, pair, lr, steps, record_every=50)
layer_gap = max(float(np.linalg.norm(a - b) / np.linalg.norm(a))
                for a, b in zip(wide_run.weights, pair_run.weights.layers()))
loss_gap = float(np.max(np.abs(np.array(pair_run.history["loss"]) / np.array(wide_run.history["loss"]) - 1)))
print(f"factorization d={d}, r={rank}, L={depth}, lr={lr:.3g}, {steps} steps: wide {dlnref.parameter_count(wide)} "
      f"parameters, pair {pair.parameter_count()} ({depth} x {2 * rank}^2 + {depth} scales)")
print(f"final error: wide {wide_run.history['recovery_error'][-1]:.3e}, pair {pair_run.history['recovery_error'][-1]:.3e}")
print(f"largest relative gap, wide layers against the pair's rebuilt layers: {layer_gap:.1e}; "
      f"loss at every recorded step: {loss_gap:.1e}")
assert layer_gap < 1e-12 and loss_gap < 1e-9, "the pair does not reproduce the wide network"

# %%
# Time per step against d
# -----------------------
# The best of three runs of each, side by side. One call of ``train_exact`` checks its
# inputs (:math:`O(d^2)`) once; over 1000 steps that is negligible.
sizes = (32, 64, 128) if quick else (32, 64, 128, 256, 512)
per_step = {"pair": [], "wide": []}
step_shapes = {}
for d in sizes:
    problem, wide, pair, lr = setup(d)
    step_shapes[d] = sorted({np.shape(a) for a in pair.narrow} | {np.shape(v) for v in pair.reduced.values()})
    best = {"pair": np.inf, "wide": np.inf}
    for _ in range(3):
        n = 1000  # 0.02 to 0.05 ms each
        start = time.perf_counter()
        dlnref.train_exact(problem, pair, lr, n, record_every=n)
        best["pair"] = min(best["pair"], (time.perf_counter() - start) / n)
        n = (100 if quick else 200) if d <= 128 else 20
        start = time.perf_counter()
        dlnref.gradient_descent(problem, wide, lr, n, record_every=n)
        best["wide"] = min(best["wide"], (time.perf_counter() - start) / n)
    for name, value in best.items():
        per_step[name].append(value)
    print(f"d={d}: pair {1e3 * best['pair']:.3f} ms per step, wide {1e3 * best['wide']:.3f} ms per step, "
          f"wide / pair {best['wide'] / best['pair']:.0f}x")
pair_growth = per_step["pair"][-1] / per_step["pair"][0]
wide_growth = per_step["wide"][-1] / per_step["wide"][0]
print(f"from d={sizes[0]} to d={sizes[-1]} ((d ratio)^3 = {(sizes[-1] / sizes[0]) ** 3:g}): "
      f"the pair's step {pair_growth:.2f}x, the wide step {wide_growth:.0f}x")
# The timings are measurements, printed, not asserted: a busy machine bends them. What makes the
# step flat is exact, and checked: every array the pair's step touches has the same shape at every d.
print(f"the arrays of the pair's step, at every d: {step_shapes[sizes[0]]}")
assert all(shapes == step_shapes[sizes[0]] for shapes in step_shapes.values()), "the pair's step depends on d"

# %%
# The figure: time per step against d, on log axes, with the :math:`d^3` slope.
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.loglog(sizes, 1e3 * np.array(per_step["wide"]), "o-", label="wide DLN, gradient_descent")
ax.loglog(sizes, 1e3 * np.array(per_step["pair"]), "s-", label=f"exact pair (w = {2 * rank}), train_exact")
ax.loglog(sizes, 1e3 * per_step["wide"][-1] * (np.array(sizes) / sizes[-1]) ** 3, ":", color="0.5",
          label=r"$\propto d^3$")
ax.set_xlabel("d")
ax.set_ylabel("ms per step")
ax.set_title(f"factorization, r={rank}, L={depth}: one step of the same trajectory", fontsize=10)
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8)
fig.savefig(out, dpi=100, bbox_inches="tight")
print(f"figure: {out}")
