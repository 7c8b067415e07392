"""Full-batch gradient descent with per-layer (discrepant) step sizes.

This is the one place where a problem and a network meet: the problem gives
``G = dLoss/dX`` at the end-to-end matrix, the network turns ``G`` into
per-layer gradients.
"""

import contextlib
import dataclasses
import math
import time

from ._checks import check_int, check_positive
from .backend import array_namespace, is_numpy
from .network import _backprop, _prefix_products, layer_dims

#: Steps whose widths, and whose problem data per side, are at most this size train
#: faster with one BLAS thread than with several on a 2-core machine: thread
#: hand-off costs more than the matmuls save (see benchmarks/bench_step.py).
SINGLE_THREAD_MAX_WIDTH = 256


class DivergenceError(FloatingPointError):
    """The training loss became inf or NaN.

    Attributes
    ----------
    step : int
        The step at which the non-finite loss was seen.
    loss : float
    lr : float
    network : str or None
        Which network diverged (say "compressed DLN"), where the caller trains several.
    """

    def __init__(self, step, loss, lr, network=None, advice=None):
        self.step, self.loss, self.lr, self.network = step, loss, lr, network
        advice = advice or f"Try a smaller lr (say {lr / 2:g}), a smaller outer_lr_scale, or a smaller init scale."
        super().__init__(f"{'the ' + network if network else 'training'} diverged: the loss is {loss} "
                         f"at step {step} (lr={lr:g}). {advice}")


@dataclasses.dataclass
class History:
    """What :func:`gradient_descent` records, one row per recorded step.

    Attributes
    ----------
    columns : dict of str -> list
        Always ``step`` (updates applied so far), ``loss``, ``recovery_error``
        and ``seconds`` (wall time since training began); plus the problem's
        ``metrics`` (say ``unobserved_error`` for completion). Python scalars.
    """

    columns: dict = dataclasses.field(default_factory=dict)

    def append(self, row):
        """Add one row, a dict of column -> Python scalar."""
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
    """

    weights: list
    history: History
    steps: int
    converged: bool


def step_sizes(depth, lr, outer_lr_scale=1.0):
    """Per-layer step sizes ``lr * s_l`` of the discrepant rule.

    ``s_1 = s_L = outer_lr_scale`` (the paper's alpha) and ``s_l = 1`` for the
    inner layers l = 2..L-1.

    Returns
    -------
    list of float, length ``depth``
    """
    return [lr * (outer_lr_scale if l in (0, depth - 1) else 1.0) for l in range(depth)]


def gradient_descent(problem, weights, lr, steps, outer_lr_scale=1.0, record_every=1, tol=0.0,
                     progress=None, observe=None, blas_threads="auto"):
    """Train a DLN on a problem by full-batch gradient descent.

    Parameters
    ----------
    problem : RecoveryProblem
        Supplies ``loss_and_gradient``, ``recovery_error`` and ``metrics``.
    weights : list of array, W_l of shape (d_l, d_{l-1})
        The starting point; not modified.
    lr : float
        Step size eta > 0.
    steps : int
        Maximum number of updates.
    outer_lr_scale : float
        The paper's alpha > 0: the first and last layers take ``alpha * eta``.
    record_every : int
        Record a history row every this many steps (and always at step 0 and
        at the last step).
    tol : float
        Stop at the first recorded step whose recovery error is ``<= tol``.
    progress : callable or None
        Called as ``progress(step, steps, row)`` after each recorded row.
    observe : callable or None
        Called as ``observe(step, weights)`` at each recorded step; the dict
        it returns is added to the row (say singular values or a snapshot,
        from :mod:`dlnref.dynamics`). Not timed in ``seconds``.
    blas_threads : "auto", int or None
        BLAS threads during training (NumPy backend only). "auto" uses one
        thread when every width, and the square root of the problem's
        ``entries_per_step``, is at most ``SINGLE_THREAD_MAX_WIDTH``, where one
        thread is the faster; None leaves the BLAS setting alone.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        For weights that hold NaN or inf before training (bad input, not a divergence).
    DivergenceError
        As soon as the loss is inf or NaN.

    Notes
    -----
    Each step computes ``X = W_L ... W_1``, ``G = dLoss/dX`` and updates

        W_l <- W_l - eta s_l (W_L ... W_{l+1})^T G (W_{l-1} ... W_1)^T

    for all layers at once (see :func:`step_sizes` for ``s_l``). Row ``t`` of
    the history describes the weights after ``t`` updates.
    """
    dims = layer_dims(weights)
    if (dims[-1], dims[0]) != problem.shape:
        raise ValueError(
            f"weights give an end-to-end matrix of shape {(dims[-1], dims[0])}, "
            f"but the problem's target has shape {problem.shape}"
        )
    xp = array_namespace(problem.target, *weights)
    for l, W in enumerate(weights, start=1):
        if not bool(xp.all(xp.isfinite(W))):
            raise ValueError(f"weights[{l - 1}] (W_{l}) contains NaN or inf: start from finite weights")
    lr = check_positive("lr", lr)
    outer_lr_scale = check_positive("outer_lr_scale", outer_lr_scale)
    steps = check_int("steps", steps, 0)
    record_every = check_int("record_every", record_every, 1)
    tol = check_positive("tol", tol, allow_zero=True)
    sizes = step_sizes(len(weights), lr, outer_lr_scale)
    with _blas_threads(blas_threads, problem.xp, max(*dims, math.isqrt(problem.entries_per_step))):
        return _descend(problem, list(weights), sizes, steps, record_every, tol, progress, observe, lr)


def _descend(problem, weights, sizes, steps, record_every, tol, progress, observe, lr):
    history = History()
    start = time.perf_counter()
    for step in range(steps + 1):
        prefixes = _prefix_products(weights)
        loss, G = problem._loss_and_gradient(prefixes[-1])  # shapes and backend were checked above
        loss = float(loss)
        if not math.isfinite(loss):
            raise DivergenceError(step, loss, lr)
        if step % record_every == 0 or step == steps:
            row = _record(problem, prefixes[-1], step, loss, start)
            if observe is not None:
                paused = time.perf_counter()
                row.update(observe(step, weights))
                start += time.perf_counter() - paused
            history.append(row)
            if progress is not None:
                progress(step, steps, row)
            if row["recovery_error"] <= tol:
                return TrainResult(weights, history, step, converged=True)
        if step == steps:
            break
        grads = _backprop(weights, G, prefixes)
        weights = [W - size * g for W, size, g in zip(weights, sizes, grads)]
    return TrainResult(weights, history, steps, converged=False)


def _record(problem, X, step, loss, start):
    residual = X - problem.target  # one residual for every error measure of the row
    row = {"step": step, "loss": loss, "recovery_error": float(problem._recovery_error(residual))}
    row.update({name: float(value) for name, value in problem._metrics(residual).items()})
    row["seconds"] = time.perf_counter() - start
    return row


def _blas_threads(threads, xp, size):
    """Context that limits NumPy's BLAS threads during training (see ``gradient_descent``)."""
    if threads is None or not is_numpy(xp):
        return contextlib.nullcontext()
    if threads == "auto":
        if size > SINGLE_THREAD_MAX_WIDTH:
            return contextlib.nullcontext()
        threads = 1
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=check_int("blas_threads", threads, 1), user_api="blas")
