"""``dlnref sweep``: the grid, the store, resumption and faults, on one process and on a 2-worker Dask cluster."""

import csv
import dataclasses
import functools
import json
import os
import sys

import pytest

from dlnref.cli import main
from dlnref.errors import InputError
from dlnref.experiments.compare import CompareConfig, run_compare
from dlnref.experiments.executor import DaskUnavailableError, Progress, SerialExecutor, open_executor
from dlnref.experiments.sweep import config_hash, configs, make_grid, run_row, run_sweep

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module

#: A completion small enough for a run to take a fraction of a second.
TINY = {"problem": "completion", "d": 12, "rank": 2, "fraction": 0.6, "lr": 3.0, "scale": 0.03,
        "outer_lr_scale": 2.0, "steps": 600}
#: Columns that depend on the clock or the process, not on the configuration.
CLOCK = ("seconds", "worker")


@pytest.fixture(scope="module")
def cluster():
    """One LocalCluster of 2 worker processes for the module (start-up costs seconds); a task is
    rescheduled once after its worker died."""
    with open_executor(workers=2, retries=1, quiet=True) as executor:
        yield executor


def serial():
    return SerialExecutor(Progress("test", quiet=True))


def tiny_grid(**changes):
    return configs(make_grid({**TINY, "depth": [2, 3], "seed": "0-1", **changes}))


def numbers(row):
    """A row without the columns that depend on the clock or the worker."""
    return {k: v for k, v in row.items() if k not in CLOCK and "seconds" not in k}


def test_grid_expands_lists_and_ranges_in_field_order():
    grid = make_grid({"seeds": "0-2", "depth": [2, 3], "d": "10,12", "lr": "none", "scale": 0.1})
    assert list(grid) == ["d", "depth", "scale", "lr", "seed"]
    assert grid == {"d": [10, 12], "depth": [2, 3], "scale": [0.1], "lr": [None], "seed": [0, 1, 2]}
    runs = configs(grid)
    assert len(runs) == 2 * 2 * 3
    assert [c.seed for c in runs[:3]] == [0, 1, 2] and runs[0].depth == runs[2].depth == 2
    assert runs[3] == CompareConfig(d=10, depth=3, scale=0.1, lr=None, seed=0)


def test_unknown_grid_key_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown grid key 'dept'; valid keys: .*depth.*seeds"):
        make_grid({"dept": [2]})


@pytest.mark.parametrize("values, message", [
    ({"d": 1.5}, r"d must be int, got 1.5"),
    ({"depth": "3-2"}, r"range '3-2' is empty"),
    ({"scale": "big"}, r"scale must be float, got 'big'"),
    ({"seed": []}, r"empty list"),
])
def test_bad_grid_values_are_named(values, message):
    with pytest.raises(ValueError, match=message):
        make_grid(values)


def test_a_tuple_field_takes_one_tuple_per_value(monkeypatch):
    import dlnref.experiments.sweep

    @dataclasses.dataclass
    class WithNetworks:
        networks: tuple | None = None

    field, = dataclasses.fields(WithNetworks)
    monkeypatch.setattr(dlnref.experiments.sweep, "grid_fields", lambda: {"networks": field})
    assert make_grid({"networks": "wide,compressed;compressed"}) == {"networks": [("wide", "compressed"),
                                                                                 ("compressed",)]}
    assert make_grid({"networks": ["wide", "compressed"]}) == {"networks": [("wide", "compressed")]}
    assert make_grid({"networks": [["wide"], ["compressed"]]}) == {"networks": [("wide",), ("compressed",)]}
    assert make_grid({"networks": "none"}) == {"networks": [None]}
    with pytest.raises(ValueError, match="networks must be a list of values"):
        make_grid({"networks": 3})


def test_config_hash_is_that_of_the_configuration():
    base = CompareConfig(**TINY)
    assert config_hash(base) == config_hash(CompareConfig(**TINY))
    changed = [dataclasses.replace(base, seed=1), dataclasses.replace(base, d=13), dataclasses.replace(base, lr=None)]
    assert len({config_hash(c) for c in [base, *changed]}) == 4


