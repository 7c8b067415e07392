"""The oracle kit against an implementation written here in another style (output-first, like PyTorch),
and against deliberate mistakes that it must name."""

from functools import reduce

import numpy as np
import pytest

from dlnref import testing as kit


# A foreign implementation: layers listed output first, [W_L, ..., W_1], products built explicitly.
def foreign_backward(layers, G):
    L = len(layers)
    grads = []
    for k in range(L):  # k = 0 is the output layer W_L
        above = reduce(lambda acc, W: acc @ W, layers[:k], np.eye(layers[0].shape[0], dtype=G.dtype))
        below = reduce(lambda acc, W: acc @ W, layers[k + 1:], np.eye(layers[k].shape[1], dtype=G.dtype))
        grads.append(above.T @ G @ below.T)
    return grads


def foreign_gradient(problem, X, normalisation="documented"):
    M = problem.target.astype(X.dtype)
    if problem.name == "factorization":
        return (X - M) / M.size
    if problem.name == "completion":
        residual = np.where(problem.mask, X - M, 0)
        count = residual.size if normalisation == "mean" else problem.mask.sum()
        return residual / count
    A = problem.operators.astype(X.dtype)
    r = np.einsum("kij,ij->k", A, X) - np.einsum("kij,ij->k", A, M)
    return np.einsum("k,kij->ij", r, A)


def foreign_step(layers, problem, lr, alpha, rate_on=("first", "last"), normalisation="documented"):
    X = reduce(lambda acc, W: acc @ W, layers)
    grads = foreign_backward(layers, foreign_gradient(problem, X, normalisation))
    L = len(layers)
    scales = [1.0] * L
    if "last" in rate_on:
        scales[0] = alpha
    if "first" in rate_on:
        scales[-1] = alpha
    return [W - lr * s * g for W, s, g in zip(layers, scales, grads)]


def foreign_train(layers, problem, lr, alpha, steps):
    out = [reduce(lambda acc, W: acc @ W, layers)]
    for _ in range(steps):
        layers = foreign_step(layers, problem, lr, alpha)
        out.append(reduce(lambda acc, W: acc @ W, layers))
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_correct_foreign_backward_passes(dtype):
    kit.assert_backward_matches(foreign_backward, layout="output_first", dtype=dtype)


@pytest.mark.parametrize("problem", ["factorization", "completion", "sensing"])
def test_correct_foreign_step_and_trajectory_pass(problem):
    kit.assert_step_matches(foreign_step, problem, layout="output_first", outer_lr_scale=3.0)
    kit.assert_step_matches(foreign_step, problem, layout="output_first", dtype=np.float32)
    kit.assert_trajectory_matches(foreign_train, problem, layout="output_first", steps=10, outer_lr_scale=2.0)


def _failure(call):
    with pytest.raises(AssertionError) as info:
        call()
    message = str(info.value)
    print(message)
    return message


def test_reversed_layers_are_named():
    message = _failure(lambda: kit.assert_backward_matches(lambda W, G: foreign_backward(W, G)[::-1],
                                                           layout="output_first"))
    assert "Likely cause: the layers are reversed" in message
    assert "dims=(" in message and "seed=" in message and "layer" in message


def test_missing_transpose_is_named():
    message = _failure(lambda: kit.assert_backward_matches(lambda W, G: [g.T for g in foreign_backward(W, G)],
                                                           layout="output_first"))
    assert "Likely cause: a transposed gradient" in message


def test_mean_normalisation_is_named():
    message = _failure(lambda: kit.assert_step_matches(
        lambda W, p, lr, a: foreign_step(W, p, lr, a, normalisation="mean"), "completion", layout="output_first"))
    assert "the loss is normalised differently" in message
    assert "a mean over all m n entries instead of over the |Omega| observed ones" in message


def test_discrepant_rate_on_first_layer_only_is_named():
    message = _failure(lambda: kit.assert_step_matches(
        lambda W, p, lr, a: foreign_step(W, p, lr, a, rate_on=("first",)), "factorization", layout="output_first"))
    assert "the discrepant rate is applied to the first layer W_1 only" in message


def test_trajectory_mismatch_names_the_step():
    def off_by_one(layers, problem, lr, alpha, steps):
        return foreign_train(layers, problem, lr * 1.001, alpha, steps)
    message = _failure(lambda: kit.assert_trajectory_matches(off_by_one, "factorization", layout="output_first"))
    assert "first at step 1" in message


def test_float32_is_judged_by_its_own_tolerance():
    # A float32 result is accepted at float32's precision but rejected when float64 is claimed.
    def in_float32(W, G):
        return [g.astype(np.float64) for g in foreign_backward([w.astype(np.float32) for w in W], G.astype(np.float32))]
    kit.assert_backward_matches(in_float32, layout="output_first", dtype=np.float32)
    message = _failure(lambda: kit.assert_backward_matches(in_float32, layout="output_first", dtype=np.float64))
    assert "dtype float64" in message


def test_bad_layout_raises():
    with pytest.raises(ValueError, match="layout must be one of"):
        kit.assert_backward_matches(foreign_backward, layout="reversed")
