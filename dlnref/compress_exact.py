r"""Exact compression of the wide DLN: the law of parsimony (Yaras et al. 2023).

:func:`dlnref.compress` is the paper's C-DLN, a narrow network started from
the problem's spectrum, which trains *like* the wide network. This module is
its exact counterpart: a width-``2r`` network plus one scale per layer that
*is* the wide network, step for step, for deep matrix factorization.

Derivation
----------
Wide DLN: ``L`` layers of size ``d x d``, ``W_l(0) = eps O_l`` with ``O_l``
orthogonal, ``Q_l = O_l ... O_1`` (``Q_0 = I``), so ``X(0) = eps^L Q_L``.
Gradient descent with per-layer rates ``s_l`` (``s_1 = s_L = alpha``) on a loss
with ``G = dLoss/dX``::

    W_l <- W_l - lr s_l A_l^T G R_l^T,   A_l = W_L ... W_{l+1},  R_l = W_{l-1} ... W_1.

*The subspaces.* For factorization, ``G = (X - M) / (m n)``. The gradient at
init, ``G(X(0)) = eps^L Q_L / (m n) - M / (m n)``, has a part proportional to
``X(0)`` and a rank-r data part ``D = -M / (m n) = G(0)``. Choose an orthonormal
``B_0`` (``d x w``, ``w = 2r``) whose span holds the row space of ``D`` and
``Q_L^T`` times its column space (r + r directions), and let
``B_l = Q_l B_0``. Complete each to an orthogonal ``[B_l, C_l]`` with
``C_l = Q_l C_0``. Then ``V_l = [B_{l-1}, C_{l-1}]`` and ``U_l = [B_l, C_l]``
satisfy ``V_{l+1} = U_l``, and

.. math::

    U_l^T W_l(0) V_l = \epsilon\, [B_l, C_l]^T Q_l Q_{l-1}^T [B_{l-1}, C_{l-1}]
    = \operatorname{diag}(\epsilon I_w, \epsilon I_{d-w}).

*The invariant form.* Suppose ``W_l = U_l diag(W~_l, rho_l I) V_l^T`` for all
``l`` (true at step 0 with ``W~_l = eps I_w``, ``rho_l = eps``). The products
telescope, ``A_l = U_L diag(A~_l, a_l I) U_l^T`` and ``R_l = V_l diag(R~_l, b_l I) V_1^T``
with ``a_l = prod_{k>l} rho_k``, ``b_l = prod_{k<l} rho_k``, and

.. math::

    X = U_L \operatorname{diag}(\tilde X, \pi I) V_1^T, \qquad
    \tilde X = \tilde W_L \cdots \tilde W_1, \qquad \pi = \rho_1 \cdots \rho_L.

Since ``M C_0 = 0`` and ``M^T C_L = M^T Q_L C_0 = 0``, ``U_L^T M V_1 = diag(M~, 0)``
with ``M~ = B_L^T M B_0``, so ``U_L^T G V_1 = diag(G~, g I)`` with

.. math::

    \tilde G = \frac{\tilde X - \tilde M}{m n}, \qquad g = \frac{\pi}{m n}.

Hence ``U_l^T dW_l V_l = diag(A~_l^T G~ R~_l^T, a_l g b_l I)``: the update keeps
the form, with

.. math::

    \tilde W_l &\leftarrow \tilde W_l - \eta\, s_l \tilde A_l^T \tilde G \tilde R_l^T
        && \text{(the narrow network, } w \times w\text{)},\\
    \rho_l &\leftarrow \rho_l - \eta\, s_l\, g \prod_{k \ne l} \rho_k
        && \text{(one scalar per layer).}

With ``alpha = 1`` all ``rho_l`` stay equal to one ``rho`` with
``rho <- rho - lr rho^(2L-1) / (m n)``, the ``eps^(2L-1)`` drift of PAPER.md;
with ``alpha != 1``, ``rho_1 = rho_L`` and the inner ``rho_l`` are equal, but
the two differ. The narrow network is itself a ``w x w`` factorization of
``M~``: a step costs ``O(L w^3)``, whatever ``d``, and

.. math::

    \mathcal{L} = \frac{\|\tilde X - \tilde M\|_F^2 + (d - w) \pi^2}{2 m n}.

*Rebuilding.* Since ``C_l C_{l-1}^T = Q_l Q_{l-1}^T - B_l B_{l-1}^T = O_l - B_l B_{l-1}^T``,

.. math::

    W_l &= B_l (\tilde W_l - \rho_l I) B_{l-1}^T + \rho_l O_l,\\
    X &= B_L (\tilde X - \pi I) B_0^T + \pi Q_L,

``O(d^2 w)`` each, from the stored init.

*Completion and sensing.* Their gradients are ``G(X) = H(X) + G(0)`` too, with
``H`` the loss's Hessian (``P_Omega / |Omega|``, ``A^* A``), but ``H(X(0))`` is not
a multiple of ``X(0)`` and the data part ``G(0)`` (``-P_Omega(M) / |Omega|``,
``-sum_i y_i A_i``) has full rank. So ``U_L^T G V_1`` is not block diagonal, and
the form is an observation, not a theorem (PAPER.md). Here ``B_0`` is built
from the top-r singular vectors of ``G(0)``, and the pair is trained on the
projection of the wide gradient onto the form: ``G~ = B_L^T G B_0``, and ``g``
the mean of the complement block's diagonal, ``g = (<G, Q_L> - tr G~) / (d - w)``
(the trace of the full ``U_L^T G V_1`` is ``<G, Q_L>``). How far this drifts
from the wide network is what ``theory_checks/exact_compression.py`` measures.
See :func:`subspace_gradient` for the cost of a step.

*Why the data part.* The official code finds the complement instead as the
``d - 2r`` equal singular values (``eps^L / (m n)``) of the first layer's
gradient at init. The other ``2r`` include ``r`` values near ``eps^L / (m n)``
(times cosines between ``row(M)`` and ``Q_L^T col(M)``), so the gap is about
``eps^L / (m n)`` in a matrix of norm ``s_1(M) / (m n)``, and the subspace found
is accurate to about ``u s_1(M) / eps^L`` (1e-10 at ``eps = 1e-2``, ``L = 3``).
The data part's top-r singular vectors are separated from the rest by ``s_r(M)``.
"""

