"""The paper's figures for deep linear networks, made by one command: ``dlnref figures``.

Each figure function trains what it needs (runs are shared through
:func:`dlnref.experiments.compare.compare_with_snapshots`), draws one PNG with
:mod:`dlnref.plots`, and returns the numbers that ``figures/README.md`` quotes.
``size="quick"`` shrinks every run so that all figures take seconds on 2 cores;
``size="full"`` uses the paper's sizes. The command writes them to different
folders (``figures-quick/`` and ``figures/``), and never quick ones over full-size ones.
"""

import dataclasses
import json
import os
import time

import numpy as np

from .. import plots
from .._io import atomic_path, json_default
from ..backend import svd, to_numpy
from ..compress import compress
from ..data import random_mask, sample_matrix
from ..dynamics import invariant_subspace_residuals, largest_principal_angle, moving_and_fixed, singular_values
from ..errors import InputError
from ..network import end_to_end, init_weights
from ..problems import MatrixCompletion, paper_problems
from ..train import DivergenceError, gradient_descent
from .compare import CompareConfig, build, compare_with_snapshots, problem_of, setup
from .figures_index import index_text, write_index

FIGURES = {}
#: Figure name -> the group it is drawn with on an executor: figures that read the same runs.
GROUPS = {}
#: The group of the figures that read :func:`compare_with_snapshots`'s runs of the paper's problems.
SNAPSHOT_RUNS = "snapshot runs"


def figure(name, group=None):
    """Register ``fn(size, path) -> dict`` as the maker of figure ``name``, drawn with ``group`` in one task."""
    def register(fn):
        FIGURES[name] = fn
        GROUPS[name] = group or name
        return fn
    return register


def _trajectory(problem):
    def make(size, path):
        result = compare_with_snapshots(setup(size, problem))
        plots.plot_compare(result, path)
        return {name: {"steps_to_1e-3": result[name]["steps_to"]["0.001"],
                       "seconds_to_1e-3": result[name]["seconds_to"]["0.001"],
                       "params": result[name]["params"], "final_error": result[name]["final_error"]}
                for name in ("wide", "compressed")}
    return make


for _problem in paper_problems():
    figure(f"trajectory_{_problem}", SNAPSHOT_RUNS)(_trajectory(_problem))


@figure("layer_spectrum", SNAPSHOT_RUNS)
def layer_spectrum(size, path):
    """W_1's singular values over training (factorization, wide DLN) and the angles of its subspaces."""
    config = setup(size, "factorization").resolved()
    history = compare_with_snapshots(config)["wide"]["history"]
    layers = [w[0] for w in history["weights"]]
    values = [to_numpy(singular_values(w)) for w in layers]
    splits = [moving_and_fixed(v, config.rank, near=float(values[0][0])) for v in values]
    moving = np.array([v[m] for v, (m, _) in zip(values, splits)])
    fixed = np.array([v[f] for v, (_, f) in zip(values, splits)])
    residuals = [invariant_subspace_residuals(layers[0], w, layers[-1], config.rank) for w in layers]
    final = _moving_right(layers[-1], splits[-1][0])
    angles = {
        "moving: its 2r right singular vectors vs their final place": [
            largest_principal_angle(_moving_right(w, m), final) for w, (m, _) in zip(layers, splits)],
        "fixed: complement, left side (vs init)": [r["left_angle"] for r in residuals],
        "fixed: complement, right side (vs init)": [r["right_angle"] for r in residuals],
    }
    plots.plot_layer_spectrum(history["step"], moving, fixed, angles, path,
                              f"factorization, wide DLN, d={config.d}, r={config.rank}, L={config.depth}: "
                              f"layer $W_1$")
    return {"max_fixed_angle": max(max(a) for name, a in angles.items() if name.startswith("fixed")),
            "equal_spread": max(r["equal_spread"] for r in residuals),
            "moving_final": moving[-1].round(4).tolist(), "fixed_final": float(fixed[-1].mean())}


def _moving_right(w, indices):
    """Right singular vectors of ``w`` at ``indices``, shape (n, len(indices))."""
    return to_numpy(svd(w)[2])[indices].T


