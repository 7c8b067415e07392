"""Multilayer perceptrons with an inserted deep linear block: model, gradients, training.

The paper's last experiment adds linear layers to an MLP and compresses them.

Model
-----
On a batch of ``n`` samples stored as columns, ``H_0 = X`` of shape ``(d_0, n)``,
layer ``l`` computes (input first, ``W_l`` of shape ``(d_l, d_{l-1})``, no biases,
as in the official code)

    Z_l = W_l H_{l-1},      H_l = relu(Z_l) if a ReLU follows layer l, else Z_l.

The layers are, input first (:func:`mlp_layout`):

- ``relu_layers`` ReLU layers, ``d_0 -> h -> ... -> h``;
- the block of ``L_b`` layers, ``h -> w -> ... -> w -> h`` (the wide block has
  ``w = h``; the compressed one ``w = 2r``, or as given);
- the output layer ``h -> K``, whose ``Z_L`` are the logits of the K classes.

With ``L_b = 0`` there is no block: the MLP alone, the paper's "Original".

A ReLU follows every layer but the last, except *inside* the block: with
``block="linear"`` (the default, the paper's text: "added linear layers") no
ReLU sits between two block layers, so the block computes ``X_b H`` with
``X_b = W_{b,L_b} ... W_{b,1}``, a deep linear network, and a ReLU follows its
last layer as it follows every hidden layer. ``block="relu"`` puts a ReLU after
every block layer too (the official code's forward pass).

Loss: softmax cross-entropy, averaged over the batch,
``loss = -(1/n) sum_i log softmax(Z_L)[y_i, i]``.

Gradients
---------
Consecutive layers with no ReLU between them form a *linear segment*: a DLN
whose first "layer" is the segment's input ``H``, ``Z_b = W_b ... W_a H``.
:func:`dlnref.backward` on the chain ``[H, W_a, ..., W_b]`` with
``G = dLoss/dZ_b`` returns ``[dLoss/dH, dW_a, ..., dW_b]``, and its prefix
products are the forward pass's activations. The only other calculus is the
ReLU, ``dLoss/dZ = dLoss/dH * [Z > 0]``, and the cross-entropy,
``dLoss/dZ_L = (softmax(Z_L) - Y) / n`` with ``Y`` the one-hot labels.

Step rule (the official code's optimiser): ``W_l <- W_l - lr s_l dW_l`` with
``s_1 = first_lr_scale`` on the first layer only and ``s_l = 1`` elsewhere.
"""

import dataclasses
import math

import numpy as np

from .._checks import as_generator, check_int, check_positive
from ..backend import array_namespace, svd, to_backend
from ..errors import InputError, InputTypeError
from ..network import backward, init_weights, prefix_products
from ..train import Divergence, check_hooks, descend, limit_blas_threads

#: A training loss above this many times its reference, the larger of the loss at step 0 and
#: ``log K`` (the cross-entropy of a uniform guess over K classes), is a divergence. A step too large
#: for the network throws its logits far out (at lr 1e6 on the digits the loss went from 2.3 to 1e23
#: in one step) and then kills every ReLU, after which the loss reads ``log K`` again, finite but dead.
LOSS_BLOWUP = 1e3

#: What sits between two layers of the block: nothing ("linear", the default) or a ReLU ("relu").
BLOCKS = ("linear", "relu")
#: Initialisations of a compressed block: random orthogonal like every layer, or spectral.
BLOCK_INITS = ("random", "spectral")
#: The paper's three models, in its order: the MLP alone ("Original", ``block_depth=0``), with the wide
#: linear block ("Original + DLN") and with the compressed one ("Original + C-DLN").
MODELS = ("original", "wide", "compressed")
#: The paper's names of :data:`MODELS`, for tables and figures.
PAPER_NAMES = {"original": "Original", "wide": "Original + DLN", "compressed": "Original + C-DLN"}


