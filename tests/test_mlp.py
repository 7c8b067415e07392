"""The MLP with a deep linear block: gradients against finite differences, layouts, init, training, backends."""

import math

import numpy as np
import pytest
import scipy.special
from conftest import host
from helpers import central_difference_gradient
from hypothesis import assume, given
from hypothesis import strategies as st

import dlnref
from dlnref.nn import mlp

#: Pre-activations closer to 0 than this could let a finite difference step across a ReLU kink.
KINK_MARGIN = 1e-4
FD_STEP = 1e-5


@st.composite
def mlp_cases(draw):
    """A small random MLP, data and labels: (weights, layout, X, Y)."""
    layout = mlp.mlp_layout(
        inputs=draw(st.integers(1, 5)), classes=draw(st.integers(2, 4)), hidden=(h := draw(st.integers(2, 5))),
        relu_layers=draw(st.integers(1, 2)), block_depth=draw(st.sampled_from([0, 2, 3])),   # 0: the MLP alone
        block_width=draw(st.integers(1, h)), block=draw(st.sampled_from(mlp.BLOCKS)),
    )
    n = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    weights = [rng.standard_normal((o, i)) for i, o in zip(layout.dims[:-1], layout.dims[1:])]
    X = rng.standard_normal((layout.dims[0], n))
    Y = np.eye(layout.dims[-1])[rng.integers(0, layout.dims[-1], n)].T
    return weights, layout, X, Y


def _loss(weights, layout, X, Y):
    return float(mlp.cross_entropy(mlp.forward(weights, layout, X)[0], Y)[0])


def _min_abs_preactivation(weights, layout, X):
    _, cache = mlp.forward(weights, layout, X)
    return min(float(np.min(np.abs(prefixes[-1]))) for prefixes in cache[:-1]) if len(cache) > 1 else np.inf


@given(case=mlp_cases())
def test_gradients_match_central_differences(case):
    weights, layout, X, Y = case
    assume(_min_abs_preactivation(weights, layout, X) > KINK_MARGIN)
    _, grads = mlp.loss_and_gradients(weights, layout, X, Y)
    total = np.sqrt(sum(np.sum(g**2) for g in grads))
    for l in range(len(weights)):
        def f(Wl, l=l):
            return _loss(weights[:l] + [Wl] + weights[l + 1:], layout, X, Y)
        fd = central_difference_gradient(f, weights[l], FD_STEP)
        assert grads[l].shape == weights[l].shape
        assert np.linalg.norm(grads[l] - fd) <= 1e-7 * max(total, 1e-3), (l, layout)


def test_cross_entropy_against_scipy():
    rng = np.random.default_rng(0)
    logits, labels = 30 * rng.standard_normal((5, 7)), rng.integers(0, 5, 7)
    Y = np.eye(5)[labels].T
    loss, dZ = mlp.cross_entropy(logits, Y)
    log_p = scipy.special.log_softmax(logits, axis=0)
    assert float(loss) == pytest.approx(-np.mean(log_p[labels, np.arange(7)]), rel=1e-13)
    np.testing.assert_allclose(dZ, (np.exp(log_p) - Y) / 7, rtol=1e-12, atol=1e-15)


def test_layout_activations_and_segments():
    linear = mlp.mlp_layout(64, 10, 32, relu_layers=2, block_depth=3, block_width=6)
    assert linear.dims == (64, 32, 32, 6, 6, 32, 10)
    assert linear.block_layers == (2, 5) and linear.block_width == 6
    # ReLU after every layer but the last, except between the block's layers.
    assert linear.relu_after == (True, True, False, False, True, False)
    assert linear.segments == [(0, 1), (1, 2), (2, 5), (5, 6)]
    official = mlp.mlp_layout(64, 10, 32, relu_layers=2, block_depth=3, block_width=6, block="relu")
    assert official.relu_after == (True,) * 5 + (False,)
    assert official.segments == [(l, l + 1) for l in range(6)]
    assert linear.with_block_width(32) == mlp.mlp_layout(64, 10, 32, relu_layers=2, block_depth=3)


def test_the_mlp_alone_has_no_block_and_shares_the_other_layers():
    alone = mlp.mlp_layout(64, 10, 32, relu_layers=2, block_depth=0)
    assert alone.dims == (64, 32, 32, 10) and alone.block_layers == (2, 2)
    assert alone.relu_after == (True, True, False) and alone.segments == [(0, 1), (1, 2), (2, 3)]
    wide = mlp.mlp_layout(64, 10, 32, relu_layers=2, block_depth=3)
    W_alone, W_wide = mlp.init_mlp(alone, 0.5, seed=3), mlp.init_mlp(wide, 0.5, seed=3)
    assert [W.shape for W in W_alone] == [(32, 64), (32, 32), (10, 32)]
    for a, b in zip(W_alone[:2] + W_alone[-1:], W_wide[:2] + W_wide[-1:]):   # one stream outside the block
        np.testing.assert_array_equal(a, b)


