"""The paper's algorithm, checked: the orthogonal init, the C-DLN's spectral init and run, the MLP's step.

The generic checks of :mod:`dlnref.oracle.checks` test one DLN step on any
weights. These test the parts that make the paper's method:

- :func:`assert_init_matches`: ``init_fn(dims, scale, seed)`` gives
  ``W_l(0) = eps O_l`` with ``O_l`` (semi-)orthogonal, distinct per layer
  and per seed, and Haar-distributed as far as a stated statistical test sees;
- :func:`assert_compression_matches`: ``compress_fn(problem, depth, width,
  scale)`` gives the C-DLN's spectral init, compared through quantities that
  do not depend on how the SVD chose its signs and bases (see
  :func:`spectral_init_differences`);
- :func:`assert_compressed_trajectory_matches`: the user's training run
  started from the C-DLN's init, with the discrepant rate;
- :func:`assert_mlp_step_matches`: one step of the MLP with a linear block
  (:mod:`dlnref.nn.mlp`).

Every check draws small cases with hypothesis (derandomized), shrinks a
failure to the smallest case, and reports it with a line that rebuilds it and
the causes that fit it, as the generic checks do.
"""

import contextlib
import dataclasses
import math
import sys
import typing

import numpy as np
from hypothesis import strategies as st

from ..compress import compress
from ..errors import InputError
from ..network import backward, end_to_end
from ..nn.mlp import forward as mlp_forward
from ..nn.mlp import init_mlp, loss_and_gradients, mlp_layout
from ..problems import problem_class
from .cases import LAYOUTS, MAX_SIZE, check_layout, from_layout, normalisation_factors, oracle_kinds, to_layout
from .checks import smallest_failure
from .reference import reference_trajectory, trajectory_lr_limit
from .strategies import seeds

#: Init scales ``eps`` of the drawn init and compression cases: the paper's 1e-2, and others at which no two of the
#: scale formulas of :data:`SCALE_FACTORS` agree on the drawn widths.
SCALES = (0.01, 0.37, 0.003, 0.053)
#: The bound on the probability that the Haar test fails a correct init (Haar-distributed layers).
HAAR_FALSE_FAILURE = 1e-6
#: Widths of the network on which the Haar test draws ``haar_samples`` inits: a tall, a square and a wide layer.
HAAR_DIMS = (3, 4, 4, 2)
#: Widths on which formulas that fit a case of square layers equally are told apart.
APART_DIMS = (2, 3, 5, 4)
#: Widths of the square network on which a non-orthogonal init's law is measured (a diagnosis only).
LAW_DIMS = (32, 32, 32, 32)
#: A compression case keeps the surrogate's singular values either equal (to ``GROUP_RTOL`` of the largest)
#: or at least ``MIN_GAP`` of the largest apart, so that the subspaces compared are well defined.
GROUP_RTOL, MIN_GAP = 1e-9, 1e-2
#: Depths of the compression and C-DLN cases unless the caller declares others (at most 6).
COMPRESSION_DEPTHS = (2, 3, 4)
#: Rates ``first_lr_scale`` tried in turn for an MLP case: the first that is no ratio of two loss factors.
MLP_RATES = (3.7, 2.9, 4.3)
#: The second step size of an MLP step check, as a multiple of the first.
LR_RATIO = 0.37
#: A pre-activation closer to 0 than this makes a drawn MLP case ambiguous (rounding could flip its ReLU).
RELU_MARGIN = 1e-3
#: Relative precision at which fitted factors are compared with a named one.
FACTOR_RTOL = 1e-4


# --- shared plumbing ---------------------------------------------------------------------------------------


class UserError(Exception):
    """What the checked function raised (or that it called ``sys.exit``), kept as its failure."""


def _call_user(fn, *args):
    """``fn(*args)`` with its prints sent to stderr, or a :class:`UserError` naming what it raised."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return fn(*args)
    except SystemExit as stop:
        return UserError(f"your function called sys.exit({stop.code!r})")
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001  (the user's code may raise anything: it is reported)
        return UserError(f"your function raised {type(error).__name__}: {error}")


def _host(x):
    """A NumPy float64 copy of an array of NumPy, PyTorch (``requires_grad`` too) or JAX."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.array(x, dtype=np.float64)


def _layers(out, layout):
    """The returned layers as float64 arrays in input-first order, or a :class:`UserError` saying what came back."""
    if isinstance(out, UserError):
        return out
    try:
        layers = [_host(x) for x in list(out)]
    except Exception as error:  # noqa: BLE001  (whatever the returned object does, it is the function's return)
        return UserError(f"your function returned {type(out).__name__}, not a list of real arrays "
                         f"({type(error).__name__}: {error})")
    return from_layout(layers, layout)


def _dtypes(out):
    """The dtype names of the returned arrays (as given, before conversion)."""
    try:
        return {str(getattr(x, "dtype", type(x).__name__)) for x in list(out)}
    except Exception:  # noqa: BLE001
        return set()


def _close(a, b, rtol=FACTOR_RTOL):
    return abs(a - b) <= rtol * max(abs(a), abs(b))


def _report(what, case, settings_text, found, causes, rebuild):
    """The failure report: the case, what differs, the likely causes, and the line that rebuilds the case."""
    if not causes:
        diagnosis = "Likely cause: not recognised (none of the causes this check knows fits; see the numbers above)."
    elif len(causes) == 1:
        diagnosis = f"Likely cause: {causes[0]}."
    else:
        diagnosis = "Likely causes (these fit this case equally): " + "\n  or: ".join(causes) + "."
    return (f"{what} differs from dlnref on case {case}; {settings_text}.\n{found}\n{diagnosis}\n"
            f"Rebuild the case: {rebuild}")


def _other(layout):
    return LAYOUTS[1 - LAYOUTS.index(layout)]


def _depths(depths, low, high, default):
    """The depths a check draws: the user's (within ``[low, high]``), or ``default``."""
    allowed = list(default) if depths is None else sorted({int(d) for d in depths})
    if not allowed or allowed[0] < low or allowed[-1] > high:
        raise InputError(f"depths must be non-empty and lie in {low}..{high}, got {depths!r}")
    return allowed


# --- the orthogonal init ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class InitCase:
    """An init case: the widths ``(d_0, ..., d_L)``, the scale ``eps`` and the seed."""

    dims: tuple
    scale: float
    seed: int

    def describe(self):
        return f"dims={self.dims}, scale={self.scale!r}, seed={self.seed}"

    def call(self):
        return (f"init_fn({self.dims}, {self.scale!r}, {self.seed}); dlnref's law: "
                f"dlnref.init_weights({self.dims}, {self.scale!r}, seed={self.seed})")


def init_cases(depths=None, max_width=5):
    """Strategy of :class:`InitCase`: widths 2 to ``max_width``, depths from ``depths`` (default 1 to 4)."""
    allowed = _depths(depths, 1, 8, range(1, 5))
    dims = st.sampled_from(allowed).flatmap(
        lambda L: st.lists(st.integers(2, max_width), min_size=L + 1, max_size=L + 1).map(tuple))
    return st.builds(InitCase, dims, st.sampled_from(SCALES), st.integers(0, 2**31 - 1))


def _shapes(dims):
    """``[(d_1, d_0), ..., (d_L, d_{L-1})]``."""
    return [(o, i) for i, o in zip(dims[:-1], dims[1:])]


def _spectra(layers):
    return [np.linalg.svd(W, compute_uv=False) for W in layers]


def _flat(s, value, rtol):
    return bool(np.all(np.abs(s - value) <= rtol * value))


#: Per-layer factors ``f(d_in, d_out, eps)`` of a scale other than ``eps``: ``W_l = eps f O_l``.
SCALE_FACTORS = (
    ("the scale is ignored: the layers are orthogonal, not eps times orthogonal", lambda i, o, e: 1 / e),
    ("the scale is applied twice: eps^2 O_l, not eps O_l", lambda i, o, e: e),
    ("eps / sqrt(d_{l-1}): the scale is divided by the square root of the fan-in", lambda i, o, e: 1 / math.sqrt(i)),
    ("eps / sqrt(d_l): the scale is divided by the square root of the fan-out", lambda i, o, e: 1 / math.sqrt(o)),
    ("eps sqrt(2 / (d_{l-1} + d_l)): a Glorot scale", lambda i, o, e: math.sqrt(2 / (i + o))),
    ("eps sqrt(d_{l-1}): the scale is multiplied by the square root of the fan-in", lambda i, o, e: math.sqrt(i)),
    ("eps sqrt(d_l): the scale is multiplied by the square root of the fan-out", lambda i, o, e: math.sqrt(o)),
    ("sqrt(eps): the square root of the scale", lambda i, o, e: 1 / math.sqrt(e)),
)


def _scale_causes(dims, scale, values):
    """Names of the scale formulas that give the flat singular value ``values[l]`` of every layer."""
    shapes = list(zip(dims[:-1], dims[1:]))
    named = [name for name, f in SCALE_FACTORS
             if all(_close(v, scale * f(i, o, scale), 1e-6) for v, (i, o) in zip(values, shapes))]
    if named:
        return named
    factors = ", ".join(f"{v / scale:.6g}" for v in values)
    return [f"a scale other than eps: layer by layer, the singular values are eps times {factors} "
            "(no formula this check knows gives these factors)"]


