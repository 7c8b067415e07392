"""Numba kernel of :mod:`dlnref.compiled`: whole runs of the paper's gradient-descent step on a small dense problem.

Only :mod:`dlnref.compiled` imports this module, and only once it has found
numba, so ``import dlnref`` never imports numba. The kernel is compiled on its
first call for each depth and dtype and cached on disk (``cache=True``); the
BLAS ``gemm`` it calls (SciPy's, the one numba's own ``np.dot`` calls) comes in
as an argument, a ctypes function, so that the cache holds no address.

It keeps IEEE arithmetic (no ``fastmath``) and makes the matmuls of
:func:`dlnref.train.gradient_step` in the same order, but each layer's update
``W_l - lr s_l dW_l`` (l >= 2) is the GEMM that makes ``dW_l``, accumulating
into ``W_l`` (no ``dW_l`` is formed). For a thin top layer (``d_{L-1}`` at
most :data:`dlnref.compiled.THIN_MAX_WIDTH`) the product ``X = W_L P_{L-1}``,
the residual, ``G = dLoss/dX``, ``D_{L-1} = W_L^T G`` and ``W_L``'s update are
made one block of rows at a time, so that a block stays in cache from the
GEMM that makes it to the two that read it, and ``X`` and ``G`` are never
formed whole (as in the fused completion step of
:mod:`dlnref.problems.completion`). Its sums therefore round in another order
than the NumPy step's: the two agree to rounding, not bit for bit
(``tests/test_compiled.py`` derives the bound).
"""

import ctypes
import functools

import numba
import numpy as np
from numba.extending import get_cython_function_address

#: Problem kinds the kernel knows: its residual and ``dLoss/dX``.
FACTORIZATION, COMPLETION, SENSING = 0, 1, 2

_POINTER = ctypes.c_void_p
_GEMM = ctypes.CFUNCTYPE(None, *[_POINTER] * 13)   # Fortran ?gemm: every argument by reference


@functools.cache
def blas_gemm(dtype):
    """SciPy's BLAS ``dgemm`` (float64) or ``sgemm`` (float32), as a ctypes function the kernel takes (made once)."""
    name = {np.dtype(np.float64): "dgemm", np.dtype(np.float32): "sgemm"}[np.dtype(dtype)]
    return _GEMM(get_cython_function_address("scipy.linalg.cython_blas", name))


@numba.njit(cache=True, nogil=True, fastmath=False)
def run_steps(gemm, weights, sizes, count, kind, target, weight, operators, measured, divisor, prefixes, downs, X,
              block_X, block_G, scratch, measures, unobserved_weight, test_weight, record, losses):
    """``count`` gradient-descent steps in place on ``weights``; the loss at each state before its update.

    Parameters
    ----------
    gemm : ctypes function
        :func:`blas_gemm` of the weights' dtype.
    weights : tuple of array
        ``(W_1, ..., W_L)``, C-contiguous, updated in place.
    sizes : array, shape (L,)
        The per-layer step sizes ``lr s_l``, of the weights' dtype.
    count : int
        Updates to make; 0 evaluates the state only (loss, and with ``record`` the measures).
    kind : int
        :data:`FACTORIZATION`, :data:`COMPLETION` or :data:`SENSING`.
    target : array, shape (m, n)
        ``M``.
    weight : array, shape (m, n)
        Completion: ``mask / |Omega|`` (unused otherwise).
    operators, measured : arrays, shapes (k, m n) and (k,)
        Sensing: the flattened operators and ``y`` (unused otherwise).
    divisor : scalar of the weights' dtype
        Factorization: ``m n`` (``dLoss/dX = R / (m n)``).
    prefixes, downs : tuples of array
        Buffers for ``P_l = W_l ... W_1`` and ``D_l = (W_L ... W_{l+1})^T G``, shapes ``(d_l, d_0)``:
        ``prefixes[l - 1]`` for l = 2..L-1 (``prefixes[0]`` is unused: ``P_1 = W_1``), ``downs[l - 1]`` for l = 1..L-1.
    X : array, shape (m, n)
        The residual ``R = X - M`` of the first state, with ``record`` (or where one block holds every row).
    block_X, block_G, scratch : arrays, shape (b, n)
        A block of rows of ``X`` (then ``R``), of ``G``, and room for the measures; ``b = m`` where a block
        holds every row (a wide top layer, or sensing, whose ``G`` needs all of ``X``).
    measures : array, shape (3,)
        With ``record``: ``||R||_F^2``, ``||P_Omega^c(R)||_F^2`` and ``||P_T(R)||_F^2`` at the first state.
    unobserved_weight, test_weight : arrays, shape (m, n)
        ``1 - mask`` and the test mask (completion with ``record``; unused otherwise).
    record : bool
        Whether to leave the first state's residual in ``X`` and its squared norms in ``measures``.
    losses : array, shape (max(count, 1),)
        Filled with the loss at each state before its update.

    Returns
    -------
    int
        The states evaluated: ``max(count, 1)``, or fewer where a loss was not finite (the run stops there).
    """
    for s in range(max(count, 1)):
        recording = record and s == 0
        if recording:
            measures[:] = 0.0
        top = _forward(gemm, weights, prefixes)
        loss = _top_layer(gemm, weights, sizes, top, kind, target, weight, operators, measured, divisor, downs, X,
                          block_X, block_G, scratch, measures, unobserved_weight, test_weight, recording, count > 0)
        losses[s] = loss
        if not np.isfinite(loss):
            return s + 1
        if count == 0:
            return 1
        _backward_and_update(gemm, weights, sizes, prefixes, downs, block_G)
    return max(count, 1)


