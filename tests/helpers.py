"""Independent routes to the numbers that the tests check: explicit formulas and derivative checks."""

from functools import reduce

import numpy as np


def product(matrices, n):
    """``matrices[-1] @ ... @ matrices[0]``, or the n x n identity for an empty list (host NumPy)."""
    return reduce(lambda acc, W: W @ acc, matrices, np.eye(n))


def explicit_layer_gradient(weights, G, l):
    """``(W_L ... W_{l+1})^T G (W_{l-1} ... W_1)^T`` for 0-based layer ``l``, by direct products."""
    above = product(weights[l + 1:], weights[l].shape[0])
    below = product(weights[:l], weights[0].shape[1])
    return above.T @ G @ below.T


def central_difference_gradient(f, x, h):
    """Entry-wise central differences ``(f(x + h e_ij) - f(x - h e_ij)) / (2h)`` of ``f`` at host array ``x``."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = h
        grad[index] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


def taylor_slope(f, f0, directional_derivative, ts):
    """Slope of ``log |f(t) - f0 - t * D|`` against ``log t`` (pymanopt's derivative check).

    For a correct derivative ``D`` the first-order Taylor remainder is O(t^2),
    so the slope over a range of ``t`` where rounding does not dominate is 2;
    a wrong derivative leaves an O(t) remainder and a slope of 1.
    """
    remainders = np.array([abs(f(t) - f0 - t * directional_derivative) for t in ts])
    return np.polyfit(np.log(ts), np.log(remainders), 1)[0]
