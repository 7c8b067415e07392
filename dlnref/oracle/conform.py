"""``dlnref conform MODULE:FUNCTION``: run the oracle's checks on a user's function and print one row per check.

Exit codes: 0 every check passed, 1 one failed (its diagnosis is printed
below the table), 2 bad usage (a function that cannot be imported, an lr
outside the range where dlnref's reference provably stays bounded).
"""

import contextlib
import importlib
import json
import os
import sys
import tempfile

import numpy as np

from .._checks import check_int, check_positive
from ..errors import InputError
from ..problems import problem_names
from .conventions import LOSSES, parse_depths
from .kinds import ALGORITHM_KINDS, oracle_kinds

CHECK_KINDS = ("backward", "step", "trajectory", *ALGORITHM_KINDS)
DTYPES = {"float64": np.float64, "float32": np.float32}


def add_conform_command(commands):
    """Add ``conform`` to the ``dlnref`` subcommands."""
    p = commands.add_parser(
        "conform", help="check your own DLN function against dlnref and diagnose every failure",
        description="Import MODULE:FUNCTION (from the current folder or sys.path) and run the oracle's checks on "
                    "it: one table row per check (kind, problem, dtype, lr, alpha), then the diagnosis of each "
                    "failure. Exit 0 when all pass, 1 otherwise, 2 on bad usage.",
        epilog="exit codes: 0 every check passed; 1 a check failed (its diagnosis is printed); 2 bad usage "
               "(a function that cannot be imported, an lr outside the safe range, hypothesis missing).")
    p.add_argument("function", metavar="MODULE:FUNCTION",
                   help="backward: f(weights, G) -> grads; step: f(weights, problem, lr, alpha) -> new weights; "
                        "trajectory: f(weights, problem, lr, alpha, steps) -> [X_0, ..., X_steps]; init: "
                        "f(dims, scale, seed) -> weights; compression: f(problem, depth, width, scale) -> weights; "
                        "cdln: as trajectory, from dlnref's C-DLN; "
                        "mlp: f(weights, model, X, Y, lr, first_lr_scale) -> new weights")
    p.add_argument("--kind", choices=CHECK_KINDS, required=True, help="what the function computes")
    p.add_argument("--layout", choices=("input_first", "output_first"), default="input_first",
                   help="order of the layer list the function takes and returns (default %(default)s)")
    p.add_argument("--loss", choices=LOSSES, default="dlnref",
                   help="your loss's normalisation: dlnref (S/(2N)), sum, half_sum, mean, half_mean, mean_all, "
                        "half_mean_all, or infer (inferred and reported); your function gets lr / kappa so that no "
                        "lr glue is needed (default %(default)s)")
    p.add_argument("--depths", type=parse_depths, default=None,
                   help="the depths L your code supports, like 2-4 or 2,3,5: cases and shrinking stay within them")
    p.add_argument("--problem", choices=problem_names(), action="append",
                   help="problem kind for step and trajectory checks (repeatable; default every problem whose loss "
                        "states its normalisation: " + ", ".join(oracle_kinds()) + ")")
    p.add_argument("--dtype", choices=tuple(DTYPES), action="append", help="repeatable; default both")
    p.add_argument("--lr", type=float, action="append",
                   help="step size (repeatable); default: 0.1 for step (each case also runs at 0.37 lr), and half "
                        "and a fifth of the largest safe step for trajectory")
    p.add_argument("--alpha", type=float, action="append",
                   help="outer_lr_scale (repeatable); default: one drawn per case, then 1, 2 and 5")
    p.add_argument("--steps", type=int, default=20, help="trajectory length (default %(default)s)")
    p.add_argument("--max-examples", type=int, default=None, help="cases per check (default: the kit's)")
    p.add_argument("--json", action="store_true", help="print the rows as one JSON object")
    p.set_defaults(run=run_conform)


