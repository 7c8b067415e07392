"""Why a result differs from dlnref's: every hypothesis is tested on the failing case, and all that fit are named.

A hypothesis is a model of the wrong result built from dlnref's own numbers on
the case. Most mistakes keep each layer a multiple of dlnref's update, so the
diagnosis first fits one number per layer and step size,
``theirs_l = c_l * ours_l``, and then explains the ``c_l``:

- all zero: the update is never applied; some zero: those layers are not updated;
- the same ``c_l`` at both step sizes although the step changed: ``lr`` is
  ignored; another power of ``lr``: ``lr`` is rescaled;
- ``c_l = sign * F * P_l / s_l``, with F a loss normalisation factor of the
  case (a formula in its ``|Omega|``, ``m n``, ``k`` and 2; see
  :func:`~dlnref.oracle.cases.normalisation_factors`), ``sign = -1`` for gradient
  ascent, ``s_l`` dlnref's rate (alpha on W_1 and W_L) and ``P_l`` another
  placement of alpha (missing, on W_1 only, on W_L only, on every layer).

Layers returned in the reverse order, or transposed, are tried as views of
the result before the fit. Results that are no multiple are tested against
float32 rounding and against sequential updates (W_2's gradient taken after
W_1 moved). A diagnosis is a list of explanations; each explanation is a list
of causes that together reproduce the result. When several explanations fit
the case equally, all are named.
"""

import math

import numpy as np

from .reference import matches

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


def _rate_patterns(L, alpha, free=False):
    """``(name, P)``: placements of alpha other than dlnref's, deduplicated; dlnref's first, named None.

    With ``free`` (any common factor allowed), placements equal up to a constant count as one.
    """
    outer = [alpha if l in (0, L - 1) else 1.0 for l in range(L)]
    candidates = [(None, outer),
                  ("the discrepant rate alpha is missing: every layer takes lr", [1.0] * L),
                  ("alpha is applied to W_1 only, not to W_L", [alpha] + [1.0] * (L - 1)),
                  ("alpha is applied to W_L only, not to W_1", [1.0] * (L - 1) + [alpha]),
                  ("alpha is applied to every layer, not just W_1 and W_L", [alpha] * L)]
    def shape(P):
        return [p / P[0] for p in P] if free else P

    patterns = []
    for name, P in candidates:
        if all(not all(_close(a, b) for a, b in zip(shape(P), shape(Q))) for _, Q in patterns):
            patterns.append((name, P))
    return patterns


def _factor_text(value, factors, free=False, sign="the sign is flipped: the step climbs the loss (gradient ascent)"):
    """Causes for a constant factor on every layer: the sign, and the normalisation formulas that give it.

    With ``free``, the size of the factor is already explained (say by an ignored lr): only the sign is named.
    """
    causes = []
    if value < 0:
        causes.append(sign)
    size = abs(value)
    if free or _close(size, 1.0):
        return causes
    named = [f for f in factors if _close(size, f.value)]
    if named:
        causes += [f"{f.meaning}: factor {f.value:.6g}{'' if f.formula == f'{f.value:g}' else ' = ' + f.formula} "
                   "on every layer" for f in named]
    else:
        causes.append(f"a constant factor {size:.6g} on every layer that no loss normalisation of this case gives "
                      "(is lr scaled?)")
    return causes


def _explain_factors(c, scales, alpha, factors, free):
    """Explanations of per-layer factors ``c`` (``0`` for layers left alone) as sign, normalisation and rate.

    ``free``: the common factor may be any number (its size is explained elsewhere). Otherwise a factor
    that no normalisation gives is named as such, and only when no normalisation fits.
    """
    L = len(c)
    frozen = [l for l, x in enumerate(c) if x == 0]
    if len(frozen) == L:
        return [["zero update: every layer comes back unchanged (the update is never applied)"]]
    still = [f"layer {l + 1} is not updated (W_{l + 1} comes back unchanged)" for l in frozen]
    values = [1.0] + [f.value for f in factors]
    explanations = []
    for name, F in _placements(c, scales, alpha, free):
        if free or any(_close(abs(F), v) for v in values):
            explanations.append(_factor_text(F, factors, free) + ([name] if name else []) + still)
    if explanations:
        return explanations
    return [_factor_text(F, [], False) + ([name] if name else []) + still
            for name, F in _placements(c, scales, alpha, True)]


def _placements(c, scales, alpha, free):
    """``(name, F)`` for every placement of alpha under which ``c`` is one constant F on every moving layer."""
    moving = [l for l in range(len(c)) if c[l] != 0]
    fits = []
    for name, P in _rate_patterns(len(c), alpha, free):
        ratios = [c[l] * scales[l] / P[l] for l in moving]
        if all(_close(r, ratios[0]) for r in ratios):
            fits.append((name, ratios[0]))
    return fits


