"""Seeded synthetic data: low-rank targets, observation masks, sensing operators.

Every generator draws on the host with a ``numpy.random.Generator`` and then
moves the result to the requested backend, so one seed gives the same problem
on every backend.
"""

import math

import numpy as np

from ._checks import as_generator, check_fraction, check_int
from .backend import to_backend
from .network import _orthonormal


def low_rank_matrix(m, n, rank, seed=0, spectrum="spread", backend=None):
    """Draw an ``(m, n)`` matrix of rank ``rank``.

    Parameters
    ----------
    m, n : int
        Shape of the matrix.
    rank : int
        Its rank r, with ``1 <= r <= min(m, n)``.
    seed : int or numpy.random.Generator
    spectrum : "spread" or sequence of float
        ``"spread"`` (the official code's choice): draw a Gaussian matrix
        ``Z`` with i.i.d. N(0, 1) entries, ``Z = U diag(s) V^T``, and keep the
        singular triplets at indices ``i_k = floor(k * min(m, n) / (2 r))``
        for k = 0..r-1, so the kept singular values are spread over the top
        half of the spectrum and are well separated (this needs
        ``2 r <= min(m, n)``). A sequence of r positive
        values gives ``U diag(values) V^T`` with Haar-random orthonormal
        ``U`` (m, r) and ``V`` (n, r).
    backend : str or None

    Returns
    -------
    array, shape (m, n)
    """
    m, n = check_int("m", m, 1), check_int("n", n, 1)
    rank = check_int("rank", rank, 1)
    if rank > min(m, n):
        raise ValueError(f"rank must be <= min(m, n) = {min(m, n)} for a ({m}, {n}) matrix, got {rank}")
    rng = as_generator(seed)
    if isinstance(spectrum, str):
        if spectrum != "spread":
            raise ValueError(f"spectrum must be 'spread' or a sequence of {rank} singular values, got {spectrum!r}")
        if 2 * rank > min(m, n):
            raise ValueError(
                f"the spread spectrum needs 2 * rank <= min(m, n) = {min(m, n)}, got rank {rank}; "
                "pass explicit singular values as spectrum=[...] for a higher rank"
            )
        U, s, Vh = np.linalg.svd(rng.standard_normal((m, n)), full_matrices=False)
        keep = spread_indices(min(m, n), rank)
        U, s, Vh = U[:, keep], s[keep], Vh[keep, :]
    else:
        s = np.asarray(spectrum, dtype=np.float64)
        if s.shape != (rank,) or not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError(f"spectrum must hold {rank} finite positive singular values, got {spectrum!r}")
        U, Vh = _orthonormal(rng, m, rank), _orthonormal(rng, n, rank).T
    return to_backend((U * s) @ Vh, backend)


def spread_indices(k, rank):
    """Indices ``floor(i * k / (2 rank))`` for i = 0..rank-1 (the official code's spread)."""
    return [math.floor(i * k / (2 * rank)) for i in range(rank)]


def random_mask(shape, fraction, seed=0, backend=None):
    """Observation mask with exactly ``floor(fraction * m * n)`` True entries.

    Parameters
    ----------
    shape : tuple of int
        ``(m, n)``.
    fraction : float in (0, 1]
        The observed fraction p.
    seed : int or numpy.random.Generator
    backend : str or None

    Returns
    -------
    array of bool, shape (m, n)
        The observed entries, drawn uniformly without replacement.
    """
    m, n = (check_int(f"shape[{i}]", s, 1) for i, s in enumerate(shape))
    fraction = check_fraction("fraction", fraction)
    count = math.floor(fraction * m * n)
    if count == 0:
        raise ValueError(f"fraction={fraction} of a ({m}, {n}) matrix observes no entry; raise fraction")
    rng = as_generator(seed)
    mask = np.zeros(m * n, dtype=bool)
    mask[rng.choice(m * n, size=count, replace=False)] = True
    return to_backend(mask.reshape(m, n), backend)


def gaussian_operators(count, shape, seed=0, backend=None):
    """Sensing operators ``A_1, ..., A_count`` with i.i.d. N(0, 1/count) entries.

    Parameters
    ----------
    count : int
        Number of measurements m.
    shape : tuple of int
        ``(d1, d2)``, the shape of each ``A_i`` and of the target.
    seed : int or numpy.random.Generator
    backend : str or None

    Returns
    -------
    array, shape (count, d1, d2)

    Notes
    -----
    The entry standard deviation is ``1/sqrt(m)``, the standard choice for
    which ``E sum_i <A_i, X>^2 = ||X||_F^2``. The official code used ``1/m``;
    with it, the step sizes of the paper's sensing runs differ by a factor m.
    """
    count = check_int("count", count, 1)
    d1, d2 = (check_int(f"shape[{i}]", s, 1) for i, s in enumerate(shape))
    rng = as_generator(seed)
    return to_backend(rng.standard_normal((count, d1, d2)) / np.sqrt(count), backend)
