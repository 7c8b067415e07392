"""The cases that the oracle checks: drawn so that no two causes of a mismatch look alike, rebuilt by one call.

A case is a handful of integers (the kind, the layer widths, a seed for the
weights, a seed for the problem and the problem's sizes), and
:func:`build_case` turns them into arrays. A failure message prints the one
line that rebuilds its case outside hypothesis: :meth:`Case.call`.

Arrays of a case
----------------
Each ``W_l`` is a Gaussian matrix scaled to a spectral norm drawn in [1/2, 1],
so that products stay well scaled at any depth and no two layers are alike;
widths are at least 2 (a transposed 1-wide layer would be the layer itself).
The target is a rank-r matrix with a spread spectrum scaled to
``||M||_F = 1``; the completion mask observes exactly ``|Omega|`` entries;
sensing operators have N(0, 1/k) entries. Each problem class makes its
cases (:meth:`dlnref.problems.Problem.oracle_case`), and where it states a
bound on its loss's gradient (``oracle_gradient_bound``: ``||A||_op^2 <= 9``
for sensing, as a k x (m n) matrix), drawn cases keep it; it bounds the safe
step sizes of :mod:`dlnref.oracle.reference`. For ``kind="backward"``, ``G`` has N(0, 1)
entries.

Collision rules
---------------
A wrong step often differs from dlnref's by a constant factor (a loss
normalised differently) or by per-layer factors (the discrepant rate alpha
misplaced). The diagnosis can name the cause only when those factors differ on
the case. So every problem case has ``3 <= |Omega| < m n``, ``k >= 3``,
pairwise distinct normalisation factors (:func:`normalisation_factors`, 1
included), and its default alpha (:func:`case_alpha`) differs from every
ratio of two of them, so that a missing alpha never looks like a
normalisation. The rules sit inside the strategies, so shrinking keeps them.
"""

import dataclasses

import numpy as np
from hypothesis import strategies as st

from ..errors import InputError
from ..problems import problem_class, problem_names
from .kinds import oracle_kinds
from .strategies import seeds

