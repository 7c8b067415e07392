"""Milliseconds per training step and GFLOP/s, against the machine's own GEMM rate.

Run:  python benchmarks/bench_step.py [--sizes 100 300 1000] [--threads 1 2] [--engine auto]
      python benchmarks/bench_step.py --batch 8 64 [--sizes 30 100]

For each BLAS thread count and each size d it prints
- the GEMM rate of one d x d x d matmul (the BLAS limit at that size);
- ms per gradient-descent step of the wide DLN (depth 3, d x d layers) and of
  the compressed DLN (width 2r = 10) on matrix completion, with the matmul
  GFLOP/s of the step (dlnref.network.step_flops) and its ratio to the GEMM rate.

Each step also does element-wise work (the masked residual, the update) that
the FLOP count leaves out, so the ratio is a lower bound on BLAS efficiency.
The compressed step's thin matmuls and element-wise passes are bound by memory,
not flops: its last column, ``d^2 copies``, divides its time by that of one
copy of a d x d float64 array. From d x d = 2^18 entries up, the completion
step is fused (:meth:`dlnref.MatrixCompletion.evaluate` with thin factors): it
works through cache-sized blocks of rows and reads ``M`` and the mask once
each from memory, about one copy's traffic (a copy reads and writes); the
rest is its thin GEMMs on blocks in cache. Unfused (d = 100 here), the step
passes over d x d memory about 12 times. ``--engine`` picks the step
(:func:`dlnref.gradient_descent`'s ``engine``: "auto" takes the compiled step
of :mod:`dlnref.compiled` where numba is installed and it applies).

``--batch B ...`` measures instead the other way to make many small runs
cheap: B runs stepped at once along a leading batch axis of NumPy arrays (one
Python step for all B, written here: completion, depth 3, lr spread over the
batch), against the compiled step running the B runs one after another, and
the NumPy step likewise, in microseconds per step of one run (CPU time,
alternating rounds, medians).
"""

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import dlnref
from dlnref.network import step_flops


