"""The compressed completion step of dlnref against the official code's way, as a ratio in one run.

Run (jax and optax are not dlnref dependencies; a scratch venv will do):

    pip install jax optax
    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
        taskset -c 1 python benchmarks/bench_vs_jax.py --sizes 1000 2000

For each d, the same problem (``make_problem("completion", (d, d), 5, seed=0)``)
and the same start (``compress(problem, 3, 10)``) are trained for the same
steps (lr 1, alpha 5) two ways, in one process on one core:

- as the official code trains (``soominkwon/comp-deep-nets``, ``solver.train``):
  ``jax.grad`` of the masked mean loss through the composed network, optax SGD
  with the outer layers' rate scaled by alpha, the steps in a ``fori_loop``,
  jitted, float64 (written here from that description, not copied);
- by ``dlnref.gradient_descent`` (one BLAS thread, recording at the ends).

It prints ms per step of each (best of 3, compile time excluded), their ratio,
and how far apart the final weights are (the same run to rounding).
"""

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

import dlnref


def jax_ms_per_step(weights, target, mask, lr, alpha, steps):
    """Best ms per step of the official code's training loop, and its final weights."""
    import jax
    import jax.numpy as jnp
    import optax

    jax.config.update("jax_enable_x64", True)

    def loss(ws):
        X = ws[0]
        for W in ws[1:]:
            X = W @ X
        return 0.5 * jnp.sum(((X - target) * mask) ** 2) / jnp.sum(mask)

    labels = ["factor"] + ["weight"] * (len(weights) - 2) + ["factor"]
    tx = optax.multi_transform({"weight": optax.sgd(lr), "factor": optax.chain(optax.sgd(lr), optax.scale(alpha))},
                               labels)

    def body(_, state):
        ws, opt = state
        updates, opt = tx.update(jax.grad(loss)(ws), opt)
        return optax.apply_updates(ws, updates), opt

    run = jax.jit(lambda ws, opt: jax.lax.fori_loop(0, steps, body, (ws, opt)))
    ws = [jnp.asarray(w) for w in weights]
    opt = tx.init(ws)
    jax.block_until_ready(run(ws, opt))  # compile
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        out = jax.block_until_ready(run(ws, opt))
        best = min(best, (time.perf_counter() - start) / steps)
    return best * 1e3, [np.asarray(w) for w in out[0]]


def dlnref_ms_per_step(problem, weights, lr, alpha, steps):
    """Best ms per step of ``dlnref.gradient_descent`` on one BLAS thread, and its final weights."""
    with threadpool_limits(limits=1, user_api="blas"):
        run = lambda: dlnref.gradient_descent(problem, weights, lr, steps, outer_lr_scale=alpha,  # noqa: E731
                                              record_every=steps, blas_threads=None)
        run()
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            result = run()
            best = min(best, (time.perf_counter() - start) / steps)
    return best * 1e3, result.weights


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000])
    args = parser.parse_args()
    try:
        import jax  # noqa: F401
        import optax  # noqa: F401
    except ImportError:
        parser.exit(2, "bench_vs_jax.py needs jax and optax: pip install jax optax (in a scratch venv)\n")
    lr, alpha = 1.0, 5.0
    for d in args.sizes:
        problem = dlnref.make_problem("completion", (d, d), 5, seed=0)
        weights = dlnref.compress(problem, 3, 10)
        steps = 200 if d <= 1000 else 50
        jax_ms, jax_weights = jax_ms_per_step(weights, problem.target, problem.mask.astype(float), lr, alpha, steps)
        ours_ms, ours_weights = dlnref_ms_per_step(problem, weights, lr, alpha, steps)
        apart = max(np.abs(a - b).max() / np.abs(b).max() for a, b in zip(ours_weights, jax_weights))
        print(f"d={d}: official code's way {jax_ms:.2f} ms/step, dlnref {ours_ms:.2f} ms/step, "
              f"ratio {ours_ms / jax_ms:.2f}; final weights after {steps} steps agree to {apart:.1e}", flush=True)


if __name__ == "__main__":
    main()
