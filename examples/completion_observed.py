r"""
Completion from the observed entries alone
==========================================

Matrix completion (the *Setup* of the paper summary) observes the entries
:math:`\Omega` of a rank-:math:`r` matrix :math:`M \in \mathbb{R}^{m \times n}`,

.. math::

    \mathcal L(X) = \frac{1}{2|\Omega|} \sum_{(i,j) \in \Omega} (X_{ij} - M_{ij})^2,
    \qquad \frac{\partial \mathcal L}{\partial X} = \frac{P_\Omega(X - M)}{|\Omega|}.

:class:`dlnref.MatrixCompletion` holds :math:`M` and the mask as
:math:`m \times n` arrays, as the official code does. Real data (ratings) come
as a list of entries, and a compressed network never needs more:

**Why no m x n array.** The end-to-end matrix of the C-DLN arrives factored,
:math:`X = W_L \cdot (W_{L-1}\cdots W_1)`, a :math:`m \times w` times a
:math:`w \times n` matrix. The residual on :math:`\Omega` is one row-dot per
entry, :math:`O(|\Omega| w)`; the gradient is a sparse matrix with those values,
and back-propagation multiplies it by thin matrices. A step costs
:math:`O(|\Omega| w + (m + n) w^2)`, and the surrogate :math:`P_\Omega(M)/p` of
the spectral init is a sparse truncated SVD. That is
:class:`dlnref.SparseCompletion`.

**What its error means.** A ``SparseCompletion`` built from entries alone
cannot know :math:`M` off :math:`\Omega`: its ``recovery_error`` is then the
relative error *over the observed entries*, a training error. With
``target_factors`` (synthetic problems) it is the error over all entries, and
``unobserved_error`` the one off :math:`\Omega`. On real data, hold entries
out (``test=``) and read ``test_rmse``.

This lesson checks: the sparse and the dense problem train the same network
along the same trajectory; the two meanings of ``recovery_error`` on it; and a
completion at a size where the dense arrays would be large, trained from the
entries, with a held-out set that tracks the true error.

Run: ``python examples/completion_observed.py [--quick] [--out PATH]``.
"""

import argparse
import os
import pathlib

import matplotlib.pyplot as plt
import numpy as np

import dlnref
from dlnref import plots

parser = argparse.ArgumentParser(description="Matrix completion from the observed entries alone.")
parser.add_argument("--quick", action="store_true", help="a smaller problem, a few seconds (or DLNREF_QUICK=1)")
parser.add_argument("--out", default=os.path.join("dlnref-output", "completion_observed.png"),
                    help="where to write the figure (default: dlnref-output/completion_observed.png)")
args = parser.parse_args()
quick = args.quick or os.environ.get("DLNREF_QUICK") == "1"
out = pathlib.Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)
depth, eps = 3, 1e-2

# %%
# One problem, two routes
# -----------------------
# The paper's dense completion problem, and the same entries as a
# ``SparseCompletion`` (with and without the target's factors).
d, rank, fraction, lr, alpha = 30, 2, 0.5, 3.0, 3.0
dense = dlnref.make_problem("completion", (d, d), rank, fraction=fraction, seed=0)
M, mask = dlnref.to_numpy(dense.target), dlnref.to_numpy(dense.mask)
U, s, Vh = np.linalg.svd(M)
factors = (U[:, :rank] * s[:rank], Vh[:rank])
routes = {"dense": dense,
          "sparse, entries only": dlnref.SparseCompletion.from_dense(M, mask),
          "sparse, with factors": dlnref.SparseCompletion.from_dense(M, mask, target_factors=factors)}
runs = {name: dlnref.gradient_descent(problem, dlnref.compress(problem, depth, width=2 * rank, scale=eps), lr, 3000,
                                      outer_lr_scale=alpha, record_every=100)
        for name, problem in routes.items()}
