"""The checks: generated cases through the user's function and through dlnref, and a diagnosis when they differ.

The user's function gets NumPy arrays in the requested ``dtype`` and
``layout`` and returns arrays: NumPy arrays, torch tensors (that require grad
or not) or JAX arrays (:func:`~dlnref.oracle.conventions.to_numpy`).
dlnref's side is computed from the very same rounded inputs. The user
declares the loss convention (``loss``, :mod:`~dlnref.oracle.conventions`:
the check passes ``lr / kappa`` so that no lr glue is needed) and the depths
its code supports (``depths``: cases and their shrinking stay within them).

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
import dataclasses
import sys

import numpy as np
from hypothesis import HealthCheck, given, settings

from ..errors import InputError
from ..network import backward, end_to_end
from ..problems import problem_class
from ..train import step_sizes
from .cases import (
    ALPHA_CANDIDATES,
    Case,
    backward_cases,
    case_alpha,
    check_layout,
    confirmation_case,
    fixed_cases,
    from_layout,
    normalisation_factors,
    oracle_kinds,
    problem_cases,
    to_layout,
)
from .conventions import (
    CONVENTIONS,
    allowed_depths,
    check_loss,
    convention_count,
    convention_words,
    loss_scale,
    to_numpy,
)
from .diagnosis import (
    StepEvidence,
    cheapest,
    describe,
    diagnose_backward,
    diagnose_step,
    other_layout_fits,
    simplest,
    step_views,
)
from .reference import (
    first_mismatch,
    gradient_tolerances,
    matches,
    reference_trajectory,
    trajectory_lr_limit,
    update_tolerances,
)
from .signatures import (
    PLACEMENTS,
    TRAJECTORY_SIGNATURES,
    Quantities,
    first_step_fit,
    gradient_variants,
    later_steps,
    read_measured,
)

#: The second step size of a step check, as a multiple of the first (no ratio of small integers).
LR_RATIO = 0.37
#: Inner layers of the networks drawn for step and trajectory checks.
STEP_INNER_LAYERS, TRAJECTORY_INNER_LAYERS = 3, 2
#: Cases per problem on which ``loss="infer"`` infers the loss convention.
INFER_CASES = 8
#: Words in an error that make it a shape error (then the widths of the case are worth a hint).
SHAPE_WORDS = ("shape", "dimension", "aligned", "size mismatch", "broadcast", "must match", "does not match",
               "size of label", "incompatible")


def smallest_failure(check, cases, max_examples):
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
            items = [to_numpy(x) for x in listed()]
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
        if len(set(case.dims)) > 1 and is_shape_error(result):
            found += f" (these widths {tuple(case.dims)} chain different shapes: a product in the wrong order fails here)"
        elif len(case.dims) == 2:   # one layer: the depth that code written for L >= 2 (optax labels) cannot build
            found += (" (this case has L = 1 layer: if your code does not support that depth, declare the depths it "
                      "does, e.g. depths=range(2, 5), or --depths 2-4)")
        return found
    found = (f"layer {mismatch.layer} (1 = input side): max abs difference {mismatch.max_abs:.3e}, max relative "
             f"difference {mismatch.max_rel:.3e}, tolerance {mismatch.tolerance:.3e}")
    return found + (f"; {_shape_note(result, mismatch)}" if mismatch.max_abs == np.inf else "")


def is_shape_error(error):
    """True for an error about shapes (a matmul of the wrong shapes), not for any error that names a shape."""
    text = str(error).lower()
    if "requires grad" in text or "numpy()" in text or isinstance(error, (BadReturn, ExitCalled, UserBaseException)):
        return False
    return isinstance(error, (ValueError, RuntimeError, TypeError, IndexError)) and any(w in text for w in SHAPE_WORDS)


def _report(what, case, settings_text, layout, dtype, found, diagnosis):
    """The failure report: the case and its settings, what differs, the diagnosis, and the line that rebuilds it."""
    return (f"{what} differs from dlnref on case {case.describe()}; {settings_text}, layout {layout!r}, "
            f"dtype {np.dtype(dtype).name}.\n{found}.\n{diagnosis}\n"
            f"Rebuild the case: import dlnref.oracle; {case.call()}")


def _shape_note(result, mismatch):
    if isinstance(result, list) and len(result) >= mismatch.layer:
        return f"layer {mismatch.layer} came back with shape {np.shape(result[mismatch.layer - 1])}"
    return f"{len(result)} layers came back"


def _backward_explanations(backward_fn, case, layout, dtype):
    """``(explanations, result)`` of the user's backward pass on ``case``: the causes that fit it alone."""
    weights, G = case.build()
    weights, (G,) = _rounded(weights, dtype), _rounded([G], dtype)
    ours = backward(weights, G)
    tolerances = gradient_tolerances(weights, G, dtype)
    theirs = _call(backward_fn, weights, layout, dtype, G.astype(dtype))
    float32 = gradient_tolerances(weights, G, np.float32) if np.dtype(dtype) == np.float64 else None
    variants = {**_missing_variants(weights, G)}
    explanations = diagnose_backward(theirs if isinstance(theirs, list) else None, ours, tolerances, float32,
                                     variants)
    other = _call(backward_fn, weights, _other(layout), dtype, G.astype(dtype))
    if len(weights) > 1 and not isinstance(other, Exception) and matches(other, ours, tolerances):
        explanations.append([f"your function reads the layers in the other order: pass layout={_other(layout)!r}"])
    return explanations, theirs


