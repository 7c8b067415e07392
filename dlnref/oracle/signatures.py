"""Bug signatures: the difference between a user's update and dlnref's, fitted as a small combination of known bugs.

A wrong step is read as a *structure* and its *numbers*. The structure says
which gradient the user's step follows (dlnref's, or a known wrong one: the
unmasked residual's, a transposed sensing operator's, a backward pass with
one transpose missing or its products shifted by one layer), how alpha is
placed (:data:`PLACEMENTS`), and whether a multiple of ``W_l`` is added
(weight decay). Its numbers are fitted on the failing case, per layer and at
both step sizes: one factor ``F`` on every moving layer, and the weight
decay ``c``. A structure *fits* when the fit is exact to rounding.

The numbers are then *read* (:data:`READINGS`): ``F`` is a loss
normalisation of the case, a constant (lr scaled), a factor set by the
gradient's norm (clipping at a norm ``tau``), or a count taken from another
problem (``|Omega|`` of another mask). A reading only holds when the same
structure fits a **second case** of other sizes (``m n``, ``|Omega|``,
``k``) and depth >= 3 where the declared depths allow, and its numbers there
are what the reading predicts. Only confirmed explanations are named; when
none is, the diagnosis says what was measured.

Trajectories are read the same way from ``X_1`` (the structure's ``F`` and
``c`` fitted by Gauss-Newton on the end-to-end matrix) and, when ``X_1``
agrees, from ``X_2`` and ``X_3``: momentum ``beta``, a decayed step size
``lr gamma^t``, the previous step's gradient (:data:`TRAJECTORY_SIGNATURES`).

Adding a signature is one entry in :func:`gradient_variants`, :data:`PLACEMENTS`,
:data:`READINGS` or :data:`TRAJECTORY_SIGNATURES`, plus a test.
"""

import dataclasses
import math

import numpy as np

from ..network import backward, end_to_end
from ..train import step_sizes

#: Relative precision at which numbers fitted on two cases are compared (the rounding of a fit is far smaller).
RTOL = 1e-6


def close(a, b, rtol=RTOL):
    """``a`` and ``b`` agree to ``rtol`` (relative to the larger)."""
    return abs(a - b) <= rtol * max(abs(a), abs(b))


# --- the gradients a wrong step may follow ----------------------------------------------------------------------
def _products(weights):
    """``(suffix, prefix)``: ``suffix[l] = W_L ... W_{l+1}`` and ``prefix[l] = W_{l-1} ... W_1`` (0-based l)."""
    L = len(weights)
    prefix = [np.eye(weights[0].shape[1])]
    for w in weights[:-1]:
        prefix.append(w @ prefix[-1])
    suffix = [np.eye(weights[-1].shape[0])]
    for w in reversed(weights[1:]):
        suffix.append(suffix[-1] @ w)
    return suffix[::-1], prefix[:L]


def _missing_transposes(weights, G):
    """The backward pass with one transpose missing, where the shapes allow (square layers): name -> gradients."""
    suffix, prefix = _products(weights)
    forms = {
        "the product above the layer is not transposed: (W_L ... W_{l+1}) G (W_{l-1} ... W_1)^T":
            lambda a, b: a @ G @ b.T,
        "the product below the layer is not transposed: (W_L ... W_{l+1})^T G (W_{l-1} ... W_1)":
            lambda a, b: a.T @ G @ b,
        "G is transposed: (W_L ... W_{l+1})^T G^T (W_{l-1} ... W_1)^T": lambda a, b: a.T @ G.T @ b.T,
    }
    out = {}
    for name, form in forms.items():
        try:
            grads = [form(a, b) for a, b in zip(suffix, prefix)]
        except ValueError:
            continue
        if all(g.shape == w.shape for g, w in zip(grads, weights)):
            out[f"one transpose is missing in the backward pass: {name}"] = grads
    return out


