import json

import numpy as np
import pytest

from dlnref import MatrixCompletion, random_mask
from dlnref.cli import main
from dlnref.data import sample_matrix
from dlnref.experiments.figures import FIGURES, image_lr, image_width


def test_quick_figures_are_all_drawn_with_an_index(tmp_path, capsys):
    assert main(["figures", "--quick", "--out", str(tmp_path), "--quiet"]) == 0
    for name in FIGURES:
        png = tmp_path / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"
        assert 10_000 < png.stat().st_size < 300_000, name
    numbers = json.loads((tmp_path / "numbers.json").read_text())
    assert set(numbers) == set(FIGURES)
    index = (tmp_path / "README.md").read_text()
    for name in FIGURES:
        assert f"## {name}" in index and f"({name}.png)" in index
    # The reduced factorization run learns its modes in order, and the complement stays fixed to rounding.
    assert numbers["incremental_learning"]["factorization"]["in_order"]
    assert numbers["layer_spectrum"]["max_fixed_angle"] < 1e-8


def test_only_one_figure_keeps_the_others_numbers(tmp_path):
    assert main(["figures", "--quick", "--out", str(tmp_path), "--quiet", "--only", "trajectory_sensing"]) == 0
    assert main(["figures", "--quick", "--out", str(tmp_path), "--quiet", "--only", "alpha_ablation"]) == 0
    assert set(json.loads((tmp_path / "numbers.json").read_text())) == {"trajectory_sensing", "alpha_ablation"}
    assert main(["figures", "--quick", "--out", str(tmp_path), "--quiet", "--only", "nope"]) == 2


def test_sample_matrices_and_image_rules():
    M = sample_matrix("jacksboro_fault_dem", downsample=4)
    assert M.shape == (86, 101) and M.min() == 0.0 and M.max() == 1.0
    assert sample_matrix("grace_hopper").shape == (600, 512)
    problem = MatrixCompletion(M, random_mask(M.shape, 0.3, seed=0))
    s = np.linalg.svd(problem.surrogate(), compute_uv=False)
    assert image_width(problem.surrogate()) == 2 * int(np.sum(s > 2 * np.median(s)))
    assert image_lr(problem, 3) == pytest.approx(problem.observed / (3 * s[0] ** (4 / 3)), rel=1e-12)


def test_depth_figure_unobserved_loss_is_the_notebooks_test_loss():
    """c e^2 (e the unobserved error) equals the notebook's ||P_c(X - M)||^2 / (2 |c|), computed directly."""
    import dlnref
    from dlnref.experiments.figures import _unobserved_loss_factor

    problem = dlnref.make_problem("completion", (7, 5), rank=2, fraction=0.4, seed=3)
    X = np.random.default_rng(1).standard_normal((7, 5))
    unobserved = ~problem.mask
    direct = np.sum((X - problem.target)[unobserved] ** 2) / (2 * np.sum(unobserved))
    e = float(problem.unobserved_error(X))
    assert _unobserved_loss_factor(problem) * e**2 == pytest.approx(direct, rel=1e-12)
