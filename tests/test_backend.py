import json
import os
import subprocess
import sys

import numpy as np
import pytest

import dlnref
from dlnref.backend import BackendUnavailableError, namespace


def _cupy_usable():
    try:
        namespace("cupy")
        return True
    except BackendUnavailableError:
        return False


def test_import_dlnref_never_imports_cupy():
    code = "import sys, dlnref, dlnref.cli, dlnref.testing, theory_checks; print(json.dumps('cupy' in sys.modules))"
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) is False


@pytest.mark.skipif(_cupy_usable(), reason="CuPy and a GPU are present")
def test_missing_cupy_names_the_extra():
    with pytest.raises(BackendUnavailableError, match=r'pip install "dlnref\[gpu\]"|no CUDA device'):
        dlnref.init_weights((3, 3), 0.1, backend="cupy")


@pytest.mark.skipif(_cupy_usable(), reason="CuPy and a GPU are present")
def test_cli_without_cupy_exits_2_with_the_hint():
    proc = subprocess.run([sys.executable, "-m", "dlnref", "compare", "--backend", "cupy", "--no-plot"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert 'pip install "dlnref[gpu]"' in proc.stderr or "no CUDA device" in proc.stderr


def test_environment_variable_sets_the_default(monkeypatch):
    import array_api_strict

    monkeypatch.setenv("DLNREF_BACKEND", "array_api_strict")
    W = dlnref.init_weights((3, 2), 0.1)
    assert isinstance(W[0], array_api_strict._array_object.Array)
    monkeypatch.setenv("DLNREF_BACKEND", "numpy")
    assert isinstance(dlnref.init_weights((3, 2), 0.1)[0], np.ndarray)


def test_problem_constructors_move_host_inputs():
    import array_api_strict

    M, mask = np.eye(3), np.eye(3, dtype=bool)
    problem = dlnref.MatrixCompletion(M, mask, backend="array_api_strict")
    assert problem.xp is array_api_strict and problem.mask.dtype == array_api_strict.bool
    sensing = dlnref.MatrixSensing(M, np.ones((2, 3, 3)), backend="array_api_strict")
    assert sensing.xp is array_api_strict


def test_to_backend_refuses_hidden_device_to_host_moves():
    x = dlnref.to_backend(np.ones(2), "array_api_strict")
    assert dlnref.to_backend(x, "array_api_strict") is x
    with pytest.raises(TypeError, match="to_numpy"):
        dlnref.to_backend(x, "numpy")
    np.testing.assert_array_equal(dlnref.to_numpy(x), [1.0, 1.0])


def test_history_holds_python_floats_and_weights_stay_on_the_backend(backend):
    problem = dlnref.make_problem("completion", (8, 8), 1, fraction=0.5, seed=0, backend=backend)
    run = dlnref.gradient_descent(problem, dlnref.compress(problem, 3, 2), 1.0, 3)
    for column in ("loss", "recovery_error", "seconds", "unobserved_error"):
        assert all(type(v) is float for v in run.history[column])
    xp = dlnref.array_namespace(problem.target)
    assert all(dlnref.array_namespace(w) is xp for w in run.weights)


def test_same_seed_same_problem_on_every_backend(backend):
    a = dlnref.make_problem("sensing", (5, 4), 1, seed=9)
    b = dlnref.make_problem("sensing", (5, 4), 1, seed=9, backend=backend)
    np.testing.assert_array_equal(a.operators, dlnref.to_numpy(b.operators))
    np.testing.assert_array_equal(a.target, dlnref.to_numpy(b.target))


def test_gpu_extra_declares_cupy():
    import tomllib

    with open(os.path.join(os.path.dirname(__file__), "..", "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    assert any(dep.startswith("cupy-cuda12x") for dep in extras["gpu"])
