"""The oracle kit's bug signatures and declared conventions: each signature written into a NumPy client must be
named, and confirmed on a second case; an unknown bug gives what was measured; a correct client passes under each
declared loss convention without lr glue."""

import re

import numpy as np
import pytest
from test_oracle import chain, loss_gradient, out_backward, out_step, out_train

import dlnref.oracle as kit
from dlnref.errors import InputError
from dlnref.oracle.cases import Case
from dlnref.oracle.checks import check_backward, check_step, check_trajectory, trajectory_lr_range
from dlnref.oracle.conventions import CONVENTIONS, parse_depths, to_numpy


def _failure(call):
    with pytest.raises(AssertionError) as info:
        call()
    return str(info.value)


def _cause(message):
    """The cause line of a report (single explanation), and that it was confirmed on a second case."""
    line = next((l for l in message.splitlines() if l.startswith("Likely cause")), None)
    assert line is not None and line.startswith("Likely cause: "), message
    assert "Confirmed on a second case: " in message, message
    confirmed = re.search(r"Confirmed on a second case: \w+, dims=\(([^)]*)\)", message).group(1)
    assert len(confirmed.split(",")) - 1 >= 3, message   # depth >= 3
    return line[len("Likely cause: "):].rstrip(".")


def _scaled_step(gradient=None, scales=None, decay=0.0, clip=None, norm=None):
    """An output-first step: ``gradient(problem, X)`` for dLoss/dX, per-layer ``scales(L, alpha)``, weight decay,
    clipping of the whole gradient to the norm ``clip``, or a step normalised by ``norm(grads)``."""
    def step(layers, problem, lr, alpha):
        X = chain(layers, layers[0].shape[0], layers[0].dtype)
        G = (gradient or (lambda p, X: loss_gradient(p, X)))(problem, X)
        grads = out_backward(layers, G)
        L = len(layers)
        s = scales(L, alpha) if scales else [alpha if k in (0, L - 1) else 1.0 for k in range(L)]
        total = np.sqrt(sum(np.sum(g * g) for g in grads))
        if clip is not None and total > clip:
            grads = [g * clip / total for g in grads]
        if norm is not None:
            grads = [g * norm(grads) for g in grads]
        return [W - lr * si * (g + decay * W) for W, si, g in zip(layers, s, grads)]
    return step


def _step_cause(step, kind, **kwargs):
    return _cause(_failure(lambda: kit.assert_step_matches(step, kind, layout="output_first", max_examples=10,
                                                           **kwargs)))


# --- step signatures ------------------------------------------------------------------------------------------------
def test_weight_decay_is_named_with_its_coefficient():
    assert "weight decay: the step also subtracts lr c W_l with c = 0.001" in _step_cause(
        _scaled_step(decay=1e-3), "factorization")


def test_a_forgotten_completion_mask_is_named():
    unmasked = _scaled_step(lambda p, X: (X - p.target) / p.mask.sum())
    assert _step_cause(unmasked, "completion") == ("the completion mask is forgotten: the loss takes the residual on "
                                                   "every entry, not only the observed ones")


def test_alpha_on_the_middle_layers_is_not_read_as_alpha_missing():
    middle = _scaled_step(scales=lambda L, a: [1.0 if k in (0, L - 1) else a for k in range(L)])
    # A two-layer case fails first, where "missing" and "middle" give the same numbers: the deeper second case
    # tells them apart.
    message = _failure(lambda: kit.assert_step_matches(middle, "completion", layout="output_first",
                                                      max_examples=10, depths=range(2, 5)))
    assert _cause(message) == "alpha is applied to the middle layers, not to W_1 and W_L"


def test_clipping_is_named_with_its_norm():
    cause = _step_cause(_scaled_step(clip=0.01), "completion")
    assert cause.startswith("the update is scaled by a factor set by the gradient's norm: the gradient is clipped to "
                            "the norm tau = 0.01 ")


