"""The main job: train the wide and the compressed DLN on one problem and compare.

``run_compare`` returns plain Python data (JSON-ready); the CLI prints it and
:func:`dlnref.plots.plot_compare` draws it.
"""

import dataclasses
import functools
import math
import os

import numpy as np

from .._checks import check_choice, check_fraction, check_int, check_positive
from ..als import als
from ..backend import BACKENDS, to_numpy
from ..compress import compress, parameter_count
from ..compress_exact import compress_exact, train_exact
from ..data import MOVIELENS_SPLITS, load_movielens, split_entries
from ..errors import InputError, InputTypeError
from ..network import init_weights
from ..problems import RecoveryProblem, SparseCompletion, make_problem, paper_problems, problem_class, problem_names
from ..problems.completion import DENSE_MAX_SIDE
from ..train import DivergenceError, auto_lr, gradient_descent, halving_on_divergence
from ._memory import BYTES_PER_ENTRY, check_fits

#: Relative recovery errors at which the steps and seconds are reported.
THRESHOLDS = (1e-1, 1e-2, 1e-3, 1e-4)


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """One comparison run. The defaults are the paper's completion experiment, with ``lr="auto"``.

    With ``data`` (the path of a MovieLens ``u.data`` file) the problem is the
    completion of those ratings instead of a synthetic one: ``split`` picks the
    train/test split (:func:`dlnref.data.load_movielens`), a further
    ``validation_fraction`` of the training ratings is held out for model
    selection (early stopping after ``patience`` recorded rows without a new
    best validation RMSE; the test ratings are never used to choose), the
    problem is :class:`dlnref.problems.sparse.SparseCompletion`, the wide network (if
    asked for) has inner width ``min(users, items)``, and ``rank`` sets the
    compressed width ``2 * rank``; ``d``, ``fraction`` and ``measurements``
    are unused, and ``depth`` None means :data:`RATINGS_DEPTH` (else the
    paper's 3). A synthetic completion above ``DENSE_MAX_SIDE`` is also built
    from its observed entries, with a factored target
    (:meth:`dlnref.problems.MatrixCompletion.synthetic`).

    ``problem`` names a registered problem (:func:`dlnref.problems.problem_names`);
    the fields that it lists in its ``options`` (``fraction`` for completion,
    ``measurements`` for sensing) go to its ``synthetic``.

    ``networks`` lists the networks to train (:data:`NETWORKS`); None means
    both, or only the compressed one with ``data``. ``als`` adds the baseline
    row of :func:`dlnref.als.als` at rank ``rank`` (completion on NumPy only). ``lr`` None or "auto"
    takes :func:`dlnref.train.auto_lr` for the compressed network's
    ``outer_lr_scale``, and both networks use it; ``lr=10`` (completion)
    reproduces the paper's run. ``outer_lr_scale`` None takes the paper's value
    for the problem (its ``paper_steps``). The wide network always uses
    ``outer_lr_scale = 1`` (plain gradient descent), as in the paper. For
    sensing the paper's lr 20 was tuned for operators with entry std ``1/m``;
    with dlnref's ``1/sqrt(m)`` the same dynamics need ``lr = 20 / m``.

    ``compression`` picks the compressed network (:data:`COMPRESSIONS`):
    ``spectral``, the paper's C-DLN, or ``exact``, the wide network itself in
    its law-of-parsimony form (:func:`dlnref.compress_exact`, width ``2 * rank``;
    its ``outer_lr_scale`` defaults to the wide network's 1, so it retraces the
    wide run, exactly for factorization).
    """

    problem: str = "completion"
    d: int = 100
    rank: int = 5
    fraction: float = 0.3
    measurements: int = 4000
    depth: int | None = None
    scale: float = 1e-2
    lr: float | str | None = None
    outer_lr_scale: float | None = None
    width: int | None = None
    steps: int = 20000
    tol: float = THRESHOLDS[-1]
    record_every: int = 1
    seed: int = 0
    backend: str = "numpy"
    data: str | None = None
    split: str = "random"
    networks: tuple | None = None
    validation_fraction: float = 0.1
    patience: int = 200
    als: bool = True
    compression: str = "spectral"

    def resolved(self):
        """A copy with the depth, the paper's outer_lr_scale, the width and the networks filled in (lr stays "auto")."""
        alpha = 1.0 if self.compression == "exact" else problem_class(self.problem).paper_steps[1]   # exact: wide
        networks = self.networks or (("compressed",) if self.data is not None else tuple(NETWORKS))
        unknown = [name for name in networks if name not in NETWORKS]
        if unknown or not networks:
            raise InputError(f"networks must be a non-empty selection of {tuple(NETWORKS)}, got {self.networks!r}")
        return dataclasses.replace(
            self,
            depth=(RATINGS_DEPTH if self.data is not None else PAPER_DEPTH) if self.depth is None else self.depth,
            lr="auto" if self.lr is None else self.lr,
            outer_lr_scale=alpha if self.outer_lr_scale is None else self.outer_lr_scale,
            width=2 * self.rank if self.width is None else self.width,
            networks=tuple(networks),
        )


