import dataclasses
import json

import numpy as np
import pytest

import dlnref
from dlnref.cli import main
from dlnref.data import load_movielens


def _write_ratings(folder, users=30, items=40, rank=2, density=0.5, seed=0):
    """A MovieLens-format file of a rank-``rank`` rating matrix, rounded to 1..5 (known answer)."""
    rng = np.random.default_rng(seed)
    R = np.clip(np.rint(3 + rng.standard_normal((users, rank)) @ rng.standard_normal((rank, items)) / 2), 1, 5)
    pairs = np.argwhere(rng.random((users, items)) < density)
    path = folder / "u.data"
    path.write_text("".join(f"{u + 1}\t{i + 1}\t{int(R[u, i])}\t{881250949 + k}\n" for k, (u, i) in enumerate(pairs)))
    return path, R, pairs


def _as_set(entries):
    return {(int(r), int(c), float(v)) for r, c, v in zip(*entries)}


def test_random_split(tmp_path):
    path, R, pairs = _write_ratings(tmp_path)
    ratings = load_movielens(path, test_fraction=0.25, seed=1)
    assert ratings.shape == (pairs[:, 0].max() + 1, pairs[:, 1].max() + 1)
    train, test = _as_set(ratings.train), _as_set(ratings.test)
    assert train | test == {(int(u), int(i), float(R[u, i])) for u, i in pairs}
    assert not train & test
    assert len(test) == int(0.25 * len(pairs))
    again = load_movielens(path, test_fraction=0.25, seed=1)
    assert _as_set(again.test) == test


def test_standard_split_files(tmp_path):
    path, _, pairs = _write_ratings(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    (tmp_path / "u1.base").write_text("".join(lines[:-10]))
    (tmp_path / "u1.test").write_text("".join(lines[-10:]))
    ratings = load_movielens(path, split="u1")
    assert len(ratings.test.rows) == 10 and len(ratings.train.rows) == len(pairs) - 10


def test_missing_split_file_is_named(tmp_path):
    path, _, _ = _write_ratings(tmp_path)
    (tmp_path / "u1.base").write_text(path.read_text())
    with pytest.raises(ValueError, match=r"split file .*u1\.test is missing"):
        load_movielens(path, split="u1")


def test_long_malformed_line_is_quoted_short(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("1\t2\t3\t4\n" + "x" * 1_000_000 + "\n")
    with pytest.raises(ValueError, match=r"line 2: .*'x{60}' \.\.\. \(1000000 characters\)") as info:
        load_movielens(path)
    assert len(str(info.value)) < 400


def test_absurd_ids_are_rejected_before_allocating(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("1\t2\t3\t4\n100000000\t2\t3\t4\n")
    with pytest.raises(ValueError, match=r"line 2: user id 100000000 .* exceeds 10,000,000"):
        load_movielens(path)


@pytest.mark.parametrize(
    "line, match",
    [("1\t2\t3\n2\tx\t4\t5\n", "line 1"), ("1\t2\t3\t4\n2\tx\t4\t5\n", "line 2"), ("1\t2\t9\t4\n", "line 1"),
     ("0\t2\t3\t4\n", "line 1")],
)
def test_malformed_lines_name_the_line(tmp_path, line, match):
    path = tmp_path / "u.data"
    path.write_text(line)
    with pytest.raises(ValueError, match=match):
        load_movielens(path)


def test_duplicates_and_bad_split(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("1\t2\t3\t4\n1\t2\t4\t5\n")
    with pytest.raises(ValueError, match="line 2: user 1 rated item 2 twice"):
        load_movielens(path)
    path.write_text("1\t2\t3\t4\n2\t1\t4\t5\n")
    with pytest.raises(ValueError, match="split must be"):
        load_movielens(path, split="u9")


def test_test_rmse_matches_hand_computation():
    M = np.arange(1.0, 7.0).reshape(2, 3)
    problem = dlnref.SparseCompletion([0, 0, 1], [0, 2, 1], [1.0, 3.0, 5.0], (2, 3),
                                      test=(np.array([0, 1]), np.array([1, 0]), np.array([2.0, 4.0])))
    X = M + np.array([[0.0, 1.0, 0.0], [3.0, 0.0, 5.0]])
    assert problem.errors(problem.evaluate(X))["test_rmse"] == pytest.approx(np.sqrt((1 + 9) / 2))


def test_compare_on_ratings_file(tmp_path, capsys):
    path, _, _ = _write_ratings(tmp_path)
    m, n = load_movielens(path).shape
    args = ["compare", "--data", str(path), "--rank", "2", "--lr", "1", "--scale", "0.1", "--steps", "300",
            "--networks", "wide,compressed", "--quiet", "--json", "--plot", str(tmp_path / "ml.png")]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    k = min(m, n)
    assert out["config"]["depth"] == 2   # ratings' default depth (compare.RATINGS_DEPTH)
    assert out["config"]["sparse_engine"] in ("numpy", "numba")
    assert out["wide"]["params"] == n * k + k * m
    assert out["compressed"]["params"] == 4 * n + m * 4
    for name in ("wide", "compressed"):
        run = out[name]
        # From a near-zero init the RMSEs start at the ratings' RMS (about 3) and must fall well below it.
        assert run["best_validation_rmse"] < 1.5 and run["test_rmse_at_best"] < 1.5
    assert (tmp_path / "ml.png").stat().st_size > 10_000


def test_model_selection_never_reads_the_test_ratings(tmp_path):
    from dlnref.experiments.compare import CompareConfig, build, run_compare

    path, _, _ = _write_ratings(tmp_path, users=40, items=50, density=0.6)
    config = CompareConfig(data=str(path), rank=2, scale=0.1, steps=400, patience=20)
    honest = run_compare(config)["compressed"]
    problem = build(config)[0]
    assert not _as_set(problem.held_out["validation"]) & _as_set(problem.held_out["test"])
    poisoned = tmp_path / "poisoned"
    poisoned.mkdir()
    lines = path.read_text().splitlines()
    test_keys = {(int(r) + 1, int(c) + 1) for r, c, _ in zip(*problem.held_out["test"])}
    rewritten = []
    for line in lines:
        user, item, rating, stamp = line.split("\t")
        bad = (int(user), int(item)) in test_keys
        rewritten.append("\t".join([user, item, str(6 - int(rating)) if bad else rating, stamp]))
    (poisoned / "u.data").write_text("\n".join(rewritten) + "\n")
    changed = run_compare(dataclasses.replace(config, data=str(poisoned / "u.data")))["compressed"]
    assert changed["best_step"] == honest["best_step"] and changed["steps_run"] == honest["steps_run"]
    assert changed["best_validation_rmse"] == honest["best_validation_rmse"]
    assert changed["test_rmse_at_best"] != honest["test_rmse_at_best"]


def test_ratings_default_to_depth_two_and_synthetic_problems_to_the_papers_three():
    from dlnref.experiments.compare import CompareConfig

    assert CompareConfig(data="u.data").resolved().depth == 2
    assert CompareConfig().resolved().depth == 3
    assert CompareConfig(data="u.data", depth=4).resolved().depth == 4