@dataclasses.dataclass(frozen=True)
class MLPLayout:
    """Shapes and activations of an MLP with a block.

    Attributes
    ----------
    dims : tuple of int
        ``(d_0, d_1, ..., d_L)``, input first; layer l has shape ``(d_l, d_{l-1})``.
    block_layers : tuple of int
        ``(first, stop)``: the block is ``weights[first:stop]`` (0-based).
    block_activation : {"linear", "relu"}
    """

    dims: tuple
    block_layers: tuple
    block_activation: str = "linear"

    @property
    def depth(self):
        """Number of layers L."""
        return len(self.dims) - 1

    @property
    def relu_after(self):
        """``relu_after[l]``: whether a ReLU follows 0-based layer l."""
        first, stop = self.block_layers
        inside = range(first, stop - 1) if self.block_activation == "linear" else range(0)
        return tuple(l < self.depth - 1 and l not in inside for l in range(self.depth))

    @property
    def segments(self):
        """Linear segments ``(a, b)``: layers ``a..b-1`` with no ReLU between them (0-based)."""
        segments, start = [], 0
        for l, relu in enumerate(self.relu_after):
            if relu or l == self.depth - 1:
                segments.append((start, l + 1))
                start = l + 1
        return segments

    @property
    def block_width(self):
        """The block's inner width w (``dims`` after its first layer)."""
        return self.dims[self.block_layers[0] + 1]

    def with_block_width(self, width):
        """The same layout with inner block width ``width``: ``h -> w -> ... -> w -> h``."""
        first, stop = self.block_layers
        dims = list(self.dims)
        dims[first + 1:stop] = [width] * (stop - first - 1)
        return dataclasses.replace(self, dims=tuple(dims))


def mlp_layout(inputs, classes, hidden, relu_layers=1, block_depth=3, block_width=None, block="linear"):
    """The layout of :mod:`dlnref.nn.mlp`'s model.

    Parameters
    ----------
    inputs : int
        ``d_0``, pixels per image.
    classes : int
        ``K >= 2``.
    hidden : int
        ``h``, the width of the ReLU layers and of the block's ends.
    relu_layers : int
        ReLU layers before the block, at least 1 (the first is ``d_0 -> h``).
    block_depth : int
        ``L_b >= 2`` layers in the block, or 0 for no block (the MLP alone, the paper's "Original").
    block_width : int or None
        The block's inner width ``w``, ``1 <= w <= h``; None means ``h`` (the wide block).
    block : {"linear", "relu"}

    Returns
    -------
    MLPLayout
        ``dims = (d_0, h, ..., h, w, ..., w, h, K)`` with ``L = relu_layers + L_b + 1`` layers;
        without a block, ``dims = (d_0, h, ..., h, K)``.
    """
    inputs, classes = check_int("inputs", inputs, 1), check_int("classes", classes, 2)
    hidden = check_int("hidden", hidden, 1)
    relu_layers = check_int("relu_layers", relu_layers, 1)
    block_depth = check_int("block_depth", block_depth, 0)
    if block_depth == 1:
        raise InputError("block_depth must be 0 (no block) or at least 2, got 1")
    if block not in BLOCKS:
        raise InputError(f"block must be one of {BLOCKS}, got {block!r}")
    width = hidden if block_width is None else check_int("block_width", block_width, 1)
    if width > hidden:
        raise InputError(f"block_width must be <= hidden = {hidden}, got {width}")
    block_dims = [*[width] * (block_depth - 1), hidden] if block_depth else []
    dims = (inputs, *[hidden] * relu_layers, *block_dims, classes)
    return MLPLayout(dims, (relu_layers, relu_layers + block_depth), block)


def init_mlp(layout, scale=1.0, seed=0, backend=None):
    """Random orthogonal weights ``W_l = scale * O_l`` for every layer.

    The layers outside the block and the block come from two independent
    child streams of ``seed``, so a wide and a compressed layout drawn from
    one seed share every layer outside the block.

    Parameters
    ----------
    layout : MLPLayout
    scale : float
        Every layer is ``scale`` times a matrix with orthonormal rows or columns.
    seed : int
    backend : str or None

    Returns
    -------
    list of array
        ``[W_1, ..., W_L]``, ``W_l`` of shape ``(d_l, d_{l-1})``.
    """
    seed = check_int("seed", seed, 0)
    outside, inside = (as_generator(s) for s in np.random.SeedSequence(seed).spawn(2))
    first, stop = layout.block_layers
    dims = layout.dims
    before = init_weights(dims[:first + 1], scale, seed=outside, backend=backend) if first > 0 else []
    block = init_weights(dims[first:stop + 1], scale, seed=inside, backend=backend) if stop > first else []
    after = init_weights(dims[stop:], scale, seed=outside, backend=backend)
    return [*before, *block, *after]


def relu(Z):
    """``max(Z, 0)`` entry-wise."""
    return array_namespace(Z).maximum(Z, 0.0)


def relu_backward(dH, Z):
    """``dLoss/dZ = dLoss/dH * [Z > 0]`` for ``H = relu(Z)``."""
    xp = array_namespace(dH, Z)
    return dH * xp.astype(Z > 0, dH.dtype)   # 4x faster than a where() on NumPy, whose branches mispredict


