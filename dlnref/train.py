"""Training: the one loop, and the paper's gradient-descent step with per-layer (discrepant) step sizes.

:func:`descend` is the one training loop of dlnref: it owns recording,
timing, ``tol``, ``patience`` and divergence. Each family that trains hands
it a step: :func:`gradient_descent` the paper's step on a DLN
(:func:`gradient_step`), :func:`dlnref.train_exact` the step of the exact
compression, :func:`dlnref.nn.mlp.train_mlp` the MLP's.

This is also the one place where a problem and a network meet: the problem
gives ``dLoss/dX`` at the end-to-end matrix (or its products with the
factors), the network turns it into per-layer gradients.
"""

import contextlib
import dataclasses
import functools
import math
import time
import warnings

import numpy as np

from ._checks import check_int, check_positive
from .backend import array_namespace, is_numpy
from .compiled import compiled_run
from .errors import InputError, InputTypeError
from .network import backprop, forward_products, layer_dims
from .problems import check_problem

#: A matmul whose thinnest side is at most this size is bound by memory, not by
#: flops, and so is every element-wise pass: on a 2-core machine such steps run
#: faster on one BLAS thread, as thread hand-off costs more than it saves
#: (see benchmarks/bench_step.py).
SINGLE_THREAD_MAX_WIDTH = 256

#: Fraction of the stability limit ``2 / sharpness`` that :func:`auto_lr` takes
#: (on the paper's completion run, 1.5 times the limit diverged and the limit itself converged).
AUTO_LR_SAFETY = 0.5


#: Times ``lr="auto"`` is halved after a divergence, training again from the start, before it gives up.
AUTO_LR_HALVINGS = 3


class DivergenceError(FloatingPointError):
    """Training diverged: the loss became inf or NaN (or, for the MLP, blew up; see :func:`dlnref.nn.mlp.train_mlp`).

    Attributes
    ----------
    step : int
        The step at which the diverged loss was seen.
    loss : float
    lr : float
    auto : bool
        True when ``lr="auto"`` chose ``lr`` (after ``halvings`` halvings).
    network : str or None
        Which network diverged (say "compressed DLN"), where the caller trains several.
    halvings : int
        How many times ``lr="auto"`` had already been halved after a divergence (:func:`halving_on_divergence`).
    """

    def __init__(self, step, loss, lr, auto=False, network=None, advice=None, halvings=0):
        self.step, self.loss, self.lr, self.auto, self.network = step, loss, lr, auto, network
        self.advice, self.halvings = advice, halvings
        advice = advice or f"Try a smaller lr (say {lr / 2:g}), a smaller outer_lr_scale, or a smaller init scale."
        if auto:
            chosen = "lr='auto' chose this lr" + (f" and halved it {halvings} times after divergences" if halvings else "")
            advice = (f"{chosen}: the automatic step size failed, which is a bug in dlnref, not a problem with your "
                      f"input; please report it. Meanwhile: {advice}")
        super().__init__(f"{'the ' + network if network else 'training'} diverged: the loss is {loss} "
                         f"at step {step} (lr={lr:g}). {advice}")

    def renamed(self, network=None, advice=None, halvings=None, auto=None):
        """The same divergence, naming ``network``, giving ``advice``, and so on (where not None)."""
        return DivergenceError(self.step, self.loss, self.lr, self.auto if auto is None else auto,
                               network or self.network, advice or self.advice,
                               self.halvings if halvings is None else halvings)


