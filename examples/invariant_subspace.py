r"""
The invariant subspace of one layer
===================================

The compression rests on Yaras et al.'s theorem (the "law of parsimony"; claim 1
of Kwon et al., the *Invariant subspace* section of the paper summary). For deep
matrix factorization with a rank-:math:`r` target and an orthogonal init
:math:`W_l(0) = \varepsilon O_l`, every layer keeps the form

.. math::

    W_l(t) = U_l \begin{bmatrix} \widetilde W_l(t) & 0 \\ 0 & \rho(t) I_{d-2r} \end{bmatrix} V_l^\top,
    \qquad V_{l+1} = U_l,

with :math:`U_l`, :math:`V_l` fixed. Only a :math:`2r`-dimensional subspace of
each layer moves; the other :math:`d - 2r` singular values share one value
:math:`\rho(t)`, on a complement that does not turn.

**Why.** The gradient of layer :math:`l` is
:math:`A_l^\top G R_l^\top` with :math:`G = (X - M)/(mn)`. At the init,
:math:`G` is a multiple of :math:`X(0)` plus the rank-:math:`r` data part
:math:`-M/(mn)`; both keep the block form, so every step keeps it
(the derivation is in :mod:`dlnref.compress_exact`).

**What is not zero.** The complement still moves, slowly: there
:math:`X = \rho^L` and the update is
:math:`\rho \leftarrow \rho - \eta \rho^{2L-1}/(mn)`, a drift of order
:math:`\varepsilon^{2L-1}`. The block, meanwhile, moves by
:math:`\eta\,\varepsilon^{2(L-1)} s_1(M)/(mn)` per step at first. So the
update :math:`W_1(t) - W_1(0)` is *not* of rank :math:`2r` to rounding: its
tail :math:`s_{2r+1}` is :math:`|\rho(t) - \varepsilon|`, and the ratio
:math:`s_{2r+1}/s_1` starts at

.. math::

    \frac{\eta\,\varepsilon^{2L-1}/(mn)}{\eta\,\varepsilon^{2L-2} s_1(M)/(mn)} = \frac{\varepsilon^L}{s_1(M)}

(1.4e-7 here, far above float64 rounding) and falls as the block grows.

This lesson trains a wide DLN, keeps :math:`W_1` at each recorded step, and checks:

- the spread of the :math:`d - 2r` equal singular values and the angles of the
  complement (with :func:`dlnref.invariant_subspace_residuals`): at rounding level;
- the update's tail against :math:`|\rho(t) - \varepsilon|` from the scalar
  recursion above, and its worst ratio against :math:`\varepsilon^L / s_1(M)`.

Run: ``python examples/invariant_subspace.py [--quick] [--out PATH]``.
"""

import argparse
import os
import pathlib

import matplotlib.pyplot as plt
import numpy as np

import dlnref
from dlnref import plots
from dlnref.dynamics import moving_and_fixed

parser = argparse.ArgumentParser(description="The invariant subspace of one layer of a deep linear network.")
parser.add_argument("--quick", action="store_true", help="a smaller problem, a few seconds (or DLNREF_QUICK=1)")
parser.add_argument("--out", default=os.path.join("dlnref-output", "invariant_subspace.png"),
                    help="where to write the figure (default: dlnref-output/invariant_subspace.png)")
args = parser.parse_args()
quick = args.quick or os.environ.get("DLNREF_QUICK") == "1"
out = pathlib.Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)

d, rank, depth, eps = (16, 2, 3, 1e-2) if quick else (40, 3, 3, 1e-2)
problem = dlnref.make_problem("factorization", (d, d), rank, seed=0)
weights = dlnref.init_weights([d] * (depth + 1), scale=eps, seed=1)
s_1 = float(dlnref.singular_values(problem.target)[0])
lr = d * d / (depth * s_1 ** (2 - 2 / depth))  # half the stable step (the "Choosing lr" lesson)

