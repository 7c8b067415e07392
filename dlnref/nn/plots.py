"""Figures of the MLP runs: ``dlnref classify``'s curves and the per-layer update rank."""

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..plots import COLORS, save


def plot_classify(result, path):
    """Training loss and test accuracy against wall time, wide vs compressed block.

    Parameters
    ----------
    result : dict
        The output of :func:`dlnref.experiments.classify.run_classify`.
    path : str or os.PathLike
    """
    c = result["config"]
    fig = Figure(figsize=(10, 4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    for name in ("wide", "compressed"):
        run, history = result[name], result[name]["history"]
        label = f"{name} block ({run['params']:,} params)"
        loss_ax.semilogy(history["seconds"], history["loss"], color=COLORS[name], label=label)
        acc_ax.plot(history["seconds"], history["test_accuracy"], color=COLORS[name], label=label)
    acc_ax.axhline(c["target_accuracy"], color="0.5", ls=":", lw=1, label=f"{c['target_accuracy']:g}")
    loss_ax.set_ylabel("training cross-entropy")
    acc_ax.set_ylabel("test accuracy")
    acc_ax.set_ylim(max(0.0, min(min(result[n]["history"]["test_accuracy"][1:] or [0]) for n in ("wide", "compressed")) - 0.02), 1.0)
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("training time (s, evaluation excluded)")
        ax.grid(True, alpha=0.3)
        ax.legend()
    d = result["data"]
    fig.suptitle(f"{d['name']}: MLP, h={c['hidden']}, {c['block']} block of depth {c['depth']}, compressed width "
                 f"{c['width']} ({c['block_init']} init), lr={c['lr']:g}")
    save(fig, path)


def plot_update_rank(layers, path, title):
    """Per layer: the normalised singular values of ``W_l(T) - W_l(0)``, and the energy in the top k over time.

    Parameters
    ----------
    layers : list of dict
        One per layer, with ``label``, ``singular_values`` (of the final
        update, decreasing), ``k``, ``steps`` and ``energy`` (the fraction of
        the update's energy in its top k at each step).
    path : str or os.PathLike
    title : str
    """
    fig = Figure(figsize=(11, 4.2))
    spectrum, energy = fig.subplots(1, 2)
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(layers)))
    for layer, color in zip(layers, colors):
        s = np.asarray(layer["singular_values"])
        spectrum.semilogy(np.arange(1, s.size + 1), s / s[0], ".-", color=color, ms=3, lw=1, label=layer["label"])
        energy.plot(layer["steps"][1:], layer["energy"][1:], color=color, label=f"{layer['label']}, k={layer['k']}")
    k = max(layer["k"] for layer in layers)
    spectrum.axvline(k + 0.5, color="0.4", ls=":", lw=1, label=f"i = {k}")
    spectrum.set_xscale("log")
    spectrum.set_xlabel("index i")
    spectrum.set_ylabel(r"$\sigma_i / \sigma_1$ of $W_l(T) - W_l(0)$")
    energy.set_xlabel("gradient-descent step t")
    energy.set_ylabel("share of $\\|W_l(t) - W_l(0)\\|_F^2$ in its top k")
    for ax in (spectrum, energy):
        ax.grid(True, alpha=0.3)
    energy.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    save(fig, path)
