"""Will it fit? Memory estimates checked before large allocations.

The estimates are rough (within a small factor) on purpose: they exist to turn
"--d 1000000" into a clear message at once, instead of an allocation error (or
swapping) after a long wait.
"""

import os

from ..errors import InputError
from ..problems import problem_class

BYTES_PER_ENTRY = 8  # float64


def available_bytes():
    """Memory that this process can still take, in bytes, or None when unknown.

    ``MemAvailable`` of ``/proc/meminfo`` (Linux), else the free physical pages
    of ``os.sysconf``; capped by the cgroup v2 limit (``memory.max`` minus
    ``memory.current``) where a container sets one.
    """
    free = _meminfo_available()
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    limit = _cgroup_room()
    return free if limit is None else min(free, limit)


def _meminfo_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room():
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(int(limit) - used, 0)


def compare_bytes(config):
    """Peak memory of ``dlnref compare`` on a synthetic ``d x d`` problem, in bytes (rough).

    Parameters
    ----------
    config : dlnref.experiments.compare.CompareConfig
        Resolved (its ``networks`` and ``width`` filled in).

    Notes
    -----
    Counts float64 entries: the problem's own estimate
    (:meth:`dlnref.problems.Problem.memory_entries`: about ``10 d^2`` for a
    dense problem, a Gaussian matrix and its SVD for the target, the masks, the
    SVD of the surrogate; sensing adds its operators twice while they are drawn
    and scaled; a problem from observed entries about 4 numbers per entry), and
    3 copies of each network's weights during a step (layers, prefix products,
    gradients): ``3 L d^2`` for the wide one, ``3 (2 d w + (L - 2) w^2)`` for the
    compressed one.
    """
    d, depth, width = config.d, config.depth, config.width
    cls = problem_class(config.problem)
    entries = cls.memory_entries((d, d), **{option: getattr(config, option) for option in cls.options})
    if "wide" in config.networks:
        entries += 3 * depth * d * d
    if "compressed" in config.networks:
        entries += 3 * (2 * d * width + (depth - 2) * width * width)
    return BYTES_PER_ENTRY * entries


def check_fits(what, needed, advice):
    """Raise ``ValueError`` when ``needed`` bytes exceed the memory available now.

    Parameters
    ----------
    what : str
        What needs the memory, in the user's words (say "--d 1000000").
    needed : int
        The estimate, in bytes.
    advice : str
        What to change.
    """
    available = available_bytes()
    if available is not None and needed > available:
        raise InputError(f"{what} needs about {_size(needed)} of memory, but {_size(available)} "
                         f"is available; {advice}")


def _size(nbytes):
    """``nbytes`` in the largest unit that keeps the number >= 1 (1 KB = 1024 bytes)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if nbytes < 1024 or unit == "PB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024


def check_compare_fits(config, option):
    """Raise :class:`dlnref.errors.InputError` when ``dlnref compare`` of ``config`` would not fit in memory now.

    The message names the problem's sizes by ``option(field)`` (the command
    line's ``--d``, and the problem's counts, say ``--measurements``) and what to change.
    """
    counts = [name for name in problem_class(config.problem).options if isinstance(getattr(config, name), int)]
    advice = f"choose a smaller {option('d')}" + "".join(f" or {option(name)}" for name in counts)
    if "wide" in config.networks:
        advice += ", or train the compressed DLN alone (--networks compressed)"
    check_fits(f"--problem {config.problem} with {option('d')} {config.d}"
               + "".join(f" and {option(name)} {getattr(config, name)}" for name in counts),
               compare_bytes(config), advice)
