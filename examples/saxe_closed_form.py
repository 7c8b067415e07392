"""
Saxe's closed form against gradient descent
===========================================

Saxe, McClelland and Ganguli (2014) solved the gradient flow of a depth-2
linear network exactly. Take ``X = W_2 W_1`` and ``loss = ||X - M||_F^2 / 2``,
with a balanced init aligned with the target's singular vectors,
``W_1(0) = eps V^T``, ``W_2(0) = eps U`` (which is what ``dlnref.compress``
builds for factorization with ``width = r``). Then ``X`` keeps the target's
singular vectors, and each mode ``u_i = u_i^T X v_i`` obeys
``du/dtau = 2 u (s_i - u)`` from ``u0 = eps^2``, solved by

    u(tau) = s e^{2 s tau} / (e^{2 s tau} - 1 + s / u0)        (dlnref.saxe_mode)

a sigmoid that switches on at ``tau ~ log(s / u0) / (2 s)``: the larger
``s_i``, the earlier. That is incremental learning in closed form.

dlnref's factorization loss is ``||X - M||_F^2 / (2 m n)``, so gradient descent
with step ``lr`` is the flow's Euler discretisation at ``tau = lr k / (m n)``
after k steps. This lesson runs it at two step sizes, prints the largest gap
``|u_i(k) - u_i(tau_k)| / s_i`` for each (it shrinks in proportion to the step,
as Euler's method is first order) and draws the modes over the closed form.

Run: ``python examples/saxe_closed_form.py [--quick] [--out PATH]``.
"""

import argparse
import os

import matplotlib.pyplot as plt
import numpy as np

import dlnref

parser = argparse.ArgumentParser(description="Depth-2 gradient descent against Saxe et al.'s closed form.")
parser.add_argument("--quick", action="store_true", help="a smaller problem, a few seconds (or DLNREF_QUICK=1)")
parser.add_argument("--out", default="saxe_closed_form.png", help="where to write the figure")
args = parser.parse_args()
quick = args.quick or os.environ.get("DLNREF_QUICK") == "1"

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
# Two step sizes, 4x apart, in units of 1 / s_1.
gaps = {}
for fraction in (0.02, 0.005):
    taus, modes = run_at(fraction / s[0])
    exact = np.stack([dlnref.saxe_mode(taus, si, u0) for si in s], axis=1)
    gaps[fraction] = float(np.max(np.abs(modes - exact) / s))
    print(f"step d tau = {fraction:g} / s_1 ({len(taus)} recorded steps): "
          f"max |u_i(k) - u_i(tau_k)| / s_i = {gaps[fraction]:.2e}")
print(f"gap ratio for a 4x smaller step: {gaps[0.02] / gaps[0.005]:.2f} (Euler: about 4)")

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
fig.savefig(args.out, dpi=100, bbox_inches="tight")
print(f"figure: {args.out}")
