"""What a new user meets: one exit-code contract, messages that name the argument, no lost or partial files.

Each input of issue 11 has its test here, with the message it gets. ``main`` runs
in-process (fast); exit codes are 0 done, 1 diverged, 2 bad usage or bad input.
"""

import contextlib
import io
import json
import os
import stat
import tempfile
import textwrap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dlnref
from dlnref._io import atomic_path
from dlnref.cli import main
from dlnref.experiments import _memory
from theory_checks.verdict import Finding, Verdict

TINY = ["compare", "--d", "8", "--rank", "1", "--fraction", "0.6", "--lr", "3", "--scale", "0.1",
        "--steps", "40", "--quiet"]


def run(argv, capsys):
    """Exit code, stdout and stderr of ``dlnref argv``."""
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_usage_error(argv, capsys, *fragments):
    """``argv`` exits 2 before training, with one line on stderr holding every fragment."""
    code, out, err = run(argv, capsys)
    assert code == 2, err
    assert out == ""
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1]
    for fragment in fragments:
        assert fragment in message, message
    return message


def files_under(folder):
    return sorted(os.path.relpath(os.path.join(root, f), folder)
                  for root, _, names in os.walk(folder) for f in names)


# --- results lost or written wrongly ----------------------------------------------------------------

def test_plot_without_extension_gets_png_and_leaves_no_hidden_file(tmp_path, capsys):
    code, out, err = run(TINY + ["--plot", str(tmp_path / "myplot")], capsys)
    assert code == 0, err
    assert f"figure: {tmp_path / 'myplot.png'}" in out
    assert files_under(tmp_path) == ["myplot.png"]
    assert (tmp_path / "myplot.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("where, fragment", [
    ("x.txt", "unknown file type .txt; use one of"),
    ("folder", "is a folder; give a file name"),
    ("afile/x.png", "afile is a file, not a folder"),
    ("missing/x.png", "the folder " + os.path.join("{tmp}", "missing") + " does not exist; create it first"),
])
def test_bad_plot_path_is_refused_before_training(tmp_path, capsys, where, fragment):
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("")
    assert_usage_error(TINY + ["--plot", str(tmp_path / where)], capsys, "--plot", fragment.format(tmp=tmp_path))
    assert files_under(tmp_path) == ["afile"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_read_only_folders_are_refused(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert_usage_error(TINY + ["--plot", str(locked / "f.png")], capsys, "cannot write into")
        assert_usage_error(["figures", "--quick", "--out", str(locked / "figs")], capsys, "--out", "cannot write")
        assert_usage_error(["golden", "export", str(locked)], capsys, "DIR", "cannot write into")
    finally:
        locked.chmod(stat.S_IRWXU)


@pytest.mark.parametrize("argv, fragment", [
    (TINY + ["--plot", "{dir}/f.png"], "--plot {dir}/f.png: cannot write into {dir} (Permission denied)"),
    (["figures", "--quick", "--out", "{dir}/figs"], "--out {dir}/figs: cannot write into {dir} (Permission denied)"),
    (["golden", "export", "{dir}"], "DIR {dir}: cannot write into {dir} (Permission denied)"),
])
def test_unwritable_folders_are_refused_before_any_work(tmp_path, capsys, monkeypatch, argv, fragment):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("dlnref._io.tempfile.TemporaryFile", denied)  # a read-only folder, even for root
    assert_usage_error([a.format(dir=tmp_path) for a in argv], capsys, fragment.format(dir=tmp_path))
    assert files_under(tmp_path) == []


def test_a_failed_figure_loses_no_results(tmp_path, capsys, monkeypatch):
    def broken(result, path):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr("dlnref.plots.plot_compare", broken)
    code, out, err = run(TINY + ["--json", "--plot", str(tmp_path / "f.png")], capsys)
    assert code == 2
    assert json.loads(out)["compressed"]["params"] == 2 * 8 * 2 + 2**2
    assert err.strip() == f"dlnref compare: error: No space left on device: {tmp_path / 'f.png'}"


def test_compare_writes_no_figure_unasked(tmp_path, capsys):
    with contextlib.chdir(tmp_path):
        code, out, _ = run(TINY, capsys)
    assert code == 0 and "figure:" not in out
    assert files_under(tmp_path) == []


def test_quick_figures_never_replace_full_size_ones(tmp_path, capsys):
    (tmp_path / "numbers.json").write_text(json.dumps({"depth": {"size": "full"}}))
    assert_usage_error(["figures", "--quick", "--only", "depth", "--out", str(tmp_path)], capsys,
                       "holds full-size figures (depth)", "figures-quick")
    assert files_under(tmp_path) == ["numbers.json"]


def test_quick_figures_go_to_their_own_folder_by_default(tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr("dlnref.experiments.figures.make_figures", lambda size, only, out, progress, executor=None: calls.append((size, out)) or {})
    with contextlib.chdir(tmp_path):
        assert main(["figures", "--quick", "--quiet"]) == 0
        assert main(["figures", "--quiet"]) == 0
    assert calls == [("quick", "figures-quick"), ("full", "figures")]


@pytest.mark.parametrize("argv, fragment", [
    (["figures", "--quick", "--out", "{file}"], "--out {file} is a file, not a folder"),
    (["golden", "export", "{file}"], "DIR {file} is a file, not a folder"),
])
def test_figures_and_golden_onto_a_file_exit_2(tmp_path, capsys, argv, fragment):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    assert_usage_error([a.format(file=afile) for a in argv], capsys, fragment.format(file=afile))
    assert afile.read_text() == "keep"


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.json") as tmp:
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError
    assert files_under(tmp_path) == []


def test_a_figure_path_without_extension_is_written_whole_under_its_own_name(tmp_path):
    import matplotlib.pyplot as plt

    from dlnref.plots import save

    save(plt.figure(), tmp_path / "noext")
    assert files_under(tmp_path) == ["noext"]
    assert (tmp_path / "noext").read_bytes()[:4] == b"\x89PNG"


# --- tracebacks that became messages ------------------------------------------------------------------

@pytest.mark.parametrize("argv, fragments", [
    (["--data", "{missing}"], ["--data {missing}: no such file"]),
    (["--data", "{folder}"], ["--data {folder} is a folder", "u.data"]),
    (["--measurements", "0", "--problem", "sensing"], ["argument --measurements: expected an integer >= 1, got 0"]),
    (["--d", "-5"], ["argument --d: expected an integer >= 1, got -5"]),
    (["--d", "1000000"], ["--d 1000000 needs about", "TB of memory", "choose a smaller --d"]),
    (["--problem", "sensing", "--measurements", "10000000"],
     ["--measurements 10000000 needs about", "of memory", "smaller --d or --measurements"]),
    (["--lr", "nan"], ["argument --lr: expected 'auto' or a finite number > 0, got 'nan'"]),
    (["--fraction", "1.5"], ["argument --fraction: expected a finite number > 0 and <= 1, got 1.5"]),
    (["--depth", "1"], ["argument --depth: expected an integer >= 2, got 1"]),
])
def test_bad_compare_input_exits_2_naming_the_option(tmp_path, capsys, argv, fragments):
    names = {"missing": tmp_path / "u.data", "folder": tmp_path}
    assert_usage_error(["compare", *(a.format(**names) for a in argv)], capsys,
                       *(f.format(**names) for f in fragments))


def test_memory_estimate_uses_the_memory_available(capsys, monkeypatch):
    monkeypatch.setattr(_memory, "available_bytes", lambda: 10 * 2**20)
    message = assert_usage_error(["compare", "--d", "300"], capsys, "--d 300 needs about")
    assert "but 10.0 MB is available" in message



def test_memory_estimate_counts_the_problem_and_the_networks_it_trains():
    from dlnref.experiments.compare import CompareConfig

    dense = CompareConfig(d=300).resolved()   # completion, both networks, width 10, depth 3
    assert _memory.compare_bytes(dense) == 8 * (10 * 300**2 + 3 * 3 * 300**2 + 3 * (2 * 300 * 10 + 10**2))
    sparse = CompareConfig(d=10000, fraction=0.02, networks=("compressed",)).resolved()
    assert _memory.compare_bytes(sparse) == 8 * (4 * 2_000_000 + 3 * (2 * 10000 * 10 + 10**2))


def test_available_memory_is_read(monkeypatch):
    available = _memory.available_bytes()
    assert available is None or available > 0


# --- unclear or misleading messages -------------------------------------------------------------------

def test_rank_too_large_gives_a_cli_hint(capsys):
    message = assert_usage_error(["compare", "--rank", "6", "--d", "10"], capsys, "--rank 6 is too large for --d 10",
                                 "rank <= 5 here")
    assert "spectrum=" not in message


def test_width_below_rank_is_refused_before_training(capsys):
    assert_usage_error(["compare", "--width", "1"], capsys, "--width 1 is below --rank 5", "use --width 5 or more")


def test_divergence_names_the_network_and_the_options(capsys):
    code, out, err = run(TINY + ["--lr", "1e6"], capsys)
    assert code == 1 and out == "" and "Traceback" not in err
    assert "the wide DLN diverged" in err and "Try a smaller --lr (say 500000)" in err


def test_nan_weights_are_bad_input_not_divergence():
    problem = dlnref.MatrixFactorization(np.eye(3))
    weights = [np.eye(3), np.full((3, 3), np.nan)]
    with pytest.raises(ValueError, match=r"weights\[1\] \(W_2\) contains NaN or inf"):
        dlnref.gradient_descent(problem, weights, lr=0.1, steps=5)


@pytest.mark.parametrize("argv, fragments", [
    (["--split", "u1"], ["--split u1 needs --data PATH"]),
    (["--data", "{file}", "--problem", "sensing"], ["--data completes the ratings matrix", "--problem sensing"]),
    (["--data", "{file}", "--d", "50"], ["--d cannot be used with it"]),
    (["--plot", "a.png", "--no-plot"], ["contradict each other"]),
])
def test_options_that_would_be_ignored_are_refused(tmp_path, capsys, argv, fragments):
    ratings = tmp_path / "u.data"
    ratings.write_text("1\t1\t5\t0\n")
    assert_usage_error(["compare", *(a.format(file=ratings) for a in argv)], capsys, *fragments)


def test_an_option_of_another_problem_gets_a_note(capsys):
    code, _, err = run(TINY + ["--problem", "factorization"], capsys)
    assert code == 0
    assert "note: --fraction is unused: it applies to --problem completion, not factorization" in err


def test_a_long_message_is_cut_to_one_short_line(tmp_path, capsys):
    long_name = "x" * 3000
    message = assert_usage_error(["compare", "--data", str(tmp_path / long_name)], capsys, "more characters cut")
    assert len(message) < 1200


def test_ratings_errors_are_one_short_line(tmp_path, capsys):
    ratings = tmp_path / "u.data"
    ratings.write_text("1\t1\t5\t0\n" + "x" * 10_000_000 + "\n")
    assert len(assert_usage_error(["compare", "--data", str(ratings)], capsys, str(ratings))) < 1200
    ratings.write_text("1\t1\t5\t0\n")
    assert_usage_error(["compare", "--data", str(ratings), "--split", "u1"], capsys, "u1.base")


def test_top_level_help_states_the_exit_codes_without_rest_markup(capsys):
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "``" not in text
    assert ("exit codes: 0 done; 1 training diverged, or a check found a failure (an exact claim, a conform check, a "
            "golden file, a sweep run); 2 bad usage or bad input") in text
    assert "130 interrupted (Ctrl-C); 141 the reader of the output left (| head), silently; 70 a bug in dlnref" in text


def test_every_subcommand_help_states_the_exit_codes(capsys):
    for command in (["compare"], ["check"], ["figures"], ["golden", "export"]):
        assert main([*command, "--help"]) == 0
        assert "exit codes: 0 done" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("build, error, fragment", [
    (lambda: dlnref.MatrixFactorization([[1.0, 2.0]]), TypeError, "target must be an array"),
    (lambda: dlnref.MatrixFactorization(np.zeros((0, 3))), ValueError, "the empty shape (0, 3)"),
    (lambda: dlnref.MatrixSensing(np.ones((4, 3)), np.zeros((0, 4, 3))), ValueError,
     "operators must hold at least one sensing matrix, got the empty shape (0, 4, 3)"),
    (lambda: dlnref.make_problem("completion", 6, 2), TypeError, "shape must be a pair (m, n), got 6"),
    (lambda: dlnref.MatrixCompletion(np.ones((3, 3)), np.eye(3, dtype=bool), np.ones((3, 3), dtype=bool)),
     ValueError, "test_mask must not overlap mask: 3 entries are in both"),
    (lambda: dlnref.MatrixFactorization(np.eye(2)).loss([[1.0, 0.0], [0.0, 1.0]]), TypeError,
     "X must be an array (say a numpy.ndarray), got list"),
    (lambda: dlnref.dynamics.singular_values([[1.0]]), TypeError, "expected an array"),
])
def test_api_messages_say_what_is_expected(build, error, fragment):
    with pytest.raises(error) as info:
        build()
    assert fragment in str(info.value)


def numpy_verdict():
    """A verdict whose numbers are NumPy scalars and arrays, as the checks compute them."""
    finding = Finding("factorization", {"gap": np.float64(0.5), "ok": np.bool_(True), "t": np.arange(2)},
                      "gap < 1", np.float64(0.5) < 1, np.bool_(False))
    return Verdict("claim", "c", "p", [finding])


def test_verdicts_hold_python_booleans_and_numbers():
    verdict = json.loads(json.dumps(numpy_verdict().to_dict()))
    assert verdict["holds"] is True
    assert verdict["findings"][0]["holds"] is True and verdict["findings"][0]["exact"] is False
    assert verdict["findings"][0]["measured"] == {"gap": 0.5, "ok": True, "t": [0, 1]}


def test_check_json_gives_json_booleans(capsys):
    code, out, _ = run(["check", "--claim", "compression_size", "--json", "--quiet"], capsys)
    assert code == 0
    assert '"holds": true' in out and '"exact": true' in out and '"True"' not in out
    assert json.loads(out)[0]["findings"][1]["measured"]["compressed"] == 2100


# --- a bug in dlnref never poses as the user's mistake -------------------------------------------------

@pytest.mark.parametrize("fault", [ValueError("planted"), TypeError("planted"), KeyError("planted"),
                                   FileNotFoundError(2, "No such file or directory", "/nonexistent/internal")])
def test_a_fault_inside_dlnref_is_reported_as_a_bug(capsys, monkeypatch, fault):
    def planted(*args, **kwargs):
        raise fault

    monkeypatch.setattr("dlnref.experiments.compare.auto_lr", planted)
    code, out, err = run(["compare", "--d", "8", "--rank", "1", "--quiet"], capsys)
    assert code == 70 and out == ""
    assert "Traceback (most recent call last)" in err and f"{type(fault).__name__}" in err
    assert err.strip().splitlines()[-1] == ("dlnref compare: this is a bug in dlnref, not a problem with your input: "
                                            "please report it with the traceback above and the command line")


def test_an_os_error_on_the_users_own_path_is_bad_input(tmp_path, capsys, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")   # no file name: atomic_path names the user's file

    monkeypatch.setattr("dlnref.plots.Figure.savefig", full_disk)
    code, out, err = run(TINY + ["--plot", str(tmp_path / "f.png")], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.strip() == f"dlnref compare: error: No space left on device: {tmp_path / 'f.png'}"
    assert files_under(tmp_path) == []


def test_ctrl_c_prints_one_line_and_exits_130():
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "dlnref", "compare", "--steps", "10000000", "--tol", "0",
                             "--networks", "wide"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr.readline().startswith("[compare] lr")   # training has begun
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and out == "" and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "dlnref compare: interrupted"


# --- the contract over the argument space -----------------------------------------------------------

PLOTS = [None, None, None, "f.png", "f", "f.txt", "folder", "afile/f.png", "sub/f.svg"]
#: Values per option, mostly valid (so that runs train, converge or diverge) with some invalid ones.
VALUES = {
    "--problem": ["factorization", "completion", "sensing"],
    "--d": ["4", "6", "8", "10", "-2", "0"],
    "--rank": ["1", "1", "2", "3", "0"],
    "--depth": ["2", "3", "3", "4", "1"],
    "--width": ["1", "2", "4", "6", "12", "0"],
    "--fraction": ["0.3", "0.6", "1", "0", "1.5", "0.01"],
    "--measurements": ["20", "40", "0"],
    "--scale": ["0.01", "0.1", "1", "1e3", "0", "nan"],
    "--lr": ["0.5", "3", "1e5", "-1", "x"],
    "--outer-lr-scale": ["1", "2", "0"],
    "--tol": ["0", "1e-3", "0.5", "-1", "inf"],
    "--record-every": ["1", "3", "0"],
    "--seed": ["0", "3", "-1"],
    "--data": ["missing.data", "folder"],
    "--split": ["random", "u1", "u9"],
}
RARE = ("--data", "--split")


@st.composite
def compare_arguments(draw):
    argv = ["compare", "--quiet", "--steps", draw(st.sampled_from(["0", "5", "25", "-1"]))]
    for option, values in VALUES.items():
        if draw(st.integers(0, 5 if option in RARE else 2)) == 0:
            argv += [option, draw(st.sampled_from(values))]
    plot = draw(st.sampled_from(PLOTS))
    if plot is not None:
        argv += ["--plot", plot]
    if draw(st.booleans()):
        argv.append("--json")
    return argv


@given(compare_arguments())
def test_every_compare_run_exits_0_1_or_2_and_leaves_no_partial_file(argv):
    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
        os.mkdir("folder")
        with open("afile", "w"):
            pass
        before = files_under(folder)
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(argv)  # an exception here (a traceback) fails the test
        assert code in (0, 1, 2)
        assert "Traceback" not in err.getvalue()
        plot = argv[argv.index("--plot") + 1] if "--plot" in argv else None
        written = sorted(set(files_under(folder)) - set(before))
        expected = [plot + (".png" if "." not in os.path.basename(plot) else "")] if plot and code == 0 else []
        assert written == expected, (argv, code)


@pytest.mark.parametrize("argv, fragment", [
    (["compare", "--lr", "-5"], "dlnref compare: error: argument --lr: expected 'auto' or a finite number > 0, got '-5'"),
    (["compare", "--problem", "svd"], "dlnref compare: error: argument --problem: invalid choice: 'svd'"),
    (["check", "--claim", "nosuch"], "dlnref check: error: argument --claim: invalid choice: 'nosuch'"),
    (["sweep", "--frobnicate", "3", "--out", "x"], "dlnref sweep: error: unrecognized arguments: --frobnicate 3 (see dlnref sweep --help)"),
])
def test_parser_errors_are_one_line(argv, fragment, capsys):
    """Errors that argparse finds read like every other usage error: one line, no usage block."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err


# --- the inputs of the trust issue, each with its message ---------------------------------------------

def test_a_one_line_ratings_file_is_named(tmp_path, capsys):
    ratings = tmp_path / "u.data"
    ratings.write_text("1\t1\t5\t0\n")
    assert_usage_error(["compare", "--data", str(ratings)], capsys,
                       f"{ratings} (a random test split): holding out a fraction 0.2 of its 1 entries leaves an "
                       "empty part; it needs at least 5 entries")


def test_ratings_with_a_width_above_their_smaller_side(tmp_path, capsys):
    ratings = tmp_path / "u.data"
    ratings.write_text("".join(f"{u}\t{i}\t{1 + (u + i) % 5}\t0\n" for u in range(1, 7) for i in range(1, 9)))
    assert_usage_error(["compare", "--data", str(ratings), "--rank", "4"], capsys,
                       "the compressed DLN's width (2 * --rank = 8) exceeds the smaller side 6 of the 6 x 8 ratings "
                       f"matrix of --data {ratings}; use a smaller --rank or --width")


def test_exact_compression_of_ratings_is_refused(tmp_path, capsys):
    ratings = tmp_path / "u.data"
    ratings.write_text("1\t1\t5\t0\n")
    assert_usage_error(["compare", "--data", str(ratings), "--compression", "exact"], capsys,
                       "--compression exact needs a synthetic dense problem", "with --data use --compression spectral")


def test_an_empty_plot_path_is_refused(capsys):
    assert_usage_error(TINY + ["--plot", ""], capsys, "--plot '' is empty; give a file name, such as figure.png")


@pytest.mark.parametrize("edit, fragment", [
    (lambda m: m["cases"]["factorization"].update(file=3), "cases.factorization.file must be a string, got 3"),
    (lambda m: m["cases"]["sensing"].update(config="small"), "cases.sensing.config must be a JSON object, got 'small'"),
    (lambda m: m["cases"]["completion"].update(file="../x.npz"), "cases.completion.file must name a .npz file in"),
    (lambda m: m["cases"]["completion"].update(file=".."), "cases.completion.file must name a .npz file in"),
])
def test_golden_manifest_fields_of_the_wrong_type_are_named(tmp_path, capsys, edit, fragment):
    assert main(["golden", "export", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    edit(manifest)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert_usage_error(["golden", "verify", str(tmp_path)], capsys, str(tmp_path / "manifest.json"), fragment)


def test_golden_verify_reports_a_truncated_file(tmp_path, capsys):
    import hashlib

    assert main(["golden", "export", str(tmp_path)]) == 0
    npz = tmp_path / "completion.npz"
    npz.write_bytes(npz.read_bytes()[:1000])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["cases"]["completion"]["sha256"] = hashlib.sha256(npz.read_bytes()).hexdigest()   # hash and all
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    code, out, err = run(["golden", "verify", str(tmp_path)], capsys)
    assert code == 1 and "Traceback" not in err
    assert "FAIL completion.npz: not a readable .npz file (BadZipFile" in out


def test_a_golden_export_on_a_full_disk_leaves_nothing(tmp_path, capsys, monkeypatch):
    from dlnref.oracle import golden

    real, calls = np.savez, []

    def third_fills_the_disk(file, **arrays):
        calls.append(file)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(file, **arrays)

    monkeypatch.setattr(golden.np, "savez", third_fills_the_disk)
    code, out, err = run(["golden", "export", str(tmp_path / "g")], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.strip() == f"dlnref golden: error: No space left on device: {tmp_path / 'g' / 'sensing.npz'}"
    assert files_under(tmp_path) == []


# --- a second round of inputs (a new user's trial of 715 inputs) -----------------------------------------------

def _ratings_folder(folder, split=None, test_lines=None):
    """A small ratings file (and a split of it) in ``folder``; returns the u.data path."""
    lines = [f"{u}\t{i}\t{1 + (u * i) % 5}\t0\n" for u in range(1, 13) for i in range(1, 15) if (u + i) % 3]
    path = folder / "u.data"
    path.write_text("".join(lines))
    if split:
        (folder / f"{split}.base").write_text("".join(lines[:-10]))
        (folder / f"{split}.test").write_text("".join(test_lines if test_lines is not None else lines[-10:]))
    return path


@pytest.mark.parametrize("argv, fragments", [
    (["--tol", "2"], ["--tol is a relative recovery error to stop at, in [0, 1)", "got 2"]),
    (["--scale", "0"], ["argument --scale: expected a finite number > 0, got 0"]),
])
def test_compare_refuses_values_out_of_range(capsys, argv, fragments):
    assert_usage_error(["compare", *argv], capsys, *fragments)


def test_a_split_whose_files_do_not_belong_to_the_ratings_is_named(tmp_path, capsys):
    path = _ratings_folder(tmp_path, "u5", ["9999\t1\t3\t1\n"])
    assert_usage_error(["compare", "--data", str(path), "--split", "u5"], capsys,
                       f"{tmp_path / 'u5.test'} has user id 9999, above the largest of {path} (12)")
    lines = path.read_text().splitlines(keepends=True)
    (tmp_path / "u5.test").write_text("".join(lines[:3]))   # ratings that are also in u5.base
    assert_usage_error(["compare", "--data", str(path), "--split", "u5"], capsys,
                       f"{tmp_path / 'u5.base'} and {tmp_path / 'u5.test'} both hold 3 ratings",
                       "test ratings must be held out of training")


def test_an_init_that_is_not_small_is_blamed_not_auto_lr(capsys):
    code, out, err = run(["compare", "--d", "10", "--rank", "2", "--steps", "50", "--scale", "1e10", "--quiet"], capsys)
    assert code == 1 and "Traceback" not in err and "bug in dlnref" not in err
    assert "lr=auto assumes a small init, and --scale 1e+10 starts the end-to-end matrix at scale^L = 1e+30" in err


def test_figures_refuse_an_empty_out(capsys):
    assert_usage_error(["figures", "--quick", "--only", "depth", "--out", ""], capsys, "--out '' is empty")


@pytest.mark.parametrize("content, fragment", [
    (b"d = [10, 20\nrank = 2\n", "is not a TOML grid file: "),
    (b"d = 10\nd = 12\n", "is not a TOML grid file: "),
    (b"\xff\xfe\x00garbage", "is not a TOML grid file: "),
    (b"", "holds no grid keys"),
])
def test_sweep_names_a_grid_file_that_is_not_a_grid(tmp_path, capsys, content, fragment):
    grid = tmp_path / "grid.toml"
    grid.write_bytes(content)
    assert_usage_error(["sweep", "--config", str(grid), "--out", str(tmp_path / "o"), "--workers", "1"], capsys,
                       f"--config {grid}", fragment)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("extra, fragment", [
    (["--problem", "sensing"], "--data completes the ratings matrix of its file, so --problem sensing cannot be used"),
    (["--d", "10"], "so --d 10 cannot be used with it"),
    (["--backend", "array_api_strict"], "--data ratings are completed from their observed entries on NumPy only"),
    (["--rank", "70"], "the compressed DLN's width (2 * --rank = 140) exceeds the smaller side 12"),
    (["--split", "u1"], "split file"),
])
def test_sweep_checks_ratings_runs_before_any_run(tmp_path, capsys, extra, fragment):
    path = _ratings_folder(tmp_path)
    assert_usage_error(["sweep", "--data", str(path), "--steps", "5", "--out", str(tmp_path / "o"), "--workers", "1",
                        *extra], capsys, "run 1 of 1 of the grid", fragment)
    assert not (tmp_path / "o").exists()


def test_sweep_refuses_a_validation_fraction_of_1(tmp_path, capsys):
    assert_usage_error(["sweep", "--validation-fraction", "1", "--out", str(tmp_path / "o"), "--workers", "1"], capsys,
                       "--validation-fraction must lie in (0, 1), got 1.0")


def test_sweep_checks_a_bad_ratings_line_and_memory_before_any_run(tmp_path, capsys):
    path = _ratings_folder(tmp_path)
    path.write_text(path.read_text() + "hello world\n")
    assert_usage_error(["sweep", "--data", str(path), "--out", str(tmp_path / "o"), "--workers", "1"], capsys,
                       f"{path}, line ", "expected 'user<TAB>item<TAB>rating")
    assert_usage_error(["sweep", "--d", "100000", "--out", str(tmp_path / "o"), "--workers", "1"], capsys,
                       "--problem completion with --d 100000 needs about", "choose a smaller --d")


def test_an_edited_stored_run_is_computed_again(tmp_path, capsys):
    argv = ["sweep", "--d", "8", "--rank", "1", "--steps", "20", "--out", str(tmp_path), "--workers", "1",
            "--quiet", "--no-plot"]
    assert main(argv) == 0
    stored = next((tmp_path / "runs").iterdir())
    stored.write_text(stored.read_text().replace('"d": 8,', '"d": 99,'))
    capsys.readouterr()
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "1 computed, 0 already stored" in out and "holds another configuration" in err
    assert json.loads(stored.read_text())["d"] == 8


def test_executor_options_that_cannot_work_are_bad_input(capsys):
    pytest.importorskip("distributed")
    assert_usage_error(["check", "--claim", "compression_size", "--scheduler", "bogus"], capsys,
                       "--scheduler bogus: no Dask scheduler could be reached there")
    assert_usage_error(["check", "--claim", "compression_size", "--workers", "1000000"], capsys,
                       "--workers 1000000 asks for more processes than this machine can run usefully")
    assert_usage_error(["check", "--claim", "compression_size", "--scheduler", ""], capsys, "--scheduler '' is empty")


def test_a_failed_golden_export_keeps_the_old_files(tmp_path, capsys):
    assert main(["golden", "export", str(tmp_path)]) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    (tmp_path / "sensing.npz").unlink()
    (tmp_path / "sensing.npz").mkdir()   # the last case cannot be written
    capsys.readouterr()
    code, _, err = run(["golden", "export", str(tmp_path)], capsys)
    assert code == 2 and "Traceback" not in err
    for name in ("factorization.npz", "completion.npz", "manifest.json"):
        assert (tmp_path / name).read_bytes() == before[name]


@pytest.mark.parametrize("edit, outcome", [
    (lambda m: m.update(cases={}), (2, "holds no cases, so there is nothing to verify")),
    (lambda m: m.update(format=99), (1, "FAIL manifest.json: format is 99, this dlnref writes 2")),
    (lambda m: m.update(recorded_steps=[0, 1]), (1, "FAIL manifest.json: recorded_steps is [0, 1]")),
    (lambda m: m["cases"]["completion"]["arrays"].update(target=[99, 99]), (1, "the manifest's arrays")),
])
def test_golden_verify_checks_the_manifest_itself(tmp_path, capsys, edit, outcome):
    assert main(["golden", "export", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    edit(manifest)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    code, out, err = run(["golden", "verify", str(tmp_path)], capsys)
    assert code == outcome[0] and outcome[1] in out + err and "Traceback" not in err


def test_golden_verify_of_a_file_or_of_nothing(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text("{}")
    assert_usage_error(["golden", "verify", str(tmp_path / "manifest.json")], capsys,
                       f"DIR {tmp_path / 'manifest.json'} is a file; give the folder")
    assert_usage_error(["golden", "verify", ""], capsys, "DIR '' is empty")


def test_conform_reports_an_exit_and_a_bad_return_as_the_functions(tmp_path, capsys, monkeypatch):
    (tmp_path / "badfuncs.py").write_text("import sys\ndef exits(*a):\n    sys.exit(4)\ndef nothing(*a):\n    return None\n")
    monkeypatch.chdir(tmp_path)
    common = ["--max-examples", "2", "--dtype", "float64", "--problem", "sensing", "--alpha", "1"]
    code, out, _ = run(["conform", "badfuncs:exits", "--kind", "trajectory", "--steps", "3", *common], capsys)
    assert code == 1 and "your function raised ExitCalled: sys.exit(4)" in out
    code, out, _ = run(["conform", "badfuncs:nothing", "--kind", "step", *common], capsys)
    assert code == 1 and "your function returned NoneType 'None', which is not a list of real arrays" in out
    assert "Likely cause: the return value above" in out


def test_classify_names_images_of_two_sizes_and_a_model_too_large(tmp_path, capsys):
    from dlnref.nn.images import write_idx

    rng = np.random.default_rng(0)
    for prefix, n, side in (("train", 12, 6), ("t10k", 4, 5)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", (rng.random((n, side, side)) * 255).astype(np.uint8))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 3, n).astype(np.uint8))
    assert_usage_error(["classify", "--data", str(tmp_path), "--hidden", "8", "--rank", "1", "--steps", "2"], capsys,
                       f"{tmp_path / 't10k-images-idx3-ubyte'} holds images of 5 x 5 pixels but "
                       f"{tmp_path / 'train-images-idx3-ubyte'} of 6 x 6")
    assert_usage_error(["classify", "--hidden", "1000000"], capsys, "--hidden 1000000 needs about",
                       "choose a smaller --hidden")


# --- a third round (a second trial of about 750 inputs) ---------------------------------------------------------

@pytest.mark.parametrize("line", ["+1\t1\t3\t0\n", "1_0\t3\t3\t0\n", "1\t 3\t3\t0\n", "1\t3\t3.0\t0\n"])
def test_ratings_fields_are_plain_digits(tmp_path, capsys, line):
    ratings = tmp_path / "u.data"
    ratings.write_text("1\t1\t5\t0\n" + line)
    assert_usage_error(["compare", "--data", str(ratings)], capsys, f"{ratings}, line 2: expected")


def test_a_ratings_path_that_is_no_regular_file_is_refused(capsys):
    assert_usage_error(["compare", "--data", "/dev/zero"], capsys, "/dev/zero is not a regular file")


def test_corrupted_or_impossible_idx_files_are_named(tmp_path):
    import gzip

    from dlnref.nn import images

    path = tmp_path / "x-idx3-ubyte.gz"
    good = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02ab")
    path.write_bytes(good[:10] + bytes(len(good) - 18) + good[-8:])   # a valid header, a zeroed body
    with pytest.raises(dlnref.InputError, match="not a readable gzip file"):
        images.read_idx(path)
    plain = tmp_path / "y-idx3-ubyte"
    plain.write_bytes(b"\x00\x00\x08\xff" + b"\x00\x00\x00\x01" * 255 + b"a")
    with pytest.raises(dlnref.InputError, match="announces 255 dimensions"):
        images.read_idx(plain)
    plain.write_bytes(b"\x00\x00\x08\x03" + (2**31).to_bytes(4, "big") * 2 + b"\x00\x00\x00\x04")
    with pytest.raises(dlnref.InputError, match="need 18446744073709551616 bytes of data, but the file holds 0"):
        images.read_idx(plain)


def test_figures_refuse_hand_edited_numbers_before_drawing(tmp_path, capsys):
    (tmp_path / "numbers.json").write_text('{"depth": null}')
    assert_usage_error(["figures", "--quick", "--only", "trajectory_factorization", "--out", str(tmp_path)], capsys,
                       f"{tmp_path / 'numbers.json'} holds entries that dlnref figures did not write")
    assert files_under(tmp_path) == ["numbers.json"]
    assert_usage_error(["figures", "--quick", "--only", "nope", "--out", str(tmp_path)], capsys,
                       "--only 'nope': the figures are trajectory_factorization")


def test_golden_verify_of_an_npy_and_of_an_edited_config(tmp_path, capsys):
    import hashlib

    assert main(["golden", "export", str(tmp_path)]) == 0
    np.save(tmp_path / "x.npy", np.zeros(3))
    (tmp_path / "factorization.npz").write_bytes((tmp_path / "x.npy").read_bytes())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["cases"]["factorization"]["sha256"] = hashlib.sha256((tmp_path / "x.npy").read_bytes()).hexdigest()
    manifest["cases"]["completion"]["config"]["lr"] = 1e300
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    code, out, err = run(["golden", "verify", str(tmp_path)], capsys)
    assert code == 1 and "Traceback" not in err
    assert "FAIL factorization.npz: not an .npz archive (it holds one ndarray)" in out
    assert "FAIL completion.npz: the manifest's config of 'completion' differs from this dlnref's case" in out


def test_conform_reports_what_the_users_function_does_however_it_fails(tmp_path, capsys, monkeypatch):
    (tmp_path / "odd.py").write_text(textwrap.dedent('''
        import numpy as np

        class Stop(BaseException):
            pass

        def base(*a):
            raise Stop("from a test framework")

        def noisy(layers, G):
            print("debug: called")
            return [np.zeros_like(w) for w in layers]

        def complex_grads(layers, G):
            return [np.zeros_like(w) + 1e-3j for w in layers]

        def bad_iter(layers, G):
            def gen():
                raise KeyError("inside the generator")
                yield
            return gen()
    '''))
    monkeypatch.chdir(tmp_path)
    for function, fragment in (("base", "your function raised UserBaseException: Stop: from a test framework"),
                               ("complex_grads", "which is not a list of real arrays (TypeError: complex entries)"),
                               ("bad_iter", "(KeyError: 'inside the generator')")):
        code, out, err = run(["conform", f"odd:{function}", "--kind", "backward", "--max-examples", "2",
                              "--dtype", "float64"], capsys)
        assert code == 1 and fragment in out and "Traceback" not in err, (function, out, err)
    code, out, err = run(["conform", "odd:noisy", "--kind", "backward", "--max-examples", "2", "--dtype", "float64",
                          "--json"], capsys)
    assert code == 1 and json.loads(out)["passed"] is False and "debug: called" in err


def test_sweep_refuses_a_grid_too_large_and_a_seed_too_large(tmp_path, capsys):
    assert_usage_error(["sweep", "--seeds", "0-100000000", "--out", str(tmp_path / "o")], capsys,
                       "range '0-100000000' holds 100,000,001 values, more than a sweep's 100,000 runs")
    assert_usage_error(["sweep", "--d", "10-1000", "--seeds", "0-999", "--out", str(tmp_path / "o")], capsys,
                       "the grid holds 991,000 runs (991 d x 1000 seed), more than 100,000")
    assert_usage_error(["sweep", "--seed", str(2**64), "--out", str(tmp_path / "o"), "--workers", "1"], capsys,
                       "--seed must be below 2^63")


@pytest.mark.parametrize("call, error, fragment", [
    (lambda: dlnref.gradient_descent(None, [np.eye(3)], 0.1, 2), dlnref.InputTypeError, "problem must be a dlnref problem"),
    (lambda: dlnref.gradient_descent(dlnref.MatrixFactorization(np.eye(3)), None, 0.1, 2), dlnref.InputTypeError,
     "weights must be a list of layers"),
    (lambda: dlnref.gradient_descent(dlnref.MatrixFactorization(np.eye(3)), [np.eye(3) + 0j], 0.1, 2),
     dlnref.InputTypeError, "must have a real floating dtype, got complex128"),
    (lambda: dlnref.gradient_descent(dlnref.MatrixFactorization(np.eye(3)), [np.eye(3)], 0.1, 2, progress=5),
     dlnref.InputTypeError, "progress must be None or a function, got int"),
    (lambda: dlnref.compress(np.eye(6), 3), dlnref.InputTypeError, "problem must be a dlnref problem"),
    (lambda: dlnref.train_exact(dlnref.MatrixFactorization(np.eye(4)), "exact", 0.1, 2), dlnref.InputTypeError,
     "compression must be the ExactCompression"),
    (lambda: dlnref.svd(np.ones(3)), dlnref.InputError, "x must be a 2-D array"),
    (lambda: dlnref.svd(np.full((2, 2), np.nan)), dlnref.InputError, "x contains NaN or inf"),
])
def test_the_api_refuses_bad_arguments_with_its_own_error(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)


def test_train_exact_refuses_a_problem_of_another_shape():
    problem = dlnref.make_problem("factorization", (6, 6), 1, seed=0)
    pair = dlnref.compress_exact(problem, dlnref.init_weights([6] * 4, 1e-2, seed=1), 1)
    with pytest.raises(dlnref.InputError, match=r"built for a \(6, 6\) network, but the problem has shape \(8, 8\)"):
        dlnref.train_exact(dlnref.make_problem("factorization", (8, 8), 1, seed=0), pair, 0.1, 2)


def test_mlp_data_of_the_wrong_kind_is_refused():
    from dlnref.nn import mlp

    with pytest.raises(dlnref.InputTypeError, match="labels must be integers, got dtype float64"):
        mlp.labelled_set(np.zeros((2, 4)), [0.0, 1.0], 3)
    with pytest.raises(dlnref.InputError, match="images contain NaN or inf"):
        mlp.labelled_set(np.full((2, 4), np.nan), [0, 1], 3)
    with pytest.raises(dlnref.InputError, match="with n >= 1"):
        mlp.labelled_set(np.zeros((0, 4)), [], 3)
    layout = mlp.mlp_layout(4, 5, 8)
    with pytest.raises(dlnref.InputError, match="the training set has 3 classes, the layout's output layer 5"):
        mlp.train_mlp(mlp.init_mlp(layout), layout, mlp.labelled_set(np.zeros((2, 4)), [0, 1], 3), 0.1, 1)


def test_a_closed_pipe_is_a_quiet_exit_not_a_bug():
    """``dlnref compare --json | head -c 10``: the reader leaves before the output is written."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "dlnref", "compare", "--d", "12", "--rank", "2", "--steps", "50",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()                              # the reader has gone before dlnref has imported
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "bug" not in err, err