def option_name(field):
    """The command-line option of a :class:`CompareConfig` field: ``outer_lr_scale`` -> ``--outer-lr-scale``."""
    return "--" + field.replace("_", "-")


def check_config(config, option=str):
    """``config`` resolved (:meth:`CompareConfig.resolved`), after checking every field; the one check of a run.

    ``dlnref compare`` and every run of ``dlnref sweep`` pass through here
    before any work starts, so the two refuse the same configurations.

    Parameters
    ----------
    config : CompareConfig
    option : callable
        ``option(field)`` names a field in the caller's words (the command
        line's ``--d`` for ``d``); the default keeps the field's name.

    Returns
    -------
    CompareConfig

    Raises
    ------
    InputError
        Naming the option, the value and what is expected: a value out of
        range, or values that do not fit together (``split`` without ``data``,
        a rank too large for ``d``, a width below the rank or above ``d``, a
        fraction that observes nothing, the exact compression of ratings).
    """
    c = config
    check_choice(option("problem"), c.problem, problem_names())
    for field, minimum in (("d", 1), ("rank", 1), ("measurements", 1), ("steps", 0), ("record_every", 1),
                           ("seed", 0), ("patience", 1)):
        check_int(option(field), getattr(c, field), minimum)
    if c.seed >= 2**63:   # stored in tables and files as a 64-bit integer
        raise InputError(f"{option('seed')} must be below 2^63, got {c.seed}")
    for field, minimum in (("depth", 2), ("width", 1)):
        if getattr(c, field) is not None:
            check_int(option(field), getattr(c, field), minimum)
    check_fraction(option("fraction"), c.fraction)
    check_positive(option("scale"), c.scale)
    if c.lr not in (None, "auto"):
        check_positive(option("lr"), c.lr)
    if c.outer_lr_scale is not None:
        check_positive(option("outer_lr_scale"), c.outer_lr_scale)
    if not 0 <= check_positive(option("tol"), c.tol, allow_zero=True) < 1:
        raise InputError(f"{option('tol')} is a relative recovery error to stop at, in [0, 1) (training starts near "
                         f"1), got {c.tol:g}")
    check_choice(option("backend"), c.backend, BACKENDS)
    check_choice(option("split"), c.split, ("random", *MOVIELENS_SPLITS))
    check_choice(option("compression"), c.compression, tuple(COMPRESSIONS))
    if not isinstance(c.als, bool):
        raise InputTypeError(f"{option('als')} must be true or false, got {c.als!r}")
    if isinstance(c.validation_fraction, bool) or not isinstance(c.validation_fraction, (int, float)) \
            or not 0 < c.validation_fraction < 1:
        raise InputError(f"{option('validation_fraction')} must lie in (0, 1), got {c.validation_fraction!r}")
    if c.networks is not None and (not isinstance(c.networks, (tuple, list)) or not c.networks
                                   or any(name not in NETWORKS for name in c.networks)):
        raise InputError(f"{option('networks')} must be a non-empty selection of {', '.join(NETWORKS)}, "
                         f"got {c.networks!r}")
    if c.data is None:
        if c.split != "random":
            raise InputError(f"{option('split')} {c.split} needs {option('data')} PATH (the ratings file whose split "
                             "it names)")
    else:
        _check_ratings_file(c, option)
    resolved = c.resolved()
    _check_sizes(resolved, option)
    return resolved