def best_seconds(fn, repeats, rounds=3):
    """Best mean seconds per call of ``fn`` over a few rounds of ``repeats`` calls."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def gemm_gflops(d):
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    A @ B
    return 2 * d**3 / best_seconds(lambda: A @ B, max(3, int(3e8 / d**3))) / 1e9


def copy_ms(d):
    """ms of one copy of a d x d float64 array into another."""
    src, dst = np.ones((d, d)), np.empty((d, d))
    return best_seconds(lambda: np.copyto(dst, src), max(3, int(1e8 / d**2))) * 1e3


def step_ms(problem, weights, lr, steps, engine="auto"):
    """ms per step of ``gradient_descent`` (recording only at the ends), BLAS threads left as set."""
    run = lambda: dlnref.gradient_descent(problem, weights, lr, steps, record_every=steps, blas_threads=None,  # noqa: E731
                                          engine=engine)
    run()
    return best_seconds(run, 1) / steps * 1e3


def batched_steps(weights, sizes, target, weight, steps):
    """``steps`` completion steps of B runs at once: ``weights[l]`` of shape (B, d_l, d_{l-1}), ``sizes`` (B, L)."""
    for _ in range(steps):
        prefixes = [weights[0]]
        for W in weights[1:-1]:
            prefixes.append(W @ prefixes[-1])
        G = weight * (weights[-1] @ prefixes[-1] - target)
        grads, D = [None] * len(weights), G
        for i in range(len(weights) - 1, 0, -1):
            grads[i] = D @ np.swapaxes(prefixes[i - 1], 1, 2)
            D = np.swapaxes(weights[i], 1, 2) @ D
        grads[0] = D
        weights = [W - s[:, None, None] * g for W, s, g in zip(weights, sizes.T, grads)]
    return weights


def batch_row(d, network, batch, rounds=5):
    """us per run-step of B runs: compiled one after another, NumPy along a batch axis, NumPy one after another."""
    problem = dlnref.make_problem("completion", (d, d), max(1, d // 20), seed=0)
    starts = [dlnref.compress(problem, 3, 2 * max(1, d // 20), scale=0.01 * (1 + b / batch)) if network == "compressed"
              else dlnref.init_weights([d] * 4, 1e-2, seed=b) for b in range(batch)]
    lrs = np.linspace(0.5, 1.0, batch)
    sizes = np.array([dlnref.step_sizes(3, lr, 5.0) for lr in lrs])
    stacked = [np.stack([start[l] for start in starts]) for l in range(3)]
    steps = 200 if network == "compressed" else 20

    def one_after_another(engine):
        return lambda: [dlnref.gradient_descent(problem, start, lr, steps, outer_lr_scale=5.0, record_every=steps,
                                                blas_threads=None, engine=engine) for start, lr in zip(starts, lrs)]

    ways = {"compiled": one_after_another("auto"), "batch axis": lambda: batched_steps(
        stacked, sizes, problem.target, problem.mask / problem.observed, steps), "NumPy": one_after_another("numpy")}
    times = {name: [] for name in ways}
    for fn in ways.values():
        fn()
    for _ in range(rounds):
        for name, fn in ways.items():
            start = time.process_time()
            fn()
            times[name].append((time.process_time() - start) / (batch * steps) * 1e6)
    return {name: statistics.median(t) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--rank", type=int, default=5)
    parser.add_argument("--engine", default="auto", choices=["auto", "numba", "numpy"])
    parser.add_argument("--batch", type=int, nargs="+", default=None, help="batch sizes B: the batch-axis table")
    args = parser.parse_args()
    if args.batch:
        print(f"{'d':>5} {'network':>10} {'B':>4} | us per run-step: {'compiled':>9} {'batch axis':>10} {'NumPy':>8}")
        with threadpool_limits(limits=1, user_api="blas"):
            for d in args.sizes:
                for network in ("compressed", "wide"):
                    for batch in args.batch:
                        r = batch_row(d, network, batch)
                        print(f"{d:>5} {network:>10} {batch:>4} | {'':>16} {r['compiled']:>9.1f} {r['batch axis']:>10.1f} "
                              f"{r['NumPy']:>8.1f}", flush=True)
        return
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    for info in blas:
        print(f"BLAS: {info['internal_api']} {info['version']}, {info['num_threads']} threads by default")
    print(f"{'threads':>7} {'d':>5} {'GEMM GF/s':>9} | {'wide ms':>8} {'GF/s':>6} {'%GEMM':>6} | "
          f"{'comp ms':>8} {'GF/s':>6} {'%GEMM':>6} | {'speedup':>7} | {'copy ms':>7} {'d^2 copies':>10}")
    for threads in args.threads:
        with threadpool_limits(limits=threads, user_api="blas"):
            in_use = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
            for d in args.sizes:
                problem = dlnref.make_problem("completion", (d, d), args.rank, seed=0)
                gemm = gemm_gflops(d)
                wide = dlnref.init_weights([d] * (args.depth + 1), 1e-2, seed=1)
                comp = dlnref.compress(problem, args.depth, 2 * args.rank)
                steps = max(5, int(2e9 / step_flops(dlnref.layer_dims(wide))))
                row = [f"{in_use:>7} {d:>5} {gemm:>9.1f}"]
                times = []
                for weights, n in ((wide, steps), (comp, 20 * steps)):
                    ms = step_ms(problem, weights, 1.0, n, args.engine)
                    gf = step_flops(dlnref.layer_dims(weights)) / ms / 1e6
                    times.append(ms)
                    row.append(f"{ms:>8.3f} {gf:>6.1f} {100 * gf / gemm:>5.0f}%")
                row.append(f"{times[0] / times[1]:>6.1f}x")
                copy = copy_ms(d)
                row.append(f"{copy:>7.3f} {times[1] / copy:>10.1f}")
                print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