def _missing_variants(weights, G):
    from .signatures import backward_variants

    return backward_variants(weights, G)


def _confirmed_backward(backward_fn, case, layout, dtype, explanations, depths):
    """The explanations that also hold on a second backward case (deeper, other widths), and that case."""
    L = len(case.dims) - 1
    if L < 3:
        L = max(d for d in depths if d >= 3) if any(d >= 3 for d in depths) else max(depths)
    square = len(set(case.dims)) == 1
    d = case.dims[0] + 1 if case.dims[0] < 6 else 3
    dims = (d,) * (L + 1) if square else tuple(2 + (i * 3 + case.dims[0]) % 5 for i in range(L + 1))
    other = Case("backward", dims, case.weight_seed + 1, case.problem_seed + 1)
    there, _ = _backward_explanations(backward_fn, other, layout, dtype)
    return [e for e in explanations if e in there], other


def check_backward(backward_fn, case, layout="input_first", dtype=np.float64, diagnose=True, depths=(1, 2, 3, 4)):
    """The failure report of ``backward_fn`` on one backward case, or None when it agrees with dlnref.

    With ``diagnose=False`` a failure gives a short text without the diagnosis (cheap, for the search). A cause
    is named when it also holds on a second case (depth >= 3 within ``depths``); a function that raises a
    shape error is measured on square layers, where it runs.
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
    where = case
    explanations, _ = _backward_explanations(backward_fn, case, layout, dtype)
    prefix = ""
    if isinstance(theirs, Exception):
        prefix = describe([], **_failure(theirs))
        if is_shape_error(theirs):
            L = len(case.dims) - 1
            where = Case("backward", (max(3, max(case.dims)),) * (L + 1), case.weight_seed, case.problem_seed)
            explanations, result = _backward_explanations(backward_fn, where, layout, dtype)
            if isinstance(result, Exception):
                explanations = []
            else:
                prefix += f"\nOn square layers, where it runs ({where.describe()}):"
    if explanations:
        explanations, second = _confirmed_backward(backward_fn, where, layout, dtype, explanations, depths)
        diagnosis = (describe(explanations) + f"\nConfirmed on a second case: {second.describe()}." if explanations
                     else f"No known cause fits (none holds on the second case {second.describe()} too).")
    elif isinstance(theirs, Exception) and where is case:
        diagnosis = ""
    else:
        diagnosis = "No known cause fits: the gradients are no multiple of dlnref's nor of a known wrong backward pass."
    diagnosis = "\n".join(p for p in (prefix, diagnosis) if p).replace(":\nLikely", ": Likely")
    return _report("backward", case, "G = dLoss/dX", layout, dtype, _found(case, theirs, mismatch), diagnosis)


def _sequential(weights, problem, lr, scales, order):
    """Updates of a step that moves the layers one at a time in ``order``, each gradient taken after the last move."""
    moved = list(weights)
    for l in order:
        G = problem.gradient(end_to_end(moved))
        moved[l] = moved[l] - lr * scales[l] * backward(moved, G)[l]
    return [m - w for m, w in zip(moved, weights)]


def _sequential_fits(order):
    """``evidence -> bool``: whether the user's step moves the layers one at a time in ``order``."""
    def fits(ev):
        plain = ev.views().get(None)
        L = len(ev.weights)
        return plain is not None and all(
            matches(u, _sequential(ev.weights, ev.problem, rate, ev.scales, order(L)), tol)
            for u, rate, tol in zip(plain, ev.lrs, ev.tolerances()))
    return fits


