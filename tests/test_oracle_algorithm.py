"""The paper's algorithm, checked (dlnref.oracle.algorithm): the init, the C-DLN's spectral init and run, the MLP step.

Every check passes a correct NumPy client written here from the paper (its own QR, SVD, gradients), and names
the cause of each injected bug in its message. Numbers are checked against independent routes: SciPy's
quadrature for the Marchenko-Pastur CDF, scipy.stats.ortho_group as a second Haar sampler, SciPy's gesvd with pairs'
signs flipped for the spectral init, finite differences for the MLP's gradient.
"""

import os
import subprocess
import sys
from functools import reduce

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.stats

import dlnref
from dlnref import oracle
from dlnref.nn.mlp import loss_and_gradients
from dlnref.oracle import algorithm
from dlnref.problems import MatrixFactorization

# --- clients -------------------------------------------------------------------------------------------------


def orthogonal_init(dims, eps, seed, fix_signs=True):
    """W_l = eps O_l, O_l the sign-fixed Q of a Gaussian's QR (Haar), shape (d_l, d_{l-1})."""
    rng = np.random.default_rng(seed)
    layers = []
    for d_in, d_out in zip(dims[:-1], dims[1:]):
        Q, R = np.linalg.qr(rng.standard_normal((max(d_in, d_out), min(d_in, d_out))))
        if fix_signs:
            Q = Q * np.sign(np.diag(R))
        layers.append(eps * (Q if d_out >= d_in else Q.T))
    return layers


def ortho_group_init(dims, eps, seed):
    """A second Haar route: scipy.stats.ortho_group, cut to the layer's shape."""
    rng = np.random.default_rng(seed)
    layers = []
    for d_in, d_out in zip(dims[:-1], dims[1:]):
        O = scipy.stats.ortho_group.rvs(max(d_in, d_out), random_state=rng) if max(d_in, d_out) > 1 else np.eye(1)
        layers.append(eps * O[:d_out, :d_in])
    return layers


INIT_BUGS = {
    "gaussian": (lambda dims, eps, seed: [eps * np.random.default_rng(seed).standard_normal((o, i)) / np.sqrt(i)
                                          for i, o in zip(dims[:-1], dims[1:])],
                 "a Gaussian init instead of an orthogonal one"),
    "uniform": (lambda dims, eps, seed: [eps * np.random.default_rng(seed).uniform(-1, 1, (o, i))
                                         for i, o in zip(dims[:-1], dims[1:])],
                "a uniform init instead of an orthogonal one"),
    "fan_in": (lambda dims, eps, seed: [W / np.sqrt(W.shape[1]) for W in orthogonal_init(dims, eps, seed)],
               "eps / sqrt(d_{l-1}): the scale is divided by the square root of the fan-in"),
    "scale_ignored": (lambda dims, eps, seed: orthogonal_init(dims, 1.0, seed), "the scale is ignored"),
    "transposed": (lambda dims, eps, seed: [W.T for W in orthogonal_init(dims, eps, seed)],
                   "each layer comes back transposed"),
    "same_matrix": (lambda dims, eps, seed: [orthogonal_init((i, o), eps, seed)[0]
                                             for i, o in zip(dims[:-1], dims[1:])],
                    "the same matrix at every layer"),
    "seed_ignored": (lambda dims, eps, seed: orthogonal_init(dims, eps, 7), "the seed is ignored"),
    "global_state": (lambda dims, eps, seed: orthogonal_init(dims, eps, np.random.randint(2**31)),
                     "draws from a global random state"),
    "float32": (lambda dims, eps, seed: [W.astype(np.float32) for W in orthogonal_init(dims, eps, seed)],
                "float32 rounding"),
}


def surrogate(problem):
    """The surrogate from the problem's own arrays: M, P_Omega(M) / p, sum_i y_i A_i."""
    if problem.name == "completion":
        return np.where(problem.mask, problem.target, 0.0) / problem.fraction
    if problem.name == "sensing":
        return np.einsum("k,kij->ij", problem.y, problem.operators)
    return problem.target