def diagnose_step(runs, ours_at, alpha, scales, factors, tolerances_at, alternatives=(), float32_at=None):
    """Causes of a wrong gradient-descent step; a hypothesis fits only when it fits at both step sizes.

    Parameters
    ----------
    runs : list of (float, list)
        ``(lr, views)`` at two step sizes, ``views`` from :func:`step_views`.
    ours_at : callable
        ``lr -> dlnref's updates`` (input first).
    alpha : float
    scales : list of float
        dlnref's ``s_l``.
    factors : list of Factor
    tolerances_at : callable
        ``lr -> tolerances`` of the updates.
    alternatives : sequence of (str, callable)
        Other wrong steps, each named, as ``lr -> updates``.
    float32_at : callable or None
        ``lr -> float32 tolerances``, when float64 was checked.

    Returns
    -------
    list of list of str
        Explanations, none a superset of another; empty when none fits.
    """
    (lr1, views1), (lr2, views2) = runs
    plain = [(rate, dict(views).get(None)) for rate, views in runs]

    def everywhere(expected_at, tolerance_at):
        expected = [expected_at(rate) for rate, _ in plain]
        return all(u is not None and e is not None and matches(u, e, tolerance_at(rate))
                   for (rate, u), e in zip(plain, expected))

    if float32_at is not None and everywhere(ours_at, float32_at):
        return [["float32 rounding: the step agrees with dlnref only to float32 precision (is it computed in "
                 "float32? then check with dtype=np.float32)"]]
    explanations = []
    for view, updates1 in views1:
        updates2 = dict(views2).get(view)
        c1 = layer_factors(updates1, ours_at(lr1), tolerances_at(lr1))
        c2 = None if updates2 is None else layer_factors(updates2, ours_at(lr2), tolerances_at(lr2))
        if c1 is None:
            continue
        lr_cause, free = _lr_cause(c1, c2, lr1, lr2)
        for causes in _explain_factors(c1, scales, alpha, factors, free):
            explanations.append(([view] if view else []) + ([lr_cause] if lr_cause else []) + causes)
    explanations += [[name] for name, expected_at in alternatives if everywhere(expected_at, tolerances_at)]
    return simplest([e for e in explanations if e])


def simplest(explanations):
    """The explanations that contain no other one: a cause added to a fitting explanation adds nothing."""
    sets = [set(e) for e in explanations]
    return [e for e, s in zip(explanations, sets) if not any(o < s for o in sets)]


def _lr_cause(c1, c2, lr1, lr2):
    """How the update follows lr between two step sizes: (cause or None, whether the factor is then free)."""
    if c2 is None:
        return None, False
    pairs = [(a, b) for a, b in zip(c1, c2) if a != 0 and b != 0]
    if not pairs:
        return None, False
    rho = [b / a for a, b in pairs]
    if not all(_close(r, rho[0]) for r in rho) or rho[0] <= 0:
        return None, False
    power = 1 + math.log(rho[0]) / math.log(lr2 / lr1)
    if abs(power - 1) < 1e-3:
        return None, False
    if abs(power) < 1e-3:
        return f"lr is ignored: the update is the same at lr={lr1:g} and lr={lr2:g}", True
    return f"lr is rescaled: the update grows as lr^{power:.3g} between lr={lr2:g} and lr={lr1:g}, not as lr", True


def diagnose_first_step(x1, weights, updates_at, alpha, factors, tolerance, alternatives=()):
    """Causes of a wrong end-to-end matrix after one step: the step hypotheses, judged on ``X_1`` alone.

    Parameters
    ----------
    x1 : ndarray
        The user's ``X_1``.
    weights : list of ndarray
        ``[W_1, ..., W_L]`` at step 0.
    updates_at : callable
        ``ratios -> updates``: dlnref's update of layer l times ``ratios[l]``.
    alpha : float
    factors : list of Factor
    tolerance : float
        Of ``X_1``.
    alternatives : sequence of (str, list)
        Other wrong updates, each named.

    Returns
    -------
    list of list of str
    """
    def fits(updates):
        x = weights[0] + updates[0]
        for w, u in zip(weights[1:], updates[1:]):
            x = (w + u) @ x
        return float(np.abs(x1 - x).max()) <= tolerance

    L = len(weights)
    outer = [alpha if l in (0, L - 1) else 1.0 for l in range(L)]
    explanations = []
    if fits([0 * w for w in weights]):
        explanations.append(["zero update: every layer comes back unchanged (the update is never applied)"])
    for sign in (1.0, -1.0):
        for F in [1.0] + [f.value for f in factors]:
            for name, P in _rate_patterns(L, alpha):
                updates = updates_at([sign * F * p / o for p, o in zip(P, outer)])  # the step (sign, F, P) takes
                if (sign, F, name) != (1.0, 1.0, None) and fits(updates):
                    explanations.append(_factor_text(sign * F, factors) + ([name] if name else []))
    explanations += [[name] for name, updates in alternatives if fits(updates)]
    return simplest(explanations)


def diagnose_backward(theirs, ours, tolerances, float32=None):
    """Causes of wrong gradients of ``<G, W_L ... W_1>``; same return as :func:`diagnose_step`."""
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
        return ("Likely cause: not recognised. It is none of: a loss normalisation factor, a zero update, the sign, "
                "lr ignored or rescaled, alpha missing or misplaced, a layer not updated, sequential updates, reversed "
                "or transposed layers, float32 rounding.")
    lines = ["; and ".join(e) for e in explanations]
    head = "Likely cause: " if len(lines) == 1 else "Likely causes (these fit this case equally): "
    return head + "\n  or: ".join(lines) + "."
