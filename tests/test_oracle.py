"""The oracle kit against implementations written here from the README's conventions alone, and against
deliberate mistakes, each of which it must name, and name alone."""

import re
from functools import reduce

import numpy as np
import pytest
from hypothesis import given, settings

import dlnref.oracle as kit
from dlnref import testing
from dlnref.oracle.cases import Case, case_alpha, factors_distinct, normalisation_factors, problem_cases
from dlnref.oracle.checks import check_backward, check_step, trajectory_lr_range

KINDS = ("factorization", "completion", "sensing")
# The thorough profile explores more cases inside every check too.
EXAMPLES = 10 if settings.default.max_examples < 100 else 100


# --- Two independent correct implementations -------------------------------------------------------------------
# Output first, like many hand-written codes: layers = [W_L, ..., W_1], every product built explicitly.
def chain(layers, n, dtype):
    """layers[0] @ layers[1] @ ... (the identity of size n for none)."""
    return reduce(lambda acc, W: acc @ W, layers, np.eye(n, dtype=dtype))


def out_backward(layers, G):
    grads = []
    for k in range(len(layers)):  # k = 0 is the output layer W_L
        above = chain(layers[:k], layers[0].shape[0], G.dtype)
        below = chain(layers[k + 1:], layers[k].shape[1], G.dtype)
        grads.append(above.T @ G @ below.T)
    return grads


def loss_gradient(problem, X, normalisation="documented"):
    """dLoss/dX with the README's normalisations, in X's dtype."""
    M = problem.target.astype(X.dtype)
    if problem.name == "factorization":
        return (X - M) / M.size
    if problem.name == "completion":
        residual = np.where(problem.mask, X - M, 0).astype(X.dtype)
        return residual / (residual.size if normalisation == "mean" else problem.mask.sum())
    A = problem.operators.astype(X.dtype)
    r = np.einsum("kij,ij->k", A, X - M)
    return np.einsum("k,kij->ij", r, A)


def out_step(layers, problem, lr, alpha):
    dtype = layers[0].dtype
    X = chain(layers, layers[0].shape[0], dtype)
    grads = out_backward(layers, loss_gradient(problem, X))
    scales = [alpha if k in (0, len(layers) - 1) else 1.0 for k in range(len(layers))]
    return [W - dtype.type(lr * s) * g for W, s, g in zip(layers, scales, grads)]


def out_train(layers, problem, lr, alpha, steps):
    Xs = [chain(layers, layers[0].shape[0], layers[0].dtype)]
    for _ in range(steps):
        layers = out_step(layers, problem, lr, alpha)
        Xs.append(chain(layers, layers[0].shape[0], layers[0].dtype))
    return Xs


# Input first, dlnref's order, written as a forward pass and a backward pass over a list of activations.
def in_backward(weights, G):
    suffix = [np.eye(weights[-1].shape[0], dtype=G.dtype)]  # suffix[j] = W_L ... W_{L-j+1}
    for W in reversed(weights[1:]):
        suffix.append(suffix[-1] @ W)
    prefix = [np.eye(weights[0].shape[1], dtype=G.dtype)]  # prefix[j] = W_j ... W_1
    for W in weights[:-1]:
        prefix.append(W @ prefix[-1])
    L = len(weights)
    return [suffix[L - 1 - l].T @ G @ prefix[l].T for l in range(L)]


def in_step(weights, problem, lr, alpha):
    X = reduce(lambda acc, W: W @ acc, weights[1:], weights[0])
    grads = in_backward(weights, loss_gradient(problem, X))
    L = len(weights)
    return [W - W.dtype.type(lr) * (W.dtype.type(alpha) if l in (0, L - 1) else 1) * g
            for l, (W, g) in enumerate(zip(weights, grads))]


def in_train(weights, problem, lr, alpha, steps):
    out = []
    for t in range(steps + 1):
        out.append(reduce(lambda acc, W: W @ acc, weights[1:], weights[0]))
        if t < steps:
            weights = in_step(weights, problem, lr, alpha)
    return out


IMPLEMENTATIONS = {"input_first": (in_backward, in_step, in_train), "output_first": (out_backward, out_step, out_train)}