def test_a_count_of_another_mask_is_named():
    cached = {}

    def gradient(p, X):
        count = cached.setdefault("observed", 11)   # |Omega| of another problem's mask
        return np.where(p.mask, X - p.target, 0) / count
    cause = _step_cause(_scaled_step(gradient), "completion")
    assert cause.startswith("your loss divides by 11 on both cases"), cause
    assert "(|Omega| of another mask, cached?)" in cause


def test_a_transposed_sensing_operator_is_named_on_square_layers():
    def gradient(p, X):
        A = np.transpose(p.operators, (0, 2, 1))   # <A_i^T, X>: runs on square matrices only
        r = np.einsum("kij,ij->k", A, X) - p.y
        return np.einsum("k,kij->ij", r, A)
    message = _failure(lambda: kit.assert_step_matches(_scaled_step(gradient), "sensing", layout="output_first",
                                                      max_examples=10))
    assert _cause(message) == ("the sensing operator is transposed: the loss measures X with A_i^T (or, on a "
                               "non-square X, A_i read in column-major order) (B), y = A(M)")


def test_a_factor_that_no_known_cause_explains_gives_the_measured_factors():
    # Each layer's update plus a fixed matrix of ones: no multiple of dlnref's, and no known signature.
    def odd(layers, problem, lr, alpha):
        return [n - 1e-3 * np.ones_like(n) for n in out_step(layers, problem, lr, alpha)]
    message = _failure(lambda: kit.assert_step_matches(odd, "factorization", layout="output_first", max_examples=5))
    assert "No known cause fits: your update over dlnref's, per layer, at lr=0.1: W_1: " in message
    assert "Likely cause" not in message


def test_a_normalised_step_reads_the_same_in_the_step_and_the_trajectory_check():
    # A GroupRMSprop-like first step: the gradient divided by its root mean square over all parameters.
    def rms(grads):
        return 1 / np.sqrt(np.mean(np.concatenate([g.ravel() for g in grads]) ** 2))
    step = _scaled_step(norm=rms)

    def train(layers, problem, lr, alpha, steps):
        out = [chain(layers, layers[0].shape[0], layers[0].dtype)]
        for _ in range(steps):
            layers = step(layers, problem, lr, alpha)
            out.append(chain(layers, layers[0].shape[0], layers[0].dtype))
        return out
    case = Case("factorization", (3, 4, 2), 1, 2)
    step_message = check_step(step, case, layout="output_first")
    lr = trajectory_lr_range("factorization", 5, None)[1] / 2
    trajectory_message = check_trajectory(train, case, steps=5, lr=lr, layout="output_first")
    for message in (step_message, trajectory_message):
        assert "No known cause fits" in message and "lr is" not in message, message
    factor = re.search(r"W_1: ([0-9.e+-]+)", step_message).group(1)
    assert f"factor {factor} on every layer" in trajectory_message, (step_message, trajectory_message)


# --- backward signatures -----------------------------------------------------------------------------------------
def _backward_with(form):
    def backward(layers, G):
        grads = []
        for k in range(len(layers)):
            above = chain(layers[:k], layers[0].shape[0], G.dtype)
            below = chain(layers[k + 1:], layers[k].shape[1], G.dtype)
            grads.append(form(above, G, below))
        return grads
    return backward


def test_a_missing_transpose_in_the_backward_pass_is_named_on_square_layers():
    message = _failure(lambda: kit.assert_backward_matches(_backward_with(lambda a, G, b: a.T @ G @ b),
                                                           layout="output_first"))
    assert _cause(message) == (
        "one transpose is missing in the backward pass: the product below the layer is not transposed: "
        "(W_L ... W_{l+1})^T G (W_{l-1} ... W_1)")


def test_backward_products_shifted_by_one_layer_are_named():
    def shifted(layers, G):
        grads = []
        for k in range(len(layers)):
            above = chain(layers[:k + 1], layers[0].shape[0], G.dtype)                     # W_L ... W_l
            below = chain(layers[k + 2:], layers[min(k + 1, len(layers) - 1)].shape[1], G.dtype)
            grads.append(above.T @ G @ below.T)
        return grads
    message = _failure(lambda: kit.assert_backward_matches(shifted, layout="output_first"))
    assert "the backward products are shifted by one layer: layer l's gradient uses the products of layer l-1" \
        in message


