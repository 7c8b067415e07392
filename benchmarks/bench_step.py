"""Milliseconds per training step and GFLOP/s, against the machine's own GEMM rate.

Run:  python benchmarks/bench_step.py [--sizes 100 300 1000] [--threads 1 2]

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
passes over d x d memory about 12 times.
"""

import argparse
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


def step_ms(problem, weights, lr, steps):
    """ms per step of ``gradient_descent`` (recording only at the ends), BLAS threads left as set."""
    run = lambda: dlnref.gradient_descent(problem, weights, lr, steps, record_every=steps, blas_threads=None)  # noqa: E731
    run()
    return best_seconds(run, 1) / steps * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--rank", type=int, default=5)
    args = parser.parse_args()
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
                    ms = step_ms(problem, weights, 1.0, n)
                    gf = step_flops(dlnref.layer_dims(weights)) / ms / 1e6
                    times.append(ms)
                    row.append(f"{ms:>8.3f} {gf:>6.1f} {100 * gf / gemm:>5.0f}%")
                row.append(f"{times[0] / times[1]:>6.1f}x")
                copy = copy_ms(d)
                row.append(f"{copy:>7.3f} {times[1] / copy:>10.1f}")
                print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
