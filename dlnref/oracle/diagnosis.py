"""Why a result differs from dlnref's: known bug signatures fitted on the failing case, confirmed on a second one.

Backward passes are read directly: each layer's gradient as a multiple of
dlnref's (zero, negated, scaled), the layers reversed or transposed.

Steps and trajectories are read through :mod:`dlnref.oracle.signatures`: the
difference between the user's update and dlnref's is fitted, per layer and
at both step sizes, as a small combination of known signatures (a
normalisation factor, where alpha is applied, weight decay, the unmasked
residual, a transposed sensing operator, one transpose missing or the
backward products shifted, clipping, a count of another problem); layers
returned reversed or transposed, sequential updates, the other layout and
float32 rounding are tried too. A cause is named only when it fits the
failing case to rounding **and** the same signature, with the numbers it
predicts, fits a second case of other sizes and depth >= 3 (within the
declared depths). Otherwise the diagnosis says what was measured and that no
known cause fits. When several confirmed explanations remain, all are named.
"""

import numpy as np

from .reference import matches
from .signatures import PLACEMENTS, Quantities, gradient_variants, measure_step, read_measured

#: Relative precision at which fitted factors are compared with a hypothesis' (the collision rules of
#: :mod:`dlnref.oracle.cases` keep the factors of a case 1e-3 apart).
FACTOR_RTOL = 1e-4


def _close(a, b):
    return abs(a - b) <= FACTOR_RTOL * max(abs(a), abs(b))


REVERSED = "the layers come back in reverse order (the other layout's)"
TRANSPOSED = "each layer comes back transposed"


def _fits(layers, shapes):
    return len(layers) == len(shapes) and all(np.shape(t) == s for t, s in zip(layers, shapes))


def _distinct(views):
    """The views without those equal to an earlier one (one layer reversed, a 1 x 1 layer transposed)."""
    kept = []
    for name, layers in views:
        if not any(all(np.array_equal(a, b) for a, b in zip(layers, other)) for _, other in kept):
            kept.append((name, layers))
    return kept


def gradient_views(theirs, ours):
    """``(name, layers)``: the gradients as given, reversed, transposed, where the shapes fit."""
    if not isinstance(theirs, list):
        return []
    transposed = [np.asarray(t).T for t in theirs]
    views = [(None, theirs), (REVERSED, theirs[::-1]), (TRANSPOSED, transposed),
             (REVERSED + ", and " + TRANSPOSED, transposed[::-1])]
    return _distinct([(name, v) for name, v in views if _fits(v, [o.shape for o in ours])])


def step_views(new, weights):
    """``(name, updates)``: ``new_W_l - W_l`` as given, with the layers reversed, or each update transposed."""
    if not isinstance(new, list):
        return []
    shapes = [w.shape for w in weights]
    views = [(name, [t - w for t, w in zip(layers, weights)])
             for name, layers in ((None, new), (REVERSED, new[::-1])) if _fits(layers, shapes)]
    if views and views[0][0] is None and all(w.shape[0] == w.shape[1] for w in weights):
        views.append(("each layer's gradient is transposed (W_l - step dW_l^T)", [u.T for u in views[0][1]]))
    return _distinct(views)


def layer_factors(theirs, ours, tolerances):
    """``c_l`` with ``theirs_l = c_l ours_l`` within tolerance on every layer, or None when one layer is no multiple.

    A layer that is all zero gets ``c_l = 0``.
    """
    factors = []
    for t, o, tol in zip(theirs, ours, tolerances):
        t = np.asarray(t, dtype=np.float64)
        norm = float(np.vdot(o, o))
        if np.abs(t).max(initial=0.0) <= tol:
            factors.append(0.0)
            continue
        if norm == 0:
            return None
        c = float(np.vdot(t, o)) / norm
        if not np.abs(t - c * o).max() <= max(1.0, abs(c)) * tol:
            return None
        factors.append(c)
    return factors


def diagnose_backward(theirs, ours, tolerances, float32=None, variants=None):
    """Causes of wrong gradients of ``<G, W_L ... W_1>``: a list of explanations, each a list of causes.

    ``variants``: known wrong backward passes, name -> gradients; the user's must equal one exactly.
    """
    if isinstance(theirs, list):
        for name, grads in (variants or {}).items():
            if len(grads) == len(theirs) and all(np.shape(t) == g.shape for t, g in zip(theirs, grads)) and \
                    matches(theirs, grads, tolerances) and not matches(grads, ours, tolerances):
                return [[name]]
    if float32 is not None and isinstance(theirs, list) and matches(theirs, ours, float32):
        return [["float32 rounding: the gradients agree with dlnref only to float32 precision (are they computed "
                 "in float32? then check with dtype=np.float32)"]]
    explanations = []
    for view, layers in gradient_views(theirs, ours):
        c = layer_factors(layers, ours, tolerances)
        if c is None:
            continue
        causes = [view] if view else []
        zero = [l for l, x in enumerate(c) if x == 0]
        moving = [x for x in c if x != 0]
        if not moving:
            causes.append("zero gradients: every layer's gradient comes back as zeros")
        elif all(_close(x, moving[0]) for x in moving):
            if moving[0] < 0:
                causes.append("the sign is flipped: every gradient comes back negated")
            if not _close(abs(moving[0]), 1.0):
                causes.append(f"every gradient is {abs(moving[0]):.6g} times dlnref's")
            causes += [f"layer {l + 1}'s gradient comes back as zeros" for l in zero]
        else:
            continue
        if causes:
            explanations.append(causes)
    return simplest(explanations)


