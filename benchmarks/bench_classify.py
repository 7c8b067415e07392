"""The paper's last claim: a linear block helps an MLP, and a compressed one trains >= 2x faster, same accuracy.

With ``--data DIR`` (FashionMNIST) it runs the verdict instead: per seed, the
three models of ``dlnref classify`` at the folder's preset (the MLP alone, the
wide block, the compressed block with the random and with the spectral init),
writes every curve to ``--json`` and prints the table over the seeds; see
:func:`verdict`.

    python benchmarks/bench_classify.py --data /usr/share/datasets/fashion-mnist --seeds 0 1 2 \
        --json figures/classify_fashion_mnist.json

On the digits (no ``--data``):

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
import json
import os
import statistics
import time

from dlnref._io import atomic_path, json_default
from dlnref.compress import parameter_count
from dlnref.experiments.classify import ClassifyConfig, classify_config, classify_models, load_data, model_summary
from dlnref.nn.images import load_digits
from dlnref.nn.mlp import init_mlp, labelled_set, mlp_layout, spectral_block, train_mlp
from dlnref.train import DivergenceError

#: The verdict's models: the three of ``dlnref classify`` with the random block init, and the compressed
#: one with the spectral init (the MLP alone and the wide one do not depend on the block init).
VERDICT_MODELS = ("original", "wide", "compressed, random", "compressed, spectral")


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


def interleaved_step_cost(config, train, pixels, classes, rounds=5, steps=10, nets=None, clock=time.perf_counter):
    """Least ms per full-batch step of each model over ``rounds`` alternating bursts of ``steps`` steps.

    The models take turns, so a busy neighbour slows both alike; the least of the rounds is the
    closest to the cost on a quiet machine. ``nets``: (name, weights, layout) triples, by default
    :func:`models`'s. ``clock``: wall time by default; ``time.thread_time`` counts this thread's CPU
    time, which with one BLAS thread is the time on an idle core whatever the load.
    """
    from threadpoolctl import threadpool_limits

    from dlnref.nn.mlp import step

    best = {}
    with threadpool_limits(limits=config.blas_threads, user_api="blas"):
        nets = list(models(config, train, pixels, classes)) if nets is None else nets
        for _ in range(rounds):
            for name, weights, layout in nets:
                sizes = [config.lr * config.first_lr_scale] + [config.lr] * (len(weights) - 1)
                start = clock()
                for _ in range(steps):
                    float(step(weights, layout, train.X, train.Y, sizes)[0])
                best[name] = min(best.get(name, float("inf")), 1000 * (clock() - start) / steps)
    return best


def _row(config, name, r):
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    return (f"{config.block:>6} {config.seed:>4} {name:>22} | {r['params']:>8,} | {r['final']:.4f} {r['best']:.4f} | "
            f"{fmt(r['steps_to'], 'd'):>5} {fmt(r['seconds_to'], '.2f'):>7} | {r['ms_per_step']:>7.2f} {r['seconds']:>7.2f}")


def _ratio(wide, small):
    return "-" if wide is None or small is None or small == 0 else f"{wide / small:.2f}x"


def verdict_models(config, train, pixels, classes):
    """(name, weights, layout) of :data:`VERDICT_MODELS` for ``config.seed``."""
    random = classify_models(dataclasses.replace(config, block_init="random"), train, pixels, classes)
    spectral = classify_models(dataclasses.replace(config, block_init="spectral"), train, pixels, classes)
    return [*random[:2], ("compressed, random", *random[2][1:]), ("compressed, spectral", *spectral[2][1:])]


def verdict(data, preset, seeds, blas_threads=1, save=None, models=VERDICT_MODELS, **options):
    """Train :data:`VERDICT_MODELS` for each seed at the data's preset; every curve, and each model's step cost.

    Timing is CPU time of this thread (one BLAS thread): on a machine shared with other work, wall
    time measures the neighbours; CPU time of a single-threaded run is its wall time on an idle core.

    Returns
    -------
    dict
        ``config`` (the first seed's, resolved), ``data``, ``ms_per_step`` (CPU, the least
        over 5 interleaved bursts of 10 full-batch steps, the first seed's models) and
        ``runs``: per seed (a string), per model, :func:`dlnref.experiments.classify.model_summary`
        without the history, plus ``cpu_seconds``, the CPU time of its whole run (steps and
        evaluation); a model that diverged has ``diverged`` (the error's text) instead.
        ``save(result)`` is called after each model, so a stopped run keeps what it did.
        ``models``: the subset of :data:`VERDICT_MODELS` to train (to share the seeds' work
        between processes; :func:`combine` merges them).
    """
    if blas_threads != 1:
        raise ValueError("the verdict times CPU time of one thread: run it with --blas-threads 1")
    config = classify_config(data, preset, blas_threads=1, seed=seeds[0], **options)
    images = load_data(config)
    config = config.resolved(images.train_labels.size)
    train = labelled_set(images.train_images, images.train_labels, images.classes)
    test = labelled_set(images.test_images, images.test_labels, images.classes)
    pixels = images.train_images.shape[1]
    print(f"{images.name}: {train.size} train / {test.size} test; preset {config.preset}; h={config.hidden}, block "
          f"depth {config.depth}, width {config.width}, lr {config.lr:g}, {config.steps} full-batch steps; load "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    nets = [net for net in verdict_models(config, train, pixels, images.classes) if net[0] in models]
    cost = interleaved_step_cost(config, train, pixels, images.classes, nets=nets, clock=time.thread_time)
    print("least CPU ms per step over 5 interleaved bursts of 10: "
          + ", ".join(f"{k} {v:.1f}" for k, v in cost.items()), flush=True)
    data_info = {"name": images.name, "train": train.size, "test": test.size, "pixels": pixels,
                 "classes": images.classes}
    runs = {}
    result = {"config": dataclasses.asdict(config), "data": data_info, "ms_per_step": cost, "runs": runs}
    for seed in seeds:
        seeded = dataclasses.replace(config, seed=seed)
        runs[str(seed)] = {}
        for name, weights, layout in verdict_models(seeded, train, pixels, images.classes):
            if name not in models:
                continue
            cpu = time.thread_time()
            try:
                run = train_mlp(weights, layout, train, seeded.lr, seeded.steps, test=test,
                                batch_size=seeded.batch_size, first_lr_scale=seeded.first_lr_scale,
                                record_every=seeded.record_every, seed=seed, blas_threads=1)
            except DivergenceError as error:   # a finding: recorded, and the other models still run
                runs[str(seed)][name] = {"diverged": str(error)}
                print(f"seed {seed} {name:>20}: {error}", flush=True)
                continue
            summary = model_summary(run, layout, seeded.target_accuracy)
            del summary["history"]
            summary["cpu_seconds"] = time.thread_time() - cpu
            runs[str(seed)][name] = summary
            print(f"seed {seed} {name:>20}: final {summary['final_test_accuracy']:.4f} best "
                  f"{summary['best_test_accuracy']:.4f} steps to {seeded.target_accuracy:g} {summary['steps_to']}; "
                  f"CPU {summary['cpu_seconds']:.0f} s, wall {summary['seconds']:.0f} s of steps (load "
                  f"{os.getloadavg()[0]:.1f})", flush=True)
            if save is not None:
                save(result)
    return result


def plot_verdict(result, path):
    """The paper's two panels over the seeds: test accuracy against steps and against CPU seconds.

    One colour per model of :data:`VERDICT_MODELS` (the compressed one with the spectral init dashed),
    one line per seed; the y-axis leaves out the lowest 2% of the points (single-record spikes), as
    the paper's figure does below 0.86. Seconds are steps times the model's least CPU ms per step (one core): the wall
    clock of a shared machine measures its other users.
    """
    from matplotlib.figure import Figure

    from dlnref.nn.mlp import PAPER_NAMES
    from dlnref.nn.plots import MODEL_COLORS
    from dlnref.plots import save

    styles = {"original": ("original", "-"), "wide": ("wide", "-"), "compressed, random": ("compressed", "-"),
              "compressed, spectral": ("compressed", "--")}
    fig = Figure(figsize=(11, 4.2))
    by_step, by_time = fig.subplots(1, 2)
    finals = []
    for model, (kind, style) in styles.items():
        label = PAPER_NAMES[kind] + (" (spectral init)" if model.endswith("spectral") else "")
        for i, seed in enumerate(sorted(result["runs"], key=int)):
            run = result["runs"][seed].get(model)
            if run is None or "diverged" in run:
                continue
            curve = run["curve"]
            seconds = [t * result["ms_per_step"][model] / 1000 for t in curve["step"]]
            kwargs = {"color": MODEL_COLORS[kind], "ls": style, "lw": 1.2, "alpha": 0.9,
                      "label": f"{label}, {len(result['runs'])} seeds" if i == 0 else None}
            by_step.plot(curve["step"], curve["test_accuracy"], **kwargs)
            by_time.plot(seconds, curve["test_accuracy"], **kwargs)
            finals += curve["test_accuracy"][len(curve["step"]) // 4:]
    c, d = result["config"], result["data"]
    for ax, xlabel in ((by_step, "gradient-descent step"), (by_time, "CPU seconds of the steps (one core)")):
        ax.axhline(c["target_accuracy"], color="0.5", ls=":", lw=1)
        ax.set_ylim(sorted(finals)[len(finals) // 50] - 0.03, max(finals) + 0.01)   # as the paper, spikes cut
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy")
        ax.grid(True, alpha=0.3)
    by_time.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{d['name']}, first {d['train']:,} training images, {d['test']:,} test: MLP h={c['hidden']}, "
                 f"{c['block']} block of depth {c['depth']}, compressed width {c['width']}, full-batch GD, "
                 f"lr {c['lr']:g}", fontsize=10)
    save(fig, path)


def combine(results):
    """One verdict from several (one per seed, run in parallel): the first's config, the seeds' runs, the least costs."""
    merged = dict(results[0], runs={}, ms_per_step={})
    for result in results:
        for seed, models in result["runs"].items():
            merged["runs"].setdefault(seed, {}).update(models)
        for name, ms in result["ms_per_step"].items():
            merged["ms_per_step"][name] = min(ms, merged["ms_per_step"].get(name, float("inf")))
    return merged


def verdict_table(result, threshold):
    """Rows of the verdict over the seeds: accuracy, steps to ``threshold``, and the two answers."""
    cost = result["ms_per_step"]
    runs = {seed: models for seed, models in result["runs"].items()
            if set(VERDICT_MODELS) <= set(models) and not any("diverged" in run for run in models.values())}
    seeds = sorted(runs, key=int)   # the seeds with every model done
    diverged = [f"seed {seed} {name}: {run['diverged']}" for seed, models in sorted(result["runs"].items())
                for name, run in models.items() if "diverged" in run]
    def column(model, key):
        if key == "late_test_accuracy":   # the mean over the last tenth of the records: one spike moves it little
            return [statistics.mean(runs[s][model]["curve"]["test_accuracy"][-max(1, len(
                runs[s][model]["curve"]["step"]) // 10):]) for s in seeds]
        return [runs[s][model][key] for s in seeds]

    def steps_to(model):
        out = []
        for s in seeds:
            curve = runs[s][model]["curve"]
            out.append(next((t for t, a in zip(curve["step"], curve["test_accuracy"]) if a >= threshold), None))
        return out

    def stat(values, spec=".4f"):
        if any(v is None for v in values):
            return "not reached by " + ", ".join(s for s, v in zip(seeds, values) if v is None)
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):{spec}} +- {sd:{spec}}"

    lines = [f"{len(seeds)} seeds ({', '.join(seeds)}); mean +- sd; time = steps x least CPU ms per step "
             f"(interleaved); threshold {threshold:g}", *diverged, ""]
    if not seeds:
        return lines
    lines.append(f"{'model':>22} | {'final test acc':>17} | {'last 10% mean':>17} | {'best':>17} | {'steps to':>17} | "
                 f"{'ms/step':>7} | {'s to (steps x ms)':>17}")
    for model in VERDICT_MODELS:
        steps = steps_to(model)
        seconds = [None if t is None else t * cost[model] / 1000 for t in steps]
        lines.append(f"{model:>22} | {stat(column(model, 'final_test_accuracy')):>17} | "
                     f"{stat(column(model, 'late_test_accuracy')):>17} | "
                     f"{stat(column(model, 'best_test_accuracy')):>17} | {stat(steps, '.0f'):>17} | "
                     f"{cost[model]:>7.1f} | {stat(seconds, '.1f'):>17}")
    lines.append("")
    for key, words in (("final_test_accuracy", "final"), ("late_test_accuracy", "last-10% mean")):
        original = column("original", key)
        for model in VERDICT_MODELS[1:]:
            gain = [a - o for a, o in zip(column(model, key), original)]
            lines.append(f"{model}: {words} accuracy minus the MLP alone's, per seed: "
                         + ", ".join(f"{g:+.4f}" for g in gain) + f" (mean {statistics.mean(gain):+.4f})")
    wide_steps = steps_to("wide")
    for model in VERDICT_MODELS[2:]:
        small = steps_to(model)
        ratios = [None if w is None or c is None else w * cost["wide"] / (c * cost[model])
                  for w, c in zip(wide_steps, small)]
        loss = [c - w for c, w in zip(column(model, "late_test_accuracy"), column("wide", "late_test_accuracy"))]
        lines.append(f"{model}: wide / compressed time to {threshold:g}, per seed: "
                     + ", ".join("-" if r is None else f"{r:.2f}x" for r in ratios)
                     + "; last-10% mean accuracy minus wide's: " + ", ".join(f"{v:+.4f}" for v in loss))
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--blas-threads", type=int, default=1)
    parser.add_argument("--no-relu", action="store_true", help="skip the official code's ReLU-block variant")
    parser.add_argument("--data", default=None, help="an MNIST-format folder: run the verdict at its preset")
    parser.add_argument("--preset", default=None, help="the verdict's preset (default: the folder's)")
    parser.add_argument("--steps", type=int, default=None, help="the verdict's steps (default: the preset's)")
    parser.add_argument("--train-images", type=int, default=None, help="(default: the preset's)")
    parser.add_argument("--json", default=None, help="write the verdict's runs here")
    parser.add_argument("--combine", nargs="+", default=None, metavar="JSON",
                        help="merge verdicts run one seed each into --json and print the table")
    parser.add_argument("--threshold", type=float, default=None, help="accuracy threshold (default: the preset's)")
    parser.add_argument("--plot", default=None, help="draw the verdict's curves here")
    parser.add_argument("--models", nargs="+", default=list(VERDICT_MODELS), choices=VERDICT_MODELS,
                        help="the verdict's models to train (default: all four)")
    parser.add_argument("--lr", type=float, default=None, help="the verdict's lr (default: the preset's)")
    args = parser.parse_args()
    if args.data is not None or args.combine is not None:
        def save(result):
            if args.json is not None:
                with atomic_path(args.json) as path, open(path, "w") as file:
                    json.dump(result, file, default=json_default)

        if args.combine is not None:
            results = []
            for path in args.combine:
                with open(path) as file:
                    results.append(json.load(file))
            result = combine(results)
        else:
            options = {k: v for k, v in (("steps", args.steps), ("train_images", args.train_images), ("lr", args.lr))
                       if v is not None}
            result = verdict(args.data, args.preset, args.seeds, args.blas_threads, save=save, models=args.models,
                             **options)
        save(result)
        if args.plot is not None:
            plot_verdict(result, args.plot)
        print("\n".join(verdict_table(result, args.threshold or result["config"]["target_accuracy"])))
        return
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