# --- trajectory signatures ---------------------------------------------------------------------------------------
def _train(step_at):
    """An output-first run whose step t is ``step_at(t, layers, problem, lr, alpha, memory)``."""
    def train(layers, problem, lr, alpha, steps):
        memory = {}
        out = [chain(layers, layers[0].shape[0], layers[0].dtype)]
        for t in range(steps):
            layers = step_at(t, layers, problem, lr, alpha, memory)
            out.append(chain(layers, layers[0].shape[0], layers[0].dtype))
        return out
    return train


def _grads(layers, problem, G=None):
    X = chain(layers, layers[0].shape[0], layers[0].dtype)
    return out_backward(layers, loss_gradient(problem, X) if G is None else G)


def _rates(L, alpha):
    return [alpha if k in (0, L - 1) else 1.0 for k in range(L)]


def momentum(t, layers, problem, lr, alpha, memory):
    grads = _grads(layers, problem)
    v = memory["v"] = grads if "v" not in memory else [0.9 * v + g for v, g in zip(memory["v"], grads)]
    return [W - lr * s * u for W, s, u in zip(layers, _rates(len(layers), alpha), v)]


def decayed(t, layers, problem, lr, alpha, memory):
    return out_step(layers, problem, lr * 0.95**t, alpha)


def stale(t, layers, problem, lr, alpha, memory):
    G = loss_gradient(problem, chain(layers, layers[0].shape[0], layers[0].dtype))
    used = memory.get("G", G)
    memory["G"] = G
    return [W - lr * s * g for W, s, g in zip(layers, _rates(len(layers), alpha), _grads(layers, problem, used))]


@pytest.mark.parametrize("step_at, cause", [
    (momentum, "SGD momentum beta = 0.9: each step adds beta times the previous update"),
    (decayed, "the step size decays: step t uses lr gamma^t with gamma = 0.95"),
    (stale, "a stale gradient: each step back-propagates the previous step's dLoss/dX"),
], ids=["momentum", "lr-decay", "stale"])
def test_state_carried_between_steps_is_named(step_at, cause):
    message = _failure(lambda: kit.assert_trajectory_matches(_train(step_at), "completion", steps=5,
                                                            layout="output_first", max_examples=5))
    assert _cause(message).startswith(cause), message


def test_weight_decay_is_named_from_the_first_step_of_a_trajectory():
    step = _scaled_step(decay=1e-3)
    message = _failure(lambda: kit.assert_trajectory_matches(_train(lambda t, W, p, lr, a, m: step(W, p, lr, a)),
                                                            "factorization", steps=5, layout="output_first",
                                                            max_examples=5))
    assert "weight decay: the step also subtracts lr c W_l with c = 0.001" in _cause(message)


def test_an_x_returned_transposed_is_named():
    def transposed(layers, problem, lr, alpha, steps):
        return [X.T for X in out_train(layers, problem, lr, alpha, steps)]
    message = _failure(lambda: kit.assert_trajectory_matches(transposed, "completion", steps=5,
                                                            layout="output_first", max_examples=5))
    assert "each X_t comes back transposed" in message and "layer order" not in message


def test_an_x_not_copied_is_told_to_copy():
    def aliased(layers, problem, lr, alpha, steps):   # a one-layer model returns its parameter, updated in place
        layers = [W.copy() for W in layers]
        out = []
        for _ in range(steps + 1):
            out.append(layers[0] if len(layers) == 1 else chain(layers, layers[0].shape[0], layers[0].dtype))
            new = out_step(layers, problem, lr, alpha)
            for W, N in zip(layers, new):
                W[...] = N
        return out
    message = _failure(lambda: kit.assert_trajectory_matches(aliased, "factorization", steps=5,
                                                            layout="output_first", max_examples=5))
    assert "Append a copy of each X_t" in message and "layer order" not in message


