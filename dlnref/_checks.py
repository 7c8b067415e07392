"""Argument checks and seed handling shared by every module.

Each check raises a ``ValueError`` or ``TypeError`` whose message names the
argument, what was expected, and the value received.
"""

import math
import numbers

import numpy as np

from .errors import InputError, InputTypeError


def as_generator(seed):
    """Normalise a seed into a ``numpy.random.Generator``.

    Parameters
    ----------
    seed : int, numpy.random.SeedSequence or numpy.random.Generator
        An int or a ``SeedSequence`` makes a fresh generator; a ``Generator`` is
        returned as it is, so that the caller's stream advances.

    Returns
    -------
    numpy.random.Generator
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0:
        return np.random.default_rng(int(seed))
    raise InputTypeError(
        f"seed must be a non-negative int, a numpy SeedSequence or a numpy Generator, got {seed!r}"
    )


def check_int(name, value, minimum):
    """Return ``value`` as an int, or raise if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive(name, value, *, allow_zero=False):
    """Return ``value`` as a float, or raise if it is not a finite number > 0 (>= 0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    bad = value < 0 if allow_zero else value <= 0
    if bad or not math.isfinite(value):
        bound = ">= 0" if allow_zero else "> 0"
        raise InputError(f"{name} must be a finite number {bound}, got {value}")
    return value


def check_choice(name, value, choices):
    """Return ``value``, or raise unless it is one of ``choices``."""
    if isinstance(value, (list, dict, set)) or value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_fraction(name, value):
    """Return ``value`` as a float, or raise if it is outside (0, 1]."""
    value = check_positive(name, value)
    if value > 1:
        raise InputError(f"{name} must lie in (0, 1], got {value}")
    return value


def check_array(name, x):
    """Raise ``TypeError`` unless ``x`` is an array (NumPy's or another backend's), not a list or a scalar."""
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        raise InputTypeError(f"{name} must be an array (say a numpy.ndarray), got {type(x).__name__}; "
                        "convert it with numpy.asarray first")


def check_matrix(name, x, xp):
    """Raise unless ``x`` is a non-empty 2-D floating array with only finite entries."""
    if getattr(x, "ndim", None) != 2:
        raise InputError(f"{name} must be a 2-D array, got shape {getattr(x, 'shape', None)}")
    if 0 in x.shape:
        raise InputError(f"{name} must have at least one row and one column, got the empty shape {tuple(x.shape)}")
    if not xp.isdtype(x.dtype, "real floating"):
        raise InputTypeError(f"{name} must have a real floating dtype, got {x.dtype}")
    if not bool(xp.all(xp.isfinite(x))):
        raise InputError(f"{name} contains NaN or inf; clean the data before building a problem")


def check_shape(name, x, shape):
    """Raise unless ``x`` is an array with ``x.shape == shape``."""
    check_array(name, x)
    if tuple(x.shape) != tuple(shape):
        raise InputError(f"{name} must have shape {tuple(shape)}, got {tuple(x.shape)}")
