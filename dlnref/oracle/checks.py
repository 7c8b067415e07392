"""The checks: generated cases through the user's function and through dlnref, and a diagnosis when they differ.

The user's function gets NumPy arrays in the requested ``dtype`` and
``layout`` and returns NumPy arrays (wrap a PyTorch, JAX or C++ function to
convert). dlnref's side is computed from the very same rounded inputs.

Layouts
-------
``"input_first"`` (dlnref's): ``[W_1, ..., W_L]``, ``W_l`` of shape ``(d_l, d_{l-1})``.
``"output_first"``: ``[W_L, ..., W_1]``, the same matrices in reverse order.
Gradients and updated weights come back in the same layout. A PyTorch
``nn.Sequential`` of ``nn.Linear`` layers lists its layers input first, and
``nn.Linear.weight`` has shape ``(out, in) = (d_l, d_{l-1})``, so its weights
are already in dlnref's ``"input_first"`` layout.

Tolerances are those of :mod:`dlnref.oracle.reference`. Every step check
runs each case at two step sizes, ``lr`` and ``LR_RATIO * lr``, so that an
ignored or rescaled ``lr`` shows.
"""

import contextlib
import sys

import numpy as np
from hypothesis import HealthCheck, given, settings

from ..errors import InputError
from ..network import backward, end_to_end
from ..problems import problem_class
from ..train import step_sizes
from .cases import (
    ALPHA_CANDIDATES,
    backward_cases,
    case_alpha,
    check_layout,
    from_layout,
    normalisation_factors,
    oracle_kinds,
    problem_cases,
    to_layout,
)
from .diagnosis import describe, diagnose_backward, diagnose_first_step, diagnose_step, step_views
from .reference import (
    first_mismatch,
    gradient_tolerances,
    matches,
    reference_trajectory,
    trajectory_lr_limit,
    update_tolerances,
)

#: The second step size of a step check, as a multiple of the first (no ratio of small integers).
LR_RATIO = 0.37
#: Inner layers of the networks drawn for step and trajectory checks.
STEP_INNER_LAYERS, TRAJECTORY_INNER_LAYERS = 3, 2


def _search(check, cases, max_examples):
    """Run ``check(case, diagnose)`` over ``cases`` with hypothesis, derandomized; report the smallest failing case.

    The search and the shrinking only ask whether a case fails (``diagnose=False``);
    the diagnosis runs once, on the smallest failing case, which hypothesis
    replays last.

    Raises
    ------
    AssertionError
        With the full report of the smallest failing case.
    """
    failing = []

    def test(case):
        if check(case, False) is not None:
            failing.append(case)
            raise AssertionError("differs from dlnref")

    try:
        settings(max_examples=max_examples, derandomize=True, database=None, deadline=None, print_blob=False,
                 suppress_health_check=list(HealthCheck))(given(cases)(test))()
    except AssertionError:
        raise AssertionError(check(failing[-1], True)) from None


class ExitCalled(Exception):
    """The checked function called ``sys.exit``: reported as its failure, never as dlnref's exit."""


def _rounded(arrays, dtype):
    """The arrays rounded to ``dtype`` and back to float64: both sides start from the same numbers."""
    return [np.asarray(a).astype(dtype).astype(np.float64) for a in arrays]


def _call(fn, weights, layout, dtype, *args):
    """``fn`` on the weights in ``layout`` and ``dtype``: its layers in input-first order, or what went wrong."""
    out = _run_user(fn, to_layout([w.astype(dtype) for w in weights], layout), *args)
    if isinstance(out, Exception):
        return out
    return _as_arrays(lambda: from_layout(list(out), layout), out)


