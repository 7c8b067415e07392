import math

import numpy as np
import pytest
from conftest import host
from hypothesis import given
from hypothesis import strategies as st

import dlnref
from dlnref import dynamics


def _rotation_pair(n, angles, seed=0):
    """Orthonormal bases A, B of two subspaces whose principal angles are ``angles`` (known answer)."""
    Q = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))[0]
    k = len(angles)
    A = Q[:, :k]
    B = Q[:, :k] * np.cos(angles) + Q[:, k:2 * k] * np.sin(angles)
    return A, B


@given(angles=st.lists(st.floats(0.0, math.pi / 2), min_size=1, max_size=3), seed=st.integers(0, 100))
def test_principal_angles_of_a_known_rotation(angles, seed):
    A, B = _rotation_pair(8, np.array(angles), seed)
    got = host(dynamics.principal_angles(A, B))
    np.testing.assert_allclose(got, np.sort(angles), atol=1e-12)


def test_principal_angles_are_accurate_when_tiny(backend):
    # Computing small angles from cosines alone loses them below ~1e-8; the sines keep them.
    A, B = _rotation_pair(6, np.array([1e-11, 3e-9]))
    got = host(dynamics.principal_angles(dlnref.to_backend(A, backend), dlnref.to_backend(B @ np.diag([2.0, 5.0]), backend)))
    np.testing.assert_allclose(got, [1e-11, 3e-9], rtol=1e-4)


def test_principal_angles_of_different_dimensions():
    I = np.eye(4)
    assert dynamics.largest_principal_angle(I[:, :1], I[:, :3]) == pytest.approx(0.0, abs=1e-15)
    assert dynamics.largest_principal_angle(I[:, :3], I[:, 3:]) == pytest.approx(math.pi / 2)


def test_equal_cluster_finds_the_equal_run():
    s = np.array([5.0, 3.0, 0.7, 0.7, 0.7, 0.2])
    assert dynamics.equal_cluster(s, 3) == (2, 0.0)
    start, spread = dynamics.equal_cluster(np.array([4.0, 2.0, 1.5]), 2)
    assert start == 1 and spread == pytest.approx(1 / 3)
    # A run of one value is always equal: the one nearest the init scale is the complement.
    assert dynamics.equal_cluster(np.array([2.0, 1.0, 0.093, 0.02]), 1, near=0.1) == (2, 0.0)


def test_invariant_residuals_vanish_on_the_theorems_form(backend):
    # W = U diag(B, rho I) V^T with a 2r-block B: the exact form of the theorem (known answer 0).
    rng = np.random.default_rng(1)
    d, r, rho = 9, 2, 0.01
    U, V = (np.linalg.qr(rng.standard_normal((d, d)))[0] for _ in range(2))
    def layer(block):
        core = np.zeros((d, d))
        core[:2 * r, :2 * r] = block
        core[2 * r:, 2 * r:] = rho * np.eye(d - 2 * r)
        return U @ core @ V.T
    w0 = layer(rho * np.eye(2 * r))
    wt = layer(rng.standard_normal((2 * r, 2 * r)))
    on = lambda x: dlnref.to_backend(x, backend)  # noqa: E731
    res = dynamics.invariant_subspace_residuals(on(w0), on(wt), on(wt), r)
    assert res["equal_spread"] < 1e-12 and res["left_angle"] < 1e-12 and res["right_angle"] < 1e-12
    assert res["update_rank"] < 1e-14
    # Tilt the complement: the angles see it.
    tilt = np.eye(d)
    tilt[[0, d - 1], [d - 1, 0]] = 0.1
    bad = dynamics.invariant_subspace_residuals(on(w0), on(wt @ tilt), on(wt), r)
    assert bad["right_angle"] > 1e-3 or bad["left_angle"] > 1e-3


def test_first_reach_times():
    steps = [0, 10, 20, 30]
    trajectory = [[0.1, 0.0], [0.95, 0.1], [1.0, 0.5], [1.0, 0.89]]
    assert dynamics.first_reach_times(steps, trajectory, [1.0, 1.0], 0.9) == [10, None]


@given(s=st.floats(0.1, 10), u0=st.floats(1e-8, 1e-1), tau=st.floats(0, 5))
def test_saxe_mode_solves_its_ode(s, u0, tau):
    # The closed form solves du/dtau = 2 u (s - u) with u(0) = u0: check by central differences.
    assert float(dynamics.saxe_mode(0.0, s, u0)) == pytest.approx(u0, rel=1e-12)
    h = 1e-6
    derivative = (dynamics.saxe_mode(tau + h, s, u0) - dynamics.saxe_mode(tau - h, s, u0)) / (2 * h)
    u = dynamics.saxe_mode(tau, s, u0)
    assert float(derivative) == pytest.approx(float(2 * u * (s - u)), rel=1e-5, abs=1e-9 * s * s)


def test_singular_values_and_top_subspaces():
    M = dlnref.low_rank_matrix(6, 5, 2, seed=0, spectrum=[3.0, 1.0])
    np.testing.assert_allclose(dynamics.singular_values(M)[:3], [3.0, 1.0, 0.0], atol=1e-14)
    U, V = dynamics.top_singular_subspaces(M, 2)
    np.testing.assert_allclose(U @ np.diag([3.0, 1.0]) @ V.T, M, atol=1e-14)
