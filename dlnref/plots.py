"""Matplotlib figures. Each function takes plain data and writes one PNG."""

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from ._io import atomic_path  # noqa: E402

COLORS = {"wide": "tab:blue", "compressed": "tab:red"}
DPI = 110
#: Photographs compress badly in PNG: a lower resolution keeps each file under 300 KB.
IMAGE_DPI = 75


def save(fig, path, dpi=DPI):
    """Write ``fig`` to ``path`` atomically and close it.

    The format follows ``path``'s extension, PNG where it has none (the file
    keeps the name it was given).
    """
    extension = os.path.splitext(os.fspath(path))[1][1:].lower()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=extension or "png")
    finally:
        plt.close(fig)


def steps_axis(ax, label="gradient-descent step"):
    """Label ``ax``'s x axis as steps, with ticks like 12k that do not collide."""
    ax.set_xlabel(label)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k" if abs(x) >= 1000 else f"{x:g}"))


def plot_compare(result, path):
    """Recovery error against step and against seconds, wide vs compressed DLN.

    Parameters
    ----------
    result : dict
        The output of :func:`dlnref.compare.run_compare`.
    path : str or os.PathLike
        Where to write the PNG.
    """
    config = result["config"]
    column = "test_rmse" if config["data"] is not None else "recovery_error"
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for name in ("wide", "compressed"):
        history = result[name]["history"]
        label = f"{name} DLN ({result[name]['params']:,} params)"
        by_step.semilogy(history["step"], history[column], color=COLORS[name], label=label)
        by_time.semilogy(history["seconds"], history[column], color=COLORS[name], label=label)
    steps_axis(by_step)
    by_time.set_xlabel("wall time (s)")
    by_step.set_ylabel("test RMSE (rating points)" if config["data"] is not None
                       else r"relative recovery error $\|X - M\|_F / \|M\|_F$")
    for ax in (by_step, by_time):
        ax.grid(True, which="major", alpha=0.3)
        ax.legend()
    setup = (f"ratings {config['data']}" if config["data"] is not None
             else f"{config['problem']}: d={config['d']}, r={config['rank']}")
    fig.suptitle(
        f"{setup}, L={config['depth']}, eps={config['scale']:g}, lr={config['lr']:g}, "
        f"alpha={config['outer_lr_scale']:g} (compressed)"
    )
    save(fig, path)


def plot_layer_spectrum(steps, moving, fixed, angles, path, title):
    """Singular values of one layer over training, and the angles of its moving and fixed subspaces.

    Parameters
    ----------
    steps : sequence of int, length T
    moving : array, shape (T, 2r)
        The singular values outside the equal run (they move).
    fixed : array, shape (T, d - 2r)
        The equal run (the theory: all equal to rho(t), on a fixed subspace).
    angles : dict of str -> sequence of float
        Curves for the right panel (radians), each of length T.
    path : str or os.PathLike
    title : str
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for i in range(moving.shape[1]):
        left.semilogy(steps, moving[:, i], color="tab:red", lw=1.2, label="2r moving" if i == 0 else None)
    left.fill_between(steps, fixed.min(axis=1), fixed.max(axis=1), color="0.5", alpha=0.4)
    left.semilogy(steps, fixed.mean(axis=1), color="0.3", lw=2, label=f"{fixed.shape[1]} equal ones (rho)")
    steps_axis(left)
    left.set_ylabel("singular value of $W_1(t)$")
    left.legend()
    for (label, curve), color in zip(angles.items(), ("tab:red", "tab:blue", "tab:green")):
        right.semilogy(steps, np.maximum(curve, 1e-17), color=color, label=label)
    steps_axis(right)
    right.set_ylabel("largest principal angle (rad)")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    save(fig, path)


def plot_incremental(panels, path, title):
    """End-to-end singular values against step, with the target's as dashed lines.

    Parameters
    ----------
    panels : list of dict
        Each with ``title``, ``steps`` (length T), ``values`` (T x k, the top
        singular values of X(t)) and ``targets`` (the target's top k).
    path : str or os.PathLike
    title : str
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        values = np.asarray(panel["values"])
        colors = plt.cm.viridis(np.linspace(0, 0.9, values.shape[1]))
        for i, color in enumerate(colors):
            ax.plot(panel["steps"], values[:, i], color=color, label=f"$\\sigma_{{{i + 1}}}(X)$")
            ax.axhline(panel["targets"][i], color=color, ls="--", lw=0.8)
        steps_axis(ax)
        ax.set_ylabel("singular value")
        ax.set_title(panel["title"], fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    save(fig, path)


def plot_alpha_ablation(alphas, compressed_steps, wide_steps, path, title):
    """Steps to reach the error threshold against the outer-layer scale alpha.

    ``compressed_steps[i]`` is None where the run did not reach it (or diverged).
    """
    fig, ax = plt.subplots(figsize=(6, 4))
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
    ax.set_ylabel("steps to relative error 1e-3")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title, fontsize=10)
    save(fig, path)


def plot_depth(curves, path, title):
    """Training loss (left) and the loss on the unobserved entries (right) against step, per network and depth.

    Parameters
    ----------
    curves : list of dict
        Each with ``label``, ``network`` ("wide" or "compressed"), ``depth``,
        ``steps``, ``loss`` and ``test_loss`` (sequences of one length), and
        ``notebook_init`` (True for the official notebook's unscaled depth-2 init).
    path : str or os.PathLike
    title : str
    """
    fig, (train, test) = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for c in curves:
        style = {"color": COLORS[c["network"]], "ls": ":" if c["notebook_init"] else ("--" if c["depth"] == 2 else "-")}
        train.semilogy(c["steps"], c["loss"], label=c["label"], **style)
        test.semilogy(c["steps"], c["test_loss"], label=c["label"], **style)
    train.set_ylabel(r"training loss $\|P_\Omega(X - M)\|_F^2 / (2|\Omega|)$")
    test.set_ylabel(r"unobserved loss $\|P_{\Omega^c}(X - M)\|_F^2 / (2|\Omega^c|)$")
    for ax in (train, test):
        steps_axis(ax)
        ax.grid(True, alpha=0.3)
    train.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    save(fig, path)


def plot_image_completion(original, mask, recoveries, path, title):
    """Original, observed pixels, and each network's completion, side by side.

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
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    cmap = plt.get_cmap("gray").with_extremes(bad="tab:blue")
    for ax, (name, image, caption) in zip(axes, panels):
        ax.imshow(image, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(caption, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    save(fig, path, dpi=IMAGE_DPI)
