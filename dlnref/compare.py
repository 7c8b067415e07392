"""The main job: train the wide and the compressed DLN on one problem and compare.

``run_compare`` returns plain Python data (JSON-ready); the CLI prints it and
:func:`dlnref.plots.plot_compare` draws it.
"""

import dataclasses
import functools

import numpy as np

from .backend import to_numpy
from .compress import compress, parameter_count
from .data import load_movielens
from .network import init_weights
from .problems import MatrixCompletion, make_problem
from .train import DivergenceError, gradient_descent

#: Relative recovery errors at which the steps and seconds are reported.
THRESHOLDS = (1e-1, 1e-2, 1e-3, 1e-4)


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """One comparison run. The defaults are the paper's completion experiment.

    With ``data`` (the path of a MovieLens ``u.data`` file) the problem is the
    completion of those ratings instead of a synthetic one: ``split`` picks the
    train/test split (:func:`dlnref.data.load_movielens`), the wide network has
    inner width ``min(users, items)``, and ``rank`` sets the compressed width
    ``2 * rank``; ``d``, ``fraction`` and ``measurements`` are unused.

    ``lr`` and ``outer_lr_scale`` of None take the paper's values for the
    problem (:data:`PAPER_STEPS`). The wide network always uses
    ``outer_lr_scale = 1`` (plain gradient descent), as in the paper; the
    compressed one uses ``outer_lr_scale``. For sensing the paper's lr 20 was
    tuned for operators with entry std ``1/m``; with dlnref's ``1/sqrt(m)``
    the same dynamics need ``lr = 20 / m``.
    """

    problem: str = "completion"
    d: int = 100
    rank: int = 5
    fraction: float = 0.3
    measurements: int = 4000
    depth: int = 3
    scale: float = 1e-2
    lr: float | None = None
    outer_lr_scale: float | None = None
    width: int | None = None
    steps: int = 20000
    tol: float = THRESHOLDS[-1]
    record_every: int = 1
    seed: int = 0
    backend: str = "numpy"
    data: str | None = None
    split: str = "random"

    def resolved(self):
        """A copy with the paper's lr and outer_lr_scale filled in."""
        lr, alpha = PAPER_STEPS[self.problem]
        if self.problem == "sensing":
            lr = lr / self.measurements
        return dataclasses.replace(
            self,
            lr=lr if self.lr is None else self.lr,
            outer_lr_scale=alpha if self.outer_lr_scale is None else self.outer_lr_scale,
            width=2 * self.rank if self.width is None else self.width,
        )


#: The paper's (lr, outer_lr_scale) per problem, in the official code's loss normalisations.
PAPER_STEPS = {"completion": (10.0, 5.0), "factorization": (1.0, 1.0), "sensing": (20.0, 1.0)}


#: The paper's runs (``full``) and reduced ones (``quick``), shared by the
#: theory checks and the figures. ``quick`` keeps the paper's depth, init scale
#: and kind of problem but shrinks d, so that runs take seconds on 2 cores; its
#: step sizes are scaled up for the smaller d. ``full`` uses the paper's
#: settings (PAPER.md): factorization d=100, r=10, lr 1; completion d=100, r=5,
#: p=0.3, lr 10, alpha 5; sensing d=200, r=5, m=4000, lr 20 in the official
#: operator scaling (20/m here).
#: The paper's three synthetic problems, in the order of its figures.
PAPER_PROBLEMS = ("factorization", "completion", "sensing")

SETUPS = {
    "quick": {
        "factorization": CompareConfig(problem="factorization", d=30, rank=3, lr=20.0, outer_lr_scale=1.0,
                                       steps=20000, record_every=5),
        "completion": CompareConfig(problem="completion", d=30, rank=2, fraction=0.5, lr=3.0, outer_lr_scale=3.0,
                                    steps=20000, record_every=5),
        "sensing": CompareConfig(problem="sensing", d=20, rank=2, measurements=400, lr=10.0 / 400,
                                 outer_lr_scale=1.0, steps=20000, record_every=5),
    },
    "full": {
        "factorization": CompareConfig(problem="factorization", d=100, rank=10, steps=300000, record_every=250),
        "completion": CompareConfig(problem="completion", d=100, rank=5, fraction=0.3, steps=60000, record_every=25),
        "sensing": CompareConfig(problem="sensing", d=200, rank=5, measurements=4000, steps=20000, record_every=10),
    },
}


def setup(size, problem, seed=0, **changes):
    """The config of ``problem`` at ``size`` ("quick" or "full"), with ``seed`` and any changes."""
    if size not in SETUPS:
        raise ValueError(f"size must be 'quick' or 'full', got {size!r}")
    return dataclasses.replace(SETUPS[size][problem], seed=seed, **changes)


