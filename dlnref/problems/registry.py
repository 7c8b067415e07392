"""The one registry of problems: every list of problems in dlnref derives from it.

The paper's three problems are registered here, in the paper's order. A
module of this package that lists classes in a module-level ``REGISTERED``
tuple has them registered too, so that a new problem inside dlnref is one
module (and its tests). A problem from outside dlnref registers with
:func:`register_problem`, or through the entry-point group
``dlnref.problems`` of its package (as pytest finds its plugins), say in its
``pyproject.toml``::

    [project.entry-points."dlnref.problems"]
    weighted = "mypackage.weighted:WeightedFactorization"

It then appears in ``dlnref compare --problem``'s choices and runs through
``compare``, ``sweep``, the checks that apply to any problem, and
``dlnref.oracle.build_case``. An unknown name is an error everywhere, naming
the known ones.
"""

import importlib
import importlib.metadata
import inspect
import pkgutil
import sys

from ..errors import InputError, InputTypeError
from .base import Problem
from .completion import MatrixCompletion
from .factorization import MatrixFactorization
from .sensing import MatrixSensing

#: The entry-point group through which other packages add problems.
ENTRY_POINT_GROUP = "dlnref.problems"

_REGISTRY = {}
_ENTRY_POINTS_LOADED = []


def register_problem(cls):
    """Add a problem class to the registry under ``cls.name``; returns ``cls`` (usable as a decorator).

    Raises
    ------
    InputTypeError
        Unless ``cls`` subclasses :class:`dlnref.problems.Problem` (which gives the defaults) and writes
        all of its minimal part.
    InputError
        For a class without a ``name``, or whose name another class holds.
    """
    if not (isinstance(cls, type) and issubclass(cls, Problem)):
        raise InputTypeError(f"a problem must be a subclass of dlnref.problems.Problem, got {cls!r}")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise InputTypeError(f"{cls.__qualname__} does not write the whole minimal protocol: it lacks {missing} "
                             "(see dlnref.problems.Problem)")
    if not isinstance(cls.name, str) or not cls.name or cls.name != cls.name.strip():
        raise InputError(f"{cls.__name__}.name must be a non-empty name, got {cls.name!r}")
    held = _REGISTRY.get(cls.name)
    if held is not None and held is not cls:
        raise InputError(f"the problem name {cls.name!r} is taken by {held.__module__}.{held.__qualname__}")
    _REGISTRY[cls.name] = cls
    return cls


def _load_entry_points():
    """Register the problems of this package's other modules, then of the ``dlnref.problems`` entry points, once."""
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED.append(True)
    package = __name__.rpartition(".")[0]
    for module in pkgutil.iter_modules(sys.modules[package].__path__):
        if not module.name.startswith("_"):
            for cls in getattr(importlib.import_module(f"{package}.{module.name}"), "REGISTERED", ()):
                register_problem(cls)
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = entry.load()
        except Exception as error:  # noqa: BLE001  (another package's module may raise anything on import)
            raise InputError(f"the entry point {entry.name} = {entry.value} of the group {ENTRY_POINT_GROUP} "
                             f"cannot be loaded: {type(error).__name__}: {error}") from error
        register_problem(cls)


def problem_names():
    """The registered problems' names: the paper's three first, then the others in the order they came."""
    _load_entry_points()
    return tuple(_REGISTRY)


def problem_class(name):
    """The problem class registered as ``name``.

    Raises
    ------
    InputError
        For an unknown name, naming the known ones.
    """
    names = problem_names()
    if name not in _REGISTRY:
        raise InputError(f"problem must be one of {', '.join(map(repr, names))}, got {name!r}")
    return _REGISTRY[name]


def paper_problems():
    """The names of the registered problems that have the paper's setups (:attr:`Problem.setups`), in order."""
    return tuple(name for name in problem_names() if _REGISTRY[name].setups is not None)


def make_problem(name, shape, rank, *, seed=0, backend=None, **options):
    """Build a registered problem with a random rank-``rank`` target from a single seed.

    Parameters
    ----------
    name : str
        A registered name (:func:`problem_names`): "factorization", "completion", "sensing", or another.
    shape : tuple of int
        ``(m, n)`` of the target.
    rank : int
        Rank of the target (the paper's problems draw it with
        :func:`dlnref.data.low_rank_matrix`, spread spectrum).
    seed : int or numpy.random.SeedSequence
        The target and the mask or operators come from independent child streams of this seed.
    backend : str or None
    **options
        The problem's own options (:attr:`Problem.options`): ``fraction``
        (completion, default 0.3), ``measurements`` (sensing, the number k of
        operators; None means ``5 r (m + n)``). An option of another registered
        problem is accepted and unused (so one call serves every problem); any
        other is refused.

    Returns
    -------
    Problem
    """
    cls = problem_class(name)
    if isinstance(shape, str) or not hasattr(shape, "__len__") or len(shape) != 2:
        raise InputTypeError(f"shape must be a pair (m, n), got {shape!r}; for a square d x d target pass (d, d)")
    known = {option for other in problem_names() for option in problem_class(other).options}
    unknown = [key for key in options if key not in known]
    if unknown:
        raise InputError(f"make_problem takes the problems' options {', '.join(sorted(known))}, got {unknown[0]!r}")
    given = {key: value for key, value in options.items() if key in cls.options}
    if "backend" in inspect.signature(cls.synthetic).parameters:
        given["backend"] = backend
    elif backend not in (None, "numpy"):
        raise InputError(f"the problem {name!r} is drawn on NumPy only (its synthetic takes no backend), "
                         f"got backend {backend!r}")
    problem = cls.synthetic(tuple(shape), rank, seed=seed, **given)
    if not isinstance(problem, Problem):
        raise InputTypeError(f"{cls.__qualname__}.synthetic must return a problem (a dlnref.problems.Problem), "
                             f"got {type(problem).__name__}")
    return problem


for _cls in (MatrixFactorization, MatrixCompletion, MatrixSensing):
    register_problem(_cls)
