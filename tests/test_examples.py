"""The lessons in examples/ run in quick mode, write their figure, and print numbers that make sense.

Each script runs in this process (``runpy``), as ``python examples/NAME.py
--quick --out PATH`` would, to spare a Python start per script.
"""

import pathlib
import re
import runpy
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"
LESSONS = ("incremental_learning", "invariant_subspace", "wide_vs_compressed", "discrepant_rate",
           "saxe_closed_form", "choosing_lr")


@pytest.fixture
def lesson(tmp_path, monkeypatch, capsys):
    """Run one example in quick mode; return its printed output after checking its figure."""
    def run(name):
        out = tmp_path / f"{name}.png"
        monkeypatch.setattr(sys, "argv", [str(EXAMPLES / f"{name}.py"), "--quick", "--out", str(out)])
        try:
            runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="__main__")
        finally:
            plt.close("all")
        assert out.read_bytes()[:4] == b"\x89PNG", f"{name} wrote no PNG to {out}"
        return capsys.readouterr().out
    return run


def number(pattern, text):
    """The float captured by ``pattern`` in ``text`` (the pattern must match)."""
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in the output:\n{text}"
    return float(match.group(1))


def test_every_example_is_a_tested_lesson_with_a_header():
    assert sorted(p.stem for p in EXAMPLES.glob("*.py")) == sorted(LESSONS)
    for name in LESSONS:
        header = (EXAMPLES / f"{name}.py").read_text().split('"""')[1]
        title, underline = header.strip().splitlines()[:2]
        assert set(underline) == {"="} and len(underline) == len(title), name
        assert f"python examples/{name}.py [--quick] [--out PATH]" in header, name


def test_incremental_learning(lesson):
    text = lesson("incremental_learning")
    times = [int(t) for t in re.findall(r"reaches 90% at step (\d+)", text)]
    assert len(times) == 3 and times == sorted(set(times)), text
    assert "learnt in order (t_1 < t_2 < ...): True" in text
    # The top singular vectors align before the first mode is learnt (the power-method picture).
    assert number(r"left alignment first >= 0.99 at step (\d+)", text) <= times[0]


def test_invariant_subspace(lesson):
    text = lesson("invariant_subspace")
    assert number(r"equal singular values: (\S+)", text) < 1e-10
    assert number(r"complement, left: (\S+) rad", text) < 1e-10
    assert number(r"complement, right: (\S+) rad", text) < 1e-10
    # The update's rank-2r tail is the theory's eps^L / s_1(M), within a factor 2.
    measured = number(r"W_1\(t\) - W_1\(0\): (\S+)", text)
    theory = number(r"eps\^L / s_1\(M\) = (\S+)\)", text)
    assert theory / 2 < measured < 2 * theory


def test_wide_vs_compressed(lesson):
    text = lesson("wide_vs_compressed")
    d, w, L = 30, 4, 3
    assert f"compressed: {2 * d * w + (L - 2) * w * w} parameters" in text
    assert f"wide: {L * d * d} parameters" in text
    assert number(r"wide / compressed: (\S+)", text) > 1  # measured: 2.7 on this seed


def test_discrepant_rate(lesson):
    text = lesson("discrepant_rate")
    steps = [int(n) for n in re.findall(r"compressed, alpha=\S+: (\d+)", text)]
    assert len(steps) == 4 and all(a > b for a, b in zip(steps, steps[1:])), text
    assert "fewer steps as alpha grows: True" in text


def test_saxe_closed_form(lesson):
    text = lesson("saxe_closed_form")
    coarse = number(r"0.02 / s_1 .*= (\S+)\n", text)
    fine = number(r"0.005 / s_1 .*= (\S+)\n", text)
    assert fine < 1e-2  # gradient descent tracks the closed form to 1% of each s_i
    assert 3 < coarse / fine < 5  # Euler's method is first order: a 4x smaller step, a ~4x smaller gap


def test_choosing_lr(lesson):
    text = lesson("choosing_lr")
    assert number(r"lr=1: error (\S+) after", text) > 0.99  # lr 1 stalls on the plateau
    rule = number(r"rule: lr = .* = (\S+);", text)
    assert number(rf"lr={rule:.3g}: error (\S+) after", text) < 1e-3
    assert number(r"auto_lr\) gives (\S+)\n", text) == rule  # lr="auto" is this rule, to 3 digits
    assert re.search(r"lr=\S+: diverged", text)
    # The plateau lasts about k* = m n / (lr eps s_1) steps.
    predicted = number(rf"lr={rule:.3g}: .*k\* = m n / \(lr eps s_1\) = (\d+) steps", text)
    measured = number(rf"lr={rule:.3g}: .*error <= 0.9\) at step (\d+)", text)
    assert 0.8 < measured / predicted < 1.5
    # At one d, a 4x smaller lr takes 4x the steps: progress per step is lr / (m n).
    scaled = number(r"d=32, lr=\S+ = c d\^2: error 1e-3 at step (\d+)", text)
    fixed = number(r"d=32, lr=\S+ fixed: error 1e-3 at step (\d+)", text)
    assert 3.5 < fixed / scaled < 4.5