# %%
# Train, keeping a host copy of the first layer at every recorded step.
run = dlnref.gradient_descent(problem, weights, lr, steps=20000, tol=1e-6, record_every=5,
                              observe=lambda step, W: {"W_1": dlnref.to_numpy(W[0]).copy()})
steps, layers = run.history["step"], run.history["W_1"]

# %%
# The form: equal singular values on a complement that does not turn
# -------------------------------------------------------------------
# Each recorded :math:`W_1(t)` is measured against the last one.
residuals = [dlnref.invariant_subspace_residuals(layers[0], w, layers[-1], rank) for w in layers]
worst = {name: max(r[name] for r in residuals) for name in ("equal_spread", "left_angle", "right_angle")}
print(f"factorization d={d}, r={rank}, L={depth}, eps={eps:g}, lr={lr:.3g}: {run.steps} steps, "
      f"final error {run.history['recovery_error'][-1]:.1e}")
print(f"worst spread of the d - 2r = {d - 2 * rank} equal singular values: {worst['equal_spread']:.2e}")
print(f"worst angle of the fixed complement, left: {worst['left_angle']:.2e} rad")
print(f"worst angle of the fixed complement, right: {worst['right_angle']:.2e} rad")
assert max(worst.values()) < 1e-10, f"the invariant form fails beyond rounding: {worst}"

# %%
# The update's tail is the drift of :math:`\rho`, not rounding
# ------------------------------------------------------------
# The scalar recursion :math:`\rho \leftarrow \rho - \eta\rho^{2L-1}/(mn)`,
# run by hand, predicts the tail :math:`s_{2r+1}(W_1(t) - W_1(0)) = |\rho(t) - \varepsilon|`.
rho = [eps]
for _ in range(run.steps):
    rho.append(rho[-1] - lr * rho[-1] ** (2 * depth - 1) / (d * d))
tails = np.array([np.linalg.svd(w - layers[0], compute_uv=False)[[0, 2 * rank]] for w in layers[1:]])
drift = np.abs(np.array([rho[t] for t in steps[1:]]) - eps)
tail_gap = float(np.max(np.abs(tails[:, 1] - drift) / drift))
ratio = tails[:, 1] / tails[:, 0]
theory = eps ** depth / s_1
print(f"s_(2r+1) of W_1(t) - W_1(0) against |rho(t) - eps| from the recursion: worst relative gap {tail_gap:.1e}")
print(f"worst s_(2r+1) / s_1 of W_1(t) - W_1(0): {ratio.max():.2e} at step {steps[1 + int(ratio.argmax())]} "
      f"(theory: eps^L / s_1(M) = {theory:.2e})")
print(f"at the end: s_(2r+1) / s_1 = {ratio[-1]:.2e} (the block has grown, the drift has not)")
assert tail_gap < 1e-3, "the update's tail is not the drift of rho"
assert abs(ratio.max() / theory - 1) < 0.05, "the first ratio is not eps^L / s_1(M)"

# %%
# The figure: the :math:`2r` singular values that move, the band of the equal
# ones, and the ratio :math:`s_{2r+1}/s_1` of the update against
# :math:`\varepsilon^L/s_1(M)`.
values = np.array([dlnref.singular_values(w) for w in layers])
splits = [moving_and_fixed(v, rank, near=eps) for v in values]
moving = np.array([v[m] for v, (m, _) in zip(values, splits)])
fixed = np.array([v[f] for v, (_, f) in zip(values, splits)])
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
plots.layer_singular_values(steps, moving, fixed, ax=left)
right.semilogy(steps[1:], ratio, label=r"$s_{2r+1}/s_1$ of $W_1(t) - W_1(0)$")
right.axhline(theory, color="0.4", ls="--", label=r"$\varepsilon^L / s_1(M)$")
right.set_xlabel("step")
right.grid(True, alpha=0.3)
right.legend(loc="lower left")
fig.suptitle(f"one layer ($W_1$) of a wide DLN: factorization, d={d}, r={rank}, L={depth}")
fig.savefig(out, dpi=100, bbox_inches="tight")
print(f"figure: {out}")
