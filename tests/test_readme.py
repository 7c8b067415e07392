"""The Python examples of the README and of the documentation run as written, and say what they claim."""

import re

import numpy as np
import pytest
from documented import ROOT, code_blocks

from dlnref.experiments.compare import CompareConfig, build

BLOCKS = code_blocks("python")


def _block(marker):
    return next(b for b in BLOCKS if marker in b)


def _run(block, where):
    namespace = {}
    exec(compile(block, str(where), "exec"), namespace)
    return namespace


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_every_documented_python_block_runs(index, tmp_path, monkeypatch):
    """Each block runs in a fresh namespace, in an empty folder (blocks that write files write there)."""
    block = BLOCKS[index]
    for framework in ("torch", "jax"):
        if f"import {framework}" in block:
            pytest.importorskip(framework)
    monkeypatch.chdir(tmp_path)
    _run(block, f"documented python block {index}")


def test_check_your_implementation_example_runs(capsys):
    _run(_block("assert_backward_matches"), "check-your-implementation.md")
    assert "my implementation agrees with dlnref" in capsys.readouterr().out


def test_library_example_runs_as_compare_does():
    """The example prints the step count it claims, on the problem and wide init `dlnref compare` builds."""
    block = _block("SeedSequence(0).spawn(2)")
    namespace = _run(block, "library.md")
    claimed = int(re.search(r"first_below\(1e-3\)\s+# (\d+):", block).group(1))
    assert namespace["run"].history.first_below(1e-3) == claimed
    problem, starts = build(CompareConfig())
    np.testing.assert_array_equal(namespace["problem"].target, problem.target)
    np.testing.assert_array_equal(namespace["problem"].mask, problem.mask)
    for ours, theirs in zip(namespace["wide"], starts["wide"][0]):
        np.testing.assert_array_equal(ours, theirs)


def test_front_page_example_says_what_it_prints(capsys):
    """The README's example: the C-DLN's parameters are 2 d w + (L - 2) w^2, and it reaches the errors it stops at."""
    block = next(b for b in re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S))
    namespace = _run(block, "README.md")
    reached, count = capsys.readouterr().out.split()
    d, w, depth = 100, 10, 3
    assert int(count) == 2 * d * w + (depth - 2) * w * w == 2100
    history = namespace["run"].history
    errors = history["recovery_error"]
    assert int(reached) == next(step for step, e in zip(history["step"], errors) if e <= 1e-3)
    assert errors[-1] <= 1e-4


def test_pytorch_example_runs(capsys):
    pytest.importorskip("torch")
    _run(_block("import torch"), "check-your-implementation.md")
    assert "the PyTorch step agrees with dlnref" in capsys.readouterr().out