def cross_entropy(logits, Y):
    """Mean softmax cross-entropy and its gradient.

    Parameters
    ----------
    logits : array, shape (K, n)
    Y : array, shape (K, n)
        One-hot labels (columns sum to 1).

    Returns
    -------
    loss : 0-d array
        ``-(1/n) sum_i sum_k Y_ki log softmax(Z)_ki``.
    dZ : array, shape (K, n)
        ``(softmax(Z) - Y) / n``.
    """
    xp = array_namespace(logits, Y)
    n = logits.shape[1]
    shifted = logits - xp.max(logits, axis=0, keepdims=True)   # softmax is shift-invariant
    exp = xp.exp(shifted)
    total = xp.sum(exp, axis=0, keepdims=True)
    log_softmax = shifted - xp.log(total)
    return -xp.sum(Y * log_softmax) / n, (exp / total - Y) / n


def forward(weights, layout, X):
    """Logits and the activations back-propagation needs.

    Parameters
    ----------
    weights : list of array, W_l of shape (d_l, d_{l-1})
    layout : MLPLayout
    X : array, shape (d_0, n)

    Returns
    -------
    logits : array, shape (K, n)
    cache : list of list of array
        Per linear segment ``(a, b)``, the prefix products of ``[H, W_a, ..., W_{b-1}]``:
        ``[H, W_a H, ..., Z_{b-1}]``.
    """
    H, cache = X, []
    for a, b in layout.segments:
        prefixes = prefix_products([H, *weights[a:b]])
        cache.append(prefixes)
        H = relu(prefixes[-1]) if layout.relu_after[b - 1] else prefixes[-1]
    return H, cache


def gradients(weights, layout, cache, G):
    """``dLoss/dW_l`` for every layer, from ``G = dLoss/dZ_L`` and the forward cache.

    Each linear segment's gradients come from :func:`dlnref.backward` on the chain
    ``[H, W_a, ..., W_{b-1}]``; its first entry ``dLoss/dH`` goes through the ReLU of
    the segment below. The first segment's input is the data, whose gradient is
    not needed, so it is the single first layer, ``dW_1 = G X^T``.

    Returns
    -------
    list of array
        ``[dW_1, ..., dW_L]``.
    """
    grads = [None] * len(weights)
    segments = layout.segments
    for s in range(len(segments) - 1, 0, -1):
        a, b = segments[s]
        grads[a:b], G = _segment_backward(weights[a:b], cache[s], G, cache[s - 1][-1])
    grads[0] = G @ cache[0][0].T   # relu_layers >= 1: the first segment is W_1 alone
    return grads


def _segment_backward(segment, prefixes, G, Z_below):
    """Gradients of one linear segment's layers, and ``dLoss/dZ`` of the layer below (through its ReLU)."""
    dH, *grads = backward([prefixes[0], *segment], G, prefixes)   # the segment's input is its first factor
    return grads, relu_backward(dH, Z_below)


def loss_and_gradients(weights, layout, X, Y):
    """Cross-entropy loss and ``[dW_1, ..., dW_L]`` on the batch ``(X, Y)``.

    Parameters
    ----------
    weights : list of array
    layout : MLPLayout
    X : array, shape (d_0, n)
    Y : array, shape (K, n), one-hot

    Returns
    -------
    loss : 0-d array
    grads : list of array
    """
    logits, cache = forward(weights, layout, X)
    loss, G = cross_entropy(logits, Y)
    return loss, gradients(weights, layout, cache, G)


def block_gradient(weights, layout, X, Y):
    """``dLoss/dX_b`` for the block's end-to-end matrix ``X_b = W_{b,L_b} ... W_{b,1}`` (linear block).

    With ``Z = X_b H`` the block's output and ``H`` its input, ``dLoss/dX_b = dLoss/dZ H^T``.

    Returns
    -------
    array, shape (h, h)
    """
    if layout.block_activation != "linear":
        raise InputError("block_gradient needs a linear block (block='linear'); a ReLU block has no end-to-end matrix")
    logits, cache = forward(weights, layout, X)
    _, G = cross_entropy(logits, Y)
    segments = layout.segments
    block = segments.index(tuple(layout.block_layers))
    for s in range(len(segments) - 1, block, -1):
        a, b = segments[s]
        G = _segment_backward(weights[a:b], cache[s], G, cache[s - 1][-1])[1]
    return G @ cache[block][0].T


