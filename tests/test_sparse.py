"""Completion from observed entries against the dense completion on the same entries."""

import sys

import numpy as np
import pytest
from helpers import central_difference_gradient

import dlnref
from dlnref.problems.sparse import SparseCompletion, gather_product, sample_positions, synthetic_completion


def _pair(m=9, n=7, rank=2, fraction=0.4, seed=0):
    dense = dlnref.make_problem("completion", (m, n), rank, fraction=fraction, seed=seed)
    U, s, Vh = np.linalg.svd(dense.target)
    sparse = SparseCompletion.from_dense(dense.target, dense.mask, target_factors=(U[:, :rank] * s[:rank], Vh[:rank]))
    return dense, sparse


def test_loss_gradient_and_errors_agree_with_the_dense_problem():
    dense, sparse = _pair()
    rng = np.random.default_rng(1)
    left, right = rng.standard_normal((9, 3)), rng.standard_normal((3, 7))
    X = left @ right
    loss, grad = dense.loss_and_gradient(X)
    ours = sparse.evaluate(left, right)
    assert float(ours.loss) == pytest.approx(float(loss), rel=1e-12)
    np.testing.assert_allclose(ours.gradient.toarray(), grad, rtol=1e-12, atol=1e-15)
    expected = dense.errors(dense.evaluate(left, right))
    got = sparse.errors(ours)
    assert got.keys() == expected.keys() == {"recovery_error", "unobserved_error"}
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-12)
    np.testing.assert_allclose(sparse.surrogate().toarray(), dense.surrogate(), rtol=1e-13)
    assert sparse.curvature(X[:, 0] / 3, X[0] / 3) == pytest.approx(dense.curvature(X[:, 0] / 3, X[0] / 3), rel=1e-12)


def test_gradient_matches_central_differences():
    _, sparse = _pair()
    X = np.random.default_rng(2).standard_normal(sparse.shape)
    fd = central_difference_gradient(lambda x: float(sparse.loss(x)), X, h=1e-2)
    np.testing.assert_allclose(sparse.gradient(X).toarray(), fd, rtol=0, atol=1e-9 * np.abs(fd).max())


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_training_agrees_with_the_dense_path(depth):
    dense, sparse = _pair(12, 10, 2, 0.5)
    weights = dlnref.compress(dense, depth, 4, scale=0.3)
    runs = [dlnref.gradient_descent(p, weights, 0.5, 40, outer_lr_scale=2.0) for p in (dense, sparse)]
    for a, b in zip(runs[0].weights, runs[1].weights):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    for column in ("loss", "recovery_error", "unobserved_error"):
        np.testing.assert_allclose(runs[1].history[column], runs[0].history[column], rtol=1e-12)


def test_compress_matches_the_dense_spectral_init():
    dense, sparse = _pair(12, 10, 2, 0.5)
    for a, b in zip(dlnref.compress(dense, 3, 4), dlnref.compress(sparse, 3, 4)):
        np.testing.assert_allclose(b, a, atol=1e-12)


def test_gather_product_and_exact_recovery_error_from_factors():
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((30, 4)), rng.standard_normal((4, 20))
    rows, cols = rng.integers(0, 30, 50), rng.integers(0, 20, 50)
    np.testing.assert_allclose(gather_product(A, B, rows, cols), (A @ B)[rows, cols], rtol=1e-13)
    problem = synthetic_completion((30, 20), 2, 0.3, seed=0)
    M = problem.target_factors[0] @ problem.target_factors[1]
    left, right = rng.standard_normal((30, 3)), rng.standard_normal((3, 20))
    errors = problem.errors_at(left, right)
    assert errors["recovery_error"] == pytest.approx(np.linalg.norm(left @ right - M) / np.linalg.norm(M), rel=1e-12)
    unseen = np.ones((30, 20), dtype=bool)
    unseen[problem.rows, problem.cols] = False
    expected = np.linalg.norm((left @ right - M)[unseen]) / np.linalg.norm(M[unseen])
    assert errors["unobserved_error"] == pytest.approx(expected, rel=1e-10)


