"""The figures drawn as tasks of an executor: ``dlnref figures --workers N``.

Figures that read the same runs (the same :data:`dlnref.experiments.figures.GROUPS` entry)
are drawn in one task, so each run is computed once. A task draws into a
temporary folder of its worker and returns the PNGs' bytes, so the figures land
in ``out`` on this machine whichever machine drew them.
"""

import functools
import os
import tempfile
import time

from .._io import atomic_path


def figure_groups(names):
    """``names`` split into the groups drawn together, in order of first appearance."""
    from .figures import GROUPS

    groups = {}
    for name in names:
        groups.setdefault(GROUPS[name], []).append(name)
    return list(groups.values())


def draw_group(size, names):
    """Draw ``names`` in this process; returns ``[(name, numbers, png bytes)]``."""
    from .figures import FIGURES

    drawn = []
    with tempfile.TemporaryDirectory(prefix="dlnref-figures-") as folder:
        for name in names:
            start = time.perf_counter()
            path = os.path.join(folder, f"{name}.png")
            numbers = {**FIGURES[name](size, path), "made_in_seconds": round(time.perf_counter() - start, 1)}
            with open(path, "rb") as f:
                drawn.append((name, numbers, f.read()))
    return drawn


def draw_on(executor, size, names, out):
    """Yield ``(name, numbers)`` as each group of figures is drawn by ``executor``; the PNGs go to ``out``."""
    for _, drawn, error in executor.as_completed(functools.partial(draw_group, size), figure_groups(names)):
        if error is not None:
            raise error
        for name, numbers, png in drawn:
            with atomic_path(os.path.join(out, f"{name}.png")) as tmp, open(tmp, "wb") as f:
                f.write(png)
            yield name, numbers