def spectral(U, Vh, depth, width, eps):
    return [eps * Vh[:width]] + [eps * np.eye(width)] * (depth - 2) + [eps * U[:, :width]]


def compress_svd(problem, depth, width, eps, matrix=None):
    U, _, Vh = np.linalg.svd(surrogate(problem) if matrix is None else matrix)
    return spectral(U, Vh, depth, width, eps)


def compress_gesvd_signs(problem, depth, width, eps):
    """Another LAPACK algorithm (gesvd, not NumPy's gesdd), with the signs of some pairs (u_i, v_i) flipped together."""
    U, s, Vh = scipy.linalg.svd(surrogate(problem), lapack_driver="gesvd")
    signs = np.where(np.arange(s.size) % 2 == 0, -1.0, 1.0)   # pair i: u_i and v_i both times signs[i]
    U, Vh = U.copy(), Vh.copy()
    U[:, :s.size] *= signs
    Vh[:s.size] *= signs[:, None]
    return spectral(U, Vh, depth, width, eps)


def compress_gauge(problem, depth, width, eps):
    """dlnref's init seen through orthogonal changes of basis between layers: the same training run."""
    layers = compress_svd(problem, depth, width, eps)
    rng = np.random.default_rng(3)
    Q = [np.eye(problem.shape[1])] + [np.linalg.qr(rng.standard_normal((width, width)))[0]
                                      for _ in range(depth - 1)] + [np.eye(problem.shape[0])]
    return [Q[l + 1].T @ W @ Q[l] for l, W in enumerate(layers)]


def compress_values_without_p(problem, depth, width, eps):
    U, s, Vh = np.linalg.svd(np.where(problem.mask, problem.target, 0.0))
    root = np.sqrt(s[:width])
    return [eps * root[:, None] * Vh[:width]] + [eps * np.eye(width)] * (depth - 2) + [eps * U[:, :width] * root]


def compress_flipped(problem, depth, width, eps):
    U, _, Vh = np.linalg.svd(surrogate(problem))
    U = U.copy()
    U[:, 0] *= -1
    return spectral(U, Vh, depth, width, eps)


def compress_bottom(problem, depth, width, eps):
    U, _, Vh = np.linalg.svd(surrogate(problem), full_matrices=False)
    return spectral(U[:, ::-1], Vh[::-1], depth, width, eps)


def compress_swapped(problem, depth, width, eps):
    U, _, Vh = np.linalg.svd(surrogate(problem))
    return spectral(Vh.T, U.T, depth, width, eps) if U.shape == Vh.shape else spectral(U, Vh, depth, width, eps)