def simplest(explanations):
    """The explanations that contain no other one: a cause added to a fitting explanation adds nothing."""
    sets = [set(e) for e in explanations]
    return [e for i, (e, s) in enumerate(zip(explanations, sets))
            if not any(o < s for o in sets) and e not in explanations[:i]]


#: The start of a reading that names no cause, only a constant: it counts as two causes (see :func:`cheapest`).
UNEXPLAINED = "a constant factor "


def cheapest(explanations):
    """The explanations with the fewest causes, an unexplained constant counting as two.

    Alpha missing and alpha on every layer with lr scaled by 1/alpha give the same numbers on every case of one
    alpha: the first is the one named.
    """
    if not explanations:
        return explanations
    costs = [len(e) + sum(c.startswith(UNEXPLAINED) for c in e) for e in explanations]
    return [e for e, c in zip(explanations, costs) if c == min(costs)]


# --- steps ---------------------------------------------------------------------------------------------------------
FLOAT32 = ("float32 rounding: the step agrees with dlnref only to float32 precision (is it computed in float32? "
           "then check with dtype=np.float32)")


class StepEvidence:
    """One case through the user's step at both step sizes, and dlnref's numbers on it.

    Parameters
    ----------
    case : Case
    weights : list of ndarray, float64, input first (rounded to the checked dtype)
    problem : Problem
    alpha : float
    lrs : tuple of float
        dlnref's two step sizes (the user's function got ``lr / kappa``).
    kappa : float
        The declared loss convention's gradient scale on this case.
    count : int
        The declared convention's count ``N'``.
    results : list
        The user's new weights (input first) at each step size, or the exception.
    tolerances_at : callable
        ``(lr, dtype) -> per-layer update tolerances``.
    factors : list of Factor
    rerun : callable
        ``layout -> results`` in the other layout.
    """

    def __init__(self, case, weights, problem, alpha, lrs, kappa, count, results, tolerances_at, factors, rerun):
        self.case, self.weights, self.problem, self.alpha, self.lrs = case, weights, problem, alpha, lrs
        self.kappa, self.count, self.results, self.tolerances_at = kappa, count, results, tolerances_at
        self.factors, self.rerun = factors, rerun
        self.other_layout = None
        self._views, self._tolerances = None, {}
        self.scales = [alpha if l in (0, len(weights) - 1) else 1.0 for l in range(len(weights))]
        self.variants = gradient_variants(weights, problem)
        self.grads = self.variants[None]

    def ours(self, rate):
        return [-rate * s * g for s, g in zip(self.scales, self.grads)]

    def views(self):
        """``name -> [updates at lr_1, updates at lr_2]`` for every view that both results allow."""
        if self._views is None:
            per_lr = [dict(step_views(r, self.weights)) if isinstance(r, list) else {} for r in self.results]
            self._views = {name: [v[name] for v in per_lr] for name in per_lr[0] if all(name in v for v in per_lr)}
        return self._views

    def tolerances(self, dtype=None):
        if dtype not in self._tolerances:
            self._tolerances[dtype] = [self.tolerances_at(rate, dtype) for rate in self.lrs]
        return self._tolerances[dtype]

    def differs(self):
        plain = self.views().get(None)
        return plain is None or not all(matches(u, self.ours(r), t)
                                        for u, r, t in zip(plain, self.lrs, self.tolerances()))

    def quantities(self, variant):
        grads = self.variants[variant]
        return Quantities(self.kappa, self.count, self.factors, float(np.sqrt(sum(np.vdot(g, g) for g in grads))),
                          tuple(float(np.linalg.norm(g)) for g in grads))

    def measure(self, view, variant, placement, decay):
        updates = self.views().get(view)
        if updates is None or variant not in self.variants:
            return None
        return measure_step(updates, self.lrs, self.weights, self.variants[variant], self.scales, self.alpha,
                            placement, decay, self.kappa, self.tolerances())

    def float32_fits(self):
        plain = self.views().get(None)
        if plain is None:
            return False
        return all(matches(u, self.ours(r), t) for u, r, t in zip(plain, self.lrs, self.tolerances(np.float32)))


def _structures(ev, float32):
    """The structures that fit the failing case: (kind, key, measured) triples."""
    found = []
    if float32 and ev.float32_fits():
        return [("float32", None, None)]
    for view in ev.views():
        for variant in ev.variants:
            for placement in (*PLACEMENTS, "per-layer"):
                for decay in (None, "coupled", "plain"):   # a decay only where none fits; both kinds then
                    measured = ev.measure(view, variant, placement, decay)
                    if measured is not None:
                        found.append(("signature", (view, variant, placement, decay), measured))
                        if decay is None:
                            break
    return found


