"""Every command that the README and the documentation show runs here, unmocked, at a quick size.

:func:`readme_commands` reads every ``dlnref``, ``python -m dlnref``, ``python
examples/...`` and ``python benchmarks/...`` command out of the bash blocks of
``README.md`` and of every page under ``docs/`` (``.md``: fenced ``bash``
blocks; ``.rst``: ``.. code-block:: bash``), the built site and the generated
lesson pages excepted. :data:`QUICK` gives each one the options appended to make
it quick (later options override earlier ones, so the page's own line runs, with
smaller sizes); a documented command without an entry here fails
:func:`test_every_readme_command_has_a_quick_run`. Paths that only a user
has (a MovieLens file, FashionMNIST, a Dask scheduler) are made here: a
ratings file from :mod:`movielens_synthetic` at the page's own path, tiny
IDX files, a local cluster.
"""

import contextlib
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
from documented import code_blocks
from movielens_synthetic import write_movielens_like

from dlnref.cli import main
from dlnref.nn.images import write_idx

ROOT = pathlib.Path(__file__).parent.parent

#: What makes a command quick: options appended to the README's line.
SMALL_COMPARE = ["--d", "12", "--rank", "2", "--steps", "300", "--quiet"]
SMALL_SWEEP = ["--d", "10", "--rank", "2", "--seeds", "0-1", "--steps", "60", "--quiet"]
SMALL_CLASSIFY = ["--hidden", "32", "--rank", "2", "--steps", "3", "--quiet"]
QUICK = {
    "dlnref compare": [],                                   # the main job runs as it is
    "dlnref compare --lr 10": ["--d", "50", "--rank", "3", "--steps", "300", "--quiet"],   # lr 10 diverges at d 20
    "dlnref compare --problem factorization --rank 10 --lr 1 --steps 140000": [*SMALL_COMPARE, "--lr", "5"],
    "dlnref compare --problem sensing --d 200 --measurements 4000": [*SMALL_COMPARE, "--measurements", "150"],
    "dlnref compare --d 10000 --fraction 0.02 --rank 5 --networks compressed":
        ["--d", "2100", "--fraction", "0.002", "--steps", "20", "--quiet"],   # still above DENSE_MAX_D: sparse
    "python -m dlnref compare --json --plot curves.png": SMALL_COMPARE,
    "dlnref compare --data ml-100k/u.data": ["--steps", "60", "--quiet"],
    "dlnref compare --data ml-100k/u.data --split u1": ["--steps", "60", "--quiet"],
    "dlnref compare --problem factorization --rank 10 --compression exact": [*SMALL_COMPARE, "--lr", "5"],
    "dlnref compare --backend cupy": SMALL_COMPARE,
    "dlnref check": ["--quiet"],
    "dlnref check --full": ["--claim", "compression_size", "--claim", "exact_dynamics", "--quiet"],
    "dlnref check --claim invariant_subspace --json": ["--quiet"],
    "dlnref check --claim exact_compression": ["--quiet"],
    "dlnref figures --quick": ["--out", "figs", "--quiet"],
    "dlnref figures": ["--quick", "--only", "trajectory_factorization", "--out", "figs", "--quiet"],
    "dlnref figures --only alpha_ablation --out /tmp/figs": ["--quick", "--out", "figs", "--quiet"],
    "dlnref sweep --problem completion --d 50,100 --rank 3,5 --seeds 0-9 --out sweeps/sizes": SMALL_SWEEP,
    "dlnref sweep --config grid.toml --workers 2 --out sweeps/grid": SMALL_SWEEP,
    "dlnref sweep --fraction 0.2,0.3,0.4,0.5 --seeds 0-49 --scheduler tcp://HOST:8786 --out sweeps/fraction":
        [*SMALL_SWEEP, "--fraction", "0.5"],
    "dlnref sweep --problem completion --fraction 0.2,0.3,0.4,0.5 --seeds 0-49 --workers 2 --out "
    "sweeps/completion200": [*SMALL_SWEEP, "--fraction", "0.5", "--workers", "1"],
    "dlnref classify": SMALL_CLASSIFY,
    "dlnref classify --block-init spectral": SMALL_CLASSIFY,
    "dlnref classify --block relu": SMALL_CLASSIFY,
    "dlnref classify --data /usr/share/datasets/fashion-mnist --train-images 60000 --epochs 20 --batch-size 128 "
    "--lr 0.1 --record-every 469 --target-accuracy 0.85":
        ["--train-images", "48", "--hidden", "32", "--rank", "2", "--epochs", "1", "--batch-size", "16", "--quiet"],
    "dlnref classify --data /usr/share/datasets/fashion-mnist --json --plot fashion.png":
        ["--train-images", "48", "--hidden", "16", "--rank", "2", "--steps", "4", "--quiet"],
    "dlnref conform mymodule:my_step --kind step --layout output_first --problem completion --loss infer --depths 2-4":
        ["--max-examples", "3", "--alpha", "2", "--dtype", "float64"],
    "dlnref conform mymodule:my_backward --kind backward --layout output_first --dtype float32 --json":
        ["--max-examples", "3"],
    "dlnref golden export golden/": [],
    "dlnref golden verify golden/": [],
    "python examples/incremental_learning.py": ["--quick", "--out", "lesson.png"],
    "python examples/invariant_subspace.py": ["--quick", "--out", "lesson.png"],
    "python examples/wide_vs_compressed.py": ["--quick", "--out", "lesson.png"],
    "python examples/discrepant_rate.py": ["--quick", "--out", "lesson.png"],
    "python examples/saxe_closed_form.py": ["--quick", "--out", "lesson.png"],
    "python examples/choosing_lr.py": ["--quick", "--out", "lesson.png"],
    "python examples/sensing.py": ["--quick", "--out", "lesson.png"],
    "python examples/exact_compression.py": ["--quick", "--out", "lesson.png"],
    "python examples/completion_observed.py": ["--quick", "--out", "lesson.png"],
    "python examples/mlp_linear_block.py": ["--quick", "--out", "lesson.png"],
    "python examples/check_your_implementation.py": ["--quick", "--out", "lesson.png"],
    "python benchmarks/bench_exact.py": ["--d", "30", "--rank", "3", "--wide-steps", "1", "--pair-steps", "5",
                                        "--sizes", "30"],
    "python benchmarks/bench_classify.py --data /usr/share/datasets/fashion-mnist --seeds 0 --json v.json --plot v.png":
        ["--steps", "4", "--train-images", "48"],
    "python benchmarks/gpu_check.py": ["--backends", "numpy", "array_api_strict", "--budget", "2", "--sizes", "30",
                                       "--parity-steps", "20"],
}
#: Paths and addresses that only a user has, and what stands in for them here.
STAND_INS = {"/usr/share/datasets/fashion-mnist": "fashion-mnist", "/tmp/figs": "figs"}
#: Commands whose exit code may be 2 here, with the message that says why (the optional backend is missing).
MAY_BE_MISSING = {"dlnref compare --backend cupy": "CuPy"}