def _check_ratings_file(config, option):
    data = config.data
    if not isinstance(data, (str, os.PathLike)) or not os.path.exists(data):
        raise InputError(f"{option('data')} {data}: no such file; give the path of MovieLens 100K's u.data")
    if os.path.isdir(data):
        raise InputError(f"{option('data')} {data} is a folder; give the ratings file inside it, "
                         f"such as {os.path.join(data, 'u.data')}")
    if config.compression == "exact":
        raise InputError(f"{option('compression')} exact needs a synthetic dense problem (the law-of-parsimony form "
                         f"is built from the wide network on a d x d target); with {option('data')} use "
                         f"{option('compression')} spectral")
    if config.backend != "numpy":
        raise InputError(f"{option('data')} ratings are completed from their observed entries on NumPy only, got "
                         f"{option('backend')} {config.backend}")
    default = CompareConfig()
    options = [option for name in problem_names() for option in problem_class(name).options]
    synthetic = [field for field in ("problem", "d", *options) if getattr(config, field) != getattr(default, field)]
    if synthetic:
        raise InputError(f"{option('data')} completes the ratings matrix of its file, so "
                         f"{', '.join(f'{option(f)} {getattr(config, f)}' for f in synthetic)} cannot be used with it "
                         "(the matrix's shape comes from the file)")


