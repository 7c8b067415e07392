"""Hypothesis strategies over DLNs and recovery problems.

dlnref's own property tests draw their cases from these strategies, and users
who check their implementation against dlnref can draw the same cases.
Needs ``hypothesis`` (``pip install "dlnref[test]"``).

Every strategy draws small integers and a seed, and builds its arrays from the
seed on the host (then on ``backend``), so a failing case shrinks to a small
shape and a reproducible seed.
"""

import dataclasses
import math

import numpy as np
from hypothesis import strategies as st

from ..backend import to_backend
from ..data import gaussian_operators, low_rank_matrix, random_mask
from ..problems import MatrixCompletion, MatrixFactorization, MatrixSensing

seeds = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def layer_dims(draw, min_depth=1, max_depth=5, min_width=1, max_width=7):
    """Widths ``(d_0, ..., d_L)`` with L in ``[min_depth, max_depth]``; not necessarily square."""
    depth = draw(st.integers(min_depth, max_depth))
    return tuple(draw(st.lists(st.integers(min_width, max_width), min_size=depth + 1, max_size=depth + 1)))


@st.composite
def weights(draw, dims=layer_dims(), backend="numpy"):
    """``[W_1, ..., W_L]`` with i.i.d. N(0, 1/d_{l-1}) entries (a well-scaled product).

    ``dims`` is a strategy of width tuples (``st.just((3, 4, 2))`` fixes them).
    """
    dims = draw(dims)
    rng = np.random.default_rng(draw(seeds))
    return [to_backend(rng.standard_normal((o, i)) / np.sqrt(i), backend) for i, o in zip(dims[:-1], dims[1:])]


@st.composite
def low_rank_targets(draw, min_size=2, max_size=8, max_rank=3, backend="numpy"):
    """A rank-r target ``M`` of shape ``(m, n)`` with separated singular values (spread spectrum)."""
    m, n = draw(st.integers(min_size, max_size)), draw(st.integers(min_size, max_size))
    rank = draw(st.integers(1, min(max_rank, m // 2, n // 2)))
    return low_rank_matrix(m, n, rank, seed=draw(seeds), backend=backend)


@st.composite
def factorization_problems(draw, backend="numpy", **target_kwargs):
    """A :class:`dlnref.MatrixFactorization` on a drawn low-rank target."""
    return MatrixFactorization(draw(low_rank_targets(backend=backend, **target_kwargs)))


@st.composite
def completion_problems(draw, backend="numpy", min_fraction=0.2, max_fraction=1.0, **target_kwargs):
    """A :class:`dlnref.MatrixCompletion`: low-rank target and a uniform random mask."""
    target = draw(low_rank_targets(backend=backend, **target_kwargs))
    fraction = draw(st.floats(min_fraction, max_fraction))
    shape = tuple(target.shape)
    fraction = max(fraction, 1.0 / (shape[0] * shape[1]))
    return MatrixCompletion(target, random_mask(shape, fraction, seed=draw(seeds), backend=backend))


@st.composite
def sensing_problems(draw, backend="numpy", max_measurements=40, **target_kwargs):
    """A :class:`dlnref.MatrixSensing` with i.i.d. N(0, 1/m) operators."""
    target = draw(low_rank_targets(backend=backend, **target_kwargs))
    count = draw(st.integers(1, max_measurements))
    return MatrixSensing(target, gaussian_operators(count, tuple(target.shape), seed=draw(seeds), backend=backend))


def problems(backend="numpy", **target_kwargs):
    """Any of the three problem kinds."""
    return st.one_of(
        factorization_problems(backend=backend, **target_kwargs),
        completion_problems(backend=backend, **target_kwargs),
        sensing_problems(backend=backend, **target_kwargs),
    )


@dataclasses.dataclass(frozen=True)
class DynamicsCase:
    """A small deep-matrix-factorization run: the problem and how to train on it.

    Attributes
    ----------
    problem : MatrixFactorization
        Target of rank ``rank`` with separated singular values ``spectrum``.
    depth : int
    scale : float
        Init scale eps.
    lr : float
        A step safely inside the stable range: ``lr / (m n) = 0.2 / (L s_1^(2 - 2/L))``.
    rank : int
    spectrum : tuple of float
        The target's singular values, decreasing.
    seed : int
        Seed of the wide network's orthogonal init.
    """

    problem: object
    depth: int
    scale: float
    lr: float
    rank: int
    spectrum: tuple
    seed: int


@st.composite
def factorization_cases(draw, min_d=6, max_d=16, max_rank=3, min_depth=2, max_depth=4,
                        min_scale=1e-3, max_scale=1e-1, min_escape=None):
    """Structured factorization instances for the theory's claims.

    d in [min_d, max_d], r in [1, max_rank] with 2r < d, L in [min_depth,
    max_depth], eps log-uniform in [min_scale, max_scale], and target singular
    values with consecutive ratios in [1.5, 2.5] (smallest in [0.5, 1]).
    ``min_escape`` bounds ``eps^(L-2)`` from below: a deep network leaves a
    small init only after about ``1 / (lr eps^(L-2))`` steps, so cases that
    must learn every mode within a test's step budget set it.
    """
    d = draw(st.integers(min_d, max_d))
    rank = draw(st.integers(1, min(max_rank, (d - 1) // 2)))
    depth = draw(st.integers(min_depth, max_depth))
    low = math.log10(min_scale)
    if min_escape is not None and depth > 2:
        low = max(low, math.log10(min_escape) / (depth - 2))
    scale = 10 ** draw(st.floats(min(low, math.log10(max_scale)), math.log10(max_scale)))
    values = [draw(st.floats(0.5, 1.0))]
    for _ in range(rank - 1):
        values.append(values[-1] * draw(st.floats(1.5, 2.5)))
    spectrum = tuple(sorted(values, reverse=True))
    target = low_rank_matrix(d, d, rank, seed=draw(seeds), spectrum=list(spectrum))
    lr = d * d * 0.2 / (depth * spectrum[0] ** (2 - 2 / depth))
    return DynamicsCase(MatrixFactorization(target), depth, scale, lr, rank, spectrum, draw(seeds))
