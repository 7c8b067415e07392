"""The exact compression's step against the wide network's, on deep matrix factorization.

Run:  python benchmarks/bench_exact.py [--d 1000] [--wide-steps 3] [--sizes 100 300 1000]

At d = 1000 (L = 3, r = 10, w = 2r = 20) it
- times a handful of wide steps (``dlnref.gradient_descent``, O(L d^3) each);
- times the pair's steps (``dlnref.train_exact``, O(L w^3) each, whatever d);
- checks that the pair reproduces the wide run: the largest relative
  difference of the rebuilt wide layers and end-to-end matrix after those steps;
- prints the one-off costs: building the pair (an SVD of the d x d data part
  of the gradient, the init's end-to-end product and its orthogonality check,
  O(d^3), about ten wide steps) and rebuilding the wide network from it;
- trains the pair to recovery error 1e-3 and prints its steps and seconds, with
  what the wide network would need at its measured cost per step.

Then ms per step of the pair at each of ``--sizes``: flat in d. The machine's
load is printed too; timings on a shared machine are noisy.
"""

import argparse
import os
import time

import numpy as np

import dlnref
from dlnref.compress_exact import train_exact


def _problem(d, rank, depth, seed=0):
    problem = dlnref.make_problem("factorization", (d, d), rank, seed=seed)
    s_1 = _top_singular_value(problem.target)
    lr = 0.2 * d * d / (depth * s_1 ** (2 - 2 / depth))   # lr / (m n) = 0.2 / (L s_1^(2 - 2/L)): stable
    return problem, lr


def _top_singular_value(M, iterations=100):
    """``s_1(M)`` by power iteration on ``M^T M`` (O(d^2) each, where an SVD at d = 1000 takes seconds)."""
    v = np.ones(M.shape[1]) / np.sqrt(M.shape[1])
    for _ in range(iterations):
        v = M.T @ (M @ v)
        v /= np.linalg.norm(v)
    return float(np.linalg.norm(M @ v))


def _relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


def _seconds(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def pair_ms(d, rank, depth, steps):
    """ms per step of ``train_exact`` at width d (recording only at the ends)."""
    problem, lr = _problem(d, rank, depth)
    pair = dlnref.compress_exact(problem, dlnref.init_weights([d] * (depth + 1), 1e-2, seed=1), rank)
    seconds, _ = _seconds(lambda: train_exact(problem, pair, lr, steps, record_every=steps))
    return seconds / steps * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=1000)
    parser.add_argument("--rank", type=int, default=10)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--wide-steps", type=int, default=3)
    parser.add_argument("--pair-steps", type=int, default=2000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")
    d, depth, k = args.d, args.depth, args.wide_steps
    problem, lr = _problem(d, args.rank, depth)
    wide = dlnref.init_weights([d] * (depth + 1), 1e-2, seed=1)

    build_s, pair = _seconds(lambda: dlnref.compress_exact(problem, wide, args.rank))
    wide_s, wide_run = _seconds(lambda: dlnref.gradient_descent(problem, wide, lr, k, record_every=k))
    pair_s, pair_run = _seconds(lambda: train_exact(problem, pair, lr, k, record_every=k))
    rebuild_s, layers = _seconds(lambda: pair_run.weights.layers())
    layer_diff = max(_relative(a, b) for a, b in zip(wide_run.weights, layers))
    x_diff = _relative(dlnref.end_to_end(wide_run.weights), pair_run.weights.end_to_end())
    wide_ms = wide_s / k * 1e3
    step_ms = pair_ms(d, args.rank, depth, args.pair_steps)
    print(f"factorization d={d}, r={args.rank}, L={depth}, w={2 * args.rank}, lr={lr:.4g}")
    print(f"after {k} steps: largest relative difference, wide vs rebuilt: layers {layer_diff:.2e}, X {x_diff:.2e}")
    print(f"wide   {wide_ms:10.2f} ms/step  ({k} steps)")
    print(f"pair   {step_ms:10.4f} ms/step  ({args.pair_steps} steps)   ratio wide/pair {wide_ms / step_ms:,.0f}x")
    print(f"one-off: build the pair {build_s * 1e3:.0f} ms, rebuild the wide layers {rebuild_s * 1e3:.0f} ms")

    run_s, run = _seconds(lambda: train_exact(problem, pair, lr, 200000, record_every=10, tol=1e-3))
    steps = run.steps
    print(f"whole run to error 1e-3: pair {steps} steps in {run_s:.2f} s; the wide network would need "
          f"~{steps * wide_ms / 1e3:,.0f} s at {wide_ms:.0f} ms/step")
    print("pair ms/step by d (flat: the step never touches a d-sized array):")
    for size in args.sizes:
        print(f"  d={size:5d}  {pair_ms(size, args.rank, depth, args.pair_steps):.4f} ms/step")


if __name__ == "__main__":
    main()
