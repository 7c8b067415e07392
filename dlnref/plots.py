"""Matplotlib figures. Each function takes plain data and writes one PNG."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import FuncFormatter  # noqa: E402

from ._io import atomic_path  # noqa: E402

COLORS = {"wide": "tab:blue", "compressed": "tab:red"}
DPI = 110


def save(fig, path):
    """Write ``fig`` to ``path`` atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
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