def halving_on_divergence(train, lr, auto, say):
    """``train(lr)``; with ``auto``, after a divergence, ``train(lr / 2)`` again, at most :data:`AUTO_LR_HALVINGS` times.

    How ``lr="auto"`` backs off where its estimate of the stability limit is
    too high (:func:`auto_lr`, say on ratings whose sampling is far from
    uniform): each halving is said through ``say``, and the caller records
    how many there were.

    Parameters
    ----------
    train : callable
        ``train(lr)`` trains from the start; it raises :class:`DivergenceError` on divergence.
    lr : float
    auto : bool
        Whether ``lr="auto"`` chose ``lr``; a given lr is never changed.
    say : callable
        ``say(line)`` for each halving.

    Returns
    -------
    value, lr, halvings
        What ``train`` returned, the lr it ran at, and the halvings made.

    Raises
    ------
    DivergenceError
        With ``auto`` and ``halvings`` set, when the last try diverged too (or at once, without ``auto``).
    """
    halvings = 0
    while True:
        try:
            return train(lr), lr, halvings
        except DivergenceError as error:
            if not auto or halvings == AUTO_LR_HALVINGS:
                raise DivergenceError(error.step, error.loss, lr, auto, error.network, error.advice,
                                      halvings) from None
            where = f"the {error.network}" if error.network else "training"
            say(f"lr=auto: {where} diverged at step {error.step} with lr {lr:.4g}; halving it to {lr / 2:.4g} "
                "and training again from the start")
            lr, halvings = lr / 2, halvings + 1


@dataclasses.dataclass
class History:
    """What :func:`gradient_descent` records, one row per recorded step.

    Attributes
    ----------
    columns : dict of str -> list
        Always ``step`` (updates applied so far), ``loss``, ``recovery_error``
        and ``seconds`` (wall time since training began), as Python scalars;
        plus the problem's ``metrics`` (say ``unobserved_error`` for
        completion), also Python floats; plus whatever ``observe`` returned,
        stored as given: arrays stay arrays of the weights' backend (say the
        singular values of ``X(t)``). ``np.array(history["name"])`` stacks
        NumPy ones into a ``(T, ...)`` array; on another backend, have
        ``observe`` return ``dlnref.to_numpy(...)`` to keep host copies.

    Examples
    --------
    Record the singular values of ``X`` every 10 steps and find when the
    loss first fell below 1e-6::

        from dlnref.dynamics import singular_values
        run = gradient_descent(problem, weights, lr, steps, record_every=10,
                               observe=lambda step, W: {"sigma": singular_values(end_to_end(W))})
        run.history["sigma"]                    # T arrays of shape (min(m, n),)
        run.history.first_below(1e-6, "loss")   # a step, or None
    """

    columns: dict = dataclasses.field(default_factory=dict)

    def append(self, row):
        """Add one row, a dict of column -> value (a Python scalar or, from ``observe``, any object)."""
        for key, value in row.items():
            self.columns.setdefault(key, []).append(value)

    def __getitem__(self, column):
        return self.columns[column]

    def __len__(self):
        return len(self.columns.get("step", []))

    def first_below(self, threshold, column="recovery_error", at="step"):
        """Value of column ``at`` at the first row where ``column <= threshold``, or None."""
        for value, reached in zip(self.columns[column], self.columns[at]):
            if value <= threshold:
                return reached
        return None

    def first_above(self, threshold, column, at="step"):
        """Value of column ``at`` at the first row where ``column >= threshold``, or None.

        For measures that grow, say an observed alignment or a singular value of ``X``.
        """
        for value, reached in zip(self.columns[column], self.columns[at]):
            if value >= threshold:
                return reached
        return None


@dataclasses.dataclass
class TrainResult:
    """Outcome of :func:`gradient_descent`.

    Attributes
    ----------
    weights : list of array
        The final ``[W_1, ..., W_L]``, on the backend they came in on.
    history : History
    steps : int
        Number of updates applied.
    converged : bool
        True if training stopped because the recovery error reached ``tol``.
    lr : float
        The step size used (for ``lr="auto"``, the one :func:`auto_lr` chose,
        halved ``lr_halvings`` times).
    stopped_early : bool
        True if ``validation_rmse`` stopped improving for ``patience`` rows.
    lr_halvings : int
        How often ``lr="auto"`` was halved after a divergence (:func:`halving_on_divergence`).
    """

    weights: list
    history: History
    steps: int
    converged: bool
    lr: float = float("nan")
    stopped_early: bool = False
    lr_halvings: int = 0