@figure("incremental_learning", SNAPSHOT_RUNS)
def incremental_learning(size, path):
    """Singular values of X(t) against step for the three problems, targets dashed."""
    panels, numbers = [], {}
    for problem in paper_problems():
        config = setup(size, problem)
        history = compare_with_snapshots(config)["wide"]["history"]
        rank = config.rank
        values = np.array([to_numpy(singular_values(end_to_end(w)))[:rank] for w in history["weights"]])
        targets = to_numpy(singular_values(problem_of(config).target))[:rank]
        panels.append({"title": f"{problem}, d={config.d}, r={rank}", "steps": history["step"],
                       "values": values, "targets": targets})
        reach = [next((s for s, v in zip(history["step"], values[:, i]) if v >= 0.9 * targets[i]), None)
                 for i in range(rank)]
        numbers[problem] = {"steps_to_90pct": reach,
                            "in_order": all(a is not None and b is not None and a < b for a, b in zip(reach, reach[1:]))}
    plots.plot_incremental(panels, path, "incremental learning: singular values of the wide DLN's X(t)")
    return numbers


#: Outer-layer scales of the ablation (the paper: 0.5 to 9.75).
ALPHAS = (1.0, 2.0, 5.0, 10.0)


@figure("alpha_ablation")
def alpha_ablation(size, path):
    """Steps to 1e-3 of the compressed DLN for each alpha (completion), against the wide DLN."""
    config = setup(size, "completion", tol=1e-3, **({"fraction": 0.2} if size == "full" else {})).resolved()
    problem, starts = build(config)
    wide = gradient_descent(problem, starts["wide"][0], config.lr, config.steps, tol=1e-3)
    steps = []
    for alpha in ALPHAS:
        try:
            run = gradient_descent(problem, starts["compressed"][0], config.lr, config.steps,
                                   outer_lr_scale=alpha, tol=1e-3)
            steps.append(run.history.first_below(1e-3))
        except DivergenceError:
            steps.append(None)
    wide_steps = wide.history.first_below(1e-3)
    plots.plot_alpha_ablation(ALPHAS, steps, wide_steps, path,
                              f"completion, d={config.d}, r={config.rank}, p={config.fraction}, "
                              f"lr={config.lr:g}, L={config.depth}")
    return {"alphas": list(ALPHAS), "compressed_steps": steps, "wide_steps": wide_steps}


DEPTHS = (2, 3)
#: The official depth notebook: completion, d=100, r=10, 30% observed, eps 1e-2, lr 50, alpha 2 (compressed),
#: 500 x 50 = 25,000 steps, the losses recorded every 50 steps.
DEPTH_SETUPS = {
    "quick": CompareConfig(problem="completion", d=30, rank=3, fraction=0.5, lr=6.0, outer_lr_scale=2.0,
                           steps=5000, record_every=50),
    "full": CompareConfig(problem="completion", d=100, rank=10, fraction=0.3, lr=50.0, outer_lr_scale=2.0,
                          steps=25000, record_every=50),
}
#: The training loss at which the notebook's runs count as converged (its tol is 1e-12; 1e-10 is reached
#: by every depth-3 run before the loss flattens at round-off).
DEPTH_LOSS_REACHED = 1e-10
#: The notebook's depth-2 compressed network starts from the unscaled factors [V_w^T, U_w] (eps = 1),
#: unlike dlnref's C-DLN (eps); that run is drawn too, so that like is compared with like.
NOTEBOOK_DEPTH2_SCALE = 1.0


