"""Setup time, ms per compressed step and peak memory of completion from observed entries, against d and |Omega|.

Run:  python benchmarks/bench_scale.py [--sizes 1000:100000 10000:2000000 100000:10000000] [--steps 5]
                                        [--threads T] [--engine auto|numpy|numba]

Each size ``d:count`` is an ``(d, d)`` rank-5 completion problem with ``count``
observed entries (:func:`dlnref.synthetic_completion`), trained by the
compressed DLN (depth 3, width 10) with BLAS pinned to one thread, as
:func:`dlnref.gradient_descent` pins it. The ``O(|Omega| w)`` work (residual,
sparse products) runs on the problem's own ``threads`` (``--threads``; default
:func:`dlnref.problems.sparse.default_threads`, one per CPU this process may use): the
BLAS pin does not limit them, and ``--threads 1`` measures one core. ``--engine``
sets :attr:`dlnref.SparseCompletion.engine` (default "auto": the numba kernel
where numba is installed, ``pip install "dlnref[fast]"``). Each size
runs in a fresh process, so that its peak resident memory (``ru_maxrss``) is
its own. Columns:

- ``setup s``: drawing the problem (factored target, sampled entries), the
  spectral init (truncated SVD of the sparse surrogate) and ``lr="auto"``;
- ``ms/step``: the best of ``--steps`` calls of :func:`dlnref.gradient_step`
  (forward, residual on the observed entries, sparse backward, update);
- ``record ms``: one row of error measures (exact recovery error from the factors);
- ``peak MB``: the process's peak resident memory.

The issue's targets: d = 100,000 with 10^7 entries, a step under 2 s and 8 GB.
"""

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(d, count, steps, threads=None, engine="auto"):
    """One size, in this process: a dict of the columns (``threads`` None: the problem's default)."""
    import dlnref
    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    problem = dlnref.synthetic_completion((d, d), 5, count / d**2, seed=0)
    if threads is not None:
        problem.threads = threads
    problem.engine = engine   # compiled (or loaded from the disk cache) here, in the setup
    weights = dlnref.compress(problem, 3, 10)
    lr = dlnref.auto_lr(problem, 3, 5.0)
    setup = time.perf_counter() - start
    # Limit the threads after the setup, as gradient_descent does: ARPACK loads SciPy's own
    # OpenBLAS, which a limit set before it was loaded leaves at its default thread count.
    with threadpool_limits(limits=1, user_api="blas"):
        sizes = dlnref.step_sizes(3, lr, 5.0)
        best = float("inf")
        for _ in range(steps):
            start = time.perf_counter()
            evaluation, weights = dlnref.gradient_step(problem, weights, sizes)
            best = min(best, time.perf_counter() - start)
        start = time.perf_counter()
        problem.errors(evaluation)
        record = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"d": d, "observed": problem.observed, "threads": problem.threads, "engine": problem.engine, "setup_s": setup,
            "ms_per_step": 1e3 * best, "record_ms": 1e3 * record, "peak_mb": peak_mb}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1000:100000", "10000:2000000", "100000:10000000"],
                        help="d:count pairs")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, help="SparseCompletion.threads (default: one per CPU)")
    parser.add_argument("--engine", default="auto", choices=["auto", "numpy", "numba"],
                        help="SparseCompletion.engine (default: numba where it is installed)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        d, count = (int(x) for x in args.one.split(":"))
        print(json.dumps(measure(d, count, args.steps, args.threads, args.engine)))
        return
    print(f"{'d':>7} {'|Omega|':>10} {'threads':>7} {'engine':>6} | {'setup s':>8} {'ms/step':>9} {'record ms':>9} {'peak MB':>8}")
    threads = ([] if args.threads is None else ["--threads", str(args.threads)]) + ["--engine", args.engine]
    for size in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--one", size, "--steps", str(args.steps), *threads],
                             capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{row['d']:>7} {row['observed']:>10,} {row['threads']:>7} {row['engine']:>6} | {row['setup_s']:>8.2f} "
              f"{row['ms_per_step']:>9.1f} {row['record_ms']:>9.1f} {row['peak_mb']:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