def step_sizes(depth, lr, outer_lr_scale=1.0):
    """Per-layer step sizes ``lr * s_l`` of the discrepant rule.

    ``s_1 = s_L = outer_lr_scale`` (the paper's alpha) and ``s_l = 1`` for the
    inner layers l = 2..L-1.

    Returns
    -------
    list of float, length ``depth``
    """
    return [lr * (outer_lr_scale if l in (0, depth - 1) else 1.0) for l in range(depth)]


def auto_lr(problem, depth, outer_lr_scale=1.0):
    r"""A step size from the problem: half the stability limit where the spectral init's run ends.

    Parameters
    ----------
    problem : RecoveryProblem or SparseCompletion
        Supplies ``top_singular`` and ``curvature``.
    depth : int
        Number of layers L.
    outer_lr_scale : float
        The paper's alpha (the outer layers' step scale).

    Returns
    -------
    float
        ``lr = AUTO_LR_SAFETY * 2 / S`` with the sharpness

        .. math::

            S = L\, g\, s_1^{2 - 2/L}\, c,

        where ``s_1`` is the surrogate's top singular value (an estimate of the
        target's, from above for sampled data), ``g = (prod_l s_l)^(1/L)`` the
        geometric mean of the layer scales (``alpha^(2/L)`` for L > 2), and
        ``c = problem.curvature(u, v)`` the loss's curvature along ``u v^T`` for
        the flat unit vectors ``u = 1/sqrt(m)``, ``v = 1/sqrt(n)`` (a low-rank
        target's singular vectors are spread): ``1/(m n)`` for factorization
        and completion (``|Omega| / (m n)`` entries of weight ``1/|Omega|``),
        about 1 for sensing.

    Notes
    -----
    Gradient descent on the layers with scales ``s_l`` keeps
    ``W_{l+1}^T W_{l+1} / s_{l+1} - W_l W_l^T / s_l`` fixed, so from a small
    init a mode of size ``s`` ends with layer factors ``a_l^2 = s_l c``,
    ``c = s^(2/L) / g``. Each layer then moves ``X`` along ``u v^T`` at the
    rate ``s_l prod_{k != l} a_k^2 = g s^(2 - 2/L)``, so the preconditioned
    Hessian along the top mode is ``S``, and gradient descent is stable while
    ``lr * S < 2``. The spectral init starts on the top singular vectors, and
    the sharpness grows towards ``S`` as the top mode is learnt. Measured:
    the paper's completion run (d = 100, p = 0.3, L = 3, alpha = 5) has
    ``2 / S = 34``; at lr 34 both networks converge, at lr 51 the compressed one
    no longer does, its error wandering between 0.3 and 0.6 (the paper's lr 10
    is 0.29 of the limit). On MovieLens-like ratings (skewed sampling) ``2 / S`` is
    1.9 at L = 3 (lr 2.5 diverges) and 34 at L = 2 (lr 10 converges).
    """
    depth = check_int("depth", depth, 1)
    outer_lr_scale = check_positive("outer_lr_scale", outer_lr_scale)
    m, n = problem.shape
    xp = problem.xp
    s = problem.top_singular(1)[1]
    curvature = problem.curvature(xp.ones(m) / m**0.5, xp.ones(n) / n**0.5)
    g = math.prod(step_sizes(depth, 1.0, outer_lr_scale)) ** (1 / depth)
    sharpness = depth * g * float(s[0]) ** (2 - 2 / depth) * curvature
    if not sharpness > 0:
        raise InputError("the problem's surrogate or its curvature is zero: there is nothing to learn")
    return AUTO_LR_SAFETY * 2 / sharpness


