"""``dlnref sweep``: a grid of ``compare`` runs, one Dask task each, resumable.

The grid names values for the fields of :class:`dlnref.experiments.compare.CompareConfig`
(from a TOML file or the command line); every combination is one run of
:func:`dlnref.experiments.compare.run_compare`, the function ``dlnref compare`` runs. Each
finished run is stored at once, whole, as ``OUT/runs/<hash>.json``, the hash
being that of its configuration, so a sweep started again skips what is done,
and an interrupted one loses no finished run. A run that raises becomes a row
with ``status = "error"`` and its message. The table of every run of the grid
(``OUT/sweep.csv``, and ``OUT/sweep.parquet`` when pyarrow is installed) and a
figure of the speedup against the swept parameter (``OUT/sweep.png``) are
written at the end, or when the sweep is interrupted.
"""

import contextlib
import csv
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import os
import re
import socket
import sys
import time
import tomllib
import types
import typing
import warnings

from .. import __version__
from .._io import atomic_path, check_writable_folder, json_default
from ..errors import InputError
from ..train import DivergenceError
from ._memory import check_compare_fits
from .compare import THRESHOLDS, CompareConfig, check_config, check_ratings, option_name, run_compare
from .executor import LostTaskError, add_executor_options, default_workers, executor_from_args

#: The grid's keys: the fields of CompareConfig, and ``seeds`` for ``seed``.
ALIASES = {"seeds": "seed"}

#: Most runs in one sweep: a larger grid is a typo (``--seeds 0-100000000``) more often than a plan.
MAX_RUNS = 100_000

#: Columns written after the configuration and the results.
META = ("status", "error", "seconds", "worker", "dlnref_version", "config_hash")


def grid_fields():
    """``{name: field}`` of :class:`CompareConfig`, the keys a grid may vary."""
    return {f.name: f for f in dataclasses.fields(CompareConfig)}


def make_grid(values):
    """Check and normalise a grid: ``{field: list of values}``.

    Parameters
    ----------
    values : mapping of str -> value or list of values
        Keys are :class:`CompareConfig` fields (or ``seeds``). A value is a
        scalar, a list, a string ``"a,b,c"``, or for integer fields ``"a-b"``
        (the range a..b inclusive). A field that holds a tuple takes one
        tuple per value: ``"a,b;c"`` or ``[["a", "b"], ["c"]]``.

    Returns
    -------
    dict of str -> list
        In CompareConfig's field order, each value converted to the field's type.

    Raises
    ------
    ValueError
        On an unknown key (naming the valid ones) or a value of the wrong type.
    """
    fields = grid_fields()
    grid = {}
    for key, value in values.items():
        name = ALIASES.get(key, key)
        if name not in fields:
            raise InputError(f"unknown grid key {key!r}; valid keys: {', '.join(sorted([*fields, *ALIASES]))}")
        if name in grid:
            raise InputError(f"grid key {name!r} is given twice (as {name!r} and as its alias)")
        one = _is_sequence_field(fields[name]) and not (isinstance(value, list) and all(
            isinstance(v, list) for v in value))  # a flat list is one value of a tuple field
        items = [value] if one or not isinstance(value, list) else value
        if not items:
            raise InputError(f"grid key {key!r} has an empty list of values")
        grid[name] = [v for item in items for v in _values(fields[name], item)]
    return {name: grid[name] for name in fields if name in grid}


def _values(field, item):
    """The value(s) of ``field`` that ``item`` stands for: a string may hold a list or a range."""
    kinds = _kinds(field.type)
    if _is_sequence_field(field):
        return _sequences(field, item, kinds)
    if isinstance(item, str) and "," in item:
        return [v for part in item.split(",") for v in _values(field, part.strip())]
    if isinstance(item, str) and int in kinds and re.fullmatch(r"\d+-\d+", item.strip()):
        first, last = (int(v) for v in item.split("-"))
        if last < first:
            raise InputError(f"{field.name}: range {item!r} is empty (write first-last, first <= last)")
        if last - first + 1 > MAX_RUNS:
            raise InputError(f"{field.name}: range {item!r} holds {last - first + 1:,} values, more than a sweep's "
                             f"{MAX_RUNS:,} runs")
        return list(range(first, last + 1))
    return [_convert(field, item, kinds)]


