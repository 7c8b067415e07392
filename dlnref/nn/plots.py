"""Figures of the MLP runs: ``dlnref classify``'s curves and the per-layer update rank."""

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..plots import COLORS, save
from .mlp import MODELS, PAPER_NAMES

#: Curve colours of the three models; "original" is the paper's green, the other two dlnref's usual ones.
MODEL_COLORS = {"original": "tab:green", **COLORS}


def plot_classify(result, path):
    """The paper's two panels: test accuracy against steps and against seconds, one curve per model.

    Parameters
    ----------
    result : dict
        The output of :func:`dlnref.experiments.classify.run_classify`; each
        model's ``curve`` is drawn.
    path : str or os.PathLike
    """
    c = result["config"]
    fig = Figure(figsize=(11, 4.2))
    by_step, by_time = fig.subplots(1, 2)
    for name in MODELS:
        run = result[name]
        curve = run["curve"]
        label = f"{PAPER_NAMES[name]} ({run['params']:,} params)"
        by_step.plot(curve["step"], curve["test_accuracy"], color=MODEL_COLORS[name], label=label)
        by_time.plot(curve["seconds"], curve["test_accuracy"], color=MODEL_COLORS[name], label=label)
    curves = [result[name]["curve"]["test_accuracy"] for name in MODELS]
    finals = [a for curve in curves for a in curve[len(curve) // 4:]]   # the y-range leaves out the first quarter
    target = c["target_accuracy"]
    low = max(0.0, min(*finals, target) - 0.02)        # the target line stays in view
    high = min(1.0, max(*finals, target) + 0.01)
    for ax, xlabel in ((by_step, "gradient-descent step"), (by_time, "training time (s, evaluation excluded)")):
        ax.axhline(target, color="0.5", ls=":", lw=1, label=f"{target:g}")
        ax.set_ylim(low, high)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy")
        ax.grid(True, alpha=0.3)
    by_time.legend(loc="lower right", fontsize=8)
    d = result["data"]
    fig.suptitle(f"{d['name']} ({d['train']:,} training images): MLP h={c['hidden']}, {c['block']} block of depth "
                 f"{c['depth']}, compressed width {c['width']} ({c['block_init']} init), lr={c['lr']:g}, "
                 f"seed {c['seed']}", fontsize=10)
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
