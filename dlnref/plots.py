"""Matplotlib figures of the learning dynamics, in two layers.

- Drawing helpers take plain data and an optional ``ax=`` (default: the
  current Axes, ``plt.gca()``), draw on it and return it, as matplotlib
  users expect::

      from dlnref import plots

      fig, ax = plt.subplots()
      plots.error_curves(run.history, ax=ax, label="compressed")
      fig.savefig("errors.png")

- Figure writers (``plot_*``, with a ``path``) lay out the helpers' panels
  as ``dlnref compare`` and ``dlnref figures`` draw them, write one PNG and
  return the Figure. They use no pyplot state, so any backend works.
"""

import os

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ._io import atomic_path

COLORS = {"wide": "tab:blue", "compressed": "tab:red"}
DPI = 110
#: Photographs compress badly in PNG: a lower resolution keeps each file under 300 KB.
IMAGE_DPI = 75


def save(fig, path, dpi=DPI):
    """Write ``fig`` to ``path`` atomically (whole or not at all); a pyplot figure is closed too.

    The format follows ``path``'s extension, PNG where it has none (the file
    keeps the name it was given).
    """
    extension = os.path.splitext(os.fspath(path))[1][1:].lower()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=extension or "png")
    if fig.canvas.manager is not None:  # made by pyplot, which holds it until it is closed
        import matplotlib.pyplot as plt

        plt.close(fig)


def _axes(ax):
    """``ax``, or pyplot's current Axes when None."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.gca()


def steps_axis(ax, label="gradient-descent step"):
    """Label ``ax``'s x axis as steps, with ticks like 12k that do not collide; returns ``ax``."""
    ax.set_xlabel(label)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k" if abs(x) >= 1000 else f"{x:g}"))
    return ax


# Drawing helpers: ax= in, the Axes out.

def error_curves(history, ax=None, x="step", column="recovery_error", **line):
    """One history column on a log scale, against step or seconds.

    Parameters
    ----------
    history : History or dict of str -> list
        ``run.history`` of :func:`dlnref.gradient_descent`, or its ``columns``
        (as :func:`dlnref.experiments.compare.run_compare` returns them).
    ax : matplotlib.axes.Axes, optional
    x : {"step", "seconds"} or str
        The column on the x axis.
    column : str
        The column on the y axis, say ``recovery_error``, ``loss`` or ``unobserved_error``.
    **line
        Passed to ``ax.semilogy`` (``label``, ``color``, ...).

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    ax.semilogy(history[x], history[column], **line)
    if x == "step":
        steps_axis(ax)
    else:
        ax.set_xlabel("wall time (s)" if x == "seconds" else x)
    ax.grid(True, which="major", alpha=0.3)
    return ax


def singular_value_curves(steps, values, targets=None, ax=None):
    """Singular values against step (incremental learning), with the target's as dashed lines.

    Parameters
    ----------
    steps : sequence of int, length T
    values : array-like, shape (T, k)
        ``values[t, i]`` is the (i+1)-th singular value at ``steps[t]``, say of ``X(t)``.
    targets : sequence of float, length k, optional
        The target's top k singular values.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    values = np.asarray(values)
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, values.shape[1]))
    for i, color in enumerate(colors):
        ax.plot(steps, values[:, i], color=color, label=f"$\\sigma_{{{i + 1}}}(X)$")
        if targets is not None:
            ax.axhline(targets[i], color=color, ls="--", lw=0.8)
    steps_axis(ax)
    ax.set_ylabel("singular value")
    ax.grid(True, alpha=0.3)
    return ax


