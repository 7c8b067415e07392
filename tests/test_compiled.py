"""The compiled step (dlnref.compiled) against the NumPy step, within a rounding bound derived here.

The bound: one gradient-descent step evaluates, for each entry of each new
layer, an expression of sums, differences and products of the inputs (the
weights, the target, the mask weights, the operators, the step sizes), each
operation rounded once. Whatever order the sums add in, the computed value
differs from the exact one by at most ``gamma_K`` times the same expression
evaluated on absolute values with every difference made a sum, where ``K`` is
the most roundings along one path from an input to the result and
``gamma_K = K u / (1 - K u)`` (Higham, *Accuracy and Stability of Numerical
Algorithms*, 2nd ed., sections 3.1-3.5). A matmul of inner size ``k`` puts at
most ``k`` roundings on a path, an element-wise operation one; ``K`` below adds
up every matmul and operation of the step, more than any one path holds. Two
implementations of the step each lie within that bound of the exact step, so
they lie within twice the bound of each other.
"""

import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dlnref
import dlnref.compiled
from dlnref.compiled import compiled_run, unfit_reason
from dlnref.problems import MatrixCompletion, MatrixFactorization, MatrixSensing

pytest.importorskip("numba")


def gamma(K, dtype):
    """``gamma_K = K u / (1 - K u)``, ``u`` the unit roundoff of ``dtype``."""
    u = np.finfo(dtype).eps / 2
    return K * u / (1 - K * u)


def absolute_step(problem, weights, sizes):
    """The step on absolute values, in float64: the new layers' bound terms and the rounding depth ``K``.

    Returns
    -------
    bounds : list of ndarray
        ``|W_l| + lr s_l |dW_l|_abs`` for each layer, where ``|dW_l|_abs`` is back-propagation of the
        absolute gradient through absolute layers.
    residual : ndarray
        ``|X|_abs + |M|``, which bounds the residual's terms.
    loss : float
        The loss's expression on absolute values.
    K : int
        Roundings of the step; the loss adds its sum's (:func:`loss_roundings`).
    """
    W = [np.abs(w.astype(np.float64)) for w in weights]
    M = np.abs(problem.target.astype(np.float64))
    m, n = problem.shape
    depth = len(W)
    prefixes = [W[0]]
    K = 0
    for l in range(1, depth):
        prefixes.append(W[l] @ prefixes[-1])
        K += W[l].shape[1]
    R = prefixes[-1] + M                                                # X - M, one rounding
    K += 1
    if isinstance(problem, MatrixSensing):
        A = np.abs(problem.operators.reshape(problem.measurements, -1).astype(np.float64))
        misfit = A @ prefixes[-1].reshape(-1) + np.abs(problem.y.astype(np.float64))
        G = (misfit @ A).reshape(m, n)
        K += m * n + 1 + problem.measurements
        loss = misfit @ misfit / 2
    elif isinstance(problem, MatrixCompletion):
        G = problem.mask / problem.observed * R
        K += 1
        loss = np.sum(G * R) / 2
    else:
        G = R / (m * n)
        K += 1
        loss = np.sum(R * R) / (2 * m * n)
    grads, D = [None] * depth, G
    for l in range(depth - 1, 0, -1):
        grads[l] = D @ prefixes[l - 1].T                                 # inner size n
        D = W[l].T @ D                                                   # inner size d_l
        K += n + W[l].shape[0]
    grads[0] = D
    K += 2                                                               # W - size * g
    return [w + size * g for w, size, g in zip(W, sizes, grads)], R, loss, K


def loss_roundings(problem):
    """Roundings that the loss adds to the step's: its products, its sum of up to ``max(m n, k)`` terms, the halving."""
    terms = problem.measurements if isinstance(problem, MatrixSensing) else problem.shape[0] * problem.shape[1]
    return terms + 3