def gradient_step(problem, weights, sizes, record=True):
    """One step of the paper's gradient descent: forward, ``dLoss/dX``, backward, update.

    Parameters
    ----------
    problem : dlnref.problems.Problem
    weights : list of array, W_l of shape (d_l, d_{l-1})
    sizes : list of float
        The per-layer step sizes ``lr * s_l`` (:func:`step_sizes`).
    record : bool
        False when ``problem.errors`` will not read the evaluation (see ``problem.evaluate``).

    Returns
    -------
    evaluation : dlnref.problems.Evaluation
        Loss and ``dLoss/dX`` at the given weights, as the problem's
        :class:`~dlnref.problems.FactorGradients` when L >= 2.
    weights : list of array
        ``W_l - lr s_l (W_L ... W_{l+1})^T G (W_{l-1} ... W_1)^T``.
    """
    prefixes, evaluation = forward(problem, weights, record)   # P_l = W_l ... W_1; loss and G at X = W_L P_{L-1}
    if len(weights) == 1:
        grads = [evaluation.gradient]                           # dW_1 = G
    else:
        dW_L, D = evaluation.gradient                            # G P_{L-1}^T and D_{L-1} = W_L^T G, from the problem
        grads = [*backprop(weights[:-1], D, prefixes), dW_L]     # dW_l = (W_{L-1} ... W_{l+1})^T D_{L-1} P_{l-1}^T
    return evaluation, [W - size * g for W, size, g in zip(weights, sizes, grads)]


def forward(problem, weights, record=True):
    """Prefix products ``[P_1, ..., P_{L-1}]`` and ``problem.evaluate`` at ``X = W_L P_{L-1}`` (``W_1`` if L = 1).

    The evaluation's gradient comes factored (``factored=True``):
    back-propagation needs only ``G``'s products with ``W_L`` and ``P_{L-1}``.
    """
    prefixes = forward_products(weights[:-1]) if len(weights) > 1 else []
    return prefixes, problem.evaluate(weights[-1], prefixes[-1] if prefixes else None, factored=True, record=record)


