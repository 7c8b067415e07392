r"""
Saxe's closed form against gradient descent
===========================================

Saxe, McClelland and Ganguli (2014) solved the gradient flow of a depth-2
linear network exactly (the *Related work* of the paper summary). Take
:math:`X = W_2 W_1` and :math:`\mathcal L = \|X - M\|_F^2/2`, with a balanced
init aligned with the target's singular vectors,
:math:`W_1(0) = \varepsilon V^\top`, :math:`W_2(0) = \varepsilon U` (which is
what :func:`dlnref.compress` builds for factorization with ``width = r``).

**Why a closed form.** Then :math:`X` keeps the target's singular vectors,
the layers stay balanced (:math:`W_2^\top W_2 - W_1 W_1^\top` is conserved), and
each mode :math:`u_i = u_i^\top X v_i` obeys
:math:`du/d\tau = 2u(s_i - u)` from :math:`u_0 = \varepsilon^2`, a logistic
equation solved by

.. math::

    u(\tau) = \frac{s\, e^{2 s \tau}}{e^{2 s \tau} - 1 + s/u_0}
    \qquad \text{(dlnref.saxe\_mode)},

a sigmoid that switches on at :math:`\tau \approx \log(s/u_0)/(2s)`: the larger
:math:`s_i`, the earlier. That is incremental learning in closed form.

dlnref's factorization loss is :math:`\|X - M\|_F^2/(2mn)`, so gradient descent
with step :math:`\eta` is the flow's Euler discretisation at
:math:`\tau = \eta k/(mn)` after :math:`k` steps. This lesson runs it at two
step sizes, 4x apart, and checks the largest gap
:math:`\max_k |u_i(k) - u_i(\tau_k)|/s_i`: below 1% at the finer step, and
shrinking about 4x with the step, as Euler's method is first order.

Run: ``python examples/saxe_closed_form.py [--quick] [--out PATH]``.
"""

import argparse
import os
import pathlib

import matplotlib.pyplot as plt
import numpy as np

import dlnref

parser = argparse.ArgumentParser(description="Depth-2 gradient descent against Saxe et al.'s closed form.")
parser.add_argument("--quick", action="store_true", help="a smaller problem, a few seconds (or DLNREF_QUICK=1)")
parser.add_argument("--out", default=os.path.join("dlnref-output", "saxe_closed_form.png"),
                    help="where to write the figure (default: dlnref-output/saxe_closed_form.png)")
args = parser.parse_args()
quick = args.quick or os.environ.get("DLNREF_QUICK") == "1"
out = pathlib.Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)

d, spectrum = (12, [3.0, 2.0, 1.0]) if quick else (40, [8.0, 4.0, 2.0, 1.0])
eps = 1e-2
s = np.array(spectrum)
target = dlnref.low_rank_matrix(d, d, len(s), seed=0, spectrum=spectrum)
problem = dlnref.MatrixFactorization(target)
U, _, Vh = np.linalg.svd(target)
U, V = U[:, :len(s)], Vh[:len(s)].T
u0 = eps**2
tau_end = np.log(s[-1] / u0 * 1e3) / (2 * s[-1])  # the slowest mode within 1e-3 of its target


def run_at(dtau):
    """Gradient descent with ``lr = dtau * m n``: returns tau_k and the modes u_i(k), shape (T, r)."""
    steps = int(np.ceil(tau_end / dtau))
    run = dlnref.gradient_descent(problem, dlnref.compress(problem, 2, width=len(s), scale=eps), dtau * d * d,
                                  steps, record_every=max(1, steps // 300),
                                  observe=lambda k, W: {"modes": np.diag(U.T @ (W[1] @ W[0]) @ V)})
    return np.array(run.history["step"]) * dtau, np.array(run.history["modes"])


# %%
# Two step sizes, 4x apart
# ------------------------
# In units of :math:`1/s_1`.
gaps = {}
for fraction in (0.02, 0.005):
    taus, modes = run_at(fraction / s[0])
    exact = np.stack([dlnref.saxe_mode(taus, si, u0) for si in s], axis=1)
    gaps[fraction] = float(np.max(np.abs(modes - exact) / s))
    print(f"step d tau = {fraction:g} / s_1 ({len(taus)} recorded steps): "
          f"max |u_i(k) - u_i(tau_k)| / s_i = {gaps[fraction]:.2e}")
print(f"gap ratio for a 4x smaller step: {gaps[0.02] / gaps[0.005]:.2f} (Euler: about 4)")
assert gaps[0.005] < 1e-2, "gradient descent strays from the closed form by more than 1% of s_i"
assert 3 < gaps[0.02] / gaps[0.005] < 5, "the gap does not shrink in proportion to the step"

# %%
# The figure: the modes of the finer run (dots) over the closed form (lines).
fig, ax = plt.subplots(figsize=(6.5, 4))
fine = np.linspace(0, tau_end, 600)
for i, (si, color) in enumerate(zip(s, plt.cm.viridis(np.linspace(0, 0.9, len(s))))):
    ax.plot(fine, dlnref.saxe_mode(fine, si, u0), color=color, lw=1.5, label=f"closed form, s={si:g}")
    ax.plot(taus[::6], modes[::6, i], "o", color=color, ms=3)
ax.set_xlabel(r"$\tau = $ lr $k / (m n)$")
ax.set_ylabel(r"mode $u_i = u_i^T X v_i$")
ax.set_title(f"depth 2, d={d}, eps={eps:g}: gradient descent (dots) vs Saxe et al. (lines)", fontsize=10)
ax.grid(True, alpha=0.3)
ax.legend(fontsize=8)
fig.savefig(out, dpi=100, bbox_inches="tight")
print(f"figure: {out}")