#: Other wrong steps than the signatures': each is tried as a whole.
ALTERNATIVES = {
    "sequential updates: each layer's gradient is taken after the layers before it moved (W_1 first), not all "
    "from the same weights": _sequential_fits(lambda L: range(L)),
    "sequential updates: each layer's gradient is taken after the layers above it moved (W_L first), not all "
    "from the same weights": _sequential_fits(lambda L: range(L)[::-1]),
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a step or trajectory check was told: the declared conventions and the rates."""

    lr: float
    outer_lr_scale: float = None
    layout: str = "input_first"
    dtype: object = np.float64
    loss: str = "dlnref"
    depths: tuple = (1, 2, 3, 4)


def _case_rates(problem, settings):
    """``(alpha, kappa, N')`` of a case under the declared settings."""
    alpha = case_alpha(problem) if settings.outer_lr_scale is None else settings.outer_lr_scale
    return alpha, loss_scale(settings.loss, problem), convention_count(settings.loss, problem)


def step_evidence(step_fn, case, settings):
    """The user's step on ``case`` at both step sizes, with dlnref's numbers: a :class:`StepEvidence`."""
    weights, problem = case.build()
    weights = _rounded(weights, settings.dtype)
    alpha, kappa, count = _case_rates(problem, settings)
    G = problem.gradient(end_to_end(weights))
    scales = step_sizes(len(weights), 1.0, alpha)
    lrs = (settings.lr, LR_RATIO * settings.lr)

    def run(layout):
        return [_call(step_fn, weights, layout, settings.dtype, problem, rate / kappa, alpha) for rate in lrs]

    def tolerances_at(rate, dtype=None):
        return update_tolerances(weights, G, [rate * s for s in scales], dtype or settings.dtype)

    ev = StepEvidence(case, weights, problem, alpha, lrs, kappa, count, run(settings.layout), tolerances_at,
                      normalisation_factors(problem), lambda: run(_other(settings.layout)))
    ev.other_layout = _other(settings.layout)
    return ev


def _convention_namer(problem):
    """``kappa -> name`` of the standard convention with that gradient scale on ``problem``, or None."""
    def name(kappa):
        for loss in CONVENTIONS:
            if abs(loss_scale(loss, problem) - kappa) <= 1e-9 * kappa:
                return loss
        return None
    return name


def _second_case(case, depths, evidence, square=False):
    """The evidence of the first confirmation case on which the user's result differs from dlnref's too, or None.

    Where the user's function raises a shape error on the second case, square cases are tried instead.
    """
    first = None
    for seed in range(6):
        other = confirmation_case(case, depths, square, seed)
        if other is None:
            break
        ev = evidence(other)
        if not square and any(isinstance(r, Exception) and is_shape_error(r) for r in ev.results):
            return _second_case(case, depths, evidence, square=True)
        first = first or ev
        if ev.differs():
            return ev
    return first


def _square_retry(step_fn, case, settings):
    """Where the user's step raised a shape error: the evidence on a square case of the same depth, or None."""
    depth = len(case.dims) - 1
    squares = fixed_cases(case.kind, (depth,), 1, seed=depth, square=True)
    if not squares:
        return None
    ev = step_evidence(step_fn, squares[0], settings)
    return ev if all(isinstance(r, list) for r in ev.results) else None


def check_step(step_fn, case, lr=0.1, outer_lr_scale=None, layout="input_first", dtype=np.float64, diagnose=True,
               loss="dlnref", depths=None):
    """The failure report of ``step_fn`` on one problem case, at ``lr`` and ``LR_RATIO * lr``, or None.

    ``outer_lr_scale=None`` takes the case's own alpha (:func:`~dlnref.oracle.cases.case_alpha`);
    ``diagnose`` as in :func:`check_backward`; ``loss`` a declared convention (the function gets
    ``lr / kappa``); ``depths`` the declared depths, within which the confirmation case is drawn.
    """
    settings = Settings(lr, outer_lr_scale, layout, dtype, loss, allowed_depths(depths, 1 + STEP_INNER_LAYERS))
    ev = step_evidence(step_fn, case, settings)
    failed = None
    for rate, new in zip(ev.lrs, ev.results):
        if isinstance(new, Exception):
            mismatch = None
        else:
            plain = dict(step_views(new, ev.weights)).get(None)
            mismatch = (first_mismatch(new, ev.weights, [0.0] * len(ev.weights)) if plain is None else
                        first_mismatch(plain, ev.ours(rate), ev.tolerances_at(rate)))
        if failed is None and (isinstance(new, Exception) or mismatch is not None):
            failed = (rate, new, mismatch)
    if failed is None:
        return None
    if not diagnose:
        return "differs"
    rate, new, mismatch = failed
    float32 = np.dtype(dtype) == np.float64

    def diagnosis_on(evidence):
        second = _second_case(evidence.case, settings.depths, lambda c: step_evidence(step_fn, c, settings),
                              square=len(set(evidence.case.dims)) == 1 and len(set(case.dims)) > 1)
        return diagnose_step(evidence, second, _convention_namer(evidence.problem), ALTERNATIVES, float32)

    if isinstance(new, Exception) and len(ev.weights) > 1 and other_layout_fits(ev):
        other = confirmation_case(case, settings.depths)
        if other is not None and other_layout_fits(step_evidence(step_fn, other, settings)):
            diagnosis = (f"Likely cause: your function reads the layers in the other order: pass "
                         f"layout={_other(layout)!r}.\nConfirmed on a second case: {other.describe()}.")
        else:
            diagnosis = describe([], **_failure(new))
    elif isinstance(new, Exception):
        diagnosis = describe([], **_failure(new))
        square = _square_retry(step_fn, case, settings) if is_shape_error(new) else None
        if square is not None:
            diagnosis += (f"\nOn square layers, where it runs ({square.case.describe()}): "
                          + diagnosis_on(square))
    else:
        diagnosis = diagnosis_on(ev)
    text = (f"lr={rate:g} (checked at lr={ev.lrs[0]:g} and {ev.lrs[1]:g}), alpha={ev.alpha:g}"
            + ("" if loss == "dlnref" else f", loss {loss!r} ({convention_words(loss, ev.problem)}: your "
                                           f"function got lr / {ev.kappa:.6g})"))
    return _report("one gradient-descent step", case, text, layout, dtype, _found(case, new, mismatch), diagnosis)


def trajectory_lr_range(problem=None, steps=20, outer_lr_scale=None, depths=None):
    """``(0, limit]``: the step sizes at which every reference run of a trajectory check provably stays bounded.

    With ``outer_lr_scale=None`` (alpha drawn per case) the limit holds for the
    largest alpha a case can draw. See :mod:`dlnref.oracle.reference`. The
    step sizes are dlnref's: under a declared loss convention the user's
    function gets ``lr / kappa``.
    """
    kinds = oracle_kinds() if problem is None else (_problem_kind(problem),)
    alpha = max(ALPHA_CANDIDATES) if outer_lr_scale is None else outer_lr_scale
    depth = max(allowed_depths(depths, 1 + TRAJECTORY_INNER_LAYERS))
    return 0.0, min(trajectory_lr_limit(k, steps, alpha, depth) for k in kinds)


@dataclasses.dataclass
class TrajectoryEvidence:
    """One case through the user's training run, and dlnref's exact run on it."""

    case: Case
    weights: list
    problem: object
    alpha: float
    kappa: float
    count: int
    lr: float
    xs: object
    exact: list
    tolerances: list
    transposed: bool = False

    def first_difference(self):
        for t, (x, ref, tol) in enumerate(zip(self.xs, self.exact, self.tolerances)):
            if not float(np.abs(x - ref).max()) <= tol:
                return t
        return None

    def quantities(self, variant):
        grads = gradient_variants(self.weights, self.problem)[variant]
        return Quantities(self.kappa, self.count, normalisation_factors(self.problem),
                          float(np.sqrt(sum(np.vdot(g, g) for g in grads))), ())


def _user_run(train_fn, weights, problem, lr, alpha, steps, settings):
    out = _run_user(train_fn, to_layout([w.astype(settings.dtype) for w in weights], settings.layout), problem, lr,
                    alpha, steps)
    return out if isinstance(out, Exception) else _as_arrays(lambda: out, out)


def trajectory_evidence(train_fn, case, steps, settings):
    """The user's run on ``case`` (the function gets ``lr / kappa``) against dlnref's exact run."""
    weights, problem = case.build()
    weights = _rounded(weights, settings.dtype)
    alpha, kappa, count = _case_rates(problem, settings)
    exact, tolerances = reference_trajectory(problem, weights, settings.lr, alpha, steps, settings.dtype)
    xs = _user_run(train_fn, weights, problem, settings.lr / kappa, alpha, steps, settings)
    ev = TrajectoryEvidence(case, weights, problem, alpha, kappa, count, settings.lr, xs,
                            [np.asarray(x, dtype=np.float64) for x in exact], tolerances)
    if isinstance(xs, list) and len(xs) == len(exact) and all(x.shape == ref.T.shape != ref.shape
                                                             for x, ref in zip(xs, exact)):
        ev.xs, ev.transposed = [x.T for x in xs], True
    return ev


def _first_step_structures(ev):
    """The structures ``(variant, placement, decay)`` whose fitted ``F`` (and c) give the user's ``X_1``."""
    found = []
    variants = gradient_variants(ev.weights, ev.problem)
    for variant, grads in variants.items():
        for placement in PLACEMENTS:
            for decay in (None, "coupled", "plain"):   # a decay only where none fits; both kinds then
                measured = first_step_fit(ev.xs[1], ev.weights, ev.lr, ev.alpha, grads, placement, decay, ev.kappa,
                                          ev.tolerances[1])
                if measured is not None:
                    found.append(((variant, placement, decay), measured))
                    if decay is None:
                        break
    return found


def _confirm_first_step(found, ev, second):
    explanations = []
    variants = gradient_variants(second.weights, second.problem)
    for (variant, placement, decay), measured in found:
        if variant not in variants:
            continue
        other = first_step_fit(second.xs[1], second.weights, second.lr, second.alpha, variants[variant], placement,
                               decay, second.kappa, second.tolerances[1])
        if other is None:
            continue
        causes = read_measured(measured, other, ev.quantities(variant), second.quantities(variant), (1.0, LR_RATIO),
                               _convention_namer(ev.problem), decay)
        if causes is not None:
            explanations.append([n for n in (variant, placement) if n] + causes)
    return explanations


def _confirm_later(fits, second, t):
    later = later_steps(second.xs, second.weights, second.problem, second.lr, second.alpha, second.tolerances, t)
    explanations = []
    for name, value in fits.items():
        if name in later and abs(later[name] - value) <= 1e-6 * max(1.0, abs(value)):
            explanations.append([TRAJECTORY_SIGNATURES[name][1](value, t)])
    return explanations


def _aliasing(ev, t, rerun):
    """The copy hint when ``X_t`` came back as a later X (the same array updated in place), or None."""
    later = [u for u in range(t + 1, len(ev.exact)) if float(np.abs(ev.xs[t] - ev.exact[u]).max()) <= ev.tolerances[u]]
    if later:
        return (f"X_{t} came back equal to X_{later[-1]}: the list holds an array that later steps update in place "
                "(a parameter, or its product, aliased). Append a copy of each X_t (np.array(X), X.detach().clone(), "
                "jnp.array(X))")
    if t > 0:   # a wrong step differs in proportion to lr too; only X_0 must not depend on lr at all
        return None
    other = rerun()
    if isinstance(other, list) and len(other) > t and other[t].shape == ev.xs[t].shape:
        d1 = float(np.abs(ev.xs[t] - ev.exact[t]).max())
        d2 = float(np.abs(other[t] - ev.exact[t]).max())
        if d1 > 0 and abs(d2 / d1 - LR_RATIO) < 0.1 * LR_RATIO:
            return (f"X_{t} differs from the start by an amount proportional to lr: the returned X_{t} was updated "
                    "in place by later steps. Append a copy of each X_t (np.array(X), X.detach().clone(), "
                    "jnp.array(X))")
    return None


def check_trajectory(train_fn, case, steps=20, lr=None, outer_lr_scale=None, layout="input_first",
                     dtype=np.float64, loss="dlnref", depths=None, diagnose=True):
    """The failure report of ``train_fn`` on one problem case over ``steps`` steps, or None.

    ``loss``, ``depths`` and ``diagnose`` as in :func:`check_step`.
    """
    settings = Settings(lr, outer_lr_scale, layout, dtype, loss, allowed_depths(depths, 1 + TRAJECTORY_INNER_LAYERS))
    ev = trajectory_evidence(train_fn, case, steps, settings)
    settings_text = (f"lr={lr:g}, alpha={ev.alpha:g}, steps={steps}"
                     + ("" if loss == "dlnref" else f", loss {loss!r} (your function got lr / {ev.kappa:.6g})"))
    theirs = ev.xs
    if isinstance(theirs, Exception):
        return _report("trajectory", case, settings_text, layout, dtype, _found(case, theirs, None),
                       describe([], **_failure(theirs)))
    exact = ev.exact
    if len(theirs) != len(exact) or any(x.shape != ref.shape for x, ref in zip(theirs, exact)):
        return _report("trajectory", case, settings_text, layout, dtype,
                       f"train_fn returned {len(theirs)} matrices of shapes {sorted({x.shape for x in theirs})}, "
                       f"expected steps + 1 = {len(exact)} of shape {exact[0].shape}", "Likely cause: the return value.")
    t = ev.first_difference()
    if t is None:
        return None if not ev.transposed else _report(
            "trajectory", case, settings_text, layout, dtype, "every X_t came back transposed, with shape "
            f"{theirs[0].shape} for {exact[0].shape}", "Likely cause: " + TRANSPOSED_X + ".")
    if not diagnose:
        return "differs"
    x, ref, tol = theirs[t], exact[t], ev.tolerances[t]
    difference = float(np.abs(x - ref).max())
    found = (f"X_{t} (the first to differ): max abs difference {difference:.3e}, max relative difference "
             f"{difference / float(np.abs(ref).max()):.3e}, tolerance {tol:.3e}")
    diagnosis = _trajectory_diagnosis(train_fn, ev, t, steps, settings)
    if ev.transposed:
        diagnosis = f"Also: {TRANSPOSED_X}.\n{diagnosis}"
    return _report(f"trajectory (first at step {t})", case, settings_text, layout, dtype, found, diagnosis)


TRANSPOSED_X = ("each X_t comes back transposed (X_t^T = W_1^T ... W_L^T, the matrix a row-vector model such as "
                "PyTorch's model(I) gives): return its transpose")


def _within_float32(ev):
    """Every ``X_t`` within the tolerance a float32 run would get (both terms of the tolerance scale with eps)."""
    ratio = np.finfo(np.float32).eps / np.finfo(np.float64).eps
    return all(float(np.abs(x - ref).max()) <= ratio * tol for x, ref, tol in zip(ev.xs, ev.exact, ev.tolerances))


def _trajectory_diagnosis(train_fn, ev, t, steps, settings):
    """The diagnosis of a trajectory whose first difference is ``X_t``."""
    def rerun():
        return _user_run(train_fn, ev.weights, ev.problem, LR_RATIO * ev.lr / ev.kappa, ev.alpha, steps, settings)

    alias = _aliasing(ev, t, rerun)
    if alias:
        return f"Likely cause: {alias}."
    if t == 0 and np.dtype(settings.dtype) == np.float64 and _within_float32(ev):   # X_0 itself in float32
        return ("Likely cause: float32 rounding: every X_t agrees with dlnref only to float32 precision (is it "
                "computed in float32? then check with dtype=np.float32).")
    if t == 0:
        if ev.xs[0].shape == ev.xs[0].T.shape and float(np.abs(ev.xs[0].T - ev.exact[0]).max()) <= ev.tolerances[0]:
            return f"Likely cause: {TRANSPOSED_X}."
        return "Likely cause: the forward product W_L ... W_1 itself: check the layer order and the layout."

    def second():
        for seed in range(3):
            other = confirmation_case(ev.case, settings.depths, False, seed)
            if other is None:
                return None
            evidence = trajectory_evidence(train_fn, other, steps, settings)
            if isinstance(evidence.xs, list) and len(evidence.xs) == len(evidence.exact) and \
                    all(x.shape == r.shape for x, r in zip(evidence.xs, evidence.exact)) and \
                    evidence.first_difference() == t:
                return evidence
        return None

    if t == 1:
        found = _first_step_structures(ev)
        fits = later_steps(ev.xs, ev.weights, ev.problem, ev.lr, ev.alpha, ev.tolerances, t)
        other = second() if found or fits else None
        explanations = [] if other is None else _confirm_first_step(found, ev, other) + _confirm_later(fits, other, t)
        if explanations:
            return (describe(cheapest(simplest(explanations)))
                    + f"\nConfirmed on a second case: {other.case.describe()}.")
        plain = [m for (variant, placement, decay), m in found if (variant, placement, decay) == (None, None, None)]
        measured = (f"X_1 is dlnref's step with a factor {plain[0].F[0]:.6g} on every layer, which no known cause "
                    "explains on a second case" if plain else
                    f"X_1 is no step of dlnref's with a factor, alpha placed elsewhere, weight decay or a known wrong "
                    f"gradient ({len(found)} signature(s) fit this case, none confirmed on a second case)")
        return (f"No known cause fits the first step: {measured}. For the factor of each layer, run "
                "assert_step_matches on your step.")
    fits = later_steps(ev.xs, ev.weights, ev.problem, ev.lr, ev.alpha, ev.tolerances, t)
    other = second() if fits else None
    explanations = _confirm_later(fits, other, t) if other is not None else []
    if explanations:
        return describe(explanations) + f"\nConfirmed on a second case: {other.case.describe()}."
    return (f"No known cause fits: X_1 agrees and X_{t} differs (state carried between steps?); it is no SGD or "
            "Nesterov momentum, decayed or scheduled step size or stale gradient"
            + (" confirmed on a second case" if fits else "") + ".")


def _problem_kind(problem):
    """``problem`` (a registered problem's name) or None (all of :func:`~dlnref.oracle.kinds.oracle_kinds`)."""
    return problem if problem is None else problem_class(problem).name


# --- inferring the loss convention -------------------------------------------------------------------------------
def _infer(kinds, depths, votes_on_case):
    """The convention that most (case, layer) votes name, over :data:`INFER_CASES` fixed cases per kind.

    ``votes_on_case(case) -> (set of conventions that fit the whole case to rounding, list of conventions
    that come within 1e-3 of a layer)``: another bug (a small weight decay, say) does not hide the convention,
    and the check then diagnoses it. Returns ``(convention, note)``; the note says on how many cases it held.
    Where no convention comes near, the check runs under dlnref's and its diagnosis reads the factor.

    Raises
    ------
    AssertionError
        When cases fit different conventions exactly (a count of another problem).
    """
    cases = [c for k in kinds for c in fixed_cases(k, depths, INFER_CASES)]
    whole, votes = [], {}
    for case in cases:
        fits, per_layer = votes_on_case(case)
        whole.append(fits)
        for name in per_layer:
            votes[name] = votes.get(name, 0) + 1
    if not votes:
        return "dlnref", (f"no standard loss convention comes near your update on any of {len(cases)} cases: checked "
                          "under dlnref's")
    best = max(CONVENTIONS, key=lambda name: votes.get(name, 0))
    agree = sum(best in fits for fits in whole)
    conflicting = [(case, fits) for case, fits in zip(cases, whole) if fits and best not in fits]
    if conflicting:
        case, fits = conflicting[0]
        raise AssertionError(
            f"loss='infer': the factor differs between cases: {agree} of {len(cases)} cases fit {best!r}, but on "
            f"case {case.describe()} your step fits {', '.join(map(repr, sorted(fits)))}. A loss divided by a count "
            "that is not the problem's own (|Omega| taken from another mask?) reads so")
    words = CONVENTIONS[best][2]
    if agree == len(cases):
        return best, f"your loss is {words} (loss={best!r}): the same on all {len(cases)} cases; passes under that " \
                     "convention"
    return best, (f"your loss comes nearest to {words} (loss={best!r}): exact on {agree} of {len(cases)} cases, "
                  "the rest differ by something else")


def _step_votes(step_fn, settings):
    def votes(case):
        weights, problem = case.build()
        weights = _rounded(weights, settings.dtype)
        alpha = case_alpha(problem) if settings.outer_lr_scale is None else settings.outer_lr_scale
        new = _call(step_fn, weights, settings.layout, settings.dtype, problem, settings.lr, alpha)
        if isinstance(new, Exception) or [n.shape for n in new] != [w.shape for w in weights]:
            return set(), []
        G = problem.gradient(end_to_end(weights))
        sizes = step_sizes(len(weights), settings.lr, alpha)
        tolerances = update_tolerances(weights, G, sizes, settings.dtype)
        grads = backward(weights, G)
        per_layer, whole = [], None
        for n, w, g, s, tol in zip(new, weights, grads, sizes, tolerances):
            fits = {name for name in CONVENTIONS
                    if np.abs((n - w) + loss_scale(name, problem) * s * g).max()
                    <= max(1.0, loss_scale(name, problem)) * tol}
            ours = s * g
            c = -float(np.vdot(n - w, ours)) / max(float(np.vdot(ours, ours)), 1e-300)
            per_layer += [name for name in CONVENTIONS if abs(c - loss_scale(name, problem)) <= 1e-3 * abs(c)]
            whole = fits if whole is None else whole & fits
        return whole or set(), per_layer
    return votes


def _trajectory_votes(train_fn, settings):
    def votes(case):
        weights, problem = case.build()
        weights = _rounded(weights, settings.dtype)
        alpha = case_alpha(problem) if settings.outer_lr_scale is None else settings.outer_lr_scale
        exact, tolerances = reference_trajectory(problem, weights, settings.lr, alpha, 1, settings.dtype)
        exact = [np.asarray(x, dtype=np.float64) for x in exact]
        move = float(np.abs(exact[1] - exact[0]).max())
        fits, near = set(), []
        for name in CONVENTIONS:
            xs = _user_run(train_fn, weights, problem, settings.lr / loss_scale(name, problem), alpha, 1, settings)
            if not (isinstance(xs, list) and len(xs) == 2 and xs[1].shape == exact[1].shape):
                continue
            difference = float(np.abs(xs[1] - exact[1]).max())
            if difference <= tolerances[1]:
                fits.add(name)
            if difference <= 1e-3 * move:
                near.append(name)
        return fits, near
    return votes


# --- the checks -------------------------------------------------------------------------------------------------------
def assert_backward_matches(backward_fn, *, layout="input_first", dtype=np.float64, max_examples=50, depths=None):
    """Check ``backward_fn(weights, G) -> grads`` against :func:`dlnref.backward`.

    Parameters
    ----------
    backward_fn : callable
        Gets the layers in ``layout`` order and ``G = dLoss/dX`` of shape
        ``(d_L, d_0)``, all NumPy arrays of ``dtype``; returns the L
        gradients of ``<G, W_L ... W_1>`` in the same order (NumPy arrays,
        torch tensors or JAX arrays).
    layout : {"input_first", "output_first"}
    dtype : numpy dtype
        float64 or float32; the tolerance follows it.
    max_examples : int
        Generated cases (derandomized, so every run checks the same ones).
    depths : iterable of int or None
        The depths L your code supports (say ``range(2, 5)``); cases and their shrinking stay within them.

    Raises
    ------
    AssertionError
        On the smallest failing case: the case and a line that rebuilds it,
        the layer and the differences, and every cause that fits.
    """
    check_layout(layout)
    allowed = allowed_depths(depths, 4)
    smallest_failure(lambda case, diagnose: check_backward(backward_fn, case, layout, dtype, diagnose, allowed),
            backward_cases(depths=allowed), max_examples)


def assert_step_matches(step_fn, problem=None, *, lr=0.1, outer_lr_scale=None, layout="input_first",
                        dtype=np.float64, max_examples=30, loss="dlnref", depths=None):
    """Check one gradient-descent step, discrepant rate included, at ``lr`` and ``LR_RATIO * lr``.

    Parameters
    ----------
    step_fn : callable
        ``step_fn(weights, problem, lr, outer_lr_scale) -> new_weights``, with
        the layers in ``layout`` order as NumPy arrays of ``dtype``, and a
        dlnref problem (read ``problem.name``, ``.target``, ``.mask``,
        ``.operators``, ``.y``). dlnref's rule: ``W_l <- W_l - lr s_l dLoss/dW_l``,
        ``s_1 = s_L = outer_lr_scale``, with the loss normalisations of
        :mod:`dlnref.problems`.
    problem : str or None
        A registered problem (:func:`dlnref.problems.problem_names`), or None for every one whose loss states its
        normalisation (:func:`dlnref.oracle.kinds.oracle_kinds`).
    lr : float
        dlnref's step size; under a declared ``loss`` your function gets ``lr / kappa``.
    outer_lr_scale : float or None
        alpha; None (the default) draws one per case that no normalisation
        factor of the case can be mistaken for.
    layout : {"input_first", "output_first"}
    dtype : numpy dtype
    max_examples : int
    loss : str
        Your loss's convention (:data:`dlnref.oracle.conventions.LOSSES`): ``"dlnref"``, ``"sum"``,
        ``"half_sum"``, ``"mean"``, ``"half_mean"``, ``"mean_all"``, ``"half_mean_all"``, or
        ``"infer"`` (inferred on fixed cases, reported, then checked).
    depths : iterable of int or None
        The depths L your code supports; cases, their shrinking and the confirmation cases stay within them.

    Returns
    -------
    str or None
        With ``loss="infer"``, the inferred convention in words.

    Raises
    ------
    AssertionError
        On the smallest failing case: the case and a line that rebuilds it,
        lr, alpha, the layer and the differences, and every confirmed cause.
    """
    check_layout(layout)
    check_loss(loss)
    kind = _problem_kind(problem)
    allowed = allowed_depths(depths, 1 + STEP_INNER_LAYERS)
    note = None
    if loss == "infer":
        kinds = oracle_kinds() if kind is None else (kind,)
        loss, note = _infer(kinds, allowed, _step_votes(step_fn, Settings(lr, outer_lr_scale, layout, dtype,
                                                                            "dlnref", allowed)))
    def check(case, diagnose):
        return _with_note(check_step(step_fn, case, lr, outer_lr_scale, layout, dtype, diagnose, loss, allowed), note)

    smallest_failure(check, problem_cases(kind, STEP_INNER_LAYERS, allowed), max_examples)
    return note


def _with_note(report, note):
    return report if report is None or note is None else f"{report}\n(loss inferred: {note}.)"


def assert_trajectory_matches(train_fn, problem=None, *, steps=20, lr=None, outer_lr_scale=None,
                              layout="input_first", dtype=np.float64, max_examples=10, loss="dlnref", depths=None):
    """Check a whole training run: the end-to-end matrix after every step.

    Parameters
    ----------
    train_fn : callable
        ``train_fn(weights, problem, lr, outer_lr_scale, steps) -> [X_0, ..., X_steps]``,
        the end-to-end matrices ``W_L ... W_1`` before the first update and
        after each one (``steps + 1`` arrays of shape ``(m, n)``, each a copy:
        not a parameter that later steps update in place).
    problem, outer_lr_scale, layout, dtype, max_examples, loss, depths
        As in :func:`assert_step_matches`.
    steps : int
    lr : float or None
        dlnref's step size (your function gets ``lr / kappa``); must lie in :func:`trajectory_lr_range`,
        where dlnref's reference run provably stays bounded; None takes half its upper end.

    Returns
    -------
    str or None
        With ``loss="infer"``, the inferred convention in words.

    Raises
    ------
    ValueError
        When ``lr`` lies outside :func:`trajectory_lr_range`.
    AssertionError
        Naming the case, a line that rebuilds it, the first step whose X
        differs, the differences and the confirmed cause.
    """
    check_layout(layout)
    check_loss(loss)
    kind = _problem_kind(problem)
    allowed = allowed_depths(depths, 1 + TRAJECTORY_INNER_LAYERS)
    low, high = trajectory_lr_range(kind, steps, outer_lr_scale, allowed)
    lr = high / 2 if lr is None else lr
    if not low < lr <= high:
        raise InputError(
            f"lr={lr!r} is outside the range (0, {high:.4g}] in which dlnref's reference run provably stays bounded "
            f"for {kind or 'every kind'} at steps={steps}, outer_lr_scale={outer_lr_scale}: this is a usage error, "
            "not a failure of your code. Pass a smaller lr or fewer steps (see dlnref.oracle.trajectory_lr_range)")
    note = None
    if loss == "infer":
        kinds = oracle_kinds() if kind is None else (kind,)
        loss, note = _infer(kinds, allowed, _trajectory_votes(train_fn, Settings(lr, outer_lr_scale, layout, dtype,
                                                                                  "dlnref", allowed)))
    def check(case, diagnose):
        return _with_note(check_trajectory(train_fn, case, steps, lr, outer_lr_scale, layout, dtype, loss, allowed,
                                           diagnose), note)

    smallest_failure(check, problem_cases(kind, TRAJECTORY_INNER_LAYERS, allowed), max_examples)
    return note
