"""A problem written outside dlnref, with only the minimal protocol, installed through an entry point.

The package is written here into a folder with its own ``.dist-info`` (what
``pip install`` leaves), so ``importlib.metadata`` finds its entry point of
the group ``dlnref.problems`` the way it finds an installed package's; each
command runs in a fresh process with that folder on ``PYTHONPATH``. Nothing
of dlnref is edited or mocked.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dlnref

ROOT = pathlib.Path(__file__).parent.parent

#: A weighted factorization, ``loss = sum_ij W_ij (X - M)_ij^2 / (2 sum W)``, in the minimal protocol only.
MODULE = '''
import numpy as np

import dlnref


class WeightedFactorization(dlnref.Problem):
    """loss = sum_ij W_ij (X - M)_ij^2 / (2 sum W): each entry of M counts with its weight."""

    name = "weighted"

    def __init__(self, target, weights, rank):
        self.target, self.weights, self.shape, self.rank = target, weights, target.shape, rank

    def loss(self, X):
        return np.sum(self.weights * (X - self.target) ** 2) / (2 * self.weights.sum())

    def gradient(self, X):
        return self.weights * (X - self.target) / self.weights.sum()

    def recovery_error(self, X):
        return np.linalg.norm(X - self.target) / np.linalg.norm(self.target)

    def surrogate(self):
        return self.weights * self.target / self.weights.mean()

    @classmethod
    def synthetic(cls, shape, rank, seed=0):
        rng = np.random.default_rng(seed)
        target = rng.standard_normal((shape[0], rank)) @ rng.standard_normal((rank, shape[1])) / np.sqrt(rank)
        return cls(target, rng.uniform(0.5, 1.5, shape), rank)
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A folder holding the package ``weighted_problem`` and its ``.dist-info`` with the entry point."""
    folder = tmp_path_factory.mktemp("site")
    (folder / "weighted_problem.py").write_text(MODULE)
    info = folder / "weighted_problem-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: weighted-problem\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dlnref.problems]\nweighted = weighted_problem:WeightedFactorization\n")
    return folder


def _run(installed, *argv, cwd=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300, env=env,
                          cwd=cwd or installed)


