"""Wall time of independent runs on 1 worker (in process) and on N Dask workers, and the speedup.

    python benchmarks/bench_sweep.py                 # quick checks and a 12-run grid, 1 vs 2 workers (~3 min)
    python benchmarks/bench_sweep.py --full-check    # dlnref check --full, 1 vs 2 workers (~40 + ~20 min)

Each case runs the ``dlnref`` command in a subprocess, as a user would, so the
Dask cluster's start-up is counted. The target is a speedup of at least 1.7 on
2 cores for ``dlnref check --full``. The machine's load is printed next to the
times: run it on a quiet machine.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

#: The sweep case: the paper's completion problem at d=60, 3 depths x 4 seeds (12 runs).
GRID = ["--problem", "completion", "--d", "60", "--rank", "3", "--depth", "2,3,4", "--seeds", "0-3",
        "--steps", "6000", "--no-plot"]


def load():
    """The 1-minute load average, or None where the OS does not report it."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def timed(args):
    """Seconds that ``python -m dlnref ARGS`` takes, and the load before it started."""
    before = load()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dlnref", *args], capture_output=True, text=True,
                          env=os.environ.copy())
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"dlnref {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds, before


def compare_workers(name, make_args, workers):
    """Time ``make_args(w)`` for 1 and ``workers`` workers; print one line each and the speedup."""
    times = {}
    for w in (1, workers):
        seconds, before = timed(make_args(w))
        times[w] = seconds
        shown = "unknown" if before is None else f"{before:.2f}"
        print(f"{name:<22} workers={w}  {seconds:8.1f} s   (load before: {shown})", flush=True)
    print(f"{name:<22} speedup {times[1] / times[workers]:.2f}x with {workers} workers on {os.cpu_count()} cores\n",
          flush=True)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--full-check", action="store_true", help="time dlnref check --full instead (about an hour)")
    args = parser.parse_args()
    print(f"dlnref sweep benchmark, {os.cpu_count()} cores, load {load()}\n")
    if args.full_check:
        compare_workers("check --full", lambda w: ["check", "--full", "--quiet", "--workers", str(w)], args.workers)
        return
    compare_workers("check (quick)", lambda w: ["check", "--quiet", "--workers", str(w)], args.workers)
    with tempfile.TemporaryDirectory() as folder:
        compare_workers("sweep (12 runs)", lambda w: ["sweep", *GRID, "--quiet", "--workers", str(w),
                                                      "--out", os.path.join(folder, str(w))], args.workers)


if __name__ == "__main__":
    main()