@pytest.mark.parametrize("layout", ["input_first", "output_first"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_correct_backward_passes(layout, dtype):
    kit.assert_backward_matches(IMPLEMENTATIONS[layout][0], layout=layout, dtype=dtype, max_examples=2 * EXAMPLES)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("alpha", [1.0, 2.0, 5.0, None])
@pytest.mark.parametrize("layout, dtype", [("input_first", np.float64), ("output_first", np.float32)])
def test_correct_step_passes_at_two_step_sizes(kind, alpha, layout, dtype):
    for lr in (0.1, 0.8):  # and 0.37 lr inside each check
        kit.assert_step_matches(IMPLEMENTATIONS[layout][1], kind, lr=lr, outer_lr_scale=alpha, layout=layout,
                                dtype=dtype, max_examples=EXAMPLES)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("alpha", [1.0, 2.0, 5.0])
@pytest.mark.parametrize("layout, dtype", [("input_first", np.float64), ("output_first", np.float32)])
def test_correct_trajectory_passes_at_two_step_sizes(kind, alpha, layout, dtype):
    high = trajectory_lr_range(kind, 20, alpha)[1]
    for lr in (high, high / 4):
        kit.assert_trajectory_matches(IMPLEMENTATIONS[layout][2], kind, lr=lr, outer_lr_scale=alpha, layout=layout,
                                      dtype=dtype, max_examples=EXAMPLES // 2)


def test_dlnref_own_float64_run_passes_its_trajectory_check():
    # dlnref's own float64 trajectory is one of the two orderings the tolerance is measured from; the other
    # ordering (the transposed case) must pass too, on every kind and with the default alpha and lr.
    def transposed_run(layers, problem, lr, alpha, steps):
        return [X.T for X in in_train([W.T for W in layers[::-1]], problem.transposed(), lr, alpha, steps)]
    for kind in KINDS:
        kit.assert_trajectory_matches(transposed_run, kind, max_examples=EXAMPLES)


# --- Wrong implementations: each cause named, and only it --------------------------------------------------------
def _failure(call):
    with pytest.raises(AssertionError) as info:
        call()
    message = str(info.value)
    print(message)
    return message


def _only_cause(message):
    """The single explanation of a message (fails when several fit)."""
    line = next(l for l in message.splitlines() if l.startswith("Likely cause"))
    assert line.startswith("Likely cause: "), message
    return line[len("Likely cause: "):].rstrip(".")


def _step_failure(step, kind, **kwargs):
    return _failure(lambda: kit.assert_step_matches(step, kind, layout="output_first", **kwargs))


def _with_gradient(gradient):
    """out_step with another dLoss/dX."""
    def step(layers, problem, lr, alpha):
        X = chain(layers, layers[0].shape[0], layers[0].dtype)
        grads = out_backward(layers, gradient(problem, X))
        scales = [alpha if k in (0, len(layers) - 1) else 1.0 for k in range(len(layers))]
        return [W - lr * s * g for W, s, g in zip(layers, scales, grads)]
    return step


def _count(message, key):
    return int(re.search(rf"{key}=(\d+)", message).group(1))


def test_completion_sum_without_half_names_the_formula():
    message = _step_failure(_with_gradient(lambda p, X: 2 * np.where(p.mask, X - p.target, 0)), "completion")
    omega = _count(message, r"\|Omega\|")
    assert _only_cause(message) == (f"your loss is a sum over the {omega} observed entries without the 1/2: factor "
                                    f"{2 * omega} = 2 |Omega| on every layer: declare loss='sum'")


def test_completion_mean_over_all_entries_is_named():
    message = _step_failure(lambda W, p, lr, a: _with_gradient(lambda p, X: loss_gradient(p, X, "mean"))(W, p, lr, a),
                            "completion")
    assert _only_cause(message).startswith("your loss is a mean over all ")
    assert "with the 1/2: factor" in message and "= |Omega|/(m n) on every layer" in message


def test_arora_sensing_loss_is_a_mean_over_k_without_half():
    # Arora et al.'s sensing loss: mean over the k measurements, no 1/2 (factor 2/k), with plain GD.
    def arora(p, X):
        A = p.operators
        return 2 * np.einsum("k,kij->ij", np.einsum("kij,ij->k", A, X - p.target), A) / len(A)
    message = _step_failure(_with_gradient(arora), "sensing")
    k = _count(message, "k")
    assert _only_cause(message) == (f"your loss is a mean over the {k} measurements without the 1/2: factor "
                                    f"{2 / k:.6g} = 2/k on every layer: declare loss='mean'")


def test_missing_half_and_missing_alpha_are_named_together():
    # A loss without the 1/2 and plain gradient descent (no alpha): two causes at once, in one explanation.
    def plain_gd_no_half(layers, problem, lr, alpha):
        return _with_gradient(lambda p, X: 2 * loss_gradient(p, X))(layers, problem, lr, 1.0)
    message = _step_failure(plain_gd_no_half, "factorization")
    entries = re.search(r"target (\d+)x(\d+)", message).groups()
    assert _only_cause(message) == ("the discrepant rate alpha is missing: every layer takes lr; and your loss is a "
                                    f"mean over the {int(entries[0]) * int(entries[1])} entries without the 1/2: "
                                    "factor 2 on every layer: declare loss='mean'")


@pytest.mark.parametrize("dims", [(4, 3), (3, 5, 4), (3, 2, 4, 5)])
def test_missing_alpha_is_named_at_every_depth(dims):
    # L = 1 included: W_1 is then both outer layers, and a missing alpha is a factor 1/alpha that the
    # case's alpha keeps apart from every normalisation.
    case = Case("completion", dims, 1, 2, rank=1, sizes=(("observed", 5),))
    message = check_step(lambda W, p, lr, a: out_step(W, p, lr, 1.0), case, layout="output_first")
    assert _only_cause(message) == "the discrepant rate alpha is missing: every layer takes lr"


@pytest.mark.parametrize("placement, cause", [
    ("first", "alpha is applied to W_1 only, not to W_L"),
    ("last", "alpha is applied to W_L only, not to W_1"),
    ("every", "alpha is applied to every layer, not just W_1 and W_L"),
])
def test_misplaced_alpha_is_named(placement, cause):
    def step(layers, problem, lr, alpha):
        L = len(layers)  # output first: index 0 is W_L, index L - 1 is W_1
        scales = {"first": [1.0] * (L - 1) + [alpha], "last": [alpha] + [1.0] * (L - 1), "every": [alpha] * L}
        X = chain(layers, layers[0].shape[0], layers[0].dtype)
        grads = out_backward(layers, loss_gradient(problem, X))
        return [W - lr * s * g for W, s, g in zip(layers, scales[placement], grads)]
    assert _only_cause(_step_failure(step, "sensing")) == cause


# Fixed cases, one layer and three, for the causes whose search end to end is tested above.
CASES = [Case("completion", (4, 3), 5, 6, sizes=(("observed", 7),)), Case("sensing", (3, 4, 2, 5), 7, 8, sizes=(("measurements", 9),))]


@pytest.mark.parametrize("case", CASES, ids=["L1", "L3"])
@pytest.mark.parametrize("step, cause", [
    (lambda W, p, lr, a: [w.copy() for w in W], "zero update: every layer comes back unchanged (the update is "
                                                 "never applied)"),
    (lambda W, p, lr, a: out_step(W, p, -lr, a), "the sign is flipped: the step climbs the loss (gradient ascent)"),
    (lambda W, p, lr, a: out_step(W, p, 0.1, a), "lr is ignored: the update is the same at lr=0.1 and lr=0.037"),
    (lambda W, p, lr, a: out_step(W, p, lr**2, a), "lr is rescaled: the update grows as lr^2 between lr=0.037 and "
                                                   "lr=0.1, not as lr"),
    (lambda W, p, lr, a: out_step(W, p, 3 * lr, a), "a constant factor 3 on every layer, the same on both cases and "
                                                    "no loss normalisation of either (is lr scaled?)"),
], ids=["zero", "sign", "lr-ignored", "lr-squared", "lr-times-3"])
def test_zero_update_sign_and_lr_are_named(case, step, cause):
    assert _only_cause(check_step(step, case, layout="output_first")) == cause


def test_step_reading_the_other_layout_is_named():
    message = check_step(out_step, CASES[1], layout="input_first")
    assert _only_cause(message) == "your function reads the layers in the other order: pass layout='output_first'"


def test_ignored_lr_is_caught_at_the_default_lr():
    # Such a step passed the old single-lr check at the default lr; the second step size catches it.
    message = _step_failure(lambda W, p, lr, a: out_step(W, p, 0.1, a), "completion")
    assert _only_cause(message) == "lr is ignored: the update is the same at lr=0.1 and lr=0.037"


def test_a_middle_layer_not_updated_is_named():
    def frozen_middle(layers, problem, lr, alpha):
        new = out_step(layers, problem, lr, alpha)
        if len(layers) > 2:
            new[1] = layers[1].copy()
        return new
    message = _step_failure(frozen_middle, "factorization")
    L = len(re.search(r"dims=\(([^)]*)\)", message).group(1).split(",")) - 1
    assert _only_cause(message) == f"layer {L - 1} is not updated (W_{L - 1} comes back unchanged)"


def sequential_step(layers, problem, lr, alpha):
    """out_step moving W_1 first, then W_2 from the moved W_1, and so on (output first: from the end)."""
    layers = list(layers)
    L = len(layers)
    for k in reversed(range(L)):
        X = chain(layers, layers[0].shape[0], layers[0].dtype)
        g = out_backward(layers, loss_gradient(problem, X))[k]
        layers[k] = layers[k] - lr * (alpha if k in (0, L - 1) else 1.0) * g
    return layers


def test_sequential_updates_are_named():
    assert _only_cause(_step_failure(sequential_step, "completion")).startswith(
        "sequential updates: each layer's gradient is taken after the layers before it moved (W_1 first)")


def test_reversed_and_transposed_steps_are_named():
    assert _only_cause(_step_failure(lambda W, p, lr, a: out_step(W, p, lr, a)[::-1], "factorization")) == (
        "the layers come back in reverse order (the other layout's)")

    def transposed(layers, problem, lr, alpha):
        return [W - (W - N).T for W, N in zip(layers, out_step(layers, problem, lr, alpha))]
    # Square layers: elsewhere the transposed update cannot even be subtracted, and the error is reported.
    message = check_step(transposed, Case("factorization", (3, 3, 3), 0, 0), layout="output_first")
    assert _only_cause(message) == "each layer's gradient is transposed (W_l - step dW_l^T)"
    message = _step_failure(transposed, "factorization")
    assert "your function raised ValueError" in message


def test_float32_step_claimed_as_float64_is_named():
    def in_float32(layers, problem, lr, alpha):
        return [w.astype(np.float64) for w in out_step([w.astype(np.float32) for w in layers], problem, lr, alpha)]
    message = _step_failure(in_float32, "completion")
    assert _only_cause(message).startswith("float32 rounding: the step agrees with dlnref only to float32 precision")
    kit.assert_step_matches(in_float32, "completion", layout="output_first", dtype=np.float32)


def test_a_fixed_alpha_equal_to_a_factor_is_told_apart_on_a_deeper_case():
    # At alpha = 2 on one layer, "alpha missing" and "an extra 1/2" give the same numbers; the second case,
    # three layers deep, tells them apart.
    case = Case("factorization", (3, 4), 0, 0)
    message = check_step(lambda W, p, lr, a: out_step(W, p, lr, 1.0), case, outer_lr_scale=2.0, layout="output_first")
    assert _only_cause(message) == "the discrepant rate alpha is missing: every layer takes lr"


@pytest.mark.parametrize("backward_fn, layout, cause", [
    (lambda W, G: out_backward(W, G)[::-1], "output_first", "the layers come back in reverse order (the other "
                                                            "layout's)"),
    (lambda W, G: [g.T for g in out_backward(W, G)], "output_first", "each layer comes back transposed"),
    (lambda W, G: [-g for g in out_backward(W, G)], "output_first", "the sign is flipped: every gradient comes back "
                                                                    "negated"),
    (out_backward, "input_first", "your function reads the layers in the other order: pass layout='output_first'"),
    (lambda W, G: [g / 2 for g in out_backward(W, G)], "output_first", "every gradient is 0.5 times dlnref's"),
    (lambda W, G: [g if k != 1 else 0 * g for k, g in enumerate(out_backward(W, G))], "output_first",
     "layer 2's gradient comes back as zeros"),
], ids=["reversed", "transposed", "sign", "layout", "half", "one-zero"])
def test_backward_causes_are_named(backward_fn, layout, cause):
    assert _only_cause(check_backward(backward_fn, Case("backward", (3, 3, 3, 3), 1, 2), layout=layout)) == cause


def test_backward_search_names_the_cause_on_the_smallest_case():
    message = _failure(lambda: kit.assert_backward_matches(lambda W, G: out_backward(W, G)[::-1],
                                                           layout="output_first"))
    assert _only_cause(message) == "the layers come back in reverse order (the other layout's)"
    assert "dims=(2, 2, 2)" in message


def test_float32_backward_claimed_as_float64_is_named():
    def in_float32(W, G):
        return [g.astype(np.float64) for g in out_backward([w.astype(np.float32) for w in W], G.astype(np.float32))]
    kit.assert_backward_matches(in_float32, layout="output_first", dtype=np.float32)
    message = _failure(lambda: kit.assert_backward_matches(in_float32, layout="output_first", dtype=np.float64))
    assert _only_cause(message).startswith("float32 rounding")


def test_wrong_product_order_raising_on_chained_shapes_is_reported():
    def wrong_order(layers, G):  # above as W_{l+1} ... W_L instead of W_L ... W_{l+1}
        return [chain(layers[:k][::-1], layers[0].shape[0], G.dtype).T @ G
                @ chain(layers[k + 1:], layers[k].shape[1], G.dtype).T for k in range(len(layers))]
    message = check_backward(wrong_order, Case("backward", (2, 3, 4, 5), 0, 0), layout="output_first")
    assert "your function raised ValueError" in message
    assert "Likely cause: the error above, raised by your function on this case." in message
    assert "these widths (2, 3, 4, 5) chain different shapes: a product in the wrong order fails here" in message


def _placed(which):
    """out_step with alpha on W_1 only ("first"), on W_L only ("last") or on every layer."""
    def step(layers, problem, lr, alpha):
        L = len(layers)  # output first
        scales = {"first": [1.0] * (L - 1) + [alpha], "last": [alpha] + [1.0] * (L - 1), "every": [alpha] * L}[which]
        X = chain(layers, layers[0].shape[0], layers[0].dtype)
        return [W - lr * s * g for W, s, g in zip(layers, scales, out_backward(layers, loss_gradient(problem, X)))]
    return step


# (smallest depth at which the cause differs from dlnref's step, wrong step, words its only explanation holds)
WRONG_STEPS = [
    (1, lambda W, p, lr, a: [w.copy() for w in W], "zero update"),
    (1, lambda W, p, lr, a: out_step(W, p, -lr, a), "the sign is flipped"),
    (1, lambda W, p, lr, a: out_step(W, p, 0.05, a), "lr is ignored"),
    (1, lambda W, p, lr, a: out_step(W, p, lr**2, a), "lr is rescaled: the update grows as lr^2"),
    (1, lambda W, p, lr, a: out_step(W, p, lr, 1.0), "the discrepant rate alpha is missing"),
    (2, _placed("first"), "alpha is applied to W_1 only"),
    (2, _placed("last"), "alpha is applied to W_L only"),
    (3, _placed("every"), "alpha is applied to every layer"),
    (3, lambda W, p, lr, a: [n if k != 1 else w.copy() for k, (n, w) in enumerate(zip(out_step(W, p, lr, a), W))],
     "is not updated"),
    (1, lambda W, p, lr, a: [x.astype(np.float64) for x in out_step([w.astype(np.float32) for w in W], p, lr, a)],
     "float32 rounding"),
    (2, sequential_step, "sequential updates: each layer's gradient is taken after the layers before it moved"),
    (1, lambda W, p, lr, a: _with_gradient(lambda p, X: 2 * loss_gradient(p, X))(W, p, lr, 1.0),
     "the discrepant rate alpha is missing: every layer takes lr; and your loss is"),
]


@given(problem_cases(max_inner_layers=3))
def test_every_cause_is_named_alone_on_any_drawn_case(case):
    # Not only on the smallest case: on every case the strategy draws, each mistake gets one explanation.
    for depth, step, words in WRONG_STEPS:
        if len(case.dims) - 1 >= depth:
            message = check_step(step, case, layout="output_first")
            assert words in _only_cause(message), message


# --- Messages, cases and usage ---------------------------------------------------------------------------------
def test_failure_message_rebuilds_its_case():
    def no_alpha(W, p, lr, a):
        return out_step(W, p, lr, 1.0)
    message = _step_failure(no_alpha, "sensing")
    for needle in ("sensing", "dims=(", "weight_seed=", "problem_seed=", "lr=0.1", "alpha=", "dtype float64"):
        assert needle in message
    line = next(l for l in message.splitlines() if l.startswith("Rebuild the case: "))
    namespace = {}
    exec(line[len("Rebuild the case: "):], namespace)
    weights, problem = namespace["weights"], namespace["problem"]
    # The rebuilt arrays give the same report when checked by hand.
    X = reduce(lambda acc, W: W @ acc, weights)
    new = no_alpha(weights[::-1], problem, 0.1, None)[::-1]
    grads = in_backward(weights, loss_gradient(problem, X))
    np.testing.assert_allclose([np.abs(n - w).max() for n, w in zip(new, weights)],
                               [0.1 * np.abs(g).max() for g in grads], rtol=1e-12)
    assert "layer 1 (1 = input side): max abs difference" in message


@given(problem_cases(max_inner_layers=2))
def test_drawn_cases_keep_the_collision_rules(case):
    weights, problem = case.build()
    factors = [1.0] + [f.value for f in normalisation_factors(problem)]
    alpha = case_alpha(problem)
    assert factors_distinct(normalisation_factors(problem)) and alpha not in (1.0, 2.0, 0.5)
    assert all(abs(alpha - a / b) > 1e-3 * alpha for a in factors for b in factors)
    if problem.name == "completion":
        assert 3 <= problem.observed < problem.shape[0] * problem.shape[1]
    if problem.name == "sensing":
        assert problem.operators.shape[0] >= 3


def test_trajectory_lr_outside_the_safe_range_is_a_usage_error():
    high = trajectory_lr_range("sensing", 20, 5.0)[1]
    with pytest.raises(ValueError, match="usage error, not a failure of your code"):
        kit.assert_trajectory_matches(out_train, "sensing", lr=2 * high, outer_lr_scale=5.0, layout="output_first")


def test_trajectory_mismatch_names_the_step():
    def off(layers, problem, lr, alpha, steps):
        return out_train(layers, problem, lr * 1.001, alpha, steps)
    message = _failure(lambda: kit.assert_trajectory_matches(off, "factorization", steps=5, layout="output_first"))
    assert "first at step 1" in message and "Rebuild the case: import dlnref.oracle; weights, problem" in message


def test_trajectory_names_the_cause_of_a_wrong_first_step():
    def no_alpha(layers, problem, lr, alpha, steps):
        return out_train(layers, problem, lr, 1.0, steps)
    message = _failure(lambda: kit.assert_trajectory_matches(no_alpha, "completion", steps=5, layout="output_first"))
    assert "first at step 1" in message
    assert _only_cause(message) == "the discrepant rate alpha is missing: every layer takes lr"


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="layout must be one of"):
        kit.assert_backward_matches(out_backward, layout="reversed")
    with pytest.raises(ValueError, match="problem must be one of"):
        kit.assert_step_matches(out_step, "regression")


def test_testing_is_the_same_face():
    assert testing.assert_step_matches is kit.assert_step_matches and testing.layer_dims is kit.layer_dims
    assert check_backward(out_backward, Case("backward", (2, 3, 4), 0, 1), layout="output_first") is None