def _shifted(weights, G):
    """The backward products shifted by one layer, where the shapes allow: name -> gradients."""
    L = len(weights)
    suffix, prefix = _products(weights)
    X = end_to_end(weights)
    above = [X] + suffix + [np.eye(weights[-1].shape[0])]     # above[l + 1] = suffix[l]; above[0] = X
    below = [np.eye(weights[0].shape[1])] + prefix + [X]      # below[l + 1] = prefix[l]; below[0] = I
    out = {}
    try:
        up = [above[l + 2].T @ G @ below[l + 2].T for l in range(L)]
    except ValueError:
        up = None
    try:
        down = [above[l].T @ G @ below[l].T for l in range(L)]
    except ValueError:
        down = None
    for name, grads in (("layer l's gradient uses the products of layer l+1 (W_L ... W_{l+2} and W_l ... W_1)", up),
                        ("layer l's gradient uses the products of layer l-1 (W_L ... W_l and W_{l-2} ... W_1)",
                         down)):
        if grads is not None and all(g.shape == w.shape for g, w in zip(grads, weights)):
            out[f"the backward products are shifted by one layer: {name}"] = grads
    return out


def _sensing_transposed(problem, X):
    """The sensing gradient with each operator transposed (read in the other memory order): name -> G."""
    if problem.name != "sensing":
        return {}
    A = np.asarray(problem.operators, dtype=np.float64)
    k, m, n = A.shape
    # A_i^T where it has X's shape; on a non-square X, A_i read in column-major order (the same on a square one)
    B = np.transpose(A.reshape(k, n, m), (0, 2, 1))
    out = {}
    M = np.asarray(problem.target, dtype=np.float64)
    words = "A_i^T (or, on a non-square X, A_i read in column-major order)"
    for ys, y in (("y = A(M)", np.asarray(problem.y, dtype=np.float64)), ("y = B(M)", np.einsum("kij,ij->k", B, M))):
        residual = np.einsum("kij,ij->k", B, X) - y
        out[f"the sensing operator is transposed: the loss measures X with {words} (B), {ys}"] = \
            np.einsum("k,kij->ij", residual, B)
    return out


def backward_variants(weights, G):
    """The known wrong backward passes of ``<G, W_L ... W_1>`` where the shapes allow: name -> gradients."""
    return {**_missing_transposes(weights, G), **_shifted(weights, G)}


def gradient_variants(weights, problem):
    """dlnref's layer gradients (name None) and the known wrong ones, in dlnref's normalisation: name -> gradients."""
    X = end_to_end(weights)
    G = np.asarray(problem.gradient(X), dtype=np.float64)
    variants = {None: backward(weights, G)}
    if problem.name == "completion":
        residual = X - np.asarray(problem.target, dtype=np.float64)
        variants["the completion mask is forgotten: the loss takes the residual on every entry, not only the "
                 "observed ones"] = backward(weights, residual / problem.observed)
    for name, G_wrong in _sensing_transposed(problem, X).items():
        variants[name] = backward(weights, G_wrong)
    variants.update(_missing_transposes(weights, G))
    variants.update(_shifted(weights, G))
    return variants


# --- where alpha is applied ---------------------------------------------------------------------------------------
#: Placements of alpha: name (None for dlnref's) -> the rate of layer l of L (0-based) as a function of alpha.
PLACEMENTS = {
    None: lambda l, L, a: a if l in (0, L - 1) else 1.0,
    "the discrepant rate alpha is missing: every layer takes lr": lambda l, L, a: 1.0,
    "alpha is applied to W_1 only, not to W_L": lambda l, L, a: a if l == 0 else 1.0,
    "alpha is applied to W_L only, not to W_1": lambda l, L, a: a if l == L - 1 else 1.0,
    "alpha is applied to the middle layers, not to W_1 and W_L": lambda l, L, a: 1.0 if l in (0, L - 1) else a,
    "alpha is applied to every layer, not just W_1 and W_L": lambda l, L, a: a,
}


def placement_rates(name, L, alpha):
    return [PLACEMENTS[name](l, L, alpha) for l in range(L)]


# --- the measurement of one case ------------------------------------------------------------------------------------
@dataclasses.dataclass
class Measured:
    """The numbers of a structure fitted on one case: ``F`` at each step size, the weight decay, frozen layers."""

    F: tuple
    decay: float = 0.0
    frozen: tuple = ()
    tau_layers: tuple = ()


@dataclasses.dataclass
class Quantities:
    """What a reading compares between cases: the declared loss's gradient scale and count, and the norms."""

    kappa: float
    count: int
    factors: list
    norm: float
    layer_norms: tuple