@figure("depth")
def depth(size, path):
    """Training loss and unobserved-entry loss against step at L = 2, 3 (completion), as the official notebook."""
    base = DEPTH_SETUPS[size]
    curves, numbers = [], {"depths": list(DEPTHS), "steps": base.steps, "runs": {}}
    for L in DEPTHS:
        problem, starts = build(dataclasses.replace(base, depth=L))
        if L == 2:
            starts["compressed, notebook init (eps=1)"] = (
                compress(problem, L, base.resolved().width, NOTEBOOK_DEPTH2_SCALE), base.outer_lr_scale)
        to_test_loss = _unobserved_loss_factor(problem)
        for name, (weights, alpha) in starts.items():
            label = f"{name}, L={L}"
            try:
                run = gradient_descent(problem, weights, base.lr, base.steps, outer_lr_scale=alpha,
                                       record_every=base.record_every)
            except DivergenceError as error:
                numbers["runs"][label] = {"diverged_at": error.step}
                continue
            h = run.history
            test_loss = [to_test_loss * e**2 for e in h["unobserved_error"]]
            curves.append({"label": label, "network": name.split(",")[0], "depth": L, "steps": h["step"],
                           "loss": h["loss"], "test_loss": test_loss, "notebook_init": "notebook" in name})
            numbers["runs"][label] = {
                "steps_to_loss_1e-10": h.first_below(DEPTH_LOSS_REACHED, column="loss"),
                "final_loss": h["loss"][-1], "final_test_loss": test_loss[-1],
                "final_unobserved_error": h["unobserved_error"][-1]}
    plots.plot_depth(curves, path,
                     f"completion, d={base.d}, r={base.rank}, p={base.fraction}, eps={base.scale:g}, lr={base.lr:g}, "
                     f"alpha={base.outer_lr_scale:g} (compressed)")
    return numbers


def _unobserved_loss_factor(problem):
    """``c`` with the notebook's test loss ``||P_Omega^c(X - M)||^2 / (2 |Omega^c|) = c e^2``, e the unobserved error."""
    target, mask = to_numpy(problem.target), to_numpy(problem.mask)
    return float(np.sum(target[~mask] ** 2)) / (2 * int(np.sum(~mask)))


#: Image completion: rows/columns kept (every k-th), steps, init scale.
IMAGE_SIZES = {"quick": (4, 3000), "full": (2, 8000)}
IMAGE_SCALE = 0.1
IMAGE_DEPTH = 3


def image_width(surrogate):
    """Compressed width for a real matrix: ``2 r`` with r the singular values of the
    surrogate above twice their median (the median is the noise floor that random
    subsampling spreads over the spectrum)."""
    s = to_numpy(singular_values(surrogate))
    return 2 * max(1, int(np.sum(s > 2 * np.median(s))))


def image_lr(problem, depth):
    """Half the stable step: ``lr / |Omega| = 1 / (L s_1^(2 - 2/L))`` with s_1 of the surrogate."""
    s1 = float(to_numpy(singular_values(problem.surrogate()))[0])
    return problem.observed / (depth * s1 ** (2 - 2 / depth))