# --- declared conventions ------------------------------------------------------------------------------------------
def convention_gradient(name):
    """dLoss/dX of each loss convention, written out per problem (independent of the kit's formulas)."""
    def gradient(p, X):
        if p.name == "completion":
            r = np.where(p.mask, X - p.target, 0)
            terms = p.mask.sum()
        elif p.name == "factorization":
            r, terms = X - p.target, X.size
        else:
            A = p.operators
            res = np.einsum("kij,ij->k", A, X) - p.y
            r, terms = np.einsum("k,kij->ij", res, A), len(A)
        dlnref = {"completion": p.mask.sum() if p.name == "completion" else 1, "factorization": X.size,
                  "sensing": 1}[p.name]
        divisor = {"dlnref": dlnref, "sum": 0.5, "half_sum": 1, "mean": terms / 2, "half_mean": terms,
                   "mean_all": X.size / 2, "half_mean_all": X.size}[name]
        return r / divisor
    return gradient


@pytest.mark.parametrize("loss", sorted(CONVENTIONS))
def test_a_correct_client_passes_under_its_declared_loss(loss):
    step = _scaled_step(convention_gradient(loss))
    assert kit.assert_step_matches(step, None, layout="output_first", loss=loss, max_examples=6) is None


@pytest.mark.parametrize("loss", ["sum", "half_mean", "mean_all"])
def test_the_loss_convention_is_inferred_and_reported(loss):
    note = kit.assert_step_matches(_scaled_step(convention_gradient(loss)), None, layout="output_first",
                                   loss="infer", max_examples=4)
    assert f"(loss={loss!r}): the same on all 24 cases; passes under that convention" in note


def test_a_trajectory_passes_under_its_declared_loss():
    step = _scaled_step(convention_gradient("sum"))
    train = _train(lambda t, W, p, lr, a, m: step(W, p, lr, a))
    assert kit.assert_trajectory_matches(train, None, steps=5, layout="output_first", loss="sum",
                                         max_examples=4) is None


def test_cases_stay_within_the_declared_depths():
    seen = set()

    def step(layers, problem, lr, alpha):
        seen.add(len(layers))
        if len(layers) < 2:
            raise ValueError("this code needs two layers or more")
        return out_step(layers, problem, lr, alpha) if len(layers) < 4 else [W.copy() for W in layers]
    message = _failure(lambda: kit.assert_step_matches(step, "completion", layout="output_first", max_examples=20,
                                                      depths=range(2, 5)))
    assert seen <= {2, 3, 4} and 4 in seen
    assert re.search(r"on case completion, dims=\((\d+, ){4}\d+\)", message), message   # shrunk to depth 4
    assert parse_depths("2-4") == (2, 3, 4) and parse_depths("2,5") == (2, 5)
    with pytest.raises(InputError, match="depths is empty"):
        kit.assert_step_matches(step, "completion", depths=range(5, 2))



def test_an_error_on_an_undeclared_depth_says_how_to_declare_the_depths():
    """Code that cannot build one layer (the official code's optax labels) fails on the smallest case, L = 1."""
    def step(layers, problem, lr, alpha):
        if len(layers) < 2:
            raise ValueError("pytree structure error: different lengths of list")
        return out_step(layers, problem, lr, alpha)
    message = _failure(lambda: kit.assert_step_matches(step, "completion", layout="output_first", max_examples=20))
    assert "this case has L = 1 layer: if your code does not support that depth" in message, message
    assert "depths=range(2, 5)" in message
    assert kit.assert_step_matches(step, "completion", layout="output_first", max_examples=20,
                                   depths=range(2, 5)) is None

class FakeTensor:
    """What a torch Parameter looks like to the kit: detach().cpu().numpy(), and no __array__ while it needs grad."""

    def __init__(self, array):
        self.array = array

    def __array__(self, *args, **kwargs):
        raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self.array