def fit_layers(updates, bases, tolerances):
    """Per layer, ``updates_l = a_l bases_l[0] + b_l bases_l[1] + ...`` to tolerance: the coefficients, or None."""
    coefficients = []
    for u, basis, tol in zip(updates, bases, tolerances):
        u = np.asarray(u, dtype=np.float64)
        if not (np.all(np.isfinite(u)) and all(np.all(np.isfinite(b)) for b in basis)):
            return None
        if np.abs(u).max(initial=0.0) <= tol:
            coefficients.append(None)
            continue
        A = np.stack([b.ravel() for b in basis], axis=1)
        if not np.any(A):
            return None
        x = np.linalg.lstsq(A, u.ravel(), rcond=None)[0]
        scale = max(1.0, float(np.abs(x[0])))
        if not np.abs(A @ x - u.ravel()).max() <= scale * tol:
            return None
        coefficients.append(tuple(float(v) for v in x))
    return coefficients


def measure_step(updates_at, lrs, weights, variant, scales, alpha, placement, decay, kappa, tolerances_at):
    """Fit one structure on a step: ``U_l = -lr F P_l v_l - (lr / kappa) c d_l W_l`` at both step sizes, or None.

    ``P_l`` is the placement's rate, ``v_l`` the variant's gradient, ``d_l`` 1 (decay outside alpha,
    ``decay="plain"``) or dlnref's rate ``s_l`` (``decay="coupled"``, SGD's weight_decay in a per-layer
    group); ``decay=None`` fits no decay. A layer that does not move is frozen.
    """
    L = len(weights)
    P = placement_rates(placement, L, alpha) if placement != "per-layer" else scales
    Fs, decays, frozen, taus = [], [], None, None
    for rate, updates, tol in zip(lrs, updates_at, tolerances_at):
        if updates is None:
            return None
        bases = [[-rate * p * v] + ([-(rate / kappa) * (s if decay == "coupled" else 1.0) * w] if decay else [])
                 for p, v, s, w in zip(P, variant, scales, weights)]
        coefficients = fit_layers(updates, bases, tol)
        if coefficients is None:
            return None
        zero = tuple(l for l, c in enumerate(coefficients) if c is None)
        if frozen is not None and zero != frozen:
            return None
        frozen = zero
        moving = [c for c in coefficients if c is not None]
        if not moving:
            Fs.append(0.0)
            continue
        if placement == "per-layer":
            pairs = tuple((c[0], kappa * float(np.linalg.norm(v))) for c, v in zip(coefficients, variant) if c)
            if taus is not None and not all(close(p[0], q[0]) for p, q in zip(pairs, taus)):
                return None
            taus = pairs
            Fs.append(1.0)
        elif not all(close(c[0], moving[0][0]) for c in moving):
            return None
        else:
            Fs.append(moving[0][0])
        if decay:
            if not all(close(c[1], moving[0][1], 1e-4) for c in moving) or abs(moving[0][1]) < 1e-12:
                return None
            decays.append(moving[0][1])
    if decay and not close(decays[0], decays[1], 1e-4):
        return None
    if len(frozen) == L and any(F != 0 for F in Fs):
        return None
    return Measured(tuple(Fs), decays[0] if decay else 0.0, frozen, taus or ())


# --- readings of the fitted numbers ------------------------------------------------------------------------------
def _power(F, lrs):
    """The power p of lr that the update follows (1: proportional), from ``F`` at two step sizes."""
    if F[0] == 0 or F[1] == 0 or (F[0] > 0) != (F[1] > 0):
        return None
    return 1 + math.log(F[1] / F[0]) / math.log(lrs[1] / lrs[0])