def test_synthetic_problem_is_the_stated_target_and_sample():
    problem = synthetic_completion((40, 50), 3, 0.25, seed=5)
    A, B = problem.target_factors
    s = np.linalg.svd(A @ B, compute_uv=False)
    np.testing.assert_allclose(s[:3], (np.sqrt(40) + np.sqrt(50)) * np.array([1, 5 / 6, 4 / 6]), rtol=1e-12)
    assert problem.observed == 500 and problem.rank == 3
    assert len(set(zip(problem.rows.tolist(), problem.cols.tolist()))) == 500
    np.testing.assert_allclose(problem.values, (A @ B)[problem.rows, problem.cols], rtol=1e-12)
    rows, cols = sample_positions((1000, 1000), 5000, np.random.default_rng(0))
    assert len(set(zip(rows.tolist(), cols.tolist()))) == 5000 and rows.max() < 1000 and cols.max() < 1000


@pytest.mark.parametrize(
    "args, match",
    [(([0, 1], [0], [1.0, 2.0], (2, 2)), "1-D of one length"),
     (([0, 2], [0, 1], [1.0, 2.0], (2, 2)), r"rows must lie in \[0, 2\)"),
     (([0, 0], [1, 1], [1.0, 2.0], (2, 2)), r"\(0, 1\) twice"),
     (([0], [0], [np.nan], (2, 2)), "finite")],
)
def test_bad_entries_raise(args, match):
    with pytest.raises(ValueError, match=match):
        SparseCompletion(*args)


def _skewed(monkeypatch):
    """A problem cut into 5 runs of rows: empty rows, and one row of half the entries, inside which the
    entry-balanced cut points fall (20 entries per run were asked; MAX_PARTS caps the count)."""
    monkeypatch.setattr(dlnref.problems.sparse, "PART_MIN_ENTRIES", 20)
    monkeypatch.setattr(dlnref.problems.sparse, "MAX_PARTS", 5)
    rng = np.random.default_rng(4)
    mask = rng.random((30, 60)) < 0.15
    mask[[0, 3, 4, 17, 29]] = False   # empty rows, the first and the last among them
    mask[10] = True                   # 60 of the entries in row 10
    A, B = rng.standard_normal((30, 2)), rng.standard_normal((2, 60))
    return SparseCompletion.from_dense(A @ B, mask, target_factors=(A, B))


def test_runs_of_rows_cover_every_row_once(monkeypatch):
    problem = _skewed(monkeypatch)
    parts = problem._parts
    assert len(parts) == 6 and parts[0] == 0 and parts[-1] == 30 and np.all(np.diff(parts) >= 0)
    assert 11 in parts and 10 in parts  # row 10, where the cuts fall, is one run of its own


def _engine(name):
    """``name``, skipping the test where it is "numba" and numba is not installed."""
    if name == "numba":
        pytest.importorskip("numba")
    return name


