"""Check another implementation against dlnref: generated cases, and a diagnosis when they differ.

Exposed through :mod:`dlnref.testing`. The user's function gets NumPy arrays
in the requested ``dtype`` and ``layout``, and returns NumPy arrays (wrap a
PyTorch, JAX or C++ function to convert). dlnref's side is computed in
float64 from the very same (rounded) inputs.

Layouts
-------
``"input_first"`` (dlnref's): ``[W_1, ..., W_L]``, ``W_l`` of shape ``(d_l, d_{l-1})``.
``"output_first"``: ``[W_L, ..., W_1]``, the same matrices in reverse order,
as a PyTorch ``nn.Sequential`` of ``nn.Linear`` layers lists them read from
the top. Gradients and updated weights come back in the same layout.

Tolerance rule
--------------
A product of matrices rounds with an error of at most about ``K eps`` times
the product of its factors' norms, for inner dimensions summing to K. So the
gradient of layer l passes when every entry is within

    tol_l = 8 eps K ||W_L ... W_{l+1}||_F ||G||_F ||W_{l-1} ... W_1||_F

with ``eps`` the machine epsilon of ``dtype`` and ``K = d_0 + ... + d_L``; an
update adds ``4 eps max|W_l|`` for the rounding of ``W_l - step``, and a
trajectory allows ``8 eps K (t + 1) max(1, ||X_t||_F)`` on ``X_t`` at step t. In float64 this is within
a few hundred ulps of the answer; float32 is judged by its own eps.
"""

import dataclasses

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .network import backward, end_to_end, prefix_products
from .train import gradient_descent, step_sizes

LAYOUTS = ("input_first", "output_first")


def _check_layout(layout):
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def to_layout(weights, layout):
    """``[W_1, ..., W_L]`` in ``layout`` order (a new list)."""
    _check_layout(layout)
    return list(weights) if layout == "input_first" else list(weights)[::-1]


def from_layout(weights, layout):
    """A list in ``layout`` order back to ``[W_1, ..., W_L]``."""
    return to_layout(weights, layout)


def gradient_tolerances(weights, G, dtype):
    """``tol_l`` of the module's rule for every layer (float64 weights in input-first order)."""
    eps = np.finfo(dtype).eps
    K = weights[0].shape[1] + sum(w.shape[0] for w in weights)
    prefixes = prefix_products(weights)
    below = [1.0] + [np.linalg.norm(p) for p in prefixes[:-1]]
    above, product = [], np.eye(weights[-1].shape[0])
    for w in reversed(weights):
        above.append(np.linalg.norm(product))
        product = product @ w
    above = above[::-1]
    return [8 * eps * K * a * np.linalg.norm(G) * b for a, b in zip(above, below)]


@dataclasses.dataclass
class Mismatch:
    """Where a result differs from dlnref's beyond tolerance (layers count from 1)."""

    layer: int
    max_abs: float
    max_rel: float
    tolerance: float


def first_mismatch(theirs, ours, tolerances):
    """The first layer where ``theirs`` and ``ours`` differ beyond its tolerance, or None.

    A missing or extra layer, or a layer of the wrong shape, counts as an
    infinite difference at that layer.
    """
    if len(theirs) != len(ours):
        return Mismatch(min(len(theirs), len(ours)) + 1, np.inf, np.inf, 0.0)
    for l, (t, o, tol) in enumerate(zip(theirs, ours, tolerances), start=1):
        t = np.asarray(t, dtype=np.float64)
        if t.shape != o.shape:
            return Mismatch(l, np.inf, np.inf, tol)
        diff = np.abs(t - o).max(initial=0.0)
        if not diff <= tol:
            return Mismatch(l, float(diff), float(diff / max(np.abs(o).max(initial=0.0), np.finfo(float).tiny)), tol)
    return None


def _matches(theirs, ours, tolerances):
    return first_mismatch(theirs, ours, tolerances) is None


def _shape_note(theirs, ours):
    for l, (t, o) in enumerate(zip(theirs, ours), start=1):
        if np.shape(t) != o.shape:
            return f"layer {l} came back with shape {np.shape(t)}, expected {o.shape}"
    if len(theirs) != len(ours):
        return f"{len(theirs)} layers came back, expected {len(ours)}"
    return None


