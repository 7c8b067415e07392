"""The exact (law-of-parsimony) compression against the wide network it compresses.

The independent route is the wide network itself, trained by
:func:`dlnref.gradient_descent`; the tolerance is the rounding bound derived in
``theory_checks/exact_compression.py``.
"""

import dataclasses

import numpy as np
import pytest
from conftest import host
from hypothesis import given, settings
from hypothesis import strategies as st

import dlnref
from dlnref import testing as dst
from dlnref.compress_exact import exact_step, subspace_gradient
from theory_checks.exact_compression import side_by_side, worst

STEPS = 200
#: The two 200-step properties run a share of the profile's examples (ci: 10 and 6; thorough: 200 and 125).
SHARE = settings.default.max_examples


def _wide(case):
    d = case.problem.shape[0]
    return dlnref.init_weights([d] * (case.depth + 1), case.scale, seed=case.seed)


@settings(max_examples=SHARE * 2 // 5)
@given(case=dst.factorization_cases(), alpha=st.sampled_from([1.0, 0.5, 2.0]))
def test_rebuilt_wide_trajectory_equals_the_wide_network(case, alpha):
    history = side_by_side(case.problem, _wide(case), case.lr, STEPS, outer_lr_scale=alpha)
    assert len(history) == STEPS + 1
    summary = worst(history)
    assert summary["over_tolerance"] <= 1, summary


@settings(max_examples=SHARE // 4)
@given(case=dst.factorization_cases(), data=st.data())
def test_a_random_subspace_fails_the_check_by_a_wide_margin(case, data):
    wide = _wide(case)
    d, width = case.problem.shape[0], 2 * case.rank
    rng = np.random.default_rng(data.draw(dst.seeds))
    basis = np.linalg.qr(rng.standard_normal((d, width)))[0]
    wrong = dlnref.compress_exact(case.problem, wide, basis=basis)
    summary = worst(side_by_side(case.problem, wide, case.lr, STEPS, compression=wrong))
    assert summary["over_tolerance"] > 1e3, summary


@given(case=dst.factorization_cases())
def test_narrow_network_shapes_and_parameter_count(case):
    pair = dlnref.compress_exact(case.problem, _wide(case))
    w, L = 2 * case.rank, case.depth
    assert [W.shape for W in pair.narrow] == [(w, w)] * L
    assert pair.parameter_count() == L * w**2 + L
    assert dlnref.parameter_count(pair.narrow) == L * w**2


def test_basis_holds_the_data_part_of_the_gradient_at_init():
    problem = dlnref.make_problem("factorization", (12, 12), 3, seed=4)
    wide = dlnref.init_weights([12] * 4, 1e-2, seed=5)
    pair = dlnref.compress_exact(problem, wide)
    B_0, B_L = pair.bases[0], pair.bases[-1]
    M = problem.target
    # M = B_L M~ B_0^T: the target lives in the active blocks, nothing in the complement.
    assert np.linalg.norm(M - B_L @ (B_L.T @ M @ B_0) @ B_0.T) <= 1e-14 * np.linalg.norm(M)
    assert np.allclose(B_0.T @ B_0, np.eye(6), atol=1e-14, rtol=0)
    # B_l = O_l B_{l-1} keeps the chain V_{l+1} = U_l; layer l maps span(B_{l-1}) onto span(B_l).
    for l, W in enumerate(wide):
        assert np.allclose(W @ pair.bases[l], 1e-2 * pair.bases[l + 1], atol=1e-16, rtol=0)
    for W_rebuilt, W in zip(pair.layers(), wide):
        assert np.allclose(W_rebuilt, W, atol=1e-17, rtol=0)


def test_complement_scale_follows_its_scalar_recursion():
    """alpha = 1: every rho_l is one rho, rho <- rho - lr rho^(2L-1) / (m n); alpha = 3 splits outer and inner."""
    d, L, eps, lr = 10, 3, 0.2, 5.0
    problem = dlnref.make_problem("factorization", (d, d), 2, seed=1)
    pair = dlnref.compress_exact(problem, dlnref.init_weights([d] * (L + 1), eps, seed=2))
    rho = eps
    for _ in range(50):
        pair = exact_step(problem, pair, lr)
        rho = rho - lr * rho ** (2 * L - 1) / d**2
    assert [float(r) for r in pair.rho] == pytest.approx([rho] * L, rel=1e-14)
    assert rho < eps * (1 - 1e-3)  # the scalar did move

    pair = dlnref.compress_exact(problem, dlnref.init_weights([d] * (L + 1), eps, seed=2))
    outer, inner = eps, eps
    for _ in range(50):
        pair = exact_step(problem, pair, lr, outer_lr_scale=3.0)
        pi = outer**2 * inner
        outer, inner = outer - 3 * lr * pi * outer * inner / d**2, inner - lr * pi * outer**2 / d**2
    assert [float(r) for r in pair.rho] == pytest.approx([outer, inner, outer], rel=1e-14)


def test_train_exact_records_the_wide_networks_history():
    problem = dlnref.make_problem("factorization", (16, 16), 2, seed=3)
    wide = dlnref.init_weights([16] * 4, 5e-2, seed=4)
    reference = dlnref.gradient_descent(problem, wide, 15.0, 400, record_every=20)
    run = dlnref.train_exact(problem, dlnref.compress_exact(problem, wide), 15.0, 400, record_every=20)
    assert run.history["step"] == reference.history["step"]
    np.testing.assert_allclose(run.history["loss"], reference.history["loss"], rtol=1e-10)
    np.testing.assert_allclose(run.history["recovery_error"], reference.history["recovery_error"], rtol=1e-10)
    assert run.history["recovery_error"][-1] < 0.5  # the run learnt something, so the match says something
    final = run.weights.layers()
    for a, b in zip(final, reference.weights):
        assert np.linalg.norm(a - b) <= 1e-10 * np.linalg.norm(b)


def test_sensing_reduced_operators_equal_the_dense_projection():
    problem = dlnref.make_problem("sensing", (10, 10), 2, measurements=200, seed=0)
    pair = dlnref.compress_exact(problem, dlnref.init_weights([10] * 4, 0.1, seed=1))
    for _ in range(20):
        pair = exact_step(problem, pair, 0.02)
    reduced = subspace_gradient(problem, pair)
    dense = subspace_gradient(problem, dataclasses.replace(pair, reduced={}))
    assert float(reduced.loss) == pytest.approx(float(dense.loss), rel=1e-13)
    np.testing.assert_allclose(reduced.block, dense.block, rtol=0, atol=1e-13 * np.abs(dense.block).max())
    assert float(reduced.complement) == pytest.approx(float(dense.complement), rel=1e-12)


def test_runs_on_every_backend(backend):
    problem = dlnref.make_problem("completion", (8, 8), 2, seed=0, backend=backend)
    wide = dlnref.init_weights([8] * 4, 0.1, seed=1, backend=backend)
    run = dlnref.train_exact(problem, dlnref.compress_exact(problem, wide), 2.0, 5)
    reference = dlnref.train_exact(dlnref.make_problem("completion", (8, 8), 2, seed=0),
                                   dlnref.compress_exact(dlnref.make_problem("completion", (8, 8), 2, seed=0),
                                                         dlnref.init_weights([8] * 4, 0.1, seed=1)), 2.0, 5)
    np.testing.assert_allclose(host(run.weights.end_to_end()), reference.weights.end_to_end(), rtol=1e-12)


@pytest.mark.parametrize(("change", "message"), [
    ({"kind": "gaussian"}, "orthogonal init"),
    ({"dims": [8, 8, 6, 8]}, "square problem and d x d layers"),
    ({"rank": 5}, "2 \\* rank <= d"),
])
def test_bad_input_names_what_is_wrong(change, message):
    problem = dlnref.make_problem("factorization", (8, 8), 2, seed=0)
    wide = dlnref.init_weights(change.get("dims", [8] * 4), 0.1, kind=change.get("kind", "orthogonal"), seed=1)
    with pytest.raises(ValueError, match=message):
        dlnref.compress_exact(problem, wide, rank=change.get("rank"))


def test_a_basis_without_orthonormal_columns_is_refused():
    problem = dlnref.make_problem("factorization", (8, 8), 2, seed=0)
    with pytest.raises(ValueError, match="basis must have orthonormal columns"):
        dlnref.compress_exact(problem, dlnref.init_weights([8] * 4, 0.1, seed=1), basis=np.ones((8, 4)))


def test_documented_example_rebuilds_the_wide_network():
    from documented import code_blocks

    block = next(b for b in code_blocks("python") if "compress_exact" in b)
    namespace = {}
    exec(compile(block, "docs/guide/exact-compression.md", "exec"), namespace)
    reference = dlnref.gradient_descent(namespace["problem"], namespace["wide"], 1.0, 300, record_every=300)
    X = dlnref.end_to_end(reference.weights)
    assert np.linalg.norm(namespace["run"].weights.end_to_end() - X) <= 1e-10 * np.linalg.norm(X)


def test_compare_with_exact_compression_retraces_the_wide_run(capsys):
    import json

    from dlnref.cli import main

    assert main(["compare", "--problem", "factorization", "--d", "30", "--rank", "3", "--lr", "20",
                 "--compression", "exact", "--steps", "1100", "--json", "--no-plot", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["compression"] == "exact" and result["config"]["outer_lr_scale"] == 1.0
    assert result["compressed"]["params"] == 3 * 6**2 + 3
    assert result["wide"]["steps_to"]["0.001"] is not None
    assert result["compressed"]["steps_to"] == result["wide"]["steps_to"]
    assert result["compressed"]["final_error"] == pytest.approx(result["wide"]["final_error"], rel=1e-8)


def test_compare_snapshots_of_the_exact_compression_are_the_wide_layers():
    from dlnref.experiments.compare import CompareConfig, run_compare, snapshot_weights

    config = CompareConfig(problem="factorization", d=12, rank=2, lr=5.0, steps=20, record_every=10,
                           compression="exact")
    result = run_compare(config, observe=snapshot_weights)
    for wide, rebuilt in zip(result["wide"]["history"]["weights"], result["compressed"]["history"]["weights"]):
        assert [W.shape for W in rebuilt] == [(12, 12)] * 3
        np.testing.assert_allclose(rebuilt, wide, rtol=0, atol=1e-15)


def test_subspace_floor_is_zero_for_factorization_and_not_for_completion():
    from theory_checks.exact_compression import subspace_floor

    wide = dlnref.init_weights([12] * 4, 0.1, seed=1)
    factorization = dlnref.make_problem("factorization", (12, 12), 2, seed=0)
    completion = dlnref.make_problem("completion", (12, 12), 2, fraction=0.3, seed=0)
    assert subspace_floor(factorization, dlnref.compress_exact(factorization, wide)) < 1e-14
    assert subspace_floor(completion, dlnref.compress_exact(completion, wide)) > 1e-3


def test_train_exact_takes_gradient_descents_arguments_checked_the_same_way():
    """lr="auto" is auto_lr at the pair's depth (it raised a TypeError); a negative lr is refused (it ran ascent)."""
    problem = dlnref.make_problem("factorization", (12, 12), 2, seed=0)
    pair = dlnref.compress_exact(problem, dlnref.init_weights([12] * 4, 1e-2, seed=1), 2)
    run = dlnref.train_exact(problem, pair, "auto", 5)
    assert run.lr == dlnref.auto_lr(problem, 3) and run.lr_halvings == 0 and len(run.history) == 6
    for bad in ({"lr": -1.0}, {"lr": float("nan")}, {"outer_lr_scale": 0.0}, {"record_every": 0}, {"steps": -1}):
        with pytest.raises(dlnref.InputError):
            dlnref.train_exact(problem, pair, **{"lr": 1.0, "steps": 2, **bad})
