"""The dlnref command: deep linear networks and their compression (Kwon et al., AISTATS 2024).

Every subcommand keeps one exit-code contract (:data:`EXIT_CODES`), enforced
in one place, :func:`main`:

- bad input (dlnref's :class:`dlnref.errors.InputError`, a missing backend or
  Dask, or an ``OSError`` on a path the user named) is one line on stderr and
  exit code 2;
- a diverged training run is one line with what to try, exit code 1;
- Ctrl-C is one line, exit code 130;
- anything else is a bug in dlnref: its traceback, a line saying so, and
  exit code :data:`BUG`.
"""

import argparse
import dataclasses
import errno
import json
import math
import os
import sys
import time
import traceback

from ._io import check_writable_file, check_writable_folder, json_default
from .backend import BACKENDS, BackendUnavailableError, default_backend
from .data import MOVIELENS_SPLITS
from .errors import InputError
from .experiments._memory import check_compare_fits
from .experiments.classify import (
    BLOCK_INITS,
    BLOCKS,
    MODELS,
    PRESET_SHORTENINGS,
    PRESETS,
    ClassifyConfig,
    check_classify_config,
    classify_config,
    format_classify,
    format_optional,
    run_classify,
)
from .experiments.compare import (
    NETWORKS,
    PAPER_DEPTH,
    RATINGS_DEPTH,
    THRESHOLDS,
    CompareConfig,
    check_config,
    option_name,
    run_compare,
)
from .experiments.executor import add_executor_options, executor_from_args
from .experiments.sweep import add_sweep_command
from .oracle.conform import add_conform_command
from .problems import problem_class, problem_names
from .train import DivergenceError

#: Exit code of a bug in dlnref (sysexits.h's EX_SOFTWARE, "internal software error").
BUG = 70
#: Exit code after Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130
#: Exit code when the reader of stdout has gone (``| head``): 128 + SIGPIPE, as shells report it.
PIPE_CLOSED = 141

EXIT_CODES = ("exit codes: 0 done; 1 training diverged, or a check found a failure (an exact claim, a conform check, "
              "a golden file, a sweep run); 2 bad usage or bad input (a one-line message names the option or file "
              f"and what it expects); {INTERRUPTED} interrupted (Ctrl-C); {PIPE_CLOSED} the reader of the output "
              f"left (| head), silently; {BUG} a bug in dlnref (a traceback, please report it).")

#: Longest error message printed; the rest is cut (a message may quote user input).
MAX_MESSAGE = 1000

#: Rows of the compare tables, in order: the networks, then the ALS baseline.
ROWS = (*NETWORKS, "als")

#: Errors that are the user's input or environment, not a bug: exit code 2.
BAD_INPUT = (InputError, BackendUnavailableError, MemoryError)