def test_compare_trains_both_networks_on_an_outside_problem(installed):
    proc = _run(installed, "-m", "dlnref", "compare", "--problem", "weighted", "--d", "16", "--rank", "2",
                "--steps", "4000", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["config"]["problem"] == "weighted" and result["config"]["lr_rule"] == "auto"
    for network in ("wide", "compressed"):   # both reach 1e-2 from the default lr="auto"
        assert result[network]["steps_to"]["0.01"] is not None, result[network]
    assert "als" not in result   # the ALS baseline is completion's


def test_the_outside_problem_is_in_the_choices_and_unknown_names_are_refused(installed):
    proc = _run(installed, "-m", "dlnref", "compare", "--problem", "nosuch")
    assert proc.returncode == 2 and "invalid choice: 'nosuch'" in proc.stderr
    assert all(name in proc.stderr.split("choose from")[1] for name in ("factorization", "completion", "sensing",
                                                                           "weighted"))


def test_sweep_runs_an_outside_problem(installed, tmp_path):
    proc = _run(installed, "-m", "dlnref", "sweep", "--problem", "weighted", "--d", "12", "--rank", "2",
                "--seeds", "0-1", "--steps", "3000", "--workers", "1", "--out", str(tmp_path), "--quiet",
                "--no-plot")
    assert proc.returncode == 0, proc.stderr
    assert "2 runs: 2 computed" in proc.stdout
    import csv

    with open(tmp_path / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(row["problem"], row["seed"], row["status"]) for row in rows] == [("weighted", "0", "ok"),
                                                                              ("weighted", "1", "ok")]
    assert all(float(row["compressed_final_error"]) <= 1e-4 for row in rows)


def test_the_oracle_builds_cases_of_an_outside_problem(installed):
    code = textwrap.dedent("""
        import dlnref.oracle
        weights, problem = dlnref.oracle.build_case("weighted", dims=(4, 3, 5), weight_seed=0, problem_seed=1, rank=1)
        print(type(problem).__name__, problem.shape, [w.shape for w in weights])
        print(dlnref.oracle.normalisation_factors(problem))
    """)
    proc = _run(installed, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["WeightedFactorization (5, 4) [(3, 4), (5, 3)]", "[]"]


def test_the_protocol_defaults_agree_with_a_built_in_problem():
    """A problem that gives only the minimal part gets correct defaults: on factorization's loss, the default
    evaluate, errors and curvature equal MatrixFactorization's own."""
    built_in = dlnref.make_problem("factorization", (7, 5), 2, seed=3)

    class Minimal(dlnref.Problem):
        name = "minimal factorization"
        shape, rank = built_in.shape, 2
        loss = built_in.loss
        gradient = built_in.gradient
        recovery_error = built_in.recovery_error
        surrogate = built_in.surrogate

        @classmethod
        def synthetic(cls, shape, rank, seed=0):
            return cls()

    minimal, rng = Minimal(), np.random.default_rng(0)
    left, right = rng.standard_normal((7, 3)), rng.standard_normal((3, 5))
    ours, theirs = minimal.evaluate(left, right, factored=True), built_in.evaluate(left, right, factored=True)
    np.testing.assert_allclose(float(ours.loss), float(theirs.loss), rtol=1e-14)
    for a, b in zip(ours.gradient, theirs.gradient):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    assert minimal.errors(ours) == pytest.approx(built_in.errors(theirs), rel=1e-13)
    u, v = rng.standard_normal(7), rng.standard_normal(5)
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    assert minimal.curvature(u, v) == pytest.approx(built_in.curvature(u, v), rel=1e-9)
    np.testing.assert_allclose(minimal.top_singular(2)[1], built_in.top_singular(2)[1], rtol=1e-14)
    T = minimal.transposed()
    X = left @ right
    assert float(T.loss(X.T)) == pytest.approx(float(built_in.loss(X)), rel=1e-15)


def test_register_problem_refuses_what_is_not_a_problem():
    with pytest.raises(dlnref.InputTypeError, match="a problem must be a subclass of dlnref.problems.Problem"):
        dlnref.register_problem(dict)
    with pytest.raises(dlnref.InputError, match="the problem name 'factorization' is taken by"):
        dlnref.register_problem(type("Again", (dlnref.MatrixFactorization,), {}))
    with pytest.raises(dlnref.InputError, match="problem must be one of 'factorization', 'completion', 'sensing'"):
        dlnref.make_problem("nosuch", (4, 4), 1)


def test_an_incomplete_problem_class_is_refused_by_name():
    class Half(dlnref.Problem):
        name = "half"

        def loss(self, X):
            return 0.0

    with pytest.raises(dlnref.InputTypeError, match=r"Half does not write the whole minimal protocol: it lacks "
                                                    r"gradient, recovery_error, surrogate, synthetic"):
        dlnref.register_problem(Half)


def test_a_broken_entry_point_is_bad_input_for_every_command(tmp_path):
    info = tmp_path / "broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dlnref.problems]\nbroken = nosuchmodule:Nothing\n")
    for argv in (["--help"], ["check", "--claim", "compression_size"]):
        proc = _run(tmp_path, "-m", "dlnref", *argv)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.strip() == ("dlnref: error: the entry point broken = nosuchmodule:Nothing of the group "
                                       "dlnref.problems cannot be loaded: ModuleNotFoundError: No module named "
                                       "'nosuchmodule'")


def test_every_command_runs_without_the_test_extra():
    """`pip install .` has no hypothesis: the command line must not need it (only conform's checks do)."""
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "from dlnref.cli import main\n"
            "assert main(['--help']) == 0\n"
            "assert main(['compare', '--d', '8', '--rank', '1', '--steps', '20', '--quiet']) == 0\n"
            "assert main(['conform', 'x:y', '--kind', 'backward']) == 2\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    assert proc.returncode == 0, proc.stderr
    assert "dlnref conform needs hypothesis" in proc.stderr
