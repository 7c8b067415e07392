"""Property-based tests of the paper's claims on small deep-matrix-factorization instances.

The theory is exact for factorization, so these assert it on every drawn case.
The completion and sensing versions are observations, reported by ``dlnref check``.
"""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import dlnref
from dlnref import testing as dst
from dlnref.dynamics import first_reach_times, largest_principal_angle, top_singular_subspaces
from theory_checks.compressed_faster import never_worse
from theory_checks.invariant_subspace import EXACT_TOL, update_rank_bound, worst_residuals


def _wide(case):
    d = case.problem.shape[0]
    return dlnref.init_weights([d] * (case.depth + 1), case.scale, seed=case.seed)


def _snapshot(step, weights):
    return {"weights": list(weights)}


@example(case=dst.DynamicsCase(  # d - 2r = 1: found by the thorough profile
    dlnref.MatrixFactorization(dlnref.low_rank_matrix(7, 7, 3, seed=0, spectrum=[4.0, 2.0, 1.0])),
    depth=2, scale=0.1, lr=1.225, rank=3, spectrum=(4.0, 2.0, 1.0), seed=0))
@given(case=dst.factorization_cases())
def test_invariant_subspace(case):
    run = dlnref.gradient_descent(case.problem, _wide(case), case.lr, 300, record_every=10, observe=_snapshot)
    bound = update_rank_bound(case.scale, case.depth, case.spectrum[0])
    worst = worst_residuals(run.history["weights"], run.history["step"], case.rank, bound)
    assert worst["equal_spread"] <= EXACT_TOL
    assert worst["left_angle"] <= EXACT_TOL and worst["right_angle"] <= EXACT_TOL
    assert worst["update_rank_over_tolerance"] <= 1, worst


def _reachable_tol(case):
    """1e-3, or just above the wide DLN's floor: its d - 2r complement values stay at rho <= eps (the
    invariant subspace), which leaves ||X - M||_F = rho^L sqrt(d - 2r) once the r modes are fitted."""
    d = case.problem.shape[0]
    floor = case.scale**case.depth * np.sqrt(d - 2 * case.rank) / np.linalg.norm(case.spectrum)
    return max(1e-3, 1.1 * floor)


def _learn(case, weights, steps=30000, record_every=1):
    return dlnref.gradient_descent(case.problem, weights, case.lr, steps, record_every=record_every,
                                   tol=_reachable_tol(case),
                                   observe=lambda step, W: {"svals": np.linalg.svd(dlnref.end_to_end(W),
                                                                                   compute_uv=False)})


@example(case=dst.DynamicsCase(  # the floor eps^L sqrt(d - 2r) is above 1e-3: found by the thorough profile
    dlnref.MatrixFactorization(dlnref.low_rank_matrix(6, 6, 1, seed=0, spectrum=[1.0])),
    depth=3, scale=0.1, lr=2.4, rank=1, spectrum=(1.0,), seed=0))
@given(case=dst.factorization_cases(min_escape=1e-2))
def test_incremental_learning_fits_singular_values_largest_first(case):
    run = _learn(case, _wide(case))
    assert run.converged
    times = first_reach_times(run.history["step"], run.history["svals"], case.spectrum, 0.9)
    assert all(t is not None for t in times)
    assert all(a < b for a, b in zip(times, times[1:])), times
    U, V = top_singular_subspaces(dlnref.end_to_end(run.weights), case.rank)
    Um, Vm = top_singular_subspaces(case.problem.target, case.rank)
    # At recovery error tol the top-r subspaces agree to about that angle.
    assert largest_principal_angle(U, Um) < 10 * _reachable_tol(case)
    assert largest_principal_angle(V, Vm) < 10 * _reachable_tol(case)


@given(case=dst.factorization_cases(min_escape=1e-2))
def test_compressed_error_is_never_above_wide_error(case):
    wide = dlnref.gradient_descent(case.problem, _wide(case), case.lr, 30000, tol=1e-3)
    small = dlnref.compress(case.problem, case.depth, 2 * case.rank, case.scale)
    compressed = dlnref.gradient_descent(case.problem, small, case.lr, 30000, tol=1e-3)
    excess, step = never_worse(wide.history, compressed.history)
    assert excess <= 1e-10, f"compressed error above wide by {excess:.3g} at step {step}"


@given(d=st.integers(2, 300), depth=st.integers(2, 6), data=st.data())
def test_parameter_count_formula(d, depth, data):
    width = data.draw(st.integers(1, d))
    W = [np.empty((width, d))] + [np.empty((width, width))] * (depth - 2) + [np.empty((d, width))]
    assert dlnref.parameter_count(W) == 2 * d * width + (depth - 2) * width**2
    assert dlnref.parameter_count([np.empty((d, d))] * depth) == depth * d * d


def test_theory_checks_quick_compression_size_holds():
    from theory_checks import compression_size

    verdict = compression_size.check("quick")
    assert verdict.holds and verdict.findings[1].measured["compressed"] == 2100


@pytest.mark.slow
def test_quick_checks_have_no_exact_failures():
    import theory_checks

    verdicts = theory_checks.run("quick")
    assert [f for v in verdicts for f in v.exact_failures] == []


def test_check_command_prints_verdicts_as_json(capsys):
    import json

    from dlnref.cli import main

    assert main(["check", "--claim", "exact_dynamics", "--claim", "compression_size", "--json", "--quiet"]) == 0
    verdicts = json.loads(capsys.readouterr().out)
    assert [v["name"] for v in verdicts] == ["exact_dynamics", "compression_size"]
    dynamics = verdicts[0]["findings"][0]["measured"]
    # Euler's method is first order: a 4x smaller step gives a 4x smaller error (to a few per cent).
    assert dynamics["ratio"] == pytest.approx(4.0, rel=0.05)
    assert all(v["holds"] for v in verdicts)
