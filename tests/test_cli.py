import json
import subprocess
import sys

import pytest

from dlnref.cli import main

SMALL = ["compare", "--d", "16", "--rank", "2", "--fraction", "0.6", "--lr", "3", "--scale", "0.03",
         "--outer-lr-scale", "2", "--steps", "4000", "--quiet"]


def test_compare_json_end_to_end(tmp_path, capsys):
    plot = tmp_path / "fig.png"
    assert main(SMALL + ["--json", "--plot", str(plot)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["problem"] == "completion" and out["config"]["width"] == 4
    assert out["wide"]["params"] == 3 * 16**2
    assert out["compressed"]["params"] == 2 * 16 * 4 + 4**2
    for name in ("wide", "compressed"):
        assert set(out[name]["steps_to"]) == {"0.1", "0.01", "0.001", "0.0001"}
        assert "history" not in out[name]
        reached = [v for v in out[name]["steps_to"].values() if v is not None]
        assert reached == sorted(reached)
    assert out["compressed"]["final_error"] <= 1e-4
    ratio = out["speedup"]["steps_to"]["0.01"]
    assert ratio == pytest.approx(out["wide"]["steps_to"]["0.01"] / out["compressed"]["steps_to"]["0.01"])
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_compare_table(capsys):
    assert main(SMALL + ["--no-plot", "--problem", "factorization", "--lr", "5"]) == 0
    out = capsys.readouterr().out
    assert "factorization: d=16" in out and "speedup steps" in out and "0.0001" in out


def _run(*args):
    return subprocess.run([sys.executable, "-m", "dlnref", *args], capture_output=True, text=True, timeout=120)


def test_a_network_that_misses_the_tolerance_is_named_with_what_to_try(capsys):
    assert main(SMALL) == 0
    assert "did not reach --tol" not in capsys.readouterr().out   # both converge in 4000 steps
    assert main([*SMALL[:-2], "50", "--quiet", "--no-als"]) == 0
    out = capsys.readouterr().out
    for name in ("wide", "compressed"):
        assert f"{name} did not reach --tol 0.0001 in 50 steps: raise --steps" in out


def test_unknown_problem_exits_2_without_traceback():
    proc = _run("compare", "--problem", "denoising")
    assert proc.returncode == 2
    assert "invalid choice: 'denoising'" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_value_exits_2_naming_the_argument():
    proc = _run("compare", "--d", "10", "--rank", "6", "--no-plot")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "rank" in proc.stderr


def test_divergence_exits_1_with_advice():
    proc = _run(*SMALL, "--lr", "1e5", "--no-plot")
    assert proc.returncode == 1 and "smaller --lr" in proc.stderr and "Traceback" not in proc.stderr