def _is_sequence_field(field):
    """True for a field that holds a tuple or list (say ``networks``)."""
    return any(k in (tuple, list) or typing.get_origin(k) in (tuple, list) for k in _kinds(field.type))


def _sequences(field, item, kinds):
    """The values of a tuple field: ``"a,b;c"`` (TOML: ``[["a", "b"], ["c"]]``) is ``("a", "b")``, then ``("c",)``."""
    if item is None or (isinstance(item, str) and item.strip().lower() == "none"):
        if type(None) in kinds:
            return [None]
    elif isinstance(item, str):
        return [tuple(p.strip() for p in alternative.split(",") if p.strip()) for alternative in item.split(";")]
    elif isinstance(item, (list, tuple)):
        return [tuple(item)]
    raise InputError(f"{field.name} must be a list of values (on the command line: a,b;c for (a, b) then (c,)), "
                     f"got {item!r}")


def _kinds(annotation):
    """The types a field accepts, in the order to try them: ``float | None`` -> (float, NoneType)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = typing.get_args(annotation)
    else:
        kinds = (annotation,)
    order = {type(None): 0, bool: 1, int: 2, float: 3, str: 4}
    return tuple(sorted(kinds, key=lambda k: order.get(k, 5)))


def _convert(field, item, kinds):
    """``item`` (from TOML or a command-line string) as a value of ``field``."""
    for kind in kinds:
        if kind is type(None) and (item is None or item == "none"):
            return None
        if kind is bool and isinstance(item, (bool, str)) and str(item).lower() in ("true", "false"):
            return str(item).lower() == "true"
        if kind is int and not isinstance(item, (bool, float)):
            with contextlib.suppress(ValueError, TypeError):
                return int(item)
        if kind is float and not isinstance(item, bool):
            with contextlib.suppress(ValueError, TypeError):
                return float(item)
        if kind is str and isinstance(item, str):
            return item
    names = " or ".join("None" if k is type(None) else getattr(k, "__name__", str(k)) for k in kinds)
    raise InputError(f"{field.name} must be {names}, got {item!r}")


def load_grid(path):
    """The grid of a TOML file whose top-level keys are CompareConfig fields (see :func:`make_grid`).

    Raises
    ------
    InputError
        Naming the file: not TOML (with TOML's own reason), empty, or a table in it.
    """
    if not str(path).strip():
        raise InputError("--config '' is empty; give the path of a TOML grid file")
    try:
        with open(path, "rb") as f:
            values = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"--config {path} is not a TOML grid file: {error}") from None
    except IsADirectoryError:
        raise InputError(f"--config {path} is a folder; give the TOML grid file") from None
    except FileNotFoundError:
        raise InputError(f"--config {path}: no such file") from None
    if not values:
        raise InputError(f"--config {path} holds no grid keys; write field = value or field = [values] lines, "
                         "such as d = [50, 100]")
    tables = [k for k, v in values.items() if isinstance(v, dict)]
    if tables:
        raise InputError(f"--config {path}: the grid is flat (field = value or [values]); found a table [{tables[0]}]")
    try:
        return make_grid(values)
    except InputError as error:
        raise InputError(f"--config {path}: {error}") from None


def configs(grid):
    """Every combination of the grid as a :class:`CompareConfig`, the last key varying fastest.

    ``seed`` varies fastest of all, so that the runs of one setting are adjacent.
    """
    names = sorted(grid, key=lambda name: name == "seed")
    runs = math.prod(len(grid[name]) for name in names)
    if runs > MAX_RUNS:
        raise InputError(f"the grid holds {runs:,} runs ({' x '.join(f'{len(grid[n])} {n}' for n in names)}), more "
                         f"than {MAX_RUNS:,}; sweep fewer values")
    return [CompareConfig(**dict(zip(names, combo))) for combo in itertools.product(*(grid[n] for n in names))]


def _same_config(row, config):
    """True when a stored row holds ``config``'s fields (those ``config`` sets; the rest are resolved by the run)."""
    given = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    return all(row.get(name) == value for name, value in given.items() if value is not None)


def config_hash(config):
    """SHA-256 (first 16 hex digits) of the configuration's fields, as sorted JSON."""
    text = json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_row(config, compute=run_compare):
    """Run one configuration and return its table row; a divergence or bad input found while running is an error row.

    Any other exception is a bug and propagates (the sweep stops, its table is written).

    Parameters
    ----------
    config : CompareConfig
    compute : callable
        ``compute(config) -> dict`` shaped like :func:`run_compare`'s result.

    Returns
    -------
    dict
        The configuration's fields (resolved: the lr, alpha and width the run
        used), then per network ``{net}_params``, ``{net}_steps_to_{t}``,
        ``{net}_seconds_to_{t}``, ``{net}_final_*``, ``{net}_steps_run``, the
        ``speedup_steps_to_{t}`` and ``speedup_seconds_to_{t}``, and
        :data:`META`.
    """
    start = time.perf_counter()
    row = dataclasses.asdict(config)
    try:
        result = compute(config)
        row.update(result["config"])
        row.update(result_columns(result))
        row.update(status="ok", error="")
    except (DivergenceError, InputError) as error:  # the sweep goes on; the row keeps the message
        row.update(status="error", error=f"{type(error).__name__}: {error}")
    row.update(seconds=time.perf_counter() - start, worker=f"{socket.gethostname()}:{os.getpid()}",
               dlnref_version=__version__, config_hash=config_hash(config))
    return json.loads(json.dumps(row, default=json_default))  # as stored: tuples as lists, NumPy scalars as numbers


def result_columns(result):
    """The flat columns of one :func:`run_compare` result (every network it holds, and the speedups)."""
    columns = {}
    networks = [name for name, value in result.items() if isinstance(value, dict) and "steps_to" in value]
    for name in networks:
        for key, value in result[name].items():
            if key == "history":
                continue
            if isinstance(value, dict):
                columns.update({f"{name}_{key}_{t}": v for t, v in value.items()})
            else:
                columns[f"{name}_{key}"] = value
    for kind, values in result.get("speedup", {}).items():
        columns.update({f"speedup_{kind}_{t}": v for t, v in values.items()})
    return columns


def failure_row(config, error):
    """The row of a run whose task was lost (its workers died): not stored, so a rerun retries it."""
    return {**dataclasses.asdict(config), "status": "error", "error": f"{type(error).__name__}: {error}",
            "seconds": None, "worker": None, "dlnref_version": __version__, "config_hash": config_hash(config)}


class RunStore:
    """Finished runs, one JSON file per configuration: ``OUT/runs/<hash>.json``, each written whole."""

    def __init__(self, out):
        self.folder = os.path.join(os.fspath(out), "runs")
        self.unreadable = []   # stored files that load could not read back: their runs are computed again

    def path(self, config):
        return os.path.join(self.folder, f"{config_hash(config)}.json")

    def load(self, config):
        """The stored row of ``config``, or None (also for a file that cannot be read back, named in :attr:`unreadable`)."""
        path = self.path(config)
        try:
            with open(path, encoding="utf-8") as f:
                row = json.load(f)
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError):
            row = None
        if not (isinstance(row, dict) and row.get("status") in ("ok", "error") and _same_config(row, config)):
            self.unreadable.append(path)   # truncated, edited, or not a run of this config
            return None
        return row

    def save(self, config, row):
        with atomic_path(self.path(config)) as tmp, open(tmp, "w") as f:
            json.dump(row, f, indent=1, default=json_default)


