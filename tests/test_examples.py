"""The lessons in examples/ run in quick mode, write their figure, and print numbers that check their claims.

Each script runs in this process (``runpy``), as ``python examples/NAME.py
--quick --out PATH`` would, to spare a Python start per script. Every lesson
also asserts its own claim; these tests read the printed numbers again, so
that a lesson whose check was weakened still fails here.
"""

import itertools
import os
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
           "saxe_closed_form", "choosing_lr", "sensing", "exact_compression", "completion_observed",
           "mlp_linear_block", "check_your_implementation")


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
        assert "# %%" in (EXAMPLES / f"{name}.py").read_text(), f"{name} has no sphinx-gallery cells"


def test_a_lesson_writes_into_dlnref_output_by_default(tmp_path, monkeypatch):
    """No ``--out``: the figure goes to ./dlnref-output/, never the current folder (quick mode from DLNREF_QUICK=1)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLNREF_QUICK", "1")
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / "saxe_closed_form.py")])
    try:
        runpy.run_path(str(EXAMPLES / "saxe_closed_form.py"), run_name="__main__")
    finally:
        plt.close("all")
    assert sorted(os.listdir(tmp_path)) == ["dlnref-output"]
    assert (tmp_path / "dlnref-output" / "saxe_closed_form.png").read_bytes()[:4] == b"\x89PNG"


def test_incremental_learning(lesson):
    text = lesson("incremental_learning")
    times = [int(t) for t in re.findall(r"reaches 90% at step (\d+)", text)]
    assert len(times) == 3 and times == sorted(set(times)), text
    assert "learnt in order (t_1 < t_2 < ...): True" in text
    # The top singular vectors align before the first mode is learnt (the power-method picture).
    assert number(r"left alignment first >= 0.99 at step (\d+)", text) <= times[0]
    assert number(r"right alignment first >= 0.99 at step (\d+)", text) <= times[0]


def test_invariant_subspace(lesson):
    text = lesson("invariant_subspace")
    assert number(r"equal singular values: (\S+)", text) < 1e-10
    assert number(r"complement, left: (\S+) rad", text) < 1e-10
    assert number(r"complement, right: (\S+) rad", text) < 1e-10
    # The update's tail is the drift of rho, not rounding: it matches the scalar recursion,
    # and its ratio to s_1 starts at eps^L / s_1(M) (1.4e-7 here), far above float64 rounding.
    assert number(r"recursion: worst relative gap (\S+)", text) < 1e-3
    measured = number(r"W_1\(t\) - W_1\(0\): (\S+) at step", text)
    theory = number(r"eps\^L / s_1\(M\) = (\S+)\)", text)
    assert abs(measured / theory - 1) < 0.05 and theory > 1e-8


def test_wide_vs_compressed(lesson):
    text = lesson("wide_vs_compressed")
    d, w, L = 30, 4, 3
    assert f"compressed: {2 * d * w + (L - 2) * w * w} parameters" in text
    assert f"wide: {L * d * d} parameters" in text
    # The two effects, separated (measured: 1.27 from compression, 2.13 from alpha 3, 2.71 together).
    compression = number(r"compression alone, alpha=1: wide / compressed = (\S+)", text)
    rate = number(r"the discrepant rate alone, compressed: alpha=1 / alpha=\S+ = (\S+)", text)
    headline = number(r"wide at alpha=1 / compressed at alpha=\S+: (\S+) =", text)
    assert 1 < compression < rate
    assert abs(headline - compression * rate) < 0.02 * headline
    assert number(r"the discrepant rate alone, wide: alpha=1 / alpha=\S+ = (\S+)", text) > 1.5  # alpha helps wide too


def test_discrepant_rate(lesson):
    text = lesson("discrepant_rate")
    steps = [int(n) for n in re.findall(r"compressed, alpha=\S+: (\d+)", text)]
    assert len(steps) == 4 and all(a > b for a, b in itertools.pairwise(steps)), text
    assert "fewer steps as alpha grows: True" in text
    # The plateau shrinks as I(alpha) / I(1) predicts.
    for measured, predicted in re.findall(r"ratio to alpha=1 (\S+), I\(alpha\)/I\(1\) = (\S+)", text):
        assert abs(float(measured) / float(predicted) - 1) < 0.1
    # Stable below alpha_max, not above: lr alpha^(2/L) S(1) crosses 2 between the two probes.
    assert number(r"alpha = 0.8 alpha_max .*: error (\S+) after", text) <= 1e-3
    assert number(r"alpha = 1.2 alpha_max .*: error (\S+) after", text) > 1e-2
    assert re.search(r"alpha = 3 alpha_max .*: diverged", text)
    assert number(r"alpha = 0.8 alpha_max .* = (\S+)\)", text) < 2 < number(r"alpha = 1.2 alpha_max .* = (\S+)\)", text)


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


def test_sensing(lesson):
    text = lesson("sensing")
    k, d = (int(x) for x in re.search(r"k=(\d+) measurements for d\^2 = (\d+)", text).groups())
    assert k < d
    error = number(r"minimum-norm fit: .* recovery error (\S+) ", text)
    assert abs(error / (1 - k / d) ** 0.5 - 1) < 0.15
    wide = number(r"wide \(\d+ parameters\): error 0.001 at step (\d+)", text)
    compressed = number(r"compressed \(\d+ parameters\): error 0.001 at step (\d+)", text)
    assert compressed <= wide


def test_exact_compression(lesson):
    text = lesson("exact_compression")
    assert number(r"rebuilt layers: (\S+);", text) < 1e-12
    assert number(r"loss at every recorded step: (\S+)\n", text) < 1e-9
    assert "the arrays of the pair's step, at every d: [(4, 4)" in text   # w = 2r = 4, whatever d


def test_completion_observed(lesson):
    text = lesson("completion_observed")
    assert number(r"losses over 3000 steps: (\S+)\n", text) < 1e-9
    dense = number(r"dense: recovery_error (\S+)\n", text)
    assert number(r"sparse, with factors: recovery_error (\S+)\n", text) == pytest.approx(dense, rel=1e-3)
    observed = number(r"sparse, entries only: recovery_error (\S+)\n", text)
    assert observed == pytest.approx(number(r"by hand, over the observed entries: (\S+)\n", text), rel=1e-2)
    assert observed < dense / 2  # the training error flatters: it sees only the observed entries
    assert number(r"true error over all entries (\S+)\n", text) < 1e-3


def test_mlp_linear_block(lesson):
    pytest.importorskip("sklearn")
    text = lesson("mlp_linear_block")
    assert number(r"in the top 2K = 20: (\S+)\n", text) >= 0.99
    assert abs(number(r"wide minus compressed \(spectral\): (\S+)\n", text)) <= 0.02


def test_check_your_implementation(lesson):
    text = lesson("check_your_implementation")
    assert "the correct implementation passes" in text
    assert re.search(r"mean over all entries: caught\. Likely cause: .*mean over all", text)
    assert re.search(r"alpha on W_1 only: caught\. Likely cause: alpha is applied to W_1 only", text)
    ratio = number(r"per layer: \[(\S+?)[,\]]", text)
    assert ratio == pytest.approx(number(r"\|Omega\| / \(m n\) = (\S+)\n", text), rel=1e-6)
