r"""
An MLP with a deep linear block
===============================

The paper's last claim (claim 4; the *FashionMNIST MLP* row of the published
results, and the *Classification model* of the official code): add a block of
linear layers to a nonlinear network, and the block can be compressed like a
DLN, for a faster step and the same accuracy. The model of
:mod:`dlnref.nn.mlp`, input first and images as columns, is

.. math::

    H_1 = \mathrm{relu}(W_1 X),\qquad
    H_2 = \mathrm{relu}\big(\underbrace{W_{b,3} W_{b,2} W_{b,1}}_{X_b}\, H_1\big),\qquad
    Z = W_{\text{out}} H_2,

with :math:`h \times h` block layers in the wide model and
:math:`h \to w \to w \to h` in the compressed one, softmax cross-entropy over
:math:`K` classes, and full-batch gradient descent.

**Why the block's update is low-dimensional.** The block is a DLN whose
"target" is set by the gradient it receives,
:math:`\partial\mathcal L/\partial X_b = \big(W_{\text{out}}^\top (P - Y)/n \odot \mathrm{relu}'\big) H_1^\top`,
with :math:`P - Y` the :math:`K \times n` softmax residual. Without the ReLU's
mask that gradient has rank at most :math:`K`; with it, nearly so. So the
block's end-to-end update :math:`X_b(T) - X_b(0)` should hold almost all its
energy in :math:`2K` directions, the invariant subspace of a DLN fitting a
rank-:math:`K` target, and a block of width :math:`w = 2K` should lose nothing.
The compressed block starts from the top singular vectors of the wide block's
first step (:func:`dlnref.nn.mlp.spectral_block`, the analogue of
:func:`dlnref.compress`), or at random like every other layer.

This lesson trains the three models on scikit-learn's 8x8 digits
(:math:`K = 10`, a fixed stratified 80/20 split) and checks: the wide block's
update holds at least 99% of its energy in its top :math:`2K` singular values,
and the spectrally started compressed model's test accuracy is within 0.02 of
the wide model's. It needs ``pip install "dlnref[nn]"``.

Run: ``python examples/mlp_linear_block.py [--quick] [--out PATH]``.
"""

import argparse
import os
import pathlib

import matplotlib.pyplot as plt
import numpy as np

import dlnref
from dlnref.nn import images, mlp

parser = argparse.ArgumentParser(description="An MLP with a deep linear block, wide and compressed.")
parser.add_argument("--quick", action="store_true", help="a smaller model, a few seconds (or DLNREF_QUICK=1)")
parser.add_argument("--out", default=os.path.join("dlnref-output", "mlp_linear_block.png"),
                    help="where to write the figure (default: dlnref-output/mlp_linear_block.png)")
args = parser.parse_args()
quick = args.quick or os.environ.get("DLNREF_QUICK") == "1"
out = pathlib.Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)

hidden, steps = (48, 150) if quick else (256, 300)
lr, classes = 0.2, 10
digits = images.load_digits()
train = mlp.labelled_set(digits.train_images, digits.train_labels, classes)
test = mlp.labelled_set(digits.test_images, digits.test_labels, classes)
width = 2 * classes

# %%
# Three models from one seed
# --------------------------
layout = mlp.mlp_layout(train.X.shape[0], classes, hidden, block_depth=3)
wide = mlp.init_mlp(layout, scale=1.0, seed=0)
spectral, small_layout = mlp.spectral_block(wide, layout, train.X, train.Y, width)
models = {"wide": (wide, layout), "compressed, spectral": (spectral, small_layout),
          "compressed, random": (mlp.init_mlp(small_layout, scale=1.0, seed=0), small_layout)}
runs = {}
for name, (weights, model_layout) in models.items():
    runs[name] = mlp.train_mlp(weights, model_layout, train, lr, steps, test=test, record_every=20)
    history = runs[name].history
    print(f"{name}: {dlnref.parameter_count(weights):,} parameters, test accuracy "
          f"{history['test_accuracy'][-1]:.3f} after {steps} steps, "
          f"{1e3 * history['seconds'][-1] / steps:.2f} ms per step")

# %%
# The wide block's update
# -----------------------
first, stop = layout.block_layers
update = dlnref.end_to_end(runs["wide"].weights[first:stop]) - dlnref.end_to_end(wide[first:stop])
energy = np.cumsum(np.linalg.svd(update, compute_uv=False) ** 2)
energy /= energy[-1]
print(f"wide block ({hidden} x {hidden}): share of ||X_b(T) - X_b(0)||_F^2 in the top K = {classes} singular values "
      f"{energy[classes - 1]:.4f}, in the top 2K = {width}: {energy[width - 1]:.4f}")
assert energy[width - 1] >= 0.99, "the block's update is not concentrated in 2K directions"

# %%
# Accuracy
# --------
gap = runs["wide"].history["test_accuracy"][-1] - runs["compressed, spectral"].history["test_accuracy"][-1]
print(f"test accuracy, wide minus compressed (spectral): {gap:+.3f}")
assert abs(gap) <= 0.02, "the compressed block costs more than 0.02 of test accuracy"

# %%
# The figure: test accuracy against step, and the spectrum of the update.
fig, (acc, spectrum) = plt.subplots(1, 2, figsize=(10, 4))
for name, run in runs.items():
    acc.plot(run.history["step"], run.history["test_accuracy"], label=name)
acc.set_xlabel("step")
acc.set_ylabel("test accuracy")
acc.set_ylim(0.5, 1)
acc.grid(True, alpha=0.3)
acc.legend(fontsize=8)
spectrum.semilogy(np.arange(1, len(energy) + 1), 1 - energy + 1e-16, "o", ms=3)
spectrum.axvline(width, color="0.5", ls=":", label=f"2K = {width}")
spectrum.set_xlabel("k")
spectrum.set_ylabel(r"energy of $X_b(T) - X_b(0)$ beyond its top $k$")
spectrum.grid(True, alpha=0.3)
spectrum.legend()
fig.suptitle(f"digits, MLP with a linear block of depth 3, h={hidden}, lr={lr:g}")
fig.savefig(out, dpi=100, bbox_inches="tight")
print(f"figure: {out}")