def load_function(spec):
    """The callable named by ``MODULE:FUNCTION``; ``ValueError`` saying what is wrong otherwise."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise InputError(f"expected MODULE:FUNCTION (say mymodule:my_step), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        with contextlib.redirect_stdout(sys.stderr):   # what the module prints is not the table (nor --json's JSON)
            module = importlib.import_module(module_name)
    except ImportError as error:
        raise InputError(f"cannot import module {module_name!r}: {error}") from None
    except SyntaxError as error:
        raise InputError(f"cannot import module {module_name!r}: {type(error).__name__} in {error.filename}, "
                         f"line {error.lineno}: {error.msg}") from None
    except SystemExit as stop:
        raise InputError(f"importing module {module_name!r} called sys.exit({stop.code!r}); a module to check must "
                         "define its function without exiting") from None
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001  (the user's module may raise anything on import: it is reported)
        raise InputError(f"importing module {module_name!r} raised {type(error).__name__}: {error}") from None
    function = module
    for part in name.split("."):
        if not hasattr(function, part):
            raise InputError(f"module {module_name!r} has no attribute {name!r}")
        function = getattr(function, part)
    if not callable(function):
        raise InputError(f"{spec} is a {type(function).__name__}, not a function")
    return function


def _checks(args):
    """``(problem, dtype name, lr, alpha)`` of every row, in order."""
    if args.kind in ALGORITHM_KINDS:
        from .algorithm import conform_rows

        return conform_rows(args, DTYPES)
    dtypes = args.dtype or list(DTYPES)
    if args.kind == "backward":
        return [(None, d, None, None) for d in dtypes]
    problems = args.problem or list(oracle_kinds())
    alphas = args.alpha or [None, 1.0, 2.0, 5.0]
    rows = []
    for problem in problems:
        for d in dtypes:
            for alpha in alphas:
                for lr in args.lr or _default_lrs(args.kind, problem, args.steps, alpha, args.depths):
                    rows.append((problem, d, lr, alpha))
    return rows


def _default_lrs(kind, problem, steps, alpha, depths=None):
    if kind == "step":
        return [0.1]
    from .checks import trajectory_lr_range

    high = trajectory_lr_range(problem, steps, alpha, depths)[1]
    return [high / 2, high / 5]


def _run_one(function, args, problem, dtype, lr, alpha):
    """``(failure message or None, note)``: the note names an inferred loss convention."""
    from . import checks

    extra = {} if args.max_examples is None else {"max_examples": args.max_examples}
    dtype = DTYPES[dtype]
    if args.kind in ALGORITHM_KINDS:
        from .algorithm import conform_check

        return conform_check(function, args, dtype, lr, alpha, problem), None
    note = None
    try:
        if args.kind == "backward":
            checks.assert_backward_matches(function, layout=args.layout, dtype=dtype, depths=args.depths, **extra)
        elif args.kind == "step":
            note = checks.assert_step_matches(function, problem, lr=lr, outer_lr_scale=alpha, layout=args.layout,
                                              dtype=dtype, loss=args.loss, depths=args.depths, **extra)
        else:
            note = checks.assert_trajectory_matches(function, problem, steps=args.steps, lr=lr, outer_lr_scale=alpha,
                                                    layout=args.layout, dtype=dtype, loss=args.loss,
                                                    depths=args.depths, **extra)
    except AssertionError as failure:
        return str(failure), None
    return None, note


def run_conform(args):
    """Run every check of ``args`` on the user's function; print the table (or JSON); return the exit code."""
    try:
        import hypothesis  # noqa: F401  (the checks draw their cases with it)
    except ImportError:
        raise InputError('dlnref conform needs hypothesis: pip install "dlnref[test]"') from None
    for value in args.lr or []:
        check_positive("--lr", value)
    for value in args.alpha or []:
        check_positive("--alpha", value)
    check_int("--steps", args.steps, 1)
    if args.max_examples is not None:
        check_int("--max-examples", args.max_examples, 1)
    function = load_function(args.function)
    rows = []
    with _scratch_hypothesis_home():
        for problem, dtype, lr, alpha in _checks(args):
            message, note = _run_one(function, args, problem, dtype, lr, alpha)
            drawn = alpha is None and args.kind not in ("backward", "init", "compression")   # alpha drawn per case
            rows.append({"kind": args.kind, "problem": problem, "dtype": dtype, "lr": lr,
                         "alpha": "per case" if drawn else alpha,
                         "passed": message is None, "diagnosis": message, "loss": note})
    passed = all(r["passed"] for r in rows)
    if args.json:
        print(json.dumps({"function": args.function, "layout": args.layout, "loss": args.loss,
                          "depths": list(args.depths) if args.depths else None, "passed": passed, "checks": rows},
                         indent=2))
    else:
        print(format_rows(rows))
    return 0 if passed else 1


@contextlib.contextmanager
def _scratch_hypothesis_home():
    """Point hypothesis's storage (its constants cache) at a temporary folder, so the user's folder stays clean."""
    from hypothesis.configuration import set_hypothesis_home_dir

    with tempfile.TemporaryDirectory(prefix="dlnref-conform-") as scratch:
        set_hypothesis_home_dir(scratch)
        try:
            yield
        finally:
            set_hypothesis_home_dir(None)


def format_rows(rows):
    """The table, one row per check, then each failure's diagnosis."""
    lines = [f"{'kind':<10} {'problem':<13} {'dtype':<7} {'lr':>10} {'alpha':>8}  result"]
    failures = []
    for i, r in enumerate(rows, start=1):
        lr = "-" if r["lr"] is None else f"{r['lr']:.4g}"
        alpha = "-" if r["alpha"] is None else (r["alpha"] if isinstance(r["alpha"], str) else f"{r['alpha']:g}")
        result = "pass" if r["passed"] else f"FAIL [{i}]"
        lines.append(f"{r['kind']:<10} {r['problem'] or '-':<13} {r['dtype']:<7} {lr:>10} {alpha:>8}  {result}")
        if not r["passed"]:
            failures.append(f"[{i}] {r['diagnosis']}")
    notes = sorted({r["loss"] for r in rows if r.get("loss")})
    lines += [f"loss inferred: {note}" for note in notes]
    ok = sum(r["passed"] for r in rows)
    lines.append(f"\n{ok} of {len(rows)} checks passed")
    return "\n".join(lines + ([""] + failures if failures else []))
