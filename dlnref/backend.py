"""Array backends: namespace lookup, host <-> device moves, and linear algebra.

Numerical functions never hold a global backend. They ask their inputs for the
array namespace (``xp = array_namespace(x, y)``), as SciPy does, following the
Python array API standard. A backend *name* is only needed where there is no
input to infer it from: the constructors (``init_weights``, the data
generators, the problem classes) and the command line.

Backend names
-------------
``"numpy"``
    The default. SciPy's LAPACK wrappers are used for the SVD.
``"cupy"``
    Imported only when asked for; install with ``pip install "dlnref[gpu]"``.
``"array_api_strict"``
    The standard's strict reference namespace. The test suite runs on it to
    prove that the numerical code calls nothing outside the standard.

The environment variable ``DLNREF_BACKEND`` sets the default name.
"""

import importlib
import os

import array_api_compat
import numpy as np

from ._checks import check_matrix
from .errors import InputError, InputTypeError

BACKENDS = ("numpy", "cupy", "array_api_strict")
_MODULES = {"numpy": "array_api_compat.numpy", "cupy": "cupy", "array_api_strict": "array_api_strict"}
_INSTALL_HINTS = {
    "cupy": 'CuPy is not installed. Install the GPU extra with: pip install "dlnref[gpu]"',
    "array_api_strict": "array-api-strict is not installed. Install it with: pip install array-api-strict",
}


class BackendUnavailableError(ImportError):
    """The requested backend's package cannot be imported (or has no device)."""


def default_backend():
    """Return the backend name from ``DLNREF_BACKEND``, or ``"numpy"`` when unset."""
    return os.environ.get("DLNREF_BACKEND", "numpy") or "numpy"


def namespace(backend=None):
    """Return the array namespace of a backend, importing it on first use.

    Parameters
    ----------
    backend : {"numpy", "cupy", "array_api_strict"} or None
        None means :func:`default_backend`.

    Returns
    -------
    module
        An array-API-compatible namespace.

    Raises
    ------
    ValueError
        For an unknown name.
    BackendUnavailableError
        When the package is missing; the message says what to install.
    """
    backend = default_backend() if backend is None else backend
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    try:
        module = importlib.import_module(_MODULES[backend])
    except ImportError as error:
        raise BackendUnavailableError(_INSTALL_HINTS[backend]) from error
    if backend == "cupy":
        return _cupy_namespace(module)
    return module


def _cupy_namespace(cupy):
    """Return array-api-compat's CuPy namespace, after checking that a GPU is there."""
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CUDA raises its own error types when no driver or device exists
        raise BackendUnavailableError(f"CuPy is installed but no CUDA device is usable: {error}") from error
    return importlib.import_module("array_api_compat.cupy")


def array_namespace(*arrays):
    """Return the one namespace shared by ``arrays``.

    Raises
    ------
    TypeError
        When an input is not an array (say a list), or the arrays come from
        different backends (say numpy and cupy).
    """
    for a in arrays:
        if not (a is None or isinstance(a, bool | int | float | complex) or array_api_compat.is_array_api_obj(a)):
            raise InputTypeError(
                f"expected an array (numpy.ndarray or another backend's), got {type(a).__module__}."
                f"{type(a).__qualname__}; convert it first, say with numpy.asarray"
            )
    try:
        return array_api_compat.array_namespace(*arrays)
    except TypeError as error:
        kinds = sorted({type(a).__module__.split(".")[0] + "." + type(a).__name__ for a in arrays})
        raise InputTypeError(
            f"arrays from different backends cannot be mixed ({', '.join(kinds)}); "
            "move them to one backend first with dlnref.to_backend or dlnref.to_numpy"
        ) from error


def is_numpy(xp):
    """True when ``xp`` is NumPy or array-api-compat's NumPy wrapper."""
    return array_api_compat.is_numpy_namespace(xp)


def to_backend(x, backend=None):
    """Move a host array onto a backend.

    Parameters
    ----------
    x : array_like
        Host data (NumPy array or nested sequence), or an array already on
        ``backend`` (returned as it is).
    backend : str or None
        Target backend name; None means :func:`default_backend`.

    Returns
    -------
    array
        An array of the backend (no copy for NumPy input on NumPy).

    Raises
    ------
    TypeError
        When ``x`` lives on another non-host backend: move it with
        :func:`to_numpy` first, so that every device -> host copy is explicit.
    """
    xp = namespace(backend)
    if array_api_compat.is_array_api_obj(x) and not isinstance(x, np.ndarray):
        if array_api_compat.array_namespace(x) is xp:
            return x
        raise InputTypeError(
            f"to_backend moves host data, but got a {type(x).__module__}.{type(x).__name__}; "
            "call dlnref.to_numpy on it first"
        )
    return xp.asarray(np.asarray(x))


