"""The ``dlnref`` command.

Exit codes: 0 success, 1 a run failed (say training diverged), 2 bad usage
(unknown option or problem, an invalid value, a missing backend).
"""

import argparse
import dataclasses
import json
import os
import sys
import time

from .backend import BACKENDS, BackendUnavailableError, default_backend
from .classify import add_classify_command
from .compare import NETWORKS, THRESHOLDS, CompareConfig, run_compare
from .executor import add_executor_options, executor_from_args
from .oracle.conform import add_conform_command
from .problems import PROBLEMS
from .sweep import add_sweep_command
from .train import DivergenceError

#: Rows of the compare tables, in order: the networks, then the ALS baseline.
ROWS = (*NETWORKS, "als")


class UsageError(Exception):
    """A problem with the command line itself (exit code 2)."""


def main(argv=None):
    """Entry point: parse ``argv`` and run the chosen subcommand; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, BackendUnavailableError, UsageError) as error:
        print(f"dlnref {args.command}: error: {error}", file=sys.stderr)
        return 2
    except DivergenceError as error:
        print(f"dlnref {args.command}: {error}", file=sys.stderr)
        return 1


def build_parser():
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="dlnref", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _add_compare(commands)
    _add_check(commands)
    _add_figures(commands)
    _add_golden(commands)
    add_conform_command(commands)
    add_classify_command(commands)
    add_sweep_command(commands)
    return parser


def _add_compare(commands):
    defaults = CompareConfig()
    p = commands.add_parser(
        "compare", help="train the wide and the compressed DLN on one problem and compare",
        description="Train the wide DLN and the compressed DLN on the same recovery problem, and report "
                    "the steps and seconds each needs to reach relative recovery errors "
                    + ", ".join(f"{t:g}" for t in THRESHOLDS) + ". Defaults: the paper's completion run.",
    )
    p.add_argument("--problem", choices=tuple(PROBLEMS), default=defaults.problem)
    p.add_argument("--d", type=int, default=defaults.d, help="the target is d x d (default %(default)s)")
    p.add_argument("--rank", type=int, default=defaults.rank, help="rank r of the target (default %(default)s)")
    p.add_argument("--fraction", type=float, default=defaults.fraction,
                   help="observed fraction, completion only (default %(default)s)")
    p.add_argument("--measurements", type=int, default=defaults.measurements,
                   help="number of sensing operators, sensing only (default %(default)s)")
    p.add_argument("--depth", type=int, default=defaults.depth, help="number of layers L (default %(default)s)")
    p.add_argument("--width", type=int, default=None, help="inner width of the compressed DLN (default 2 * rank)")
    p.add_argument("--scale", type=float, default=defaults.scale, help="init scale eps (default %(default)s)")
    p.add_argument("--lr", type=_lr, default=None,
                   help="step size eta, or 'auto' (the default): from the problem's curvature and the surrogate's "
                        "top singular value (dlnref.train.auto_lr). The paper's: 10 completion, 1 factorization, "
                        "20/m sensing")
    p.add_argument("--no-als", dest="als", action="store_false",
                   help="skip the alternating-least-squares baseline row (completion only)")
    p.add_argument("--networks", type=_networks, default=None,
                   help="comma-separated networks to train, from " + ",".join(NETWORKS)
                        + " (default: both; with --data, compressed)")
    p.add_argument("--outer-lr-scale", type=float, default=None,
                   help="alpha for the compressed DLN's outer layers (default: the paper's, 5 completion, else 1)")
    p.add_argument("--steps", type=int, default=defaults.steps, help="most steps per network (default %(default)s)")
    p.add_argument("--tol", type=float, default=defaults.tol,
                   help="stop a network once its recovery error reaches this (default %(default)g)")
    p.add_argument("--record-every", type=int, default=defaults.record_every,
                   help="record the errors every this many steps (default %(default)s)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of the problem and the wide init")
    p.add_argument("--data", metavar="PATH", default=None,
                   help="complete the MovieLens 100K ratings of this u.data file instead of a synthetic problem")
    p.add_argument("--split", default="random",
                   help="with --data: 'random' (seeded, 20%% held out) or a shipped split u1..u5, ua, ub")
    p.add_argument("--compression", choices=("spectral", "exact"), default="spectral",
                   help="the compressed network: the paper's C-DLN (default) or the wide DLN's exact law-of-parsimony form")
    p.add_argument("--backend", choices=BACKENDS, default=default_backend(),
                   help="array backend (default: $DLNREF_BACKEND or numpy)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument("--plot", default="dlnref_compare.png", metavar="PATH",
                   help="where to write the error figure (default %(default)s)")
    p.add_argument("--no-plot", action="store_true", help="write no figure")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=_run_compare)


def _lr(text):
    """``--lr``: a number or "auto"."""
    return text if text == "auto" else float(text)


def _networks(text):
    """``--networks``: comma-separated names from ``NETWORKS``."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names or any(name not in NETWORKS for name in names):
        raise argparse.ArgumentTypeError(f"expected a comma-separated selection of {','.join(NETWORKS)}, got {text!r}")
    return names