import dataclasses
import math

from ._checks import check_int, check_positive, check_shape
from .backend import array_namespace, inner, svd
from .compress import parameter_count
from .errors import InputError, InputTypeError
from .network import backprop, end_to_end, forward_products, layer_dims
from .problems import MatrixFactorization, MatrixSensing, check_problem
from .train import Divergence, auto_lr, check_hooks, descend, resolve_lr, step_sizes, train_with

#: Largest ``|W_l^T W_l / eps^2 - I|`` entry accepted as an orthogonal init: a Haar
#: draw by QR is orthogonal to a few hundred ulps at the sizes dlnref runs.
ORTHOGONALITY_TOL = 1e-8


@dataclasses.dataclass(frozen=True)
class ExactCompression:
    """The wide DLN in its invariant form: a ``w x w`` network plus one scale per layer.

    Attributes
    ----------
    init : list of array, each (d, d)
        The wide network's orthogonal init ``W_l(0) = eps O_l``.
    scale : float
        ``eps``.
    bases : list of array, each (d, w)
        ``[B_0, ..., B_L]``, orthonormal columns, ``B_l = O_l B_{l-1}``: layer
        ``l`` moves only from ``span(B_{l-1})`` (its ``V_l``) to ``span(B_l)`` (its ``U_l``).
    narrow : list of array, each (w, w)
        ``[W~_1, ..., W~_L]``.
    rho : tuple of 0-d array
        ``(rho_1, ..., rho_L)``: layer ``l`` is ``rho_l`` times ``O_l`` on the complement.
    init_end_to_end : array, shape (d, d)
        ``X(0) = eps^L Q_L``.
    reduced : dict
        What a step needs of the problem, made once: ``{"target": M~}`` with
        ``M~ = B_L^T M B_0`` (factorization); the reduced operators (sensing,
        see :func:`subspace_gradient`); empty for completion.
    """

    init: list
    scale: float
    bases: list
    narrow: list
    rho: tuple
    init_end_to_end: object
    reduced: dict = dataclasses.field(default_factory=dict)

    @property
    def width(self):
        """``w``, the width of the narrow network."""
        return int(self.narrow[0].shape[0])

    @property
    def complement(self):
        """``d - w``, the dimension on which every layer is ``rho_l O_l``."""
        return int(self.init[0].shape[0]) - self.width

    def moved(self, narrow, rho):
        """The same compression with new ``narrow`` layers and scales ``rho``."""
        return ExactCompression(self.init, self.scale, self.bases, narrow, rho, self.init_end_to_end, self.reduced)

    def parameter_count(self):
        """Trained numbers: ``L w^2`` in the narrow network plus ``L`` scales ``rho_l``."""
        return parameter_count(self.narrow) + len(self.rho)

    def layers(self):
        """The wide layers ``W_l = B_l (W~_l - rho_l I) B_{l-1}^T + rho_l O_l``, each (d, d)."""
        xp = array_namespace(*self.narrow)
        eye = xp.eye(self.width, dtype=self.narrow[0].dtype)
        return [self.bases[l + 1] @ (W - rho * eye) @ self.bases[l].T + (rho / self.scale) * W0
                for l, (W, rho, W0) in enumerate(zip(self.narrow, self.rho, self.init))]

    def end_to_end(self):
        """The wide end-to-end matrix ``X = B_L (X~ - pi I) B_0^T + pi Q_L``, shape (d, d)."""
        return _rebuilt_end_to_end(self, end_to_end(self.narrow))