LAYOUTS = ("input_first", "output_first")
#: How a case draws each size that a problem asks for (:attr:`dlnref.problems.Problem.oracle_sizes`), from
#: its shape: ``|Omega|`` between 3 and ``m n - 1``, ``k`` from ``m n / 2`` (so that a drawn sensing case is recoverable).
SIZE_DRAWS = {"observed": lambda m, n: st.integers(3, m * n - 1),
              "measurements": lambda m, n: st.integers(max(3, m * n // 2), max(3, m * n // 2) + 10)}
#: How :meth:`Case.describe` writes a size: the symbols of the notation.
SIZE_SYMBOLS = {"observed": "|Omega|", "measurements": "k"}
#: Alphas tried in turn for a case whose alpha is not given; the first one that collides with no ratio of
#: two normalisation factors of the case is used. None of them is a ratio of small integers.
ALPHA_CANDIDATES = (3.7, 2.9, 4.3, 1.9, 5.3, 6.1)
#: Largest side of a drawn target and largest inner width.
MAX_SIZE = 6


def check_layout(layout):
    """Raise ``ValueError`` unless ``layout`` is one of :data:`LAYOUTS`."""
    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def to_layout(weights, layout):
    """``[W_1, ..., W_L]`` in ``layout`` order (a new list)."""
    check_layout(layout)
    return list(weights) if layout == "input_first" else list(weights)[::-1]


def from_layout(weights, layout):
    """A list in ``layout`` order back to ``[W_1, ..., W_L]``."""
    return to_layout(weights, layout)


def bounded_weights(dims, seed):
    """``[W_1, ..., W_L]``: Gaussian ``(d_l, d_{l-1})`` matrices scaled to spectral norms drawn in [1/2, 1]."""
    rng = np.random.default_rng(seed)
    weights = []
    for d_in, d_out in zip(dims[:-1], dims[1:]):
        Z = rng.standard_normal((d_out, d_in))
        weights.append(Z * rng.uniform(0.5, 1.0) / np.linalg.norm(Z, 2))
    return weights


def build_case(kind, dims, weight_seed, problem_seed=0, rank=1, **sizes):
    """The arrays of a case, from its integers alone.

    Parameters
    ----------
    kind : str
        "backward", or a registered problem (:func:`dlnref.problems.problem_names`).
    dims : tuple of int
        ``(d_0, ..., d_L)``; the target is ``(d_L, d_0)``.
    weight_seed, problem_seed : int
    rank : int
        Rank of the target (problems only).
    **sizes
        The problem's own sizes (:attr:`dlnref.problems.Problem.oracle_sizes`):
        ``observed``, ``|Omega|`` (completion); ``measurements``, ``k`` (sensing).

    Returns
    -------
    weights : list of ndarray, float64, input first
    problem_or_G : Problem (:meth:`~dlnref.problems.Problem.oracle_case`), or for ``kind="backward"`` the
        ``(d_L, d_0)`` matrix ``G``
    """
    weights = bounded_weights(dims, weight_seed)
    m, n = dims[-1], dims[0]
    if kind == "backward":
        return weights, np.random.default_rng(problem_seed).standard_normal((m, n))
    if kind not in problem_names():
        raise InputError(f"kind must be 'backward' or one of {', '.join(map(repr, problem_names()))}, got {kind!r}")
    return weights, problem_class(kind).oracle_case((m, n), rank, problem_seed, **sizes)


@dataclasses.dataclass(frozen=True)
class Case:
    """The integers of a case; :meth:`build` makes its arrays, :meth:`call` the line that does the same.

    ``sizes`` holds the problem's own sizes as ``(name, value)`` pairs (say ``(("observed", 5),)``).
    """

    kind: str
    dims: tuple
    weight_seed: int
    problem_seed: int
    rank: int = 1
    sizes: tuple = ()

    def _arguments(self):
        extra = {} if self.kind == "backward" else {"rank": self.rank, **dict(self.sizes)}
        return {"dims": tuple(self.dims), "weight_seed": self.weight_seed, "problem_seed": self.problem_seed, **extra}

    def build(self):
        """``(weights, problem)``, or ``(weights, G)`` for a backward case; see :func:`build_case`."""
        return build_case(self.kind, **self._arguments())

    def call(self):
        """One line of Python that rebuilds the case."""
        arguments = ", ".join(f"{k}={v!r}" for k, v in self._arguments().items())
        what = "G" if self.kind == "backward" else "problem"
        return f"weights, {what} = dlnref.oracle.build_case({self.kind!r}, {arguments})"

    def describe(self):
        """The case in words: kind, dims, seeds and sizes."""
        text = f"{self.kind}, dims={tuple(self.dims)}, weight_seed={self.weight_seed}, problem_seed={self.problem_seed}"
        if self.kind != "backward":
            text += f", target {self.dims[-1]}x{self.dims[0]} of rank {self.rank}"
        for name, value in self.sizes:
            text += f", {SIZE_SYMBOLS.get(name, name)}={value}"
        return text


@dataclasses.dataclass(frozen=True)
class Factor:
    """A constant by which a wrong loss normalisation scales dlnref's gradient."""

    value: float
    formula: str
    meaning: str


def normalisation_factors(problem):
    """The factors ``c`` that other loss normalisations give: their gradient is ``c`` times dlnref's.

    dlnref's loss is ``S / (2 N)`` with S the sum of squared residuals and
    ``N`` the problem's :attr:`~dlnref.problems.Problem.normalisation` count
    (``m n`` for factorization, ``|Omega|`` for completion, 1 for sensing).
    Another loss ``S / (h N')``, with ``h`` in {1, 2, 4} (no 1/2, the 1/2, an
    extra 1/2) and ``N'`` any count of the case
    (:meth:`~dlnref.problems.Problem.loss_counts`), gives ``c = 2 N / (h N')``.
    A problem that states no normalisation has none: its diagnosis stays generic.

    Parameters
    ----------
    problem : dlnref.problems.Problem

    Returns
    -------
    list of Factor, without the correct ``c = 1``
    """
    cls = problem_class(problem.name)
    return _factors(problem.name, problem.shape, {name: getattr(problem, name) for name in cls.oracle_sizes})


def _factors(kind, shape, sizes):
    """:func:`normalisation_factors` from the integers of a case."""
    cls = problem_class(kind)
    if cls.normalisation is None:
        return []
    counts = cls.loss_counts(tuple(shape), **sizes)
    ours = cls.normalisation
    N = counts[ours][0]
    halves = {1: "without the 1/2", 2: "with the 1/2", 4: "with an extra 1/2 (a 1/4)"}
    factors = []
    for symbol, (count, words) in counts.items():
        for h, half in halves.items():
            if symbol == ours and h == 2:
                continue
            factors.append(Factor(2 * N / (h * count), _formula(2 / h, ours, symbol), f"your loss is {words} {half}"))
    return factors


def _formula(coefficient, numerator, denominator):
    """``coefficient * numerator / denominator`` as text, cancelling equal counts and 1s."""
    if numerator == denominator:
        numerator = denominator = "1"
    top = {2.0: "2", 1.0: "", 0.5: "1/2"}[coefficient]
    if numerator != "1":
        top = f"{top} {numerator}".strip() if coefficient != 0.5 else f"{numerator}/2"
    top = top or "1"
    if denominator == "1":
        return top
    return f"{top}/({denominator})" if " " in denominator else f"{top}/{denominator}"


def factors_distinct(factors, rtol=1e-3):
    """True when the values of ``factors`` and 1 are pairwise distinct."""
    values = sorted([1.0] + [f.value for f in factors])
    return all(b > a * (1 + rtol) for a, b in zip(values, values[1:]))


def case_alpha(problem, rtol=1e-3):
    """The first of :data:`ALPHA_CANDIDATES` that is no ratio of two normalisation factors (1 included), or None."""
    return _alpha(normalisation_factors(problem), rtol)


def _alpha(factors, rtol=1e-3):
    values = [1.0] + [f.value for f in factors]
    ratios = [a / b for a in values for b in values]
    for alpha in ALPHA_CANDIDATES:
        if all(abs(alpha - r) > rtol * alpha for r in ratios):
            return alpha
    return None


def _collision_free(case):
    """The collision rules, and the bound on the loss's gradient that the trajectory checks assume, of ``case``."""
    factors = _factors(case.kind, (case.dims[-1], case.dims[0]), dict(case.sizes))
    if not factors_distinct(factors) or _alpha(factors) is None:
        return False
    bound = problem_class(case.kind).oracle_gradient_bound
    return bound is None or case.build()[1].gradient_bound() <= bound


@st.composite
def _problem_case(draw, kind, fewest_inner, most_inner):
    m, n = draw(st.integers(2, MAX_SIZE)), draw(st.integers(2, MAX_SIZE))
    inner = draw(st.lists(st.integers(2, MAX_SIZE - 1), min_size=fewest_inner, max_size=most_inner))
    rank = draw(st.integers(1, min(m, n) // 2))
    sizes = tuple((name, draw(SIZE_DRAWS[name](m, n))) for name in problem_class(kind).oracle_sizes)
    return Case(kind, (n, *inner, m), draw(seeds), draw(seeds), rank, sizes)


def problem_cases(kind=None, max_inner_layers=3, depths=None):
    """Strategy of problem :class:`Case` objects that keep the collision rules.

    Parameters
    ----------
    kind : str or None
        A registered problem, or None for all of :func:`oracle_kinds`.
    max_inner_layers : int
        The network has ``1 + len(inner)`` layers, ``len(inner) <= max_inner_layers``.
    depths : tuple of int or None
        The only depths drawn (and shrunk to); None: 1 to ``1 + max_inner_layers``.
    """
    kinds = oracle_kinds() if kind is None else (problem_class(kind).name,)
    unknown = [size for k in kinds for size in problem_class(k).oracle_sizes if size not in SIZE_DRAWS]
    if unknown:
        raise InputError(f"the oracle cannot draw the size {unknown[0]!r}; it draws {', '.join(SIZE_DRAWS)}")
    depths = tuple(range(1, max_inner_layers + 2)) if depths is None else tuple(depths)
    strategy = st.one_of(*[_problem_case(k, min(depths) - 1, max(depths) - 1) for k in kinds])
    return strategy.filter(lambda case: len(case.dims) - 1 in depths and _collision_free(case))


def backward_cases(max_depth=4, max_width=MAX_SIZE, depths=None):
    """Strategy of backward :class:`Case` objects: 1 to ``max_depth`` layers (or ``depths``), widths 2 to ``max_width``.

    Widths of at least 2 keep a transposed layer apart from the layer itself.
    """
    depths = tuple(range(1, max_depth + 1)) if depths is None else tuple(depths)
    dims = st.integers(min(depths), max(depths)).filter(lambda L: L in depths).flatmap(
        lambda L: st.lists(st.integers(2, max_width), min_size=L + 1, max_size=L + 1))
    return st.builds(lambda d, a, b: Case("backward", tuple(d), a, b), dims, seeds, seeds)


def fixed_cases(kind, depths, count, seed=0, square=False):
    """``count`` problem cases of ``kind`` drawn from a fixed seed (no hypothesis), keeping the collision rules.

    The cases on which a loss convention is inferred, and from which a cause is confirmed.
    ``square``: every width equal (``m = n = d_l``), for mistakes that only run on square layers.
    """
    rng = np.random.default_rng(seed)
    cls = problem_class(kind)
    cases = []
    for _ in range(200 * count):
        if len(cases) == count:
            break
        L = int(rng.choice(depths))
        m, n = (int(v) for v in rng.integers(2, MAX_SIZE + 1, 2))
        inner = [int(v) for v in rng.integers(2, MAX_SIZE, L - 1)]
        if square:
            n = m = max(m, 3)
            inner = [m] * (L - 1)
        sizes = []
        for name in cls.oracle_sizes:
            half = max(3, m * n // 2)
            low, high = {"observed": (3, m * n - 1), "measurements": (half, half + 10)}[name]
            sizes.append((name, int(rng.integers(low, high + 1))))
        rank = int(rng.integers(1, min(m, n) // 2 + 1))
        case = Case(kind, (n, *inner, m), int(rng.integers(2**31)), int(rng.integers(2**31)), rank, tuple(sizes))
        if _collision_free(case):
            cases.append(case)
    return cases


def confirmation_case(case, depths, square=False, seed=0):
    """A second case of ``case``'s kind to confirm a cause on: another ``m n`` and other sizes, depth >= 3 if allowed.

    ``seed`` picks another such case. Returns None when no such case is found.
    """
    deep = [d for d in depths if d >= 3] or [max(depths)]
    m, n = case.dims[-1], case.dims[0]
    sizes = dict(case.sizes)
    for other in fixed_cases(case.kind, deep, 40, seed=1000 * seed + len(case.dims) + 7, square=square):
        m2, n2 = other.dims[-1], other.dims[0]
        if m2 * n2 != m * n and all(value != sizes.get(name) for name, value in other.sizes):
            return other
    return None

