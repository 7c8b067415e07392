"""Where independent runs execute: in this process, or as tasks on a Dask cluster.

``dlnref sweep``, ``dlnref check`` and ``dlnref figures`` hand their
independent runs to an executor made by :func:`open_executor`:

- ``workers=1`` runs them one after another in this process (no Dask needed);
- ``workers=N`` starts a Dask ``LocalCluster`` of N worker processes, one
  thread each;
- ``scheduler=ADDRESS`` connects to a running Dask cluster of any size.

Every task runs with one BLAS thread (the runs are the parallelism, and one
thread keeps each run's rounding independent of the machine's core count), so
a task's numbers do not depend on the worker that ran it.

A worker that dies while running a task (killed, out of memory) has its task
rescheduled by the Dask scheduler on another worker, up to ``retries`` times
(the scheduler's ``allowed-failures``). A task that *raises* is not retried: the
runs are deterministic, so it would raise again; its exception is handed back.
"""

import contextlib
import logging
import os
import signal
import sys
import threading
import time

from threadpoolctl import threadpool_limits

from ..backend import BackendUnavailableError
from ..errors import InputError

#: What to install for more than one worker.
DIST_HINT = 'pip install "dlnref[dist]"'

#: Times a task is rescheduled after the worker running it died.
RETRIES = 2

#: Environment of a local cluster's worker processes: one BLAS/OpenMP thread each.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

#: Dask settings of a local cluster's workers: no statistical profiler (its thread samples every
#: 10 ms), and slower event-loop ticks and monitors: each wake-up takes the GIL from the run, whose
#: small-matrix steps hold it most of the time.
QUIET_WORKERS = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
                 "distributed.admin.system-monitor.interval": "2s",
                 "distributed.worker.memory.monitor-interval": "1s"}

#: Most local worker processes per core (more only wait for a core, and start slowly).
MAX_WORKERS_PER_CORE = 4

#: Seconds to wait for a running scheduler to answer.
CONNECT_SECONDS = 10

#: How often the Dask executor looks for finished tasks and refreshes the progress line.
POLL_SECONDS = 0.2


class LostTaskError(RuntimeError):
    """A task whose workers died more than ``retries`` times (Dask's ``KilledWorker``): it never ran to its end."""


class DaskUnavailableError(BackendUnavailableError):
    """More than one worker was asked for and Dask distributed is not installed (exit code 2)."""


def call_with_one_blas_thread(fn, item):
    """``fn(item)`` with BLAS and OpenMP held to one thread: the body of every task."""
    with threadpool_limits(limits=1):
        return fn(item)


def default_workers():
    """One worker per core."""
    return os.cpu_count() or 1