COMPRESSION_BUGS = {
    "bottom": (compress_bottom, None, "the bottom singular vectors"),
    "swapped": (compress_swapped, None, "the left and right singular vectors are swapped"),
    "of_target": (lambda p, L, w, e: compress_svd(p, L, w, e, p.target), "completion",
                  "the singular vectors of the target M instead of those of the surrogate (P_Omega(M) / p)"),
    "width_r": (lambda p, L, w, e: compress_svd(p, L, w // 2, e), None,
                "(the target's rank) instead of the asked width"),
    "flipped_pair": (compress_flipped, None, "the left and right singular vectors are not paired"),
    "values_without_p": (compress_values_without_p, "completion",
                         "the surrogate without the 1/p, P_Omega(M) instead of P_Omega(M) / p"),
    "inner_without_eps": (lambda p, L, w, e: [W / e if 0 < l < L - 1 else W
                                              for l, W in enumerate(compress_svd(p, L, w, e))], None,
                          "the scale eps is missing"),
}


def end_to_end(weights):
    return reduce(lambda acc, W: W @ acc, weights)


def dln_gradient(problem, X):
    if problem.name == "completion":
        return np.where(problem.mask, X - problem.target, 0.0) / problem.mask.sum()
    if problem.name == "sensing":
        A = problem.operators
        return np.einsum("k,kij->ij", np.einsum("kij,ij->k", A, X) - problem.y, A)
    return (X - problem.target) / problem.target.size


def make_train(rate=lambda l, L, alpha: alpha if l in (0, L - 1) else 1.0, loss_scale=lambda problem: 1.0):
    def train(weights, problem, lr, alpha, steps):
        weights = [W.copy() for W in weights]
        out = [end_to_end(weights)]
        for _ in range(steps):
            G = dln_gradient(problem, end_to_end(weights)) * loss_scale(problem)
            L = len(weights)
            grads = [reduce(lambda acc, V: V @ acc, weights[l + 1:], np.eye(W.shape[0])).T @ G
                     @ reduce(lambda acc, V: V @ acc, weights[:l], np.eye(weights[0].shape[1])).T
                     for l, W in enumerate(weights)]
            weights = [W - lr * rate(l, L, alpha) * g for l, (W, g) in enumerate(zip(weights, grads))]
            out.append(end_to_end(weights))
        return out
    return train


def train_aliased(weights, problem, lr, alpha, steps):
    buffer = np.empty((weights[-1].shape[0], weights[0].shape[1]))
    views = []
    for X in make_train()(weights, problem, lr, alpha, steps):
        buffer[...] = X
        views.append(buffer)
    return views


def mlp_gradients(weights, model, X, Y, relu_block=False, loss_scale=1.0):
    """Hand-written back-propagation of the mean cross-entropy (ReLU after layer l where model.relu_after[l])."""
    L = len(weights)
    relu_after = [l < L - 1 for l in range(L)] if relu_block else list(model.relu_after)
    H, Z = [X], []
    for l, W in enumerate(weights):
        Z.append(W @ H[-1])
        H.append(np.maximum(Z[-1], 0) if relu_after[l] else Z[-1])
    exp = np.exp(H[-1] - H[-1].max(axis=0))
    D = (exp / exp.sum(axis=0) - Y) / X.shape[1] * loss_scale
    grads = [None] * L
    for l in reversed(range(L)):
        grads[l] = D @ H[l].T
        D = weights[l].T @ D
        if l > 0 and relu_after[l - 1]:
            D = D * (Z[l - 1] > 0)
    return grads


def make_mlp_step(rates=lambda L, s: [s] + [1.0] * (L - 1), frozen_block=False, **options):
    def step(weights, model, X, Y, lr, first_lr_scale):
        first, stop = model.block_layers
        grads = mlp_gradients(weights, model, X, Y, **options)
        r = rates(len(weights), first_lr_scale)
        return [W if frozen_block and first <= l < stop else W - lr * r[l] * g
                for l, (W, g) in enumerate(zip(weights, grads))]
    return step


MLP_BUGS = {
    "scale_missing": (make_mlp_step(rates=lambda L, s: [1.0] * L), "first_lr_scale is missing"),
    "dln_rule": (make_mlp_step(rates=lambda L, s: [s] + [1.0] * (L - 2) + [s]),
                 "first_lr_scale is applied to the first and the last layer"),
    "last_layer": (make_mlp_step(rates=lambda L, s: [1.0] * (L - 1) + [s]),
                   "first_lr_scale is applied to the last layer, not the first"),
    "frozen_block": (make_mlp_step(frozen_block=True), "the block's layers"),
    "sum_loss": (lambda w, m, X, Y, lr, s: make_mlp_step(loss_scale=X.shape[1])(w, m, X, Y, lr, s),
                 "your loss is a sum over the"),
    "relu_block": (make_mlp_step(relu_block=True), "a ReLU between the block's layers"),
    "lr_ignored": (lambda w, m, X, Y, lr, s: make_mlp_step()(w, m, X, Y, 0.1, s), "lr is ignored"),
    "ascent": (lambda w, m, X, Y, lr, s: make_mlp_step()(w, m, X, Y, -lr, s), "the sign is flipped"),
}


def failure(check, *args, **kwargs):
    with pytest.raises(AssertionError) as info:
        check(*args, **kwargs)
    return str(info.value)


# --- the init ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("init_fn", [orthogonal_init, ortho_group_init,
                                     lambda dims, eps, seed: dlnref.init_weights(dims, eps, seed=seed)])
