"""dlnref's training step against the official code's loop, side by side in one process on one pinned core.

Run (jax and optax are not dlnref dependencies; a scratch venv with dlnref[fast] installed will do):

    pip install jax optax
    python benchmarks/bench_vs_jax.py            # every row, about 8 minutes on 2 shared cores
    python benchmarks/bench_vs_jax.py --quick    # d = 100 only and fewer repeats, seconds

Without jax or optax it says so and exits 0. It pins itself to one core
(``--core``, default the last one it may use), runs XLA and BLAS on one
thread, and for each row trains the same problem from the same start at the
same lr three ways:

- as the official code trains (``soominkwon/comp-deep-nets``, ``solver.train``):
  ``jax.grad`` of the masked mean loss through the composed network, optax SGD
  with the outer layers' rate scaled by alpha, the steps in a ``fori_loop``,
  jitted, float64 (written here from that description, not copied);
- by ``dlnref.gradient_descent(engine="numpy")``, the NumPy step;
- by ``dlnref.gradient_descent(engine="auto")``: the compiled step
  (:mod:`dlnref.compiled`) where numba is installed and it applies (below
  2^18 entries, or a wide network), else the same NumPy step.

The rows: matrix completion (rank 5, 30% observed), depth 3, the wide network
(d x d layers, orthogonal init of scale 1e-2) and the compressed one (width
10, spectral init), lr 1 and alpha 5 (1 for the wide one), at d = 100, 300,
1000 (wide and compressed) and 2000 (compressed). Each timed call trains a
run of steps and then evaluates the loss once (dlnref's last row; the
official ``solver.train`` evaluates its loss after each ``fori_loop``). The
three are timed in turn, ``--repeats`` rounds (compile time excluded). The
table gives the median ms per step in CPU time of the process (on a machine
that other jobs share, the time it was not preempted; on an idle core it is
the wall time), and the median of the per-round ratios with their range, in
CPU time and, for the compiled step, in wall time too. Last, the time to a
recovery error of 1e-3 on the paper's completion run (d = 100, lr 10, alpha
5 for the compressed network and 1 for the wide one): each way checks the
error every ``--every`` steps (the official code checks its loss every
``n_inner_loops = 100``; the paper's setup records every 25).
"""

import argparse
import os
import statistics
import time

# one thread for XLA, set before jax is imported
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import dlnref  # noqa: E402
from dlnref.compiled import compiled_run  # noqa: E402
from dlnref.experiments.compare import build, setup  # noqa: E402

#: (d, network) rows of the per-step table.
ROWS = ((100, "wide"), (100, "compressed"), (300, "wide"), (300, "compressed"), (1000, "wide"),
        (1000, "compressed"), (2000, "compressed"))

#: Seconds that one timed call of each way aims at.
CALL_SECONDS = 0.25


def official_loop(weights, target, mask, lr, alpha):
    """The official code's training: ``run(steps)`` trains from ``weights`` (jitted, compiled on first use)."""
    import jax
    import jax.numpy as jnp
    import optax

    jax.config.update("jax_enable_x64", True)
    target, mask = jnp.asarray(target), jnp.asarray(mask)

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

    loops = {}

    def run(steps, state=None):
        """``steps`` steps, then the training loss op by op, as ``solver.train`` after each ``fori_loop``; the new state.

        (Jitted whole, XLA fuses the second matmul into the reduction: several times slower at d = 1000.)
        """
        if steps not in loops:
            loops[steps] = jax.jit(lambda ws, opt: jax.lax.fori_loop(0, steps, body, (ws, opt)))
        if state is None:
            ws = [jnp.asarray(w) for w in weights]
            state = (ws, tx.init(ws))
        state = loops[steps](*state)
        float(loss(state[0]))
        return state

    @jax.jit
    def recovery_error(ws):
        X = ws[0]
        for W in ws[1:]:
            X = W @ X
        return jnp.linalg.norm(X - target) / jnp.linalg.norm(target)

    return run, recovery_error


def row_start(d, network):
    """The problem, start, lr and alpha of a per-step row."""
    problem = dlnref.make_problem("completion", (d, d), 5, seed=0)
    if network == "wide":
        return problem, dlnref.init_weights([d] * 4, 1e-2, seed=1), 1.0, 1.0
    return problem, dlnref.compress(problem, 3, 10), 1.0, 5.0


def timed(fn):
    """``fn()``'s CPU seconds (this process's), wall seconds and value."""
    cpu, wall = time.process_time(), time.perf_counter()
    value = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, value


def rounds(ways, repeats, per=1):
    """Each way's CPU and wall times (divided by ``per``) over ``repeats`` alternating rounds, and its last value."""
    for fn in ways.values():   # compile and warm up
        fn()
    cpu, wall, values = ({name: [] for name in ways} for _ in range(3))
    for _ in range(repeats):
        for name, fn in ways.items():
            c, w, values[name] = timed(fn)
            cpu[name].append(c / per)
            wall[name].append(w / per)
    return cpu, wall, values


def ratios(times):
    """Per-round ratios of dlnref's ways to the official loop."""
    return {name: [a / b for a, b in zip(times[name], times["official"])] for name in ("numpy", "compiled")}