def test_row_holds_the_compare_result(tmp_path):
    config = CompareConfig(**{**TINY, "steps": 1500}, depth=3, seed=0)  # both reach 1e-2
    row = run_row(config)
    direct = run_compare(config)
    assert row["status"] == "ok" and row["config_hash"] == config_hash(config)
    assert row["wide_final_error"] == direct["wide"]["final_error"]
    assert row["compressed_steps_to_0.01"] == direct["compressed"]["steps_to"]["0.01"]
    assert row["speedup_steps_to_0.01"] == pytest.approx(
        direct["wide"]["steps_to"]["0.01"] / direct["compressed"]["steps_to"]["0.01"])
    assert row["compressed_params"] == 2 * 12 * 4 + 4**2 and row["width"] == 4


def test_cluster_rows_equal_serial_rows(cluster, tmp_path):
    grid = tiny_grid()
    on_cluster = run_sweep(grid, tmp_path / "cluster", cluster, plot=False)
    in_process = run_sweep(grid, tmp_path / "serial", serial(), plot=False)
    assert on_cluster.computed == in_process.computed == len(grid) == 4
    assert [numbers(r) for r in on_cluster.rows] == [numbers(r) for r in in_process.rows]
    assert all(r["status"] == "ok" for r in on_cluster.rows)
    assert {r["worker"] for r in on_cluster.rows}.isdisjoint({r["worker"] for r in in_process.rows})


def test_a_run_that_diverges_becomes_an_error_row(cluster, tmp_path):
    grid = tiny_grid(lr=[3.0, 1e6])  # lr 1e6 diverges at once
    report = run_sweep(grid, tmp_path, cluster, plot=False)
    bad = [r for r in report.rows if r["lr"] == 1e6]
    assert report.failed == len(bad) == 4 and report.computed == 8
    assert all(r["status"] == "error" and r["error"].startswith("DivergenceError: the wide DLN diverged")
               for r in bad)
    assert all(r["status"] == "ok" and r["compressed_final_error"] < 1 for r in report.rows if r["lr"] == 3.0)
    again = run_sweep(grid, tmp_path, cluster, plot=False)
    assert again.computed == 0 and again.skipped == 8
    assert run_sweep(grid, tmp_path, cluster, plot=False, retry_errors=True).computed == 4