def layer_singular_values(steps, moving, fixed, ax=None, layer="$W_1(t)$"):
    """One layer's singular values over training: the 2r that move, and the band of the equal ones.

    Parameters
    ----------
    steps : sequence of int, length T
    moving : array, shape (T, 2r)
        The singular values outside the equal run (they move).
    fixed : array, shape (T, d - 2r)
        The equal run (the theory: all equal to rho(t), on a fixed subspace).
    ax : matplotlib.axes.Axes, optional
    layer : str
        The layer's name for the y label.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    moving, fixed = np.asarray(moving), np.asarray(fixed)
    for i in range(moving.shape[1]):
        ax.semilogy(steps, moving[:, i], color="tab:red", lw=1.2, label="2r moving" if i == 0 else None)
    ax.fill_between(steps, fixed.min(axis=1), fixed.max(axis=1), color="0.5", alpha=0.4)
    ax.semilogy(steps, fixed.mean(axis=1), color="0.3", lw=2, label=f"{fixed.shape[1]} equal ones (rho)")
    steps_axis(ax)
    ax.set_ylabel(f"singular value of {layer}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return ax


def angle_curves(steps, angles, ax=None):
    """Principal angles (radians) against step, on a log scale (exact zeros drawn at 1e-17).

    Parameters
    ----------
    steps : sequence of int, length T
    angles : dict of str -> sequence of float
        Label -> curve of length T.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    for (label, curve), color in zip(angles.items(), ("tab:red", "tab:blue", "tab:green", "tab:orange")):
        ax.semilogy(steps, np.maximum(curve, 1e-17), color=color, label=label)
    steps_axis(ax)
    ax.set_ylabel("largest principal angle (rad)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def alpha_steps(alphas, compressed_steps, wide_steps=None, ax=None, threshold="1e-3"):
    """Steps to reach an error threshold against the outer-layer scale alpha.

    ``compressed_steps[i]`` is None where the run did not reach it (or
    diverged); it is marked "not reached". ``wide_steps`` draws the wide DLN
    as a dashed line. Returns the Axes.
    """
    ax = _axes(ax)
    reached = [(a, s) for a, s in zip(alphas, compressed_steps) if s is not None]
    ax.plot([a for a, _ in reached], [s for _, s in reached], "o-", color=COLORS["compressed"],
            label="compressed DLN")
    for a, s in zip(alphas, compressed_steps):
        if s is None:
            ax.annotate("not reached", (a, 0), textcoords="offset points", xytext=(0, 10), ha="center")
    if wide_steps is not None:
        ax.axhline(wide_steps, color=COLORS["wide"], ls="--", label="wide DLN (alpha = 1)")
    ax.set_xscale("log")
    ax.set_xticks(alphas, [f"{a:g}" for a in alphas])
    ax.set_xlabel(r"outer-layer step scale $\alpha$")
    ax.set_ylabel(f"steps to relative error {threshold}")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return ax


def depth_loss_curves(curves, column="loss", ax=None):
    """One loss column against step for each network and depth (the official depth notebook's panels).

    Parameters
    ----------
    curves : list of dict
        Each with ``label``, ``network`` ("wide" or "compressed"), ``depth``,
        ``steps`` and the ``column`` (sequences of one length), and
        ``notebook_init`` (True for the official notebook's unscaled depth-2 init).
        Depth 2 is dashed, the notebook's init dotted.
    column : {"loss", "test_loss"}
    ax : matplotlib Axes or None

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    for c in curves:
        style = "dotted" if c["notebook_init"] else ("dashed" if c["depth"] == 2 else "solid")
        ax.semilogy(c["steps"], c[column], color=COLORS[c["network"]], ls=style, label=c["label"])
    ax.set_ylabel(r"training loss $\|P_\Omega(X - M)\|_F^2 / (2|\Omega|)$" if column == "loss" else
                  r"unobserved loss $\|P_{\Omega^c}(X - M)\|_F^2 / (2|\Omega^c|)$")
    steps_axis(ax)
    ax.grid(True, alpha=0.3)
    return ax


def matrix_image(image, ax=None, title="", caption=""):
    """A matrix with values in [0, 1] as a grayscale image, NaN (unobserved) in blue; returns the Axes."""
    ax = _axes(ax)
    cmap = matplotlib.colormaps["gray"].with_extremes(bad="tab:blue")
    ax.imshow(image, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(caption, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


# Figure writers: one PNG each, for the CLI.

def plot_compare(result, path):
    """Recovery error against step and against seconds, wide vs compressed DLN.

    Parameters
    ----------
    result : dict
        The output of :func:`dlnref.experiments.compare.run_compare`.
    path : str or os.PathLike
        Where to write the PNG.

    Returns
    -------
    matplotlib.figure.Figure
    """
    config = result["config"]
    column = "test_rmse" if config["data"] is not None else "recovery_error"
    fig = Figure(figsize=(10, 4))
    by_step, by_time = fig.subplots(1, 2, sharey=True)
    for name in [name for name in ("wide", "compressed") if name in result]:
        line = {"color": COLORS[name], "label": f"{name} DLN ({result[name]['params']:,} params)"}
        error_curves(result[name]["history"], ax=by_step, column=column, **line)
        error_curves(result[name]["history"], ax=by_time, x="seconds", column=column, **line)
    by_step.set_ylabel("test RMSE (rating points)" if config["data"] is not None
                       else r"relative recovery error $\|X - M\|_F / \|M\|_F$")
    for ax in (by_step, by_time):
        ax.legend()
    setup = (f"ratings {config['data']}" if config["data"] is not None
             else f"{config['problem']}: d={config['d']}, r={config['rank']}")
    fig.suptitle(
        f"{setup}, L={config['depth']}, eps={config['scale']:g}, lr={config['lr']:g}, "
        f"alpha={config['outer_lr_scale']:g} (compressed)"
    )
    save(fig, path)
    return fig


def plot_layer_spectrum(steps, moving, fixed, angles, path, title):
    """Singular values of one layer over training (:func:`layer_singular_values`), and the
    angles of its moving and fixed subspaces (:func:`angle_curves`), written to ``path``."""
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    layer_singular_values(steps, moving, fixed, ax=left)
    angle_curves(steps, angles, ax=right)
    fig.suptitle(title)
    save(fig, path)
    return fig


def plot_incremental(panels, path, title):
    """End-to-end singular values against step (:func:`singular_value_curves`), one panel each.

    Parameters
    ----------
    panels : list of dict
        Each with ``title``, ``steps`` (length T), ``values`` (T x k, the top
        singular values of X(t)) and ``targets`` (the target's top k).
    path : str or os.PathLike
    title : str
    """
    fig = Figure(figsize=(4.2 * len(panels), 3.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        singular_value_curves(panel["steps"], panel["values"], panel["targets"], ax=ax)
        ax.set_title(panel["title"], fontsize=10)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    save(fig, path)
    return fig


def plot_alpha_ablation(alphas, compressed_steps, wide_steps, path, title):
    """:func:`alpha_steps` as one PNG."""
    fig = Figure(figsize=(6, 4))
    alpha_steps(alphas, compressed_steps, wide_steps, ax=fig.subplots()).set_title(title, fontsize=10)
    save(fig, path)
    return fig


def plot_depth(curves, path, title):
    """:func:`depth_loss_curves` of the training loss (left) and of the unobserved entries (right), as one PNG."""
    fig = Figure(figsize=(11, 4))
    train, test = fig.subplots(1, 2, sharex=True)
    depth_loss_curves(curves, "loss", ax=train).legend(fontsize=8)
    depth_loss_curves(curves, "test_loss", ax=test)
    fig.suptitle(title, fontsize=10)
    save(fig, path)
    return fig


def plot_image_completion(original, mask, recoveries, path, title):
    """Original, observed pixels, and each network's completion, side by side (:func:`matrix_image`).

    Parameters
    ----------
    original : array, shape (m, n)
        Values in [0, 1].
    mask : array of bool, shape (m, n)
    recoveries : dict of str -> (array, str)
        Network name -> (recovered matrix, caption).
    path : str or os.PathLike
    title : str
    """
    panels = [("original", original, ""), ("observed (30%)", np.where(mask, original, np.nan), "")]
    panels += [(name, np.clip(X, 0, 1), caption) for name, (X, caption) in recoveries.items()]
    fig = Figure(figsize=(3.2 * len(panels), 3.6))
    for ax, (name, image, caption) in zip(fig.subplots(1, len(panels)), panels):
        matrix_image(image, ax=ax, title=name, caption=caption)
    fig.suptitle(title)
    save(fig, path, dpi=IMAGE_DPI)
    return fig
