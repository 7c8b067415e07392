"""The compiled step: whole runs of gradient descent on a small dense problem in one numba call.

On the paper's small problems (d = 100 or 300) a NumPy training step costs
about 20 µs of Python on top of its matmuls, which is most of the compressed
network's step. With numba installed (``pip install "dlnref[fast]"``),
:func:`dlnref.gradient_descent` hands the steps between two recorded rows to
one compiled call instead (the private kernel ``dlnref._dense_kernel``): the
same matmuls through BLAS, into buffers kept across steps, each layer's
update made by the GEMM of its gradient, and the residual, ``dLoss/dX`` and
the loss as compiled loops. A recorded row reads
the residual's squared norms that the step made in the same pass, so it costs
no evaluation of its own.

It is taken (``engine="auto"``) when all of these hold, and otherwise the
NumPy step (:func:`dlnref.train.gradient_step`), the readable reference, runs:

- numba can be imported, and the environment variable ``DLNREF_ENGINE`` is
  not ``numpy``;
- the problem is one of the built-in dense problems itself, not a subclass:
  :class:`~dlnref.MatrixFactorization`, :class:`~dlnref.MatrixCompletion` or
  :class:`~dlnref.MatrixSensing`;
- the problem and the weights are NumPy arrays of one dtype, float64 or float32;
- the target has fewer than :data:`COMPILED_MAX_ENTRIES` entries, or the top
  layer is wide (``d_{L-1} >`` :data:`THIN_MAX_WIDTH`): a thin network on a
  larger target takes the NumPy step, whose completion step is fused by blocks
  of rows and measured as fast or faster (``benchmarks/bench_vs_jax.py``).

The two agree to rounding, not bit for bit: the kernel makes the same
matmuls in the same order, but its BLAS is the one numba calls (SciPy's), its
updates round inside the GEMM, and its blocks sum in another order than
NumPy's (``tests/test_compiled.py`` derives the bound).
"""

import os

import numpy as np

from .backend import is_numpy
from .errors import InputError
from .problems.completion import FUSED_MAX_WIDTH, MatrixCompletion, NormsEvaluation, ResidualNorms
from .problems.dense import ResidualEvaluation
from .problems.factorization import MatrixFactorization
from .problems.sensing import MatrixSensing

#: The compiled step applies to thin networks on targets with fewer entries than this (the threshold of
#: :data:`dlnref.problems.completion.FUSED_MIN_ENTRIES`), and to wide ones on any target.
COMPILED_MAX_ENTRIES = 1 << 18

#: A block of the thin top layer's rows holds about this many entries of ``X`` (see :func:`block_rows`).
BLOCK_ENTRIES = 1 << 13

#: A top layer at most this wide goes by blocks of rows (the fused completion step's
#: :data:`dlnref.problems.completion.FUSED_MAX_WIDTH`).
THIN_MAX_WIDTH = FUSED_MAX_WIDTH

#: ``engine`` values of :func:`dlnref.gradient_descent`: "auto" takes the compiled step where it applies.
ENGINES = ("auto", "numba", "numpy")

#: The environment variable that turns the compiled step off for ``engine="auto"`` when set to ``numpy``.
ENGINE_VARIABLE = "DLNREF_ENGINE"

#: Problem classes the kernel knows, and their kind there (the kernel's ``FACTORIZATION``, ``COMPLETION``, ``SENSING``).
KINDS = {MatrixFactorization: 0, MatrixCompletion: 1, MatrixSensing: 2}