def test_orthogonal_inits_pass(init_fn):
    oracle.assert_init_matches(init_fn, max_examples=15, haar_samples=400)


def test_output_first_init_passes_when_declared_and_is_named_otherwise():
    reversed_init = lambda dims, eps, seed: orthogonal_init(dims, eps, seed)[::-1]  # noqa: E731
    oracle.assert_init_matches(reversed_init, layout="output_first", max_examples=10, haar_samples=0)
    message = failure(oracle.assert_init_matches, reversed_init, max_examples=10, haar_samples=0)
    assert "the layers come back in the other order: pass layout='output_first'" in message


@pytest.mark.parametrize("bug", sorted(INIT_BUGS))
def test_init_bugs_are_named(bug):
    init_fn, cause = INIT_BUGS[bug]
    message = failure(oracle.assert_init_matches, init_fn, max_examples=15, haar_samples=0)
    assert "Likely cause" in message and cause in message, message
    assert "Rebuild the case: init_fn(" in message


def test_declared_depths_keep_the_cases_within_them():
    def deep_only(dims, eps, seed):
        if len(dims) < 3:
            raise ValueError("my code needs depth >= 2")
        return orthogonal_init(dims, eps, seed)

    assert "my code needs depth >= 2" in failure(oracle.assert_init_matches, deep_only, max_examples=10,
                                                 haar_samples=0)
    oracle.assert_init_matches(deep_only, depths=range(2, 5), max_examples=10, haar_samples=0)

    def compress_deep_only(problem, depth, width, eps):
        if depth < 3:
            raise ValueError("my code needs depth >= 3")
        return compress_svd(problem, depth, width, eps)

    oracle.assert_compression_matches(compress_deep_only, depths=[3, 4], max_examples=10)
    with pytest.raises(dlnref.InputError, match="depths must be non-empty"):
        oracle.assert_compression_matches(compress_deep_only, depths=[1])


def test_a_factor_no_formula_gives_is_measured():
    message = failure(oracle.assert_init_matches, lambda dims, eps, seed: orthogonal_init(dims, 0.77 * eps, seed),
                      max_examples=5, haar_samples=0)
    assert "the singular values are eps times 0.77" in message


def test_float32_init_passes_when_declared():
    oracle.assert_init_matches(INIT_BUGS["float32"][0], dtype=np.float32, max_examples=10, haar_samples=0)


def test_qr_without_sign_fix_fails_the_haar_test_with_its_cause():
    message = failure(oracle.assert_init_matches, lambda d, e, s: orthogonal_init(d, e, s, fix_signs=False),
                      max_examples=5)
    assert "not Haar-distributed" in message and "without the sign fix" in message


def test_haar_test_thresholds_follow_hoeffding():
    """The false-failure bound: the union of 2 K Hoeffding tails at the thresholds the test uses is delta."""
    shapes = [(4, 3), (4, 4), (2, 4)]
    K, N, delta = 2 * sum(a * b for a, b in shapes), 1000, algorithm.HAAR_FALSE_FAILURE
    t1 = np.sqrt(2 * np.log(2 * K / delta) / N)
    t2 = np.sqrt(np.log(2 * K / delta) / (2 * N))
    assert (K / 2) * 2 * np.exp(-N * t1**2 / 2) + (K / 2) * 2 * np.exp(-2 * N * t2**2) == pytest.approx(delta)
    biased = algorithm.haar_test(lambda d, e, s: orthogonal_init(d, e, s, fix_signs=False), samples=N)
    assert f"each within {t1:.3f}" in biased