def _run_compare(args):
    fields = {f.name for f in dataclasses.fields(CompareConfig)}
    config = CompareConfig(**{k: v for k, v in vars(args).items() if k in fields})
    announce = None if args.quiet else (lambda line: print(f"[compare] {line}", file=sys.stderr, flush=True))
    result = run_compare(config, progress=None if args.quiet else _progress_printer, announce=announce)
    if not args.no_plot:
        from .plots import plot_compare

        plot_compare(result, args.plot)
        result["plot"] = args.plot
    if args.json:
        print(json.dumps(_without_history(result), indent=2))
    else:
        print(format_compare(result))
    return 0


def _add_check(commands):
    p = commands.add_parser(
        "check", help="test the paper's claims and print one row per claim and problem",
        description="Run the theory checks. Exits 1 if a claim that the theory makes exact (factorization) fails.",
    )
    p.add_argument("--full", action="store_true", help="the paper's sizes (slow) instead of the quick ones")
    p.add_argument("--claim", action="append", choices=_claim_names(),
                   help="run only this claim (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_executor_options(p)
    p.set_defaults(run=_run_check)


def _claim_names():
    from theory_checks import CLAIMS

    return CLAIMS


def _run_check(args):
    import theory_checks

    size = "full" if args.full else "quick"
    start = time.perf_counter()

    def progress(name):
        if not args.quiet:
            print(f"[check] {name} ({size}) at {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    with executor_from_args(args, label=f"check {size}") as executor:
        verdicts = theory_checks.run(size, args.seed, args.claim or theory_checks.CLAIMS, progress, executor)
    if args.json:
        print(json.dumps([v.to_dict() for v in verdicts], indent=2, default=str))
    else:
        print(format_verdicts(verdicts))
        print(f"\n{size} checks took {time.perf_counter() - start:.0f} s")
    failures = [f for v in verdicts for f in v.exact_failures]
    if failures:
        print(f"dlnref check: {len(failures)} exact claim(s) failed", file=sys.stderr)
        return 1
    return 0


def format_verdicts(verdicts):
    """One table row per claim and problem: claim, problem, measured, tolerance, holds."""
    lines = [f"{'claim':<21} {'problem':<44} {'holds':<18} measured  [tolerance]"]
    for verdict in verdicts:
        for f in verdict.findings:
            holds = ("yes" if f.holds else "NO") + (" (exact)" if f.exact else " (empirical)")
            measured = ", ".join(f"{k}={_compact(v)}" for k, v in f.measured.items())
            lines.append(f"{verdict.name:<21} {f.problem:<44} {holds:<18} {measured}  [{f.tolerance}]")
    return "\n".join(lines)


def _compact(value):
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_compact(v) for v in value) + "]"
    return str(value)


def _add_figures(commands):
    p = commands.add_parser(
        "figures", help="draw the paper's figures into a folder, with an index of their numbers",
        description="Draw every figure (or --only NAME) as a PNG, and rewrite numbers.json and README.md there.",
    )
    p.add_argument("--quick", action="store_true", help="reduced sizes (minutes) instead of the paper's")
    p.add_argument("--only", action="append", metavar="NAME", help="draw only this figure (repeatable)")
    p.add_argument("--out", default="figures", metavar="DIR", help="output folder (default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_executor_options(p)
    p.set_defaults(run=_run_figures)


def _run_figures(args):
    from .figures import make_figures

    start = time.perf_counter()

    def progress(name):
        if not args.quiet:
            print(f"[figures] {name} at {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    with executor_from_args(args, label="figures") as executor:
        made = make_figures("quick" if args.quick else "full", args.only, args.out, progress, executor)
    for name in made:
        print(os.path.join(args.out, f"{name}.png"))
    print(f"index: {os.path.join(args.out, 'README.md')}  ({time.perf_counter() - start:.0f} s)")
    return 0


def _add_golden(commands):
    p = commands.add_parser("golden", help="write or verify golden files for other implementations")
    actions = p.add_subparsers(dest="action", required=True)
    for action, text in (("export", "write the cases (.npz) and manifest.json into DIR"),
                         ("verify", "check the hashes in DIR and recompute every array")):
        sub = actions.add_parser(action, help=text, description=text)
        sub.add_argument("dir", metavar="DIR")
        sub.set_defaults(run=_run_golden)


def _run_golden(args):
    from .oracle import golden

    if args.action == "export":
        manifest = golden.export(args.dir)
        for name, entry in manifest["cases"].items():
            print(f"{os.path.join(args.dir, entry['file'])}  sha256 {entry['sha256']}")
        print(os.path.join(args.dir, "manifest.json"))
        return 0
    if not os.path.exists(os.path.join(args.dir, "manifest.json")):
        raise UsageError(f"{args.dir} holds no manifest.json; write one with: dlnref golden export {args.dir}")
    problems = golden.verify(args.dir)
    for line in problems:
        print(f"FAIL {line}")
    print("golden files verified" if not problems else f"{len(problems)} problem(s) found")
    return 1 if problems else 0


def _without_history(result):
    return {k: ({kk: vv for kk, vv in v.items() if kk != "history"} if isinstance(v, dict) else v)
            for k, v in result.items()}


def format_compare(result):
    """The comparison as a text table (one row per threshold; validation and test RMSE for real data)."""
    c = result["config"]
    if c["data"] is not None:
        return _format_ratings(result)
    names = [name for name in ROWS if name in result]
    lines = [
        f"{c['problem']}: d={c['d']}, rank={c['rank']}, depth={c['depth']}, eps={c['scale']:g}, "
        f"lr={c['lr']:.4g} ({c['lr_rule']}), alpha (compressed)={c['outer_lr_scale']:g}, width={c['width']}, "
        f"seed={c['seed']}, compression={c['compression']}",
        "parameters: " + "  ".join(f"{name} {result[name]['params']:,}" for name in names),
        "",
    ]
    speed = result.get("speedup")
    header = f"{'error':>7} | " + " | ".join(f"{name[:4] + ' steps':>10} {name[:4] + ' s':>8}" for name in names)
    if speed:
        header += f" | {'speedup steps':>13} {'speedup s':>9}"
    lines += [header, "-" * len(header)]
    for key in result[names[0]]["steps_to"]:
        cells = [f"{_fmt(result[n]['steps_to'][key], 'd'):>10} {_fmt(result[n]['seconds_to'][key], '.2f'):>8}"
                 for n in names]
        if speed:
            cells.append(f"{_fmt(speed['steps_to'][key], '.2f', 'x'):>13} {_fmt(speed['seconds_to'][key], '.2f', 'x'):>9}")
        lines.append(f"{key:>7} | " + " | ".join(cells))
    lines.append("")
    for name in names:
        run = result[name]
        extra = "".join(f", {k[6:]} {v:.3e}" for k, v in run.items() if k.startswith("final_") and k != "final_error")
        lines.append(f"{name}: {run['steps_run']} steps run, final recovery error {run['final_error']:.3e}{extra}")
    if "plot" in result:
        lines.append(f"figure: {result['plot']}")
    return "\n".join(lines)


def _format_ratings(result):
    c = result["config"]
    lines = [f"ratings {c['data']} (split {c['split']}, {c['validation_fraction']:g} of train for validation): "
             f"depth={c['depth']}, eps={c['scale']:g}, lr={c['lr']:.4g} ({c['lr_rule']}), "
             f"alpha (compressed)={c['outer_lr_scale']:g}, width={c['width']}, seed={c['seed']}",
             f"{'network':>10} | {'params':>9} | {'best valid.':>11} {'at step':>8} {'at s':>8} | "
             f"{'test RMSE there':>15} | {'final test':>10}"]
    for name in [name for name in ROWS if name in result]:
        run = result[name]
        lines.append(f"{name:>10} | {run['params']:>9,} | {run['best_validation_rmse']:>11.4f} {run['best_step']:>8d} "
                     f"{run['best_seconds']:>8.2f} | {run['test_rmse_at_best']:>15.4f} | {run['final_test_rmse']:>10.4f}")
    lines.append("the step is chosen on the validation ratings; the test ratings are only reported")
    return "\n".join(lines)


def _fmt(value, spec, unit=""):
    return "-" if value is None else f"{value:{spec}}{unit}"


def _progress_printer(name, every_seconds=2.0):
    """A ``gradient_descent`` progress callback printing to stderr at most every ``every_seconds``."""
    last = [time.perf_counter()]

    def report(step, steps, row):
        now = time.perf_counter()
        if now - last[0] >= every_seconds or step == steps:
            last[0] = now
            measure = (f"validation RMSE {row['validation_rmse']:.4f}" if "validation_rmse" in row
                       else f"error {row['recovery_error']:.2e}")
            print(f"[{name}] step {step}/{steps}  {measure}  {row['seconds']:.1f} s", file=sys.stderr, flush=True)

    return report

