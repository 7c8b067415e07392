"""Shared test setup: hypothesis profiles, the backend fixture, tolerances."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import dlnref
from dlnref.backend import BackendUnavailableError, namespace

settings.register_profile(
    "ci", max_examples=25, derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

BACKEND_PARAMS = [
    "numpy",
    "array_api_strict",
    pytest.param("cupy", marks=pytest.mark.gpu),
]


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request):
    """Name of each installed backend; a missing one is skipped."""
    try:
        namespace(request.param)
    except BackendUnavailableError as error:
        pytest.skip(str(error))
    return request.param


def rtol_for(dtype=np.float64, factor=4):
    """SciPy's rule for a tolerance that follows the dtype: ``factor * sqrt(eps)``."""
    return factor * np.sqrt(np.finfo(dtype).eps)


def host(x):
    """NumPy copy of an array of any backend (lists map element-wise)."""
    if isinstance(x, (list, tuple)):
        return [dlnref.to_numpy(v) for v in x]
    return dlnref.to_numpy(x)