def test_marchenko_pastur_cdf_against_quadrature():
    density = lambda x: np.sqrt((4 - x) * x) / (2 * np.pi * x)  # noqa: E731
    for x in (0.05, 0.5, 1.0, 2.5, 3.9):
        assert algorithm.marchenko_pastur_cdf(x) == pytest.approx(scipy.integrate.quad(density, 0, x)[0], abs=1e-9)
    assert algorithm.marchenko_pastur_cdf(4.0) == pytest.approx(1.0)


# --- the compressed network's spectral init ------------------------------------------------------------------


@pytest.mark.parametrize("compress_fn", [compress_svd, compress_gesvd_signs, compress_gauge, dlnref.compress])
def test_correct_spectral_inits_pass(compress_fn):
    oracle.assert_compression_matches(compress_fn, max_examples=20)


def test_rotations_within_a_repeated_singular_value_pass():
    """M = diag(2, 1, 1, 0.5, 0, 0): the pair of 1s spans a plane in which any rotation is an SVD."""
    problem = MatrixFactorization(np.diag([2.0, 1.0, 1.0, 0.5, 0.0, 0.0]))
    problem.rank = 2   # width 2 r = 4 takes the group {1, 1} whole

    def rotated(problem, depth, width, eps):
        U, _, Vh = np.linalg.svd(problem.target)
        c, s = np.cos(0.7), np.sin(0.7)
        R = np.eye(6)
        R[1:3, 1:3] = [[c, -s], [s, c]]
        return spectral(U @ R, (Vh.T @ R).T, depth, width, eps)

    assert not np.allclose(rotated(problem, 2, 4, 1.0)[0], dlnref.compress(problem, 2, 4, 1.0)[0])
    oracle.assert_compression_matches(rotated, problem)


def test_a_group_cut_by_the_width_accepts_any_paired_subspace():
    """Width 2 cuts the pair of 1s: u' = U_g a and v' = V_g a for any unit a, never a u' paired with another v'."""
    M = np.diag([2.0, 1.0, 1.0, 0.0])
    a = np.array([0.6, 0.8])
    U = np.eye(4)[:, [0, 1]].copy()
    U[:, 1] = np.eye(4)[:, 1:3] @ a
    assert not oracle.spectral_init_differences(spectral(U, U.T, 3, 2, 0.5), M, 2, 0.5)
    b = np.array([0.8, -0.6])
    V = U.copy()
    V[:, 1] = np.eye(4)[:, 1:3] @ b
    assert oracle.spectral_init_differences(spectral(U, V.T, 3, 2, 0.5), M, 2, 0.5)


def test_vectors_only_init_of_the_unscaled_surrogate_passes():
    """P_Omega(M) and P_Omega(M) / p have the same singular vectors: without the 1/p the paper's init is unchanged."""
    oracle.assert_compression_matches(
        lambda p, L, w, e: compress_svd(p, L, w, e, np.where(p.mask, p.target, 0.0)), "completion", max_examples=10)


@pytest.mark.parametrize("bug", sorted(COMPRESSION_BUGS))
def test_compression_bugs_are_named(bug):
    compress_fn, problem, cause = COMPRESSION_BUGS[bug]
    message = failure(oracle.assert_compression_matches, compress_fn, problem, max_examples=20)
    assert "Likely cause" in message and cause in message, message
    assert "dlnref.oracle.build_compression_case(" in message


def test_float32_spectral_init_is_named_and_passes_when_declared():
    def compress32(problem, depth, width, eps):
        U, _, Vh = np.linalg.svd(surrogate(problem).astype(np.float32))
        return [W.astype(np.float32) for W in spectral(U, Vh, depth, width, np.float32(eps))]

    assert "float32 rounding" in failure(oracle.assert_compression_matches, compress32, max_examples=10)
    oracle.assert_compression_matches(compress32, dtype=np.float32, max_examples=10)