@dataclasses.dataclass
class SweepReport:
    """What :func:`run_sweep` did: the table's rows (grid order) and the counts."""

    rows: list
    computed: int
    skipped: int
    failed: int
    files: list
    seconds: float


def run_sweep(grid_configs, out, executor, compute=run_compare, retry_errors=False, x=None, threshold=None,
              plot=True, note=None):
    """Check every configuration, run those not yet stored under ``out``, then write the table and the figure.

    Parameters
    ----------
    grid_configs : list of CompareConfig
        Duplicates (same hash) run once.
    out : str or os.PathLike
        Folder of the store, the table and the figure.
    executor : dlnref.experiments.executor.SerialExecutor or DaskExecutor
    compute : callable
        ``compute(config) -> dict`` like :func:`run_compare` (the default).
    retry_errors : bool
        Run again the configurations stored with ``status = "error"``.
    x, threshold, plot :
        The figure's swept parameter (default: the one with the most values), the
        error threshold of its speedups (default 1e-3), and whether to draw it.
    note : callable or None
        ``note(line)`` for a stored run that cannot be read back (None: a ``RuntimeWarning``).

    Returns
    -------
    SweepReport

    Raises
    ------
    InputError
        Before any run, for a configuration that ``dlnref compare`` would refuse (:func:`check_grid`).
    """
    start = time.perf_counter()
    check_grid(grid_configs)
    note = note or functools.partial(warnings.warn, category=RuntimeWarning, stacklevel=2)
    store = RunStore(out)
    unique = list({config_hash(c): c for c in grid_configs}.values())
    rows = {config_hash(c): store.load(c) for c in unique}
    for path in store.unreadable:
        note(f"{path} cannot be read back, or holds another configuration (cut off while stored? edited?); its run "
             "is computed again")
    todo = [c for c in unique if rows[config_hash(c)] is None
            or (retry_errors and rows[config_hash(c)]["status"] == "error")]
    skipped, computed = len(unique) - len(todo), 0
    try:
        for i, row, error in executor.as_completed(functools.partial(run_row, compute=compute), todo, failed=_is_error):
            if error is None:
                store.save(todo[i], row)
                computed += 1
            elif isinstance(error, LostTaskError):
                row = failure_row(todo[i], error)
            else:   # a bug in dlnref (run_row keeps divergences and bad input as rows): stop, after the table
                raise error
            rows[config_hash(todo[i])] = row
    finally:
        table = [rows[config_hash(c)] for c in unique if rows[config_hash(c)] is not None]
        files = write_table(table, out)
        if plot and table:
            files.append(plot_sweep(table, os.path.join(os.fspath(out), "sweep.png"), unique, x, threshold))
    failed = sum(row["status"] == "error" for row in table)
    return SweepReport(table, computed, skipped, failed, files, time.perf_counter() - start)