def compress_exact(problem, weights, rank=None, basis=None):
    """The exact (law-of-parsimony) compression of a wide DLN at its orthogonal init.

    Parameters
    ----------
    problem : RecoveryProblem
        A square ``(d, d)`` problem; its gradient at ``X = 0`` gives the subspaces.
    weights : list of array, each (d, d)
        The wide init ``W_l(0) = eps O_l``, ``O_l`` orthogonal, one ``eps``
        for every layer (:func:`dlnref.init_weights` with ``kind="orthogonal"``).
    rank : int or None
        ``r``; the narrow width is ``w = 2r <= d``. None means ``problem.rank``.
    basis : array, shape (d, w), optional
        ``B_0`` with orthonormal columns, overriding the one derived from the
        gradient (a wrong one shows what the derivation buys).

    Returns
    -------
    ExactCompression
        With ``W~_l(0) = eps I_w`` and ``rho_l(0) = eps``; ``B_0`` spans the
        top-r right singular vectors of ``G(0)`` and ``Q_L^T`` times its top-r
        left singular vectors (see the module's derivation).
    """
    dims = layer_dims(weights)
    d = dims[0]
    if any(width != d for width in dims) or tuple(problem.shape) != (d, d):
        raise InputError(f"compress_exact needs a square problem and d x d layers; got layer dims {dims} "
                         f"for a problem of shape {tuple(problem.shape)}")
    xp = array_namespace(problem.target, *weights)
    scale = _orthogonal_init_scale(xp, weights)
    rank = problem.rank if rank is None else check_int("rank", rank, 1)
    width = 2 * rank
    if width > d:
        raise InputError(f"the exact compression needs 2 * rank <= d, got rank {rank} for d = {d}")
    X0 = end_to_end(weights)
    Q_L = X0 / scale ** len(weights)
    if basis is None:
        basis = _parsimony_basis(problem, Q_L, rank)
    else:
        check_shape("basis", basis, (d, width))
        _check_orthonormal(xp, "basis", basis)
    bases = [basis]
    for W in weights:
        bases.append(W @ bases[-1] / scale)
    narrow = [scale * xp.eye(width, dtype=X0.dtype) for _ in weights]
    rho = tuple(xp.asarray(scale, dtype=X0.dtype) for _ in weights)
    return ExactCompression(list(weights), scale, bases, narrow, rho, X0, _reduce(problem, bases, Q_L))


def _orthogonal_init_scale(xp, weights):
    """``eps`` of an init ``W_l = eps O_l``; raises unless every layer is one."""
    d = weights[0].shape[0]
    scale = float(xp.linalg.vector_norm(weights[0])) / math.sqrt(d)
    for l, W in enumerate(weights, start=1):
        error = float(xp.max(xp.abs(W.T @ W / scale**2 - xp.eye(d, dtype=W.dtype))))
        if not error <= ORTHOGONALITY_TOL:
            raise InputError(f"compress_exact needs the orthogonal init W_l = eps O_l with one eps for all layers; "
                             f"W_{l}^T W_{l} / eps^2 differs from I by {error:.3g} (eps = {scale:.3g} from W_1)")
    return scale


def _check_orthonormal(xp, name, basis):
    eye = xp.eye(basis.shape[1], dtype=basis.dtype)
    error = float(xp.max(xp.abs(basis.T @ basis - eye)))
    if not error <= ORTHOGONALITY_TOL:
        raise InputError(f"{name} must have orthonormal columns; {name}^T {name} differs from I by {error:.3g}")


def _parsimony_basis(problem, Q_L, rank):
    """``B_0``: orthonormal basis of ``span[V_r, Q_L^T U_r]``, top-r singular vectors of ``G(0)``."""
    xp = problem.xp
    U, _, Vh = svd(problem.gradient(xp.zeros(problem.shape, dtype=problem.target.dtype)))
    both = xp.concat([Vh[:rank, :].T, Q_L.T @ U[:, :rank]], axis=1)
    return svd(both)[0]