def _confirm(kind, key, measured, ev, second, convention, alternatives):
    """The causes of one structure when the second case confirms it, else None."""
    if kind == "float32":
        return [FLOAT32] if second.float32_fits() else None
    if kind == "alternative":
        return [key] if alternatives[key](second) else None
    if kind == "layout":
        return [key] if other_layout_fits(second) else None
    view, variant, placement, decay = key
    other = second.measure(view, variant, placement, decay)
    if other is None:
        return None
    causes = read_measured(measured, other, ev.quantities(variant), second.quantities(variant), ev.lrs, convention,
                           decay)
    if causes is None:
        return None
    names = [view, variant, placement if placement != "per-layer" else None]
    return [n for n in names if n] + causes


def other_layout_fits(ev):
    results = ev.rerun()
    if not all(isinstance(r, list) and [x.shape for x in r] == [w.shape for w in ev.weights] for r in results):
        return False
    return all(matches([x - w for x, w in zip(r, ev.weights)], ev.ours(rate), tol)
               for r, rate, tol in zip(results, ev.lrs, ev.tolerances()))


def measured_text(ev):
    """What was measured on a case: the factor of each layer against dlnref's update, or where it is no multiple."""
    plain = ev.views().get(None)
    if plain is None:
        return "nothing to measure (the result has other shapes)"
    parts = []
    for rate, updates, tol in zip(ev.lrs, plain, ev.tolerances()):
        ours = ev.ours(rate)
        cells = []
        for l, (u, o, t) in enumerate(zip(updates, ours, tol), start=1):
            norm = float(np.vdot(o, o))
            c = float(np.vdot(u, o)) / norm if norm else 0.0
            off = float(np.abs(u - c * o).max())
            cells.append(f"W_{l}: {c:.6g}" + ("" if off <= max(1.0, abs(c)) * t else
                                                f" (plus {off / max(float(np.abs(o).max()), 1e-300):.3g} of "
                                                "dlnref's update that is no multiple of it)"))
        parts.append(f"at lr={rate:g}: " + ", ".join(cells))
    return "your update over dlnref's, per layer, " + "; ".join(parts)


def diagnose_step(ev, second, convention=None, alternatives=None, float32=True):
    """Causes of a wrong step, fitted on ``ev`` and confirmed on ``second`` (a :class:`StepEvidence`, or None).

    Parameters
    ----------
    ev, second : StepEvidence
    convention : callable or None
        ``kappa -> name`` of a declared loss convention with that gradient scale on ``ev``'s case.
    alternatives : dict or None
        Other wrong steps: name -> ``evidence -> bool`` (whether the user's step is that step).
    float32 : bool
        Whether float64 was checked (then float32 rounding is a cause to test).

    Returns
    -------
    str
    """
    alternatives = alternatives or {}
    candidates = _structures(ev, float32)
    candidates += [("alternative", name, None) for name, fits in alternatives.items() if fits(ev)]
    if len(ev.weights) > 1 and other_layout_fits(ev):
        candidates.append(("layout", "your function reads the layers in the other order: pass "
                           f"layout={ev.other_layout!r}", None))
    if second is None:
        return (f"No known cause fits: {measured_text(ev)}. (No second case within the declared depths to confirm a "
                "cause on.)")
    if not second.differs():
        return (f"No known cause fits: {measured_text(ev)}. (The second cases agree with dlnref, the first of them "
                f"{second.case.describe()}: nothing confirms a cause.)")
    explanations = []
    for kind, key, measured in candidates:
        causes = _confirm(kind, key, measured, ev, second, convention, alternatives)
        if causes is not None and causes not in explanations:
            explanations.append(causes)
    explanations = cheapest(simplest([e for e in explanations if e]))
    where = f"Confirmed on a second case: {second.case.describe()}."
    if explanations:
        return describe(explanations) + "\n" + where
    fitted = len(candidates)
    return (f"No known cause fits: {measured_text(ev)}." + (f" ({fitted} signature(s) fit this case but not the "
                                                             f"second case, {second.case.describe()}.)" if fitted
                                                             else ""))


def describe(explanations, raised=False, returned=False):
    """The diagnosis as text: one line per explanation, causes joined by '; and '.

    ``raised``: the function raised instead of returning; ``returned``: it
    returned something that is not a list of arrays. Either way there was
    nothing to test the hypotheses on.
    """
    if not explanations and returned:
        return "Likely cause: the return value above: return a list of arrays, one per layer (or per step)."
    if not explanations and raised:
        return "Likely cause: the error above, raised by your function on this case."
    if not explanations:
        return "No known cause fits (see what differs above)."
    lines = ["; and ".join(e) for e in explanations]
    head = "Likely cause: " if len(lines) == 1 else "Likely causes (these fit this case equally): "
    return head + "\n  or: ".join(lines) + "."