def check_grid(grid_configs, option=option_name):
    """Check every configuration as ``dlnref compare`` would (:func:`dlnref.experiments.compare.check_config`), before any run.

    Every run is checked as ``compare`` checks it, its ratings file read, and
    its memory estimated against this machine's.

    Raises
    ------
    InputError
        Naming the first bad run of the grid, its values, and the option.
    """
    for i, config in enumerate(grid_configs, start=1):
        try:
            resolved = check_config(config, option)
            if config.data is not None:
                check_ratings(config, option)
            else:
                check_compare_fits(resolved, option)
        except InputError as error:
            raise InputError(f"run {i} of {len(grid_configs)} of the grid ({_differences(config)}): {error}") from None


def _differences(config):
    """The fields of ``config`` that differ from the defaults, as ``name=value`` text."""
    default = CompareConfig()
    changed = [f"{f.name}={getattr(config, f.name)!r}" for f in dataclasses.fields(config)
               if getattr(config, f.name) != getattr(default, f.name)]
    return ", ".join(changed) or "the defaults"


def _is_error(row):
    return row["status"] == "error"


def columns_of(rows):
    """Column order: CompareConfig's fields, then result columns as first met, then :data:`META`."""
    first = list(grid_fields())
    rest = []
    for row in rows:
        rest.extend(k for k in row if k not in first and k not in META and k not in rest)
    return first + rest + list(META)