def per_step_row(d, network, repeats):
    """Median ms/step of the three ways, the per-round ratios to the official loop, and how far apart they end."""
    problem, weights, lr, alpha = row_start(d, network)
    run, _ = official_loop(weights, problem.target, problem.mask.astype(float), lr, alpha)
    compiled = compiled_run(problem, weights) is not None

    def ours(engine, steps):
        return lambda: dlnref.gradient_descent(problem, weights, lr, steps, outer_lr_scale=alpha, record_every=steps,
                                               blas_threads=None, engine=engine).weights

    probe = timed(ours("numpy", 3))[0] / 3   # also the warm-up
    steps = max(5, int(CALL_SECONDS / probe))
    ways = {"official": lambda: run(steps)[0], "numpy": ours("numpy", steps), "compiled": ours("auto", steps)}
    cpu, wall, finals = rounds(ways, repeats, steps / 1e3)
    scale = max(float(np.abs(w).max()) for w in finals["numpy"])
    apart = max(float(np.abs(np.asarray(a) - b).max()) / scale for a, b in zip(finals["official"], finals["numpy"]))
    return {"steps": steps, "ms": {name: statistics.median(v) for name, v in cpu.items()}, "ratios": ratios(cpu),
            "wall": ratios(wall), "compiled": compiled, "apart": apart}


def spread(ratios):
    return f"{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]"


def seconds_to_tol(network, every, repeats, tol=1e-3):
    """Median wall seconds (and steps) to a recovery error <= tol on the paper's run: official, numpy, compiled."""
    config = setup("full", "completion", tol=tol)
    problem, starts = build(config)
    weights, alpha = starts[network]
    lr, most = config.lr, config.steps
    run, recovery_error = official_loop(weights, problem.target, problem.mask.astype(float), lr, alpha)

    def official():
        state, t = None, 0
        while t < most:
            state, t = run(every, state), t + every
            if float(recovery_error(state[0])) <= tol:
                return t
        return None

    def ours(engine):
        return lambda: dlnref.gradient_descent(problem, weights, lr, most, outer_lr_scale=alpha, record_every=every,
                                               tol=tol, blas_threads=None, engine=engine).steps

    ways = {"official": official, "numpy": ours("numpy"), "compiled": ours("auto")}
    cpu, wall, reached = rounds(ways, repeats)
    return {"s": {name: statistics.median(v) for name, v in cpu.items()}, "ratios": ratios(cpu), "wall": ratios(wall),
            "reached": reached}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="only the rows of these d")
    parser.add_argument("--repeats", type=int, default=7, help="rounds of the three ways, alternating (default 7)")
    parser.add_argument("--every", type=int, default=25, help="steps between two checks of the error (default 25)")
    parser.add_argument("--core", type=int, default=None, help="the core to pin to (default: the last allowed)")
    parser.add_argument("--quick", action="store_true", help="d = 100 only and 3 repeats: seconds")
    args = parser.parse_args()
    try:
        import jax  # noqa: F401
        import optax  # noqa: F401
    except ImportError:
        print("bench_vs_jax.py: skipped: it needs jax and optax (pip install jax optax, in a scratch venv)")
        return
    if hasattr(os, "sched_setaffinity"):
        core = max(os.sched_getaffinity(0)) if args.core is None else args.core
        os.sched_setaffinity(0, {core})
        where = f"pinned to core {core}"
    else:
        where = "not pinned (no sched_setaffinity here)"
    sizes = [100] if args.quick else args.sizes
    repeats = 3 if args.quick else args.repeats
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"one process {where}, XLA and BLAS on one thread, {repeats} alternating rounds; load average {load:.2f}; "
          f"compiled step: {'numba' if dlnref.compiled.numba_available() else 'numba missing, NumPy step'}")
    print()
    print("| d | network | official ms/step | dlnref NumPy ms/step | dlnref compiled ms/step | NumPy / official "
          "| compiled / official | compiled / official, wall | final weights apart |")
    print("|---|---|---|---|---|---|---|---|---|")
    with threadpool_limits(limits=1, user_api="blas"):
        for d, network in ROWS:
            if sizes is not None and d not in sizes:
                continue
            r = per_step_row(d, network, repeats)
            ms = r["ms"]
            compiled = (f"{ms['compiled']:.4g}", spread(r["ratios"]["compiled"])) if r["compiled"] else \
                ("(NumPy step)", spread(r["ratios"]["compiled"]))
            print(f"| {d} | {network} | {ms['official']:.4g} | {ms['numpy']:.4g} | {compiled[0]} | "
                  f"{spread(r['ratios']['numpy'])} | {compiled[1]} | {spread(r['wall']['compiled'])} | "
                  f"{r['apart']:.0e} |", flush=True)
        print()
        print(f"Time to a recovery error of 1e-3 on the paper's completion run (d = 100, lr 10), the error checked "
              f"every {args.every} steps:")
        print()
        print("| network | official s | dlnref NumPy s | dlnref compiled s | NumPy / official | compiled / official "
              "| compiled / official, wall | steps (official, NumPy, compiled) |")
        print("|---|---|---|---|---|---|---|---|")
        for network in ("wide", "compressed"):
            if args.quick and network == "wide":
                continue
            r = seconds_to_tol(network, args.every, repeats)
            s, reached = r["s"], r["reached"]
            print(f"| {network} | {s['official']:.3f} | {s['numpy']:.3f} | {s['compiled']:.3f} | "
                  f"{spread(r['ratios']['numpy'])} | {spread(r['ratios']['compiled'])} | {spread(r['wall']['compiled'])} "
                  f"| {reached['official']}, {reached['numpy']}, {reached['compiled']} |", flush=True)


if __name__ == "__main__":
    main()