def test_tensors_that_require_grad_are_accepted():
    np.testing.assert_array_equal(to_numpy(FakeTensor(np.eye(2))), np.eye(2))
    kit.assert_step_matches(lambda W, p, lr, a: [FakeTensor(n) for n in out_step(W, p, lr, a)], "sensing",
                            layout="output_first", max_examples=5)


def test_the_shape_hint_is_only_given_for_shape_errors():
    def raises(layers, G):
        raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
    message = check_backward(raises, Case("backward", (2, 3, 4), 0, 0), layout="output_first")
    assert "your function raised RuntimeError: Can't call numpy()" in message
    assert "chain different shapes" not in message


def early_decay(t, layers, problem, lr, alpha, memory):
    return out_step(layers, problem, lr * 0.9**(t + 1), alpha)


def test_a_step_size_decayed_from_the_first_step_is_no_constant_factor():
    message = _failure(lambda: kit.assert_trajectory_matches(_train(early_decay), "sensing", steps=5,
                                                            layout="output_first", max_examples=5))
    assert _cause(message) == "the step size decays from the first step: step t uses lr gamma^(t+1) with gamma = 0.9"


def test_each_layer_clipped_separately_is_named():
    def step(layers, problem, lr, alpha):
        X = chain(layers, layers[0].shape[0], layers[0].dtype)
        grads = [g * min(1.0, 0.02 / np.linalg.norm(g)) for g in out_backward(layers, loss_gradient(problem, X))]
        L = len(layers)
        return [W - lr * (alpha if k in (0, L - 1) else 1.0) * g for k, (W, g) in enumerate(zip(layers, grads))]
    assert _step_cause(step, "factorization") == "each layer's gradient is clipped to the norm tau = 0.02 separately"


def test_inferring_the_loss_of_a_count_from_another_mask_fails_and_says_why():
    cached = {}

    def gradient(p, X):
        return np.where(p.mask, X - p.target, 0) / cached.setdefault("observed", p.mask.sum())
    message = _failure(lambda: kit.assert_step_matches(_scaled_step(gradient), "completion", layout="output_first",
                                                      loss="infer", max_examples=4))
    assert "loss='infer': the factor differs between cases" in message


def accumulated(t, layers, problem, lr, alpha, memory):
    """Gradients summed over the steps, never zeroed (zero_grad forgotten)."""
    grads = _grads(layers, problem)
    total = memory["sum"] = grads if "sum" not in memory else [a + g for a, g in zip(memory["sum"], grads)]
    return [W - lr * s * u for W, s, u in zip(layers, _rates(len(layers), alpha), total)]


def test_gradients_never_zeroed_read_as_momentum_one():
    message = _failure(lambda: kit.assert_trajectory_matches(_train(accumulated), "factorization", steps=5,
                                                            layout="output_first", max_examples=5))
    assert "the gradients accumulate: are they zeroed between steps" in _cause(message)


def test_a_step_returning_nan_is_reported_without_a_crash():
    message = _failure(lambda: kit.assert_step_matches(lambda W, p, lr, a: [np.full_like(w, np.nan) for w in W],
                                                      "completion", max_examples=3))
    assert "No known cause fits" in message


def test_an_inferred_loss_does_not_hide_another_bug():
    step = _scaled_step(convention_gradient("half_sum"), decay=1e-4)
    message = _failure(lambda: kit.assert_step_matches(step, "sensing", layout="output_first", loss="infer",
                                                      max_examples=5))
    assert "weight decay: the step also subtracts lr c W_l with c = 0.0001" in _cause(message)
    assert "(loss inferred: your loss comes nearest to dlnref's S/(2 N) (loss='dlnref'): exact on 0 of 8 cases" \
        in message   # for sensing, dlnref's loss is the half sum