def test_a_step_of_the_mlp_alone_by_hand():
    """The MLP alone, ``Z = W_2 relu(W_1 X)``: the step against the chain rule written out with NumPy."""
    rng = np.random.default_rng(7)
    layout = mlp.mlp_layout(6, 3, 5, block_depth=0)
    W1, W2 = rng.standard_normal((5, 6)), rng.standard_normal((3, 5))
    X, labels = rng.standard_normal((6, 4)), np.array([0, 2, 1, 2])
    Y = np.eye(3)[labels].T
    A = W1 @ X
    H = np.maximum(A, 0)
    P = scipy.special.softmax(W2 @ H, axis=0)
    G = (P - Y) / 4
    dW2, dW1 = G @ H.T, ((W2.T @ G) * (A > 0)) @ X.T
    loss, (new1, new2) = mlp.step([W1, W2], layout, X, Y, [0.3, 0.1])
    assert float(loss) == pytest.approx(-np.mean(np.log(P[labels, np.arange(4)])), rel=1e-13)
    np.testing.assert_allclose(new1, W1 - 0.3 * dW1, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(new2, W2 - 0.1 * dW2, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("bad, message", [
    ({"relu_layers": 0}, "relu_layers must be >= 1"),
    ({"block_depth": 1}, "block_depth must be 0 .no block. or at least 2, got 1"),
    ({"block_depth": -1}, "block_depth must be >= 0"),
    ({"block_width": 40}, "block_width must be <= hidden = 32, got 40"),
    ({"block": "tanh"}, "block must be one of"),
    ({"classes": 1}, "classes must be >= 2"),
])
def test_layout_rejects_bad_arguments(bad, message):
    with pytest.raises(ValueError, match=message):
        mlp.mlp_layout(**{"inputs": 64, "classes": 10, "hidden": 32, **bad})


@given(d0=st.integers(1, 70), h=st.integers(2, 60), k=st.integers(2, 12), relu_layers=st.integers(1, 3),
       block_depth=st.integers(2, 5), data=st.data())
def test_parameter_counts_by_formula(d0, h, k, relu_layers, block_depth, data):
    w = data.draw(st.integers(1, h))
    wide = mlp.mlp_layout(d0, k, h, relu_layers, block_depth)
    outside = d0 * h + (relu_layers - 1) * h * h + h * k
    assert dlnref.parameter_count(mlp.init_mlp(wide)) == outside + block_depth * h * h
    small = mlp.init_mlp(wide.with_block_width(w))
    assert dlnref.parameter_count(small) == outside + 2 * h * w + (block_depth - 2) * w * w


def test_wide_and_compressed_share_the_layers_outside_the_block():
    wide = mlp.mlp_layout(20, 4, 12, relu_layers=2, block_depth=3)
    small = wide.with_block_width(4)
    a, b = mlp.init_mlp(wide, 0.5, seed=3), mlp.init_mlp(small, 0.5, seed=3)
    for l in (0, 1, 5):
        np.testing.assert_array_equal(a[l], b[l])
    for W in a + b:   # orthonormal rows or columns, times the scale
        m, n = W.shape
        gram = W @ W.T if m <= n else W.T @ W
        np.testing.assert_allclose(gram, 0.25 * np.eye(min(m, n)), atol=1e-14)
    assert not np.array_equal(mlp.init_mlp(wide, 0.5, seed=4)[0], a[0])


def test_spectral_block_starts_from_the_top_of_the_gradient():
    rng = np.random.default_rng(1)
    wide = mlp.mlp_layout(6, 3, 8, relu_layers=1, block_depth=3)
    weights = mlp.init_mlp(wide, seed=0)
    X, Y = rng.standard_normal((6, 20)), np.eye(3)[rng.integers(0, 3, 20)].T
    dP = mlp.block_gradient(weights, wide, X, Y)
    # Independent route: the block layers' gradients are backward(block, dP) (the loss sees the block through P).
    _, grads = mlp.loss_and_gradients(weights, wide, X, Y)
    for g, expected in zip(grads[1:4], dlnref.backward(weights[1:4], dP)):
        np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-15)
    small, layout = mlp.spectral_block(weights, wide, X, Y, width=3, scale=0.5)
    assert layout == wide.with_block_width(3)
    U, s, Vh = np.linalg.svd(-dP)
    P = dlnref.end_to_end(small[1:4])
    np.testing.assert_allclose(P, 0.125 * U[:, :3] @ Vh[:3], atol=1e-14)
    for l in (0, 4):
        assert small[l] is weights[l]
    with pytest.raises(ValueError, match="needs a linear block"):
        mlp.block_gradient(weights, mlp.mlp_layout(6, 3, 8, block="relu"), X, Y)


def _digits_like(n=60, seed=0):
    """Two blobs of 6-pixel 'images' that a small MLP separates."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = np.clip(0.5 + 0.3 * np.eye(3, 6)[labels] + 0.1 * rng.standard_normal((n, 6)), 0, 1)
    return mlp.labelled_set(images, labels, 3)


def test_full_batch_training_is_plain_gradient_descent_with_the_first_layer_scaled():
    data = _digits_like()
    layout = mlp.mlp_layout(6, 3, 8, relu_layers=1, block_depth=2, block_width=2)
    start = mlp.init_mlp(layout, seed=0)
    run = mlp.train_mlp(start, layout, data, lr=0.3, steps=1, first_lr_scale=4.0)
    _, grads = mlp.loss_and_gradients(start, layout, data.X, data.Y)
    for l, (W, g) in enumerate(zip(start, grads)):
        np.testing.assert_allclose(run.weights[l], W - 0.3 * (4.0 if l == 0 else 1.0) * g, rtol=1e-14, atol=1e-16)
    long = mlp.train_mlp(start, layout, data, lr=0.5, steps=200, test=data, record_every=50)
    history = long.history
    assert history["step"] == [0, 50, 100, 150, 200] and history["epoch"] == history["step"]
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["train_accuracy"][-1] == history["test_accuracy"][-1] > 0.9


def test_mini_batches_are_seeded():
    data = _digits_like()
    layout = mlp.mlp_layout(6, 3, 8, block_width=2)
    start = mlp.init_mlp(layout, seed=0)
    a, b, c = (mlp.train_mlp(start, layout, data, 0.2, 25, batch_size=16, seed=s).weights for s in (1, 1, 2))
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)
    assert not np.allclose(a[0], c[0])
    run = mlp.train_mlp(start, layout, data, 0.2, 8, batch_size=16, seed=1, record_every=4)
    assert run.history["epoch"] == [0, 64 / 60, 128 / 60]


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_divergence_and_bad_arguments():
    data = _digits_like()
    layout = mlp.mlp_layout(6, 3, 8)
    start = mlp.init_mlp(layout, scale=30.0, seed=0)
    with pytest.raises(dlnref.DivergenceError, match="the MLP diverged.*smaller first_lr_scale"):
        mlp.train_mlp(start, layout, data, lr=1e300, steps=5)
    with pytest.raises(ValueError, match="do not match layout.dims"):
        mlp.train_mlp(start, layout.with_block_width(2), data, 0.1, 1)
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got -1"):
        mlp.train_mlp(start, layout, data, -1, 1)
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        mlp.labelled_set(np.zeros((2, 6)), [0, 3], 3)


def test_every_backend_gives_numpys_gradients_and_steps(backend):
    rng = np.random.default_rng(2)
    layout = mlp.mlp_layout(5, 3, 6, relu_layers=2, block_depth=3, block_width=2)
    weights = [rng.standard_normal((o, i)) / 2 for i, o in zip(layout.dims[:-1], layout.dims[1:])]
    images, labels = rng.random((9, 5)), rng.integers(0, 3, 9)
    ref = mlp.labelled_set(images, labels, 3)
    on = mlp.labelled_set(images, labels, 3, backend=backend)
    moved = [dlnref.to_backend(w, backend) for w in weights]
    loss, grads = mlp.loss_and_gradients(moved, layout, on.X, on.Y)
    ref_loss, ref_grads = mlp.loss_and_gradients(weights, layout, ref.X, ref.Y)
    assert float(loss) == pytest.approx(float(ref_loss), rel=1e-13)
    for g, r in zip(host(grads), ref_grads):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-15)
    runs = [mlp.train_mlp(w, layout, d, 0.1, 6, test=d, batch_size=4, seed=0, record_every=3)
            for w, d in ((moved, on), (weights, ref))]
    for a, b in zip(host(runs[0].weights), runs[1].weights):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    assert runs[0].history["test_accuracy"] == runs[1].history["test_accuracy"]


def test_relu_derivative_is_zero_at_zero():
    """The subgradient convention: d relu / dZ = [Z > 0], so 0 at Z = 0 (as the official code's jax.nn.relu)."""
    Z = np.array([[-1.0, 0.0, 2.0], [0.0, 3.0, -0.0]])
    np.testing.assert_array_equal(mlp.relu_backward(np.full_like(Z, 7.0), Z), [[0.0, 0.0, 7.0], [0.0, 7.0, 0.0]])


def test_a_blown_up_loss_is_a_divergence_even_when_finite():
    """lr 1e6 throws the loss from about log 3 to a finite 1e20-odd at step 1, then the ReLUs die."""
    data = _digits_like()
    layout = mlp.mlp_layout(6, 3, 8)
    with pytest.raises(dlnref.DivergenceError, match=r"the MLP diverged: the loss is .*e\+\d+ at step 1 ") as info:
        mlp.train_mlp(mlp.init_mlp(layout, seed=0), layout, data, lr=1e6, steps=5)
    assert math.isfinite(info.value.loss) and info.value.loss > mlp.LOSS_BLOWUP * math.log(3)