def read_factor(a, b, qa, qb, lrs, convention=None):
    """Readings of the factor ``F`` (same sign on every layer) fitted on two cases: a list of cause texts, or None.

    ``a``, ``b``: the :class:`Measured` of the structure on the failing case and on the second case;
    ``qa``, ``qb``: their :class:`Quantities`; ``convention(value)``: the name of the declared loss
    convention whose scale is ``value`` on the failing case, or None.
    """
    causes = []
    Fa, Fb = a.F, b.F
    if all(F == 0 for F in Fa):
        return ["zero update: every layer comes back unchanged (the update is never applied)"] \
            if all(F == 0 for F in Fb) else None
    pa, pb = _power(Fa, lrs), _power(Fb, lrs)
    if pa is None or pb is None:
        return None
    if (Fa[0] < 0) != (Fb[0] < 0):
        return None
    if Fa[0] < 0:
        causes.append("the sign is flipped: the step climbs the loss (gradient ascent)")
    if abs(pa - 1) > 1e-6:
        if abs(pa - pb) > 1e-6:
            return None
        if abs(pa) < 1e-6:
            return causes + [f"lr is ignored: the update is the same at lr={lrs[0]:g} and lr={lrs[1]:g}"]
        return causes + [f"lr is rescaled: the update grows as lr^{pa:.3g} between lr={lrs[1]:g} and lr={lrs[0]:g}, "
                         "not as lr"]
    fa, fb = abs(Fa[0]), abs(Fb[0])
    if close(fa, 1.0) and close(fb, 1.0):
        return causes
    named = [i for i, f in enumerate(qa.factors) if close(fa * qa.kappa, f.value, 1e-9)
             and i < len(qb.factors) and close(fb * qb.kappa, qb.factors[i].value, 1e-9)]
    if named:
        f = qa.factors[named[0]]
        text = (f"{f.meaning}: factor {f.value:.6g}{'' if f.formula == f'{f.value:g}' else ' = ' + f.formula} "
                "on every layer")
        if qa.kappa != 1.0:
            text = f"{text} of dlnref's ({fa:.6g} times the declared convention's)"
        name = convention(fa * qa.kappa) if convention else None
        return causes + [text + (f": declare loss={name!r}" if name else "")]
    for reading in READINGS:
        text = reading(fa, fb, qa, qb)
        if text:
            return causes + [text]
    return None


def _lr_scaled(fa, fb, qa, qb):
    if close(fa, fb, 1e-9):
        nesterov = (f"; or the first step of Nesterov momentum beta = {fa - 1:.6g}, which a trajectory check tells "
                    "apart" if 1 < fa < 2 else "")
        return (f"a constant factor {fa:.6g} on every layer, the same on both cases and no loss normalisation of "
                f"either (is lr scaled?{nesterov})")
    return None


def _clipped(fa, fb, qa, qb):
    """Clipping to a total norm tau scales the user's gradient ``kappa g`` by ``tau / (kappa ||g||)`` (if larger)."""
    tau_a, tau_b = fa * qa.kappa * qa.norm, fb * qb.kappa * qb.norm
    if close(tau_a, tau_b, 1e-9) or (close(fb, 1.0) and fb >= 1 and qb.kappa * qb.norm <= tau_a):
        return (f"the update is scaled by a factor set by the gradient's norm: the gradient is clipped to the norm "
                f"tau = {tau_a:.6g} (factor {fa:.6g} here, {fb:.6g} on the second case)")
    return None


def _other_count(fa, fb, qa, qb):
    """A loss divided by a count K of another problem: ``F = N' / K`` with the same K on both cases."""
    Ka, Kb = qa.count / fa, qb.count / fb
    if close(Ka, Kb, 1e-9) and abs(Ka - round(Ka)) < 1e-6 and round(Ka) not in (qa.count, qb.count):
        return (f"your loss divides by {round(Ka)} on both cases, not by this case's count {qa.count} (nor the "
                f"second case's {qb.count}): a count taken from another problem (|Omega| of another mask, cached?); "
                f"factor {fa:.6g} here, {fb:.6g} on the second case")
    return None


#: Readings of a constant factor that no loss normalisation gives, tried in turn on the two cases' numbers.
READINGS = (_lr_scaled, _clipped, _other_count)


def _layer_clip(pairs):
    """``tau`` when every ``(c_l, ||g_l||)`` is a layer clipped to the norm tau (``c_l ||g_l|| = tau``) or left alone
    (``c_l = 1``, ``||g_l|| <= tau``), with at least one layer clipped; else None."""
    clipped = [c * norm for c, norm in pairs if not close(c, 1.0)]
    if not clipped or not all(c > 0 for c, _ in pairs) or not all(close(t, clipped[0], 1e-9) for t in clipped):
        return None
    tau = clipped[0]
    return tau if all(norm <= tau * (1 + 1e-9) for c, norm in pairs if close(c, 1.0)) else None