def draw_problem(draw, kind, m, n, dtype):
    seed = draw(st.integers(0, 2**16))
    rank = draw(st.integers(1, min(m, n) // 2))   # the spread spectrum needs 2 rank <= min(m, n)
    if kind == "completion":
        problem = MatrixCompletion.synthetic((m, n), rank, seed=seed, fraction=draw(st.floats(0.3, 1.0)))
        if draw(st.booleans()) and problem.observed < m * n:   # a test mask on some unobserved entries
            rng = np.random.default_rng(seed)
            test = ~problem.mask & (rng.random((m, n)) < 0.5)
            if test.any():
                problem = MatrixCompletion(problem.target, problem.mask, test_mask=test)
    elif kind == "sensing":
        problem = MatrixSensing.synthetic((m, n), rank, seed=seed, measurements=draw(st.integers(1, 3 * m * n)))
    else:
        problem = MatrixFactorization.synthetic((m, n), rank, seed=seed)
    if dtype == np.float32:
        problem = problem.astype(np.float32)
    return problem


@st.composite
def cases(draw, dtypes=(np.float64,)):
    """A problem, a wide or compressed network on it, step sizes, and a block size of the compiled step."""
    kind = draw(st.sampled_from(["factorization", "completion", "sensing"]))
    dtype = draw(st.sampled_from(dtypes))
    m, n = draw(st.integers(2, 12)), draw(st.integers(2, 12))
    problem = draw_problem(draw, kind, m, n, dtype)
    depth = draw(st.integers(1, 4))
    network = draw(st.sampled_from(["wide", "compressed"]))
    scale = draw(st.floats(0.1, 1.5))
    if network == "compressed" and depth >= 2:
        weights = dlnref.compress(problem, depth, draw(st.integers(1, min(m, n))), scale)
    else:   # inner widths on both sides of THIN_MAX_WIDTH: the blocked top layer and the whole one
        inner = draw(st.sampled_from([1, 2, max(m, n), dlnref.compiled.THIN_MAX_WIDTH + 3]))
        weights = dlnref.init_weights([n] + [inner] * (depth - 1) + [m], scale, seed=draw(st.integers(0, 99)))
    weights = [w.astype(dtype) for w in weights]
    if draw(st.booleans()):   # Fortran-ordered arrays: the transposed problem, trained by the transposed network
        problem, weights = problem.transposed(), [w.T for w in weights[::-1]]
    lr = draw(st.floats(0.01, 2.0)) / (problem.measurements if kind == "sensing" else 1)
    alpha = draw(st.floats(0.5, 5.0))
    return problem, weights, lr, alpha, draw(st.integers(1, 40))


def assert_one_step_within_the_bound(problem, weights, lr, alpha):
    """One compiled step and one NumPy step from ``weights``: layers, loss and recorded error within the bound."""
    ours = dlnref.gradient_descent(problem, weights, lr, 1, outer_lr_scale=alpha, engine="numba")
    reference = dlnref.gradient_descent(problem, weights, lr, 1, outer_lr_scale=alpha, engine="numpy")
    sizes = dlnref.train.step_sizes(len(weights), lr, alpha)
    bounds, residual, loss, K = absolute_step(problem, weights, sizes)
    dtype = weights[0].dtype
    g = gamma(K, dtype)
    for l, (a, b, bound) in enumerate(zip(ours.weights, reference.weights, bounds)):
        assert a.dtype == b.dtype == dtype and a.shape == b.shape
        difference = np.abs(a.astype(np.float64) - b.astype(np.float64))
        # 2 gamma_K: both within gamma_K of the exact step; (1 + gamma_K): the rounding of ``bounds`` (positive sums)
        assert np.all(difference <= 2 * g * (1 + g) * bound), f"layer {l + 1}"
    g = gamma(K + loss_roundings(problem), dtype)
    assert abs(ours.history["loss"][0] - reference.history["loss"][0]) <= 2 * g * (1 + g) * loss
    # the recorded error ||R||_F / ||M||_F: R within gamma_K |R|_abs, and the norm's own sum of m n squares and root
    g = gamma(K + problem.shape[0] * problem.shape[1] + 4, dtype)
    target_norm = np.linalg.norm(problem.target.astype(np.float64))
    tolerance = 2 * g * (1 + g) * np.linalg.norm(residual) / target_norm
    assert abs(ours.history["recovery_error"][0] - reference.history["recovery_error"][0]) <= tolerance
    assert ours.history.columns.keys() == reference.history.columns.keys()


@given(case=cases(dtypes=(np.float64, np.float32)))
def test_one_compiled_step_is_the_numpy_step_to_rounding(case):
    problem, weights, lr, alpha, block = case
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dlnref.compiled, "BLOCK_ENTRIES", block)   # many blocks of rows, on small problems
        assert_one_step_within_the_bound(problem, weights, lr, alpha)


def test_the_paper_run_steps_as_numpy_does_all_along():
    """Along the paper's completion run at d = 100 (its blocks of rows as it runs them), both networks."""
    from dlnref.experiments.compare import build, setup

    problem, starts = build(setup("full", "completion"))
    for weights, alpha in starts.values():
        states = dlnref.gradient_descent(problem, weights, 10.0, 300, outer_lr_scale=alpha, record_every=100,
                                         engine="numpy", observe=lambda t, W: {"W": [w.copy() for w in W]})
        for state in states.history["W"]:
            assert_one_step_within_the_bound(problem, state, 10.0, alpha)


@given(case=cases())
def test_records_do_not_change_the_compiled_run(case):
    """Runs of steps between two rows (one compiled call each) give the numbers of one call per step, bit for bit."""
    problem, weights, lr, alpha, block = case
    lr = lr / 4   # stay finite over the run
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dlnref.compiled, "BLOCK_ENTRIES", block)
        every, sparse = (dlnref.gradient_descent(problem, weights, lr, 12, outer_lr_scale=alpha, record_every=every,
                                                 engine="numba") for every in (1, 5))
    for a, b in zip(every.weights, sparse.weights):
        np.testing.assert_array_equal(a, b)
    assert sparse.history["step"] == [0, 5, 10, 12]
    for column in sparse.history.columns:
        if column != "seconds":
            assert sparse.history[column] == [every.history[column][t] for t in (0, 5, 10, 12)]