def spectral_block(weights, layout, X, Y, width, scale=1.0):
    """Compressed weights whose block starts from the top singular vectors of the wide block's gradient.

    The other layers are those of ``weights``. With ``U S V^T`` the SVD of the
    descent direction ``-dLoss/dX_b`` at ``weights`` (:func:`block_gradient`), the
    block becomes ``[scale V_w^T, scale I_w, ..., scale I_w, scale U_w]``: its
    end-to-end matrix starts at ``scale^{L_b} U_w V_w^T``, the top-w part of the
    first step's direction, as :func:`dlnref.compress` starts from the top of the
    problem's surrogate.

    Parameters
    ----------
    weights : list of array
        A wide MLP (``layout.block_width == h``) at initialisation.
    layout : MLPLayout
        Its layout; linear block.
    X, Y : arrays, shapes (d_0, n), (K, n)
        The training set.
    width : int
        ``w``, ``1 <= w <= h``.
    scale : float

    Returns
    -------
    weights_c : list of array
    layout_c : MLPLayout
    """
    scale = check_positive("scale", scale)
    first, stop = layout.block_layers
    hidden = layout.dims[first]
    width = check_int("width", width, 1)
    if width > hidden:
        raise InputError(f"width must be <= the block's ends h = {hidden}, got {width}")
    xp = array_namespace(X, *weights)
    U, _, Vh = svd(-block_gradient(weights, layout, X, Y))
    inner = [scale * xp.eye(width, dtype=X.dtype) for _ in range(stop - first - 2)]
    block = [scale * Vh[:width, :], *inner, scale * U[:, :width]]
    return [*weights[:first], *block, *weights[stop:]], layout.with_block_width(width)


@dataclasses.dataclass
class LabelledSet:
    """Images as columns with their labels, on one backend.

    Attributes
    ----------
    X : array, shape (d_0, n)
    Y : array, shape (K, n), one-hot
    labels : array of int, shape (n,)
    """

    X: object
    Y: object
    labels: object

    @property
    def size(self):
        return self.X.shape[1]


