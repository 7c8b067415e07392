import numpy as np
import pytest
from conftest import host
from helpers import central_difference_gradient, explicit_layer_gradient, product, taylor_slope
from hypothesis import given
from hypothesis import strategies as st

import dlnref
from dlnref import testing as dst


def _g_for(weights, seed):
    dims = dlnref.layer_dims(weights)
    return np.random.default_rng(seed).standard_normal((dims[-1], dims[0]))


@given(W=dst.weights(), seed=dst.seeds)
def test_backward_matches_explicit_formula(W, seed):
    G = _g_for(W, seed)
    grads = dlnref.backward(W, G)
    assert len(grads) == len(W)
    for l, grad in enumerate(grads):
        assert grad.shape == W[l].shape
        np.testing.assert_allclose(grad, explicit_layer_gradient(W, G, l), rtol=1e-12, atol=1e-12)


@given(W=dst.weights(), seed=dst.seeds)
def test_backward_matches_central_differences(W, seed):
    # <G, X> is linear in each single layer, so central differences are exact up to rounding.
    G = _g_for(W, seed)
    grads = dlnref.backward(W, G)
    for l in range(len(W)):
        def f(Wl, l=l):
            return float(np.sum(G * dlnref.end_to_end(W[:l] + [Wl] + W[l + 1:])))
        fd = central_difference_gradient(f, W[l], h=1e-3)
        np.testing.assert_allclose(grads[l], fd, rtol=1e-8, atol=1e-10)


def test_backward_on_every_backend(backend):
    rng = np.random.default_rng(3)
    dims = (4, 6, 3, 5)
    W = [rng.standard_normal((o, i)) for i, o in zip(dims[:-1], dims[1:])]
    G = rng.standard_normal((5, 4))
    on = [dlnref.to_backend(w, backend) for w in W]
    grads = host(dlnref.backward(on, dlnref.to_backend(G, backend)))
    for l in range(3):
        np.testing.assert_allclose(grads[l], explicit_layer_gradient(W, G, l), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(host(dlnref.end_to_end(on)), W[2] @ W[1] @ W[0], rtol=1e-13)


def test_backward_taylor_slope_is_two():
    # The loss 0.5 ||X - M||^2 is of degree 2L in the weights: a full, nonlinear derivative check.
    rng = np.random.default_rng(0)
    W = [rng.standard_normal((5, 4)) / 2, rng.standard_normal((3, 5)) / 2, rng.standard_normal((6, 3)) / 2]
    M = rng.standard_normal((6, 4))
    H = [rng.standard_normal(w.shape) for w in W]

    def f(t):
        X = dlnref.end_to_end([w + t * h for w, h in zip(W, H)])
        return 0.5 * np.sum((X - M) ** 2)

    grads = dlnref.backward(W, dlnref.end_to_end(W) - M)
    D = sum(np.sum(g * h) for g, h in zip(grads, H))
    slope = taylor_slope(f, f(0.0), D, np.logspace(-6, -2, 9))
    assert abs(slope - 2) < 0.05
    wrong = taylor_slope(f, f(0.0), 1.1 * D, np.logspace(-6, -2, 9))
    assert abs(wrong - 1) < 0.1


def test_prefix_products_and_layer_order():
    A, B, C = np.diag([2.0, 3.0]), np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[1.0, 1.0]])
    prefixes = dlnref.prefix_products([A, B, C])
    np.testing.assert_array_equal(prefixes[0], A)
    np.testing.assert_array_equal(prefixes[1], [[0.0, 3.0], [2.0, 0.0]])
    np.testing.assert_array_equal(prefixes[2], [[2.0, 3.0]])
    assert dlnref.layer_dims([A, B, C]) == (2, 2, 2, 1)


def test_backward_single_layer_is_G():
    G = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(dlnref.backward([np.ones((2, 3))], G)[0], G)


@pytest.mark.parametrize("dims", [(4, 4, 4, 4), (3, 7, 2), (6, 2, 5, 3), (1, 5)])
def test_orthogonal_init_has_orthonormal_rows_or_columns(dims, backend):
    W = host(dlnref.init_weights(dims, 0.1, kind="orthogonal", seed=1, backend=backend))
    for w in W:
        m, n = w.shape
        gram = w.T @ w if m >= n else w @ w.T
        np.testing.assert_allclose(gram, 0.01 * np.eye(min(m, n)), atol=1e-15)


@pytest.mark.parametrize("kind", ["gaussian", "uniform"])
def test_random_inits_match_orthogonal_frobenius_norm(kind):
    dims = (300, 200, 400)
    W = dlnref.init_weights(dims, 0.5, kind=kind, seed=2)
    for w in W:
        expected = 0.25 * min(w.shape)
        # ||W||_F^2 sums m*n i.i.d. terms, so its relative std is sqrt(2/(mn)) (Gaussian) or less.
        assert abs(np.sum(w**2) / expected - 1) < 5 * np.sqrt(2 / w.size)
    if kind == "uniform":
        assert np.abs(W[0]).max() <= 0.5 * np.sqrt(3 * 200 / (200 * 300))


def test_init_is_seeded_and_backend_independent(backend):
    a = dlnref.init_weights((5, 4, 3), 0.1, seed=7)
    b = host(dlnref.init_weights((5, 4, 3), 0.1, seed=7, backend=backend))
    c = dlnref.init_weights((5, 4, 3), 0.1, seed=8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.allclose(a[0], c[0])
    assert all(w.dtype == np.float64 for w in a)


def test_end_to_end_of_init_matches_direct_product():
    W = dlnref.init_weights((3, 4, 4, 2), 1.0, seed=0)
    np.testing.assert_allclose(dlnref.end_to_end(W), product(W, 3), rtol=1e-14)


def test_mismatched_layers_raise():
    with pytest.raises(ValueError, match=r"W_2 has shape \(3, 5\)"):
        dlnref.end_to_end([np.ones((4, 2)), np.ones((3, 5))])
    with pytest.raises(ValueError, match="empty"):
        dlnref.end_to_end([])
    with pytest.raises(ValueError, match="2-D"):
        dlnref.backward([np.ones(3)], np.ones(3))


def test_wrong_G_shape_raises():
    with pytest.raises(ValueError, match=r"G must have shape \(3, 2\)"):
        dlnref.backward([np.ones((4, 2)), np.ones((3, 4))], np.ones((2, 3)))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"dims": (3,)}, ValueError, "at least 2 widths"),
        ({"dims": (3, 0)}, ValueError, r"dims\[1\] must be >= 1"),
        ({"dims": (3, 2.5)}, TypeError, r"dims\[1\] must be an integer"),
        ({"scale": -1.0}, ValueError, "scale must be a finite number > 0"),
        ({"scale": float("nan")}, ValueError, "scale"),
        ({"kind": "xavier"}, ValueError, "kind must be one of"),
        ({"seed": -1}, TypeError, "seed must be"),
        ({"backend": "torch"}, ValueError, "backend must be one of"),
    ],
)
def test_init_weights_rejects_bad_input(kwargs, error, match):
    args = {"dims": (3, 3), "scale": 0.1, **kwargs}
    with pytest.raises(error, match=match):
        dlnref.init_weights(**args)


def test_mixed_backends_raise_type_error():
    import array_api_strict

    W = [np.ones((2, 2))]
    with pytest.raises(TypeError, match="different backends"):
        dlnref.backward(W, array_api_strict.ones((2, 2)))


@given(dims=dst.layer_dims(), data=st.data())
def test_layer_dims_round_trip(dims, data):
    W = data.draw(dst.weights(st.just(dims)))
    assert dlnref.layer_dims(W) == dims