def test_observed_weights_stay_as_they_were_recorded():
    """The compiled step writes fresh arrays for every recorded state: what ``observe`` kept is never overwritten."""
    problem = dlnref.make_problem("completion", (9, 7), 2, seed=3)
    weights = dlnref.compress(problem, 3, 4, 0.3)
    kept = dlnref.gradient_descent(problem, weights, 1.0, 6, record_every=2, engine="numba",
                                   observe=lambda t, W: {"W": W}).history["W"]
    for t, W in zip((0, 2, 4, 6), kept):
        again = dlnref.gradient_descent(problem, weights, 1.0, t, engine="numba").weights
        for a, b in zip(W, again):
            np.testing.assert_array_equal(a, b)


def test_divergence_is_reported_at_the_first_bad_loss():
    problem = dlnref.make_problem("factorization", (6, 5), 1, seed=0)
    weights = dlnref.init_weights([5, 6, 6, 6], 0.5, seed=1)
    errors = []
    for engine in ("numba", "numpy"):
        with pytest.raises(dlnref.DivergenceError, match=r"at step \d+ \(lr=1e\+06\)") as info:
            dlnref.gradient_descent(problem, weights, 1e6, 100, record_every=50, engine=engine)
        errors.append(info.value)
    assert errors[0].step == errors[1].step < 20


def test_without_numba_the_numpy_step_runs(monkeypatch):
    problem = dlnref.make_problem("completion", (8, 6), 2, seed=0)
    weights = dlnref.compress(problem, 3, 3, 0.3)
    monkeypatch.setitem(sys.modules, "numba", None)   # import numba now fails, as where it is not installed
    assert compiled_run(problem, weights) is None
    fallback = dlnref.gradient_descent(problem, weights, 1.0, 5)
    reference = dlnref.gradient_descent(problem, weights, 1.0, 5, engine="numpy")
    for a, b in zip(fallback.weights, reference.weights):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(dlnref.InputError, match=r"numba is not installed.*dlnref\[fast\]"):
        dlnref.gradient_descent(problem, weights, 1.0, 5, engine="numba")


def test_the_environment_turns_the_compiled_step_off(monkeypatch):
    problem = dlnref.make_problem("factorization", (8, 6), 2, seed=0)
    weights = dlnref.compress(problem, 2, 3, 0.3)
    assert compiled_run(problem, weights) is not None
    monkeypatch.setenv("DLNREF_ENGINE", "numpy")
    assert compiled_run(problem, weights) is None
    assert compiled_run(problem, weights, "numba") is not None   # asked for by name, it runs


class _Subclass(MatrixFactorization):
    """A user's problem built on a dense one: it may change the loss, so the kernel must not assume it."""


@pytest.mark.parametrize("change, reason", [
    (lambda p, w: (_Subclass(p.target), w), "_Subclass"),
    (lambda p, w: (p, [x.astype(np.float32) for x in w]), "float64"),
    (lambda p, w: (p.astype(np.float16), [x.astype(np.float16) for x in w]), "float64"),
    (lambda p, w: (dlnref.make_problem("factorization", (600, 500), 2, seed=0),
                   dlnref.init_weights([500, 4, 600], 0.1)), "the top layer is thin"),
])
def test_the_compiled_step_applies_only_where_it_is_the_same_step(change, reason):
    problem, weights = change(dlnref.make_problem("factorization", (8, 6), 2, seed=0),
                              dlnref.init_weights([6, 4, 8], 0.3))
    assert reason in unfit_reason(problem, weights)
    assert compiled_run(problem, weights) is None
    with pytest.raises(dlnref.InputError, match="engine='numba' cannot run this training"):
        compiled_run(problem, weights, "numba")


def test_wide_networks_on_large_targets_take_the_compiled_step():
    problem = dlnref.make_problem("completion", (600, 500), 2, seed=0)
    assert unfit_reason(problem, dlnref.init_weights([500, 65, 600], 0.1)) is None
    assert unfit_reason(problem, dlnref.init_weights([500, 64, 600], 0.1)) is not None


def test_other_backends_take_the_numpy_step():
    pytest.importorskip("array_api_strict")
    problem = dlnref.make_problem("factorization", (8, 6), 2, seed=0, backend="array_api_strict")
    weights = dlnref.init_weights([6, 4, 8], 0.3, backend="array_api_strict")
    assert "NumPy" in unfit_reason(problem, weights)
    assert dlnref.gradient_descent(problem, weights, 1.0, 3).steps == 3


def test_an_unknown_engine_is_bad_input():
    problem = dlnref.make_problem("factorization", (8, 6), 2, seed=0)
    with pytest.raises(dlnref.InputError, match=r"engine must be one of \('auto', 'numba', 'numpy'\), got 'jax'"):
        dlnref.gradient_descent(problem, dlnref.init_weights([6, 4, 8], 0.3), 1.0, 3, engine="jax")


def test_import_dlnref_does_not_import_numba():
    import subprocess

    code = "import sys, dlnref; print('numba' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