def _rebuilt_end_to_end(compression, X_narrow):
    xp = array_namespace(X_narrow)
    pi = math.prod(compression.rho)
    eye = xp.eye(compression.width, dtype=X_narrow.dtype)
    B_0, B_L = compression.bases[0], compression.bases[-1]
    Q_L = compression.init_end_to_end / compression.scale ** len(compression.rho)
    return B_L @ (X_narrow - pi * eye) @ B_0.T + pi * Q_L


@dataclasses.dataclass
class SubspaceGradient:
    """The problem's loss and gradient in the invariant form, at one state of the pair.

    Attributes
    ----------
    loss : 0-d array
    block : array, shape (w, w)
        ``G~ = B_L^T G B_0``.
    complement : 0-d array
        ``g``, the complement block's scale.
    prefixes : list of array
        The narrow network's prefix products (``prefixes[-1] = X~``).
    X : array, shape (d, d), or None
        The rebuilt wide ``X`` where it was formed (completion only).
    """

    loss: object
    block: object
    complement: object
    prefixes: list
    X: object = None


def subspace_gradient(problem, compression):
    """Loss and ``dLoss/dX`` on the subspaces: ``G~`` and ``g`` (see the module's derivation).

    - Factorization, the closed form: ``G~ = (X~ - M~) / (m n)``, ``g = pi / (m n)``; ``O(L w^3)``.
    - Sensing, through the reduced operators ``A~_i = B_L^T A_i B_0`` and
      ``a_i = <A_i, Q_L>`` made once: with ``Y = X~ - pi I``,
      ``<A_i, X> = <A~_i, Y> + pi a_i``, ``G~ = sum_i r_i A~_i`` and
      ``<G, Q_L> = sum_i r_i a_i``; ``O(m w^2)``.
    - Completion, densely: form the wide ``X``, take the problem's ``G``,
      ``G~ = B_L^T G B_0``; ``O(d^2 w)``.

    Elsewhere ``g = (<G, Q_L> - tr G~) / (d - w)``, the mean of the diagonal of
    the complement block ``C_L^T G C_0`` (exact for factorization, a projection otherwise).

    Returns
    -------
    SubspaceGradient
    """
    prefixes = forward_products(compression.narrow)   # the narrow layers chain by construction
    pi = math.prod(compression.rho)
    reduced = compression.reduced
    if "target" in reduced:
        return _factorization_gradient(problem, compression, prefixes, pi)
    xp = problem.xp
    if "operators" in reduced:
        Y = prefixes[-1] - pi * xp.eye(compression.width, dtype=prefixes[-1].dtype)
        residual = reduced["operators"] @ xp.reshape(Y, (-1,)) + pi * reduced["on_P"] - reduced["y"]
        loss = xp.vecdot(residual, residual) / 2
        block = xp.reshape(residual @ reduced["operators"], Y.shape)
        on_P = xp.vecdot(residual, reduced["on_P"])
        X = None
    else:
        X = _rebuilt_end_to_end(compression, prefixes[-1])
        loss, G = problem.loss_and_gradient(X)
        block = compression.bases[-1].T @ (G @ compression.bases[0])
        on_P = inner(G, compression.init_end_to_end, xp) / compression.scale ** len(compression.rho)
    trace = xp.sum(xp.linalg.diagonal(block))
    g = (on_P - trace) / compression.complement if compression.complement > 0 else xp.zeros_like(trace)
    return SubspaceGradient(loss, block, g, prefixes, X)


def _factorization_gradient(problem, compression, prefixes, pi):
    """``G~ = (X~ - M~) / (m n)``, ``g = pi / (m n)``, loss ``(||X~ - M~||^2 + (d - w) pi^2) / (2 m n)``."""
    xp = problem.xp
    size = problem.shape[0] * problem.shape[1]
    residual = prefixes[-1] - compression.reduced["target"]
    loss = (inner(residual, residual, xp) + compression.complement * pi**2) / (2 * size)
    return SubspaceGradient(loss, residual / size, pi / size, prefixes)


def _reduce(problem, bases, Q_L):
    """What a step needs of the problem, made once: ``M~`` (factorization), ``A~_i`` and ``a_i`` (sensing)."""
    B_0, B_L = bases[0], bases[-1]
    if isinstance(problem, MatrixFactorization):
        return {"target": B_L.T @ problem.target @ B_0}
    if isinstance(problem, MatrixSensing):
        xp = problem.xp
        count, width = problem.operators.shape[0], B_0.shape[1]
        reduced = xp.matmul(xp.matmul(B_L.T, problem.operators), B_0)          # A~_i = B_L^T A_i B_0
        flat = xp.reshape(problem.operators, (count, -1))
        return {"operators": xp.reshape(reduced, (count, width * width)),
                "on_P": flat @ xp.reshape(Q_L, (-1,)), "y": problem.y}
    return {}