def _run_user(fn, *args):
    """``fn(*args)``, or the exception it raised (:class:`ExitCalled` for ``sys.exit``): the user's code may do anything.

    What it prints goes to stderr, so that ``dlnref conform --json`` prints JSON alone.
    """
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return fn(*args)
    except SystemExit as stop:   # nor may it end dlnref's process
        return ExitCalled(f"sys.exit({stop.code!r})")
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001  (reported as the function's failure, whatever it raised)
        return error if isinstance(error, Exception) else UserBaseException(f"{type(error).__name__}: {error}")


def _as_arrays(listed, out):
    """``listed()``'s items as float64 arrays, or a :class:`BadReturn` saying what ``out`` was instead."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            items = list(listed())
        if any(np.iscomplexobj(x) for x in items):
            raise TypeError("complex entries")
        return [np.asarray(x, dtype=np.float64) for x in items]
    except Exception as error:  # noqa: BLE001  (whatever the returned object does, it is the function's return value)
        return BadReturn(f"returned {type(out).__name__} {str(out)[:80]!r}, which is not a list of real arrays "
                         f"({type(error).__name__}: {error})")


class UserBaseException(Exception):
    """The checked function raised a ``BaseException`` that is no ``Exception`` (say pytest's ``fail``): reported."""


def _failure(result):
    """``describe``'s keywords for what the checked function gave: raised, returned something else, or neither."""
    return {"raised": isinstance(result, Exception) and not isinstance(result, BadReturn),
            "returned": isinstance(result, BadReturn)}


class BadReturn(Exception):
    """The checked function returned normally, but not a list of real arrays: reported as such, not as a raise."""


def _other(layout):
    return "output_first" if layout == "input_first" else "input_first"


def _found(case, result, mismatch):
    """What differs: the exception the function raised, or the layer and its differences."""
    if isinstance(result, BadReturn):
        return f"your function {result}"
    if isinstance(result, Exception):
        found = f"your function raised {type(result).__name__}: {result}"
        if len(set(case.dims)) > 1 and any(word in str(result).lower() for word in ("shape", "dimension", "align")):
            found += f" (these widths {tuple(case.dims)} chain different shapes: a product in the wrong order fails here)"
        return found
    found = (f"layer {mismatch.layer} (1 = input side): max abs difference {mismatch.max_abs:.3e}, max relative "
             f"difference {mismatch.max_rel:.3e}, tolerance {mismatch.tolerance:.3e}")
    return found + (f"; {_shape_note(result, mismatch)}" if mismatch.max_abs == np.inf else "")


def _report(what, case, settings_text, layout, dtype, found, diagnosis):
    """The failure report: the case and its settings, what differs, the diagnosis, and the line that rebuilds it."""
    return (f"{what} differs from dlnref on case {case.describe()}; {settings_text}, layout {layout!r}, "
            f"dtype {np.dtype(dtype).name}.\n{found}.\n{diagnosis}\n"
            f"Rebuild the case: import dlnref.oracle; {case.call()}")


def _shape_note(result, mismatch):
    if isinstance(result, list) and len(result) >= mismatch.layer:
        return f"layer {mismatch.layer} came back with shape {np.shape(result[mismatch.layer - 1])}"
    return f"{len(result)} layers came back"


def check_backward(backward_fn, case, layout="input_first", dtype=np.float64, diagnose=True):
    """The failure report of ``backward_fn`` on one backward case, or None when it agrees with dlnref.

    With ``diagnose=False`` a failure gives a short text without the diagnosis (cheap, for the search).
    """
    weights, G = case.build()
    weights, (G,) = _rounded(weights, dtype), _rounded([G], dtype)
    ours = backward(weights, G)
    tolerances = gradient_tolerances(weights, G, dtype)
    theirs = _call(backward_fn, weights, layout, dtype, G.astype(dtype))
    mismatch = None if isinstance(theirs, Exception) else first_mismatch(theirs, ours, tolerances)
    if mismatch is None and not isinstance(theirs, Exception):
        return None
    if not diagnose:
        return "differs"
    float32 = gradient_tolerances(weights, G, np.float32) if np.dtype(dtype) == np.float64 else None
    explanations = diagnose_backward(theirs if isinstance(theirs, list) else None, ours, tolerances, float32)
    other = _call(backward_fn, weights, _other(layout), dtype, G.astype(dtype))
    if len(weights) > 1 and not isinstance(other, Exception) and matches(other, ours, tolerances):
        explanations.append([f"your function reads the layers in the other order: pass layout={_other(layout)!r}"])
    return _report("backward", case, "G = dLoss/dX", layout, dtype, _found(case, theirs, mismatch),
                   describe(explanations, **_failure(theirs)))


def _sequential(weights, problem, lr, scales, order):
    """Updates of a step that moves the layers one at a time in ``order``, each gradient taken after the last move."""
    moved = list(weights)
    for l in order:
        G = problem.gradient(end_to_end(moved))
        moved[l] = moved[l] - lr * scales[l] * backward(moved, G)[l]
    return [m - w for m, w in zip(moved, weights)]


def _updates(new, weights):
    """``new_W_l - W_l``, or None when ``new`` is an exception or does not have the weights' shapes."""
    if isinstance(new, Exception) or [n.shape for n in new] != [w.shape for w in weights]:
        return None
    return [n - w for n, w in zip(new, weights)]


def check_step(step_fn, case, lr=0.1, outer_lr_scale=None, layout="input_first", dtype=np.float64, diagnose=True):
    """The failure report of ``step_fn`` on one problem case, at ``lr`` and ``LR_RATIO * lr``, or None.

    ``outer_lr_scale=None`` takes the case's own alpha (:func:`~dlnref.oracle.cases.case_alpha`);
    ``diagnose`` as in :func:`check_backward`.
    """
    weights, problem = case.build()
    weights = _rounded(weights, dtype)
    alpha = case_alpha(problem) if outer_lr_scale is None else outer_lr_scale
    L = len(weights)
    scales = step_sizes(L, 1.0, alpha)
    G = problem.gradient(end_to_end(weights))
    grads = backward(weights, G)

    def ours_at(rate):
        return [-rate * s * g for s, g in zip(scales, grads)]

    def tolerances_at(rate, dt=dtype):
        return update_tolerances(weights, G, [rate * s for s in scales], dt)

    lrs = (lr, LR_RATIO * lr)
    results = [_call(step_fn, weights, layout, dtype, problem, rate, alpha) for rate in lrs]
    runs = [(rate, step_views(new, weights)) for rate, new in zip(lrs, results)]
    failed = None
    for rate, new, (_, views) in zip(lrs, results, runs):
        plain = dict(views).get(None)
        if plain is None:
            mismatch = None if isinstance(new, Exception) else first_mismatch(new, weights, [0.0] * L)
        else:
            mismatch = first_mismatch(plain, ours_at(rate), tolerances_at(rate))
        if failed is None and (isinstance(new, Exception) or mismatch is not None):
            failed = (rate, new, mismatch)
    if failed is None:
        return None
    if not diagnose:
        return "differs"
    alternatives = []
    if L > 1:
        alternatives = [
            ("sequential updates: each layer's gradient is taken after the layers before it moved (W_1 first), "
             "not all from the same weights", lambda rate: _sequential(weights, problem, rate, scales, range(L))),
            ("sequential updates: each layer's gradient is taken after the layers above it moved (W_L first), "
             "not all from the same weights", lambda rate: _sequential(weights, problem, rate, scales, range(L)[::-1]))]
    float32_at = (lambda rate: tolerances_at(rate, np.float32)) if np.dtype(dtype) == np.float64 else None
    explanations = diagnose_step(runs, ours_at, alpha, scales, normalisation_factors(problem), tolerances_at,
                                 alternatives, float32_at)
    other = [_updates(_call(step_fn, weights, _other(layout), dtype, problem, rate, alpha), weights) for rate in lrs]
    if L > 1 and all(u is not None and matches(u, ours_at(rate), tolerances_at(rate)) for u, rate in zip(other, lrs)):
        explanations.append([f"your function reads the layers in the other order: pass layout={_other(layout)!r}"])
    rate, new, mismatch = failed
    diagnosis = describe(explanations, **_failure(new))
    if len(explanations) > 1 and outer_lr_scale is not None:
        diagnosis += "\nWith outer_lr_scale=None, each case draws an alpha that tells these apart."
    return _report("one gradient-descent step", case, f"lr={rate:g} (checked at lr={lrs[0]:g} and {lrs[1]:g}), "
                   f"alpha={alpha:g}", layout, dtype, _found(case, new, mismatch), diagnosis)


def trajectory_lr_range(problem=None, steps=20, outer_lr_scale=None):
    """``(0, limit]``: the step sizes at which every reference run of a trajectory check provably stays bounded.

    With ``outer_lr_scale=None`` (alpha drawn per case) the limit holds for the
    largest alpha a case can draw. See :mod:`dlnref.oracle.reference`.
    """
    kinds = oracle_kinds() if problem is None else (_problem_kind(problem),)
    alpha = max(ALPHA_CANDIDATES) if outer_lr_scale is None else outer_lr_scale
    return 0.0, min(trajectory_lr_limit(k, steps, alpha, 1 + TRAJECTORY_INNER_LAYERS) for k in kinds)


def check_trajectory(train_fn, case, steps=20, lr=None, outer_lr_scale=None, layout="input_first",
                     dtype=np.float64):
    """The failure report of ``train_fn`` on one problem case over ``steps`` steps, or None."""
    weights, problem = case.build()
    weights = _rounded(weights, dtype)
    alpha = case_alpha(problem) if outer_lr_scale is None else outer_lr_scale
    exact, tolerances = reference_trajectory(problem, weights, lr, alpha, steps, dtype)
    settings_text = f"lr={lr:g}, alpha={alpha:g}, steps={steps}"
    out = _run_user(train_fn, to_layout([w.astype(dtype) for w in weights], layout), problem, lr, alpha, steps)
    theirs = out if isinstance(out, Exception) else _as_arrays(lambda: out, out)
    if isinstance(theirs, Exception):
        return _report("trajectory", case, settings_text, layout, dtype, _found(case, theirs, None),
                       describe([], **_failure(theirs)))
    if len(theirs) != len(exact) or any(x.shape != ref.shape for x, ref in zip(theirs, exact)):
        return _report("trajectory", case, settings_text, layout, dtype,
                       f"train_fn returned {len(theirs)} matrices of shapes {sorted({x.shape for x in theirs})}, "
                       f"expected steps + 1 = {len(exact)} of shape {exact[0].shape}", "Likely cause: the return value.")
    for t, (x, ref, tol) in enumerate(zip(theirs, exact, tolerances)):
        difference = float(np.abs(x - ref).max())  # in extended precision: the reference is exact
        if not difference <= tol:
            found = (f"X_{t} (the first to differ): max abs difference {difference:.3e}, max relative difference "
                     f"{difference / float(np.abs(ref).max()):.3e}, tolerance {tol:.3e}")
            return _report(f"trajectory (first at step {t})", case, settings_text, layout, dtype, found,
                           _trajectory_diagnosis(t, x, weights, problem, lr, alpha, tol))
    return None


def _trajectory_diagnosis(t, x, weights, problem, lr, alpha, tol):
    """The diagnosis of a trajectory whose first difference is ``X_t``: the step hypotheses when t = 1."""
    if t == 0:
        return "Likely cause: the forward product W_L ... W_1 itself: check the layer order and the layout."
    if t > 1:
        return ("Likely cause: the updates after step 1 (X_1 agrees): state carried between steps? For a "
                "diagnosis of one step, run assert_step_matches.")
    L = len(weights)
    grads = backward(weights, problem.gradient(end_to_end(weights)))
    sizes = step_sizes(L, lr, alpha)
    alternatives = [] if L == 1 else [
        (f"sequential updates, {first} first: each layer's gradient is taken after the layers before it moved",
         _sequential(weights, problem, lr, step_sizes(L, 1.0, alpha), order))
        for first, order in (("W_1", range(L)), ("W_L", range(L)[::-1]))]
    ours = [-size * g for size, g in zip(sizes, grads)]
    explanations = diagnose_first_step(x, weights, lambda ratios: [r * o for r, o in zip(ratios, ours)], alpha,
                                       normalisation_factors(problem), tol, alternatives)
    return describe(explanations)


def _problem_kind(problem):
    """``problem`` (a registered problem's name) or None (all of :func:`~dlnref.oracle.kinds.oracle_kinds`)."""
    return problem if problem is None else problem_class(problem).name


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
        float64 or float32; the tolerance follows it.
    max_examples : int
        Generated cases (derandomized, so every run checks the same ones).

    Raises
    ------
    AssertionError
        On the smallest failing case: the case and a line that rebuilds it,
        the layer and the differences, and every cause that fits.
    """
    check_layout(layout)
    _search(lambda case, diagnose: check_backward(backward_fn, case, layout, dtype, diagnose), backward_cases(),
            max_examples)


def assert_step_matches(step_fn, problem=None, *, lr=0.1, outer_lr_scale=None, layout="input_first",
                        dtype=np.float64, max_examples=30):
    """Check one gradient-descent step, discrepant rate included, at ``lr`` and ``LR_RATIO * lr``.

    Parameters
    ----------
    step_fn : callable
        ``step_fn(weights, problem, lr, outer_lr_scale) -> new_weights``, with
        the layers in ``layout`` order as NumPy arrays of ``dtype``, and a
        dlnref problem (read ``problem.name``, ``.target``, ``.mask``,
        ``.operators``). dlnref's rule: ``W_l <- W_l - lr s_l dLoss/dW_l``,
        ``s_1 = s_L = outer_lr_scale``, with the loss normalisations of
        :mod:`dlnref.problems`.
    problem : str or None
        A registered problem (:func:`dlnref.problems.problem_names`), or None for every one whose loss states its
        normalisation (:func:`dlnref.oracle.kinds.oracle_kinds`).
    lr : float
    outer_lr_scale : float or None
        alpha; None (the default) draws one per case that no normalisation
        factor of the case can be mistaken for.
    layout : {"input_first", "output_first"}
    dtype : numpy dtype
    max_examples : int

    Raises
    ------
    AssertionError
        On the smallest failing case: the case and a line that rebuilds it,
        lr, alpha, the layer and the differences, and every cause that fits.
    """
    check_layout(layout)
    kind = _problem_kind(problem)
    _search(lambda case, diagnose: check_step(step_fn, case, lr, outer_lr_scale, layout, dtype, diagnose),
            problem_cases(kind, STEP_INNER_LAYERS), max_examples)


def assert_trajectory_matches(train_fn, problem=None, *, steps=20, lr=None, outer_lr_scale=None,
                              layout="input_first", dtype=np.float64, max_examples=10):
    """Check a whole training run: the end-to-end matrix after every step.

    Parameters
    ----------
    train_fn : callable
        ``train_fn(weights, problem, lr, outer_lr_scale, steps) -> [X_0, ..., X_steps]``,
        the end-to-end matrices ``W_L ... W_1`` before the first update and
        after each one (``steps + 1`` arrays of shape ``(m, n)``).
    problem, outer_lr_scale, layout, dtype, max_examples
        As in :func:`assert_step_matches`.
    steps : int
    lr : float or None
        Must lie in :func:`trajectory_lr_range`, where dlnref's reference run
        provably stays bounded; None takes half its upper end.

    Raises
    ------
    ValueError
        When ``lr`` lies outside :func:`trajectory_lr_range`.
    AssertionError
        Naming the case, a line that rebuilds it, the first step whose X
        differs, and the differences.
    """
    check_layout(layout)
    kind = _problem_kind(problem)
    low, high = trajectory_lr_range(kind, steps, outer_lr_scale)
    lr = high / 2 if lr is None else lr
    if not low < lr <= high:
        raise InputError(
            f"lr={lr!r} is outside the range (0, {high:.4g}] in which dlnref's reference run provably stays bounded "
            f"for {kind or 'every kind'} at steps={steps}, outer_lr_scale={outer_lr_scale}: this is a usage error, "
            "not a failure of your code. Pass a smaller lr or fewer steps (see dlnref.oracle.trajectory_lr_range)")
    _search(lambda case, diagnose: check_trajectory(train_fn, case, steps, lr, outer_lr_scale, layout, dtype),
            problem_cases(kind, TRAJECTORY_INNER_LAYERS), max_examples)
