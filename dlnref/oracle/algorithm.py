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

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..compress import compress
from ..errors import InputError
from ..network import backward, end_to_end, init_weights
from ..nn.mlp import init_mlp, loss_and_gradients, mlp_layout
from ..nn.mlp import forward as mlp_forward
from ..problems import problem_class
from .cases import LAYOUTS, check_layout, from_layout, normalisation_factors, oracle_kinds, to_layout
from .reference import reference_trajectory, trajectory_lr_limit
from .strategies import seeds

#: Init scales ``eps`` of the drawn init and compression cases: no two a ratio of small integers or a root of another.
SCALES = (0.01, 0.37, 0.003, 0.053)
#: The bound on the probability that the Haar test fails a correct init (Haar-distributed layers).
HAAR_FALSE_FAILURE = 1e-6
#: Widths of the network on which the Haar test draws ``haar_samples`` inits: a tall, a square and a wide layer.
HAAR_DIMS = (3, 4, 4, 2)
#: Widths on which formulas that fit a case of square layers equally are told apart.
APART_DIMS = (2, 3, 5, 4)
#: Widths of the square network on which a non-orthogonal init's law is measured (a diagnosis only).
LAW_DIMS = (32, 32, 32, 32)
#: Largest side of a compression case's target (the reference trajectory's bounds assume at most this).
MAX_SIDE = 6
#: A compression case keeps the surrogate's singular values either equal (to ``GROUP_RTOL`` of the largest)
#: or at least ``MIN_GAP`` of the largest apart, so that the subspaces compared are well defined.
GROUP_RTOL, MIN_GAP = 1e-9, 1e-2
#: Rates ``first_lr_scale`` tried in turn for an MLP case: the first that is no ratio of two loss factors.
MLP_RATES = (3.7, 2.9, 4.3)
#: The second step size of an MLP step check, as a multiple of the first.
LR_RATIO = 0.37
#: A pre-activation closer to 0 than this makes a drawn MLP case ambiguous (rounding could flip its ReLU).
RELU_MARGIN = 1e-3
#: Relative precision at which fitted factors are compared with a named one.
FACTOR_RTOL = 1e-4


# --- shared plumbing ---------------------------------------------------------------------------------------


def _search(check, cases, max_examples):
    """Run ``check(case, diagnose)`` over ``cases`` (derandomized); raise the smallest failing case's report."""
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
    return f"{what} differs from dlnref on case {case}; {settings_text}.\n{found}\n{diagnosis}\nRebuild the case: {rebuild}"


def _other(layout):
    return LAYOUTS[1 - LAYOUTS.index(layout)]


def _depths(depths, low, high):
    """The depths a check draws: the user's (within ``[low, high]``), or all of ``low..high``."""
    allowed = list(range(low, high + 1)) if depths is None else sorted({int(d) for d in depths})
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
    allowed = _depths(depths, 1, 8)
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
    """The failure report of ``init_fn`` on one :class:`InitCase`, or None when it gives ``eps`` times orthogonal layers.

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
        found = f"the layers have shapes {[W.shape for W in layers]}, expected {shapes} (W_l of shape (d_l, d_{{l-1}}))."
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
    """Test the law of ``O_l = W_l / eps`` over ``samples`` seeds against the Haar measure; return the failure or None.

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
    _search(lambda case, diagnose: check_init(init_fn, case, layout, dtype, diagnose), init_cases(depths),
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
        return f"import dlnref.oracle; weights, problem = dlnref.oracle.build_compression_case({self.kind!r}, {arguments})"

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
        return f"your {self.problem.name} problem ({m}x{n}), depth {self.depth}, width {self.width}, scale {self.scale!r}"


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
      symmetric projector for a group cut by ``w``.

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
            out.append(f"layer {l + 1} (1 = input side) has singular values {_numbers(s)}, expected all eps = {scale:g}")
    if out:
        return out
    for side, P, bases in (("W_L's columns", weights[-1] @ weights[-1].T, spec.left),
                           ("W_1's rows", weights[0].T @ weights[0], spec.right)):
        P = P / scale**2
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
            out.append(f"the pairing U_g^T X_0 V_g / eps^L of the singular values at indices {g} is {_numbers(C.ravel(), 4)}, "
                       "not the identity")
        elif taken < len(g) and (np.abs(C - C.T).max() > tol or np.abs(C @ C - C).max() > tol):
            out.append(f"the pairing U_g^T X_0 V_g / eps^L of the singular values at indices {g} is no symmetric "
                       "projector")
    return out


def compression_cases(kind=None, depths=None):
    """Strategy of :class:`CompressionCase`: targets up to 6 x 6, width 2r, singular subspaces well defined."""
    from .cases import SIZE_DRAWS

    kinds = oracle_kinds() if kind is None else (problem_class(kind).name,)
    allowed = _depths(depths, 2, 6)

    @st.composite
    def one(draw, kind):
        m, n = draw(st.integers(2, MAX_SIDE)), draw(st.integers(2, MAX_SIDE))
        rank = draw(st.integers(1, min(m, n) // 2))
        sizes = tuple((name, draw(SIZE_DRAWS[name](m, n))) for name in problem_class(kind).oracle_sizes)
        return CompressionCase(kind, (m, n), rank, draw(st.sampled_from(allowed)), draw(st.sampled_from(SCALES)),
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
        if diagnose:
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
    L = len(layers)
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
        text += f"; and c = p eps^L, p = {fraction:g}: the surrogate without the 1/p, P_Omega(M) instead of P_Omega(M) / p"
    return [text]


def assert_compression_matches(compress_fn, problem=None, *, layout="input_first", dtype=np.float64, depths=None,
                               max_examples=30):
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
        _search(lambda case, diagnose: check_compression(compress_fn, case, layout, dtype, diagnose),
                compression_cases(problem, _depths(depths, 2, 4) if depths is None else depths), max_examples)
        return
    for depth in _depths(depths, 2, 6) if depths is not None else (2, 3, 4):
        for scale in SCALES[:2]:
            report = check_compression(compress_fn, GivenProblemCase(problem, depth, 2 * problem.rank, scale), layout,
                                       dtype)
            if report is not None:
                raise AssertionError(report)