@numba.njit(cache=True, nogil=True, fastmath=False)
def _forward(gemm, weights, prefixes):
    """``P_l = W_l P_{l-1}`` into ``prefixes[l - 1]`` for l = 2..L-1; returns ``P_{L-1}`` (None-free: ``W_1`` if L <= 2)."""
    P = weights[0]
    for i in range(1, len(weights) - 1):
        _gemm(gemm, 1.0, weights[i], False, P, False, 0.0, prefixes[i])
        P = prefixes[i]
    return P


@numba.njit(cache=True, nogil=True, fastmath=False)
def _top_layer(gemm, weights, sizes, P, kind, target, weight, operators, measured, divisor, downs, X, block_X,
               block_G, scratch, measures, unobserved_weight, test_weight, record, update):
    """Loss at ``X = W_L P_{L-1}``; ``D_{L-1} = W_L^T G`` into ``downs[-1]``, then (``update``) ``W_L -= lr s_L G P_{L-1}^T``.

    By blocks of ``block_X.shape[0]`` rows (a block's rows of ``W_L`` are
    updated once the block has read them); for L = 1, ``X = W_1`` and ``G``
    (``dW_1``) is left in ``block_G``, which then holds every row.
    """
    depth = len(weights)
    m = target.shape[0]
    rows = block_X.shape[0]
    loss = 0.0
    for start in range(0, m, rows):
        stop = min(start + rows, m)
        whole = rows == m
        Xb = X[start:stop] if record or whole else block_X[:stop - start]
        Gb = block_G[:stop - start]
        if depth == 1:
            Xb[:] = weights[0]
        else:
            _gemm(gemm, 1.0, weights[depth - 1][start:stop], False, P, False, 0.0, Xb)            # X_B = W_L[B] P
        loss += _residual_and_gradient(kind, Xb, Gb, target[start:stop], weight, start, operators, measured,
                                       divisor, record)
        if record:
            _measure_block(kind, Xb, unobserved_weight[start:stop] if kind == COMPLETION else Xb,
                           test_weight[start:stop] if kind == COMPLETION else Xb, scratch[:stop - start], measures)
        if depth > 1:
            top = weights[depth - 1][start:stop]
            _gemm(gemm, 1.0, top, True, Gb, False, 0.0 if start == 0 else 1.0, downs[depth - 2])  # D += W_L[B]^T G_B
            if update:
                _gemm(gemm, -sizes[depth - 1], Gb, False, P, True, 1.0, top)                     # W_L[B] -= lr s_L G_B P^T
    return loss


@numba.njit(cache=True, nogil=True, fastmath=False)
def _residual_and_gradient(kind, Xb, Gb, Mb, weight, start, operators, measured, divisor, record):
    """A block's part of the loss; its ``G`` into ``Gb`` and its residual into ``Xb`` (sensing: only with ``record``)."""
    x, g, m = Xb.reshape(-1), Gb.reshape(-1), Mb.reshape(-1)
    if kind == SENSING:                                   # one block: all of X
        misfit = np.dot(operators, x) - measured          # A(X) - y
        np.dot(misfit, operators, g)                      # A^*(A(X) - y)
        if record:
            for k in range(x.size):
                x[k] = x[k] - m[k]
        return np.dot(misfit, misfit) / 2
    if kind == FACTORIZATION:
        for k in range(x.size):
            r = x[k] - m[k]
            x[k] = r
            g[k] = r / divisor
        return np.dot(x, x) / (2 * divisor)
    w = weight[start:start + Xb.shape[0]].reshape(-1)
    for k in range(x.size):
        r = x[k] - m[k]
        x[k] = r
        g[k] = w[k] * r
    return np.dot(g, x) / 2