def test_compression_case_rebuilds_dlnref_init():
    weights, problem = oracle.build_compression_case("completion", (5, 4), 1, 3, 0.01, problem_seed=2, observed=9)
    assert [W.shape for W in weights] == [(2, 4), (2, 2), (5, 2)]
    U, _, Vh = np.linalg.svd(surrogate(problem))
    X = end_to_end(weights)
    assert np.allclose(X, 1e-6 * U[:, :2] @ Vh[:2], atol=1e-20)


# --- the compressed network's run ----------------------------------------------------------------------------


def test_correct_compressed_run_passes():
    oracle.assert_compressed_trajectory_matches(make_train(), steps=6, max_examples=6)


@pytest.mark.parametrize("train_fn, problem, cause", [
    (make_train(rate=lambda l, L, a: 1.0), None, "the discrepant rate alpha is missing"),
    (make_train(rate=lambda l, L, a: 1.0 if l in (0, L - 1) else a), None,
     "alpha is applied to the inner layers, not to W_1 and W_L"),
    (make_train(loss_scale=lambda p: p.mask.sum() / p.mask.size), "completion",
     "your loss is a mean over all"),
    (train_aliased, "factorization", "return copies"),
])
def test_compressed_run_bugs_are_named(train_fn, problem, cause):
    message = failure(oracle.assert_compressed_trajectory_matches, train_fn, problem, steps=6, max_examples=6)
    assert cause in message, message
    assert "confirmed on" in message and "depth 3" in message


def test_compressed_run_lr_outside_the_range_is_a_usage_error():
    with pytest.raises(dlnref.InputError, match="usage error"):
        oracle.assert_compressed_trajectory_matches(make_train(), lr=1.0)


# --- the MLP with a linear block -----------------------------------------------------------------------------


def test_correct_mlp_step_passes():
    oracle.assert_mlp_step_matches(make_mlp_step(), max_examples=20)
    oracle.assert_mlp_step_matches(lambda w, *a: make_mlp_step()(w[::-1], *a)[::-1], layout="output_first",
                                   max_examples=5)


@pytest.mark.parametrize("bug", sorted(MLP_BUGS))
def test_mlp_bugs_are_named(bug):
    step_fn, cause = MLP_BUGS[bug]
    message = failure(oracle.assert_mlp_step_matches, step_fn, max_examples=20)
    assert "Likely cause" in message and cause in message, message
    assert "dlnref.oracle.build_mlp_case(" in message


def test_float32_mlp_step_is_named_and_passes_when_declared():
    step32 = lambda w, m, X, Y, lr, s: [W.astype(np.float32) for W in make_mlp_step()(  # noqa: E731
        [W.astype(np.float32) for W in w], m, X.astype(np.float32), Y.astype(np.float32), lr, s)]
    assert "float32 rounding" in failure(oracle.assert_mlp_step_matches, step32, max_examples=10)
    oracle.assert_mlp_step_matches(step32, dtype=np.float32, max_examples=10)


def test_mlp_case_gradient_against_finite_differences():
    weights, model, X, Y = oracle.build_mlp_case(4, 3, 4, 1, 3, 2, 5, seed=11)
    _, grads = loss_and_gradients(weights, model, X, Y)
    hand = mlp_gradients(weights, model, X, Y)
    h = 1e-6
    for l in range(len(weights)):
        direction = np.random.default_rng(l).standard_normal(weights[l].shape)
        plus = [W + h * direction if k == l else W for k, W in enumerate(weights)]
        minus = [W - h * direction if k == l else W for k, W in enumerate(weights)]
        slope = (float(loss_and_gradients(plus, model, X, Y)[0]) - float(loss_and_gradients(minus, model, X, Y)[0])) \
            / (2 * h)
        assert np.vdot(grads[l], direction) == pytest.approx(slope, rel=1e-6, abs=1e-10)
        assert np.allclose(hand[l], grads[l], rtol=1e-12, atol=1e-15)


# --- dlnref conform --kind init|compression|mlp --------------------------------------------------------------