def test_values_that_compare_refuses_stop_the_sweep_before_any_run(tmp_path):
    grid = tiny_grid(rank=[2, 7])  # rank 7 > d/2: compare refuses the spread spectrum
    with pytest.raises(InputError, match=r"run 5 of 8 of the grid \(d=12, rank=7, .*\): --rank 7 is too large for --d 12"):
        run_sweep(grid, tmp_path, SerialExecutor(Progress("t", quiet=True)), plot=False)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("argv, fragment", [
    (["--problem", "denoising"], "--problem must be one of 'factorization', 'completion', 'sensing', got 'denoising'"),
    (["--d", "-4"], "--d must be >= 1, got -4"),
    (["--depth", "1"], "--depth must be >= 2, got 1"),
    (["--networks", "wide,deep"], "--networks must be a non-empty selection of wide, compressed, got ('wide', 'deep')"),
    (["--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
])
def test_sweep_refuses_what_compare_refuses_with_exit_2(tmp_path, capsys, argv, fragment):
    out = tmp_path / "out"
    assert main(["sweep", *argv, "--steps", "5", "--out", str(out), "--workers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and "Traceback" not in err
    assert not out.exists()


def test_a_nested_list_in_a_grid_file_is_refused(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text("d = [[8, 10], 12]\n")
    assert main(["sweep", "--config", str(grid), "--out", str(tmp_path / "out"), "--workers", "1"]) == 2
    assert "d must be int, got [8, 10]" in capsys.readouterr().err


def test_a_bug_inside_a_run_stops_the_sweep_as_a_bug(tmp_path, capsys, monkeypatch):
    def planted(config):
        raise ZeroDivisionError("planted fault")

    monkeypatch.setattr("dlnref.experiments.compare.build", planted)
    code = main(["sweep", "--d", "8", "--rank", "1", "--steps", "5", "--out", str(tmp_path), "--workers", "1",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 70 and "ZeroDivisionError: planted fault" in err and "this is a bug in dlnref" in err


def test_a_truncated_stored_run_is_computed_again(tmp_path, capsys):
    argv = ["sweep", "--d", "8", "--rank", "1", "--steps", "20", "--out", str(tmp_path), "--workers", "1",
            "--quiet", "--no-plot"]
    assert main(argv) == 0
    stored = next((tmp_path / "runs").iterdir())
    text = stored.read_text()
    stored.write_text(text[:len(text) // 2])
    capsys.readouterr()
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert f"note: {stored} cannot be read back" in err and "1 computed, 0 already stored" in out
    assert json.loads(stored.read_text()) == json.loads(text) | {k: json.loads(stored.read_text())[k]
                                                                  for k in ("seconds", "worker")}


def _die_once(marker, config):
    """``run_compare``, except that the first call anywhere ends its process (a worker dying mid-task)."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return run_compare(config)
    os.close(fd)
    os._exit(1)


def test_a_killed_worker_does_not_lose_the_sweep(cluster, tmp_path):
    grid = tiny_grid()
    marker = tmp_path / "died"
    report = run_sweep(grid, tmp_path / "out", cluster, compute=functools.partial(_die_once, str(marker)),
                       plot=False)
    assert marker.exists()
    assert report.computed == len(grid) and report.failed == 0
    expected = run_sweep(grid, tmp_path / "serial", serial(), plot=False)
    assert [numbers(r) for r in report.rows] == [numbers(r) for r in expected.rows]


def _always_die(config):
    """A run whose every attempt ends its worker (say, out of memory)."""
    os._exit(1)


def test_a_run_that_kills_every_worker_it_meets_is_an_error_row_not_stored(cluster, tmp_path):
    grid = tiny_grid()[:1]
    report = run_sweep(grid, tmp_path, cluster, compute=_always_die, plot=False)
    assert report.failed == 1 and report.computed == 0
    assert report.rows[0]["status"] == "error"
    assert report.rows[0]["error"].startswith("LostTaskError: the workers running this task died")
    assert not os.path.exists(tmp_path / "runs") or not os.listdir(tmp_path / "runs")
    assert run_sweep(grid, tmp_path, cluster, plot=False).computed == 1  # a rerun tries it again


def test_a_running_scheduler_is_reached_by_its_address(cluster, tmp_path):
    address = cluster.client.scheduler.address
    with open_executor(scheduler=address, quiet=True) as executor:
        assert address in executor.description
        report = run_sweep(tiny_grid()[:2], tmp_path, executor, plot=False)
    assert report.computed == 2 and report.failed == 0


class Interrupted:
    """``run_compare`` counting its calls, raising KeyboardInterrupt at call ``stop`` (a Ctrl-C mid-sweep)."""

    def __init__(self, stop=None):
        self.calls, self.stop = 0, stop

    def __call__(self, config):
        self.calls += 1
        if self.calls == self.stop:
            raise KeyboardInterrupt
        return run_compare(config)


def test_interrupted_sweep_keeps_finished_rows_and_resumes_with_the_rest(tmp_path):
    grid = tiny_grid()
    with pytest.raises(KeyboardInterrupt):
        run_sweep(grid, tmp_path, serial(), compute=Interrupted(stop=3), plot=False)
    assert len(os.listdir(tmp_path / "runs")) == 2
    with open(tmp_path / "sweep.csv") as f:
        assert [int(r["seed"]) for r in csv.DictReader(f)] == [0, 1]
    count = Interrupted()
    report = run_sweep(grid, tmp_path, serial(), compute=count, plot=False)
    assert count.calls == 2 and report.computed == 2 and report.skipped == 2
    fresh = run_sweep(grid, tmp_path / "fresh", serial(), plot=False)
    assert [numbers(r) for r in report.rows] == [numbers(r) for r in fresh.rows]


def test_half_stored_sweep_on_the_cluster_computes_only_the_missing_half(cluster, tmp_path):
    grid = tiny_grid()
    first = run_sweep(grid[::2], tmp_path, cluster, plot=False)
    stored = {name: os.path.getmtime(tmp_path / "runs" / name) for name in os.listdir(tmp_path / "runs")}
    report = run_sweep(grid, tmp_path, cluster, plot=False)
    assert first.computed == 2 and report.computed == 2 and report.skipped == 2
    assert {name: os.path.getmtime(tmp_path / "runs" / name) for name in stored} == stored
    assert len(os.listdir(tmp_path / "runs")) == 4


def test_sweep_command_writes_table_parquet_and_figure(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text('problem = "completion"\nd = 12\nrank = 2\nfraction = 0.6\nlr = 3.0\nscale = 0.03\n'
                    'outer_lr_scale = 2.0\nsteps = 600\ndepth = [2, 3]\nseeds = "0-1"\n')
    out = tmp_path / "out"
    assert main(["sweep", "--config", str(grid), "--depth", "3", "--out", str(out), "--workers", "1",
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "2 runs: 2 computed, 0 already stored, 0 failed" in printed
    with open(out / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["depth"], r["seed"], r["status"]) for r in rows] == [("3", "0", "ok"), ("3", "1", "ok")]
    for row in rows:
        stored = json.loads((out / "runs" / f"{row['config_hash']}.json").read_text())
        assert float(row["wide_final_error"]) == stored["wide_final_error"]
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(out / "sweep.parquet").to_pylist()
    assert [r["wide_final_error"] for r in table] == [float(r["wide_final_error"]) for r in rows]


def test_sweep_command_rejects_an_unknown_toml_key(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text("dept = [2, 3]\n")
    assert main(["sweep", "--config", str(grid), "--out", str(tmp_path / "out"), "--workers", "1"]) == 2
    assert "unknown grid key 'dept'; valid keys:" in capsys.readouterr().err


def test_sweep_command_refuses_an_out_that_is_a_file(tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("")
    assert main(["sweep", "--d", "12", "--out", str(out), "--workers", "1"]) == 2
    assert f"--out {out} is a file, not a folder; give a folder to write into" in capsys.readouterr().err


def test_without_dask_more_workers_say_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(DaskUnavailableError, match=r'pip install "dlnref\[dist\]"'):
        with open_executor(workers=2):
            pass
    assert main(["sweep", "--d", "12", "--rank", "2", "--out", str(tmp_path), "--workers", "2"]) == 2
    assert 'pip install "dlnref[dist]"' in capsys.readouterr().err
    assert main(["sweep", "--d", "12", "--rank", "2", "--fraction", "0.6", "--lr", "3", "--steps", "300",
                 "--out", str(tmp_path), "--workers", "1", "--quiet", "--no-plot"]) == 0


def _without_clock(value):
    """``value`` with every entry whose key names seconds dropped, at any depth."""
    if isinstance(value, dict):
        return {k: _without_clock(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, (list, tuple)):
        return [_without_clock(v) for v in value]
    return value


def test_check_tasks_hold_every_part_once_and_share_the_runs():
    from theory_checks import CLAIMS
    from theory_checks.parallel import claim_module, tasks

    groups = tasks("full", CLAIMS)
    members = [m for group in groups for m in group]
    expected = [(c, p) for c in CLAIMS for p in getattr(claim_module(c), "parts", lambda size: [None])("full")]
    assert sorted(members, key=str) == sorted(expected, key=str) and len(members) == len(set(members))
    assert groups[:2] == [[("invariant_subspace", "completion"), ("incremental_learning", "completion"),
                           ("compressed_faster", "completion")],
                          [("invariant_subspace", "sensing"), ("incremental_learning", "sensing"),
                           ("compressed_faster", "sensing")]]


def test_check_on_the_cluster_gives_the_serial_verdicts(cluster):
    import theory_checks

    claims = ("exact_dynamics", "compression_size")
    parallel = theory_checks.run("quick", claims=claims, executor=cluster)
    assert [v.to_dict() for v in parallel] == [v.to_dict() for v in theory_checks.run("quick", claims=claims)]


def test_merged_parts_keep_the_order_of_parts():
    from theory_checks import Finding, Verdict
    from theory_checks.parallel import merge

    def verdict(*problems):
        return Verdict("c", "claim", "paper", [Finding(p, {}, "", True, True) for p in problems])

    merged = merge([verdict("a"), verdict("b", "c")])
    assert [f.problem for f in merged.findings] == ["a", "b", "c"] and merged.name == "c"


def test_seeds_of_a_factorization_case_combine_into_the_worst():
    from theory_checks import Finding
    from theory_checks.compressed_faster import ROUNDING, combine

    def seed(problem, excess, s):
        return Finding(problem, {"max_excess": excess, "at_seed_step": (s, 0)}, "", excess <= ROUNDING, True)

    case, other = "factorization, d=20, r=2, L=3, 3 seeds", "factorization, d=30, r=3, L=3, 1 seeds"
    merged = combine([seed(case, -0.5, 0), seed(case, 2e-10, 1), seed(case, 2e-10, 2), seed(other, -0.1, 0),
                      Finding("completion", {}, "", True, False)])
    assert [(f.problem, f.measured["at_seed_step"][0] if f.measured else None, f.holds) for f in merged] == [
        (case, 1, False), (other, 0, True), ("completion", None, True)]


def test_figures_on_the_cluster_land_in_out_with_their_numbers(cluster, tmp_path):
    from dlnref.experiments.figures import make_figures
    from dlnref.experiments.figures_parallel import figure_groups

    assert figure_groups(["depth", "trajectory_completion", "layer_spectrum"]) == [
        ["depth"], ["trajectory_completion", "layer_spectrum"]]
    on_cluster = make_figures("quick", ["trajectory_factorization"], tmp_path / "cluster", executor=cluster)
    here = make_figures("quick", ["trajectory_factorization"], tmp_path / "here")
    assert _without_clock(on_cluster) == _without_clock(here)
    assert (tmp_path / "cluster" / "trajectory_factorization.png").read_bytes()[:4] == b"\x89PNG"
    assert "trajectory_factorization" in (tmp_path / "cluster" / "README.md").read_text()


def _inverse(x):
    return 1 / x


def test_map_keeps_order_and_raises_the_first_error(cluster):
    assert serial().map(_inverse, [1, 2, 4]) == [1.0, 0.5, 0.25]
    assert cluster.map(_inverse, [1, 2, 4]) == [1.0, 0.5, 0.25]
    with pytest.raises(ZeroDivisionError):
        serial().map(_inverse, [1, 0, 2])
    with pytest.raises(ZeroDivisionError):
        cluster.map(_inverse, [1, 0, 2])


def test_progress_line_counts_and_estimates_the_time_left():
    import io

    stream = io.StringIO()
    progress = Progress("sweep", stream=stream)
    progress.start(4)
    progress.started -= 10  # ten seconds ago
    progress.finished(True)
    progress.finished(False)
    progress.show(running=2)
    assert stream.getvalue() == "[sweep] 2/4 done, 2 running, 1 failed, 10s elapsed, ETA 10s\n"


def test_the_stored_run_hash_covers_every_field_of_the_configuration():
    """A run is stored under the hash of its whole configuration: changing any one field gives a new hash."""
    other = {"problem": "sensing", "d": 50, "rank": 3, "fraction": 0.5, "measurements": 300, "depth": 4,
             "scale": 0.1, "lr": 2.0, "outer_lr_scale": 2.0, "width": 7, "steps": 10, "tol": 1e-3, "record_every": 5,
             "seed": 1, "backend": "array_api_strict", "data": "u.data", "split": "u1", "networks": ("wide",),
             "validation_fraction": 0.2, "patience": 10, "als": False, "compression": "exact"}
    assert set(other) == {f.name for f in dataclasses.fields(CompareConfig)}   # a new field needs a value here
    base = CompareConfig()
    hashes = {config_hash(dataclasses.replace(base, **{name: value})) for name, value in other.items()}
    assert len(hashes | {config_hash(base)}) == len(other) + 1


def test_ctrl_c_in_a_sweep_on_local_workers_prints_one_line(tmp_path):
    """Ctrl-C reaches the whole process group; the workers must leave it to the sweep (no worker tracebacks)."""
    pytest.importorskip("distributed")
    import signal
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-m", "dlnref", "sweep", "--d", "60,70,80,90", "--steps", "10000000", "--tol", "0",
         "--out", str(tmp_path / "o"), "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    while "2 running" not in (line := proc.stderr.readline()):   # both workers are training
        assert line, "the sweep ended before its runs started"
    os.killpg(proc.pid, signal.SIGINT)                  # what a terminal's Ctrl-C does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines()[-1] == "dlnref sweep: interrupted"