def gradient_descent(problem, weights, lr, steps, outer_lr_scale=1.0, record_every=1, tol=0.0,
                     progress=None, observe=None, blas_threads="auto", patience=None, engine="auto"):
    r"""Train a DLN on a problem by full-batch gradient descent.

    Parameters
    ----------
    problem : dlnref.problems.Problem
        Supplies ``evaluate`` and ``errors``.
    weights : list of array, W_l of shape (d_l, d_{l-1})
        The starting point; not modified.
    lr : float or "auto"
        Step size eta > 0; "auto" takes :func:`auto_lr`, and halves it after a
        divergence, training again from the start (at most
        :data:`AUTO_LR_HALVINGS` times, each with a ``RuntimeWarning``).
    steps : int
        Maximum number of updates.
    outer_lr_scale : float
        The paper's alpha > 0: the first and last layers take ``alpha * eta``.
    record_every, tol, progress, observe, patience
        As for :func:`descend`: a history row every ``record_every`` steps;
        stop once the recovery error is ``<= tol``; ``progress(step, steps,
        row)`` after each row; ``observe(step, weights)`` adds to the row;
        early stopping on ``validation_rmse``.
    blas_threads : "auto", int or None
        BLAS threads during training (NumPy backend only). "auto" uses one
        thread unless some layer's matmuls are thick on every side (all of
        ``d_l``, ``d_{l-1}``, ``d_0`` above ``SINGLE_THREAD_MAX_WIDTH``), which
        only the wide network's are; None leaves the BLAS setting alone.
    engine : {"auto", "numba", "numpy"}
        Who makes the steps. "auto": the compiled step (:mod:`dlnref.compiled`,
        whole runs of steps between two recorded rows in one numba call) where
        numba is installed and the problem is small, dense and on NumPy, unless
        the environment variable ``DLNREF_ENGINE`` is ``numpy``; else the NumPy
        step :func:`gradient_step`, the reference. "numba" asks for the
        compiled step (an error where it does not apply); "numpy" for the
        NumPy step. The two agree to rounding.

    Returns
    -------
    TrainResult

    Raises
    ------
    InputError
        For weights that hold NaN or inf before training (bad input, not a divergence).
    DivergenceError
        As soon as the loss is inf or NaN (under ``lr="auto"``, after the last halving).

    Notes
    -----
    Each step (:func:`gradient_step`) computes ``X = W_L ... W_1``,
    ``G = dLoss/dX`` and updates

    .. math::

        W_l \leftarrow W_l - \eta\, s_l (W_L \cdots W_{l+1})^T G (W_{l-1} \cdots W_1)^T

    for all layers at once (see :func:`step_sizes` for ``s_l``). Row ``t`` of
    the history describes the weights after ``t`` updates.
    """
    check_problem(problem)
    check_hooks(progress=progress, observe=observe)
    dims = layer_dims(weights)
    if (dims[-1], dims[0]) != tuple(problem.shape):
        raise InputError(
            f"weights give an end-to-end matrix of shape {(dims[-1], dims[0])}, "
            f"but the problem's target has shape {tuple(problem.shape)}"
        )
    xp = array_namespace(*weights)
    if xp is not problem.xp:
        raise InputTypeError("arrays from different backends cannot be mixed: the weights and the problem live on "
                             "different backends; move them to one with dlnref.to_backend or dlnref.to_numpy")
    for l, W in enumerate(weights, start=1):
        if not bool(xp.all(xp.isfinite(W))):
            raise InputError(f"weights[{l - 1}] (W_{l}) contains NaN or inf: start from finite weights")
    outer_lr_scale = check_positive("outer_lr_scale", outer_lr_scale)
    compiled = compiled_run(problem, weights, engine)
    auto, lr = resolve_lr(lr, lambda: auto_lr(problem, len(weights), outer_lr_scale))

    def train(lr):
        sizes = step_sizes(len(weights), lr, outer_lr_scale)
        step, leap = (numpy_step(problem, sizes), None) if compiled is None else compiled.stepper(sizes)
        return descend(step, measure, list(weights), steps, record_every=record_every, tol=tol, patience=patience,
                       progress=progress, observe=observe, divergence=Divergence(lr), leap=leap)

    def measure(t, weights, evaluation):
        return problem.errors(evaluation)

    # A diverging run overflows inside the products before its loss reads inf; the loss check
    # reports it (DivergenceError), so NumPy's overflow warnings would only repeat it as noise.
    with limit_blas_threads(blas_threads, problem.xp, _thinnest_side(dims)), \
            np.errstate(over="ignore", invalid="ignore"):
        return train_with(train, lr, auto)


def numpy_step(problem, sizes):
    """The step of :func:`descend` that :func:`gradient_step` makes (the NumPy reference): one update, or none at the end."""
    def step(t, weights, update, record):
        if update:
            evaluation, updated = gradient_step(problem, weights, sizes, record)
        else:
            evaluation, updated = forward(problem, weights)[1], weights
        return float(evaluation.loss), evaluation, updated

    return step


def check_hooks(**hooks):
    """Raise :class:`InputTypeError` for a hook (``progress``, ``observe``) that is neither None nor callable."""
    for name, hook in hooks.items():
        if hook is not None and not callable(hook):
            raise InputTypeError(f"{name} must be None or a function, got {type(hook).__name__}")


def resolve_lr(lr, automatic):
    """``(auto, lr)``: whether ``lr`` is "auto", and the number, from ``automatic()`` for "auto".

    Raises
    ------
    InputError
        Unless ``lr`` is "auto" or a finite number > 0.
    """
    if isinstance(lr, str) and lr == "auto":
        return True, automatic()
    return False, check_positive("lr", lr)


