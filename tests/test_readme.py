"""The README's examples run as written."""

import pathlib
import re

README = (pathlib.Path(__file__).parent.parent / "README.md").read_text()


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_check_your_implementation_example_runs(capsys):
    block = next(b for b in _python_blocks() if "assert_backward_matches" in b)
    exec(compile(block, "README.md", "exec"), {})
    assert "my implementation agrees with dlnref" in capsys.readouterr().out


def test_library_example_runs_as_compare_does():
    """The example prints the step count it claims, on the problem and wide init `dlnref compare` builds."""
    import numpy as np

    from dlnref.experiments.compare import CompareConfig, build

    block = next(b for b in _python_blocks() if "make_problem" in b)
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    claimed = int(re.search(r"first_below\(1e-3\)\s+# (\d+):", block).group(1))
    assert namespace["run"].history.first_below(1e-3) == claimed
    problem, starts = build(CompareConfig())
    np.testing.assert_array_equal(namespace["problem"].target, problem.target)
    np.testing.assert_array_equal(namespace["problem"].mask, problem.mask)
    for ours, theirs in zip(namespace["wide"], starts["wide"][0]):
        np.testing.assert_array_equal(ours, theirs)


def test_pytorch_example_runs(capsys):
    import pytest

    pytest.importorskip("torch")
    block = next(b for b in _python_blocks() if "import torch" in b)
    exec(compile(block, "README.md", "exec"), {})
    assert "the PyTorch step agrees with dlnref" in capsys.readouterr().out