@contextlib.contextmanager
def open_executor(workers=None, scheduler=None, retries=RETRIES, label="runs", quiet=False):
    """An executor for independent tasks, closed (cluster shut down) on exit.

    Parameters
    ----------
    workers : int or None
        Worker processes of a local cluster; None means one per core; 1 runs
        the tasks in this process without Dask.
    scheduler : str or None
        Address of a running Dask scheduler (``tcp://host:8786``); overrides
        ``workers``.
    retries : int
        Times a task is rescheduled after its worker died (a local cluster's
        ``allowed-failures``; a running cluster keeps its scheduler's setting).
    label : str
        Name of the tasks in the progress display.
    quiet : bool
        No progress display on stderr.

    Yields
    ------
    SerialExecutor or DaskExecutor
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InputError(f"--workers must be a positive integer, got {workers!r}")
    if workers is not None and workers > MAX_WORKERS_PER_CORE * default_workers():
        raise InputError(f"--workers {workers} asks for more processes than this machine can run usefully "
                         f"({default_workers()} cores); use at most {MAX_WORKERS_PER_CORE * default_workers()}, or a "
                         "running cluster with --scheduler")
    if scheduler is not None and not str(scheduler).strip():
        raise InputError("--scheduler '' is empty; give the address of a Dask scheduler, such as tcp://host:8786")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InputError(f"retries must be a non-negative integer, got {retries!r}")
    workers = default_workers() if workers is None else workers
    progress = Progress(label, quiet=quiet)
    if scheduler is None and workers == 1:
        yield SerialExecutor(progress)
        return
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as error:
        where = f"--scheduler {scheduler}" if scheduler else f"--workers {workers}"
        raise DaskUnavailableError(f"{where} needs Dask distributed, which is not installed: {DIST_HINT} "
                                   "(or run in this process with --workers 1)") from error
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            with dask.config.set({"distributed.scheduler.allowed-failures": retries, **QUIET_WORKERS}), \
                    interrupts_left_to_this_process():
                cluster = stack.enter_context(LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                    silence_logs=logging.ERROR, env=ONE_THREAD))
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(_connect(Client, scheduler))
        yield DaskExecutor(client, progress)


@contextlib.contextmanager
def interrupts_left_to_this_process():
    """Start worker processes that ignore Ctrl-C: this process alone handles it, and shuts them down.

    Ctrl-C in a terminal sends SIGINT to the whole process group, local Dask
    workers included; each would print its own ``KeyboardInterrupt`` traceback.
    A process started while SIGINT is ignored keeps ignoring it, so SIGINT is
    ignored here while the cluster starts its workers, then restored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _connect(Client, scheduler):
    """A Dask client of the scheduler at ``scheduler``; an address that cannot be reached is bad input."""
    try:
        return Client(scheduler, timeout=CONNECT_SECONDS)
    except (ValueError, OSError, TimeoutError) as error:
        raise InputError(f"--scheduler {scheduler}: no Dask scheduler could be reached there within "
                         f"{CONNECT_SECONDS} s ({type(error).__name__}: {error}); give an address such as "
                         "tcp://host:8786, as `dask scheduler` prints it") from None


class SerialExecutor:
    """Runs each task in this process, one after another."""

    description = "1 worker (this process)"

    def __init__(self, progress):
        self.progress = progress

    def as_completed(self, fn, items, failed=None):
        """Yield ``(index, value, error)`` for each item as its task ends.

        ``error`` is the exception the task raised (``value`` is then None).
        ``failed(value)``, if given, says which values the progress display
        counts as failures.
        """
        self.progress.start(len(items))
        for i, item in enumerate(items):
            self.progress.show(running=1)
            try:
                value, error = call_with_one_blas_thread(fn, item), None
            except Exception as exc:  # handed back to the caller, which decides
                value, error = None, exc
            self.progress.finished(error is None and not (failed and failed(value)))
            yield i, value, error
        self.progress.close()

    def map(self, fn, items):
        """``[fn(item) for item in items]``, in order; the first error is raised."""
        return ordered(self.as_completed(fn, items), len(items))


class DaskExecutor:
    """Runs each task on a Dask cluster through ``client``."""

    def __init__(self, client, progress):
        self.client = client
        self.progress = progress

    @property
    def description(self):
        workers = self.client.scheduler_info().get("workers", {})
        return f"{len(workers)} Dask workers at {self.client.scheduler.address}"

    def as_completed(self, fn, items, failed=None):
        """Yield ``(index, value, error)`` for each item as its task ends (in any order).

        ``error`` is the exception the task raised, or a :class:`LostTaskError`
        when its workers died more than ``retries`` times; ``failed`` as for
        :meth:`SerialExecutor.as_completed`. Closing the generator
        (say on KeyboardInterrupt) cancels the tasks not yet finished.
        """
        from distributed import KilledWorker, as_completed

        self.progress.start(len(items))
        futures = [self.client.submit(call_with_one_blas_thread, fn, item, pure=False) for item in items]
        index = {future.key: i for i, future in enumerate(futures)}
        pending = as_completed(futures)
        try:
            while not pending.is_empty():
                batch = pending.next_batch(block=False)
                if not batch:
                    self.progress.show(running=self._running(index))
                    time.sleep(POLL_SECONDS)
                for future in batch:
                    if future.status == "error":
                        value, error = None, future.exception()
                        if isinstance(error, KilledWorker):
                            error = LostTaskError(f"the workers running this task died: {error}")
                    else:
                        value, error = future.result(), None
                    future.release()
                    self.progress.finished(error is None and not (failed and failed(value)))
                    yield index[future.key], value, error
        finally:
            self.client.cancel([f for f in futures if not f.done()])
            self.progress.close()

    def map(self, fn, items):
        """``[fn(item) for item in items]``, in order; the first error is raised."""
        return ordered(self.as_completed(fn, items), len(items))

    def _running(self, index):
        if not self.progress.due():
            return None
        assigned = sum(key in index for keys in self.client.processing().values() for key in keys)
        return min(assigned, sum(self.client.nthreads().values()))  # a worker holds more than it runs