def _shape_causes(layers, shapes, layout):
    """Causes of returned shapes other than ``shapes``: the other layout, transposed layers, both."""
    got = [W.shape for W in layers]
    views = ((f"the layers come back in the other order: pass layout={_other(layout)!r}", got[::-1]),
             ("each layer comes back transposed, (d_{l-1}, d_l): dlnref's W_l has shape (d_l, d_{l-1})",
              [s[::-1] for s in got]),
             (f"the layers come back in the other order and transposed (pass layout={_other(layout)!r} and "
              "return W_l of shape (d_l, d_{l-1}))", [s[::-1] for s in got[::-1]]))
    fits = [name for name, view in views if view == list(shapes)]
    return fits[:1] if len(layers) == 1 else fits   # one layer: reversed is the layer itself


def check_init(init_fn, case, layout="input_first", dtype=np.float64, diagnose=True):
    """The failure report of ``init_fn`` on one :class:`InitCase`, or None when it gives eps times orthogonal layers.

    The layers must have shapes ``(d_l, d_{l-1})``, singular values all equal
    to ``eps`` (to ``16 u max(dims)``, ``u`` the dtype's unit roundoff), no two
    equal layers, the same layers again for the same seed and other layers for
    another seed.
    """
    dims, scale, seed = case.dims, case.scale, case.seed
    rtol = 16 * np.finfo(dtype).eps * max(dims)
    out = _call_user(init_fn, dims, scale, seed)
    layers = _layers(out, layout)
    shapes = [(o, i) for i, o in zip(dims[:-1], dims[1:])]
    what, settings_text = "init", f"layout {layout!r}, dtype {np.dtype(dtype).name}"
    found, causes = None, []
    if isinstance(layers, UserError):
        found = f"{layers}."
    elif [W.shape for W in layers] != shapes:
        found = (f"the layers have shapes {[W.shape for W in layers]}, expected {shapes} "
                 "(W_l of shape (d_l, d_{l-1})).")
        causes = _shape_causes(layers, shapes, layout)
    else:
        spectra = _spectra(layers)
        bad = [l for l, s in enumerate(spectra) if not _flat(s, scale, rtol)]
        if bad:
            l = bad[0]
            found = (f"layer {l + 1} (1 = input side) has singular values {_numbers(spectra[l])}, expected all "
                     f"eps = {scale:g} (to relative {rtol:.1e}).")
            if diagnose:
                causes = _init_value_causes(init_fn, layers, spectra, case, out, dtype, layout)
        else:
            found, causes = _init_identity(init_fn, layers, case, layout, rtol)
    if found is None:
        return None
    if not diagnose:
        return "differs"
    return _report(what, case.describe(), settings_text, found, causes, case.call())


def _numbers(values, digits=6):
    return "[" + ", ".join(f"{v:.{digits}g}" for v in values) + "]"


def _init_identity(init_fn, layers, case, layout, rtol):
    """``(found, causes)`` when layers repeat, the seed is ignored, or one seed gives two inits; else ``(None, [])``."""
    tol = rtol * case.scale
    for a in range(len(layers)):
        for b in range(a + 1, len(layers)):
            if layers[a].shape == layers[b].shape and np.abs(layers[a] - layers[b]).max() <= tol:
                return (f"layers {a + 1} and {b + 1} are the same matrix.",
                        ["the same matrix at every layer of a shape: draw each layer's O_l anew"])
    again = _layers(_call_user(init_fn, case.dims, case.scale, case.seed), layout)
    if isinstance(again, UserError) or not _same(again, layers, tol):
        return (f"a second call with the same seed {case.seed} gave other layers.",
                ["the init is not a function of its seed: it draws from a global random state (use "
                 "numpy.random.default_rng(seed), or torch.Generator().manual_seed(seed))"])
    other_seed = (case.seed + 1) % 2**31
    other = _layers(_call_user(init_fn, case.dims, case.scale, other_seed), layout)
    if not isinstance(other, UserError) and _same(other, layers, tol):
        return (f"seeds {case.seed} and {other_seed} give the same layers.",
                ["the seed is ignored: every seed gives the same init"])
    return None, []


def _same(a, b, tol):
    return len(a) == len(b) and all(x.shape == y.shape and np.abs(x - y).max() <= tol for x, y in zip(a, b))


def _init_value_causes(init_fn, layers, spectra, case, out, dtype, layout):
    """Causes of layers whose singular values are not all eps: the dtype, a scale formula, an i.i.d. law."""
    dims, scale = case.dims, case.scale
    loose = 16 * np.finfo(np.float32).eps * max(dims)
    if np.dtype(dtype) == np.float64 and all(_flat(s, scale, loose) for s in spectra):
        return [f"float32 rounding: the layers are eps times orthogonal to float32 precision (they come back as "
                f"{', '.join(sorted(_dtypes(out)))}; check with dtype=np.float32, or draw in float64)"]
    rtol = 16 * np.finfo(dtype).eps * max(dims)
    values = [float(np.mean(s)) for s in spectra]
    if all(_flat(s, v, rtol) for s, v in zip(spectra, values)):
        causes = _scale_causes(dims, scale, values)
        if len(causes) > 1:   # square layers: tell the formulas apart on layers of distinct widths
            apart = _layers(_call_user(init_fn, APART_DIMS, scale, case.seed), layout)
            if not isinstance(apart, UserError) and [W.shape for W in apart] == _shapes(APART_DIMS):
                narrowed = [c for c in _scale_causes(APART_DIMS, scale, [float(np.mean(s)) for s in _spectra(apart)])
                            if c in causes]
                causes = narrowed or causes
        return causes
    return _law_causes(init_fn, scale, layout)


def marchenko_pastur_cdf(x):
    r"""CDF of the Marchenko-Pastur law of ratio 1: the squared singular values of a square i.i.d. matrix.

    For ``W`` of shape ``(d, d)`` with i.i.d. entries of variance ``sigma^2``,
    ``x = s^2 / (d sigma^2)`` follows, as ``d`` grows, the density
    ``sqrt((4 - x) x) / (2 pi x)`` on ``[0, 4]``. With ``x = 4 sin^2(theta)`` the
    density becomes ``4 cos^2(theta) / pi``, so

    .. math:: F(x) = \frac{1}{\pi} \left( 2 \arcsin\frac{\sqrt{x}}{2} + \frac{\sqrt{x (4 - x)}}{2} \right).
    """
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 4.0)
    return (2 * np.arcsin(np.sqrt(x) / 2) + np.sqrt(x * (4 - x)) / 2) / np.pi


def _law_causes(init_fn, scale, layout):
    """Name the law of a non-orthogonal init from one larger square draw (:data:`LAW_DIMS`), or say what was seen."""
    layers = _layers(_call_user(init_fn, LAW_DIMS, scale, 0), layout)
    if isinstance(layers, UserError) or [W.shape for W in layers] != [(d, d) for d in LAW_DIMS[1:]]:
        return []
    d = LAW_DIMS[0]
    entries = np.concatenate([W.ravel() for W in layers])
    sigma = float(np.sqrt(np.mean(entries**2)))
    if sigma == 0:
        return ["every layer is zero"]
    squared = np.sort(np.concatenate([np.linalg.svd(W, compute_uv=False) ** 2 for W in layers])) / (d * sigma**2)
    empirical = np.arange(1, squared.size + 1) / squared.size
    ks = float(np.max(np.abs(empirical - marchenko_pastur_cdf(squared))))
    kurtosis = float(np.mean(entries**4) / sigma**4)
    if ks > 0.1:
        return []
    law = ("Gaussian", 3.0) if abs(kurtosis - 3.0) < 0.5 else ("uniform", 1.8) if abs(kurtosis - 1.8) < 0.25 else None
    if law is None:
        return []
    f = sigma / scale
    known = [(1.0, "N(0, eps^2)" if law[0] == "Gaussian" else "std eps"),
             (1 / math.sqrt(d), "std eps / sqrt(d) (dlnref's init_weights(kind='gaussian') on square layers)"),
             (math.sqrt(2 / d), "std eps sqrt(2 / d) (a He scale)")]
    scale_text = next((text for value, text in known if abs(f / value - 1) < 0.1),
                      f"std {f:.3g} eps (no scale formula this check knows)")
    return [f"a {law[0]} init instead of an orthogonal one: on square {d} x {d} layers the singular values spread "
            f"as the Marchenko-Pastur law of i.i.d. entries (Kolmogorov-Smirnov distance {ks:.3f}), the entries' "
            f"kurtosis is {kurtosis:.2f} ({law[1]:g} for {law[0]} entries), {scale_text}; the paper's W_l(0) is eps "
            "times an orthogonal matrix (dlnref.data.haar_orthonormal)"]