def _image(name):
    def make(size, path):
        step, steps = IMAGE_SIZES[size]
        M = sample_matrix(name, downsample=step)
        problem = MatrixCompletion(M, random_mask(M.shape, 0.3, seed=0))
        width = image_width(problem.surrogate())
        lr = image_lr(problem, IMAGE_DEPTH)
        m, n = M.shape
        starts = {"wide": init_weights([n] + [min(m, n)] * (IMAGE_DEPTH - 1) + [m], IMAGE_SCALE, seed=1),
                  "compressed": compress(problem, IMAGE_DEPTH, width, IMAGE_SCALE)}
        observed = to_numpy(problem.mask)
        fill = np.full(M.shape, M[observed].mean())
        recoveries, numbers = {}, {"shape": [m, n], "width": width, "lr": lr, "steps": steps,
                                   "mean_fill_error": float(problem.unobserved_error(fill))}
        for net, weights in starts.items():
            run = gradient_descent(problem, weights, lr, steps, record_every=max(1, steps // 100))
            error, seconds = run.history["unobserved_error"][-1], run.history["seconds"][-1]
            recoveries[f"{net} DLN"] = (to_numpy(end_to_end(run.weights)),
                                        f"unobserved error {error:.3f}, {seconds:.1f} s")
            errors = run.history["unobserved_error"]
            best = min(range(len(errors)), key=errors.__getitem__)
            numbers[net] = {"unobserved_error": error, "seconds": seconds, "best_unobserved_error": errors[best],
                            "best_step": run.history["step"][best]}
        plots.plot_image_completion(M, observed, recoveries, path,
                                    f"{name} ({m}x{n}), 30% observed, L={IMAGE_DEPTH}, width {width}, "
                                    f"{steps} steps")
        return numbers
    return make


for _name in ("grace_hopper", "jacksboro_fault_dem"):
    figure(f"image_{_name}")(_image(_name))


@figure("mlp_update_rank")
def mlp_update_rank(size, path):
    """Every layer of the wide MLP on the digits: the spectrum of W_l(T) - W_l(0) and its energy in the top k."""
    from ..nn.plots import plot_update_rank
    from .classify import update_rank_run

    config, layout, reports, accuracy = update_rank_run(size)
    plot_update_rank(reports, path, f"digits MLP, h={config.hidden}, linear block of depth {config.depth}, "
                     f"lr={config.lr:g}, {config.steps} steps (test accuracy {accuracy:.3f}): updates of every layer")
    return {"test_accuracy": accuracy, "layers": [
        {key: report[key] for key in ("label", "k", "energy_top_k", "ratio_k1", "captured", "left_angle",
                                      "right_angle")} for report in reports]}


def make_figures(size="full", only=None, out="figures", progress=None, executor=None):
    """Draw the figures and refresh ``out/numbers.json`` and ``out/README.md``.

    Quick figures are refused in a folder whose ``numbers.json`` holds
    full-size ones, so that a quick run cannot replace the committed figures.

    Parameters
    ----------
    size : {"quick", "full"}
    only : sequence of str or None
        Names from :data:`FIGURES`; None draws all.
    out : str or os.PathLike
        Folder of the PNGs, created if needed.
    progress : callable or None
        Called with each figure's name before it is drawn (without ``executor``).
    executor : executor of :func:`dlnref.experiments.executor.open_executor` or None
        Draw the groups of figures (:data:`GROUPS`) as its tasks.

    Returns
    -------
    dict
        Figure name -> the numbers it reported.
    """
    names = list(FIGURES) if not only else list(only)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise InputError(f"--only {unknown[0]!r}: the figures are {', '.join(FIGURES)}")
    os.makedirs(out, exist_ok=True)
    store = os.path.join(out, "numbers.json")
    numbers = _stored_numbers(store)
    full = sorted(name for name, entry in numbers.items() if isinstance(entry, dict) and entry.get("size") == "full")
    if size == "quick" and full:
        raise InputError(f"the folder {out} holds full-size figures ({', '.join(full)}), which quick ones would "
                         "replace; write quick figures into another folder (by default dlnref figures --quick "
                         "writes to figures-quick)")
    try:   # the index is rewritten from every stored entry: check them before any figure is drawn
        index_text(numbers)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise InputError(f"{store} holds entries that dlnref figures did not write ({type(error).__name__}: "
                         f"{error}); delete it, or write into another folder") from None
    if executor is None:
        drawn = _draw_here(size, names, out, progress)
    else:
        from .figures_parallel import draw_on

        drawn = draw_on(executor, size, names, out)
    for name, result in drawn:
        numbers[name] = {"size": size, **result}
        with atomic_path(store) as tmp, open(tmp, "w") as f:
            json.dump(numbers, f, indent=1, default=json_default)
        write_index(numbers, out)
    return {name: numbers[name] for name in names}


def _draw_here(size, names, out, progress):
    """Yield ``(name, numbers)`` for each figure, drawn in this process into ``out``."""
    for name in names:
        if progress is not None:
            progress(name)
        start = time.perf_counter()
        yield name, {**FIGURES[name](size, os.path.join(out, f"{name}.png")),
                     "made_in_seconds": round(time.perf_counter() - start, 1)}


def _stored_numbers(store):
    """The numbers already in ``store`` (a ``numbers.json``), or an empty dict when there is none."""
    if not os.path.exists(store):
        return {}
    with open(store) as f:
        try:
            numbers = json.load(f)
        except json.JSONDecodeError as error:
            raise InputError(f"{store} is not valid JSON ({error}); delete it or write elsewhere") from None
    if not isinstance(numbers, dict):
        raise InputError(f"{store} should map figure names to their numbers, got a {type(numbers).__name__}")
    return numbers
