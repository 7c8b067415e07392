"""The runs every check shares, computed once per config.

The configs themselves are :data:`dlnref.compare.SETUPS`: the paper's sizes
(``full``) and reduced ones (``quick``).
"""

import functools

from dlnref import to_numpy
from dlnref.compare import SETUPS, build, run_compare, setup

PROBLEMS = tuple(SETUPS["quick"])

__all__ = ["PROBLEMS", "compare_with_snapshots", "problem_of", "setup", "snapshot"]


def snapshot(step, weights):
    """``observe`` hook: keep a host copy of every layer at each recorded step."""
    return {"weights": [to_numpy(w) for w in weights]}


@functools.lru_cache(maxsize=None)
def compare_with_snapshots(config):
    """:func:`dlnref.compare.run_compare` with weight snapshots, computed once per config."""
    return run_compare(config, observe=snapshot)


@functools.lru_cache(maxsize=None)
def problem_of(config):
    """The problem that ``config`` trains on (the same one :func:`compare_with_snapshots` uses)."""
    return build(config)[0]
