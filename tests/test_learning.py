"""The dynamics in a student's hands: observations in History, first_above, plot helpers with ax=."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import dlnref  # noqa: E402
from dlnref import plots  # noqa: E402
from dlnref.train import History  # noqa: E402


def test_dynamics_is_reachable_from_the_package():
    assert dlnref.dynamics.singular_values is dlnref.singular_values
    assert dlnref.first_reach_times([0, 5, 9], [[1.0], [2.0], [3.0]], [3.0], 0.6) == [5]
    assert np.allclose(dlnref.singular_values(np.diag([1.0, 3.0, 2.0])), [3.0, 2.0, 1.0])


def test_first_above_and_first_below_on_a_hand_made_history():
    history = History()
    for step, value, seconds in [(0, 0.1, 0.0), (10, 0.5, 0.2), (20, 0.9, 0.4), (30, 0.95, 0.6)]:
        history.append({"step": step, "alignment": value, "seconds": seconds})
    assert history.first_above(0.9, "alignment") == 20
    assert history.first_above(0.5, "alignment", at="seconds") == 0.2
    assert history.first_above(0.96, "alignment") is None
    assert history.first_below(0.1, "alignment") == 0


def test_observed_arrays_are_kept_per_recorded_step():
    problem = dlnref.make_problem("factorization", (8, 8), rank=2, seed=0)
    start = dlnref.init_weights([8] * 4, 0.1, seed=1)

    def observe(step, weights):
        return {"sigma": dlnref.singular_values(dlnref.end_to_end(weights))}

    run = dlnref.gradient_descent(problem, start, lr=5.0, steps=30, record_every=10, observe=observe)
    assert run.history["step"] == [0, 10, 20, 30]
    sigma = np.array(run.history["sigma"])
    assert sigma.shape == (4, 8)
    # Independent route: retrain for 20 steps and take the SVD of the end-to-end matrix.
    again = dlnref.gradient_descent(problem, start, lr=5.0, steps=20, record_every=20)
    assert np.allclose(sigma[2], np.linalg.svd(dlnref.end_to_end(again.weights), compute_uv=False), rtol=1e-12)


def test_plot_helpers_draw_on_the_given_axes_and_return_it():
    fig, axes = plt.subplots(1, 3)
    history = {"step": [0, 1, 2], "seconds": [0.0, 0.1, 0.2], "recovery_error": [1.0, 0.1, 0.01]}
    assert plots.error_curves(history, ax=axes[0], x="seconds", label="run") is axes[0]
    assert np.array_equal(axes[0].lines[0].get_ydata(), history["recovery_error"])
    assert np.array_equal(axes[0].lines[0].get_xdata(), history["seconds"])
    values = np.array([[0.1, 0.0], [1.5, 0.2], [2.0, 0.9]])
    assert plots.singular_value_curves([0, 5, 10], values, [2.0, 1.0], ax=axes[1]) is axes[1]
    curve, target = axes[1].lines[2:4]  # each mode draws its curve, then its target's dashed line
    assert np.array_equal(curve.get_ydata(), values[:, 1]) and list(target.get_ydata()) == [1.0, 1.0]
    moving, fixed = np.ones((3, 2)), np.full((3, 4), 0.01)
    assert plots.layer_singular_values([0, 1, 2], moving, fixed, ax=axes[2]) is axes[2]
    plt.close(fig)


def test_plot_helpers_default_to_the_current_axes():
    fig, ax = plt.subplots()
    assert plots.angle_curves([0, 1], {"angle": [0.0, 1e-3]}) is ax
    assert plots.error_curves({"step": [0, 1], "recovery_error": [1.0, 0.5]}) is ax
    plt.close(fig)


def test_figure_writer_returns_its_figure_and_writes_a_png(tmp_path):
    path = tmp_path / "depth.png"
    curves = [{"label": f"{net}, L=2", "network": net, "depth": 2, "steps": [0, 50], "loss": loss,
               "test_loss": [2 * v for v in loss], "notebook_init": False}
              for net, loss in (("wide", [1e-2, 1e-3]), ("compressed", [1e-3, 1e-4]))]
    fig = plots.plot_depth(curves, path, "depth")
    assert path.read_bytes()[:4] == b"\x89PNG"
    train, test = fig.axes
    assert [list(line.get_ydata()) for line in train.lines] == [[1e-2, 1e-3], [1e-3, 1e-4]]
    assert [list(line.get_ydata()) for line in test.lines] == [[2e-2, 2e-3], [2e-3, 2e-4]]


@pytest.mark.parametrize("column", ["loss", "recovery_error"])
def test_error_curves_plots_a_training_history(column):
    problem = dlnref.make_problem("completion", (10, 10), rank=2, seed=0)
    run = dlnref.gradient_descent(problem, dlnref.compress(problem, 3), lr=5.0, steps=20, record_every=5)
    fig, ax = plt.subplots()
    plots.error_curves(run.history, ax=ax, column=column)
    assert np.array_equal(ax.lines[0].get_ydata(), run.history[column])
    plt.close(fig)


def test_documented_dynamics_example_runs(tmp_path, monkeypatch):
    from documented import code_blocks

    block = next(b for b in code_blocks("python") if "observe=observe" in b)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(block, "docs/guide/library.md", "exec"), namespace)
    plt.close("all")
    times = namespace["times"]
    assert all(t is not None for t in times) and times == sorted(set(times))
    assert namespace["run"].history.first_above(0.9 * namespace["targets"][0], "sigma_1") == times[0]
    assert (tmp_path / "dynamics.png").read_bytes()[:4] == b"\x89PNG"


def test_save_writes_and_closes_a_pyplot_figure_but_not_a_plain_one(tmp_path):
    fig, _ = plt.subplots()
    plots.save(fig, tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG" and not plt.fignum_exists(fig.number)
    before = plt.get_fignums()
    plots.save(matplotlib.figure.Figure(), tmp_path / "b.png")
    assert (tmp_path / "b.png").exists() and plt.get_fignums() == before
