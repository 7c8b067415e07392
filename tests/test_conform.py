"""`dlnref conform MODULE:FUNCTION`: one row per check, the diagnosis of each failure, the exit-code contract."""

import json
import os
import subprocess
import sys

import pytest

from dlnref.cli import main

MODULE = '''
from functools import reduce
import numpy as np


def gradient(problem, X):
    if problem.name == "completion":
        return np.where(problem.mask, X - problem.target, 0) / problem.mask.sum()
    if problem.name == "factorization":
        return (X - problem.target) / problem.target.size
    A = problem.operators
    return np.einsum("k,kij->ij", np.einsum("kij,ij->k", A, X - problem.target), A)


def step(weights, problem, lr, alpha, half=1.0):
    """Input first: X = W_L ... W_1."""
    L = len(weights)
    X = reduce(lambda acc, W: W @ acc, weights)
    G = gradient(problem, X) / half
    new = []
    for l, W in enumerate(weights):
        above = reduce(lambda acc, V: V @ acc, weights[l + 1:], np.eye(W.shape[0]))
        below = reduce(lambda acc, V: V @ acc, weights[:l], np.eye(weights[0].shape[1]))
        new.append(W - lr * (alpha if l in (0, L - 1) else 1.0) * (above.T @ G @ below.T))
    return new


def no_half(weights, problem, lr, alpha):
    return step(weights, problem, lr, alpha, half=0.5)


def train(weights, problem, lr, alpha, steps):
    out = [reduce(lambda acc, W: W @ acc, weights)]
    for _ in range(steps):
        weights = step(weights, problem, lr, alpha)
        out.append(reduce(lambda acc, W: W @ acc, weights))
    return out


NOT_A_FUNCTION = 3
'''


@pytest.fixture
def module(tmp_path, monkeypatch):
    name = f"conform_user_{tmp_path.name.replace('-', '_')}"  # a fresh module name per test
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    return name


def test_correct_step_passes_every_row(module, capsys):
    assert main(["conform", f"{module}:step", "--kind", "step", "--problem", "completion", "--problem", "sensing",
                 "--alpha", "1", "--alpha", "5", "--max-examples", "8"]) == 0
    out = capsys.readouterr().out
    rows = [l for l in out.splitlines() if l.startswith("step ")]
    assert len(rows) == 2 * 2 * 2 and all(r.endswith("pass") for r in rows)  # problems x dtypes x alphas
    assert "8 of 8 checks passed" in out


def test_wrong_step_fails_with_its_diagnosis(module, capsys):
    assert main(["conform", f"{module}:no_half", "--kind", "step", "--problem", "factorization",
                 "--dtype", "float64", "--alpha", "5", "--max-examples", "8"]) == 1
    out = capsys.readouterr().out
    assert "FAIL [1]" in out and "[1] one gradient-descent step differs from dlnref" in out
    assert "Likely cause: your loss is a mean over the" in out and "without the 1/2: factor 2 on every layer" in out


def test_json_rows(module, capsys):
    assert main(["conform", f"{module}:train", "--kind", "trajectory", "--problem", "completion", "--alpha", "2",
                 "--dtype", "float64", "--max-examples", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True and len(report["checks"]) == 2  # two step sizes in the safe range
    assert {c["kind"] for c in report["checks"]} == {"trajectory"} and all(c["lr"] > 0 for c in report["checks"])


@pytest.mark.parametrize("spec, needle", [
    ("no_colon", "expected MODULE:FUNCTION"),
    ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
    ("{module}:missing", "has no attribute 'missing'"),
    ("{module}:NOT_A_FUNCTION", "is a int, not a function"),
])
def test_usage_errors_exit_2(module, capsys, spec, needle):
    assert main(["conform", spec.format(module=module), "--kind", "step"]) == 2
    assert needle in capsys.readouterr().err


def test_trajectory_lr_outside_the_safe_range_exits_2(module, capsys):
    assert main(["conform", f"{module}:train", "--kind", "trajectory", "--problem", "sensing", "--lr", "1.0"]) == 2
    assert "usage error, not a failure of your code" in capsys.readouterr().err


def test_without_hypothesis_conform_is_a_usage_error(module, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "hypothesis", None)  # as if it were not installed
    assert main(["conform", f"{module}:step", "--kind", "step"]) == 2
    assert 'needs hypothesis: pip install "dlnref[test]"' in capsys.readouterr().err


def test_conform_leaves_no_hypothesis_folder_behind(module, tmp_path):
    """A user's folder stays as it was: hypothesis's caches go to a temporary folder (a fresh process,
    since hypothesis fixes its default folder when it is first imported)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, str(tmp_path)])}
    proc = subprocess.run([sys.executable, "-m", "dlnref", "conform", f"{module}:step", "--kind", "step",
                           "--problem", "completion", "--alpha", "1", "--dtype", "float64", "--max-examples", "3"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(tmp_path)) == [f"{module}.py"]


def test_declared_loss_and_depths(module, capsys, tmp_path):
    # A step written on a plain sum of squares (the gradient twice dlnref's completion gradient times |Omega|),
    # for networks of two layers or more: declared, it passes with no lr glue.
    (tmp_path / f"{module}_sum.py").write_text(MODULE + '''

def sum_step(weights, problem, lr, alpha):
    if len(weights) < 2:
        raise ValueError("two layers or more")
    scale = {"completion": lambda: 2 * problem.mask.sum(), "factorization": lambda: 2 * problem.target.size,
             "sensing": lambda: 2}[problem.name]()
    return step(weights, problem, lr * scale, alpha)
''')
    assert main(["conform", f"{module}_sum:sum_step", "--kind", "step", "--loss", "sum", "--depths", "2-4",
                 "--alpha", "1", "--dtype", "float64", "--max-examples", "5"]) == 0
    assert main(["conform", f"{module}_sum:sum_step", "--kind", "step", "--loss", "infer", "--depths", "2-4",
                 "--problem", "completion", "--alpha", "2", "--dtype", "float64", "--max-examples", "3"]) == 0
    out = capsys.readouterr().out
    assert "loss inferred: your loss is a sum of squared residuals without the 1/2 (loss='sum'): the same on all 8 " \
           "cases; passes under that convention" in out
    for bad in ("two", "5-2", "0-2", "2-", "2,,3"):
        assert main(["conform", f"{module}_sum:sum_step", "--kind", "step", "--depths", bad]) == 2
        err = capsys.readouterr().err
        assert "argument --depths: expected depths like 2-4 or 2,3,5" in err and repr(bad) in err, err