def ordered(completed, n):
    """Values of ``(index, value, error)`` triples in index order; raises the first error met."""
    values = [None] * n
    with contextlib.closing(completed):  # on an error, the tasks not yet done are cancelled
        for i, value, error in completed:
            if error is not None:
                raise error
            values[i] = value
    return values


class Progress:
    """Tasks done, running and failed, and the estimated time left, on stderr.

    The estimate is the elapsed time per finished task times the tasks left.
    On a terminal one line is rewritten every second; otherwise (a log file) a
    line is added at most every ``every`` seconds, and once at the end.
    """

    def __init__(self, label, quiet=False, every=10.0, stream=None):
        self.label, self.quiet = label, quiet
        self.stream = sys.stderr if stream is None else stream
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = 1.0 if self.live else every
        self.total = self.done = self.failed = self.running = 0
        self.started = self.shown = 0.0

    def start(self, total):
        self.total, self.done, self.failed, self.running = total, 0, 0, 0
        self.started = time.perf_counter()
        self.shown = self.started - self.every

    def finished(self, ok):
        self.done += 1
        self.failed += not ok

    def due(self):
        return time.perf_counter() - self.shown >= self.every

    def show(self, running=None):
        if running is not None:
            self.running = running
        if self.quiet or not self.due():
            return
        self.shown = time.perf_counter()
        print(("\r" if self.live else "") + self.line(), end="" if self.live else "\n", file=self.stream, flush=True)

    def close(self):
        self.shown = time.perf_counter() - self.every
        self.running = 0
        self.show()
        if self.live and not self.quiet:
            print(file=self.stream, flush=True)

    def line(self):
        elapsed = time.perf_counter() - self.started
        left = self.total - self.done
        eta = "-" if self.done == 0 else _duration(elapsed / self.done * left)
        return (f"[{self.label}] {self.done}/{self.total} done, {self.running} running, {self.failed} failed, "
                f"{_duration(elapsed)} elapsed, ETA {eta}")


def _duration(seconds):
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def add_executor_options(parser, default_workers_text="1: in this process"):
    """Add ``--workers`` and ``--scheduler`` to ``parser``."""
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help=f"run on a local Dask cluster of N worker processes, one BLAS thread each "
                             f"(default {default_workers_text}; more than 1 needs {DIST_HINT})")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run on the Dask cluster whose scheduler is at ADDRESS, e.g. tcp://host:8786")


def executor_from_args(args, default_workers=1, label="runs"):
    """:func:`open_executor` from parsed ``--workers``/``--scheduler`` (and ``--quiet``) options.

    With neither option and ``default_workers=1`` it yields None: the caller's
    own serial path (``dlnref check`` and ``dlnref figures`` without options).
    """
    if args.workers is None and args.scheduler is None and default_workers == 1:
        return contextlib.nullcontext(None)
    workers = default_workers if args.workers is None else args.workers
    return open_executor(workers, args.scheduler, label=label, quiet=getattr(args, "quiet", False))
