"""The paper's last claim on the 8x8 digits: a compressed linear block trains an MLP >= 2x faster, same accuracy.

Trains, for each seed, the wide MLP and the compressed one with both block
inits (random orthogonal, as the official code; spectral), all with
``dlnref classify``'s defaults, and prints test accuracy, steps and seconds to
the target accuracy, ms per step and the speedups; then the official code's
variant (a ReLU after every block layer). Timings are wall time of the steps
only, with the machine's load printed next to them.

    python benchmarks/bench_classify.py [--seeds 0 1 2] [--blas-threads 1] [--no-relu]

It first measures the cost of one step of each model in alternating bursts (the least of five), the
figure least disturbed by other processes on a shared machine.
"""

import argparse
import dataclasses
import os
import time

from dlnref.experiments.classify import ClassifyConfig
from dlnref.compress import parameter_count
from dlnref.nn.images import load_digits
from dlnref.nn.mlp import init_mlp, labelled_set, mlp_layout, spectral_block, train_mlp


def models(config, train, pixels, classes):
    """(name, weights, layout) of the wide MLP and of the compressed one with each block init."""
    wide_layout = mlp_layout(pixels, classes, config.hidden, config.relu_layers, config.depth, block=config.block)
    wide = init_mlp(wide_layout, config.scale, config.seed)
    small_layout = wide_layout.with_block_width(config.width)
    yield "wide", wide, wide_layout
    yield "compressed, random", init_mlp(small_layout, config.scale, config.seed), small_layout
    if config.block == "linear":
        yield ("compressed, spectral",
               *spectral_block(wide, wide_layout, train.X, train.Y, config.width, config.scale))


def run(config, train, test, pixels, classes):
    rows = {}
    for name, weights, layout in models(config, train, pixels, classes):
        history = train_mlp(weights, layout, train, config.lr, config.steps, test=test, record_every=config.record_every,
                            seed=config.seed, blas_threads=config.blas_threads).history
        accuracy = history["test_accuracy"]
        reached = next((i for i, a in enumerate(accuracy) if a >= config.target_accuracy), None)
        rows[name] = {"params": parameter_count(weights), "final": accuracy[-1], "best": max(accuracy),
                      "steps_to": None if reached is None else history["step"][reached],
                      "seconds_to": None if reached is None else history["seconds"][reached],
                      "ms_per_step": 1000 * history["seconds"][-1] / config.steps, "seconds": history["seconds"][-1]}
        print(_row(config, name, rows[name]), f"  load {os.getloadavg()[0]:.1f}", flush=True)
    wide = rows["wide"]
    for name, row in rows.items():
        if name != "wide":
            print(f"    {name}: speedup {_ratio(wide['seconds_to'], row['seconds_to'])} in seconds to "
                  f"{config.target_accuracy:g}, {_ratio(wide['steps_to'], row['steps_to'])} in steps, "
                  f"{_ratio(wide['ms_per_step'], row['ms_per_step'])} per step; accuracy "
                  f"{row['final'] - wide['final']:+.4f} against wide", flush=True)
    return rows


def interleaved_step_cost(config, train, pixels, classes, rounds=5, steps=10):
    """Least ms per full-batch step of each model over ``rounds`` alternating bursts of ``steps`` steps.

    The models take turns, so a busy neighbour slows both alike; the least of the rounds is the
    closest to the cost on a quiet machine.
    """
    from threadpoolctl import threadpool_limits

    from dlnref.nn.mlp import step

    sizes = [config.lr * config.first_lr_scale] + [config.lr] * (config.relu_layers + config.depth)
    best = {}
    with threadpool_limits(limits=config.blas_threads, user_api="blas"):
        nets = list(models(config, train, pixels, classes))
        for _ in range(rounds):
            for name, weights, layout in nets:
                start = time.perf_counter()
                for _ in range(steps):
                    float(step(weights, layout, train.X, train.Y, sizes)[0])
                best[name] = min(best.get(name, float("inf")), 1000 * (time.perf_counter() - start) / steps)
    return best


def _row(config, name, r):
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    return (f"{config.block:>6} {config.seed:>4} {name:>22} | {r['params']:>8,} | {r['final']:.4f} {r['best']:.4f} | "
            f"{fmt(r['steps_to'], 'd'):>5} {fmt(r['seconds_to'], '.2f'):>7} | {r['ms_per_step']:>7.2f} {r['seconds']:>7.2f}")


def _ratio(wide, small):
    return "-" if wide is None or small is None or small == 0 else f"{wide / small:.2f}x"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--blas-threads", type=int, default=1)
    parser.add_argument("--no-relu", action="store_true", help="skip the official code's ReLU-block variant")
    args = parser.parse_args()
    images = load_digits()
    train = labelled_set(images.train_images, images.train_labels, images.classes)
    test = labelled_set(images.test_images, images.test_labels, images.classes)
    base = ClassifyConfig(blas_threads=args.blas_threads).resolved(train.size)
    pixels = images.train_images.shape[1]
    print(f"digits: {train.size} train / {test.size} test; h={base.hidden}, block depth {base.depth}, width "
          f"{base.width}, lr {base.lr:g}, {base.steps} full-batch steps, BLAS threads {args.blas_threads}; "
          f"load at start {os.getloadavg()[0]:.1f}")
    print(f"{'block':>6} {'seed':>4} {'model':>22} | {'params':>8} | {'final':>6} {'best':>6} | "
          f"{'steps':>5} {'s':>7} to {base.target_accuracy:g} | {'ms/step':>7} {'total s':>7}")
    start = time.perf_counter()
    cost = interleaved_step_cost(base, train, pixels, images.classes)
    print("least ms per step over 5 interleaved bursts of 10: "
          + ", ".join(f"{name} {ms:.2f}" for name, ms in cost.items())
          + f"; wide / compressed {cost['wide'] / cost['compressed, random']:.2f}x (load {os.getloadavg()[0]:.1f})",
          flush=True)
    for seed in args.seeds:
        run(dataclasses.replace(base, seed=seed), train, test, pixels, images.classes)
    if not args.no_relu:
        run(dataclasses.replace(base, block="relu"), train, test, pixels, images.classes)
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