def labelled_set(images, labels, classes, backend=None):
    """Move host images ``(n, d_0)`` and integer labels ``(n,)`` to a :class:`LabelledSet`."""
    classes = check_int("classes", classes, 2)
    images, labels = np.asarray(images, dtype=np.float64), np.asarray(labels)
    if images.ndim != 2 or labels.shape != (images.shape[0],) or images.shape[0] == 0:
        raise InputError(f"images must be (n, d_0) and labels (n,) with n >= 1, got {images.shape} and {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputTypeError(f"labels must be integers, got dtype {labels.dtype}")
    if not np.all(np.isfinite(images)):
        raise InputError("images contain NaN or inf; clean the data first")
    if labels.min() < 0 or labels.max() >= classes:
        raise InputError(f"labels must lie in 0..{classes - 1}, got values {labels.min()}..{labels.max()}")
    one_hot = np.eye(classes)[labels].T
    return LabelledSet(to_backend(np.ascontiguousarray(images.T), backend), to_backend(one_hot, backend),
                       to_backend(labels.astype(np.int64), backend))


def evaluate(weights, layout, data):
    """Mean cross-entropy and accuracy (argmax of the logits) on a labelled set, as Python floats."""
    logits, _ = forward(weights, layout, data.X)
    xp = array_namespace(logits)
    loss, _ = cross_entropy(logits, data.Y)
    correct = xp.astype(xp.argmax(logits, axis=0) == data.labels, logits.dtype)
    return float(loss), float(xp.mean(correct))


def train_mlp(weights, layout, train, lr, steps, test=None, batch_size=None, first_lr_scale=1.0, record_every=10,
              seed=0, progress=None, observe=None, blas_threads=1):
    """Train by gradient descent on the cross-entropy, full batch unless ``batch_size`` is given.

    The step (:func:`step`) runs in the one training loop, :func:`dlnref.train.descend`.

    Parameters
    ----------
    weights : list of array
        Starting point (not modified).
    layout : MLPLayout
    train, test : LabelledSet
    lr : float
        Step size.
    steps : int
        Number of updates.
    batch_size : int or None
        None: full-batch gradient descent. Otherwise each step uses the next
        ``batch_size`` samples of a seeded random permutation of the training
        set, redrawn at each epoch (the last batch of an epoch may be smaller).
    first_lr_scale : float
        ``s_1``: the first layer's step is ``lr * s_1`` (the official code's
        ``dlr``, which scales the first layer only).
    record_every : int
        Evaluate and record every this many steps (and at steps 0 and ``steps``).
    seed : int
        Seed of the batch order.
    progress : callable or None
        ``progress(step, steps, row)`` after each recorded row.
    observe : callable or None
        ``observe(step, weights) -> dict`` at each recorded step, added to the row.
    blas_threads : int or None
        BLAS threads during training (NumPy backend only); None leaves the
        setting alone. One thread is the default: on a 2-core machine whose
        other core is busy, two threads ran these matmuls (widths up to a few
        hundred) 2 to 4 times slower than one.

    Returns
    -------
    dlnref.TrainResult
        Its history has the columns ``step``, ``epoch``, ``loss`` and
        ``train_accuracy`` (whole training set), ``test_loss`` and
        ``test_accuracy`` (when a test set is given), and ``seconds`` (time
        spent in steps only, not in evaluation).

    Raises
    ------
    DivergenceError
        When a step's loss is inf or NaN, or above :data:`LOSS_BLOWUP` times its reference.
    """
    lr, first_lr_scale = check_positive("lr", lr), check_positive("first_lr_scale", first_lr_scale)
    check_hooks(progress=progress, observe=observe)
    for name, value, kind in (("layout", layout, MLPLayout), ("train", train, LabelledSet),
                              ("test", test, (LabelledSet, type(None)))):
        if not isinstance(value, kind):
            expected = "an MLPLayout (mlp_layout)" if kind is MLPLayout else "a LabelledSet (labelled_set)"
            raise InputTypeError(f"{name} must be {expected}, got {type(value).__name__}")
    if train.Y.shape[0] != layout.dims[-1]:
        raise InputError(f"the training set has {train.Y.shape[0]} classes, the layout's output layer "
                         f"{layout.dims[-1]}")
    if tuple(w.shape for w in weights) != tuple((o, i) for i, o in zip(layout.dims[:-1], layout.dims[1:])):
        raise InputError(f"weights' shapes {[tuple(w.shape) for w in weights]} do not match layout.dims {layout.dims}")
    n = train.size
    batch_size = n if batch_size is None else min(check_int("batch_size", batch_size, 1), n)
    batches = _batches(train, batch_size, check_int("seed", seed, 0))
    sizes = [lr * first_lr_scale] + [lr] * (len(weights) - 1)
    epochs_per_step = batch_size / n

    def one_step(t, weights, update, record):
        if not update:
            return None, None, weights
        loss, updated = step(weights, layout, *next(batches), sizes)
        return float(loss), None, updated

    def measure(t, weights, _):   # the whole sets, at the weights before this step's update
        return _record(weights, layout, train, test, t * epochs_per_step)

    divergence = Divergence(lr, blowup=LOSS_BLOWUP, floor=math.log(layout.dims[-1]), network="MLP", advice=(
        f"Try a smaller lr (say {lr / 2:g}), a smaller first_lr_scale, or a smaller init scale."))
    with limit_blas_threads(blas_threads, array_namespace(train.X)):
        return descend(one_step, measure, list(weights), steps, record_every=record_every, progress=progress,
                       observe=observe, divergence=divergence, clock_records=False)


def step(weights, layout, X, Y, sizes):
    """One gradient step ``W_l <- W_l - sizes[l] dLoss/dW_l`` on the batch ``(X, Y)``; returns (loss, weights)."""
    loss, grads = loss_and_gradients(weights, layout, X, Y)
    return loss, [W - size * g for W, size, g in zip(weights, sizes, grads)]


def _batches(data, batch_size, seed):
    """Endless ``(X, Y)`` batches: the whole set, or slices of a seeded permutation redrawn each epoch."""
    if batch_size == data.size:
        while True:
            yield data.X, data.Y
    xp, rng = array_namespace(data.X), as_generator(seed)
    while True:
        order = rng.permutation(data.size)
        for first in range(0, data.size, batch_size):
            index = xp.asarray(order[first:first + batch_size])   # indices drawn on the host, then moved
            yield xp.take(data.X, index, axis=1), xp.take(data.Y, index, axis=1)


def _record(weights, layout, train, test, epoch):
    """The row's numbers: the epoch, loss and accuracy on the whole training set (and the test set)."""
    loss, accuracy = evaluate(weights, layout, train)
    row = {"epoch": epoch, "loss": loss, "train_accuracy": accuracy}
    if test is not None:
        row["test_loss"], row["test_accuracy"] = evaluate(weights, layout, test)
    return row