def numba_available():
    """Whether numba can be imported (it is imported only here, once a training could use it)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def unfit_reason(problem, weights):
    """Why the compiled step does not apply to training ``weights`` on ``problem``, or None where it does.

    Parameters
    ----------
    problem : dlnref.problems.Problem
    weights : list of array, W_l of shape (d_l, d_{l-1})

    Returns
    -------
    str or None
    """
    if type(problem) not in KINDS:
        return (f"the problem is a {type(problem).__name__}; the compiled step knows only "
                f"{', '.join(kind.__name__ for kind in KINDS)} themselves")
    if not is_numpy(problem.xp) or not all(isinstance(W, np.ndarray) for W in weights):
        return "the problem or the weights are not NumPy arrays"
    dtypes = {problem.target.dtype, *(W.dtype for W in weights)}
    if type(problem) is MatrixSensing:
        dtypes.add(problem.operators.dtype)
    if len(dtypes) != 1 or dtypes.pop() not in (np.float64, np.float32):
        return "the problem and the weights are not all float64, or all float32"
    m, n = problem.shape
    if m * n >= COMPILED_MAX_ENTRIES and len(weights) > 1 and weights[-1].shape[1] <= THIN_MAX_WIDTH:
        return (f"the target has {m * n} entries, not fewer than {COMPILED_MAX_ENTRIES}, and the top layer is thin "
                f"(d_(L-1) = {weights[-1].shape[1]} <= {THIN_MAX_WIDTH}): the NumPy step is as fast there or faster "
                "(the completion step is fused by blocks of rows)")
    return None


def block_rows(problem, dims):
    """Rows of ``X`` per block of the kernel's top layer: about :data:`BLOCK_ENTRIES` entries for a thin one, else all.

    Sensing's ``dLoss/dX`` needs all of ``X``, and so does a wide top layer
    (``d_{L-1} > THIN_MAX_WIDTH``), whose GEMMs run fastest whole, as does a depth-1 network.
    """
    m, n = problem.shape
    if type(problem) is MatrixSensing or len(dims) < 3 or dims[-2] > THIN_MAX_WIDTH:
        return m
    return min(m, max(1, BLOCK_ENTRIES // n))


def compiled_run(problem, weights, engine="auto"):
    """The compiled step of a run of ``weights`` on ``problem``, or None where the NumPy step runs.

    Parameters
    ----------
    problem : dlnref.problems.Problem
    weights : list of array
    engine : {"auto", "numba", "numpy"}
        "auto": compiled where it applies (see the module's notes) and numba is installed, unless the
        environment variable ``DLNREF_ENGINE`` is ``numpy``; "numba": compiled or an error; "numpy": never.

    Returns
    -------
    CompiledRun or None

    Raises
    ------
    InputError
        For an unknown ``engine``, or ``engine="numba"`` where numba is missing or the step does not apply.
    """
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "numpy" or (engine == "auto" and os.environ.get(ENGINE_VARIABLE, "").strip().lower() == "numpy"):
        return None
    reason = unfit_reason(problem, weights)
    if reason is None and not numba_available():
        reason = 'numba is not installed (pip install "dlnref[fast]")'
    if reason is not None:
        if engine == "numba":
            raise InputError(f"engine='numba' cannot run this training: {reason}; use engine='auto' or 'numpy'")
        return None
    return CompiledRun(problem, weights)


class CompiledRun:
    """Buffers and the kernel's arguments for one training run; :meth:`step` and :meth:`leap` serve :func:`dlnref.train.descend`.

    Parameters
    ----------
    problem : MatrixFactorization, MatrixCompletion or MatrixSensing
    weights : list of ndarray
        The starting weights (their shapes and dtype are read; they are never written).
    """

    def __init__(self, problem, weights):
        from . import _dense_kernel

        self.kernel = _dense_kernel.run_steps
        self.problem = problem
        dtype = problem.target.dtype
        self.dtype = dtype
        m, n = problem.shape
        empty = np.zeros((0, 0), dtype=dtype)
        self.kind = KINDS[type(problem)]
        self.target = np.ascontiguousarray(problem.target)
        self.weight = empty
        self.unobserved_weight = self.test_weight = empty
        self.operators, self.measured = np.zeros((0, m * n), dtype=dtype), np.zeros(0, dtype=dtype)
        if self.kind == KINDS[MatrixCompletion]:
            observed = np.ascontiguousarray(problem.mask, dtype=dtype)
            self.weight = observed / problem.observed          # as the problem's own dLoss/dX: mask / |Omega|
            self.unobserved_weight = 1 - observed
            self.test_weight = (np.zeros_like(self.target) if problem.test_weight is None
                                else np.ascontiguousarray(problem.test_weight, dtype=dtype))
        if self.kind == KINDS[MatrixSensing]:
            self.operators = np.ascontiguousarray(problem.operators.reshape(problem.measurements, m * n))
            self.measured = np.ascontiguousarray(problem.y)
        self.divisor = dtype.type(m * n)
        dims = [weights[0].shape[1]] + [W.shape[0] for W in weights]
        # prefixes[j] holds P_{j+1}, j = 1..L-2, and downs[j] holds D_{j+1}, j = 0..L-2; prefixes[0] is never read
        # (P_1 = W_1), and a 0 x 0 array holds the place of each for shallow networks (the kernel takes tuples)
        self.prefixes = (empty, *(np.empty((d, dims[0]), dtype=dtype) for d in dims[2:-1]))
        self.downs = tuple(np.empty((d, dims[0]), dtype=dtype) for d in dims[1:-1]) or (empty,)
        self.X = np.empty((m, n), dtype=dtype)
        rows = block_rows(problem, dims)
        self.block_X, self.block_G, self.scratch = (np.empty((rows, n), dtype=dtype) for _ in range(3))
        self.measures = np.zeros(3)
        self.gemm = _dense_kernel.blas_gemm(dtype)

    def run(self, weights, sizes, count, record):
        """``count`` updates of fresh copies of ``weights``; returns the losses (states before each update) and the copies.

        With ``count`` 0, the weights are only evaluated (and returned as they are).
        """
        state = tuple(np.array(W, dtype=self.dtype, order="C", copy=True if count > 0 else None) for W in weights)
        losses = np.empty(max(count, 1))
        done = self.kernel(self.gemm, state, sizes, count, self.kind, self.target, self.weight, self.operators,
                           self.measured, self.divisor, self.prefixes, self.downs, self.X, self.block_X,
                           self.block_G, self.scratch, self.measures, self.unobserved_weight, self.test_weight, record,
                           losses)
        return losses[:done], list(state)

    def step_sizes(self, sizes):
        """The per-layer step sizes as the kernel takes them: an array of the weights' dtype."""
        return np.asarray(sizes, dtype=self.dtype)

    def evaluation(self, loss, weights):
        """What ``problem.errors`` reads of the state ``weights`` just run: the residual's norms (completion), else the residual.

        Like the NumPy step's, it lives in buffers that the next call overwrites
        (the residual ``X - M``, and ``P_{L-1}``, the factor ``right`` of ``X = W_L P_{L-1}``).
        """
        depth = len(weights)
        right = None if depth == 1 else weights[0] if depth == 2 else self.prefixes[depth - 2]
        if self.kind == KINDS[MatrixCompletion]:
            total, unobserved, test = (float(value) for value in self.measures)
            return NormsEvaluation(np.asarray(loss), None, weights[-1], right, ResidualNorms(total, unobserved, test))
        return ResidualEvaluation(np.asarray(loss), None, weights[-1], right, self.X)

    def stepper(self, sizes):
        """``(step, leap)`` for :func:`dlnref.train.descend` at the per-layer step sizes ``sizes``."""
        sizes = self.step_sizes(sizes)

        def step(t, weights, update, record):
            losses, updated = self.run(weights, sizes, int(update), record)
            loss = float(losses[0])
            return loss, self.evaluation(loss, weights) if record else None, updated

        def leap(t, weights, count):
            losses, updated = self.run(weights, sizes, count, False)
            return losses.tolist(), updated

        return step, leap