def to_numpy(x):
    """Copy an array of any backend to a NumPy array on the host.

    This is the one explicit device -> host transfer of dlnref.
    """
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_cupy_array(x):
        return x.get()
    return np.from_dlpack(x)


def inner(a, b, xp=None):
    """Frobenius inner product ``<a, b> = sum_ij a_ij b_ij`` as a 0-d array, in one fused pass.

    ``xp`` is the arrays' namespace where the caller has it (a training step
    spares the lookup); None finds it from ``a`` and ``b``.
    """
    xp = array_namespace(a, b) if xp is None else xp
    return xp.vecdot(xp.reshape(a, (-1,)), xp.reshape(b, (-1,)))


def svd(x):
    """Thin SVD with a fixed sign convention, on any backend.

    Computes ``x = U @ diag(s) @ Vh`` with ``s`` in decreasing order. Each
    singular pair's sign is fixed so that the entry of largest magnitude in
    each column of ``U`` is positive; so two backends (or two LAPACK drivers)
    return the same factors, not the same up to signs.

    Parameters
    ----------
    x : array, shape (m, n)

    Returns
    -------
    U : array, shape (m, k)
    s : array, shape (k,)
    Vh : array, shape (k, n)
        With ``k = min(m, n)``.

    Notes
    -----
    On NumPy this calls SciPy's LAPACK ``gesdd`` (falling back to ``gesvd`` if
    it does not converge); elsewhere the namespace's own ``linalg.svd``.
    """
    xp = array_namespace(x)
    check_matrix("x", x, xp)
    if is_numpy(xp):
        import scipy.linalg

        try:
            U, s, Vh = scipy.linalg.svd(x, full_matrices=False, lapack_driver="gesdd")
        except np.linalg.LinAlgError:
            U, s, Vh = scipy.linalg.svd(x, full_matrices=False, lapack_driver="gesvd")
    else:
        U, s, Vh = xp.linalg.svd(x, full_matrices=False)
    return _fix_signs(xp, U, s, Vh)


def _fix_signs(xp, U, s, Vh):
    """Flip each singular pair so that the largest-magnitude entry of each column of ``U`` is positive."""
    rows = xp.argmax(xp.abs(U), axis=0)
    signs = xp.sign(xp.take_along_axis(U, rows[None, :], axis=0))
    signs = xp.where(signs == 0, xp.ones_like(signs), signs)
    return U * signs, s, Vh * xp.reshape(signs, (-1, 1))


#: Below this ``min(m, n)`` a full SVD is cheap, so :func:`top_svd` takes it (and
#: reproduces :func:`svd` to the bit); above it, a truncated one.
FULL_SVD_MAX = 500


def top_svd(x, k, seed=0):
    """The top ``k`` singular triplets of ``x``, with :func:`svd`'s sign convention.

    Parameters
    ----------
    x : array or scipy.sparse array, shape (m, n)
    k : int
        Number of triplets, ``1 <= k <= min(m, n)``.
    seed : int
        Seeds the start vector of the truncated SVD.

    Returns
    -------
    U : array, shape (m, k)
    s : array, shape (k,)
        Decreasing.
    Vh : array, shape (k, n)

    Notes
    -----
    A dense ``x`` with ``min(m, n) <= FULL_SVD_MAX`` (or ``k = min(m, n)``, or
    a backend other than NumPy) takes the full SVD, ``O(m n min(m, n))``;
    otherwise ARPACK's Lanczos bidiagonalisation
    (``scipy.sparse.linalg.svds``) finds the top ``k`` to machine precision
    with matrix-vector products only, ``O(nnz k)`` per iteration.
    """
    import scipy.sparse

    sparse = scipy.sparse.issparse(x)
    if not sparse and (min(x.shape) <= FULL_SVD_MAX or k >= min(x.shape) or not is_numpy(array_namespace(x))):
        U, s, Vh = svd(x)
        return U[:, :k], s[:k], Vh[:k, :]
    if k >= min(x.shape):
        U, s, Vh = svd(x.toarray())
        return U[:, :k], s[:k], Vh[:k, :]
    from scipy.sparse.linalg import svds

    U, s, Vh = svds(x, k=k, rng=np.random.default_rng(seed))
    order = np.argsort(s)[::-1]
    U, Vh = np.ascontiguousarray(U[:, order]), np.ascontiguousarray(Vh[order, :])  # ARPACK's U is column-major
    return _fix_signs(np, U, s[order], Vh)
