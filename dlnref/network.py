r"""Deep linear networks: initialisation, end-to-end product, and hand-written gradients.

Convention (used everywhere in dlnref)
--------------------------------------
``weights = [W_1, ..., W_L]`` with ``W_l`` of shape ``(d_l, d_{l-1})``, so the
first layer acts first and the end-to-end matrix is

.. math::

    X = W_L W_{L-1} \cdots W_2 W_1 \in \mathbb{R}^{d_L \times d_0}.

``dims = (d_0, d_1, ..., d_L)`` lists the widths from input to output.
"""

import numpy as np

from ._checks import as_generator, check_array, check_int, check_positive, check_shape
from .backend import array_namespace, to_backend
from .data import haar_orthonormal
from .errors import InputError, InputTypeError

INIT_KINDS = ("orthogonal", "gaussian", "uniform")


def init_weights(dims, scale, kind="orthogonal", seed=0, backend=None):
    """Draw the initial weights of a DLN.

    Parameters
    ----------
    dims : sequence of int, length L + 1
        ``(d_0, d_1, ..., d_L)``; layer ``l`` has shape ``(d_l, d_{l-1})``.
    scale : float
        The paper's ``eps``: every layer has (expected) squared Frobenius norm
        ``scale**2 * min(d_l, d_{l-1})``.
    kind : {"orthogonal", "gaussian", "uniform"}
        ``orthogonal``: ``W_l = scale * O_l`` with ``O_l`` Haar-distributed with
        orthonormal columns (tall layers) or rows (wide layers); square layers
        are ``scale`` times an orthogonal matrix, as the paper's theory assumes.
        ``gaussian``: i.i.d. ``N(0, sigma^2)`` entries and ``uniform``: i.i.d.
        ``U(-sqrt(3) sigma, sqrt(3) sigma)`` entries, with
        ``sigma^2 = scale^2 min(d_l, d_{l-1}) / (d_l d_{l-1})``, so that
        ``E ||W_l||_F^2`` equals the orthogonal kind's ``||W_l||_F^2``.
    seed : int or numpy.random.Generator
        Source of randomness; the draws are made on the host, then moved.
    backend : str or None
        Backend name (see :mod:`dlnref.backend`).

    Returns
    -------
    list of array
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(d_l, d_{l-1})``, float64.
    """
    dims = [check_int(f"dims[{i}]", d, 1) for i, d in enumerate(dims)]
    if len(dims) < 2:
        raise InputError(f"dims must list at least 2 widths (d_0, d_1), got {dims}")
    scale = check_positive("scale", scale)
    if kind not in INIT_KINDS:
        raise InputError(f"kind must be one of {INIT_KINDS}, got {kind!r}")
    rng = as_generator(seed)
    draw = {"orthogonal": haar_orthonormal, "gaussian": _gaussian, "uniform": _uniform}[kind]
    host = [scale * draw(rng, d_out, d_in) for d_in, d_out in zip(dims[:-1], dims[1:])]
    return [to_backend(w, backend) for w in host]


def _gaussian(rng, m, n):
    """``(m, n)`` matrix of N(0, min(m, n) / (m n)) entries: E||W||_F^2 = min(m, n)."""
    return rng.standard_normal((m, n)) * np.sqrt(min(m, n) / (m * n))


def _uniform(rng, m, n):
    """``(m, n)`` matrix of uniform entries with the variance of :func:`_gaussian`."""
    half_width = np.sqrt(3 * min(m, n) / (m * n))
    return rng.uniform(-half_width, half_width, size=(m, n))


def layer_dims(weights):
    """Check that consecutive layers chain, and return ``(d_0, ..., d_L)``.

    Parameters
    ----------
    weights : list of array, W_l of shape (d_l, d_{l-1})

    Raises
    ------
    InputTypeError
        For weights that are not a list (or tuple) of real floating arrays.
    InputError
        For an empty list, a non-2-D layer, or ``W_{l+1}.shape[1] != W_l.shape[0]``.
    """
    if not isinstance(weights, (list, tuple)):
        raise InputTypeError(f"weights must be a list of layers [W_1, ..., W_L], got {type(weights).__name__}")
    if len(weights) == 0:
        raise InputError("weights must hold at least one layer, got an empty list")
    for l, W in enumerate(weights, start=1):
        check_array(f"weights[{l - 1}] (W_{l})", W)
        if getattr(W, "ndim", None) != 2:
            raise InputError(f"weights[{l - 1}] (W_{l}) must be 2-D, got shape {getattr(W, 'shape', None)}")
        if not array_namespace(W).isdtype(W.dtype, "real floating"):
            raise InputTypeError(f"weights[{l - 1}] (W_{l}) must have a real floating dtype, got {W.dtype}")
    dims = [weights[0].shape[1]]
    for l, W in enumerate(weights, start=1):
        if W.shape[1] != dims[-1]:
            raise InputError(
                f"layer shapes do not chain: W_{l} has shape {tuple(W.shape)}, so it needs "
                f"{W.shape[1]} inputs, but W_{l - 1} gives {dims[-1]} outputs "
                "(layers go first to last: weights = [W_1, ..., W_L], W_l of shape (d_l, d_{l-1}))"
            )
        dims.append(W.shape[0])
    return tuple(dims)