@numba.njit(cache=True, nogil=True, fastmath=False)
def _measure_block(kind, Rb, unobserved_weight, test_weight, scratch, measures):
    """Add a block's ``||R||^2``, and for completion ``||(1 - mask) R||^2`` and ``||P_T(R)||^2``, to ``measures``."""
    r = Rb.reshape(-1)
    measures[0] += np.dot(r, r)
    if kind == COMPLETION:
        u, t, a = unobserved_weight.reshape(-1), test_weight.reshape(-1), scratch.reshape(-1)
        for k in range(r.size):
            a[k] = u[k] * r[k]
        measures[1] += np.dot(a, a)
        for k in range(r.size):
            a[k] = t[k] * a[k]
        measures[2] += np.dot(a, a)


@numba.njit(cache=True, nogil=True, fastmath=False)
def _backward_and_update(gemm, weights, sizes, prefixes, downs, G):
    """Back-propagate from ``D_{L-1}`` and update layers L-1 .. 1 (``W_L`` is updated already), each once no longer read.

    ``W_l <- W_l - lr s_l D_l P_{l-1}^T`` is one GEMM into ``W_l`` for l >= 2;
    ``W_1 <- W_1 - lr s_1 D_1`` an element-wise pass (``D_1`` needs the old
    ``W_2``, and ``W_2``'s update the old ``W_1``). For L = 1, ``G`` is ``dW_1``.
    """
    depth = len(weights)
    if depth == 1:
        _update(weights[0], sizes[0], G)
        return
    D = downs[depth - 2]
    for i in range(depth - 2, 0, -1):                     # i = l - 1, layers l = L-1 .. 2
        P = weights[0] if i == 1 else prefixes[i - 1]     # P_{l-1}
        _gemm(gemm, 1.0, weights[i], True, D, False, 0.0, downs[i - 1])   # D_{l-1} = W_l^T D_l
        _gemm(gemm, -sizes[i], D, False, P, True, 1.0, weights[i])        # W_l -= lr s_l D_l P_{l-1}^T
        D = downs[i - 1]
    _update(weights[0], sizes[0], D)                      # dW_1 = D_1


@numba.njit(cache=True, nogil=True, fastmath=False)
def _update(W, size, grad):
    """``W <- W - size * grad`` in place, rounded as NumPy rounds ``W - size * grad``."""
    w, g = W.reshape(-1), grad.reshape(-1)
    for k in range(w.size):
        w[k] = w[k] - size * g[k]


@numba.njit(cache=True, nogil=True, fastmath=False)
def _gemm(gemm, alpha, A, transpose_a, B, transpose_b, beta, C):
    """``C <- alpha op(A) op(B) + beta C`` for row-major ``A``, ``B``, ``C`` (rows of C-contiguous arrays).

    A row-major matrix is its transpose in column-major order, so this is the
    Fortran ``gemm`` of ``C^T = op(B)^T op(A)^T``, with ``A`` and ``B`` swapped.
    """
    m, n = C.shape
    k = A.shape[0] if transpose_a else A.shape[1]
    sizes = np.empty(6, dtype=np.int32)
    sizes[0], sizes[1], sizes[2] = n, m, k
    sizes[3], sizes[4], sizes[5] = B.strides[0] // B.itemsize, A.strides[0] // A.itemsize, C.strides[0] // C.itemsize
    flags = np.empty(2, dtype=np.uint8)
    flags[0] = 84 if transpose_b else 78                  # "T" or "N"
    flags[1] = 84 if transpose_a else 78
    scalars = np.empty(2, dtype=C.dtype)
    scalars[0], scalars[1] = alpha, beta
    gemm(flags[0:1].ctypes, flags[1:2].ctypes, sizes[0:1].ctypes, sizes[1:2].ctypes, sizes[2:3].ctypes,
         scalars[0:1].ctypes, B.ctypes, sizes[3:4].ctypes, A.ctypes, sizes[4:5].ctypes, scalars[1:2].ctypes,
         C.ctypes, sizes[5:6].ctypes)