def constant_factor(theirs, ours, tolerances):
    """The c with ``theirs = c * ours`` on every layer, when one exists (c != 1), else None."""
    if len(theirs) != len(ours) or any(np.shape(t) != o.shape for t, o in zip(theirs, ours)):
        return None
    t = np.concatenate([np.ravel(x) for x in theirs]).astype(np.float64)
    o = np.concatenate([np.ravel(x) for x in ours])
    norm = o @ o
    if norm == 0:
        return None
    c = (t @ o) / norm
    scaled = [c * x for x in ours]
    if abs(c - 1) > 1e-6 and _matches(theirs, scaled, [max(1.0, abs(c)) * tol for tol in tolerances]):
        return float(c)
    return None


def diagnose(theirs, ours, tolerances, alternatives=(), factor_names=None):
    """The likely cause of a mismatch, found by testing each hypothesis on this case.

    Parameters
    ----------
    theirs : list of array
        The user's result, already mapped back to input-first order.
    ours : list of array
    tolerances : list of float
    alternatives : sequence of (str, list of array)
        Other conventions' results: the cause is named when ``theirs`` matches one.
    factor_names : sequence of (float, str), optional
        Known constant factors (say |Omega| / (m n)) and what each means; all
        that fit the measured factor are named (on a tiny case two can).

    Returns
    -------
    str or None
    """
    if _matches(theirs[::-1], ours, tolerances):
        return "the layers are reversed: the list comes back in the other layout's order"
    transposed = [np.asarray(t).T for t in theirs]
    if _matches(transposed, ours, tolerances):
        return "a transposed gradient: each dW_l comes back as dW_l^T"
    for name, expected in alternatives:
        if _matches(theirs, expected, tolerances):
            return name
    c = constant_factor(theirs, ours, tolerances)
    if c is not None:
        meanings = [meaning for value, meaning in factor_names or () if np.isclose(c, value, rtol=1e-6)]
        return (f"the loss is normalised differently: the result is {c:.6g} times dlnref's on every layer"
                + (f" ({' or '.join(meanings)})" if meanings else ""))
    return _shape_note(theirs, ours)


UNRECOGNISED = ("not recognised (it is none of: reversed layers, a transposed gradient, another loss "
                "normalisation, the discrepant rate on one outer layer)")


def _report(what, case, mismatch, cause, dtype, theirs, ours):
    shapes = _shape_note(theirs, ours)
    return (
        f"{what} differs from dlnref on case {case} (dtype {np.dtype(dtype).name}): layer {mismatch.layer} "
        f"(1 = input side), max abs difference {mismatch.max_abs:.3e}, max relative difference "
        f"{mismatch.max_rel:.3e}, tolerance {mismatch.tolerance:.3e}{'; ' + shapes if shapes else ''}.\n"
        f"Likely cause: {cause or UNRECOGNISED}."
    )


def _run(test, cases, max_examples):
    """Run ``test`` over ``cases`` with hypothesis: derandomized, shrinking to the smallest failing case."""
    settings(max_examples=max_examples, derandomize=True, database=None, deadline=None, print_blob=False,
             suppress_health_check=list(HealthCheck))(given(cases)(test))()


def _random_weights(dims, seed, dtype):
    rng = np.random.default_rng(seed)
    host = [rng.standard_normal((o, i)) / np.sqrt(i) for i, o in zip(dims[:-1], dims[1:])]
    return [w.astype(dtype).astype(np.float64) for w in host]


def _call(fn, weights, layout, dtype, *args):
    out = fn(to_layout([w.astype(dtype) for w in weights], layout), *args)
    return [np.asarray(x) for x in from_layout(list(out), layout)]


def assert_backward_matches(backward_fn, *, layout="input_first", dtype=np.float64, max_examples=50):
    """Check ``backward_fn(weights, G) -> grads`` against :func:`dlnref.backward`.

    Parameters
    ----------
    backward_fn : callable
        Gets the layers in ``layout`` order and ``G = dLoss/dX`` of shape
        ``(d_L, d_0)``, all NumPy arrays of ``dtype``; returns the L
        gradients of ``<G, W_L ... W_1>`` in the same order.
    layout : {"input_first", "output_first"}
    dtype : numpy dtype
        float64 or float32; the tolerance follows it (see the module's rule).
    max_examples : int
        Generated cases (derandomized, so every run checks the same ones).

    Raises
    ------
    AssertionError
        On the smallest failing case, naming its dims and seed, the layer,
        the differences and the likely cause.
    """
    _check_layout(layout)
    from .testing import layer_dims, seeds

    def test(case):
        dims, seed = case
        weights = _random_weights(dims, seed, dtype)
        G = np.random.default_rng(seed + 1).standard_normal((dims[-1], dims[0])).astype(dtype).astype(np.float64)
        ours = backward(weights, G)
        theirs = _call(backward_fn, weights, layout, dtype, G.astype(dtype))
        tolerances = gradient_tolerances(weights, G, dtype)
        mismatch = first_mismatch(theirs, ours, tolerances)
        if mismatch is not None:
            raise AssertionError(_report("backward", f"dims={dims}, seed={seed}", mismatch,
                                         diagnose(theirs, ours, tolerances), dtype, theirs, ours))

    _run(test, st.tuples(layer_dims(min_depth=1, max_depth=4, min_width=1, max_width=6), seeds), max_examples)