def haar_test(init_fn, samples=1000, layout="input_first", dims=HAAR_DIMS, false_failure=HAAR_FALSE_FAILURE):
    r"""Test the law of ``O_l = W_l / eps`` over ``samples`` seeds against the Haar measure; return the failure or None.

    For Haar-distributed ``O`` with orthonormal columns (or rows) of length
    ``d``, every entry has mean 0 and ``E O_ij^2 = 1/d``. Over ``N`` seeds,
    Hoeffding's inequality bounds each entry's sample mean (entries in
    ``[-1, 1]``) and mean square (in ``[0, 1]``):

    .. math:: P(|\bar O_{ij}| \ge t_1) \le 2 e^{-N t_1^2 / 2}, \qquad
              P(|\overline{O_{ij}^2} - 1/d| \ge t_2) \le 2 e^{-2 N t_2^2},

    and with ``t_1, t_2`` set so that the union over all ``K`` tests is at most
    ``false_failure``, a Haar init fails with at most that probability. The
    seeds are ``0 .. N-1``, so the verdict on one function is always the same.
    The test sees a biased law (say QR's ``Q`` without the sign fix, whose
    diagonal is one-signed), not every law other than Haar.

    Returns
    -------
    str or None
        What failed, with the named cause when one fits.
    """
    shapes = [(o, i) for i, o in zip(dims[:-1], dims[1:])]
    scale = SCALES[1]
    draws = []
    for seed in range(samples):
        layers = _layers(_call_user(init_fn, tuple(dims), scale, seed), layout)
        if isinstance(layers, UserError) or [W.shape for W in layers] != shapes:
            return f"the Haar test could not draw the init at dims={tuple(dims)}, seed={seed}: {layers}"
        draws.append([W / scale for W in layers])
    K = 2 * sum(o * i for o, i in shapes)
    t1 = math.sqrt(2 * math.log(2 * K / false_failure) / samples)
    t2 = math.sqrt(math.log(2 * K / false_failure) / (2 * samples))
    for l, (o, i) in enumerate(shapes):
        stack = np.stack([d[l] for d in draws])
        mean, square = stack.mean(axis=0), (stack**2).mean(axis=0)
        if np.abs(mean).max() < t1 and np.abs(square - 1 / max(o, i)).max() < t2:
            continue
        diagonal = np.diagonal(mean)
        found = (f"the init is not Haar-distributed: over seeds 0..{samples - 1} at dims={tuple(dims)}, layer {l + 1} "
                 f"({o} x {i}) has entry means {_numbers(mean.ravel(), 3)} (Haar: 0, each within {t1:.3f}) and mean "
                 f"squares up to {np.abs(square - 1 / max(o, i)).max():.3f} from 1/{max(o, i)} (within {t2:.3f}); a "
                 f"Haar init fails this test with probability at most {false_failure:g}.")
        if np.all(np.abs(diagonal) >= t1) and (np.all(diagonal > 0) or np.all(diagonal < 0)):
            found += ("\nLikely cause: the Q of a QR factorization without the sign fix: LAPACK's R has a one-signed "
                      "diagonal, which biases Q's diagonal (multiply Q's column j by sign(R_jj), Mezzadri 2007; "
                      "dlnref.data.haar_orthonormal).")
        else:
            found += "\nLikely cause: not recognised (a law other than Haar)."
        return found
    return None


def assert_init_matches(init_fn, *, layout="input_first", dtype=np.float64, depths=None, max_examples=30,
                        haar_samples=1000):
    r"""Check ``init_fn(dims, scale, seed) -> weights``: the paper's ``W_l(0) = eps O_l``, ``O_l`` Haar orthogonal.

    Parameters
    ----------
    init_fn : callable
        Gets ``dims = (d_0, ..., d_L)`` (input first, whatever ``layout``), the
        scale ``eps`` (a float) and a seed (an int); returns the L layers in
        ``layout`` order, ``W_l`` of shape ``(d_l, d_{l-1})``.
    layout : {"input_first", "output_first"}
    dtype : numpy dtype
        The precision of the init: float64 or float32.
    depths : iterable of int or None
        The depths L your code supports (default 1 to 4).
    max_examples : int
    haar_samples : int
        Inits drawn for the statistical test of the law (:func:`haar_test`); 0 skips it.

    Notes
    -----
    Exact on every drawn case: the shapes; the singular values, all ``eps``
    (``W_l W_l^T = eps^2 I`` for wide layers, ``W_l^T W_l = eps^2 I`` for tall
    ones); no two layers equal; the same layers for the same seed, others for
    another. Statistical, once: the law of ``O_l`` over ``haar_samples`` seeds
    (false failure at most :data:`HAAR_FALSE_FAILURE`).

    Raises
    ------
    AssertionError
        On the smallest failing case, with the cause that fits: the layout,
        transposed layers, a scale formula other than eps (fitted), a Gaussian
        or uniform init (the Marchenko-Pastur spread of its singular values),
        the same matrix at every layer, the seed ignored, float32 rounding, or
        a law that is not Haar.
    """
    check_layout(layout)
    smallest_failure(lambda case, diagnose: check_init(init_fn, case, layout, dtype, diagnose), init_cases(depths),
            max_examples)
    if haar_samples:
        failure = haar_test(init_fn, haar_samples, layout)
        if failure is not None:
            raise AssertionError(failure)


# --- the compressed network's spectral init ----------------------------------------------------------------


def build_compression_case(kind, shape, rank, depth, scale, problem_seed=0, **sizes):
    """The problem of a compression case and dlnref's C-DLN on it.

    Parameters
    ----------
    kind : str
        A registered problem.
    shape : tuple of int
        ``(m, n)``.
    rank : int
        The target's rank r; the width is ``2 r``.
    depth : int
        L >= 2.
    scale : float
        ``eps``.
    problem_seed : int
    **sizes
        The problem's own sizes, as for :func:`dlnref.oracle.build_case`.

    Returns
    -------
    weights : list of ndarray
        :func:`dlnref.compress` ``(problem, depth, 2 r, scale)``, input first.
    problem : Problem
    """
    problem = problem_class(kind).oracle_case(tuple(shape), rank, problem_seed, **sizes)
    return compress(problem, depth, 2 * rank, scale), problem


@dataclasses.dataclass(frozen=True)
class CompressionCase:
    """The integers of a compression case (see :func:`build_compression_case`)."""

    kind: str
    shape: tuple
    rank: int
    depth: int
    scale: float
    problem_seed: int
    sizes: tuple = ()

    @property
    def width(self):
        return 2 * self.rank

    def _arguments(self):
        return {"shape": tuple(self.shape), "rank": self.rank, "depth": self.depth, "scale": self.scale,
                "problem_seed": self.problem_seed, **dict(self.sizes)}

    def build(self):
        return build_compression_case(self.kind, **self._arguments())

    def call(self):
        arguments = ", ".join(f"{k}={v!r}" for k, v in self._arguments().items())
        return ("import dlnref.oracle; weights, problem = "
                f"dlnref.oracle.build_compression_case({self.kind!r}, {arguments})")

    def describe(self):
        m, n = self.shape
        text = (f"{self.kind}, target {m}x{n} of rank {self.rank}, depth {self.depth}, width 2r = {self.width}, "
                f"scale {self.scale!r}, problem_seed={self.problem_seed}")
        return text + "".join(f", {name}={value}" for name, value in self.sizes)


@dataclasses.dataclass(frozen=True)
class GivenProblemCase:
    """A compression case on the caller's own problem object."""

    problem: object
    depth: int
    width: int
    scale: float

    def build(self):
        return compress(self.problem, self.depth, self.width, self.scale), self.problem

    def call(self):
        return (f"weights = dlnref.compress(problem, depth={self.depth}, width={self.width}, scale={self.scale!r}) "
                "on the problem you passed")

    def describe(self):
        m, n = self.problem.shape
        return (f"your {self.problem.name} problem ({m}x{n}), depth {self.depth}, width {self.width}, "
                f"scale {self.scale!r}")


@dataclasses.dataclass
class SpectralSpec:
    """Which singular subspaces of a matrix ``S`` an init of width ``w`` must span, and how its vectors pair.

    ``groups`` are the indices of equal singular values (the last, ``zero``,
    those that vanish), ``chosen`` the ``w`` indices taken; ``left[g]`` and
    ``right[g]`` are orthonormal bases of each group's singular subspaces (the
    zero group's include the null spaces).
    """

    groups: list
    zero: list
    chosen: set
    left: list
    right: list
    gap: float
    top: float


def spectral_spec(matrix, width, which="top"):
    """The :class:`SpectralSpec` of the top (or bottom) ``width`` singular triplets of ``matrix``."""
    U, s, Vh = np.linalg.svd(np.asarray(matrix, dtype=np.float64))
    k, top = s.size, float(s[0])
    zero = [i for i in range(k) if s[i] <= GROUP_RTOL * top]
    groups = []
    for i in (i for i in range(k) if i not in zero):
        if groups and s[groups[-1][-1]] - s[i] <= GROUP_RTOL * top:
            groups[-1].append(i)
        else:
            groups.append([i])
    all_groups = groups + ([zero] if zero else [])
    chosen = set(range(width)) if which == "top" else set(range(k - width, k))
    left = [U[:, g + (list(range(k, U.shape[0])) if g is zero else [])] for g in all_groups]
    right = [Vh[g + (list(range(k, Vh.shape[0])) if g is zero else []), :].T for g in all_groups]
    values = [float(s[g[0]]) for g in all_groups]
    touched = [j for j, g in enumerate(all_groups) if chosen & set(g)]
    gaps = [values[j] - values[j + 1] for j in range(len(all_groups) - 1)
            if j in touched or j + 1 in touched]
    return SpectralSpec(all_groups, zero, chosen, left, right, min(gaps, default=top), top)


