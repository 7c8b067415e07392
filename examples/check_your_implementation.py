r"""
Checking your own implementation with the kit
=============================================

A reference implementation is most useful when it checks someone else's code.
:mod:`dlnref.testing` (the oracle kit) runs generated cases through your
function and through dlnref and, on a mismatch, reports the smallest failing
case with **every cause that fits its numbers**.

**Why the kit can name a cause.** A bug in a gradient step rarely gives random
numbers: it rescales or misplaces the correct update. Each hypothesis (a loss
normalised by :math:`mn` instead of :math:`|\Omega|`, a missing
:math:`\tfrac12`, :math:`\alpha` on one outer layer only, a transposed
gradient, ...) predicts the update *on that case*, and the kit tests each one
against yours. So that two hypotheses rarely predict the same numbers, the
cases keep the normalisation factors (:math:`|\Omega|`, :math:`mn`, 2)
pairwise distinct and draw an :math:`\alpha` that is no ratio of them; every
step is checked at two step sizes (:math:`\eta` and :math:`0.37\eta`), so that
an ignored :math:`\eta` shows.

dlnref's step, which your function must reproduce, is

.. math::

    W_l \leftarrow W_l - \eta\, s_l\, (W_L \cdots W_{l+1})^\top\, G\, (W_{l-1} \cdots W_1)^\top,
    \qquad G = \frac{P_\Omega(X - M)}{|\Omega|},\quad s_1 = s_L = \alpha,

for the completion loss :math:`\|P_\Omega(X - M)\|_F^2/(2|\Omega|)` (the
official code's normalisation).

This lesson writes a plain NumPy implementation, checks that it passes, then
plants two common bugs and checks that each is caught with its cause named.
Finally it rebuilds the failing case from the report's last line and confirms
the named factor by hand. It needs ``pip install "dlnref[test]"`` (hypothesis).

Run: ``python examples/check_your_implementation.py [--quick] [--out PATH]``.
"""

import argparse
import ast
import os
import pathlib
from functools import reduce

import matplotlib.pyplot as plt
import numpy as np

import dlnref.oracle
from dlnref.testing import assert_backward_matches, assert_step_matches

parser = argparse.ArgumentParser(description="Check an implementation of a DLN step with dlnref's oracle kit.")
parser.add_argument("--quick", action="store_true", help="fewer generated cases (or DLNREF_QUICK=1)")
parser.add_argument("--out", default=os.path.join("dlnref-output", "check_your_implementation.png"),
                    help="where to write the figure (default: dlnref-output/check_your_implementation.png)")
args = parser.parse_args()
quick = args.quick or os.environ.get("DLNREF_QUICK") == "1"
out = pathlib.Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)
examples = 10 if quick else 50


# %%
# Your implementation
# -------------------
# Layers input first, ``layers = [W_1, ..., W_L]`` with ``W_l`` of shape
# :math:`(d_l, d_{l-1})` (the kit also takes ``layout="output_first"``).
def my_backward(layers, G):
    """Gradients of <G, W_L ... W_1> with respect to each layer."""
    grads = []
    for k in range(len(layers)):
        below = reduce(lambda acc, W: W @ acc, layers[:k], np.eye(layers[0].shape[1]))   # W_{l-1} ... W_1
        above = reduce(lambda acc, W: W @ acc, layers[k + 1:], np.eye(layers[k].shape[0]))  # W_L ... W_{l+1}
        grads.append(above.T @ G @ below.T)
    return grads


def make_step(normalise_by="observed", alpha_on=("first", "last")):
    """A completion step; the keyword arguments plant the bugs."""
    def step(layers, problem, lr, alpha):
        X = reduce(lambda acc, W: W @ acc, layers)
        residual = np.where(problem.mask, X - problem.target, 0.0)
        G = residual / (problem.mask.sum() if normalise_by == "observed" else problem.mask.size)
        last = len(layers) - 1
        scales = [alpha if (l == 0 and "first" in alpha_on) or (l == last and "last" in alpha_on) else 1.0
                  for l in range(len(layers))]
        return [W - lr * s * g for W, s, g in zip(layers, scales, my_backward(layers, G))]
    return step


assert_backward_matches(my_backward, max_examples=examples)
assert_step_matches(make_step(), "completion", max_examples=examples)
print(f"the correct implementation passes: backward and step, {examples} generated cases each")

# %%
# Two planted bugs
# ----------------
# A mean over all :math:`mn` entries instead of the observed ones, and
# :math:`\alpha` on the first layer only.
bugs = {"mean over all entries": (make_step(normalise_by="all"), "mean over all"),
        "alpha on W_1 only": (make_step(alpha_on=("first",)), "alpha is applied to W_1 only")}
reports = {}
for name, (step, expected) in bugs.items():
    try:
        assert_step_matches(step, "completion", max_examples=examples)
    except AssertionError as error:
        reports[name] = str(error)
    else:
        raise AssertionError(f"the kit missed the bug: {name}")
    cause = next(line for line in reports[name].splitlines() if line.startswith("Likely cause"))
    print(f"{name}: caught. {cause}")
    assert expected in cause, f"the kit caught {name!r} but named another cause: {cause}"

# %%
# The report is a recipe: rebuild the case and check the factor by hand
# ---------------------------------------------------------------------
rebuild = next(line for line in reports["mean over all entries"].splitlines() if line.startswith("Rebuild"))
call = ast.parse(rebuild.split("; ", 1)[1].split(" = ", 1)[1], mode="eval").body  # build_case(...), read, not run
weights, problem = dlnref.oracle.build_case(*[ast.literal_eval(a) for a in call.args],
                                            **{k.arg: ast.literal_eval(k.value) for k in call.keywords})
good = make_step()(weights, problem, 0.1, 2.0)
bad = make_step(normalise_by="all")(weights, problem, 0.1, 2.0)
ratios = [float(np.linalg.norm(b - w) / np.linalg.norm(g - w)) for b, g, w in zip(bad, good, weights)]
expected = problem.mask.sum() / problem.mask.size
print(f"rebuilt: {rebuild.split('; ', 1)[1]}")
print(f"buggy update / correct update, per layer: {np.round(ratios, 6).tolist()}; |Omega| / (m n) = {expected:.6f}")
assert np.allclose(ratios, expected, rtol=1e-12), "the named factor does not explain the difference"

# %%
# The figure: the correct and the buggy updates of the rebuilt case, layer by layer.
fig, axes = plt.subplots(1, len(weights), figsize=(3.2 * len(weights), 3))
for l, (ax, g, b, w) in enumerate(zip(np.atleast_1d(axes), good, bad, weights), start=1):
    ax.plot((g - w).ravel(), (b - w).ravel(), "o")
    lim = float(np.max(np.abs(g - w)))
    ax.plot([-lim, lim], [-lim, lim], ":", color="0.5", label="equal")
    ax.plot([-lim, lim], [-lim * expected, lim * expected], "--", color="tab:red", label=r"$|\Omega|/(mn)$")
    ax.set_title(f"layer {l}", fontsize=10)
    ax.set_xlabel("correct update")
    ax.grid(True, alpha=0.3)
np.atleast_1d(axes)[0].set_ylabel("buggy update")
np.atleast_1d(axes)[0].legend(fontsize=8)
fig.suptitle("the rebuilt failing case: the bug scales every update by |Omega| / (m n)", fontsize=10)
fig.savefig(out, dpi=100, bbox_inches="tight")
print(f"figure: {out}")
