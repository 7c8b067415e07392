"""Runs of whole rows on a thread pool: the parallel part of :class:`dlnref.problems.SparseCompletion`.

Private to the problems' family. The entries of a problem are cut once into
runs of whole rows (:func:`row_parts`); a task runs on each, and the partial
results are combined in run order, so the result does not depend on the
number of threads, bit for bit.
"""

import os
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

#: Most runs of rows that the entries are cut into, hence most useful threads. Each run
#: costs a ``(w, n)`` partial product to sum: on one thread, 8 runs made each sparse
#: product of a 2*10^6-entry gradient 1 ms (10%) slower than 1 run.
MAX_PARTS = 4

#: Fewest entries in a run of rows: smaller problems are cut into fewer runs
#: (one below ``2 PART_MIN_ENTRIES``), whose tasks would cost more than they save.
PART_MIN_ENTRIES = 1 << 16


def default_threads():
    """Threads for :class:`SparseCompletion`: the CPUs this process may use, at most :data:`MAX_PARTS`."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, MAX_PARTS))


def row_parts(indptr, parts):
    """Row bounds ``0 = a_0 <= ... <= a_P = m``: ``P`` runs of whole rows, each with about ``|Omega| / P`` entries."""
    targets = np.arange(1, parts) * indptr[-1] // parts
    return np.concatenate(([0], np.searchsorted(indptr, targets), [len(indptr) - 1]))


def by_parts(threads, bounds, task):
    """``[task(bounds[t], bounds[t + 1], worker) for t]``, run ``t`` by worker ``t % W`` of ``W <= threads`` threads.

    Each worker's runs go in order, so a worker may reuse its own scratch memory.
    """
    count = len(bounds) - 1
    workers = min(threads, count)

    def runs(worker):
        return [task(bounds[t], bounds[t + 1], worker) for t in range(worker, count, workers)]

    done = in_parallel([lambda w=w: runs(w) for w in range(workers)])
    return [done[t % workers][t // workers] for t in range(count)]


def in_parallel(calls):
    """``[call() for call in calls]``, the first in this thread and the others on a pool's threads."""
    futures = [_pool(len(calls) - 1).submit(call) for call in calls[1:]] if len(calls) > 1 else []
    try:
        first = calls[0]()
    finally:  # no task outlives the call, even when the first raises: they write into shared buffers
        wait(futures)
    return [first] + [future.result() for future in futures]


_POOLS = {}


def _pool(workers):
    """This process's thread pool of ``workers`` threads (a forked child makes its own: threads do not fork)."""
    key = (os.getpid(), workers)
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(workers, thread_name_prefix="dlnref-sparse")
    return _POOLS[key]