def prefix_products(weights):
    """Products of the first layers: ``P_l = W_l @ ... @ W_1`` for l = 1..L.

    Parameters
    ----------
    weights : list of array, W_l of shape (d_l, d_{l-1})

    Returns
    -------
    list of array
        ``[P_1, ..., P_L]``, ``P_l`` of shape ``(d_l, d_0)``; ``P_L`` is the
        end-to-end matrix. Costs L - 1 matmuls.
    """
    layer_dims(weights)
    return forward_products(weights)


def forward_products(weights):
    """:func:`prefix_products` without the checks, for the training step: ``P_1 = W_1``, ``P_l = W_l P_{l-1}``."""
    products = [weights[0]]
    for W in weights[1:]:
        products.append(W @ products[-1])
    return products


def end_to_end(weights):
    """End-to-end matrix ``X = W_L @ ... @ W_1``.

    Parameters
    ----------
    weights : list of array, W_l of shape (d_l, d_{l-1})

    Returns
    -------
    array, shape (d_L, d_0)
    """
    return prefix_products(weights)[-1]


def backward(weights, G, prefixes=None):
    r"""Gradient of ``<G, W_L ... W_1>`` with respect to every layer.

    Parameters
    ----------
    weights : list of array, W_l of shape (d_l, d_{l-1})
    G : array, shape (d_L, d_0)
        ``dLoss/dX`` at the current end-to-end matrix.
    prefixes : list of array, optional
        ``prefix_products(weights)`` when the caller already has them (a
        training step computes them for the forward pass).

    Returns
    -------
    list of array
        ``[dW_1, ..., dW_L]``, ``dW_l`` of the shape of ``W_l``.

    Notes
    -----
    By the chain rule,

    .. math::

        \frac{\partial \mathcal{L}}{\partial W_l} = (W_L \cdots W_{l+1})^T\, G\, (W_{l-1} \cdots W_1)^T.

    Back-propagation evaluates all L of them with ``2 (L - 1)`` matmuls,
    reusing the prefix products ``P_{l-1} = W_{l-1} ... W_1`` of the forward
    pass and carrying ``D_l = (W_L ... W_{l+1})^T G`` down from the top
    (``D_L = G``):

    .. math:: dW_l = D_l P_{l-1}^T, \qquad D_{l-1} = W_l^T D_l,

    for l = L, ..., 2, and ``dW_1 = D_1``, since ``P_0 = I`` (the empty product).
    """
    dims = layer_dims(weights)
    check_shape("G", G, (dims[-1], dims[0]))
    array_namespace(G, *weights)
    if prefixes is None:
        prefixes = forward_products(weights)
    return backprop(weights, G, prefixes)


def step_flops(dims):
    """Floating-point operations of the matmuls in one forward + backward pass.

    With ``dims = (d_0, ..., d_L)``, the forward pass forms ``P_l = W_l P_{l-1}``
    (``2 d_l d_{l-1} d_0`` flops each) and back-propagation forms ``dW_l`` and
    ``D_{l-1}`` for l = L..2 (the same count each), so the total is
    ``3 * sum_{l=2..L} 2 d_l d_{l-1} d_0``. Element-wise work is not counted.

    Parameters
    ----------
    dims : sequence of int, length L + 1

    Returns
    -------
    int
    """
    return 3 * sum(2 * dims[l] * dims[l - 1] * dims[0] for l in range(2, len(dims)))


def backprop(weights, G, prefixes):
    r""":func:`backward` without the checks, for the training step: the four-line loop.

    .. math:: D_L = G, \quad dW_l = D_l P_{l-1}^T, \quad D_{l-1} = W_l^T D_l, \quad P_0 = I

    Python lists are 0-based: layer ``l`` is ``weights[l - 1]`` and ``P_l`` is
    ``prefixes[l - 1]``, so the loop index ``i = l - 1``. ``prefixes`` holds at
    least ``[P_1, ..., P_{L-1}]`` (``P_L`` is not used).
    """
    grads = [None] * len(weights)
    D = G                                    # D_L = dLoss/dX
    for i in reversed(range(1, len(weights))):  # i = l - 1, layers l = L .. 2
        grads[i] = D @ prefixes[i - 1].T     # dW_l = D_l P_{l-1}^T, P_{l-1} = W_{l-1} ... W_1
        D = weights[i].T @ D                 # D_{l-1} = W_l^T D_l
    grads[0] = D                             # dW_1 = D_1 P_0^T = D_1, since P_0 = I
    return grads