def read_measured(a, b, qa, qb, lrs, convention=None, decay="coupled"):
    """All the causes that the numbers of one structure on two cases confirm, or None.

    ``decay``: how the structure's weight decay scales, ``"coupled"`` (by each layer's rate) or ``"plain"``.
    """
    if all(F == 0 for F in a.F):
        return (["zero update: every layer comes back unchanged (the update is never applied)"]
                if all(F == 0 for F in b.F) else None)
    if a.frozen and len(b.frozen) != len(a.frozen):
        return None
    if a.tau_layers:
        tau = _layer_clip(a.tau_layers + b.tau_layers) if b.tau_layers else None
        if tau is None:
            return None
        causes = [f"each layer's gradient is clipped to the norm tau = {tau:.6g} separately"]
    else:
        causes = read_factor(a, b, qa, qb, lrs, convention)
        if causes is None:
            return None
    if a.decay:
        ca, cb = a.decay, b.decay
        if not close(ca, cb, 1e-6):
            return None
        how = ("the gradient of c ||W||^2 / 2 added to the loss" if decay == "coupled" else
               "on every layer alike, outside alpha's rate: decoupled")
        causes.append(f"weight decay: the step also subtracts lr c W_l with c = {ca:.6g} ({how})")
    return causes + [f"layer {l + 1} is not updated (W_{l + 1} comes back unchanged)" for l in a.frozen]


# --- trajectories ----------------------------------------------------------------------------------------------------
def gauss_newton(model, target, theta, iterations=30):
    """Least-squares fit of ``model(theta) ~ target`` (a few parameters, numerical Jacobian); the fitted theta."""
    theta = np.array(theta, dtype=np.float64)
    for _ in range(iterations):
        with np.errstate(all="ignore"):
            r = (model(theta) - target).ravel()
            J = []
            for i in range(len(theta)):
                h = 1e-6 * max(1.0, abs(theta[i]))
                up, down = theta.copy(), theta.copy()
                up[i] += h
                down[i] -= h
                J.append(((model(up) - model(down)) / (2 * h)).ravel())
        J = np.stack(J, axis=1)
        if not (np.all(np.isfinite(J)) and np.all(np.isfinite(r))) or not np.any(J):
            return theta
        delta = np.linalg.lstsq(J, -r, rcond=None)[0]
        theta = theta + delta
        if np.abs(delta).max() <= 1e-15 * max(1.0, np.abs(theta).max()):
            break
    return theta