def exact_update(compression, gradient, sizes):
    """One step of the pair: ``W~_l -= lr s_l A~_l^T G~ R~_l^T``, ``rho_l -= lr s_l g prod_{k != l} rho_k``.

    Parameters
    ----------
    compression : ExactCompression
    gradient : SubspaceGradient
        At ``compression``.
    sizes : list of float
        ``lr * s_l`` per layer (:func:`dlnref.step_sizes`).

    Returns
    -------
    ExactCompression
    """
    grads = backprop(compression.narrow, gradient.block, gradient.prefixes)   # A~_l^T G~ R~_l^T
    narrow = [W - size * dW for W, size, dW in zip(compression.narrow, sizes, grads)]
    rho = compression.rho
    others = [math.prod(rho[:l] + rho[l + 1:]) for l in range(len(rho))]
    rho = tuple(r - size * gradient.complement * other for r, size, other in zip(rho, sizes, others))
    return compression.moved(narrow, rho)


def exact_step(problem, compression, lr, outer_lr_scale=1.0):
    """One gradient-descent step of the wide network, taken on the pair; returns the new ExactCompression."""
    sizes = step_sizes(len(compression.narrow), lr, outer_lr_scale)
    return exact_update(compression, subspace_gradient(problem, compression), sizes)


def train_exact(problem, compression, lr, steps, outer_lr_scale=1.0, record_every=1, tol=0.0,
                progress=None, observe=None, patience=None):
    """Gradient descent on the wide network, carried out on its exact compression.

    Takes the arguments of :func:`dlnref.gradient_descent` (``lr="auto"``
    included: :func:`dlnref.train.auto_lr` at the pair's depth), with the pair
    from :func:`compress_exact` in place of the weights, runs the one training
    loop (:func:`dlnref.train.descend`), and records the same history (the
    wide network's loss and errors). ``observe(step, compression)`` gets the pair.

    Returns
    -------
    TrainResult
        ``weights`` holds the final :class:`ExactCompression`; its
        ``layers()`` are the wide layers.

    Raises
    ------
    InputError
        For an lr, outer_lr_scale or schedule out of range.
    DivergenceError
        As soon as the loss is inf or NaN (under ``lr="auto"``, after the last halving).
    """
    check_problem(problem)
    check_hooks(progress=progress, observe=observe)
    if not isinstance(compression, ExactCompression):
        raise InputTypeError(f"compression must be the ExactCompression that compress_exact returns, got "
                             f"{type(compression).__name__}")
    if tuple(problem.shape) != tuple(compression.init_end_to_end.shape):
        raise InputError(f"the compression was built for a {compression.init_end_to_end.shape} network, but the "
                         f"problem has shape {tuple(problem.shape)}")
    outer_lr_scale = check_positive("outer_lr_scale", outer_lr_scale)
    depth = len(compression.narrow)
    auto, lr = resolve_lr(lr, lambda: auto_lr(problem, depth, outer_lr_scale))
    target_norm = float(array_namespace(problem.target).linalg.vector_norm(problem.target))

    def train(lr):
        sizes = step_sizes(depth, lr, outer_lr_scale)

        def step(t, pair, update, record):
            gradient = subspace_gradient(problem, pair)
            return float(gradient.loss), gradient, exact_update(pair, gradient, sizes) if update else pair

        return descend(step, measure, compression, steps, record_every=record_every, tol=tol, patience=patience,
                       progress=progress, observe=observe, divergence=Divergence(lr))

    def measure(t, pair, gradient):
        return _record(problem, pair, gradient, float(gradient.loss), target_norm)


    return train_with(train, lr, auto)


def _record(problem, compression, gradient, loss, target_norm):
    """The wide network's recovery error and metrics at the pair (from the loss, for factorization)."""
    if "target" in compression.reduced:   # factorization: loss = ||X - M||_F^2 / (2 m n)
        return {"recovery_error": math.sqrt(2 * problem.shape[0] * problem.shape[1] * loss) / target_norm}
    X = compression.end_to_end() if gradient.X is None else gradient.X
    return {"recovery_error": float(problem.recovery_error(X)),
            **{name: float(value) for name, value in problem.metrics(X).items()}}