losses = {name: np.array(run.history["loss"]) for name, run in runs.items()}
loss_gap = max(float(np.max(np.abs(losses[name] / losses["dense"] - 1))) for name in losses)
print(f"completion d={d}, r={rank}, p={fraction}: |Omega| = {routes['dense'].mask.sum()} entries; "
      f"largest relative gap between the routes' losses over 3000 steps: {loss_gap:.1e}")
for name, run in runs.items():
    print(f"{name}: recovery_error {run.history['recovery_error'][-1]:.2e}")
on_observed = float(np.linalg.norm((dlnref.end_to_end(runs["dense"].weights) - M)[mask]) / np.linalg.norm(M[mask]))
print(f"by hand, over the observed entries: {on_observed:.2e}")
assert loss_gap < 1e-9, "the sparse and the dense problem train differently"
assert abs(runs["sparse, with factors"].history["recovery_error"][-1] / runs["dense"].history["recovery_error"][-1]
           - 1) < 1e-3, "with factors, the sparse error is not the error over all entries"
assert abs(runs["sparse, entries only"].history["recovery_error"][-1] / on_observed - 1) < 1e-3, \
    "without factors, the sparse error is not the error over the observed entries"

# %%
# A large problem, from its entries
# ---------------------------------
# ``synthetic_completion`` draws a factored rank-:math:`r` target and the
# entries, never the dense matrix. Here we keep its factors aside (to measure
# the truth at the end) and train from the entries plus a held-out set, as on
# real data.
(m, n), rank, fraction = ((600, 500), 3, 0.05) if quick else ((3000, 2000), 3, 0.02)
drawn = dlnref.synthetic_completion((m, n), rank, fraction, seed=0)
A, B = drawn.target_factors
rng = np.random.default_rng(1)
held_rows, held_cols = rng.integers(0, m, 2000), rng.integers(0, n, 2000)
held_out = (held_rows, held_cols, np.einsum("kr,rk->k", A[held_rows], B[:, held_cols]))
problem = dlnref.SparseCompletion(drawn.rows, drawn.cols, drawn.values, (m, n), test=held_out)
print(f"completion {m} x {n}, r={rank}, p={fraction}: {problem.observed:,} observed entries of {m * n:,} "
      f"(dense float64 arrays: {8 * m * n / 1e6:.0f} MB each; the entries: {24 * problem.observed / 1e6:.1f} MB)")
run = dlnref.gradient_descent(problem, dlnref.compress(problem, depth, width=2 * rank, scale=eps), "auto", 5000,
                              outer_lr_scale=2.0, tol=1e-4, record_every=20)
history = run.history
left, right = run.weights[-1], dlnref.end_to_end(run.weights[:-1])
true_error = float(np.linalg.norm(left @ right - A @ B) / np.linalg.norm(A @ B))
rms = float(np.linalg.norm(A @ B) / np.sqrt(m * n))
print(f"{run.steps} steps ({1e3 * history['seconds'][-1] / run.steps:.2f} ms per step): error over the observed "
      f"entries {history['recovery_error'][-1]:.1e}; held-out RMSE / RMS(M) {history['test_rmse'][-1] / rms:.1e}; "
      f"true error over all entries {true_error:.1e}")
assert true_error < 1e-3, "the compressed network did not complete the matrix"
assert 0.3 < history["test_rmse"][-1] / rms / true_error < 3, "the held-out set does not track the true error"

# %%
# The figure: the observed-entries error and the held-out RMSE of the large run.
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.semilogy(history["step"], history["recovery_error"], label="recovery_error (observed entries only)")
ax.semilogy(history["step"], np.array(history["test_rmse"]) / rms, label="held-out RMSE / RMS(M)")
ax.axhline(true_error, color="0.4", ls="--", label="true error at the end, all entries")
plots.steps_axis(ax)
ax.grid(True, alpha=0.3)
ax.set_title(f"completion from {problem.observed:,} entries of a {m} x {n} matrix, r={rank}", fontsize=10)
ax.legend(fontsize=8)
fig.savefig(out, dpi=100, bbox_inches="tight")
print(f"figure: {out}")