def _problem_cases(problem, max_inner_layers):
    """Strategy of (problem, inner widths, seed): a network of 1 + len(inner) layers fitting the problem."""
    from . import testing

    inner = st.lists(st.integers(1, 5), min_size=0, max_size=max_inner_layers)
    return st.tuples(_problems(problem), inner, testing.seeds)


def _unpack(case, dtype):
    """``(problem, dims, seed, weights)`` of a case drawn from :func:`_problem_cases`."""
    prob, inner, seed = case
    m, n = prob.shape
    dims = (n, *inner, m)
    return prob, dims, seed, _random_weights(dims, seed, dtype)


def _problems(problem):
    from . import testing

    if problem is None or isinstance(problem, str):
        # Completion keeps p in [0.3, 0.45], so that |Omega| / (m n) is never 1/2, 1 or 2, the factors
        # of other normalisation mistakes, and the diagnosis can tell them apart.
        makers = {"factorization": testing.factorization_problems(max_size=6),
                  "completion": testing.completion_problems(min_fraction=0.3, max_fraction=0.45, max_size=6),
                  "sensing": testing.sensing_problems(max_size=6)}
        names = list(makers) if problem is None else [problem]
        if any(n not in makers for n in names):
            raise ValueError(f"problem must be a RecoveryProblem, one of {tuple(makers)}, or None; got {problem!r}")
        return st.one_of(*[makers[n] for n in names])
    return st.just(problem)


def _update_tolerances(weights, G, sizes, dtype):
    eps = np.finfo(dtype).eps
    return [s * t + 4 * eps * np.abs(w).max() for s, t, w in zip(sizes, gradient_tolerances(weights, G, dtype), weights)]


def _normalisation_factors(problem):
    m, n = problem.shape
    if problem.name == "completion":
        factors = [(problem.observed / (m * n), "a mean over all m n entries instead of over the |Omega| observed ones"),
                   (float(problem.observed), "a sum over the observed entries instead of a mean"),
                   (2.0 * problem.observed, "a plain sum of squares, without the 1/(2|Omega|)")]
    elif problem.name == "factorization":
        factors = [(float(m * n), "a sum over the entries instead of a mean"),
                   (2.0 * m * n, "a plain sum of squares, without the 1/(2 m n)")]
    else:
        factors = [(1.0 / problem.operators.shape[0], "a mean over the m measurements instead of a sum")]
    return factors + [(2.0, "the factor 1/2 is missing"), (0.5, "an extra factor 1/2")]


