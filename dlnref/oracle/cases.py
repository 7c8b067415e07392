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
sensing operators have N(0, 1/k) entries, with ``||A||_op^2 <= 9`` as a
k x (m n) matrix (which bounds the safe step sizes of
:mod:`dlnref.oracle.reference`). For ``kind="backward"``, ``G`` has N(0, 1)
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

from ..data import gaussian_operators, low_rank_matrix, random_mask
from ..errors import InputError
from ..problems import MatrixCompletion, MatrixFactorization, MatrixSensing
from .strategies import seeds

LAYOUTS = ("input_first", "output_first")
KINDS = ("factorization", "completion", "sensing")
#: Alphas tried in turn for a case whose alpha is not given; the first one that collides with no ratio of
#: two normalisation factors of the case is used. None of them is a ratio of small integers.
ALPHA_CANDIDATES = (3.7, 2.9, 4.3, 1.9, 5.3, 6.1)
#: Sensing cases keep ``||A||_op^2 <= SENSING_MAX_GAIN`` (the operator as a k x (m n) matrix), which bounds the
#: curvature of the loss and so the step sizes at which a trajectory provably stays bounded.
SENSING_MAX_GAIN = 9.0
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


def build_case(kind, dims, weight_seed, problem_seed=0, rank=1, observed=None, measurements=None):
    """The arrays of a case, from its integers alone.

    Parameters
    ----------
    kind : {"backward", "factorization", "completion", "sensing"}
    dims : tuple of int
        ``(d_0, ..., d_L)``; the target is ``(d_L, d_0)``.
    weight_seed, problem_seed : int
    rank : int
        Rank of the target (problems only).
    observed : int
        ``|Omega|`` (completion only).
    measurements : int
        ``k`` (sensing only).

    Returns
    -------
    weights : list of ndarray, float64, input first
    problem_or_G : RecoveryProblem, or for ``kind="backward"`` the ``(d_L, d_0)`` matrix ``G``
    """
    weights = bounded_weights(dims, weight_seed)
    m, n = dims[-1], dims[0]
    if kind == "backward":
        return weights, np.random.default_rng(problem_seed).standard_normal((m, n))
    if kind not in KINDS:
        raise InputError(f"kind must be 'backward' or one of {KINDS}, got {kind!r}")
    target_rng, side_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(problem_seed).spawn(2))
    target = low_rank_matrix(m, n, rank, seed=target_rng)
    target = target / np.linalg.norm(target)
    if kind == "factorization":
        return weights, MatrixFactorization(target)
    if kind == "completion":
        # floor((|Omega| + 1/2) / (m n) * m n) = |Omega| whatever the rounding of the fraction.
        return weights, MatrixCompletion(target, random_mask((m, n), (observed + 0.5) / (m * n), seed=side_rng))
    return weights, MatrixSensing(target, gaussian_operators(measurements, (m, n), seed=side_rng))


@dataclasses.dataclass(frozen=True)
class Case:
    """The integers of a case; :meth:`build` makes its arrays, :meth:`call` the line that does the same."""

    kind: str
    dims: tuple
    weight_seed: int
    problem_seed: int
    rank: int = 1
    observed: int = None
    measurements: int = None

    def _arguments(self):
        extra = {"rank": self.rank, "observed": self.observed, "measurements": self.measurements}
        if self.kind == "backward":
            extra = {}
        return {"dims": tuple(self.dims), "weight_seed": self.weight_seed, "problem_seed": self.problem_seed,
                **{k: v for k, v in extra.items() if v is not None}}

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
        if self.observed is not None:
            text += f", |Omega|={self.observed}"
        if self.measurements is not None:
            text += f", k={self.measurements}"
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
    ``N = m n`` (factorization), ``|Omega|`` (completion) or 1 (sensing).
    Another loss ``S / (h N')``, with ``h`` in {1, 2, 4} (no 1/2, the 1/2,
    an extra 1/2) and ``N'`` any count of the case, gives ``c = 2 N / (h N')``.

    Parameters
    ----------
    problem : RecoveryProblem

    Returns
    -------
    list of Factor, without the correct ``c = 1``
    """
    observed = getattr(problem, "observed", None)
    measurements = problem.operators.shape[0] if problem.name == "sensing" else None
    return _factors(problem.name, problem.shape, observed, measurements)


def _factors(kind, shape, observed, measurements):
    """:func:`normalisation_factors` from the integers of a case."""
    m, n = shape
    if kind == "factorization":
        ours, counts = "m n", {"1": (1, "a sum of squares"), "m n": (m * n, f"a mean over the {m * n} entries")}
    elif kind == "completion":
        ours = "|Omega|"
        counts = {"1": (1, f"a sum over the {observed} observed entries"),
                  "|Omega|": (observed, f"a mean over the {observed} observed entries"),
                  "m n": (m * n, f"a mean over all {m * n} entries, not over the {observed} observed ones,")}
    else:
        k = measurements
        ours, counts = "1", {"1": (1, f"a sum over the {k} measurements"), "k": (k, f"a mean over the {k} measurements")}
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


def sensing_gain(problem):
    """``||A||_op^2`` of the sensing operator as a k x (m n) matrix: the curvature of its loss in X."""
    return float(np.linalg.norm(problem.operators.reshape(problem.operators.shape[0], -1), 2) ** 2)


def _collision_free(case):
    """The collision rules, and the sensing gain bound, from the integers of ``case``."""
    factors = _factors(case.kind, (case.dims[-1], case.dims[0]), case.observed, case.measurements)
    if not factors_distinct(factors) or _alpha(factors) is None:
        return False
    if case.kind == "sensing":
        _, problem = case.build()
        return sensing_gain(problem) <= SENSING_MAX_GAIN
    return True


@st.composite
def _problem_case(draw, kind, max_inner_layers):
    m, n = draw(st.integers(2, MAX_SIZE)), draw(st.integers(2, MAX_SIZE))
    inner = draw(st.lists(st.integers(2, MAX_SIZE - 1), min_size=0, max_size=max_inner_layers))
    rank = draw(st.integers(1, min(m, n) // 2))
    observed = measurements = None
    if kind == "completion":
        observed = draw(st.integers(3, m * n - 1))
    if kind == "sensing":
        low = max(3, m * n // 2)
        measurements = draw(st.integers(low, low + 10))
    return Case(kind, (n, *inner, m), draw(seeds), draw(seeds), rank, observed, measurements)


def problem_cases(kind=None, max_inner_layers=3):
    """Strategy of problem :class:`Case` objects that keep the collision rules.

    Parameters
    ----------
    kind : str or None
        One of :data:`KINDS`, or None for all three.
    max_inner_layers : int
        The network has ``1 + len(inner)`` layers, ``len(inner) <= max_inner_layers``.
    """
    if kind is not None and kind not in KINDS:
        raise InputError(f"problem must be one of {KINDS} or None, got {kind!r}")
    kinds = KINDS if kind is None else (kind,)
    return st.one_of(*[_problem_case(k, max_inner_layers) for k in kinds]).filter(_collision_free)


def backward_cases(max_depth=4, max_width=MAX_SIZE):
    """Strategy of backward :class:`Case` objects: 1 to ``max_depth`` layers of widths 2 to ``max_width``.

    Widths of at least 2 keep a transposed layer apart from the layer itself.
    """
    dims = st.integers(1, max_depth).flatmap(lambda L: st.lists(st.integers(2, max_width), min_size=L + 1,
                                                                  max_size=L + 1))
    return st.builds(lambda d, a, b: Case("backward", tuple(d), a, b), dims, seeds, seeds)