def momentum_run(weights, problem, lr, alpha, steps, beta=0.0, gamma=1.0, stale=None, offset=0, period=1,
                 nesterov=False):
    """dlnref's gradient descent with SGD momentum beta, a scheduled step size, or a gradient one step old.

    Momentum as in ``torch.optim.SGD``: ``v_t = beta v_{t-1} + g_t``, ``W <- W - lr s v_t`` (``nesterov``:
    ``W <- W - lr s (g_t + beta v_t)``). Step t uses ``lr gamma^floor((t + offset) / period)``.
    ``stale="layers"``: step t uses the layer gradients of step t - 1; ``stale="G"``: it back-propagates
    ``dLoss/dX`` of step t - 1 through the current layers (step 0 uses its own either way).
    """
    weights = [np.asarray(w, dtype=np.float64) for w in weights]
    sizes = step_sizes(len(weights), 1.0, alpha)
    velocity, previous, previous_G = None, None, None
    out = [end_to_end(weights)]
    for t in range(steps):
        G = problem.gradient(end_to_end(weights))
        grads = backward(weights, G if stale != "G" or previous_G is None else previous_G)
        used = previous if stale == "layers" and previous is not None else grads
        previous, previous_G = grads, G
        velocity = used if velocity is None else [beta * v + g for v, g in zip(velocity, used)]
        moves = [g + beta * v for g, v in zip(used, velocity)] if nesterov else velocity
        rate = lr * gamma ** ((t + offset) // period)
        weights = [w - rate * s * v for w, s, v in zip(weights, sizes, moves)]
        out.append(end_to_end(weights))
    return out


def _agrees(xs, run, tolerances, last):
    return all(np.abs(x - r).max() <= tol for x, r, tol in zip(xs[1:last + 1], run[1:], tolerances[1:last + 1]))


def _fitted(field, start, neutral, first, **fixed):
    """A signature with one number: ``field`` fitted on the first differing ``X_t``, checked up to ``X_{t+3}``."""
    def fit(xs, weights, problem, lr, alpha, tolerances, t):
        if t < first or t >= len(xs):
            return None
        last = min(len(xs) - 1, t + 3)
        if "period" in fixed and fixed["period"] is None:
            fixed_here = {**fixed, "period": t - 1}
        else:
            fixed_here = fixed

        def model(theta):
            return momentum_run(weights, problem, lr, alpha, t, **{field: theta[0]}, **fixed_here)[t]

        value = float(gauss_newton(model, xs[t], [start])[0])
        if abs(value - neutral) < 1e-9 or not _agrees(
                xs, momentum_run(weights, problem, lr, alpha, last, **{field: value}, **fixed_here), tolerances, last):
            return None
        return value
    return fit


def _stale(which):
    def fit(xs, weights, problem, lr, alpha, tolerances, t):
        last = min(len(xs) - 1, t + 3)
        ok = t >= 2 and _agrees(xs, momentum_run(weights, problem, lr, alpha, last, stale=which), tolerances, last)
        return 0.0 if ok else None
    return fit


#: Signatures of a trajectory read from its first differing X_t and the steps after it:
#: name -> (fit, text of the fitted value, the period of a step schedule or None).
TRAJECTORY_SIGNATURES = {
    "momentum": (_fitted("beta", 0.5, 0.0, 2),
                 lambda v, t: f"SGD momentum beta = {v:.6g}: each step adds beta times the previous update "
                              "(v_t = beta v_(t-1) + g_t)" + (
                                  "; with beta = 1 the gradients accumulate: are they zeroed between steps "
                                  "(optimizer.zero_grad())?" if close(v, 1.0) else "")),
    "nesterov": (_fitted("beta", 0.5, 0.0, 1, nesterov=True),
                 lambda v, t: f"Nesterov momentum beta = {v:.6g}: each step moves by g_t + beta v_t "
                              "(its first step is 1 + beta times the gradient)"),
    "decay": (_fitted("gamma", 0.9, 1.0, 2),
              lambda v, t: f"the step size decays: step t uses lr gamma^t with gamma = {v:.6g}"),
    "early decay": (_fitted("gamma", 0.9, 1.0, 1, offset=1),
                    lambda v, t: f"the step size decays from the first step: step t uses lr gamma^(t+1) with "
                                 f"gamma = {v:.6g}"),
    "schedule": (_fitted("gamma", 0.5, 1.0, 3, period=None),
                 lambda v, t: f"a step schedule: the step size is multiplied by {v:.6g} every {t - 1} steps"),
    "stale": (_stale("layers"), lambda v, t: "a stale gradient: each step uses the previous step's layer gradients, "
                                             "not the current ones"),
    "stale G": (_stale("G"), lambda v, t: "a stale gradient: each step back-propagates the previous step's dLoss/dX "
                                          "(the gradient of the loss at the previous X), not the current one"),
}


def later_steps(xs, weights, problem, lr, alpha, tolerances, t):
    """The trajectory signatures that fit the first differing ``X_t`` and the steps after it: name -> value."""
    fits = {}
    for name, (fit, _) in TRAJECTORY_SIGNATURES.items():
        with np.errstate(all="ignore"):   # a wild fitted value may overflow: it then fits nothing
            found = fit(xs, weights, problem, lr, alpha, tolerances, t)
        if found is not None:
            fits[name] = found
    return fits


def first_step_fit(x1, weights, lr, alpha, variant, placement, decay, kappa, tolerance):
    """Fit ``F`` (and the decay c) of one structure on ``X_1``: a :class:`Measured`, or None when it does not fit."""
    L = len(weights)
    P = placement_rates(placement, L, alpha)
    scales = step_sizes(L, 1.0, alpha)

    def model(theta):
        new = [w - lr * theta[0] * p * v - ((lr / kappa) * (s if decay == "coupled" else 1.0) * theta[1] * w
                                           if decay else 0.0)
               for w, p, v, s in zip(weights, P, variant, scales)]
        return end_to_end(new)

    theta = gauss_newton(model, x1, [1.0, 1e-3])
    with np.errstate(all="ignore"):
        if not np.abs(model(theta) - x1).max() <= tolerance:
            return None
    if decay and abs(theta[1]) < 1e-12:
        return None
    return Measured((float(theta[0]), float(theta[0])), float(theta[1]) if decay else 0.0)