def train_with(train, lr, auto):
    """``train(lr)`` under :func:`halving_on_divergence` (a ``RuntimeWarning`` per halving), the lr recorded."""
    result, lr, halvings = halving_on_divergence(train, lr, auto, _warn)
    return dataclasses.replace(result, lr=lr, lr_halvings=halvings)


def _warn(line):
    """Say a halving of ``lr="auto"`` as a ``RuntimeWarning``."""
    warnings.warn(line, RuntimeWarning, stacklevel=4)


@dataclasses.dataclass(frozen=True)
class Divergence:
    """When :func:`descend` stops a run as diverged, and what its message says.

    A loss that is inf or NaN always counts; with ``blowup``, so does a loss
    above ``blowup`` times the reference ``max(loss at step 0, floor)`` (:meth:`limit`).

    Attributes
    ----------
    lr : float
        The step size, for the message.
    blowup : float or None
    floor : float
    network : str or None
    advice : str or None
        What to try (None: the default of :class:`DivergenceError`).
    """

    lr: float
    blowup: float = None
    floor: float = 0.0
    network: str = None
    advice: str = None

    def limit(self, first):
        """The largest loss that is no divergence, given the first loss: inf, or ``blowup`` times the reference."""
        return math.inf if self.blowup is None else self.blowup * max(first, self.floor)

    def error(self, step, loss):
        """The :class:`DivergenceError` of ``loss`` at ``step``."""
        return DivergenceError(step, loss, self.lr, network=self.network, advice=self.advice)