MODULE = '''
import numpy as np


def init(dims, eps, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i, o in zip(dims[:-1], dims[1:]):
        Q, R = np.linalg.qr(rng.standard_normal((max(i, o), min(i, o))))
        Q = Q * np.sign(np.diag(R))
        out.append(eps * (Q if o >= i else Q.T))
    return out


def compress_r(problem, depth, width, eps):
    S = np.where(problem.mask, problem.target, 0.0) / problem.fraction if problem.name == "completion" \\
        else problem.target
    U, s, Vh = np.linalg.svd(S)
    w = width // 2
    return [eps * Vh[:w]] + [eps * np.eye(w)] * (depth - 2) + [eps * U[:, :w]]


def mlp_step(weights, model, X, Y, lr, first_lr_scale):
    L = len(weights)
    H, Z = [X], []
    for l, W in enumerate(weights):
        Z.append(W @ H[-1])
        H.append(np.maximum(Z[-1], 0) if model.relu_after[l] else Z[-1])
    e = np.exp(H[-1] - H[-1].max(axis=0))
    D = (e / e.sum(axis=0) - Y) / X.shape[1]
    new = list(weights)
    for l in reversed(range(L)):
        new[l] = weights[l] - lr * (first_lr_scale if l == 0 else 1.0) * (D @ H[l].T)
        D = weights[l].T @ D
        if l > 0 and model.relu_after[l - 1]:
            D = D * (Z[l - 1] > 0)
    return new


def train_without_alpha(weights, problem, lr, alpha, steps):
    def X(ws):
        out = ws[0]
        for W in ws[1:]:
            out = W @ out
        return out

    out = [X(weights)]
    for _ in range(steps):
        G = np.where(problem.mask, out[-1] - problem.target, 0.0) / problem.mask.sum()
        grads = []
        for l, W in enumerate(weights):
            above = np.eye(W.shape[0])
            for V in weights[l + 1:][::-1]:
                above = above @ V
            below = np.eye(weights[0].shape[1])
            for V in weights[:l]:
                below = V @ below
            grads.append(above.T @ G @ below.T)
        weights = [W - lr * g for W, g in zip(weights, grads)]
        out.append(X(weights))
    return out
'''


@pytest.fixture
def client(tmp_path):
    (tmp_path / "algorithm_client.py").write_text(MODULE)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return tmp_path, {**os.environ, "PYTHONPATH": os.pathsep.join([repo, str(tmp_path)])}


def conform(client, *args):
    folder, env = client
    return subprocess.run([sys.executable, "-m", "dlnref", "conform", *args], check=False, cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)


def test_conform_init_passes(client):
    proc = conform(client, "algorithm_client:init", "--kind", "init", "--dtype", "float64", "--max-examples", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 of 1 checks passed" in proc.stdout


def test_conform_compression_names_the_width(client):
    proc = conform(client, "algorithm_client:compress_r", "--kind", "compression", "--problem", "completion",
                   "--dtype", "float64", "--max-examples", "5")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL [1]" in proc.stdout and "(the target's rank) instead of the asked width" in proc.stdout


def test_conform_mlp_passes_at_two_rates(client):
    proc = conform(client, "algorithm_client:mlp_step", "--kind", "mlp", "--dtype", "float64", "--alpha", "2.9",
                   "--alpha", "4.3", "--max-examples", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 of 2 checks passed" in proc.stdout


def test_conform_cdln_names_a_missing_alpha(client):
    proc = conform(client, "algorithm_client:train_without_alpha", "--kind", "cdln", "--problem", "completion",
                   "--dtype", "float64", "--alpha", "3.7", "--steps", "4", "--max-examples", "3")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cdln       completion" in proc.stdout and "the discrepant rate alpha is missing" in proc.stdout


def test_conform_algorithm_kind_with_a_missing_function_exits_2(client):
    proc = conform(client, "algorithm_client:missing", "--kind", "init")
    assert proc.returncode == 2 and "has no attribute 'missing'" in proc.stderr