def write_table(rows, out):
    """Write ``OUT/sweep.csv`` (and ``OUT/sweep.parquet`` when pyarrow is installed); return the paths."""
    columns = columns_of(rows)
    path = os.path.join(os.fspath(out), "sweep.csv")
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        writer.writerows({k: _cell(row.get(k)) for k in columns} for row in rows)
    files = [path]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return files
    path = os.path.join(os.fspath(out), "sweep.parquet")
    table = pa.Table.from_pylist([{k: row.get(k) for k in columns} for row in rows])
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    files.append(path)
    return files


def _cell(value):
    return "" if value is None else value


def swept(configs_):
    """Names of the fields that take more than one value among ``configs_``, in field order."""
    return [name for name in grid_fields()
            if len({json.dumps(getattr(c, name), default=str) for c in configs_}) > 1]


def plot_sweep(rows, path, configs_, x=None, threshold=None):
    """Speedups and final errors against the swept ``x``: three panels.

    Left and middle: wide / compressed steps and seconds to ``threshold``;
    right: each network's final recovery error (log scale). ``x`` defaults to
    the swept field (``seed`` aside) with the most values. One line per setting
    of the other swept fields (and per network on the right); the line is the
    median over seeds, the band their range. Runs without a value (failed, or
    the threshold not reached by both networks) are left out and counted.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threshold = f"{THRESHOLDS[2] if threshold is None else threshold:g}"
    varying = [name for name in swept(configs_) if name != "seed"]
    x = x or max(varying, key=lambda name: len({str(getattr(c, name)) for c in configs_}), default="seed")
    others = [name for name in varying if name != x]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    for ax, kind in zip(axes, ("steps", "seconds")):
        for label, points, missing in _lines(rows, x, others, f"speedup_{kind}_to_{threshold}"):
            _band(ax, points, label + (f" ({missing} without)" if missing else ""))
        ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
        ax.set_ylabel(f"wide / compressed {kind} to error {threshold}")
        ax.set_title(f"speedup in {kind}")
    networks = sorted({k[:-len("_final_error")] for row in rows for k in row if k.endswith("_final_error")})
    for network in networks:
        for label, points, _ in _lines(rows, x, others, f"{network}_final_error"):
            _band(axes[2], points, f"{network}" + (f", {label}" if others else ""))
    axes[2].set_yscale("log")
    axes[2].set_ylabel("final recovery error")
    axes[2].set_title("final error of each network")
    for ax in axes:
        ax.set_xlabel(x)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    unreached = sum(row.get(f"speedup_steps_to_{threshold}") is None for row in rows)
    fig.suptitle(f"dlnref sweep: {len(rows)} runs, median and range over seeds; {unreached} runs without a "
                 f"speedup at {threshold} (failed, or not reached by both networks)", fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _band(ax, points, label):
    """Median of ``{x: [values]}`` as a line, their range as a band."""
    xs = sorted(points)
    line, = ax.plot(xs, [_median(points[v]) for v in xs], "o-", label=label)
    ax.fill_between(xs, [min(points[v]) for v in xs], [max(points[v]) for v in xs], color=line.get_color(), alpha=0.2)


def _lines(rows, x, others, column):
    """``(label, {x value: [values over seeds]}, runs without a value)`` per setting of ``others``."""
    groups = {}
    for row in rows:
        key = tuple(_point(row.get(name)) for name in others)
        points, missing = groups.setdefault(key, ({}, [0]))
        value = row.get(column)
        if row.get("status") == "ok" and value is not None and row.get(x) is not None:
            points.setdefault(_point(row[x]), []).append(value)
        else:
            missing[0] += 1
    return [(", ".join(f"{n}={v}" for n, v in zip(others, key)) or "all runs", points, missing[0])
            for key, (points, missing) in groups.items() if points]


def _point(value):
    """A stored value as a point of the figure: a list (a tuple field, say ``networks``) as its text "a,b"."""
    return ",".join(map(str, value)) if isinstance(value, list) else value


def _median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def add_sweep_command(commands):
    """The ``dlnref sweep`` subcommand: one option per CompareConfig field, taking lists and ranges."""
    p = commands.add_parser(
        "sweep", help="run a grid of compare runs, locally or on a Dask cluster, resumably",
        description="Run every combination of the given values as one `dlnref compare` run (a Dask task each). "
                    "Values: V or V1,V2,... or, for integers, FIRST-LAST. Finished runs are kept under "
                    "OUT/runs and skipped when the sweep runs again; the table goes to OUT/sweep.csv "
                    "(and .parquet with pyarrow), the speedup figure to OUT/sweep.png.",
    )
    p.add_argument("--config", metavar="FILE.toml", help="read the grid from this TOML file (field = value or "
                   "[values]); options given here override its keys")
    for name, field in grid_fields().items():
        default = field.default if field.default is not dataclasses.MISSING else None
        p.add_argument(f"--{name.replace('_', '-')}", dest=f"grid_{name}", default=None, metavar="VALUES",
                       help=f"values of {name} (default {default!r})")
    p.add_argument("--seeds", dest="grid_seeds", default=None, metavar="VALUES", help="same as --seed, e.g. 0-9")
    p.add_argument("--out", required=True, metavar="DIR", help="folder of the stored runs, the table and the figure")
    add_executor_options(p, default_workers_text=f"one per core, here {default_workers()}")
    p.add_argument("--retry-errors", action="store_true", help="run again the stored runs that raised")
    p.add_argument("--x", default=None, metavar="FIELD", help="the figure's horizontal axis (default: the swept "
                   "field, seed aside, with the most values)")
    p.add_argument("--threshold", type=float, choices=THRESHOLDS, default=THRESHOLDS[2],
                   help="error threshold of the figure's speedups (default %(default)g)")
    p.add_argument("--no-plot", action="store_true", help="draw no figure")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=_run_sweep)


def grid_from_args(args):
    """The grid of the parsed command line: the TOML file's keys, overridden by the options."""
    values = load_grid(args.config) if args.config else {}
    given = {k[len("grid_"):]: v for k, v in vars(args).items() if k.startswith("grid_") and v is not None}
    if "seed" in given and "seeds" in given:
        raise InputError("give either --seed or --seeds, not both")
    values.update(make_grid(given))
    return values


def _run_sweep(args):
    grid = grid_from_args(args)
    if args.x is not None and args.x not in grid_fields():
        raise InputError(f"--x must be a field of the grid, one of {', '.join(grid_fields())}; got {args.x!r}")
    todo = configs(grid)
    check_grid(todo)   # before a cluster starts or a folder is made
    check_writable_folder("--out", args.out)
    with executor_from_args(args, default_workers=None, label="sweep") as executor:
        if not args.quiet:
            print(f"[sweep] {len(todo)} runs on {executor.description}; results under {args.out}",
                  file=sys.stderr, flush=True)
        report = run_sweep(todo, args.out, executor, retry_errors=args.retry_errors, x=args.x,
                           threshold=args.threshold, plot=not args.no_plot,
                           note=lambda line: print(f"dlnref sweep: note: {line}", file=sys.stderr, flush=True))
    print(f"{len(report.rows)} runs: {report.computed} computed, {report.skipped} already stored, "
          f"{report.failed} failed ({report.seconds:.0f} s)")
    for path in report.files:
        print(path)
    return 1 if report.failed else 0