def descend(step, measure, state, steps, *, record_every=1, tol=None, patience=None, progress=None, observe=None,
            divergence=None, clock_records=True, leap=None):
    """The one training loop: steps, records, times, stops at ``tol`` or by ``patience``, and diverges.

    Parameters
    ----------
    step : callable
        ``step(t, state, update, record) -> (loss, evaluation, next_state)``:
        the loss at ``state`` (a float, or None where the step computes none),
        what :func:`measure` reads of it, and, with ``update``, the state
        after one update. ``record`` says whether the row is recorded (a step
        may then skip what only ``measure`` reads).
    measure : callable
        ``measure(t, state, evaluation)``, called only for a recorded row:
        the row's numbers at ``state`` (a dict).
    state : object
        The starting point (say the list of weights).
    steps : int
        Most updates.
    record_every : int
        A history row every this many steps, and always at step 0 and at the last step.
    tol : float or None
        Stop at the first row whose ``recovery_error`` is ``<= tol``.
    patience : int or None
        Early stopping on real data: stop once ``validation_rmse`` (the
        problem's validation entries, never its test entries) has not reached
        a new minimum for this many recorded rows.
    progress : callable or None
        ``progress(step, steps, row)`` after each recorded row.
    observe : callable or None
        ``observe(step, state)`` at each recorded step; the dict it returns is
        added to the row, stored as given. Not timed in ``seconds``.
    divergence : Divergence or None
        When a loss counts as diverged (None: inf or NaN).
    clock_records : bool
        Whether ``seconds`` counts the time of ``measure`` (True: the row's
        evaluation is part of training; False: only the steps are timed).
    leap : callable or None
        ``leap(t, state, count) -> (losses, next_state)``: ``count`` updates
        from ``state`` (at step ``t``) in one call, none of whose states is
        recorded, where ``losses[i]`` is the loss at step ``t + i``; it may stop
        early at a loss that is inf or NaN (then the last of ``losses``).
        Given, the steps between two recorded rows are one leap (None: one
        ``step`` each); the numbers must be those of ``step``.

    Returns
    -------
    TrainResult
        Row ``t`` of the history describes the state after ``t`` updates:
        ``step``, ``loss``, the measures, ``seconds`` (of training only), and
        what ``observe`` returned.

    Raises
    ------
    DivergenceError
    """
    steps = check_int("steps", steps, 0)
    record_every = check_int("record_every", record_every, 1)
    tol = None if tol is None else check_positive("tol", tol, allow_zero=True)
    patience = None if patience is None else check_int("patience", patience, 1)
    divergence = divergence or Divergence(float("nan"))
    history, limit, best = History(), None, (math.inf, 0)

    def check(t, loss):
        nonlocal limit
        if loss is not None:
            if limit is None:   # the first loss sets the scale of a blow-up
                limit = divergence.limit(loss)
            if not loss <= limit or loss == math.inf:   # inf, NaN or blown up
                raise divergence.error(t, loss)

    start = time.perf_counter()
    t = 0
    while t <= steps:
        recording = t % record_every == 0 or t == steps
        if leap is not None and not recording:   # every step up to the next row, in one call
            until = min(steps, (t // record_every + 1) * record_every)
            losses, state = leap(t, state, until - t)
            for i, loss in enumerate(losses):
                check(t + i, loss)
            t = until
            continue
        loss, evaluation, updated = step(t, state, t < steps, recording)
        check(t, loss)
        if recording:
            paused = time.perf_counter()
            row = {"step": t, "loss": loss, **measure(t, state, evaluation)}
            stamp = time.perf_counter() if clock_records else paused   # the moment the row's clock reads
            row["seconds"] = stamp - start
            if observe is not None:
                row.update(observe(t, state))
            history.append(row)
            if progress is not None:
                progress(t, steps, row)
            start += time.perf_counter() - stamp   # observe and progress (and an unclocked measure) are not training
            if tol is not None and row["recovery_error"] <= tol:
                return TrainResult(state, history, t, converged=True)
            if patience is not None:
                best = _best_validation(row, best, len(history) - 1)
                if len(history) - 1 - best[1] >= patience:
                    return TrainResult(state, history, t, converged=False, stopped_early=True)
        if t < steps:
            state = updated
        t += 1
    return TrainResult(state, history, steps, converged=False)


def _best_validation(row, best, index):
    """``(lowest validation_rmse, its row index)`` after one more row."""
    if "validation_rmse" not in row:
        raise InputError("patience needs a problem with validation entries (validation_rmse), got none")
    return (row["validation_rmse"], index) if row["validation_rmse"] < best[0] else best


def _thinnest_side(dims):
    """Largest, over layers l >= 2, of the thinnest side ``min(d_l, d_{l-1}, d_0)`` of its matmuls."""
    return max((min(dims[l], dims[l - 1], dims[0]) for l in range(2, len(dims))), default=1)


def limit_blas_threads(threads, xp, thinnest=None):
    """Context that limits NumPy's BLAS threads during training (a no-op on other backends, or for None).

    Parameters
    ----------
    threads : "auto", int or None
        "auto": one thread unless ``thinnest`` (the thinnest side of the
        step's thickest matmul) is above :data:`SINGLE_THREAD_MAX_WIDTH`.
    xp : namespace
    thinnest : int or None
    """
    if threads is None or not is_numpy(xp):
        return contextlib.nullcontext()
    if threads == "auto":
        if thinnest is not None and thinnest > SINGLE_THREAD_MAX_WIDTH:
            return contextlib.nullcontext()
        threads = 1
    return blas_controller().limit(limits=check_int("blas_threads", threads, 1), user_api="blas")


@functools.cache
def blas_controller():
    """A ``threadpoolctl.ThreadpoolController`` of the BLAS libraries loaded, made once per process.

    Making one scans every loaded library, about 2 ms: on small problems, more
    than the whole training run, so :func:`limit_blas_threads` reuses it.
    NumPy's and SciPy's BLAS (the one the compiled step calls) are loaded
    first; a BLAS loaded later in the process is not limited.
    """
    import scipy.linalg.blas  # noqa: F401  (SciPy's BLAS loaded, so that the controller holds it)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()
