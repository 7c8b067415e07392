"""compare's network selection, the given lr, clear messages where nothing can be fitted, and real-data scale."""

import json

import numpy as np
import pytest
from movielens_synthetic import write_movielens_like

import dlnref
from dlnref.cli import main
from dlnref.experiments.compare import CompareConfig, build, run_compare


def test_given_lr_is_used_verbatim_and_networks_select_rows():
    config = CompareConfig(d=20, rank=2, lr=10.0, steps=60, networks=("compressed",), als=False)
    result = run_compare(config)
    assert set(result) == {"config", "compressed"}
    assert result["config"]["lr"] == 10.0 and result["config"]["lr_rule"] == "given"
    problem, starts = build(config)
    weights, alpha = starts["compressed"]
    assert alpha == 5.0
    run = dlnref.gradient_descent(problem, weights, 10.0, 60, outer_lr_scale=5.0)
    np.testing.assert_array_equal(result["compressed"]["history"]["loss"], run.history["loss"])


def test_auto_lr_is_printed(capsys):
    assert main(["compare", "--d", "20", "--rank", "2", "--steps", "30", "--networks", "compressed", "--no-plot"]) == 0
    err = capsys.readouterr().err
    lr = dlnref.auto_lr(build(CompareConfig(d=20, rank=2))[0], 3, 5.0)
    assert f"lr {lr:.4g} (lr=auto" in err and "[compressed] about" in err and "ms a step" in err


def test_width_below_rank_is_refused(capsys):
    assert main(["compare", "--d", "20", "--rank", "3", "--width", "2", "--quiet", "--no-plot"]) == 2
    assert "--width 2 is below --rank 3" in capsys.readouterr().err


def test_fraction_one_says_there_is_nothing_held_out(capsys):
    assert main(["compare", "--d", "20", "--rank", "2", "--fraction", "1", "--steps", "20", "--no-plot",
                 "--networks", "compressed"]) == 0
    assert "every entry is observed (fraction 1)" in capsys.readouterr().err


def test_bad_networks_are_a_usage_error(capsys):
    assert main(["compare", "--networks", "wide,deep"]) == 2
    assert "comma-separated selection of wide,compressed" in capsys.readouterr().err


def test_large_completion_runs_from_observed_entries():
    problem, starts = build(CompareConfig(d=2500, rank=2, fraction=0.01, networks=("compressed",)))
    assert isinstance(problem, dlnref.SparseCompletion) and problem.observed == 62500
    assert starts["compressed"][0][0].shape == (4, 2500)


@pytest.mark.slow
def test_movielens_like_ratings_with_defaults(tmp_path, capsys):
    path = write_movielens_like(tmp_path / "u.data")
    assert main(["compare", "--data", str(path), "--json", "--no-plot", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"config", "compressed", "als"}
    assert out["compressed"]["test_rmse_at_best"] <= 0.95


@pytest.mark.parametrize("problem, lr, alpha", [
    ("factorization", 1.0, 1.0), ("completion", 10.0, 5.0), ("sensing", 20.0 / 4000, 1.0),
])
def test_full_setups_keep_the_papers_step_sizes(problem, lr, alpha):
    """The full-size runs behind `check --full` and the figures are the paper's (PAPER.md's table), not lr="auto"."""
    from dlnref.experiments.compare import setup

    config = setup("full", problem).resolved()
    assert (config.lr, config.outer_lr_scale) == (lr, alpha)