@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("threads", [2, 3, 5, 8])
def test_threads_give_the_same_bits_as_one_thread(monkeypatch, threads, engine):
    problem = _skewed(monkeypatch)
    problem.engine = _engine(engine)
    rng = np.random.default_rng(5)
    left, right = rng.standard_normal((30, 4)), rng.standard_normal((4, 60))
    A, B = rng.standard_normal((3, 30)), rng.standard_normal((60, 3))

    def run(t):
        problem.threads = t
        ev = problem.evaluate(left, right)
        row = [float(ev.loss), ev.gradient.data.copy(), dlnref.problems.sparse.gradient_times(ev.gradient, B, problem._parts, t),
               dlnref.problems.sparse.times_gradient(A, ev.gradient, problem._parts, t), problem.errors(ev)["recovery_error"]]
        factored = problem.evaluate(left, right, factored=True).gradient   # (G right^T, left^T G)
        return row + [factored.left, factored.right]

    one, many = run(1), run(threads)
    for a, b in zip(one, many):
        np.testing.assert_array_equal(b, a)
    M = problem.target_factors[0] @ problem.target_factors[1]
    G = np.zeros((30, 60))
    G[problem.rows, problem.cols] = (left @ right - M)[problem.rows, problem.cols] / problem.observed
    for got, want in zip(many[2:4] + many[5:], (G @ B, A @ G, G @ right.T, left.T @ G)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    weights = dlnref.compress(problem, 3, 4, scale=0.3)
    runs = []
    for t in (1, threads):
        problem.threads = t
        runs.append(dlnref.gradient_descent(problem, weights, 0.2, 10, outer_lr_scale=2.0))
    for a, b in zip(*(r.weights for r in runs)):
        np.testing.assert_array_equal(b, a)


def test_threads_setting():
    assert synthetic_completion((20, 20), 2, 0.3, threads=3, engine="numpy").threads == 3
    assert synthetic_completion((20, 20), 2, 0.3, engine="numpy").engine == "numpy"
    problem = synthetic_completion((20, 20), 2, 0.3, seed=0)
    assert problem.threads == dlnref.problems.sparse.default_threads() >= 1
    assert SparseCompletion(problem.rows, problem.cols, problem.values, (20, 20), threads=3).threads == 3
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        problem.threads = 0


def _kernel_problems(monkeypatch):
    """Small problems for the numba engine: rectangular, empty rows, a heavy row, one run or several."""
    rng = np.random.default_rng(6)
    mask = rng.random((17, 40)) < 0.3
    mask[[0, 5, 16]] = False   # empty rows, the first and the last among them
    mask[8] = True             # a heavy row
    A, B = rng.standard_normal((17, 2)), rng.standard_normal((2, 40))
    tall = dlnref.problems.sparse.synthetic_completion((50, 12), 2, 0.4, seed=1)
    return [SparseCompletion.from_dense(A @ B, mask, target_factors=(A, B)), tall, _skewed(monkeypatch)]


@pytest.mark.parametrize("width", [1, 4, 12])
def test_numba_engine_agrees_with_numpy_and_the_dense_formulas(monkeypatch, width):
    pytest.importorskip("numba")
    for problem in _kernel_problems(monkeypatch):
        m, n = problem.shape
        rng = np.random.default_rng(width)
        left, right = rng.standard_normal((m, width)), rng.standard_normal((width, n))
        got = {}
        for engine in ("numpy", "numba"):
            problem.engine = engine
            plain, factored = problem.evaluate(left, right), problem.evaluate(left, right, factored=True)
            got[engine] = (float(plain.loss), plain.gradient.toarray(), problem._buffers["residual"].copy(),
                           float(factored.loss), factored.gradient.left, factored.gradient.right)
        for a, b in zip(got["numpy"], got["numba"]):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15)
        G = got["numba"][1]
        M = problem.target_factors[0] @ problem.target_factors[1]
        np.testing.assert_allclose(G[problem.rows, problem.cols] * problem.observed,
                                   (left @ right - M)[problem.rows, problem.cols], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(got["numba"][4], G @ right.T, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(got["numba"][5], left.T @ G, rtol=1e-12, atol=1e-15)


def test_training_with_either_engine_agrees(monkeypatch):
    pytest.importorskip("numba")
    for problem in _kernel_problems(monkeypatch):
        weights = dlnref.compress(problem, 3, 4, scale=0.3)
        runs = []
        for engine in ("numpy", "numba"):
            problem.engine = engine
            runs.append(dlnref.gradient_descent(problem, weights, 0.2, 20, outer_lr_scale=2.0))
        for a, b in zip(*(r.weights for r in runs)):
            np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(runs[1].history["loss"], runs[0].history["loss"], rtol=1e-11)


def test_engine_setting(monkeypatch):
    problem = synthetic_completion((20, 20), 2, 0.3, seed=0)
    with pytest.raises(ValueError, match="engine must be one of 'auto', 'numpy', 'numba', got 'fortran'"):
        problem.engine = "fortran"
    assert SparseCompletion(problem.rows, problem.cols, problem.values, (20, 20), engine="numpy").engine == "numpy"
    monkeypatch.setitem(sys.modules, "numba", None)   # numba then fails to import
    monkeypatch.setitem(sys.modules, "dlnref.problems._sparse_kernel", None)
    problem.engine = "auto"
    assert problem.engine == "numpy"
    with pytest.raises(ValueError, match=r'pip install "dlnref\[fast\]"'):
        problem.engine = "numba"


def test_engine_auto_takes_numba_where_it_imports():
    pytest.importorskip("numba")
    assert synthetic_completion((20, 20), 2, 0.3, seed=0).engine == "numba"