def spectral_init_differences(weights, matrix, width, scale, dtype=np.float64, which="top"):
    r"""How ``weights`` differ from the spectral init of width ``w`` from ``matrix``, in quantities free of SVD choices.

    dlnref's init is ``W_1 = eps V_w^T``, ``W_l = eps I_w``, ``W_L = eps U_w``.
    An SVD may flip the sign of a pair ``(u_i, v_i)``, rotate the vectors of a
    repeated singular value, and pick any basis of the null spaces; and
    gradient descent runs the same end-to-end trajectory from
    ``W_l \to Q_l^T W_l Q_{l-1}`` (``Q_0 = I``, ``Q_L = I``, each ``Q_l``
    orthogonal). The quantities compared are those that none of these change:

    - every layer's singular values, all ``eps``;
    - the projectors ``W_L W_L^T / eps^2`` and ``W_1^T W_1 / eps^2``: block
      diagonal over the groups of equal singular values of ``matrix``, with
      trace in each group the number of its indices taken (so a group taken
      whole gives its whole projector, the zero group any subspace of the null
      space);
    - the pairing ``U_g^T X_0 V_g / eps^L`` of each nonzero group ``g``, with
      ``X_0 = W_L \cdots W_1``: the identity for a group taken whole, a
      symmetric projector of the rank taken for a group cut by ``w``.

    Together they hold exactly for the networks ``Q``-equivalent to an init
    from some SVD of ``matrix``. The tolerance is
    ``64 u (m + n + L w) sigma_1 / gap``, with ``gap`` the smallest distance
    between the singular values of distinct groups at the cut and within it.

    Parameters
    ----------
    weights : list of ndarray, input first
    matrix : array, shape (m, n)
    width : int
    scale : float
    dtype : numpy dtype
        The precision of the checked init.
    which : {"top", "bottom"}

    Returns
    -------
    list of str
        What differs; empty when nothing does.
    """
    L = len(weights)
    spec = spectral_spec(matrix, width, which)
    u = np.finfo(dtype).eps
    m, n = np.shape(matrix)
    tol = 64 * u * (m + n + L * width) * spec.top / max(spec.gap, np.finfo(float).tiny)
    out = []
    for l, W in enumerate(weights):
        s = np.linalg.svd(W, compute_uv=False)
        if not _flat(s, scale, tol):
            out.append(f"layer {l + 1} (1 = input side) has singular values {_numbers(s)}, "
                       f"expected all eps = {scale:g}")
    if out:
        return out
    for side, gram, bases in (("W_L's columns", weights[-1] @ weights[-1].T, spec.left),
                              ("W_1's rows", weights[0].T @ weights[0], spec.right)):
        P = gram / scale**2
        blocks = sum(B @ (B.T @ P @ B) @ B.T for B in bases)
        masses = [float(np.trace(B.T @ P @ B)) for B in bases]
        wanted = [len(spec.chosen & set(g)) for g in spec.groups]
        if np.abs(P - blocks).max() > tol or any(abs(a - b) > tol * len(g) for a, b, g in zip(masses, wanted,
                                                                                            spec.groups)):
            out.append(f"{side} span another subspace: per group of equal singular values (largest first) they hold "
                       f"{_numbers(masses, 4)} dimensions, the init takes {wanted}")
    if out:
        return out
    X = end_to_end(weights) / scale**L
    for g, B_left, B_right in zip(spec.groups, spec.left, spec.right):
        taken = len(spec.chosen & set(g))
        if g is spec.zero or taken == 0:
            continue
        C = B_left.T @ X @ B_right
        if taken == len(g) and np.abs(C - np.eye(len(g))).max() > tol:
            out.append(f"the pairing U_g^T X_0 V_g / eps^L of the singular values at indices {g} is "
                       f"{_numbers(C.ravel(), 4)}, not the identity")
        elif taken < len(g) and (np.abs(C - C.T).max() > tol or np.abs(C @ C - C).max() > tol
                                 or abs(np.trace(C) - taken) > tol * len(g)):
            out.append(f"the pairing U_g^T X_0 V_g / eps^L of the singular values at indices {g} is no symmetric "
                       f"projector of rank {taken}")
    return out


