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


def test_random_split(tmp_path):
    path, R, pairs = _write_ratings(tmp_path)
    ratings = load_movielens(path, test_fraction=0.25, seed=1)
    assert ratings.matrix.shape == (pairs[:, 0].max() + 1, pairs[:, 1].max() + 1)
    known = np.zeros(R.shape, dtype=bool)
    known[pairs[:, 0], pairs[:, 1]] = True
    np.testing.assert_array_equal(ratings.matrix, np.where(known, R, 0)[: ratings.matrix.shape[0], : ratings.matrix.shape[1]])
    assert not (ratings.train & ratings.test).any()
    assert (ratings.train | ratings.test).sum() == len(pairs)
    assert ratings.test.sum() == int(0.25 * len(pairs))
    again = load_movielens(path, test_fraction=0.25, seed=1)
    np.testing.assert_array_equal(again.test, ratings.test)


def test_standard_split_files(tmp_path):
    path, _, pairs = _write_ratings(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    (tmp_path / "u1.base").write_text("".join(lines[:-10]))
    (tmp_path / "u1.test").write_text("".join(lines[-10:]))
    ratings = load_movielens(path, split="u1")
    assert ratings.test.sum() == 10 and ratings.train.sum() == len(pairs) - 10


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
    train = np.array([[True, False, True], [False, True, False]])
    test = np.array([[False, True, False], [True, False, False]])
    problem = dlnref.MatrixCompletion(M, train, test)
    X = M + np.array([[0.0, 1.0, 0.0], [3.0, 0.0, 5.0]])
    assert float(problem.test_rmse(X)) == pytest.approx(np.sqrt((1 + 9) / 2))
    assert problem.metrics(X)["test_rmse"] == pytest.approx(np.sqrt(5))


def test_compare_on_ratings_file(tmp_path, capsys):
    path, _, _ = _write_ratings(tmp_path)
    m, n = load_movielens(path).matrix.shape
    args = ["compare", "--data", str(path), "--rank", "2", "--lr", "1", "--scale", "0.1", "--steps", "300",
            "--quiet", "--json", "--plot", str(tmp_path / "ml.png")]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    k = min(m, n)
    assert out["wide"]["params"] == n * k + k * k + k * m
    assert out["compressed"]["params"] == 4 * n + 4 * 4 + m * 4
    for name in ("wide", "compressed"):
        # From a near-zero init the test RMSE starts at the ratings' RMS (about 3) and must fall well below it.
        assert out[name]["best_test_rmse"] < 1.5
        assert out[name]["best_test_rmse"] <= out[name]["final_test_rmse"]
    assert (tmp_path / "ml.png").stat().st_size > 10_000
