"""GPU check: NumPy/CuPy parity of a training run, and ms per step on both backends.

Run on a machine with CuPy and a CUDA device (``pip install -e ".[gpu]"``):

    python benchmarks/gpu_check.py

It prints
1. the largest relative difference of the final weights after 200 steps of the
   same seeded run on each backend (wide and compressed DLN, completion at d=100,
   the paper's settings); it must be below 1e-10 in float64;
2. ms per training step of the compressed DLN (width 10) at d = 100, 1000, 4000 and
   of the wide DLN where it fits the time budget, on each backend.

Everything finishes in under 5 minutes. ``--backends numpy array_api_strict``
runs the same script without a GPU (a dry run of its logic).
"""

import argparse
import time

import numpy as np

import dlnref
from dlnref.backend import BackendUnavailableError, namespace

PARITY_TOL = 1e-10
SIZES = (100, 1000, 4000)


def device_report(backends):
    """One line per backend: what it runs on."""
    for backend in backends:
        if backend == "cupy":
            import cupy

            props = cupy.cuda.runtime.getDeviceProperties(0)
            print(f"cupy {cupy.__version__} on {props['name'].decode()}, "
                  f"{props['totalGlobalMem'] / 2**30:.0f} GiB")
        else:
            print(f"{backend} on the host CPU")


def completion_problem(d, rank, backend, seed=0):
    """Completion with 30% observed and a target of given singular values (no d x d host SVD)."""
    target = dlnref.low_rank_matrix(d, d, rank, seed=seed, spectrum=np.linspace(2 * np.sqrt(d), np.sqrt(d), rank))
    mask = dlnref.random_mask((d, d), 0.3, seed=seed + 1)
    return dlnref.MatrixCompletion(target, mask, backend=backend)


def final_weights(backend, kind, steps):
    """Weights after ``steps`` steps of the paper's completion run on ``backend``."""
    problem = dlnref.make_problem("completion", (100, 100), 5, fraction=0.3, seed=0, backend=backend)
    if kind == "wide":
        start, alpha = dlnref.init_weights([100] * 4, 1e-2, seed=1, backend=backend), 1.0
    else:
        start, alpha = dlnref.compress(problem, 3, 10, 1e-2), 5.0
    run = dlnref.gradient_descent(problem, start, 10.0, steps, outer_lr_scale=alpha, record_every=steps)
    return [dlnref.to_numpy(w) for w in run.weights]


def parity(backends, steps=200):
    """Print the largest relative weight difference of each backend against the first."""
    reference = backends[0]
    for kind in ("wide", "compressed"):
        base = final_weights(reference, kind, steps)
        for backend in backends[1:]:
            other = final_weights(backend, kind, steps)
            diff = max(np.abs(a - b).max() / np.abs(a).max() for a, b in zip(base, other))
            verdict = "PASS" if diff < PARITY_TOL else "FAIL"
            print(f"parity {kind:>10} {backend} vs {reference}, {steps} steps: max relative difference "
                  f"{diff:.2e}  [{verdict}: < {PARITY_TOL:g}]", flush=True)


def ms_per_step(problem, weights, steps):
    """Milliseconds per ``gradient_descent`` step after one warm-up step (compiles CUDA kernels)."""
    dlnref.gradient_descent(problem, weights, 1e-3, 1, record_every=1)
    start = time.perf_counter()
    dlnref.gradient_descent(problem, weights, 1e-3, steps, record_every=steps)
    return (time.perf_counter() - start) / steps * 1e3


def speed(backends, budget, sizes=SIZES):
    """Print ms/step for the compressed DLN always, and the wide DLN while the budget allows."""
    start = time.perf_counter()
    print(f"{'backend':>16} {'d':>5} {'compressed ms':>14} {'wide ms':>10}")
    for d in sizes:
        problems = {backend: completion_problem(d, 5, backend) for backend in backends}
        # One spectral init (the d x d SVD) on the last backend, the GPU by default; copied to the others.
        compressed_host = [dlnref.to_numpy(w) for w in dlnref.compress(problems[backends[-1]], 3, 10, 1e-2)]
        for backend, problem in problems.items():
            compressed = [dlnref.to_backend(w, backend) for w in compressed_host]
            comp_ms = ms_per_step(problem, compressed, 50)
            wide_flops = dlnref.network.step_flops([d] * 4)
            left = budget - (time.perf_counter() - start)
            rate = 5e12 if backend == "cupy" else 5e10
            steps = max(2, min(50, int(0.1 * left * rate / wide_flops)))
            if wide_flops * steps / rate < 0.2 * left:
                wide = dlnref.init_weights([d] * 4, 1e-2, seed=1, backend=backend)
                wide_ms = f"{ms_per_step(problem, wide, steps):10.3f}"
            else:
                wide_ms = f"{'skipped':>10}"
            print(f"{backend:>16} {d:>5} {comp_ms:14.3f} {wide_ms}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["numpy", "cupy"])
    parser.add_argument("--budget", type=float, default=200.0, help="seconds for the speed table (default 200)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="d of the speed table")
    parser.add_argument("--parity-steps", type=int, default=200, help="steps of the parity runs (default 200)")
    args = parser.parse_args()
    available = []
    for backend in args.backends:
        try:
            namespace(backend)
            available.append(backend)
        except BackendUnavailableError as error:
            print(f"{backend}: unavailable ({error})")
    if len(available) < 2:
        print("need two backends to compare; nothing to do")
        return
    start = time.perf_counter()
    device_report(available)
    parity(available, args.parity_steps)
    speed(available, args.budget, args.sizes)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