def assert_step_matches(step_fn, problem=None, *, lr=0.1, outer_lr_scale=2.0, layout="input_first",
                        dtype=np.float64, max_examples=30):
    """Check one gradient-descent step, discrepant rate included.

    Parameters
    ----------
    step_fn : callable
        ``step_fn(weights, problem, lr, outer_lr_scale) -> new_weights``, with
        the layers in ``layout`` order as NumPy arrays of ``dtype``, and a
        dlnref problem (read ``problem.name``, ``.target``, ``.mask``,
        ``.operators``). dlnref's rule: ``W_l <- W_l - lr s_l dLoss/dW_l``,
        ``s_1 = s_L = outer_lr_scale``, with the loss normalisations of
        :mod:`dlnref.problems`.
    problem : RecoveryProblem, "factorization", "completion", "sensing" or None
        A fixed problem, or generated problems of one kind (None: all kinds).
    lr, outer_lr_scale : float
    layout : {"input_first", "output_first"}
    dtype : numpy dtype
    max_examples : int

    Raises
    ------
    AssertionError
        On the smallest failing case, with the layer, the differences and the
        likely cause (reversed layers, transposed gradient, another loss
        normalisation, the discrepant rate on one outer layer only).
    """
    _check_layout(layout)

    def test(case):
        prob, dims, seed, weights = _unpack(case, dtype)
        X = end_to_end(weights)
        G = prob.gradient(X)
        sizes = step_sizes(len(weights), lr, outer_lr_scale)
        grads = backward(weights, G)
        ours = [-s * g for s, g in zip(sizes, grads)]
        new = _call(step_fn, weights, layout, dtype, prob, lr, outer_lr_scale)
        theirs = [t - w for t, w in zip(new, weights)] if len(new) == len(weights) else new
        tolerances = _update_tolerances(weights, G, sizes, dtype)
        mismatch = first_mismatch(theirs, ours, tolerances)
        if mismatch is None:
            return
        L = len(weights)
        rate = lambda scales: [-lr * s * g for s, g in zip(scales, grads)]  # noqa: E731
        alternatives = []
        if L > 1 and outer_lr_scale != 1:
            alternatives = [
                ("the discrepant rate is applied to the first layer W_1 only, not to W_L",
                 rate([outer_lr_scale] + [1.0] * (L - 1))),
                ("the discrepant rate is applied to the last layer W_L only, not to W_1",
                 rate([1.0] * (L - 1) + [outer_lr_scale])),
                ("the discrepant rate is missing: every layer takes lr", rate([1.0] * L)),
                ("the discrepant rate is applied to every layer, not just W_1 and W_L", rate([outer_lr_scale] * L)),
            ]
        cause = diagnose(theirs, ours, tolerances, alternatives, _normalisation_factors(prob))
        raise AssertionError(_report("one gradient-descent step", f"{prob.name} {prob.shape}, dims={dims}, "
                                     f"seed={seed}, lr={lr}, outer_lr_scale={outer_lr_scale}", mismatch, cause, dtype,
                                     theirs, ours))

    _run(test, _problem_cases(problem, max_inner_layers=3), max_examples)


def assert_trajectory_matches(train_fn, problem=None, *, steps=20, lr=0.05, outer_lr_scale=1.0,
                              layout="input_first", dtype=np.float64, max_examples=10):
    """Check a whole training run: the end-to-end matrix after every step.

    Parameters
    ----------
    train_fn : callable
        ``train_fn(weights, problem, lr, outer_lr_scale, steps) -> [X_0, ..., X_steps]``,
        the end-to-end matrices ``W_L ... W_1`` before the first update and
        after each one (``steps + 1`` arrays of shape ``(m, n)``).
    problem, lr, outer_lr_scale, layout, dtype, max_examples
        As in :func:`assert_step_matches`.
    steps : int

    Raises
    ------
    AssertionError
        Naming the case, the first step whose X differs, and the differences.
    """
    _check_layout(layout)

    def test(case):
        prob, dims, seed, weights = _unpack(case, dtype)
        ours = [np.asarray(x) for x in gradient_descent(
            prob, weights, lr, steps, outer_lr_scale=outer_lr_scale, blas_threads=None,
            observe=lambda step, w: {"X": end_to_end(w)}).history["X"]]
        theirs = [np.asarray(x, dtype=np.float64) for x in
                  train_fn(to_layout([w.astype(dtype) for w in weights], layout), prob, lr, outer_lr_scale, steps)]
        eps = np.finfo(dtype).eps
        K = sum(dims)
        for t, (x_t, x_o) in enumerate(zip(theirs, ours)):
            tol = 8 * eps * K * (t + 1) * max(1.0, np.linalg.norm(x_o))
            mismatch = first_mismatch([x_t], [x_o], [tol])
            if mismatch is not None:
                where = ("the forward product W_L ... W_1 itself (check the layer order)" if t == 0 else
                         "the updates: run assert_step_matches for a diagnosis")
                raise AssertionError(
                    f"trajectory differs from dlnref on case {prob.name} {prob.shape}, dims={dims}, seed={seed} "
                    f"(dtype {np.dtype(dtype).name}) first at step {t}: max abs difference {mismatch.max_abs:.3e}, "
                    f"max relative difference {mismatch.max_rel:.3e}, tolerance {tol:.3e}. Likely cause: {where}.")
        if len(theirs) != len(ours):
            raise AssertionError(f"train_fn returned {len(theirs)} matrices, expected steps + 1 = {len(ours)}")

    _run(test, _problem_cases(problem, max_inner_layers=2), max_examples)