def readme_commands():
    """Every command of the documented bash blocks that runs dlnref, an example or a benchmark, one line each."""
    commands = []
    for block in code_blocks("bash"):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            for part in line.split("#", 1)[0].split("&&"):
                command = " ".join(part.split())
                if command.startswith(("dlnref ", "python -m dlnref ", "python examples/", "python benchmarks/")) \
                        or command == "dlnref":
                    commands.append(command)
    return commands


def test_every_readme_command_has_a_quick_run():
    """A command added to the README or the docs must get a quick run here; one removed from them must leave."""
    shown = readme_commands()
    assert len(shown) > 30
    assert set(shown) == set(QUICK), {"not run here": set(shown) - set(QUICK), "not documented": set(QUICK) - set(shown)}


@pytest.fixture(scope="module")
def scheduler():
    """A local Dask cluster, standing in for the README's ``tcp://HOST:8786``."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        yield c.scheduler_address


def _user_files(folder):
    """The files a README command reads, made in ``folder``: ratings, a grid, IDX images, the user's module."""
    ratings = write_movielens_like(folder / "ml-100k" / "u.data", users=60, items=80, ratings=1500)
    lines = ratings.read_text().splitlines(keepends=True)
    (folder / "ml-100k" / "u1.base").write_text("".join(lines[:1200]))
    (folder / "ml-100k" / "u1.test").write_text("".join(lines[1200:]))
    grid = next(b for b in code_blocks("toml") if b.startswith("# grid.toml"))
    (folder / "grid.toml").write_text(grid)
    module = next(b for b in code_blocks("python") if "def my_step" in b)
    (folder / "mymodule.py").write_text(module.replace('print("my implementation agrees with dlnref")', "")
                                        .split("assert_backward_matches(my_backward")[0])
    rng = np.random.default_rng(0)
    (folder / "fashion-mnist").mkdir()
    for prefix, n in (("train", 48), ("t10k", 16)):
        labels = rng.integers(0, 3, n).astype(np.uint8)
        write_idx(folder / "fashion-mnist" / f"{prefix}-images-idx3-ubyte", (rng.random((n, 4, 4)) * 255).astype(np.uint8))
        write_idx(folder / "fashion-mnist" / f"{prefix}-labels-idx1-ubyte", labels)


@pytest.mark.parametrize("command", sorted(QUICK))
def test_readme_command_runs(command, tmp_path, monkeypatch, capsys, request):
    (tmp_path / "ml-100k").mkdir()
    _user_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    line = command
    for theirs, ours in STAND_INS.items():
        line = line.replace(theirs, ours)
    if "tcp://HOST:8786" in line:
        line = line.replace("tcp://HOST:8786", request.getfixturevalue("scheduler"))
    argv = [*shlex.split(line), *QUICK[command]]
    if argv[0] == "python" and argv[1] != "-m":
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run([sys.executable, str(ROOT / argv[1]), *argv[2:]], capture_output=True, text=True,
                              timeout=600, cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return
    if command == "dlnref golden verify golden/":
        assert main(["golden", "export", "golden/"]) == 0
    args = argv[3:] if argv[:3] == ["python", "-m", "dlnref"] else argv[1:]
    code = main(args)
    out, err = capsys.readouterr()
    if command in MAY_BE_MISSING and code == 2:
        assert MAY_BE_MISSING[command] in err and "Traceback" not in err
        return
    assert code == 0, err[-3000:]
    assert "Traceback" not in err
    if "--json" in args:
        json.loads(out)   # one JSON object, nothing else on stdout
    with contextlib.suppress(ValueError):
        plot = args[args.index("--plot") + 1]
        assert (tmp_path / plot).read_bytes()[:4] == b"\x89PNG"