def _ratings_shape(path, split):
    """The shape of the ratings matrix of ``path`` and ``split``, read once per file, split and file version."""
    stat = os.stat(path)
    return _read_shape(path, split, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _read_shape(path, split, mtime_ns, size):
    """:func:`_ratings_shape`, cached on the file's modification time and size as well (a rewritten file is read again)."""
    return load_movielens(path, split).shape


def check_ratings(config, option=str):
    """Read the ratings of ``config.data`` (a malformed file or split is named) and check the width fits them.

    The part of :func:`check_config` that reads the file: ``dlnref compare``
    and every run of ``dlnref sweep`` with ``data`` pass through it before any work.
    """
    shape = _ratings_shape(os.fspath(config.data), config.split)
    resolved = config.resolved()
    _check_ratings_width(shape, resolved, option)
    (m, n), depth, w = shape, resolved.depth, resolved.width
    inner = {"wide": min(m, n), "compressed": w}   # each network's inner width on the ratings matrix
    entries = sum(3 * (n * inner[name] + (depth - 2) * inner[name] ** 2 + m * inner[name])
                  for name in resolved.networks)   # layers, prefix products and gradients during a step
    check_fits(f"{option('data')} {config.data} ({m} x {n} ratings matrix) with {option('networks')} "
               f"{','.join(resolved.networks)}", BYTES_PER_ENTRY * entries,
               "check the file's user and item ids (the matrix is as large as the largest id), or train the "
               "compressed DLN alone (--networks compressed)")


def _check_ratings_width(shape, config, option):
    """The compressed width fits the ratings matrix of ``shape``."""
    if config.width > min(shape):
        given = f"{option('width')} {config.width}" if config.width != 2 * config.rank else \
            f"2 * {option('rank')} = {config.width}"
        raise InputError(f"the compressed DLN's width ({given}) exceeds the smaller side {min(shape)} of the "
                         f"{shape[0]} x {shape[1]} ratings matrix of {option('data')} {config.data}; use a smaller "
                         f"{option('rank')} or {option('width')}")


def _check_sizes(config, option):
    """The sizes of a resolved config fit together (see :func:`check_config`)."""
    d, rank, width = config.d, config.rank, config.width
    if width < rank:
        raise InputError(f"{option('width')} {width} is below {option('rank')} {rank}: the compressed DLN's product "
                         f"has rank at most its width, so it cannot fit a rank-{rank} target; use {option('width')} "
                         f"{rank} or more (the default is 2 * rank)")
    if config.data is not None:
        return
    if 2 * rank > d:
        raise InputError(f"{option('rank')} {rank} is too large for {option('d')} {d}: the synthetic target keeps "
                         f"every other singular value of a random matrix, which needs 2 * rank <= d "
                         f"(rank <= {d // 2} here)")
    if width > d:
        raise InputError(f"{option('width')} {width} exceeds {option('d')} {d}: the compressed DLN's inner width is "
                         "at most d")
    if config.problem == "completion" and math.floor(config.fraction * d * d) == 0:
        raise InputError(f"{option('fraction')} {config.fraction:g} observes no entry of a {d} x {d} target; "
                         f"use at least {1 / (d * d):.2g}")
    if config.compression == "exact":
        if width != 2 * rank:
            raise InputError(f"{option('compression')} exact has width 2 * rank = {2 * rank}, its invariant "
                             f"subspace; {option('width')} {width} cannot be used with it")
        if config.problem == "completion" and d > DENSE_MAX_SIDE:
            raise InputError(f"{option('compression')} exact needs a dense problem; a completion with "
                             f"{option('d')} above {DENSE_MAX_SIDE} runs from its observed entries")


#: The depth of the paper's synthetic runs.
PAPER_DEPTH = 3

#: The depth for ratings (``data``), chosen on validation RMSE: on MovieLens 100K (random split,
#: seed 0, lr="auto", patience 200) depth 2 reaches 0.928 (rank 5) and 0.927 (rank 10) within
#: 230 steps; depth 3 reaches 0.965 in 20,000 steps, because its lr="auto" (0.81, set by the
#: ratings' large mean) learns the smaller singular values slowly; with the mean taken out
#: first, depth 3 learns them one at a time and overfits each (0.967 at best, at step 4,121).
RATINGS_DEPTH = 2

def setup(size, problem, seed=0, **changes):
    """The paper's run of ``problem`` at ``size`` ("quick" or "full"), with ``seed`` and any changes, resolved.

    The runs are the problem's own (:attr:`dlnref.problems.Problem.setups`),
    shared by the theory checks and the figures. ``quick`` keeps the paper's
    depth, init scale and kind of problem but shrinks d, so that runs take
    seconds on 2 cores (its step sizes are scaled up for the smaller d);
    ``full`` uses the paper's settings (PAPER.md). Resolved
    (:meth:`CompareConfig.resolved`): its depth, width, outer-layer scale and
    networks are numbers and names, as the checks and figures read them.
    """
    if size not in ("quick", "full"):
        raise InputError(f"size must be 'quick' or 'full', got {size!r}")
    setups = problem_class(problem).setups
    if setups is None:
        raise InputError(f"the problem {problem!r} has no paper setups; the paper's are {', '.join(paper_problems())}")
    return dataclasses.replace(CompareConfig(problem=problem, **setups[size]), seed=seed, **changes).resolved()


def build(config):
    """The problem of ``config`` and the starting weights of its networks.

    Returns
    -------
    problem : RecoveryProblem or SparseCompletion
    starts : dict
        Network name -> ``(weights, outer_lr_scale)`` for each of
        ``config.networks`` (:data:`NETWORKS`). The problem and the wide init
        come from independent child streams of ``config.seed``.
    """
    config = config.resolved()
    problem_seed, init_seed = np.random.SeedSequence(config.seed).spawn(2)
    problem = _problem(config, problem_seed)
    return problem, {name: NETWORKS[name](problem, config, init_seed) for name in config.networks}


def _problem(config, seed):
    if config.data is not None:
        if config.backend != "numpy":
            raise InputError(f"ratings are completed from their observed entries on NumPy only, "
                             f"got backend {config.backend!r}")
        rng = np.random.default_rng(seed)
        ratings = load_movielens(config.data, config.split, seed=rng)
        source = config.data if config.split == "random" else os.path.join(os.path.dirname(config.data),
                                                                            f"{config.split}.base")
        train, validation = split_entries(ratings.train, config.validation_fraction, rng,
                                          name=f"{source} (its training ratings, for validation)")
        return SparseCompletion(*train, ratings.shape, validation=validation, test=ratings.test)
    options = {option: getattr(config, option) for option in problem_class(config.problem).options}
    return make_problem(config.problem, (config.d, config.d), config.rank, seed=seed, backend=config.backend,
                        **options)


def _wide_start(problem, config, seed):
    """The wide DLN: ``min(m, n)``-wide layers from an orthogonal init, plain gradient descent."""
    m, n = problem.shape
    dims = [n] + [min(m, n)] * (config.depth - 1) + [m]
    return init_weights(dims, config.scale, seed=seed, backend=config.backend), 1.0


def _compressed_start(problem, config, seed):
    """The compressed DLN of ``config.compression`` (:data:`COMPRESSIONS`), with the outer-layer scale."""
    if config.compression not in COMPRESSIONS:
        raise InputError(f"compression must be one of {tuple(COMPRESSIONS)}, got {config.compression!r}")
    return COMPRESSIONS[config.compression][0](problem, config, seed), config.outer_lr_scale


def _exact_start(problem, config, seed):
    """:func:`dlnref.compress_exact` of the wide network's init (the same seed as :func:`_wide_start`)."""
    if not isinstance(problem, RecoveryProblem) or config.width != 2 * config.rank:
        raise InputError(f"the exact compression needs a dense square problem and width 2 * rank = {2 * config.rank}; "
                         f"got {type(problem).__name__} and width {config.width}")
    return compress_exact(problem, _wide_start(problem, config, seed)[0], config.rank)


#: The compressed network of each ``CompareConfig.compression``: (start, trainer).
COMPRESSIONS = {
    "spectral": (lambda problem, config, seed: compress(problem, config.depth, config.width, config.scale),
                 gradient_descent),
    "exact": (_exact_start, train_exact),
}


def _trainer(name, config):
    """The trainer of network ``name``: :func:`dlnref.gradient_descent`, or the compression's own (:data:`COMPRESSIONS`)."""
    return COMPRESSIONS[config.compression][1] if name == "compressed" else gradient_descent


#: The networks that ``compare`` trains, in table order: name -> start(problem, config, seed).
NETWORKS = {"wide": _wide_start, "compressed": _compressed_start}

#: Most ALS sweeps (it converges in tens where it converges at all).
ALS_SWEEPS = 200

#: ALS's ridge on ratings (ALS-WR's weighted lambda): 0.1 had the best validation RMSE
#: of 0.02, 0.05, 0.1, 0.2 on MovieLens-like ratings; synthetic problems take als's tiny default.
ALS_RIDGE_RATINGS = 0.1


def _run_als(problem, config):
    """The ALS baseline at the target's rank, or None where it does not apply (not completion, not NumPy)."""
    if not config.als or config.problem != "completion" or config.backend != "numpy":
        return None
    ratings = config.data is not None
    run = als(problem, config.rank, min(config.steps, ALS_SWEEPS), tol=config.tol,
              **({"ridge": ALS_RIDGE_RATINGS, "patience": 5} if ratings else {}))
    m, n = problem.shape
    return _summary(run, (m + n) * config.rank)


def run_compare(config, progress=None, observe=None, announce=None, option=str):
    """Train the chosen networks on the problem of ``config`` and collect the comparison.

    Parameters
    ----------
    config : CompareConfig
    progress : callable or None
        ``progress(network_name)`` returns the per-row callback for
        :func:`dlnref.gradient_descent` (or None).
    observe : callable or None
        Passed on to :func:`dlnref.gradient_descent` for every network.
    announce : callable or None
        Called with one line of text each: the chosen lr, and per network the
        seconds a step takes (from a timed first step) and the most the run
        can take.
    option : callable
        ``option(field)`` names a config field in messages (:func:`check_config`).

    Returns
    -------
    dict
        ``config`` (resolved, with the numeric lr, ``lr_rule`` "auto" or
        "given", ``lr_halvings``, the times lr="auto" was halved after a
        divergence (:func:`dlnref.train.halving_on_divergence`: every network
        then trains again at the halved lr), and ``sparse_engine``: the engine
        of a problem built from observed entries, else None), and per network (:data:`NETWORKS`): ``params``,
        ``steps_to`` and ``seconds_to`` (threshold string -> value or None when
        not reached), ``final_error``, ``steps_run`` and the ``history``
        columns (with validation data: ``best_validation_rmse`` and the
        ``test_rmse`` at that step); plus ``speedup`` (wide / compressed) per
        threshold when both ran; ``als`` (the same summary) for completion.
    """
    config = check_config(config, option)
    if config.data is not None:   # the ratings' shape is known once they are read
        check_ratings(config, option)
    problem, starts = build(config)
    say = announce or (lambda line: None)
    rule = "auto" if config.lr == "auto" else "given"
    lr = auto_lr(problem, config.depth, config.outer_lr_scale) if rule == "auto" else config.lr
    say(f"lr {lr:.4g} ({'lr=auto: from the problem, see dlnref.train.auto_lr' if rule == 'auto' else 'given'})")
    _warn_nothing_held_out(problem, say)

    def train_all(lr):   # every network, at one lr: a halving of lr="auto" trains them all again
        return {name: _train(name, problem, weights, alpha, lr, config, progress, observe, announce)
                for name, (weights, alpha) in starts.items()}

    try:
        runs, lr, halvings = halving_on_divergence(train_all, lr, rule == "auto", say)
    except DivergenceError as error:
        raise _blame(error, problem, config, option) from None
    config = dataclasses.replace(config, lr=lr)
    result = {"config": {**dataclasses.asdict(config), "lr_rule": rule, "lr_halvings": halvings,
                         "sparse_engine": getattr(problem, "engine", None)},  # SparseCompletion's, else None
              **runs}
    baseline = _run_als(problem, config)
    if baseline is not None:
        result["als"] = baseline
    if "wide" in result and "compressed" in result:
        result["speedup"] = {
            kind: {key: speedup(result["wide"][kind][key], result["compressed"][kind][key])
                   for key in result["wide"][kind]}
            for kind in ("steps_to", "seconds_to")
        }
    return result


#: ``lr="auto"`` assumes a small init: an end-to-end matrix at init below this fraction of the target's size.
SMALL_INIT = 0.1


def _blame(error, problem, config, option):
    """A divergence under ``lr="auto"`` whose init was not small is the init's (``--scale``), not ``auto_lr``'s."""
    if not error.auto:
        return error
    s_1 = float(problem.top_singular(1)[1][0])
    if config.scale ** config.depth < SMALL_INIT * s_1:
        return error
    return error.renamed(auto=False, advice=(
        f"lr=auto assumes a small init, and {option('scale')} {config.scale:g} starts the end-to-end matrix at "
        f"scale^L = {config.scale ** config.depth:.3g}, against {s_1:.3g} for the top singular value of the "
        f"problem's surrogate: use a smaller {option('scale')} (the paper's is 0.01), or a given {option('lr')}."))


def _train(name, problem, weights, alpha, lr, config, progress, observe, announce):
    """Train network ``name`` from ``weights`` and summarise its run (:func:`_summary`)."""
    callback = progress(name) if progress is not None else None
    patience = config.patience if config.data is not None else None
    try:
        if announce is not None:
            _announce_time(problem, weights, lr, alpha, config, name, announce)
        run = _trainer(name, config)(problem, weights, lr, config.steps, outer_lr_scale=alpha,
                                     record_every=config.record_every, tol=config.tol, progress=callback,
                                     observe=observe, patience=patience)
    except DivergenceError as error:
        raise error.renamed(network=f"{name} DLN") from None
    params = weights.parameter_count() if hasattr(weights, "parameter_count") else parameter_count(weights)
    return _summary(run, params)


def _warn_nothing_held_out(problem, say):
    if getattr(problem, "fraction", 0) == 1:
        say("every entry is observed (fraction 1): this is factorization, and no held-out error is recorded")


def _announce_time(problem, weights, lr, alpha, config, name, say):
    """Say the seconds per step and the most the run can take.

    From a probe of 5 steps, each recorded: the mean of steps 2 to 4, each with
    its recorded row (the first step pays for first-touch memory and thread
    start-up, the last evaluation has no update).
    """
    probe = _trainer(name, config)(problem, weights, lr, 5, outer_lr_scale=alpha, record_every=1)
    seconds = probe.history["seconds"]
    per_step = (seconds[4] - seconds[1]) / 3
    say(f"[{name}] about {1e3 * per_step:.3g} ms a step: at most {per_step * config.steps:.0f} s "
        f"for {config.steps} steps")


def snapshot_weights(step, weights):
    """``observe`` hook for :func:`dlnref.gradient_descent`: a host copy of every layer."""
    layers = weights.layers() if hasattr(weights, "layers") else weights   # an ExactCompression rebuilds them
    return {"weights": [to_numpy(w) for w in layers]}


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
    columns = [c for c in history.columns if c.endswith(("error", "rmse"))]
    best = {}
    if "validation_rmse" in history.columns:
        rmse = history["validation_rmse"]
        i = min(range(len(rmse)), key=rmse.__getitem__)  # chosen on validation, never on test
        best = {"best_validation_rmse": rmse[i], "best_step": history["step"][i],
                "best_seconds": history["seconds"][i], "stopped_early": run.stopped_early}
        if "test_rmse" in history.columns:
            best["test_rmse_at_best"] = history["test_rmse"][i]
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


def speedup(wide, compressed):
    """``wide / compressed``, or None where either was not reached (or the compressed took no time)."""
    if wide is None or compressed is None or compressed == 0:
        return None
    return wide / compressed