def test_a_float32_trajectory_checked_as_float64_is_named():
    def in_float32(layers, problem, lr, alpha, steps):
        return [x.astype(np.float64) for x in out_train([w.astype(np.float32) for w in layers], problem, lr, alpha,
                                                        steps)]
    message = _failure(lambda: kit.assert_trajectory_matches(in_float32, "completion", steps=5,
                                                            layout="output_first", max_examples=5))
    assert "Likely cause: float32 rounding: every X_t agrees with dlnref only to float32 precision" in message
    kit.assert_trajectory_matches(in_float32, "completion", steps=5, layout="output_first", dtype=np.float32,
                                  max_examples=5)


def stale_layers(t, layers, problem, lr, alpha, memory):
    grads = _grads(layers, problem)
    used = memory.get("grads", grads)
    memory["grads"] = grads
    return [W - lr * s * g for W, s, g in zip(layers, _rates(len(layers), alpha), used)]


def test_stale_layer_gradients_are_named():
    message = _failure(lambda: kit.assert_trajectory_matches(_train(stale_layers), "sensing", steps=5,
                                                            layout="output_first", max_examples=5))
    assert _cause(message).startswith("a stale gradient: each step uses the previous step's layer gradients")


def test_a_sensing_operator_read_in_column_major_order_is_named_on_any_shape():
    def gradient(p, X):   # X flattened column-major against operators flattened row-major, y remeasured so
        k, m, n = p.operators.shape
        A = p.operators.reshape(k, -1)
        r = A @ X.flatten(order="F") - A @ p.target.flatten(order="F")
        return (A.T @ r).reshape(n, m).T
    cause = _step_cause(_scaled_step(gradient), "sensing")
    assert cause == ("the sensing operator is transposed: the loss measures X with A_i^T (or, on a non-square X, A_i "
                     "read in column-major order) (B), y = B(M)")


def test_weight_decay_outside_the_rates_is_named():
    def step(layers, problem, lr, alpha):   # decoupled: W <- W - lr s_l g_l - lr c W_l
        return [n - lr * 1e-3 * w for n, w in zip(out_step(layers, problem, lr, alpha), layers)]
    assert ("weight decay: the step also subtracts lr c W_l with c = 0.001 (on every layer alike, outside alpha's "
            "rate: decoupled)") in _step_cause(step, "completion")


def test_backward_products_shifted_the_other_way_are_named():
    def shifted(layers, G):   # layer l takes the products of layer l+1: W_L ... W_{l+2} and W_l ... W_1
        grads = []
        L = len(layers)
        for k in range(L):
            above = chain(layers[:max(k - 1, 0)], layers[0].shape[0], G.dtype)
            below = chain(layers[k:], layers[0].shape[0], G.dtype) if k > 0 else chain(layers, layers[-1].shape[1],
                                                                                       G.dtype)
            grads.append(above.T @ G @ below.T)
        return grads
    message = _failure(lambda: kit.assert_backward_matches(shifted, layout="output_first"))
    assert "the backward products are shifted by one layer: layer l's gradient uses the products of layer l+1" \
        in message, message


def nesterov(t, layers, problem, lr, alpha, memory):
    grads = _grads(layers, problem)
    v = memory["v"] = grads if "v" not in memory else [0.9 * v + g for v, g in zip(memory["v"], grads)]
    return [W - lr * s * (g + 0.9 * u) for W, s, g, u in zip(layers, _rates(len(layers), alpha), grads, v)]


def halved_every_three(t, layers, problem, lr, alpha, memory):
    return out_step(layers, problem, lr * 0.5 ** (t // 3), alpha)


@pytest.mark.parametrize("step_at, cause", [
    (nesterov, "Nesterov momentum beta = 0.9: each step moves by g_t + beta v_t"),
    (halved_every_three, "a step schedule: the step size is multiplied by 0.5 every 3 steps"),
], ids=["nesterov", "step-schedule"])
def test_nesterov_and_step_schedules_are_named(step_at, cause):
    message = _failure(lambda: kit.assert_trajectory_matches(_train(step_at), "completion", steps=8,
                                                            layout="output_first", max_examples=5))
    assert _cause(message).startswith(cause), message