class UsageError(InputError):
    """A problem with the command line itself (exit code 2)."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (no usage block), as every other usage error."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def main(argv=None):
    """Entry point: parse ``argv`` and run the chosen subcommand; returns the exit code (:data:`EXIT_CODES`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser()   # reads the registry of problems, another package's entry points included
    except InputError as error:
        print(f"dlnref: error: {error}"[:MAX_MESSAGE], file=sys.stderr)
        return 2
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # name the subcommand whose options these are not
            prog = f"dlnref {args.command}"
            raise UsageError(f"{prog}: error: unrecognized arguments: {' '.join(unknown)} (see {prog} --help)")
    except UsageError as error:  # OneLineParser.error: the message names the command already
        print(str(error)[:MAX_MESSAGE], file=sys.stderr)
        return 2
    except SystemExit as exit:  # --help or --version has been printed
        return 0 if exit.code is None else exit.code
    return run_command(args, argv)


def run_command(args, argv):
    """Run a parsed subcommand under the exit-code contract (:data:`EXIT_CODES`)."""
    try:
        return args.run(args)
    except DivergenceError as error:
        _print_error(args.command, error, prefix="")
        return 1
    except BAD_INPUT as error:
        _print_error(args.command, error)
        return 2
    except BrokenPipeError:
        # stdout's reader has gone (| head): nothing is wrong and nobody is listening. Point stdout at
        # /dev/null so that the interpreter's last flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return PIPE_CLOSED
    except OSError as error:
        if not _on_user_path(error, args, argv):
            return _report_bug(args.command)
        _print_error(args.command, error)
        return 2
    except KeyboardInterrupt:
        print(f"\ndlnref {args.command}: interrupted", file=sys.stderr, flush=True)
        return INTERRUPTED
    except Exception:  # anything else is a bug in dlnref: say so, with the traceback
        return _report_bug(args.command)


def _report_bug(command):
    """Print the traceback of the exception being handled and a line naming it a bug; return :data:`BUG`."""
    traceback.print_exc()
    print(f"dlnref {command}: this is a bug in dlnref, not a problem with your input: please report it with the "
          "traceback above and the command line", file=sys.stderr, flush=True)
    return BUG


def _on_user_path(error, args, argv):
    """True when ``error`` concerns a path the user gave (or a command's default output folder)."""
    names = [name for name in (error.filename, error.filename2) if isinstance(name, (str, os.PathLike))]
    if not names:
        return error.errno in (errno.ENOSPC, errno.EDQUOT)   # a full disk, whatever the file
    given = [value for value in [*argv, *vars(args).values()] if isinstance(value, str) and value]
    for name in map(os.path.abspath, names):
        for path in map(os.path.abspath, given):
            if name == path or name.startswith(path.rstrip(os.sep) + os.sep):
                return True
    return False


def _print_error(command, error, prefix="error: "):
    if isinstance(error, OSError) and error.filename is not None:
        text = f"{error.strerror or error}: {error.filename}"
    elif isinstance(error, MemoryError):
        text = f"ran out of memory ({error or 'no details'}); try smaller sizes"
    else:
        text = str(error)
    text = " ".join(text.split("\n"))
    if len(text) > MAX_MESSAGE:
        text = f"{text[:MAX_MESSAGE]}... ({len(text) - MAX_MESSAGE} more characters cut)"
    print(f"dlnref {command}: {prefix}{text}", file=sys.stderr)


def build_parser():
    """The argument parser of every subcommand (each shows the exit codes under its --help)."""
    parser = OneLineParser(prog="dlnref", description=__doc__.splitlines()[0], epilog=EXIT_CODES)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_compare(commands)
    _add_check(commands)
    _add_figures(commands)
    _add_golden(commands)
    add_conform_command(commands)
    _add_classify(commands)
    add_sweep_command(commands)
    for sub in _subparsers(parser):
        sub.epilog = sub.epilog or EXIT_CODES
    return parser


def _subparsers(parser):
    """Every parser below ``parser``, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield sub
                yield from _subparsers(sub)


def integer(minimum):
    """An argparse ``type``: an integer >= ``minimum``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def real(minimum=0.0, *, inclusive=False, maximum=None):
    """An argparse ``type``: a finite number above ``minimum`` (or equal, with ``inclusive``), at most ``maximum``."""
    bound = f"{'>=' if inclusive else '>'} {minimum:g}" + ("" if maximum is None else f" and <= {maximum:g}")

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {bound}, got {text!r}") from None
        below = value < minimum if inclusive else value <= minimum
        if not math.isfinite(value) or below or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected a finite number {bound}, got {text}")
        return value
    parse.__name__ = f"number {bound}"
    return parse


def _add_compare(commands):
    defaults = CompareConfig()
    p = commands.add_parser(
        "compare", help="train the wide and the compressed DLN on one problem and compare",
        description="Train the wide DLN and the compressed DLN on the same recovery problem, and report "
                    "the steps and seconds each needs to reach relative recovery errors "
                    + ", ".join(f"{t:g}" for t in THRESHOLDS) + ". Defaults: the paper's completion run. "
                    "The results are printed first; a figure is drawn only with --plot PATH.",
    )
    p.add_argument("--problem", choices=problem_names(), default=None,
                   help=f"the synthetic problem (default {defaults.problem})")
    p.add_argument("--d", type=integer(1), default=None, help=f"the target is d x d (default {defaults.d})")
    p.add_argument("--rank", type=integer(1), default=defaults.rank,
                   help="rank r of the target (default %(default)s)")
    p.add_argument("--fraction", type=real(0, maximum=1), default=None,
                   help=f"observed fraction, completion only (default {defaults.fraction})")
    p.add_argument("--measurements", type=integer(1), default=None,
                   help=f"number of sensing operators, sensing only (default {defaults.measurements})")
    p.add_argument("--depth", type=integer(2), default=None,
                   help=f"number of layers L (default {PAPER_DEPTH}; with --data, {RATINGS_DEPTH}, "
                        "chosen on validation RMSE)")
    p.add_argument("--width", type=integer(1), default=None,
                   help="inner width of the compressed DLN, from rank to d (default 2 * rank)")
    p.add_argument("--scale", type=real(), default=defaults.scale, help="init scale eps (default %(default)s)")
    p.add_argument("--lr", type=_lr, default=None,
                   help="step size eta, or 'auto' (the default): from the problem's curvature and the surrogate's "
                        "top singular value (dlnref.train.auto_lr). The paper's: 10 completion, 1 factorization, "
                        "20/m sensing")
    p.add_argument("--no-als", dest="als", action="store_false",
                   help="skip the alternating-least-squares baseline row (completion only)")
    p.add_argument("--networks", type=_networks, default=None,
                   help="comma-separated networks to train, from " + ",".join(NETWORKS)
                        + " (default: both; with --data, compressed)")
    p.add_argument("--outer-lr-scale", type=real(), default=None,
                   help="alpha for the compressed DLN's outer layers (default: the paper's, 5 completion, else 1)")
    p.add_argument("--steps", type=integer(0), default=defaults.steps,
                   help="most steps per network (default %(default)s)")
    p.add_argument("--tol", type=real(0, inclusive=True), default=defaults.tol,
                   help="stop a network once its recovery error reaches this (default %(default)g)")
    p.add_argument("--record-every", type=integer(1), default=defaults.record_every,
                   help="record the errors every this many steps (default %(default)s)")
    p.add_argument("--seed", type=integer(0), default=defaults.seed,
                   help="seed of the problem and the wide init, two child streams of SeedSequence(seed) "
                        "(default %(default)s)")
    p.add_argument("--data", metavar="PATH", default=None,
                   help="complete the MovieLens 100K ratings of this u.data file instead of a synthetic problem")
    p.add_argument("--split", choices=("random", *MOVIELENS_SPLITS), default=None,
                   help="with --data: 'random' (seeded, 20%% held out; the default) or a split shipped with the data")
    p.add_argument("--compression", choices=("spectral", "exact"), default="spectral",
                   help="the compressed network: the paper's C-DLN (default) or the wide DLN's exact law-of-parsimony form")
    _add_output_options(p, "the error curves")
    p.set_defaults(run=_run_compare)


def _add_output_options(p, figure):
    """--backend, --json, --plot PATH (of ``figure``), --no-plot and --quiet: the options of a training command."""
    p.add_argument("--backend", choices=BACKENDS, default=default_backend(),
                   help="array backend (default: $DLNREF_BACKEND or numpy)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument("--plot", default=None, metavar="PATH",
                   help=f"also draw {figure} into this figure (.png when PATH has no extension); "
                        "the results are printed before it is drawn")
    p.add_argument("--no-plot", action="store_true", help="draw no figure (the default; kept for scripts)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def problem_only_options():
    """Options of ``compare`` that only some problems use: option -> (config field, the problems that use it).

    ``--d``, used by every synthetic problem, then each registered problem's
    own options (:attr:`dlnref.problems.Problem.options`).
    """
    options = {"--d": ("d", problem_names())}
    for field in dataclasses.fields(CompareConfig):
        users = tuple(name for name in problem_names() if field.name in problem_class(name).options)
        if users:
            options[option_name(field.name)] = (field.name, users)
    return options


def _lr(text):
    """``--lr``: "auto" or a finite number > 0."""
    if text == "auto":
        return text
    try:
        return real()(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a finite number > 0, got {text!r}") from None


def _networks(text):
    """``--networks``: comma-separated names from ``NETWORKS``."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names or any(name not in NETWORKS for name in names):
        raise argparse.ArgumentTypeError(f"expected a comma-separated selection of {','.join(NETWORKS)}, got {text!r}")
    return names


def _run_compare(args):
    config = compare_config(args)
    plot = _plot_path(args)
    if config.data is None:
        check_compare_fits(config, option_name)
    announce = None if args.quiet else (lambda line: print(f"[compare] {line}", file=sys.stderr, flush=True))
    try:
        result = run_compare(config, progress=None if args.quiet else _progress_printer, announce=announce,
                             option=option_name)
    except DivergenceError as error:
        raise _cli_divergence(error) from None
    if plot is not None:
        result["plot"] = plot
    if args.json:
        print(json.dumps(_without_history(result), indent=2), flush=True)
    else:
        print(format_compare(result), flush=True)
    if plot is not None:
        from .plots import plot_compare

        plot_compare(result, plot)
        if not args.json:
            print(f"figure: {plot}")
    return 0


def compare_config(args):
    """The :class:`CompareConfig` of parsed ``compare`` arguments, checked (:func:`dlnref.experiments.compare.check_config`).

    An option that another synthetic problem would use (``--fraction`` with
    ``--problem sensing``) gets a note on stderr.

    Raises
    ------
    UsageError
        For options that cannot go together (``--data`` with ``--problem``,
        ``--d``, ``--fraction`` or ``--measurements``).
    InputError
        From :func:`dlnref.experiments.compare.check_config`, naming the options.
    """
    problem = args.problem or CompareConfig.problem
    if args.data is not None:
        _check_ratings_options(args)
        problem = "completion"
    for option, (field, problems) in problem_only_options().items():
        if getattr(args, field) is not None and problem not in problems:
            print(f"dlnref compare: note: {option} is unused: it applies to --problem {' or '.join(problems)}, "
                  f"not {problem}", file=sys.stderr)
    if not args.als and problem != "completion":
        print(f"dlnref compare: note: --no-als is unused: the ALS baseline runs for completion only, not {problem}",
              file=sys.stderr)
    fields = {f.name for f in dataclasses.fields(CompareConfig)}
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    return check_config(CompareConfig(**{**given, "problem": problem}), option_name)


def _check_ratings_options(args):
    unused = [option for option, (field, _) in problem_only_options().items() if getattr(args, field) is not None]
    if args.problem not in (None, "completion"):
        unused.insert(0, f"--problem {args.problem}")
    if unused:
        raise UsageError(f"--data completes the ratings matrix of its file, so {', '.join(unused)} cannot be "
                         "used with it (the matrix's shape comes from the file)")


def _plot_path(args):
    if args.plot is None:
        return None
    if args.no_plot:
        raise UsageError(f"--plot {args.plot} and --no-plot contradict each other; give one of them")
    return check_writable_file("--plot", args.plot, figure_types(), "png")


def figure_types():
    """The file types matplotlib writes here: its own, less PGF where no LaTeX (``xelatex``) is installed."""
    import shutil

    from matplotlib.backend_bases import FigureCanvasBase

    types = set(FigureCanvasBase.get_supported_filetypes())
    return types if shutil.which("xelatex") else types - {"pgf"}


def _cli_divergence(error):
    """The same divergence, with advice in the command line's option names."""
    if error.advice is not None:   # already in the options' words
        return error
    alpha = " or --outer-lr-scale" if error.network == "compressed DLN" else ""
    return error.renamed(advice=f"Try a smaller --lr (say {error.lr / 2:g}){alpha}, or a smaller --scale.")


def _add_check(commands):
    p = commands.add_parser(
        "check", help="test the paper's claims and print one row per claim and problem",
        description="Run the theory checks. Exits 1 if a claim that the theory makes exact (factorization) fails.",
    )
    p.add_argument("--full", action="store_true", help="the paper's sizes (slow) instead of the quick ones")
    p.add_argument("--claim", action="append", choices=_claim_names(),
                   help="run only this claim (repeatable)")
    p.add_argument("--seed", type=integer(0), default=0)
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
        print(json.dumps([v.to_dict() for v in verdicts], indent=2, default=json_default))
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


#: Default output folders of ``dlnref figures``: quick figures never replace the committed full-size ones.
FIGURES_OUT = {"full": "figures", "quick": "figures-quick"}


def _add_figures(commands):
    p = commands.add_parser(
        "figures", help="draw the paper's figures into a folder, with an index of their numbers",
        description="Draw every figure (or --only NAME) as a PNG, and rewrite numbers.json and README.md there. "
                    "Quick figures never go into a folder that holds full-size ones.",
    )
    p.add_argument("--quick", action="store_true", help="reduced sizes (seconds to a minute) instead of the paper's")
    p.add_argument("--only", action="append", metavar="NAME", help="draw only this figure (repeatable)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help=f"output folder (default {FIGURES_OUT['full']}, or {FIGURES_OUT['quick']} with --quick)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_executor_options(p)
    p.set_defaults(run=_run_figures)


def _run_figures(args):
    from .experiments.figures import make_figures

    start = time.perf_counter()

    def progress(name):
        if not args.quiet:
            print(f"[figures] {name} at {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    size = "quick" if args.quick else "full"
    args.out = FIGURES_OUT[size] if args.out is None else args.out   # the folder written into, named in errors
    out = check_writable_folder("--out", args.out)
    with executor_from_args(args, label="figures") as executor:
        made = make_figures(size, args.only, out, progress, executor)
    for name in made:
        print(os.path.join(out, f"{name}.png"))
    print(f"index: {os.path.join(out, 'README.md')}  ({time.perf_counter() - start:.0f} s)")
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
        manifest = golden.export(check_writable_folder("DIR", args.dir))
        for name, entry in manifest["cases"].items():
            print(f"{os.path.join(args.dir, entry['file'])}  sha256 {entry['sha256']}")
        print(os.path.join(args.dir, "manifest.json"))
        return 0
    if not args.dir.strip():
        raise UsageError("DIR '' is empty; give the folder of the golden files")
    if os.path.isfile(args.dir):
        raise UsageError(f"DIR {args.dir} is a file; give the folder that holds manifest.json and the .npz files")
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
        f"lr={c['lr']:.4g} ({_lr_rule(c)}), alpha (compressed)={c['outer_lr_scale']:g}, width={c['width']}, "
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
        cells = [f"{format_optional(result[n]['steps_to'][key], 'd'):>10} "
                 f"{format_optional(result[n]['seconds_to'][key], '.2f'):>8}" for n in names]
        if speed:
            cells.append(f"{format_optional(speed['steps_to'][key], '.2f', 'x'):>13} "
                         f"{format_optional(speed['seconds_to'][key], '.2f', 'x'):>9}")
        lines.append(f"{key:>7} | " + " | ".join(cells))
    lines.append("")
    for name in names:
        run = result[name]
        extra = "".join(f", {k[6:]} {v:.3e}" for k, v in run.items() if k.startswith("final_") and k != "final_error")
        lines.append(f"{name}: {run['steps_run']} steps run, final recovery error {run['final_error']:.3e}{extra}")
        if name in NETWORKS and run["steps_run"] == c["steps"] > 0 and run["final_error"] > c["tol"]:
            lines.append(f"  {name} did not reach --tol {c['tol']:g} in {c['steps']} steps: raise --steps if its error "
                         "was still falling; if it stalled, try a smaller --lr, or a problem that can be recovered "
                         "(more observed entries, a lower rank)")
    return "\n".join(lines)


def _format_ratings(result):
    c = result["config"]
    lines = [f"ratings {c['data']} (split {c['split']}, {c['validation_fraction']:g} of train for validation): "
             f"depth={c['depth']}, eps={c['scale']:g}, lr={c['lr']:.4g} ({_lr_rule(c)}), "
             f"alpha (compressed)={c['outer_lr_scale']:g}, width={c['width']}, seed={c['seed']}",
             f"{'network':>10} | {'params':>9} | {'best valid.':>11} {'at step':>8} {'at s':>8} | "
             f"{'test RMSE there':>15} | {'final test':>10}"]
    for name in [name for name in ROWS if name in result]:
        run = result[name]
        lines.append(f"{name:>10} | {run['params']:>9,} | {run['best_validation_rmse']:>11.4f} {run['best_step']:>8d} "
                     f"{run['best_seconds']:>8.2f} | {run['test_rmse_at_best']:>15.4f} | {run['final_test_rmse']:>10.4f}")
    lines.append("the step is chosen on the validation ratings; the test ratings are only reported")
    return "\n".join(lines)


def _lr_rule(config):
    """How the lr was chosen, in words: "given", "auto", or "auto, halved twice after divergences"."""
    halvings = config.get("lr_halvings", 0)
    times = {0: "", 1: ", halved once after a divergence", 2: ", halved twice after divergences"}
    return config["lr_rule"] + times.get(halvings, f", halved {halvings} times after divergences")


def _progress_printer(name, every_seconds=2.0, measure=None):
    """A training loop's progress callback: one line on stderr at most every ``every_seconds``.

    ``measure(row)`` says what the row shows; by default the validation RMSE
    (ratings) or the recovery error.
    """
    measure = measure or (lambda row: f"validation RMSE {row['validation_rmse']:.4f}" if "validation_rmse" in row
                          else f"error {row['recovery_error']:.2e}")
    last = [time.perf_counter()]

    def report(step, steps, row):
        now = time.perf_counter()
        if now - last[0] >= every_seconds or step == steps:
            last[0] = now
            print(f"[{name}] step {step}/{steps}  {measure(row)}  {row['seconds']:.1f} s", file=sys.stderr, flush=True)

    return report


def _add_classify(commands):
    """Add ``dlnref classify`` to the CLI's subparsers.

    Its setting options default to the preset's value (:data:`PRESETS`), so the
    parser leaves them out unless given (``argparse.SUPPRESS``).
    """
    d = ClassifyConfig()
    unset = argparse.SUPPRESS
    p = commands.add_parser(
        "classify", help="train an MLP alone, with a wide and with a compressed deep linear block on images, and "
                         "compare",
        description="Train an MLP three times from one seed: alone (the paper's \"Original\"), with a wide linear "
                    "block of h x h layers between its ReLU layers and its output layer (\"Original + DLN\"), and "
                    "with a compressed one, h -> w -> ... -> w -> h (\"Original + C-DLN\"); report test accuracy, "
                    "seconds, steps, parameters, the block's gain and the speedup. Data: scikit-learn's 8x8 digits "
                    "by default, or MNIST-format IDX files (MNIST, FashionMNIST) with --data DIR. A folder whose "
                    "name holds \"fashion\" (Debian's dataset-fashion-mnist installs "
                    "/usr/share/datasets/fashion-mnist) takes the fashion-mnist preset.",
    )
    p.add_argument("--data", metavar="DIR", default=None,
                   help="folder with train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-* (optionally .gz)")
    p.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="settings: digits (the defaults below) or fashion-mnist (the official code's setting, on "
                        "the first 2,000 training images; see the docs); default: fashion-mnist when the --data "
                        "folder's name holds \"fashion\", else digits. Options given win over the preset's")
    p.add_argument("--train-images", type=int, default=unset,
                   help="train on the first N training images only (default: all; fashion-mnist preset 2000)")
    p.add_argument("--hidden", type=int, default=unset,
                   help=f"width h of the ReLU layers and of the block's ends (default {d.hidden})")
    p.add_argument("--relu-layers", type=int, default=unset,
                   help=f"ReLU layers before the block (default {d.relu_layers})")
    p.add_argument("--depth", type=int, default=unset, help=f"layers in the block (default {d.depth})")
    p.add_argument("--rank", type=int, default=unset, help=f"r: the compressed width is 2r (default {d.rank})")
    p.add_argument("--width", type=int, default=unset, help="inner width of the compressed block (default 2 * rank)")
    p.add_argument("--block", choices=BLOCKS, default=unset,
                   help="linear: no activation inside the block (the paper's text); relu: a ReLU after each block "
                        f"layer (the official code's forward pass) (default {d.block})")
    p.add_argument("--block-init", choices=BLOCK_INITS, default=unset,
                   help="compressed block: random orthogonal like every layer (the official code), or spectral "
                        f"(top singular vectors of the wide block's gradient at init) (default {d.block_init})")
    p.add_argument("--scale", type=float, default=unset,
                   help=f"every layer starts as scale x a random orthogonal matrix (default {d.scale:g})")
    p.add_argument("--lr", type=float, default=unset, help=f"step size (default {d.lr:g}; fashion-mnist 0.1)")
    p.add_argument("--first-lr-scale", type=float, default=unset,
                   help=f"the first layer's step is lr x this (the official code's dlr) (default {d.first_lr_scale:g})")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=unset,
                        help=f"updates per model (default {d.steps}; fashion-mnist 1250)")
    length.add_argument("--epochs", type=int, default=unset, help="passes over the training set, instead of --steps")
    p.add_argument("--batch-size", type=int, default=unset,
                   help="mini-batch size (default: full-batch gradient descent, as the official code)")
    p.add_argument("--record-every", type=int, default=unset,
                   help=f"evaluate every this many steps (not timed) (default {d.record_every})")
    p.add_argument("--target-accuracy", type=float, default=unset,
                   help="report the steps and seconds to this test accuracy "
                        f"(default {d.target_accuracy:g}; fashion-mnist 0.8)")
    p.add_argument("--seed", type=int, default=unset, help="seed of the init and the batches (default 0)")
    p.add_argument("--blas-threads", type=int, default=unset,
                   help=f"BLAS threads while training (default {d.blas_threads}: faster on 2 shared cores)")
    _add_output_options(p, "test accuracy against steps and against seconds")
    p.set_defaults(run=_run_classify)


def _run_classify(args):
    fields = {f.name for f in dataclasses.fields(ClassifyConfig)} - {"data", "preset"}
    config = classify_config(args.data, args.preset, **{k: v for k, v in vars(args).items() if k in fields})
    check_classify_config(config, option_name)
    plot = _plot_path(args)
    shortening = PRESET_SHORTENINGS[config.preset]
    if not args.quiet and shortening and config.train_images == PRESETS[config.preset]["train_images"]:
        print(f"preset {config.preset}: {shortening}", file=sys.stderr, flush=True)
    try:
        result = run_classify(config, progress=None if args.quiet else _classify_progress)
    except ImportError as error:   # scikit-learn missing for the digits: bad usage, with the install hint
        raise InputError(str(error)) from error
    except DivergenceError as error:
        raise error.renamed(advice=f"Try a smaller --lr (say {error.lr / 2:g}), a smaller --first-lr-scale, "
                                   "or a smaller --scale.") from None
    if plot is not None:
        result["plot"] = plot
    print(json.dumps(_without_history(result), indent=2) if args.json else format_classify(result), flush=True)
    if plot is not None:
        from .nn.plots import plot_classify

        plot_classify(result, plot)
    return 0


def _classify_progress(name, width=30, every_seconds=2.0):
    """A progress bar per model on stderr: redrawn in place on a terminal, a line every ``every_seconds`` otherwise.

    ``[wide 2/3] |##########--------------------| 33% step 410/1250  loss 0.512  test accuracy 0.8012  21 s, ~41 s left``
    """
    position = f"{name} {MODELS.index(name) + 1}/{len(MODELS)}"
    terminal = sys.stderr.isatty()
    last = [-math.inf]

    def report(step, steps, row):
        now = time.perf_counter()
        if not (terminal or now - last[0] >= every_seconds or step == steps):
            return
        last[0] = now
        done = step / max(steps, 1)
        left = f", ~{row['seconds'] * (1 - done) / done:.0f} s left" if 0 < done < 1 else ""
        filled = round(width * done)
        text = (f"[{position}] |{'#' * filled}{'-' * (width - filled)}| {100 * done:3.0f}% step {step}/{steps}  "
                f"loss {row['loss']:.3f}  test accuracy {row['test_accuracy']:.4f}  {row['seconds']:.0f} s{left}")
        if terminal:
            print("\r" + text.ljust(120), end="\n" if step == steps else "", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)

    return report