def build(config):
    """The problem of ``config`` and the starting weights of both networks.

    Returns
    -------
    problem : RecoveryProblem
    starts : dict
        ``{"wide": (weights, 1.0), "compressed": (weights, outer_lr_scale)}``:
        the wide DLN from an orthogonal init (d x d layers), the compressed
        one from :func:`dlnref.compress`. The problem and the wide init come
        from independent child streams of ``config.seed``.
    """
    config = config.resolved()
    problem_seed, init_seed = np.random.SeedSequence(config.seed).spawn(2)
    if config.data is not None:
        ratings = load_movielens(config.data, config.split, seed=np.random.default_rng(problem_seed))
        problem = MatrixCompletion(ratings.matrix, ratings.train, ratings.test, backend=config.backend)
    else:
        problem = make_problem(
            config.problem, (config.d, config.d), config.rank, fraction=config.fraction,
            measurements=config.measurements, seed=problem_seed, backend=config.backend,
        )
    m, n = problem.shape
    dims = [n] + [min(m, n)] * (config.depth - 1) + [m]
    wide = init_weights(dims, config.scale, seed=init_seed, backend=config.backend)
    starts = {
        "wide": (wide, 1.0),
        "compressed": (compress(problem, config.depth, config.width, config.scale), config.outer_lr_scale),
    }
    return problem, starts


def run_compare(config, progress=None, observe=None):
    """Train both networks on the problem of ``config`` and collect the comparison.

    Parameters
    ----------
    config : CompareConfig
    progress : callable or None
        ``progress(network_name)`` returns the per-row callback for
        :func:`dlnref.gradient_descent` (or None).
    observe : callable or None
        Passed on to :func:`dlnref.gradient_descent` for both networks.

    Returns
    -------
    dict
        ``config`` (resolved), and per network (``wide``, ``compressed``):
        ``params``, ``steps_to`` and ``seconds_to`` (threshold string -> value
        or None when not reached), ``final_error``, ``steps_run`` and the
        ``history`` columns; plus ``speedup`` (wide / compressed) per threshold.
    """
    config = config.resolved()
    problem, starts = build(config)
    result = {"config": dataclasses.asdict(config)}
    for name, (weights, alpha) in starts.items():
        callback = progress(name) if progress is not None else None
        try:
            run = gradient_descent(problem, weights, config.lr, config.steps, outer_lr_scale=alpha,
                                   record_every=config.record_every, tol=config.tol, progress=callback,
                                   observe=observe)
        except DivergenceError as error:
            raise DivergenceError(error.step, error.loss, error.lr, network=f"{name} DLN") from None
        result[name] = _summary(run, parameter_count(weights))
    result["speedup"] = {
        kind: {key: _ratio(result["wide"][kind][key], result["compressed"][kind][key]) for key in result["wide"][kind]}
        for kind in ("steps_to", "seconds_to")
    }
    return result


def snapshot_weights(step, weights):
    """``observe`` hook for :func:`dlnref.gradient_descent`: a host copy of every layer."""
    return {"weights": [to_numpy(w) for w in weights]}


@functools.lru_cache(maxsize=None)
def compare_with_snapshots(config):
    """:func:`run_compare` with weight snapshots at each recorded step, computed once per config.

    The theory checks and the figures read the same runs from here.
    """
    return run_compare(config, observe=snapshot_weights)


@functools.lru_cache(maxsize=None)
def problem_of(config):
    """The problem that ``config`` trains on (the one :func:`compare_with_snapshots` uses), built once."""
    return build(config)[0]


def _summary(run, params):
    history = run.history
    columns = [c for c in history.columns if c.endswith("error")]
    best = {}
    if "test_rmse" in history.columns:
        rmse = history["test_rmse"]
        i = min(range(len(rmse)), key=rmse.__getitem__)
        best = {"final_test_rmse": rmse[-1], "best_test_rmse": rmse[i], "best_test_rmse_step": history["step"][i],
                "best_test_rmse_seconds": history["seconds"][i]}
    return {
        "params": params,
        "steps_to": {f"{t:g}": history.first_below(t) for t in THRESHOLDS},
        "seconds_to": {f"{t:g}": history.first_below(t, at="seconds") for t in THRESHOLDS},
        "final_error": history["recovery_error"][-1],
        **{f"final_{c}": history[c][-1] for c in columns if c != "recovery_error"},
        **best,
        "steps_run": run.steps,
        "history": history.columns,
    }


def _ratio(wide, compressed):
    if wide is None or compressed is None or compressed == 0:
        return None
    return wide / compressed