def compression_cases(kind=None, depths=None, scales=SCALES):
    """Strategy of :class:`CompressionCase`: targets up to 6 x 6, width 2r, singular subspaces well defined."""
    from .cases import SIZE_DRAWS

    kinds = oracle_kinds() if kind is None else (problem_class(kind).name,)
    allowed = _depths(depths, 2, 6, COMPRESSION_DEPTHS)

    @st.composite
    def one(draw, kind):
        m, n = draw(st.integers(2, MAX_SIZE)), draw(st.integers(2, MAX_SIZE))
        rank = draw(st.integers(1, min(m, n) // 2))
        sizes = tuple((name, draw(SIZE_DRAWS[name](m, n))) for name in problem_class(kind).oracle_sizes)
        return CompressionCase(kind, (m, n), rank, draw(st.sampled_from(allowed)), draw(st.sampled_from(scales)),
                               draw(seeds), sizes)

    return st.one_of(*[one(k) for k in kinds]).filter(_well_separated)


def _well_separated(case):
    """The surrogate's singular values at and above the cut are equal or ``MIN_GAP`` apart (relative)."""
    problem = case.build()[1]
    spec = spectral_spec(problem.surrogate(), case.width)
    return spec.top > 0 and spec.gap >= MIN_GAP * spec.top


def check_compression(compress_fn, case, layout="input_first", dtype=np.float64, diagnose=True):
    """The failure report of ``compress_fn`` on one compression case, or None when it gives the C-DLN's init."""
    ours, problem = case.build()
    depth, width, scale = len(ours), ours[0].shape[0], case.scale
    out = _call_user(compress_fn, problem, depth, width, scale)
    layers = _layers(out, layout)
    shapes = [W.shape for W in ours]
    causes = []
    if isinstance(layers, UserError):
        found = f"{layers}."
    elif [W.shape for W in layers] != shapes:
        found = f"the layers have shapes {[W.shape for W in layers]}, expected {shapes}."
        causes = _compression_shape_causes(layers, shapes, problem, width, scale, dtype, layout)
    else:
        differences = spectral_init_differences(layers, problem.surrogate(), width, scale, dtype)
        if not differences:
            return None
        found = "; ".join(differences) + "."
        if diagnose and np.dtype(dtype) == np.float64 and not spectral_init_differences(
                layers, problem.surrogate(), width, scale, np.float32):
            returned = sorted(_dtypes(out))
            causes = ([f"float32 rounding: the init agrees with dlnref's only to float32 precision (it comes back as "
                       f"{', '.join(returned)}; check with dtype=np.float32, or compute in float64)"]
                      if any("32" in d for d in returned) else
                      ["a precision below float64's (the init agrees with dlnref's to float32 precision, and comes "
                       "back as float64): an SVD computed in float32, or through the eigenvectors of S^T S or of "
                       "[[0, S], [S^T, 0]], which lose accuracy where a singular value is small"])
        elif diagnose:
            causes = _compression_causes(layers, problem, width, scale, dtype)
    if not diagnose:
        return "differs"
    settings_text = f"compress_fn(problem, depth={depth}, width={width}, scale={scale!r}), layout {layout!r}, " \
                    f"dtype {np.dtype(dtype).name}"
    return _report("C-DLN init", case.describe(), settings_text, found, causes, case.call())


def _compression_shape_causes(layers, shapes, problem, width, scale, dtype, layout):
    causes = _shape_causes(layers, shapes, layout)
    if causes:
        return causes
    m, n = problem.shape
    got = [W.shape for W in layers]
    chained = (len(got) == len(shapes) and got[0][1] == n and got[-1][0] == m
               and all(a[0] == b[1] for a, b in zip(got[:-1], got[1:])) and len({W.shape[0] for W in layers[:-1]}) == 1)
    if not chained:
        return []
    other = got[0][0]
    rank = getattr(problem, "rank", None)
    if other == rank:
        cause = f"width r = {other} (the target's rank) instead of the asked width {width}: use the width argument"
    elif other == min(m, n):
        cause = f"the full width min(m, n) = {other} instead of the asked width {width}: use the width argument"
    else:
        cause = f"width {other} instead of the asked width {width}: use the width argument"
    if not spectral_init_differences(layers, problem.surrogate(), other, scale, dtype):
        cause += f" (otherwise it is the right spectral init of width {other})"
    return [cause]


def _compression_causes(layers, problem, width, scale, dtype):
    """Causes of a C-DLN init of the right shapes that differs: scales, other singular vectors, pairing, values."""
    spectra = _spectra(layers)
    rtol = 64 * np.finfo(dtype).eps * sum(problem.shape)
    surrogate = np.asarray(problem.surrogate(), dtype=np.float64)
    if all(_flat(s, float(np.mean(s)), rtol) for s in spectra):
        values = [float(np.mean(s)) for s in spectra]
        wrong = [l for l, v in enumerate(values) if not _close(v, scale, rtol)]
        if wrong:
            named = "; ".join(f"layer {l + 1} is {values[l] / scale:.6g} eps times (semi-)orthogonal"
                              + (" (the scale eps is missing)" if _close(values[l], 1.0, rtol) else "") for l in wrong)
            return [f"a scale other than eps: {named}"]
    else:
        return _value_causes(layers, problem, surrogate, width, scale, rtol)
    alternatives = [("the bottom singular vectors instead of the top ones", surrogate, "bottom")]
    if surrogate.shape[0] == surrogate.shape[1]:
        alternatives.append(("the left and right singular vectors are swapped (W~_1 = eps U^T, W~_L = eps V)",
                             surrogate.T, "top"))
    target = getattr(problem, "target", None)
    if target is not None and not np.allclose(np.asarray(target), surrogate):
        alternatives.append(("the singular vectors of the target M instead of those of the surrogate "
                             f"({_surrogate_words(problem)})", np.asarray(target, dtype=np.float64), "top"))
    causes = [name for name, matrix, which in alternatives
              if not spectral_init_differences(layers, matrix, width, scale, dtype, which)]
    return causes or _pairing_causes(layers, surrogate, width, scale)


def _surrogate_words(problem):
    return {"completion": "P_Omega(M) / p", "sensing": "sum_i y_i A_i", "factorization": "M"}.get(problem.name,
                                                                                                 "problem.surrogate()")


def _pairing_causes(layers, surrogate, width, scale):
    """A sign flipped on one side of a singular pair, or left and right vectors taken in different orders."""
    spec = spectral_spec(surrogate, width)
    X = end_to_end(layers) / scale ** len(layers)
    taken = [g for g in spec.groups if g is not spec.zero and set(g) <= spec.chosen]
    index = [i for g in taken for i in g]
    if not index or any(len(g) > 1 for g in taken):
        return []
    U = np.hstack([spec.left[spec.groups.index(g)] for g in taken])
    V = np.hstack([spec.right[spec.groups.index(g)] for g in taken])
    C = U.T @ X @ V
    rounded = np.round(C)
    if np.abs(C - rounded).max() > 1e-6 or not np.all(np.abs(rounded).sum(axis=0) == 1):
        return []
    if np.all(np.abs(np.diag(rounded)) == 1):
        flipped = [index[i] + 1 for i in range(len(index)) if rounded[i, i] < 0]
        return [f"the left and right singular vectors are not paired: u_i v_i^T enters with sign -1 for i = {flipped} "
                "(a sign flipped on one side only, e.g. U and V from two separate eigendecompositions)"]
    return ["the left and right singular vectors are taken in different orders (W~_1's rows and W~_L's columns "
            "sorted differently)"]


def _value_causes(layers, problem, surrogate, width, scale, rtol):
    """The surrogate's singular values in the init: ``X_0 = c U_w diag(s_w) V_w^T``, with c fitted and read."""
    U, s, Vh = np.linalg.svd(surrogate)
    B = U[:, :width] @ np.diag(s[:width]) @ Vh[:width]
    X = end_to_end(layers)
    c = float(np.vdot(X, B) / np.vdot(B, B))
    if np.abs(X - c * B).max() > 1e3 * rtol * abs(c) * s[0]:
        return []
    ratio = c / scale ** len(layers)
    text = (f"the surrogate's singular values enter the init: X_0 = c U_w diag(s_w) V_w^T with c = {ratio:.6g} eps^L, "
            "where the paper's init is eps^L U_w V_w^T (W~_1 = eps V_w^T, W~_L = eps U_w take the vectors only)")
    fraction = getattr(problem, "fraction", None)
    if fraction is not None and _close(ratio, fraction, 1e-6):
        text += (f"; and c = p eps^L, p = {fraction:g}: the surrogate without the 1/p, P_Omega(M) instead of "
                 "P_Omega(M) / p")
    return [text]


def assert_compression_matches(compress_fn, problem=None, *, layout="input_first", dtype=np.float64, depths=None,
                               max_examples=30, width=None):
    """Check ``compress_fn(problem, depth, width, scale) -> weights``, the C-DLN's spectral init, against dlnref's.

    Parameters
    ----------
    compress_fn : callable
        Gets a dlnref problem (read ``problem.surrogate()``, or ``.target``,
        ``.mask``, ``.fraction``, ``.operators``), the depth L, the width ``w``
        (``2 r`` on drawn cases) and ``eps``; returns ``[W~_1, ..., W~_L]``
        in ``layout`` order: ``W~_1 = eps V_w^T`` ``(w, n)``, ``W~_l = eps I_w``,
        ``W~_L = eps U_w`` ``(m, w)``, with ``U_w``, ``V_w`` the top ``w``
        singular vectors of the surrogate.
    problem : str, Problem or None
        A registered problem's name, None for every one the oracle checks, or
        a problem object (then it runs on that problem at ``depths`` and two
        scales; the width is ``2 problem.rank``).
    layout : {"input_first", "output_first"}
    dtype : numpy dtype
    depths : iterable of int or None
        Depths your code supports (default 2 to 4).
    max_examples : int
    width : int or None
        With a problem object only: the width asked for (None: ``2 problem.rank``).

    Notes
    -----
    Equal up to the signs of singular-vector pairs, rotations within repeated
    singular values, bases of the null spaces, and the orthogonal changes of
    basis between layers that leave gradient descent's trajectory unchanged:
    see :func:`spectral_init_differences`.

    Raises
    ------
    AssertionError
        On the smallest failing case, with the cause that fits: a width other
        than the one asked (r, or min(m, n)), the layout, transposed layers, a
        scale other than eps, the bottom singular vectors, left and right
        swapped, those of M instead of the surrogate, a pair's sign flipped on
        one side, the singular values in the init (and, for completion, the
        surrogate without 1/p).
    """
    check_layout(layout)
    if problem is None or isinstance(problem, str):
        smallest_failure(lambda case, diagnose: check_compression(compress_fn, case, layout, dtype, diagnose),
                compression_cases(problem, depths), max_examples)
        return
    if width is None and getattr(problem, "rank", None) is None:
        raise InputError("width must be given for a problem whose target rank is unknown (problem.rank is None)")
    width = 2 * problem.rank if width is None else width
    for depth in _depths(depths, 2, 6, COMPRESSION_DEPTHS):
        for scale in SCALES[:2]:
            report = check_compression(compress_fn, GivenProblemCase(problem, depth, width, scale), layout, dtype)
            if report is not None:
                raise AssertionError(report)


# --- the compressed network's run ----------------------------------------------------------------------------

#: Scales of the trajectory cases: larger than the paper's 1e-2, so that the narrow network moves within a
#: check's few steps and a wrong update shows far above rounding (the rule is the same at any scale).
TRAJECTORY_SCALES = (0.37, 0.53, 0.7)


def compressed_trajectory_cases(kind=None, depths=None):
    """:func:`compression_cases` at the scales :data:`TRAJECTORY_SCALES`."""
    return compression_cases(kind, depths, TRAJECTORY_SCALES)


def compressed_trajectory_lr_range(problem=None, steps=20, outer_lr_scale=None, depths=None):
    """``(0, limit]``: the lr at which dlnref's run from every drawn C-DLN provably stays bounded.

    The bound of :func:`dlnref.oracle.reference.trajectory_lr_limit` (layers
    start at spectral norm ``eps <= 1``, sides at most 6) at the deepest drawn
    network and, with ``outer_lr_scale=None``, the largest alpha a case draws.
    """
    from .cases import ALPHA_CANDIDATES

    kinds = oracle_kinds() if problem is None else (problem_class(problem).name,)
    alpha = max(ALPHA_CANDIDATES) if outer_lr_scale is None else outer_lr_scale
    depth = max(_depths(depths, 2, 6, COMPRESSION_DEPTHS))
    return 0.0, min(trajectory_lr_limit(k, steps, alpha, depth) for k in kinds)


def _descend(problem, weights, sizes, steps):
    """``[X_0, ..., X_steps]`` of gradient descent with per-layer step sizes ``sizes`` (a hypothesis' run)."""
    xs = [end_to_end(weights)]
    for _ in range(steps):
        grads = backward(weights, problem.gradient(xs[-1]))
        weights = [W - s * g for W, s, g in zip(weights, sizes, grads)]
        xs.append(end_to_end(weights))
    return xs


def _rate_placements(L, alpha):
    """``(name, P)``: placements of alpha other than dlnref's (``P_l`` the factor on ``lr`` at layer l)."""
    inner = [1.0 if l in (0, L - 1) else alpha for l in range(L)]
    outer = [alpha if l in (0, L - 1) else 1.0 for l in range(L)]
    placements = [("the discrepant rate alpha is missing: every layer takes lr", [1.0] * L),
                  ("alpha is applied to W_1 only, not to W_L", [alpha] + [1.0] * (L - 1)),
                  ("alpha is applied to W_L only, not to W_1", [1.0] * (L - 1) + [alpha]),
                  ("alpha is applied to every layer, not just W_1 and W_L", [alpha] * L),
                  ("alpha is applied to the inner layers, not to W_1 and W_L", inner)]
    kept = []
    for name, P in placements:   # at depth 2 some placements are dlnref's own, or each other's
        if P != outer and all(P != Q for _, Q in kept):
            kept.append((name, P))
    return kept


def check_compressed_trajectory(train_fn, case, steps, lr, outer_lr_scale=None, layout="input_first",
                                dtype=np.float64, diagnose=True, confirm_depth=None, kinds=None):
    """The failure report of ``train_fn`` run from dlnref's C-DLN on one case, or None when every ``X_t`` agrees.

    ``confirm_depth``: a depth at which a failure on a shallower case is run again, so that causes which look
    alike at depth 2 (where every layer is an outer one) are told apart; the causes named are those that fit
    there (when the deeper case fails too). ``kinds``: the problems the function supports, tried in turn for the
    second case (the case's own first) until one names a single cause.
    """
    found, causes, alpha = _compressed_run(train_fn, case, steps, lr, outer_lr_scale, layout, dtype, diagnose)
    if found is None:
        return None
    if not diagnose:
        return "differs"
    if confirm_depth is not None and (len(causes) != 1 or case.depth < confirm_depth):
        causes = _confirmed(train_fn, case, causes, steps, lr, outer_lr_scale, layout, dtype, confirm_depth, kinds)
    settings_text = f"lr={lr:g}, alpha={alpha:g}, steps={steps}, layout {layout!r}, dtype {np.dtype(dtype).name}"
    return _report("C-DLN trajectory", case.describe(), settings_text, found, causes,
                   case.call() + f"; then train_fn(weights, problem, {lr!r}, {alpha!r}, {steps})")


def _confirmed(train_fn, case, causes, steps, lr, outer_lr_scale, layout, dtype, depth, kinds):
    """The causes of the first confirmation case (of ``case.kind``, then of ``kinds``) that names the fewest, >= 1.

    From the spectral init of a factorization problem the residual stays in the span of ``U_w`` and ``V_w``,
    so (to first order in lr) ``X(t)`` depends on the layers' rates only through their sum: placements of
    alpha with equal sums look alike there, and a problem whose gradient leaves that span tells them apart.
    """
    best = None
    for kind in dict.fromkeys([case.kind, *(kinds or ())]):
        confirm = _confirmation_case(dataclasses.replace(case, kind=kind), depth)
        if confirm is None:
            continue
        found, named, _ = _compressed_run(train_fn, confirm, steps, lr, outer_lr_scale, layout, dtype, True)
        if found is not None and named and (best is None or len(named) < len(best)):
            best = [f"{c} (confirmed on {confirm.describe()})" for c in named]
            if len(best) == 1:
                break
    if best is not None and len(best) > 1:
        best[-1] += ("; from the spectral init these change X(t) alike, to first order in lr (assert_step_matches "
                     "tells them apart)")
    return best or causes


def _confirmation_case(case, depth):
    """A second case that tells apart what the first may not: depth ``depth``, a target wider than ``2 r`` each way.

    On a target of side ``2 r`` the C-DLN's ``U_w U_w^T`` and ``V_w V_w^T`` are the identity, so the layers'
    contributions to the first step of ``X`` are alike and only the sum of their rates shows.
    """
    m, n = (min(MAX_SIZE, max(side, 2 * case.rank + 1)) for side in case.shape)
    if min(m, n) <= 2 * case.rank:
        return None
    names = problem_class(case.kind).oracle_sizes
    for seed in range(case.problem_seed, case.problem_seed + 20):
        sizes = tuple((name, {"observed": max(3, (m * n * 2) // 3), "measurements": max(3, m * n // 2)}[name])
                      for name in names if name in ("observed", "measurements"))
        if len(sizes) != len(names):
            return None
        candidate = dataclasses.replace(case, shape=(m, n), depth=depth, problem_seed=seed, sizes=sizes)
        if _well_separated(candidate):
            return candidate
    return None


def _compressed_run(train_fn, case, steps, lr, outer_lr_scale, layout, dtype, diagnose):
    """``(found, causes, alpha)`` of the user's run on one case; ``found`` is None when it agrees."""
    from .cases import case_alpha

    weights, problem = case.build()
    weights = [np.asarray(W, dtype=dtype).astype(np.float64) for W in weights]
    alpha = case_alpha(problem) if outer_lr_scale is None else outer_lr_scale
    exact, tolerances = reference_trajectory(problem, weights, lr, alpha, steps, dtype)
    out = _call_user(train_fn, to_layout([W.astype(dtype) for W in weights], layout), problem, lr, alpha, steps)
    theirs = out if isinstance(out, UserError) else _layers(out, "input_first")
    if isinstance(theirs, UserError):
        return f"{theirs}.", [], alpha
    if len(theirs) != len(exact) or any(x.shape != e.shape for x, e in zip(theirs, exact)):
        return (f"train_fn returned {len(theirs)} matrices of shapes {sorted({x.shape for x in theirs})}, expected "
                f"steps + 1 = {len(exact)} of shape {exact[0].shape}."), [], alpha
    first = next((t for t, (x, e, tol) in enumerate(zip(theirs, exact, tolerances))
                  if not float(np.abs(x - e).max()) <= tol), None)
    if first is None:
        return None, [], alpha
    difference = float(np.abs(theirs[first] - exact[first]).max())
    found = f"X_{first} is the first to differ: max abs difference {difference:.3e}, tolerance {tolerances[first]:.3e}."
    causes = _trajectory_causes(theirs, exact, tolerances, weights, problem, lr, alpha, steps) if diagnose else []
    return found, causes, alpha


def _trajectory_causes(theirs, exact, tolerances, weights, problem, lr, alpha, steps):
    """The hypotheses that reproduce the whole returned trajectory: rates, loss normalisation, aliasing."""
    def fits(xs):
        return all(float(np.abs(x - e).max()) <= tol for x, e, tol in zip(theirs, xs, tolerances))

    last = exact[-1].astype(np.float64)
    if steps > 0 and all(float(np.abs(x - last).max()) <= tol for x, tol in zip(theirs, tolerances[-1:] * len(theirs))):
        return ["every X_t comes back equal to the last one: return copies (X_t is a view of weights that are "
                "later updated in place)"]
    L = len(weights)
    outer = [alpha if l in (0, L - 1) else 1.0 for l in range(L)]
    factors = [(1.0, None)] + [(f.value, f"{f.meaning}: factor {f.value:.6g} = {f.formula}")
                               for f in normalisation_factors(problem)]
    causes = []
    for placement, P in [(None, outer)] + _rate_placements(L, alpha):
        for value, meaning in factors:
            if placement is None and meaning is None:
                continue
            if fits(_descend(problem, weights, [lr * value * p for p in P], steps)):
                causes.append("; and ".join(c for c in (meaning, placement) if c))
    return causes


def assert_compressed_trajectory_matches(train_fn, problem=None, *, steps=20, lr=None, outer_lr_scale=None,
                                         layout="input_first", dtype=np.float64, depths=None, max_examples=10):
    """Check a training run of the C-DLN: gradient descent with the discrepant rate from the spectral init.

    Parameters
    ----------
    train_fn : callable
        ``train_fn(weights, problem, lr, outer_lr_scale, steps) -> [X_0, ..., X_steps]``,
        as for :func:`dlnref.oracle.assert_trajectory_matches`; here ``weights`` is
        dlnref's C-DLN (:func:`dlnref.compress` at width ``2 r``), narrow
        inner layers ``(2r, n), (2r, 2r), ..., (m, 2r)``.
    problem : str or None
        A registered problem, or None for every one the oracle checks.
    steps : int
    lr : float or None
        In :func:`compressed_trajectory_lr_range` (where dlnref's run provably
        stays bounded); None takes half its upper end.
    outer_lr_scale : float or None
        alpha; None draws one per case that no loss normalisation of the case mimics.
    layout, dtype, depths, max_examples
        As for :func:`assert_compression_matches`.

    Raises
    ------
    ValueError
        For an lr outside the range.
    AssertionError
        On the smallest failing case: the first ``X_t`` that differs, and the
        hypotheses that reproduce the whole returned run (alpha missing or
        misplaced, the inner layers taking alpha, a loss normalisation, both,
        or X_t returned as views of weights updated in place).
    """
    check_layout(layout)
    low, high = compressed_trajectory_lr_range(problem, steps, outer_lr_scale, depths)
    lr = high / 2 if lr is None else lr
    if not low < lr <= high:
        raise InputError(f"lr={lr!r} is outside the range (0, {high:.4g}] in which dlnref's reference run provably "
                         f"stays bounded at steps={steps}: a usage error, not a failure of your code")
    deepest = max(_depths(depths, 2, 6, COMPRESSION_DEPTHS))
    confirm = 3 if deepest >= 3 and (depths is None or 3 in set(depths)) else None
    kinds = oracle_kinds() if problem is None else (problem_class(problem).name,)
    def check(case, diagnose):
        return check_compressed_trajectory(train_fn, case, steps, lr, outer_lr_scale, layout, dtype, diagnose,
                                           confirm, kinds)

    smallest_failure(check, compressed_trajectory_cases(problem, depths), max_examples)


# --- the MLP with a linear block -----------------------------------------------------------------------------


def build_mlp_case(inputs, classes, hidden, relu_layers, block_depth, block_width, samples, seed):
    """The model, weights and batch of an MLP case.

    Returns
    -------
    weights : list of ndarray
        :func:`dlnref.nn.mlp.init_mlp` ``(model, 1.0, seed)``, input first.
    model : dlnref.nn.mlp.MLPLayout
        Linear block (no ReLU between its layers).
    X : ndarray, shape (inputs, samples)
        N(0, 1) entries, one sample per column.
    Y : ndarray, shape (classes, samples)
        One-hot labels.
    """
    model = mlp_layout(inputs, classes, hidden, relu_layers, block_depth, block_width)
    rng = np.random.default_rng([seed, 1])
    X = rng.standard_normal((inputs, samples))
    Y = np.eye(classes)[rng.integers(classes, size=samples)].T
    return init_mlp(model, 1.0, seed), model, X, Y


@dataclasses.dataclass(frozen=True)
class MLPCase:
    """The integers of an MLP case (see :func:`build_mlp_case`)."""

    inputs: int
    classes: int
    hidden: int
    relu_layers: int
    block_depth: int
    block_width: int
    samples: int
    seed: int

    def build(self):
        return build_mlp_case(**dataclasses.asdict(self))

    def call(self):
        arguments = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self).items())
        return f"import dlnref.oracle; weights, model, X, Y = dlnref.oracle.build_mlp_case({arguments})"

    def describe(self):
        return (f"MLP {self.inputs} -> {self.hidden} x {self.relu_layers} ReLU layers -> linear block of "
                f"{self.block_depth} layers (width {self.block_width}) -> {self.classes} classes, {self.samples} "
                f"samples, seed={self.seed}")


def _clear_of_kinks(case):
    """No pre-activation within :data:`RELU_MARGIN` of 0: rounding cannot flip a ReLU of the case."""
    weights, model, X, _ = case.build()
    _, cache = mlp_forward(weights, model, X)
    pre = [segment[-1] for segment in cache[:-1]]
    return all(np.abs(Z).min() > RELU_MARGIN for Z in pre)


def mlp_cases():
    """Strategy of :class:`MLPCase`: up to 6 inputs, 2 to 4 classes, widths up to 5, 2 to 6 samples."""
    @st.composite
    def one(draw):
        hidden = draw(st.integers(2, 5))
        return MLPCase(draw(st.integers(2, 6)), draw(st.integers(2, 4)), hidden, draw(st.integers(1, 2)),
                       draw(st.integers(2, 3)), draw(st.integers(1, hidden)), draw(st.integers(2, 6)), draw(seeds))

    return one().filter(_clear_of_kinks)


def mlp_loss_factors(samples, classes):
    """``(value, meaning)``: how other losses scale the mean cross-entropy's gradient."""
    return [(float(samples), f"your loss is a sum over the {samples} samples, not a mean"),
            (1 / classes, f"your loss is a mean over all {samples} x {classes} entries (classes too), not over the "
                          "samples"),
            (1 / samples, f"your loss is divided by the batch size {samples} twice"),
            (0.5, "your loss has a factor 1/2")]


def mlp_rate(samples, classes):
    """The first of :data:`MLP_RATES` that is no ratio of two loss factors (1 included)."""
    values = [1.0] + [v for v, _ in mlp_loss_factors(samples, classes)]
    ratios = [a / b for a in values for b in values]
    return next(s for s in MLP_RATES if all(abs(s - r) > 1e-3 * s for r in ratios))


def _mlp_tolerances(weights, X, Y, logits, sizes, dtype):
    """Per layer: ``size_l 32 u K L A_l B_l + 4 u max|W_l|``, a bound on the rounding of a correct step.

    ``A_l = (||G||_F + 8 u sqrt(K_c / n)(1 + max|Z_L|)) prod_{k>l} ||W_k||_F`` bounds the back-propagated
    gradient (ReLU derivatives are at most 1), ``B_l = ||X||_F prod_{k<l} ||W_k||_F`` the activations.
    """
    u = np.finfo(dtype).eps
    norms = [np.linalg.norm(W) for W in weights]
    n, classes = X.shape[1], Y.shape[0]
    shifted = np.exp(logits - logits.max(axis=0))
    G = (shifted / shifted.sum(axis=0) - Y) / n
    top = np.linalg.norm(G) + 8 * u * math.sqrt(classes / n) * (1 + np.abs(logits).max())
    K = X.shape[0] + sum(W.shape[0] for W in weights)
    L = len(weights)
    tolerances = []
    for l, W in enumerate(weights):
        A = top * np.prod(norms[l + 1:])
        B = np.linalg.norm(X) * np.prod(norms[:l])
        tolerances.append(sizes[l] * 32 * u * K * L * A * B + 4 * u * np.abs(W).max())
    return tolerances


def _mlp_factors(theirs, ours, tolerances):
    """``c_l`` with ``theirs_l = c_l ours_l`` within tolerance, or None when a layer is no multiple."""
    factors = []
    for t, o, tol in zip(theirs, ours, tolerances):
        if np.abs(t).max() <= tol:
            factors.append(0.0)
            continue
        norm = float(np.vdot(o, o))
        c = float(np.vdot(t, o)) / norm if norm else math.inf
        if not np.isfinite(c) or np.abs(t - c * o).max() > max(1.0, abs(c)) * tol:
            return None
        factors.append(c)
    return factors


class MLPRun(typing.NamedTuple):
    """One call of the checked MLP step: the step size, the returned layers, dlnref's updates, their tolerances."""

    lr: float
    new: object
    ours: list
    tolerances: list


def check_mlp_step(step_fn, case, lr=0.1, first_lr_scale=None, layout="input_first", dtype=np.float64,
                   diagnose=True):
    """The failure report of ``step_fn`` on one MLP case, at ``lr`` and ``LR_RATIO * lr``, or None."""
    weights, model, X, Y = case.build()
    weights = [W.astype(dtype).astype(np.float64) for W in weights]
    X, Y = X.astype(dtype).astype(np.float64), Y.astype(dtype).astype(np.float64)
    scale = mlp_rate(case.samples, case.classes) if first_lr_scale is None else first_lr_scale
    L = len(weights)
    rates = [scale] + [1.0] * (L - 1)
    logits, _ = mlp_forward(weights, model, X)
    _, grads = loss_and_gradients(weights, model, X, Y)
    lrs = (lr, LR_RATIO * lr)
    runs = []
    for rate in lrs:
        out = _call_user(step_fn, to_layout([W.astype(dtype) for W in weights], layout), model, X.astype(dtype),
                         Y.astype(dtype), rate, scale)
        runs.append(MLPRun(rate, _layers(out, layout), [-rate * r * g for r, g in zip(rates, grads)],
                           _mlp_tolerances(weights, X, Y, logits, [rate * r for r in rates], dtype)))
    failed = None
    for rate, new, ours, tolerances in runs:
        if isinstance(new, UserError):
            failed = failed or (rate, f"{new}.")
        elif [W.shape for W in new] != [W.shape for W in weights]:
            failed = failed or (rate, f"the layers come back with shapes {[W.shape for W in new]}, expected "
                                      f"{[W.shape for W in weights]}.")
        else:
            for l, (n, W, o, tol) in enumerate(zip(new, weights, ours, tolerances)):
                difference = float(np.abs((n - W) - o).max())
                if not difference <= tol:
                    failed = failed or (rate, f"layer {l + 1} (1 = input side): the update differs by up to "
                                              f"{difference:.3e}, tolerance {tol:.3e}.")
                    break
    if failed is None:
        return None
    if not diagnose:
        return "differs"
    rate, found = failed
    causes = _mlp_causes(step_fn, runs, weights, model, X, Y, case, scale, layout, dtype)
    settings_text = (f"lr={rate:g} (checked at lr={lrs[0]:g} and {lrs[1]:g}), first_lr_scale={scale:g}, layout "
                     f"{layout!r}, dtype {np.dtype(dtype).name}")
    return _report("one MLP step", case.describe(), settings_text, found, causes,
                   case.call() + f"; then step_fn(weights, model, X, Y, {rate!r}, {scale!r})")


def _mlp_causes(step_fn, runs, weights, model, X, Y, case, scale, layout, dtype):
    """Causes of a wrong MLP step: rate placement, frozen layers, loss normalisation, lr, ReLUs in the block."""
    L = len(weights)
    first, stop = model.block_layers
    if any(isinstance(new, UserError) or [W.shape for W in new] != [W.shape for W in weights]
           for _, new, _, _ in runs):
        shapes = [W.shape for W in weights]
        new = runs[0].new
        if not isinstance(new, UserError) and [W.shape for W in new][::-1] == shapes:
            return [f"the layers come back in the other order: pass layout={_other(layout)!r}"]
        return []
    updates = [[n - W for n, W in zip(run.new, weights)] for run in runs]
    if np.dtype(dtype) == np.float64:
        loose = [_mlp_tolerances(weights, X, Y, mlp_forward(weights, model, X)[0], [r * s for s in
                 [scale] + [1.0] * (L - 1)], np.float32) for r, *_ in runs]
        if all(all(np.abs(u - o).max() <= t for u, o, t in zip(us, run.ours, tol))
               for us, run, tol in zip(updates, runs, loose)):
            return ["float32 rounding: the step agrees with dlnref only to float32 precision (check with "
                    "dtype=np.float32)"]
    causes = []
    c = [_mlp_factors(us, run.ours, run.tolerances) for us, run in zip(updates, runs)]
    if c[0] is not None and c[1] is not None:
        causes += _explain_mlp_factors(c, [r for r, *_ in runs], scale, case, (first, stop))
    relu_block = dataclasses.replace(model, block_activation="relu")
    if L > 1:
        _, relu_grads = loss_and_gradients(weights, relu_block, X, Y)
        rates = [scale] + [1.0] * (L - 1)
        if all(all(np.abs(u + r * s * g).max() <= t for u, s, g, t in zip(us, rates, relu_grads, tol))
               for us, (r, _, _, tol) in zip(updates, runs)):
            causes = [c for c in causes if not c.startswith("zero update")]   # a ReLU block may kill every update
            causes.append("a ReLU between the block's layers: the block of the paper's text is linear (dlnref's "
                          "block='linear'); the official code's forward pass has the ReLUs (block='relu')")
    if not causes and L > 1:
        other = [_layers(_call_user(step_fn, to_layout([W.astype(dtype) for W in weights], _other(layout)), model,
                                    X.astype(dtype), Y.astype(dtype), r, scale), _other(layout)) for r, *_ in runs]
        if all(not isinstance(o, UserError) and [W.shape for W in o] == [W.shape for W in weights]
               and all(np.abs((n - W) - d).max() <= t for n, W, d, t in zip(o, weights, ours, tol))
               for o, (_, _, ours, tol) in zip(other, runs)):
            causes.append(f"your function reads the layers in the other order: pass layout={_other(layout)!r}")
    return causes


def _explain_mlp_factors(c, lrs, scale, case, block):
    """Explanations of per-layer factors ``c`` (at two step sizes) by lr, loss factor, rate placement, frozen layers."""
    c1, c2 = c
    L = len(c1)
    frozen = [l for l in range(L) if c1[l] == 0]
    if len(frozen) == L:
        return ["zero update: every layer comes back unchanged"]
    causes = []
    moving = [l for l in range(L) if c1[l] != 0]
    if frozen == list(range(*block)):
        causes.append(f"the block's layers {block[0] + 1}..{block[1]} are not updated")
    elif frozen:
        causes.append(f"layers {[l + 1 for l in frozen]} are not updated")
    lr_free = False
    ratio = [c2[l] / c1[l] for l in moving if c2[l] != 0]
    if ratio and all(_close(r, ratio[0]) for r in ratio) and not _close(ratio[0], 1.0):
        power = 1 + math.log(abs(ratio[0])) / math.log(lrs[1] / lrs[0])
        if abs(power) < 1e-3:
            causes.append(f"lr is ignored: the update is the same at lr={lrs[0]:g} and lr={lrs[1]:g}")
            lr_free = True
        elif abs(power - 1) > 1e-3:
            causes.append(f"lr is rescaled: the update grows as lr^{power:.3g}, not as lr")
            lr_free = True
    placements = [(None, [scale] + [1.0] * (L - 1)),
                  ("first_lr_scale is missing: every layer takes lr", [1.0] * L),
                  ("first_lr_scale is applied to the last layer, not the first", [1.0] * (L - 1) + [scale]),
                  ("first_lr_scale is applied to the first and the last layer (the DLN's discrepant rule), not the "
                   "first only", [scale] + [1.0] * (L - 2) + [scale]),
                  ("first_lr_scale is applied to every layer", [scale] * L)]
    rates = placements[0][1]
    loss = [(1.0, None)] + mlp_loss_factors(case.samples, case.classes)
    known, unknown = [], []
    for name, P in placements:
        values = [c1[l] * rates[l] / P[l] for l in moving]
        if not all(_close(v, values[0]) for v in values):
            continue
        F = values[0]
        words = ["the sign is flipped: the step climbs the loss"] if F < 0 else []
        match = [m for v, m in loss if _close(abs(F), v)]
        if lr_free or match:
            words += [m for m in match[:1] if m and not lr_free]
            known.append("; and ".join(causes + words + ([name] if name else [])))
        else:
            words.append(f"a constant factor {abs(F):.6g} on every layer that no loss normalisation gives (is lr "
                         "scaled?)")
            unknown.append("; and ".join(causes + words + ([name] if name else [])))
    return [n for n in known if n] or unknown or (["; and ".join(causes)] if causes else [])


def assert_mlp_step_matches(step_fn, *, lr=0.1, first_lr_scale=None, layout="input_first", dtype=np.float64,
                            max_examples=30):
    r"""Check one gradient step of the MLP with a linear block (:mod:`dlnref.nn.mlp`) at ``lr`` and ``0.37 lr``.

    Parameters
    ----------
    step_fn : callable
        ``step_fn(weights, model, X, Y, lr, first_lr_scale) -> new_weights``.
        ``weights`` in ``layout`` order, ``W_l`` of shape ``(d_l, d_{l-1})``, no
        biases; ``model`` a :class:`dlnref.nn.mlp.MLPLayout` (read
        ``model.relu_after[l]``: whether a ReLU follows 0-based layer l;
        ``model.block_layers``); ``X`` of shape ``(d_0, n)``, one sample per
        column; ``Y`` one-hot ``(K, n)``. dlnref's step:
        ``W_l <- W_l - lr s_l dLoss/dW_l``, ``s_1 = first_lr_scale``,
        ``s_l = 1`` otherwise, on the mean softmax cross-entropy
        ``-(1/n) sum_i log softmax(Z_L)[y_i, i]``.
    lr : float
    first_lr_scale : float or None
        None draws one per case that no loss factor of the case mimics.
    layout : {"input_first", "output_first"}
    dtype : numpy dtype
    max_examples : int

    Raises
    ------
    AssertionError
        On the smallest failing case, with the cause that fits: first_lr_scale
        missing or on other layers, the block's layers not updated, a loss that
        sums over the samples (or averages over classes too), the sign, lr
        ignored, ReLUs inside the block, the other layout, float32 rounding.
    """
    check_layout(layout)
    smallest_failure(lambda case, diagnose: check_mlp_step(step_fn, case, lr, first_lr_scale, layout, dtype, diagnose),
            mlp_cases(), max_examples)


# --- dlnref conform --kind init|compression|cdln|mlp ------------------------------------------------------


def conform_rows(args, dtypes):
    """``(problem, dtype name, lr, alpha)`` of every row of ``dlnref conform`` for the algorithm's kinds."""
    dtypes = args.dtype or list(dtypes)
    if args.kind == "init":
        return [(None, d, None, None) for d in dtypes]
    if args.kind == "compression":
        return [(p, d, None, None) for p in args.problem or list(oracle_kinds()) for d in dtypes]
    if args.kind == "cdln":
        return [(p, d, lr, alpha) for p in args.problem or list(oracle_kinds()) for d in dtypes
                for alpha in args.alpha or [None]
                for lr in args.lr or [compressed_trajectory_lr_range(p, args.steps, alpha)[1] / 2]]
    return [(None, d, lr, alpha) for d in dtypes for alpha in args.alpha or [None] for lr in args.lr or [0.1]]


def conform_check(function, args, dtype, lr, alpha, problem=None):
    """The failure message of one row of ``dlnref conform`` for the algorithm's kinds, or None when it passes."""
    extra = {} if args.max_examples is None else {"max_examples": args.max_examples}
    try:
        if args.kind == "init":
            assert_init_matches(function, layout=args.layout, dtype=dtype, depths=args.depths,
                                **extra)
        elif args.kind == "compression":
            assert_compression_matches(function, problem, layout=args.layout, dtype=dtype,
                                       depths=args.depths, **extra)
        elif args.kind == "cdln":
            assert_compressed_trajectory_matches(function, problem, steps=args.steps, lr=lr, outer_lr_scale=alpha,
                                                 layout=args.layout, dtype=dtype, depths=args.depths,
                                                 **extra)
        else:
            assert_mlp_step_matches(function, lr=lr, first_lr_scale=alpha, layout=args.layout, dtype=dtype, **extra)
    except AssertionError as failure:
        return str(failure)
    return None
